package csconfig

import (
	"os"
	"testing"
)

// FuzzParse: any bytes as config.toml give a checked config or an error
// naming the file, never a panic.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../config/config.toml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("[api.server]\nlisten_uri = \"127.0.0.1:8080\"\ntrusted_ips = [\"::ffff:0:0/64\"]\n"))
	f.Add([]byte("[db_config]\ntype = \"postgresql\"\n[prometheus]\nlevel = \"full\"\n"))
	f.Add([]byte("[api.server]\nuse_forwarded_for_headers = true\ntrusted_proxies = [\"10.0.0.0/8\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.toml")
		if err != nil {
			return
		}
		if c.ListenURL() == "" && c.API.Server.ListenURI != "" {
			t.Fatalf("listen_uri %q gives no URL", c.API.Server.ListenURI)
		}
	})
}
