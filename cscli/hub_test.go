package cscli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/internal/testhub"
)

// TestHubInstallListRemove installs a collection from the shared hub into a
// temporary configuration folder and checks what lands where.
func TestHubInstallListRemove(t *testing.T) {
	hubDir := testhub.Dir(t)
	e := newOpsEnv(t, "127.0.0.1:8080")
	confDir, dataDir := filepath.Join(e.dir, "etc"), filepath.Join(e.dir, "data")
	cfg, _ := os.ReadFile(e.cfgPath)
	cfg = append([]byte("[config_paths]\nconfig_dir = \""+confDir+"\"\ndata_dir = \""+dataDir+"\"\nhub_dir = \""+hubDir+"\"\n\n"), cfg...)
	if err := os.WriteFile(e.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := e.mustRun("collections", "install", "crowdsecurity/sshd")
	if !strings.Contains(out, "enabled scenarios/crowdsecurity/ssh-bf") {
		t.Errorf("install output:\n%s", out)
	}
	for _, f := range []string{"collections/crowdsecurity/sshd.yaml", "parsers/s01-parse/crowdsecurity/sshd-logs.yaml", "scenarios/crowdsecurity/ssh-bf.yaml"} {
		if _, err := os.Stat(filepath.Join(confDir, f)); err != nil {
			t.Errorf("%s not installed: %v", f, err)
		}
	}
	out, _ = e.mustRun("scenarios", "list", "-o", "json")
	var got map[string][]map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("scenarios list -o json: %v\n%s", err, out)
	}
	found := false
	for _, it := range got["scenarios"] {
		if it["name"] == "crowdsecurity/ssh-bf" && it["status"] == "enabled" {
			found = true
		}
	}
	if !found {
		t.Errorf("ssh-bf not listed as enabled: %s", out)
	}
	e.mustRun("scenarios", "remove", "crowdsecurity/ssh-bf")
	if _, err := os.Stat(filepath.Join(confDir, "scenarios/crowdsecurity/ssh-bf.yaml")); !os.IsNotExist(err) {
		t.Errorf("ssh-bf still installed: %v", err)
	}
	if _, _, err := e.run("", "scenarios", "install", "crowdsecurity/nope"); err == nil {
		t.Error("installing an unknown item succeeded")
	}
}
