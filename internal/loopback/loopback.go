// Package loopback hands the benchmark drivers a free TCP address on
// 127.0.0.1 for the daemons they start (LAPI, metrics).
package loopback

import (
	"fmt"
	"net"
)

// FreeAddr returns "127.0.0.1:PORT" for a port nothing listened on a
// moment ago; the caller's process binds it next.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
