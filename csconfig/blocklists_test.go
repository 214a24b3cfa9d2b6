package csconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBlocklistsConfig(t *testing.T) {
	c, err := Parse([]byte(`
[[blocklists]]
name = "drop"
url = "https://example.org/drop.txt"

[[blocklists]]
name = "local"
file = "/etc/crowdsec/mine.txt"
format = "plain"
interval = "5m"
type = "captcha"
duration = "1h"
headers = { "X-Api-Key" = "k" }

[[lists_out]]
name = "v4"
origins = ["cscli"]
ip_version = 4
`), "config.toml")
	if err != nil {
		t.Fatal(err)
	}
	d, l := c.Blocklists[0], c.Blocklists[1]
	if d.Interval.Duration != time.Hour || d.Duration.Duration != 24*time.Hour || d.Type != "ban" || d.Timeout.Duration != time.Minute || d.MaxBytes != DefaultBlocklistMaxBytes {
		t.Fatalf("defaults: %+v", d)
	}
	if l.Interval.Duration != 5*time.Minute || l.Duration.Duration != time.Hour || l.Type != "captcha" || l.Headers["X-Api-Key"] != "k" {
		t.Fatalf("set: %+v", l)
	}
	if len(c.ListsOut) != 1 || c.ListsOut[0].IPVersion != 4 {
		t.Fatalf("lists_out: %+v", c.ListsOut)
	}
	// A long interval lengthens the default duration: 3 intervals.
	c, err = Parse([]byte("[[blocklists]]\nname = \"slow\"\nurl = \"http://x/\"\ninterval = \"12h\"\n"), "c")
	if err != nil || c.Blocklists[0].Duration.Duration != 36*time.Hour {
		t.Fatalf("slow: %+v %v", c, err)
	}

	for _, bad := range []struct{ toml, want string }{
		{"[[blocklists]]\nname = \"a\"\n", "exactly one of url and file"},
		{"[[blocklists]]\nname = \"a\"\nurl = \"http://x/\"\nfile = \"/f\"\n", "exactly one of url and file"},
		{"[[blocklists]]\nname = \"a\"\nurl = \"ftp://x/\"\n", "not an http"},
		{"[[blocklists]]\nname = \"a b\"\nurl = \"http://x/\"\n", "name"},
		{"[[blocklists]]\nname = \"a\"\nurl = \"http://x/\"\nformat = \"csv\"\n", "format"},
		{"[[blocklists]]\nname = \"a\"\nurl = \"http://x/\"\ninterval = \"10s\"\n", "below the minimum"},
		{"[[blocklists]]\nname = \"a\"\nurl = \"http://x/\"\nduration = \"90m\"\n", "at least twice the interval"},
		{"[[blocklists]]\nname = \"a\"\nurl = \"http://x/\"\n[[blocklists]]\nname = \"a\"\nfile = \"/f\"\n", "used twice"},
		{"[[blocklists]]\nname = \"a\"\nurl = \"http://x/\"\nbogus = 1\n", "bogus"},
		{"[[lists_out]]\nname = \"all\"\n", "built-in all"},
		{"[[lists_out]]\nname = \"x\"\nip_version = 5\n", "ip_version"},
		{"[[lists_out]]\nname = \"x\"\nscopes = [\"country\"]\n", "ip and range only"},
	} {
		if _, err := Parse([]byte(bad.toml), "c"); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.toml, err, bad.want)
		}
	}
}

// TestBlocklistsFile: the file cscli manages round-trips, is read beside
// config.toml's own subscriptions, and a name in both is refused.
func TestBlocklistsFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "blocklists.toml")
	in := []Blocklist{{Name: "peer", URL: "https://192.0.2.1/v1/lists/all", Headers: map[string]string{"X-Api-Key": "k"}, Interval: Duration{5 * time.Minute}}}
	if err := WriteBlocklistsFile(file, in); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", st, err)
	}
	got, err := LoadBlocklistsFile(file)
	if err != nil || len(got) != 1 || got[0].Headers["X-Api-Key"] != "k" || got[0].Interval.Duration != 5*time.Minute || got[0].Duration.Duration != 0 {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	cfgPath := filepath.Join(dir, "config.toml")
	write := func(extra string) {
		t.Helper()
		body := "[config_paths]\nconfig_dir = \"" + dir + "\"\nblocklists_path = \"" + file + "\"\n" + extra
		if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("[[blocklists]]\nname = \"own\"\nfile = \"/f\"\n")
	c, err := Load(cfgPath)
	if err != nil || len(c.Blocklists) != 2 || c.Blocklists[1].Name != "peer" || c.Blocklists[1].Duration.Duration != 24*time.Hour {
		t.Fatalf("load: %+v %v", c, err)
	}
	write("[[blocklists]]\nname = \"peer\"\nfile = \"/f\"\n")
	if _, err := Load(cfgPath); err == nil || !strings.Contains(err.Error(), "used twice") {
		t.Fatalf("a name in both files: %v", err)
	}
}
