package cscli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/lapitest"
	"github.com/rampart-ips/rampart/internal/testdb/storecfg"
)

// TestBlocklistsCommands: list shows config.toml's subscription with what
// the running LAPI did, refresh has the LAPI fetch now, add and remove
// edit blocklists_path only, and bad input is refused with nothing written.
func TestBlocklistsCommands(t *testing.T) {
	feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "192.0.2.1\n198.51.100.0/24\n")
	}))
	defer feed.Close()
	dir := t.TempDir()
	l := lapitest.StartWith(t, storecfg.At(t, filepath.Join(dir, "crowdsec.db")), "", func(c *csconfig.Config) {
		b := csconfig.Blocklist{Name: "feed1", URL: feed.URL}
		b.SetDefaults()
		c.Blocklists = []csconfig.Blocklist{b}
	})
	l.AddMachine(testLogin, testPassword)
	credPath := filepath.Join(dir, "local_api_credentials.toml")
	if err := csconfig.WriteCredentials(credPath, &csconfig.Credentials{URL: l.URL(), Login: testLogin, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	managed := filepath.Join(dir, "blocklists.toml")
	env := &lapiEnv{dir: dir, url: l.URL(), st: l.Store, cfgPath: filepath.Join(dir, "config.toml")}
	conf := fmt.Sprintf("[config_paths]\nconfig_dir = %q\nblocklists_path = %q\n\n", dir, managed) + dbConfigTOML(l.Config) +
		fmt.Sprintf("\n[api.client]\ncredentials_path = %q\n\n[[blocklists]]\nname = \"feed1\"\nurl = %q\n", credPath, feed.URL)
	if err := os.WriteFile(env.cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	if out := env.mustRun(t, "blocklists", "refresh"); !strings.Contains(out, "feed1: 2 entries") {
		t.Fatalf("refresh: %q", out)
	}
	var views []blocklistView
	if err := json.Unmarshal([]byte(env.mustRun(t, "blocklists", "list", "-o", "json")), &views); err != nil {
		t.Fatal(err)
	}
	if len(views) != 1 || views[0].Name != "feed1" || views[0].Status == nil || views[0].Status.Entries != 2 || views[0].File != env.cfgPath {
		t.Fatalf("list: %+v", views)
	}
	if out := env.mustRun(t, "blocklists", "list"); !strings.Contains(out, "feed1") || !strings.Contains(out, feed.URL) {
		t.Fatalf("list table: %q", out)
	}

	env.mustRun(t, "blocklists", "add", "peer", "--url", "https://192.0.2.10:8080/v1/lists/all", "--header", "X-Api-Key=secret", "--interval", "5m")
	cfg, err := csconfig.Load(env.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Blocklists) != 2 || cfg.Blocklists[1].Name != "peer" || cfg.Blocklists[1].Headers["X-Api-Key"] != "secret" ||
		cfg.Blocklists[1].Interval.Duration.Minutes() != 5 {
		t.Fatalf("after add: %+v", cfg.Blocklists)
	}
	before, _ := os.ReadFile(managed)
	for _, args := range [][]string{
		{"add", "peer", "--url", "https://192.0.2.11/"},            // taken
		{"add", "feed1", "--file", "/tmp/x"},                       // taken in config.toml
		{"add", "nourl"},                                           // no source
		{"add", "fast", "--url", "http://x/", "--interval", "10s"}, // below the minimum
		{"add", "bad name", "--url", "http://x/"},
		{"add", "fmt", "--url", "http://x/", "--format", "csv"},
		{"remove", "feed1"}, // config.toml's
		{"remove", "nosuch"},
		{"refresh", "nosuch"},
	} {
		if _, _, err := env.run(t, nil, append([]string{"blocklists"}, args...)...); err == nil {
			t.Fatalf("cscli blocklists %v succeeded", args)
		}
	}
	if after, _ := os.ReadFile(managed); string(after) != string(before) {
		t.Fatalf("a refused command changed %s:\n%s", managed, after)
	}
	env.mustRun(t, "blocklists", "remove", "peer")
	if cfg, err = csconfig.Load(env.cfgPath); err != nil || len(cfg.Blocklists) != 1 {
		t.Fatalf("after remove: %+v %v", cfg.Blocklists, err)
	}
}
