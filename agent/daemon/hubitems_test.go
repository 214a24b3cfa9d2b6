package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/csconfig"
)

// TestLoadsItemsInstalledOneByOne: parsers, a scenario, a postoverflow
// and a context put in config_dir by hand, as upstream's layout has them,
// are what the daemon loads and runs, with no collection anywhere.
func TestLoadsItemsInstalledOneByOne(t *testing.T) {
	rules, _ := filepath.Abs("../../rules")
	conf := t.TempDir()
	put := func(rel, body string) {
		t.Helper()
		p := filepath.Join(conf, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyRule := func(from, to string) {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(rules, from))
		if err != nil {
			t.Fatal(err)
		}
		put(to, string(data))
	}
	// hub items, copied flat as upstream's cscli lays them out
	copyRule("parsers/s00-raw/rampart/syslog-logs.yaml", "parsers/s00-raw/syslog-logs.yaml")
	copyRule("parsers/s01-parse/rampart/sshd-logs.yaml", "parsers/s01-parse/sshd-logs.yaml")
	copyRule("parsers/s02-enrich/rampart/dateparse-enrich.yaml", "parsers/s02-enrich/dateparse-enrich.yaml")
	copyRule("scenarios/rampart/ssh-bf.yaml", "scenarios/ssh-bf.yaml")
	// local items, written by hand
	put("scenarios/me/ssh-any.yaml", "type: trigger\nname: me/ssh-any\ndescription: any failed login\n"+
		"filter: \"evt.Meta.log_type == 'ssh_failed-auth'\"\ngroupby: evt.Meta.source_ip\nblackhole: 1m\n"+
		"labels:\n  remediation: true\n")
	put("postoverflows/s01-whitelist/me/partner.yaml", "name: me/partner\ndescription: a partner's address\n"+
		"whitelist:\n  reason: partner\n  expression:\n    - evt.Overflow.Alert.Source.IP == '203.0.113.9'\n")
	put("contexts/me/user.yaml", "context:\n  who:\n    - evt.Meta.target_user\n")

	cfg := csconfig.Default()
	cfg.ConfigPaths.ConfigDir = conf
	cfg.ConfigPaths.HubDir = rules
	cfg.Crowdsec.Collections = []string{} // none: only the files count
	rs, err := loadRules(cfg, log.WithField("test", t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	wantParsers := []string{"rampart/dateparse-enrich", "rampart/sshd-logs", "rampart/syslog-logs"}
	if got := slices.Sorted(slices.Values(rs.Items.Parsers)); !slices.Equal(got, wantParsers) {
		t.Errorf("parsers %v, want %v", got, wantParsers)
	}
	if got := slices.Sorted(slices.Values(rs.Items.Scenarios)); !slices.Equal(got, []string{"me/ssh-any", "rampart/ssh-bf"}) {
		t.Errorf("scenarios %v", got)
	}
	if !slices.Equal(rs.Items.PostOverflows, []string{"me/partner"}) || !rs.HasPostOverflows() {
		t.Errorf("postoverflows %v", rs.Items.PostOverflows)
	}
	if _, ok := rs.Contexts["who"]; !ok {
		t.Errorf("context not loaded: %v", rs.Contexts)
	}

	engine := rs.NewEngine(true)
	alerts := map[string]int{}
	kept := map[string]int{}
	for _, ip := range []string{"198.51.100.7", "203.0.113.9"} {
		for i := range 6 {
			line := fmt.Sprintf("Feb 12 14:10:%02d host sshd[1]: Failed password for root from %s port 5 ssh2", i, ip)
			evt := event.New(event.Line{Raw: line, Src: "/var/log/auth.log", Module: "file", Labels: map[string]string{"type": "syslog"}, Time: time.Now()})
			if err := rs.Parse(&evt, nil); err != nil {
				t.Fatal(err)
			}
			if !evt.Process {
				t.Fatalf("%q did not parse", line)
			}
			for _, ov := range engine.Pour(&evt) {
				if ov.Overflow.Alert == nil {
					continue
				}
				sc := ov.Overflow.Alert.GetScenario()
				alerts[sc+" "+ip]++
				if keep, _ := rs.PostOverflow(&ov); keep {
					kept[sc+" "+ip]++
				}
			}
		}
	}
	for _, k := range []string{"rampart/ssh-bf 198.51.100.7", "me/ssh-any 198.51.100.7"} {
		if kept[k] == 0 {
			t.Errorf("no alert kept for %s: raised %v, kept %v", k, alerts, kept)
		}
	}
	if alerts["rampart/ssh-bf 203.0.113.9"] == 0 || kept["rampart/ssh-bf 203.0.113.9"] != 0 {
		t.Errorf("the partner's alert was not raised then whitelisted: raised %v, kept %v", alerts, kept)
	}
}

// TestLoadRulesProblems: a parser outside a stage folder stops the
// daemon, with the file named; skip_broken_rules starts without it.
func TestLoadRulesProblems(t *testing.T) {
	rules, _ := filepath.Abs("../../rules")
	conf := t.TempDir()
	if err := os.MkdirAll(filepath.Join(conf, "parsers"), 0o755); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(conf, "parsers", "stray.yaml")
	if err := os.WriteFile(bad, []byte("name: me/stray\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := csconfig.Default()
	cfg.ConfigPaths.ConfigDir = conf
	cfg.ConfigPaths.HubDir = rules
	_, err := loadRules(cfg, log.WithField("test", t.Name()))
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "stage folder") {
		t.Fatalf("err %v, want the stray parser named", err)
	}
	cfg.Crowdsec.SkipBrokenRules = true
	rs, err := loadRules(cfg, log.WithField("test", t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if !slices.Contains(rs.Items.Collections, "rampart/sshd") || len(rs.Skipped) != 1 {
		t.Errorf("collections %v, skipped %v", rs.Items.Collections, rs.Skipped)
	}
}
