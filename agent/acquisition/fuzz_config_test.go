package acquisition

import (
	"testing"
)

// FuzzParseFile: any bytes as an acquis.d TOML file give sources or an
// error with the file and line, never a panic.
func FuzzParseFile(f *testing.F) {
	for _, s := range []string{
		"[[source]]\nsource = \"file\"\nfilenames = [\"/var/log/auth.log\"]\nlabels = { type = \"syslog\" }\n",
		"[[source]]\nsource = \"journalctl\"\njournalctl_filter = [\"_SYSTEMD_UNIT=ssh.service\"]\nlabels = { type = \"syslog\" }\n",
		"[[source]]\nsource = \"syslog\"\nlisten_addr = \"0.0.0.0\"\nlisten_port = 514\nprotocol = \"udp\"\nlabels = { type = \"syslog\" }\n",
		"[[source]]\nsource = \"syslog\"\nlisten_port = 99999\nlabels = { type = \"syslog\" }\n",
		"[[source]]\n[[source]]\nsource = 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfgs, err := parseFile(data, "fuzz.toml")
		if err != nil {
			return
		}
		for _, c := range cfgs {
			if c.Source == "" || c.Labels["type"] == "" {
				t.Fatalf("accepted a source without kind or type: %+v", c)
			}
			_ = c.Where()
		}
	})
}
