package main

import (
	"os/exec"
	"strings"
	"testing"
)

// cscli and the bouncer talk to the LAPI over HTTP or open its database:
// neither links the LAPI's server, its HTTP framework or its JWT library.
func TestNoServerDependencies(t *testing.T) {
	for _, bin := range []string{".", "../crowdsec-firewall-bouncer"} {
		out, err := exec.Command("go", "list", "-deps", bin).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", bin, err)
		}
		for _, pkg := range strings.Fields(string(out)) {
			if pkg == "github.com/rampart-ips/rampart/lapi" ||
				strings.HasPrefix(pkg, "github.com/labstack/echo/") || strings.HasPrefix(pkg, "github.com/golang-jwt/jwt/") {
				t.Errorf("%s links %s", bin, pkg)
			}
		}
	}
}
