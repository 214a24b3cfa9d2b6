package lapi

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/csconfig"
)

func TestUIAccess(t *testing.T) {
	// Loopback is always trusted, so an untrusted caller is simulated
	// through a trusted proxy's X-Forwarded-For.
	l := startLAPI(t, func(c *csconfig.Config) {
		c.API.Server.UseForwardedForHeaders = true
		c.API.Server.TrustedProxies = []string{"127.0.0.1"}
		c.API.Server.TrustedIPs = []string{"198.51.100.0/24"}
	})
	for _, tc := range []struct{ path, ct string }{
		{"/ui", "text/html; charset=utf-8"},
		{"/ui/", "text/html; charset=utf-8"},
		{"/ui/app.js", "text/javascript; charset=utf-8"},
		{"/ui/style.css", "text/css; charset=utf-8"},
		{"/ui/api/summary", "application/json"},
	} {
		for _, from := range []string{"", "198.51.100.7"} {
			h := hdr()
			if from != "" {
				h = hdr("X-Forwarded-For", from)
			}
			r := l.send("GET", tc.path, h, nil)
			if r.Status != 200 || r.Header.Get("Content-Type") != tc.ct {
				t.Errorf("GET %s from %q: %s, content type %q, want 200 %q", tc.path, from, r, r.Header.Get("Content-Type"), tc.ct)
			}
			if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("GET %s: CSP %q", tc.path, csp)
			}
		}
		expectMsg(t, "untrusted "+tc.path, l.send("GET", tc.path, hdr("X-Forwarded-For", "203.0.113.1"), nil), 403,
			"access forbidden from this IP (203.0.113.1)")
	}
	if r := l.send("GET", "/ui/nope.txt", hdr(), nil); r.Status != 404 {
		t.Errorf("unknown asset: %s", r)
	}
	if r := l.send("GET", "/ui/../v1/heartbeat", hdr(), nil); r.Status == 200 && strings.Contains(string(r.Body), "heartbeat") {
		t.Errorf("path escape: %s", r)
	}
	page := string(l.send("GET", "/ui", hdr(), nil).Body)
	for _, bad := range []string{"http://", "https://", "//fonts", "innerHTML"} {
		if strings.Contains(page, bad) {
			t.Errorf("page references %q", bad)
		}
	}
	js := string(l.send("GET", "/ui/app.js", hdr(), nil).Body)
	if strings.Contains(js, "innerHTML") || strings.Contains(js, "https://") {
		t.Error("app.js uses innerHTML or an external URL")
	}
}

type uiSummaryReply struct {
	Decisions []struct {
		Value, Scope, Type, Scenario, Origin string
		ExpiresIn                            int64 `json:"expires_in"`
	}
	HourStart time.Time `json:"hour_start"`
	PerHour   []int64   `json:"alerts_per_hour"`
	Scenarios []struct {
		Name  string
		Count int64
	} `json:"top_scenarios"`
	Sources []struct {
		Name  string
		Count int64
	} `json:"top_sources"`
	Bouncers []struct {
		Name, IP, Type, Version string
		LastPull                *time.Time `json:"last_pull"`
	}
}

func (l *testLAPI) uiSummary() uiSummaryReply {
	l.t.Helper()
	r := l.send("GET", "/ui/api/summary", hdr(), nil)
	if r.Status != 200 {
		l.t.Fatalf("summary: %s", r)
	}
	var s uiSummaryReply
	if err := json.Unmarshal(r.Body, &s); err != nil {
		l.t.Fatalf("summary body: %v", err)
	}
	return s
}

