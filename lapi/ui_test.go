package lapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/capi"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/capitest"
	"github.com/rampart-ips/rampart/models"
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
		{"/ui/favicon.svg", "image/svg+xml"},
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
	Filter struct {
		Origin, List string
	} `json:"decisions_filter"`
	Origins []struct {
		Origin string
		Count  int64
		Types  map[string]int64
		Scopes map[string]int64
		Lists  []struct {
			Name   string
			Count  int64
			Types  map[string]int64
			Scopes map[string]int64
		}
	} `json:"decision_origins"`
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
		DroppedPackets          *int64     `json:"dropped_packets"`
		DroppedBytes            *int64     `json:"dropped_bytes"`
	}
	Agents []struct {
		Machine, Version string
		LastReport       *time.Time `json:"last_report"`
		Sources          []struct {
			Type, Source           string
			Read, Parsed, Unparsed int64
		}
		SourcesTruncated bool `json:"sources_truncated"`
	}
	Notifications []models.NotificationStatus
}

// usageWindow is one window of usage items, ending now.
func usageWindow(items ...*models.UsageItem) *models.UsageWindow {
	return &models.UsageWindow{Meta: models.UsageWindowMeta{WindowSizeSeconds: 1800, UtcNowTimestamp: time.Now().Unix()}, Items: items}
}

func dropped(packets, bytes float64, labels map[string]string) []*models.UsageItem {
	return []*models.UsageItem{
		{Name: models.UsageDropped, Unit: models.UsageUnitPacket, Value: packets, Labels: labels},
		{Name: models.UsageDropped, Unit: models.UsageUnitByte, Value: bytes, Labels: labels},
	}
}

// lines is what an agent reports for one source.
func lines(typ, source string, read, parsed, unparsed float64) []*models.UsageItem {
	l := map[string]string{"datasource_type": typ, "source": source}
	return []*models.UsageItem{
		{Name: models.UsageRead, Unit: models.UsageUnitLine, Value: read, Labels: l},
		{Name: models.UsageParsed, Unit: models.UsageUnitLine, Value: parsed, Labels: l},
		{Name: models.UsageUnparsed, Unit: models.UsageUnitLine, Value: unparsed, Labels: l},
	}
}

// pushBouncerUsage sends one usage report as the bouncer with key.
func (l *testLAPI) pushBouncerUsage(key string, windows ...*models.UsageWindow) {
	l.t.Helper()
	body := models.UsageMetrics{RemediationComponents: []*models.RemediationComponentUsage{{
		Type: "crowdsec-firewall-bouncer",
		BaseUsage: models.BaseUsage{Version: "v0.0.30", UtcStartupTimestamp: time.Now().Unix(), FeatureFlags: []string{},
			OS: &models.UsageOS{Name: "debian", Version: "12"}, Metrics: windows},
	}}}
	if r := l.send("POST", "/v1/usage-metrics", keyHdr(key), body); r.Status != 201 {
		l.t.Fatalf("bouncer usage metrics: %s", r)
	}
}

// pushAgentUsage sends one usage report as the machine holding token.
func (l *testLAPI) pushAgentUsage(token string, windows ...*models.UsageWindow) {
	l.t.Helper()
	body := models.UsageMetrics{LogProcessors: []*models.LogProcessorUsage{{
		BaseUsage: models.BaseUsage{Version: "v1.7.8", UtcStartupTimestamp: time.Now().Unix(), FeatureFlags: []string{},
			OS: &models.UsageOS{Name: "debian", Version: "12"}, Metrics: windows},
		HubItems: map[string][]models.UsageHubItem{}, Datasources: map[string]int{"file": 1},
	}}}
	if r := l.send("POST", "/v1/usage-metrics", hdr("Authorization", "Bearer "+token, "User-Agent", testUA), body); r.Status != 201 {
		l.t.Fatalf("agent usage metrics: %s", r)
	}
}

