package e2e

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/models"
)

// TestSimulationStory runs the appliance with the global simulation on and
// Rampart's http scenarios excluded from it (upstream's semantics: those
// are NOT simulated). An ssh brute force then raises an alert with a
// simulated decision that cscli shows and no bouncer ever gets: not the
// firewall bouncer, not a bouncer reading the stream or /v1/decisions over
// HTTP. A web scan from the same address, whose scenarios are excluded,
// ends in a real ban and dropped packets.
func TestSimulationStory(t *testing.T) {
	ns := nstest.NewPublicPair(t, 57)
	var httpScenarios []string
	for _, n := range []string{"admin-interface-probing", "backdoor-attempts", "bad-user-agent", "crawl-aggressive", "path-traversal",
		"probing", "sensitive-files", "sqli-probing", "xss-probing"} {
		httpScenarios = append(httpScenarios, fmt.Sprintf("%q", "rampart/http-"+n))
	}
	s := newStoryWith(t, ns, "../rules", storyOptions{
		simulation: "simulation = true\nexclusions = [" + strings.Join(httpScenarios, ", ") + "]\n"})
	att := ns.AttIP4.String()
	if st := s.cscli("simulation", "status"); !strings.Contains(st, "global simulation: enabled") || !strings.Contains(st, "rampart/http-probing") {
		t.Errorf("cscli simulation status:\n%s", st)
	}

	// the ssh brute force: an alert whose decisions are all simulated
	s.sshFailures(att, 10)
	var alerts []*models.Alert
	if !nstest.Eventually(15*time.Second, func() bool {
		alerts = nil
		out := strings.TrimSpace(s.cscli("alerts", "list", "-o", "json", "--ip", att))
		return out != "null" && json.Unmarshal([]byte(out), &alerts) == nil && len(alerts) > 0
	}) {
		t.Fatalf("no alert for %s\n%s", att, s.readLog("crowdsec"))
	}
	for _, a := range alerts {
		if !strings.HasPrefix(a.Scenario, "rampart/ssh") || !a.Simulated {
			t.Errorf("alert %d by %s: simulated %v; want a simulated ssh alert", a.ID, a.Scenario, a.Simulated)
		}
		if len(a.Decisions) == 0 {
			t.Errorf("alert %d by %s has no decision: the profiles must still apply", a.ID, a.Scenario)
		}
		for _, d := range a.Decisions {
			if d.Simulated == nil || !*d.Simulated {
				t.Errorf("decision %d of alert %d is not simulated", d.ID, a.ID)
			}
		}
	}
	if out := s.cscli("alerts", "list", "--ip", att); !strings.Contains(out, "(simul)ban") {
		t.Errorf("cscli alerts list does not mark the simulated ban:\n%s", out)
	}
	if out := s.cscli("decisions", "list", "--ip", att); !strings.Contains(out, "(simul)ban") {
		t.Errorf("cscli decisions list does not mark the simulated ban:\n%s", out)
	}

	// A manual ban on a bystander, made after the simulated decision: once
	// the firewall bouncer holds it, it has had the simulated one too, had
	// it been served.
	bystander := "198.51.100.77"
	s.cscli("decisions", "add", "-i", bystander, "-d", "1h")
	if !nstest.Eventually(15*time.Second, func() bool { return strings.Contains(s.ruleset(), bystander) }) {
		t.Fatalf("the bouncer never got the bystander's ban\n%s", s.ruleset())
	}
	if strings.Contains(s.ruleset(), att) {
		t.Errorf("the firewall holds the simulated ban on %s:\n%s", att, s.ruleset())
	}
	if code, err := s.get("/", "Mozilla/5.0"); err != nil || code != 200 {
		t.Errorf("attacker blocked by a simulated decision: %d %v", code, err)
	}

	// A bouncer reading over HTTP gets the bystander, never the attacker,
	// even when it asks for simulated decisions.
	key := strings.TrimSpace(s.cscli("bouncers", "add", "probe", "-o", "raw"))
	for _, path := range []string{"/v1/decisions/stream?startup=true", "/v1/decisions/stream?startup=true&simulated=true",
		"/v1/decisions?ip=" + att, "/v1/decisions?ip=" + att + "&simulated=true", "/v1/decisions?simulated=true"} {
		body := s.bouncerGet(key, path)
		if strings.Contains(body, att) {
			t.Errorf("GET %s serves the simulated decision on %s:\n%s", path, att, body)
		}
		if strings.Contains(path, "stream") && !strings.Contains(body, bystander) {
			t.Errorf("GET %s lacks the bystander's real ban:\n%s", path, body)
		}
	}

	// the web scan: excluded from the simulation, a real ban
	for i := 0; i < 60; i++ {
		paths := []string{fmt.Sprintf("/admin%d.php", i), "/.env", "/.git/config", fmt.Sprintf("/backup/db%d.sql", i)}
		if _, err := s.get(paths[i%len(paths)], "Mozilla/5.0 (scanner)"); err != nil {
			break
		}
	}
	if !nstest.Eventually(15*time.Second, s.curlTimesOut) {
		t.Fatalf("attacker not blocked after the web scan\n%s\n%s", s.ruleset(), s.readLog("crowdsec"))
	}
	real := false
	for _, d := range s.decisions() {
		if d.Value == att && strings.HasPrefix(d.Scenario, "rampart/http") {
			real = real || d.Simulated == nil || !*d.Simulated
		}
	}
	if !real {
		t.Errorf("no real http ban on %s in cscli decisions list", att)
	}

	// A support dump of the running appliance: its live metrics and
	// lists, and none of its secrets.
	zipPath := filepath.Join(s.dir, "support.zip")
	s.cscli("support", "dump", "-f", zipPath, "--journal-lines", "0")
	files := readZip(t, zipPath)
	creds, err := os.ReadFile(filepath.Join(s.dir, "creds.toml"))
	must(t, err)
	var c struct{ Password string }
	_, err = toml.Decode(string(creds), &c)
	must(t, err)
	bconf, err := os.ReadFile(filepath.Join(s.dir, "bouncer.toml"))
	must(t, err)
	var bc struct {
		APIKey string `toml:"api_key"`
	}
	_, err = toml.Decode(string(bconf), &bc)
	must(t, err)
	for name, secret := range map[string]string{"machine password": c.Password, "firewall bouncer key": bc.APIKey, "probe bouncer key": key} {
		if len(secret) < 8 {
			t.Fatalf("%s %q: too short to search for", name, secret)
		}
		for f, data := range files {
			if strings.Contains(data, secret) {
				t.Errorf("%s holds the %s", f, name)
			}
		}
	}
	for f, want := range map[string]string{
		"metrics/crowdsec.prom":       "cs_active_decisions",
		"cscli/bouncers-list.txt":     "probe",
		"cscli/machines-list.txt":     "story",
		"cscli/lapi-status.txt":       "You can successfully interact with Local API (LAPI)",
		"cscli/simulation-status.txt": "global simulation: enabled",
		"config/acquis.d/story.toml":  "syslog",
	} {
		if !strings.Contains(files[f], want) {
			t.Errorf("support dump: %s lacks %q:\n%s", f, want, files[f])
		}
	}
}

// readZip returns a zip's files by name.
func readZip(t *testing.T, path string) map[string]string {
	t.Helper()
	zr, err := zip.OpenReader(path)
	must(t, err)
	defer zr.Close()
	out := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		must(t, err)
		b, err := io.ReadAll(rc)
		rc.Close()
		must(t, err)
		out[f.Name] = string(b)
	}
	return out
}

// bouncerGet makes a bouncer's request to the LAPI from the defender
// namespace and returns the body.
func (s *story) bouncerGet(key, path string) string {
	s.t.Helper()
	out, err := s.ns.Command(context.Background(), s.ns.Defender, "curl", "-sf", "-H", "X-Api-Key: "+key, "http://127.0.0.1:8080"+path).Output()
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	return string(out)
}