func TestUISummary(t *testing.T) {
	l := startLAPI(t, nil)
	empty := l.uiSummary()
	if len(empty.Decisions) != 0 || len(empty.PerHour) != 24 || len(empty.Scenarios) != 0 || len(empty.Sources) != 0 || len(empty.Bouncers) != 0 {
		t.Fatalf("empty summary: %+v", empty)
	}

	before := time.Now()
	l.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"))
	l.push(manualAlert("192.0.2.2", "Ip", "1h", "cscli"))
	l.push(agentAlert("198.51.100.9", "crowdsecurity/ssh-bf"), agentAlert("198.51.100.9", "crowdsecurity/ssh-bf"),
		agentAlert("198.51.100.8", "crowdsecurity/ssh-bf"))
	after := time.Now()
	key := l.addBouncer("fw1")
	l.stream(key, "&startup=true")
	l.addBouncer("never-pulled")

	s := l.uiSummary()
	var got []string
	for _, d := range s.Decisions {
		got = append(got, d.Value)
	}
	// newest first (the default profile bans each agent alert's source)
	if strings.Join(got, ",") != "198.51.100.8,198.51.100.9,198.51.100.9,192.0.2.2,192.0.2.1" {
		t.Fatalf("decisions: %v", got)
	}
	if a := s.Decisions[0]; a.Scenario != "crowdsecurity/ssh-bf" || a.Origin != "crowdsec" || a.Type != "ban" {
		t.Errorf("agent decision row: %+v", a)
	}
	d := s.Decisions[3]
	if d.Scope != "Ip" || d.Type != "ban" || d.Scenario != "manual 'ban' from 'test'" || d.Origin != "cscli" ||
		!within(time.Duration(d.ExpiresIn)*time.Second, time.Hour, 10*time.Second) {
		t.Errorf("decision row: %+v", d)
	}
	if !within(time.Duration(s.Decisions[4].ExpiresIn)*time.Second, 4*time.Hour, 10*time.Second) {
		t.Errorf("second decision expires in %d s", s.Decisions[4].ExpiresIn)
	}

	var total int64
	for _, n := range s.PerHour {
		total += n
	}
	if total != 5 {
		t.Errorf("alerts per hour %v: total %d, want 5", s.PerHour, total)
	}
	// Unless the pushes straddled an hour boundary they all land in the
	// last bucket, which is the current hour.
	if before.Truncate(time.Hour).Equal(after.Truncate(time.Hour)) && s.PerHour[23] != 5 {
		t.Errorf("alerts per hour %v: want 5 in the last bucket", s.PerHour)
	}
	if !s.HourStart.Equal(time.Now().Truncate(time.Hour).Add(-23*time.Hour)) && !s.HourStart.Equal(after.Truncate(time.Hour).Add(-23*time.Hour)) {
		t.Errorf("hour_start %v", s.HourStart)
	}

	if len(s.Scenarios) != 2 || s.Scenarios[0].Name != "crowdsecurity/ssh-bf" || s.Scenarios[0].Count != 3 ||
		s.Scenarios[1].Name != "manual 'ban' from 'test'" || s.Scenarios[1].Count != 2 {
		t.Errorf("top scenarios: %+v", s.Scenarios)
	}
	if len(s.Sources) != 4 || s.Sources[0].Name != "198.51.100.9" || s.Sources[0].Count != 2 {
		t.Errorf("top sources: %+v", s.Sources)
	}

	if len(s.Bouncers) != 2 || s.Bouncers[0].Name != "fw1" || s.Bouncers[0].LastPull == nil ||
		s.Bouncers[0].Type != "crowdsec-firewall-bouncer" || s.Bouncers[1].Name != "never-pulled" || s.Bouncers[1].LastPull != nil {
		t.Errorf("bouncers: %+v", s.Bouncers)
	}
}

// TestUIHeadless renders the page in a real browser when one is installed.
func TestUIHeadless(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not on PATH")
	}
	l := startLAPI(t, nil)
	l.push(manualAlert("192.0.2.77", "Ip", "4h", "cscli"))
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
		"--user-data-dir="+t.TempDir(), "--dump-dom", l.URL+"/ui")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if !strings.Contains(string(out), "<td>192.0.2.77</td>") {
		t.Errorf("decision not rendered:\n%s", out)
	}
}