// machineToken registers machine id and logs it in.
func (l *testLAPI) machineToken(id string) string {
	l.t.Helper()
	l.addMachine(id, testPassword)
	status, body := l.do("POST", "/v1/watchers/login", map[string]string{"User-Agent": testUA},
		map[string]any{"machine_id": id, "password": testPassword})
	if status != 200 {
		l.t.Fatalf("login %s: %d %s", id, status, body)
	}
	var r models.WatcherAuthResponse
	if err := json.Unmarshal(body, &r); err != nil {
		l.t.Fatalf("login body: %v", err)
	}
	return r.Token
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
	if len(empty.Decisions) != 0 || len(empty.PerHour) != 24 || len(empty.Scenarios) != 0 || len(empty.Sources) != 0 ||
		len(empty.Bouncers) != 0 || len(empty.Agents) != 0 || empty.Notifications == nil || len(empty.Notifications) != 0 {
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
	// Counters are deltas per window and add up across reports and origins;
	// processed traffic and the active-decisions gauge are not drops.
	l.pushBouncerUsage(key, usageWindow(append(dropped(12, 3000, map[string]string{"origin": "cscli"}),
		append(dropped(30, 1608, map[string]string{"origin": "crowdsec"}),
			&models.UsageItem{Name: models.UsageProcessed, Unit: models.UsageUnitPacket, Value: 9000},
			&models.UsageItem{Name: models.UsageActiveDecisions, Unit: models.UsageUnitIP, Value: 5})...)...))
	l.pushBouncerUsage(key, usageWindow(dropped(5, 400, map[string]string{"origin": "cscli"})...))
	quiet := l.addBouncer("quiet") // reports, but dropped nothing
	l.pushBouncerUsage(quiet, usageWindow(&models.UsageItem{Name: models.UsageProcessed, Unit: models.UsageUnitPacket, Value: 10}))

	tok := l.login()
	l.pushAgentUsage(tok, usageWindow(append(lines("file", "/var/log/auth.log", 100, 80, 20),
		lines("journalctl", "journalctl-_SYSTEMD_UNIT=ssh.service", 7, 7, 0)...)...))
	l.pushAgentUsage(tok, usageWindow(append(lines("file", "/var/log/auth.log", 50, 50, 0),
		&models.UsageItem{Name: models.UsageWhitelisted, Unit: models.UsageUnitLine, Value: 3,
			Labels: map[string]string{"datasource_type": "file", "source": "/var/log/whitelisted-only.log"}})...))
	l.pushAgentUsage(l.machineToken("idle-agent")) // alive, reads nothing yet

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

	if len(s.Bouncers) != 3 || s.Bouncers[0].Name != "fw1" || s.Bouncers[0].LastPull == nil ||
		s.Bouncers[0].Type != "crowdsec-firewall-bouncer" || s.Bouncers[1].Name != "never-pulled" || s.Bouncers[1].LastPull != nil ||
		s.Bouncers[2].Name != "quiet" {
		t.Fatalf("bouncers: %+v", s.Bouncers)
	}
	if b := s.Bouncers[0]; b.DroppedPackets == nil || *b.DroppedPackets != 47 || b.DroppedBytes == nil || *b.DroppedBytes != 5008 {
		t.Errorf("fw1 dropped %v packets, %v bytes; want 47, 5008", deref(b.DroppedPackets), deref(b.DroppedBytes))
	}
	if b := s.Bouncers[1]; b.DroppedPackets != nil || b.DroppedBytes != nil {
		t.Errorf("never-pulled has drop totals without a report: %v, %v", deref(b.DroppedPackets), deref(b.DroppedBytes))
	}
	if b := s.Bouncers[2]; b.DroppedPackets == nil || *b.DroppedPackets != 0 || b.DroppedBytes == nil || *b.DroppedBytes != 0 {
		t.Errorf("quiet dropped %v packets, %v bytes; want 0, 0", deref(b.DroppedPackets), deref(b.DroppedBytes))
	}

	if len(s.Agents) != 2 {
		t.Fatalf("agents: %+v", s.Agents)
	}
	idle, a := s.Agents[0], s.Agents[1] // by name
	if idle.Machine != "idle-agent" || len(idle.Sources) != 0 || idle.Sources == nil || idle.LastReport == nil || time.Since(*idle.LastReport) > time.Minute {
		t.Errorf("idle agent: %+v", idle)
	}
	if a.Machine != testMachine || a.Version != "v1.7.8" || a.LastReport == nil || time.Since(*a.LastReport) > time.Minute || a.SourcesTruncated {
		t.Errorf("agent: %+v", a)
	}
	type src struct {
		Type, Source           string
		Read, Parsed, Unparsed int64
	}
	var srcs []src
	for _, x := range a.Sources {
		srcs = append(srcs, src(x))
	}
	want := []src{
		{"file", "/var/log/auth.log", 150, 130, 20},
		{"journalctl", "journalctl-_SYSTEMD_UNIT=ssh.service", 7, 7, 0},
	}
	if len(srcs) != len(want) || srcs[0] != want[0] || srcs[1] != want[1] {
		t.Errorf("agent sources %+v, want %+v", srcs, want)
	}

	// The summaries are cached between refreshes, but a new report shows
	// at the next one.
	l.pushBouncerUsage(key, usageWindow(dropped(3, 180, nil)...))
	if b := l.uiSummary().Bouncers[0]; b.DroppedPackets == nil || *b.DroppedPackets != 50 {
		t.Errorf("fw1 after another report: %v packets dropped, want 50", deref(b.DroppedPackets))
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestUIDecisionOrigins fills a LAPI from every origin (cscli, an agent's
// alert, a blocklist feed on loopback, the Central API's community list
// and one of its linked lists) and reads the dashboard: the counts by
// origin and list are exact, the decision list filters on them, and the
// notification (refused once by its webhook, then taking every message)
// shows its deliveries.
func TestUIDecisionOrigins(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	wh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls == 1 {
			http.Error(w, "not now", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(wh.Close)
	feed := newFeedServer(t)
	feed.set("", "203.0.113.1\n203.0.113.2\n203.0.113.64/26\n", "")
	l := notifyLAPI(t, wh.URL, "max_retry = 3\n", func(c *csconfig.Config) {
		c.Blocklists = []csconfig.Blocklist{blocklistCfg("feed", feed.URL)}
	})

	l.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"), manualAlert("192.0.2.16/28", "Range", "4h", "cscli"))
	l.push(agentAlert("198.51.100.9", "crowdsecurity/ssh-bf"))
	if status, _, msg := l.refreshLists(""); status != 200 {
		t.Fatalf("blocklist refresh: %d %s", status, msg)
	}
	cs := capitest.Start(t)
	cs.AddMachine("capi-login", "capi-password-0123456789")
	startup := capitest.Community("crowdsecurity/ssh-bf", 4, "24h")
	startup.Links = &capi.StreamLinks{Blocklists: []capi.BlocklistLink{{Name: "firehol", URL: cs.ListURL("firehol"),
		Remediation: "captcha", Scope: "ip", Duration: "24h"}}}
	cs.SetStartup(startup)
	cs.SetList("firehol", &capitest.List{Body: "192.0.2.200\n192.0.2.201\n"})
	client, err := capi.NewClient(capi.ClientConfig{URL: cs.URL(), Login: "capi-login", Password: "capi-password-0123456789",
		Scenarios: l.Store.MachineScenarios, Tokens: l.Store})
	if err != nil {
		t.Fatal(err)
	}
	svc := capi.New(capi.Options{Client: client, Store: l.Store, Filter: l.Server.FilterPulled, PullCommunity: true, PullBlocklists: true})
	if err := svc.Pull(context.Background(), true); err != nil {
		t.Fatalf("pulling from the Central API: %v", err)
	}

	s := l.uiSummary()
	type list struct {
		Name          string
		Count         int64
		Types, Scopes map[string]int64
	}
	type origin struct {
		Origin        string
		Count         int64
		Types, Scopes map[string]int64
		Lists         []list
	}
	type m = map[string]int64
	want := []origin{
		{"lists", 5, m{"ban": 3, "captcha": 2}, m{"Ip": 4, "Range": 1}, []list{
			{"lists:feed", 3, m{"ban": 3}, m{"Ip": 2, "Range": 1}},
			{"firehol", 2, m{"captcha": 2}, m{"Ip": 2}},
		}},
		{"CAPI", 4, m{"ban": 4}, m{"Ip": 4}, nil},
		{"cscli", 2, m{"ban": 2}, m{"Ip": 1, "Range": 1}, nil},
		{"crowdsec", 1, m{"ban": 1}, m{"Ip": 1}, nil},
	}
	var got []origin
	for _, o := range s.Origins {
		g := origin{o.Origin, o.Count, o.Types, o.Scopes, nil}
		for _, l := range o.Lists {
			g.Lists = append(g.Lists, list(l))
		}
		got = append(got, g)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("origins:\n%+v\nwant\n%+v", got, want)
	}
	if len(s.Decisions) != 12 || s.Filter.Origin != "" {
		t.Errorf("unfiltered: %d decisions, filter %+v", len(s.Decisions), s.Filter)
	}

	for _, tc := range []struct {
		query  string
		values []string
	}{
		{"?origin=cscli", []string{"192.0.2.16/28", "192.0.2.1"}},
		{"?origin=lists&list=firehol", []string{"192.0.2.201", "192.0.2.200"}},
		{"?origin=lists&list=lists:feed", []string{"203.0.113.64/26", "203.0.113.2", "203.0.113.1"}},
		{"?origin=crowdsec", []string{"198.51.100.9"}},
		{"?origin=nobody", nil},
		{"?list=firehol", nil}, // a list without its origin is no filter
	} {
		r := l.send("GET", "/ui/api/summary"+tc.query, hdr(), nil)
		var f uiSummaryReply
		if r.Status != 200 || json.Unmarshal(r.Body, &f) != nil {
			t.Fatalf("%s: %s", tc.query, r)
		}
		var vals []string
		for _, d := range f.Decisions {
			vals = append(vals, d.Value)
		}
		if tc.query == "?list=firehol" {
			if len(vals) != 12 || f.Filter.List != "" {
				t.Errorf("%s: %d decisions, filter %+v", tc.query, len(vals), f.Filter)
			}
			continue
		}
		// The order within one store call is the feed's or the pull's:
		// compare as sets, the newest call first being checked above.
		if !sameSet(vals, tc.values) || len(f.Origins) != 4 {
			t.Errorf("%s: decisions %q, want %q", tc.query, vals, tc.values)
		}
	}
	expectMsg(t, "long filter", l.send("GET", "/ui/api/summary?origin="+strings.Repeat("x", 300), hdr(), nil), 400,
		"origin and list are at most 256 bytes")

	// Two alerts matched the profile (an Ip scope; not the Range, nor the
	// pulled ones): the first message was refused once, then sent on its
	// retry.
	var n models.NotificationStatus
	eventually(t, "two messages delivered", func() bool {
		ns := l.uiSummary().Notifications
		if len(ns) != 1 {
			return false
		}
		n = ns[0]
		return n.Sent == 2 && n.Queued == 0
	})
	if n.Name != "hook" || n.Failed != 0 || n.Dropped != 0 || n.Retrying != 0 || n.LastSent == nil ||
		n.LastError != "HTTP status 503: not now" || n.LastErrorAt == nil || len(n.Recent) != 2 {
		t.Fatalf("notification: %+v", n)
	}
	// Newest first: the first message, retried, is the last row.
	for i, d := range n.Recent {
		wantAttempts := 1
		if i == 1 {
			wantAttempts = 2
		}
		if d.Alerts != 1 || d.Attempts != wantAttempts || d.Error != "" || d.At.IsZero() {
			t.Errorf("delivery %d: %+v, want 1 alert sent in %d attempts", i, d, wantAttempts)
		}
	}
	// GET /v1/notifications (cscli notifications list) says the same, to a
	// logged-in machine only.
	status, body := l.do("GET", "/v1/notifications", l.jwtHeaders(), nil)
	var api []models.NotificationStatus
	if status != 200 || json.Unmarshal(body, &api) != nil || len(api) != 1 || api[0].Sent != 2 || len(api[0].Recent) != 2 {
		t.Errorf("GET /v1/notifications: %d %s", status, body)
	}
	if status, _ := l.do("GET", "/v1/notifications", nil, nil); status != 401 {
		t.Errorf("GET /v1/notifications without a token: %d, want 401", status)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
