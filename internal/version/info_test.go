package version

import (
	"bytes"
	"strings"
	"testing"
)

func TestInfoWrite(t *testing.T) {
	in := Get("crowdsec")
	in.Paths = []Path{{"Config", "/etc/crowdsec/config.toml"}}
	var b bytes.Buffer
	if err := in.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"version: " + Version + " (Rampart)\n", "GoVersion: go", "Platform: linux/", "User-Agent: crowdsec/" + Version,
		"Constraint_scenario: >= 1.0, <= 3.0\n", "Config: /etc/crowdsec/config.toml\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	b.Reset()
	if err := Get("crowdsec-firewall-bouncer").Write(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "Constraint_") {
		t.Errorf("the bouncer has no hub constraints:\n%s", b.String())
	}
}
