package capi_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ips/rampart/capi"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/capitest"
	"github.com/rampart-ips/rampart/internal/testdb"
	"github.com/rampart-ips/rampart/lapi"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// Signals posted while CAPI is down wait in the database, survive a LAPI
// restart, and all arrive once CAPI is back: none lost, none twice, at
// most 50 per POST.
func TestSignalsSurviveOutageAndRestart(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetDown(true)
	dbPath := filepath.Join(t.TempDir(), "crowdsec.db")
	r := startRig(t, dbPath, cs, nil)
	r.addAgent("crowdsecurity/ssh-bf")
	const n = 120
	var batch []*models.Alert
	for i := 0; i < n; i++ {
		batch = append(batch, alert(fmt.Sprintf("192.0.2.%d", i), i))
	}
	if _, err := r.agent().PushAlerts(context.Background(), batch[:70]); err != nil {
		t.Fatal(err)
	}
	// The service tried (and failed) while CAPI was down.
	waitFor(t, "a refused login", func() bool { return cs.Requests("/v3/watchers/login") >= 3 })
	r.Stop()
	r = startRig(t, dbPath, cs, nil)
	if _, err := r.agent().PushAlerts(context.Background(), batch[70:]); err != nil {
		t.Fatal(err)
	}
	if q, err := r.Store.SignalQueueLen(context.Background()); err != nil || q != n {
		t.Fatalf("queued signals = %d, %v; want %d", q, err, n)
	}
	cs.SetDown(false)
	waitFor(t, "every signal", func() bool { return len(cs.Signals()) >= n })
	waitFor(t, "an empty queue", func() bool { q, _ := r.Store.SignalQueueLen(context.Background()); return q == 0 })
	seen := map[string]bool{}
	for _, s := range cs.Signals() {
		if seen[s.UUID] {
			t.Errorf("signal %s sent twice", s.UUID)
		}
		seen[s.UUID] = true
		if s.ScenarioTrust != capi.TrustCertified || s.MachineID != agentID || s.Source.Value == "" || len(s.Decisions) != 1 || s.Context != nil {
			t.Errorf("signal %+v", s)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct signals, want %d", len(seen), n)
	}
	for _, p := range cs.SignalPosts() {
		if p > 50 {
			t.Errorf("a POST carried %d signals, want at most 50", p)
		}
	}
	for _, ua := range cs.UserAgents() {
		if !strings.HasPrefix(ua, "crowdsec/") || !strings.HasSuffix(ua, "-linux") {
			t.Errorf("User-Agent %q", ua)
		}
	}
}

// A refused token (401) leads to a new login and the signals still go;
// 429 and 503 are waited out; the token is kept across a restart.
func TestReloginAndBusy(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	dbPath := filepath.Join(t.TempDir(), "crowdsec.db")
	r := startRig(t, dbPath, cs, func(o *capi.Options) { o.PushInterval = time.Hour })
	r.addAgent("crowdsecurity/ssh-bf", "crowdsecurity/http-probing")
	ctx := context.Background()
	if _, err := r.agent().PushAlerts(ctx, []*models.Alert{alert("192.0.2.1", 1)}); err != nil {
		t.Fatal(err)
	}
	if err := r.Svc.PushSignals(ctx); err != nil {
		t.Fatal(err)
	}
	logins := len(cs.Logins())
	if logins == 0 || len(cs.Signals()) != 1 {
		t.Fatalf("logins %d, signals %d", logins, len(cs.Signals()))
	}
	cs.RevokeTokens()
	cs.Fail("/v3/signals", http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout)
	if _, err := r.agent().PushAlerts(ctx, []*models.Alert{alert("192.0.2.2", 2)}); err != nil {
		t.Fatal(err)
	}
	if err := r.Svc.PushSignals(ctx); err != nil {
		t.Fatal(err)
	}
	if len(cs.Signals()) != 2 || len(cs.Logins()) != logins+1 {
		t.Fatalf("signals %d (want 2), logins %d (want %d)", len(cs.Signals()), len(cs.Logins()), logins+1)
	}
	// The login sends the union of the machines' scenarios.
	if sc := cs.Logins()[logins].Scenarios; strings.Join(sc, ",") != "crowdsecurity/http-probing,crowdsecurity/ssh-bf" {
		t.Errorf("login scenarios %v", sc)
	}
	// A restart reuses the stored token: no login.
	logins = len(cs.Logins())
	r.Stop()
	r = startRig(t, dbPath, cs, func(o *capi.Options) { o.PushInterval = time.Hour })
	if _, err := r.agent().PushAlerts(ctx, []*models.Alert{alert("192.0.2.3", 3)}); err != nil {
		t.Fatal(err)
	}
	if err := r.Svc.PushSignals(ctx); err != nil {
		t.Fatal(err)
	}
	if len(cs.Signals()) != 3 || len(cs.Logins()) != logins {
		t.Fatalf("after restart: signals %d (want 3), logins %d (want %d)", len(cs.Signals()), len(cs.Logins()), logins)
	}
}

// The trust classification and console options decide what is shared;
// simulated alerts never are.
func TestSharePolicy(t *testing.T) {
	base := func() *models.Alert {
		return &models.Alert{Scenario: "s", ScenarioHash: "h", ScenarioVersion: "1", Source: &models.Source{Scope: "Ip", Value: "192.0.2.1"},
			Meta: []models.Meta{{Key: "k", Value: `["v"]`}}}
	}
	ban := []*models.Decision{{Origin: "crowdsec", Type: "ban", Scope: "Ip", Value: "192.0.2.1", Duration: "4h"}}
	manual := []*models.Decision{{Origin: "cscli", Type: "ban", Scope: "Ip", Value: "192.0.2.1", Duration: "4h"}}
	def := capi.SharePolicy{}
	def.Console.Custom, def.Console.Tainted = true, true
	cases := []struct {
		name   string
		mod    func(*models.Alert)
		ds     []*models.Decision
		pol    capi.SharePolicy
		trust  string
		shared bool
	}{
		{"certified", nil, ban, def, capi.TrustCertified, true},
		{"custom", func(a *models.Alert) { a.ScenarioHash = "" }, ban, def, capi.TrustCustom, true},
		{"tainted", func(a *models.Alert) { a.ScenarioVersion = "?" }, ban, def, capi.TrustTainted, true},
		{"manual off by default", nil, manual, def, capi.TrustManual, false},
		{"manual shared", nil, manual, capi.SharePolicy{Console: struct{ Manual, Custom, Tainted, Context, Management bool }{Manual: true}}, capi.TrustManual, true},
		{"custom off", func(a *models.Alert) { a.ScenarioHash = "" }, ban, capi.SharePolicy{}, capi.TrustCustom, false},
		{"simulated", func(a *models.Alert) { a.Simulated = true }, ban, def, capi.TrustCertified, false},
	}
	for _, c := range cases {
		a := base()
		if c.mod != nil {
			c.mod(a)
		}
		view := *a
		view.Decisions = c.ds
		if got := capi.Trust(&view); got != c.trust {
			t.Errorf("%s: trust %s, want %s", c.name, got, c.trust)
		}
		body := c.pol.Encode(a, c.ds, "m", "u", time.Now())
		if (body != nil) != c.shared {
			t.Errorf("%s: shared = %v, want %v", c.name, body != nil, c.shared)
		}
		if body != nil && !strings.Contains(string(body), `"context":null`) {
			t.Errorf("%s: context not null without share_context: %s", c.name, body)
		}
	}
	ctxPol := def
	ctxPol.Console.Context = true
	if body := ctxPol.Encode(base(), ban, "m", "u", time.Now()); !strings.Contains(string(body), `"context":[{"key":"k","value":"[\"v\"]"}]`) {
		t.Errorf("share_context: %s", body)
	}
	if body := def.Encode(base(), nil, "m", "u", time.Now()); strings.Contains(string(body), `"decisions"`) {
		t.Errorf("decisions not omitted when empty: %s", body)
	}
}

// The community pull reaches a bouncer with upstream's origin and
// scenario; allowlisted addresses and ranges overlapping them never do;
// linked lists are stored with origin lists, a failing list does not stop
// the next one, and an unchanged list answers 304.
func TestCommunityPull(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	startup := capi.StreamResponse{
		New: []capi.StreamGroup{
			{Scenario: "crowdsecurity/ssh-bf", Scope: "ip", Decisions: []capi.StreamDecision{
				{Value: "198.51.100.1", Duration: "24h"}, {Value: "198.51.100.2", Duration: "24h"},
				{Value: "203.0.113.7", Duration: "24h"}, // allowlisted by 203.0.113.0/24
				{Value: "not-an-ip", Duration: "24h"}, {Value: "198.51.100.3", Duration: "bogus"}}},
			{Scenario: "crowdsecurity/http-probing", Scope: "range", Decisions: []capi.StreamDecision{
				{Value: "192.0.2.0/24", Duration: "12h"},
				{Value: "100.64.0.0/16", Duration: "12h"}}}, // holds the allowlisted 100.64.1.1
		},
		Links: &capi.StreamLinks{Blocklists: []capi.BlocklistLink{
			{Name: "broken", URL: cs.ListURL("broken"), Remediation: "ban", Scope: "ip", Duration: "24h"},
			{Name: "mylist", URL: cs.ListURL("mylist"), Remediation: "captcha", Scope: "ip", Duration: "24h"},
		}},
	}
	cs.SetStartup(startup)
	cs.SetStream(capi.StreamResponse{Links: startup.Links})
	cs.SetList("broken", &capitest.List{Status: http.StatusInternalServerError})
	cs.SetList("mylist", &capitest.List{Body: "# a comment\n233.252.0.1\n\n233.252.0.2\nbad line\n", Modified: time.Now().Add(-time.Hour)})
	dbPath := filepath.Join(t.TempDir(), "crowdsec.db")
	r := startRig(t, dbPath, cs, func(o *capi.Options) { o.MinPullGap = -1 })
	ctx := context.Background()
	if err := r.Store.CreateAllowlist(ctx, "mine", ""); err != nil {
		t.Fatal(err)
	}
	if err := r.Store.AddAllowlistItems(ctx, "mine", []string{"203.0.113.0/24", "100.64.1.1"}, "", nil); err != nil {
		t.Fatal(err)
	}
	b := r.bouncer("fw")
	// No agent yet: no pull. Then an agent logs in and the pull runs.
	r.addAgent("crowdsecurity/ssh-bf")
	waitFor(t, "the blocklist", func() bool { return cs.GetList("mylist").Fetches >= 1 && len(streamValues(t, b)) >= 5 })
	got := streamValues(t, b)
	want := map[string][3]string{
		"198.51.100.1": {"CAPI", "crowdsecurity/ssh-bf", "ban"},
		"198.51.100.2": {"CAPI", "crowdsecurity/ssh-bf", "ban"},
		"192.0.2.0/24": {"CAPI", "crowdsecurity/http-probing", "ban"},
		"233.252.0.1":  {"lists", "mylist", "captcha"},
		"233.252.0.2":  {"lists", "mylist", "captcha"},
	}
	for v, w := range want {
		d, ok := got[v]
		if !ok {
			t.Errorf("%s missing from the bouncer stream", v)
			continue
		}
		if d.Origin != w[0] || d.Scenario != w[1] || d.Type != w[2] {
			t.Errorf("%s: origin %s scenario %s type %s, want %v", v, d.Origin, d.Scenario, d.Type, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("bouncer holds %d decisions, want %d: %v", len(got), len(want), got)
	}
	if q := cs.Queries(); len(q) == 0 || q[0] != "startup=true" {
		t.Errorf("first stream query %v, want startup=true", q)
	}
	// Second pull: a delta (no startup), the list not modified.
	if err := r.Svc.Pull(ctx, false); err != nil {
		t.Fatal(err)
	}
	if q := cs.Queries(); q[len(q)-1] != "" {
		t.Errorf("second stream query %q, want none", q[len(q)-1])
	}
	if l := cs.GetList("mylist"); l.NotMod != 1 {
		t.Errorf("mylist: %d fetches, %d answered 304; want one 304", l.Fetches, l.NotMod)
	}
	if n := r.Svc.Stats.ListsFailed.Load(); n != 2 {
		t.Errorf("%d list failures, want 2 (broken, twice)", n)
	}
	// The alerts are stored as upstream stores them.
	alerts, err := r.Store.QueryAlerts(ctx, store.AlertFilter{IncludeCAPI: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	scopes := map[string]string{}
	for _, a := range alerts {
		scopes[a.Source.Scope] = a.Scenario
	}
	if scopes[store.CommunitySourceScope] != "update : +3/-0 IPs" || scopes["lists:mylist"] != "update : +2/-0 IPs" {
		t.Errorf("pull alerts %v", scopes)
	}
}

// A failing pull leaves what is enforced in place; CAPI's explicit
// deletions end the decisions they name and reach the bouncer.
func TestFailingPullKeepsDecisionsAndDeletions(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetStartup(capitest.Community("crowdsecurity/ssh-bf", 10, "24h"))
	r := startRig(t, filepath.Join(t.TempDir(), "crowdsec.db"), cs, func(o *capi.Options) { o.PullInterval = 20 * time.Millisecond; o.MinPullGap = -1 })
	b := r.bouncer("fw")
	r.addAgent("crowdsecurity/ssh-bf")
	waitFor(t, "the community list", func() bool { return len(streamValues(t, b)) == 10 })
	cs.SetDown(true)
	fails := r.Svc.Stats.PullFailures.Load()
	waitFor(t, "failed pulls", func() bool { return r.Svc.Stats.PullFailures.Load() >= fails+2 })
	if n := len(streamValues(t, b)); n != 10 {
		t.Fatalf("after failed pulls the bouncer holds %d decisions, want 10", n)
	}
	cs.SetStream(capi.StreamResponse{Deleted: []capi.DeletedGroup{{Scope: "ip", Decisions: []string{"10.0.0.1", "10.0.0.2"}}}})
	cs.SetDown(false)
	waitFor(t, "the deletions", func() bool { return len(streamValues(t, b)) == 8 })
	got := streamValues(t, b)
	if _, ok := got["10.0.0.1"]; ok {
		t.Error("10.0.0.1 still held")
	}
}

// The LAPI starts and takes alerts while CAPI is down, and pulls once it
// is back.
func TestLAPIStartsWhileCAPIDown(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetDown(true)
	cs.SetStartup(capitest.Community("crowdsecurity/ssh-bf", 3, "24h"))
	r := startRig(t, filepath.Join(t.TempDir(), "crowdsec.db"), cs, nil)
	r.addAgent("crowdsecurity/ssh-bf")
	if _, err := r.agent().PushAlerts(context.Background(), []*models.Alert{alert("192.0.2.9", 1)}); err != nil {
		t.Fatalf("the LAPI does not take alerts while CAPI is down: %v", err)
	}
	b := r.bouncer("fw")
	if n := len(streamValues(t, b)); n != 1 {
		t.Fatalf("bouncer holds %d, want the local ban", n)
	}
	cs.SetDown(false)
	waitFor(t, "the pull after the outage", func() bool { return len(streamValues(t, b)) == 4 })
	waitFor(t, "the signal", func() bool { return len(cs.Signals()) == 1 })
}

// Metrics list the machines and bouncers.
func TestMetrics(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	r := startRig(t, filepath.Join(t.TempDir(), "crowdsec.db"), cs, nil)
	r.addAgent("crowdsecurity/ssh-bf")
	r.bouncer("fw")
	if err := r.Svc.SendMetrics(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The routine's own first report may land after ours: look for ours.
	for _, m := range cs.Metrics() {
		if len(m.Bouncers) == 1 {
			if m.ApilVersion != "test" || len(m.Machines) != 1 || m.Machines[0].Name != agentID || m.Bouncers[0].CustomName != "fw" ||
				m.Machines[0].LastPush != "0001-01-01T00:00:00Z" || m.Bouncers[0].LastPull != "" {
				t.Errorf("metrics %+v", m)
			}
			return
		}
	}
	t.Errorf("no metrics with the bouncer: %+v", cs.Metrics())
}

// Setup: no section, a missing or empty credentials file turn CAPI off
// (no error: packages ship an empty file); a broken file is an error;
// sharing off gives no signal policy.
func TestSetup(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), store.Config{Path: filepath.Join(dir, "crowdsec.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := csconfig.Default()
	cfg.API.Server.ConsolePath = filepath.Join(dir, "console.yaml")
	if svc, _, err := capi.Setup(cfg, st, nil); svc != nil || err != nil {
		t.Errorf("no online_client: %v, %v", svc, err)
	}
	creds := filepath.Join(dir, "online_api_credentials.yaml")
	cfg.API.Server.OnlineClient = &csconfig.OnlineClient{CredentialsPath: creds}
	if svc, _, err := capi.Setup(cfg, st, nil); svc != nil || err != nil {
		t.Errorf("missing credentials: %v, %v", svc, err)
	}
	for body, wantErr := range map[string]bool{"": false, "url: https://a/\n": false, "bogus: [": true} {
		if err := os.WriteFile(creds, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		svc, _, err := capi.Setup(cfg, st, nil)
		if svc != nil || (err != nil) != wantErr {
			t.Errorf("credentials %q: %v, %v", body, svc, err)
		}
	}
	if err := os.WriteFile(creds, []byte("url: https://a/\nlogin: l\npassword: p\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if svc, pol, err := capi.Setup(cfg, st, nil); svc == nil || pol == nil || err != nil || !pol.Console.Custom {
		t.Errorf("complete credentials: %v, %v, %v", svc, pol, err)
	}
	cfg.API.Server.OnlineClient.Sharing = new(bool)
	if svc, pol, err := capi.Setup(cfg, st, nil); svc == nil || pol != nil || err != nil {
		t.Errorf("sharing off: %v, %v, %v", svc, pol, err)
	}
}

// Console allowlists linked by the pull are stored as allowlists, keep the
// pull's own decisions off their entries (ranges included), and end the
// active decisions they cover, local ones too; expired entries are not
// kept.
func TestConsoleAllowlist(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetList("console-al", &capitest.List{Modified: time.Now(), Body: `{"value":"198.51.100.2","description":"partner","expiration":"","created_at":"2026-01-01T00:00:00Z"}
{"value":"192.0.2.128/25","description":"office"}
{"value":"203.0.113.5","description":"gone","expiration":"2020-01-01T00:00:00Z"}
{"value":"nonsense"}
`})
	cs.SetStartup(capi.StreamResponse{
		New: []capi.StreamGroup{
			{Scenario: "crowdsecurity/ssh-bf", Scope: "Ip", Decisions: []capi.StreamDecision{{Value: "198.51.100.1", Duration: "24h"}, {Value: "198.51.100.2", Duration: "24h"}}},
			{Scenario: "crowdsecurity/ssh-bf", Scope: "Range", Decisions: []capi.StreamDecision{{Value: "192.0.2.0/24", Duration: "24h"}}},
		},
		Links: &capi.StreamLinks{Allowlists: []capi.AllowlistLink{{ID: "1", Name: "console-al", Description: "from the console", URL: cs.ListURL("console-al")}}},
	})
	r := startRig(t, filepath.Join(t.TempDir(), "crowdsec.db"), cs, nil)
	b := r.bouncer("fw")
	r.addAgent() // scenarios come later: no pull yet
	ctx := context.Background()
	// A local ban the console allowlist covers.
	if _, err := r.agent().PushAlerts(ctx, []*models.Alert{alert("192.0.2.200", 1)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := streamValues(t, b)["192.0.2.200"]; !ok {
		t.Fatal("local ban missing")
	}
	r.addAgent("crowdsecurity/ssh-bf")
	waitFor(t, "the pull and the allowlist applied", func() bool {
		got := streamValues(t, b)
		_, pulled := got["198.51.100.1"]
		_, local := got["192.0.2.200"]
		return pulled && !local
	})
	got := streamValues(t, b)
	if len(got) != 1 {
		t.Errorf("bouncer holds %v, want only 198.51.100.1", got)
	}
	lists, err := r.Store.ListAllowlists(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, l := range lists {
		if l.Name == "console-al" {
			for _, it := range l.Items {
				vals = append(vals, it.Value)
			}
		}
	}
	if strings.Join(vals, ",") != "198.51.100.2,192.0.2.128/25" {
		t.Errorf("console allowlist holds %v", vals)
	}
}

// Two LAPIs of one database send each queued signal once, and pull the
// community list once at a time.
func TestTwoLAPIsOneDatabase(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetStartup(capitest.Community("crowdsecurity/ssh-bf", 50, "24h"))
	dbPath := filepath.Join(t.TempDir(), "crowdsec.db")
	r1 := startRig(t, dbPath, cs, func(o *capi.Options) { o.PushInterval = time.Millisecond; o.RetryMin = time.Millisecond })
	r2 := startRig(t, dbPath, cs, func(o *capi.Options) { o.PushInterval = time.Millisecond; o.RetryMin = time.Millisecond })
	r1.addAgent("crowdsecurity/ssh-bf")
	const n = 300
	for i := 0; i < n; i += 30 {
		var batch []*models.Alert
		for j := i; j < i+30; j++ {
			batch = append(batch, alert(fmt.Sprintf("192.0.%d.%d", 2+j/250, j%250), j))
		}
		via := r1
		if i%60 == 0 {
			via = r2
		}
		if _, err := via.agent().PushAlerts(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every signal", func() bool {
		q, _ := r1.Store.SignalQueueLen(context.Background())
		return q == 0 && len(cs.Signals()) >= n
	})
	seen := map[string]int{}
	for _, s := range cs.Signals() {
		seen[s.UUID]++
	}
	for u, k := range seen {
		if k > 1 {
			t.Errorf("signal %s sent %d times", u, k)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct signals, want %d", len(seen), n)
	}
	waitFor(t, "the pull", func() bool { c, _ := r1.Store.ActiveDecisionCount(context.Background()); return c >= n+50 })
	if q := cs.Queries(); len(q) != 1 {
		// The second LAPI skips: its pull is within 1h30 of the first.
		t.Errorf("%d stream requests, want 1: %v", len(q), q)
	}
}

// The service's Prometheus metrics count what it did and read the queue.
func TestPrometheusMetrics(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetDown(true)
	r := startRig(t, filepath.Join(t.TempDir(), "crowdsec.db"), cs, nil)
	reg := prometheus.NewRegistry()
	if err := r.Svc.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	r.addAgent("crowdsecurity/ssh-bf")
	if _, err := r.agent().PushAlerts(context.Background(), []*models.Alert{alert("192.0.2.1", 1), alert("192.0.2.2", 2)}); err != nil {
		t.Fatal(err)
	}
	value := func(name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				if m.GetGauge() != nil {
					return m.GetGauge().GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	if q := value("cs_capi_signals_queued"); q != 2 {
		t.Errorf("queued %v, want 2", q)
	}
	waitFor(t, "a failed pull", func() bool { return value("cs_capi_pull_failures_total") >= 1 })
	cs.SetDown(false)
	waitFor(t, "the signals sent", func() bool { return value("cs_capi_signals_sent_total") == 2 && value("cs_capi_signals_queued") == 0 })
}

// A new machine is reported at once, not at the next 30 min tick.
func TestMetricsOnNewMachine(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	r := startRig(t, filepath.Join(t.TempDir(), "crowdsec.db"), cs, func(o *capi.Options) { o.MetricsInterval, o.MachineCheck = time.Hour, 10*time.Millisecond })
	waitFor(t, "the first metrics", func() bool { return len(cs.Metrics()) >= 1 })
	r.addAgent("crowdsecurity/ssh-bf")
	waitFor(t, "metrics naming the new machine", func() bool {
		m := cs.Metrics()
		return len(m[len(m)-1].Machines) == 1
	})
}

// Usage reports the components sent the LAPI go to CAPI once each: kept
// after a failure, marked sent after a success or a 422.
func TestUsageMetrics(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	r := startRig(t, filepath.Join(t.TempDir(), "crowdsec.db"), cs, func(o *capi.Options) { o.ConsoleOptions = "custom,tainted" })
	ctx := context.Background()
	b := r.bouncer("fw")
	report := func(dropped float64) {
		t.Helper()
		body := models.UsageMetrics{RemediationComponents: []*models.RemediationComponentUsage{{Type: "crowdsec-firewall-bouncer",
			BaseUsage: models.NewBaseUsage("v0.0.1", &models.UsageOS{Name: "Debian", Version: "12"}, time.Now().Unix(), 1800, time.Now().Unix(),
				[]*models.UsageItem{{Name: models.UsageDropped, Value: dropped, Unit: models.UsageUnitPacket}})}}}
		if err := b.UsageMetrics(ctx, body); err != nil {
			t.Fatal(err)
		}
	}
	report(5)
	cs.Fail("/v3/usage-metrics", http.StatusInternalServerError)
	if err := r.Svc.SendUsageMetrics(ctx); err == nil {
		t.Fatal("a 500 was taken for a success")
	}
	report(7)
	if err := r.Svc.SendUsageMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	u := cs.Usage()
	if len(u) != 1 || len(u[0].RemediationComponents) != 1 {
		t.Fatalf("usage %+v", u)
	}
	rc := u[0].RemediationComponents[0]
	if rc.Name != "fw" || rc.Type != "crowdsec-firewall-bouncer" || len(rc.Metrics) != 2 || rc.Metrics[1].Items[0].Value != 7 || rc.OS.Name != "Debian" {
		t.Errorf("component %+v", rc)
	}
	if u[0].LAPI.ConsoleOptions[0] != "custom,tainted" || u[0].LogProcessors == nil {
		t.Errorf("lapi %+v", u[0].LAPI)
	}
	// Sent: not again.
	if err := r.Svc.SendUsageMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	if u := cs.Usage(); len(u) != 2 || len(u[1].RemediationComponents) != 0 {
		t.Errorf("second send %+v", u[len(u)-1])
	}
	report(9)
	cs.Fail("/v3/usage-metrics", http.StatusUnprocessableEntity)
	if err := r.Svc.SendUsageMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Svc.SendUsageMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	if u := cs.Usage(); len(u) != 3 || len(u[2].RemediationComponents) != 0 {
		t.Errorf("after a 422 the reports were sent again: %+v", u[len(u)-1])
	}
}

// The runner starts the service once credentials appear (a reload after
// cscli capi register), replaces it on each reload, and -no-capi wins.
func TestRunnerReload(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(dir, "crowdsec.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := csconfig.Default()
	cfg.DBConfig.DBPath = filepath.Join(dir, "crowdsec.db")
	cfg.API.Server.ConsolePath = filepath.Join(dir, "console.yaml")
	creds := filepath.Join(dir, "online_api_credentials.yaml")
	cfg.API.Server.OnlineClient = &csconfig.OnlineClient{CredentialsPath: creds, SignalQueueMax: 10}
	srv, err := lapi.New(ctx, cfg, st, profiles.Default())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r := &capi.Runner{St: st, Filter: srv.FilterPulled, Share: srv, Reg: reg}
	defer r.Stop()
	if err := r.Apply(ctx, cfg); err != nil || r.Service() != nil {
		t.Fatalf("without credentials: %v, %v", r.Service(), err)
	}
	if err := os.WriteFile(creds, []byte("url: "+cs.URL()+"\nlogin: "+capiLogin+"\npassword: "+capiPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a second reload replaces the service, metrics included
		if err := r.Apply(ctx, cfg); err != nil || r.Service() == nil {
			t.Fatalf("with credentials: %v, %v", r.Service(), err)
		}
	}
	waitFor(t, "the metrics sent", func() bool { return len(cs.Metrics()) >= 1 })
	mfs, err := reg.Gather()
	if err != nil || len(mfs) == 0 {
		t.Errorf("metrics after two reloads: %d, %v", len(mfs), err)
	}
	r.Off = true
	if err := r.Apply(ctx, cfg); err != nil || r.Service() != nil {
		t.Fatalf("-no-capi: %v, %v", r.Service(), err)
	}
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Errorf("metrics left registered: %d", len(mfs))
	}
}

// A stored token is reused only by the login it was issued to: new
// credentials log in.
func TestStoredTokenIsPerLogin(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	cs.AddMachine("other", "other-password")
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(t.TempDir(), "crowdsec.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i, login := range []string{capiLogin, capiLogin, "other"} {
		pw := capiPassword
		if login == "other" {
			pw = "other-password"
		}
		c, err := capi.NewClient(capi.ClientConfig{URL: cs.URL(), Login: login, Password: pw, Tokens: st})
		if err != nil {
			t.Fatal(err)
		}
		svc := capi.New(capi.Options{Client: c, Store: st})
		if err := svc.SendMetrics(ctx); err != nil {
			t.Fatal(err)
		}
		if want := []int{1, 1, 2}[i]; len(cs.Logins()) != want {
			t.Errorf("client %d (%s): %d logins, want %d", i, login, len(cs.Logins()), want)
		}
	}
}

// A pull the database fails to store asks for the whole list again next
// time (startup=true), and stores it then.
func TestFailedStoreAsksForStartupAgain(t *testing.T) {
	testdb.SkipUnlessSQLite(t, "breaks the database with a SQLite trigger")
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetStartup(capitest.Community("crowdsecurity/ssh-bf", 20, "24h"))
	r := startRig(t, filepath.Join(t.TempDir(), "crowdsec.db"), cs, func(o *capi.Options) { o.MinPullGap = -1 })
	ctx := context.Background()
	if err := r.Store.ExecForTest(`CREATE TRIGGER capi_test_fail BEFORE INSERT ON decisions BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
		t.Fatal(err)
	}
	if err := r.Svc.Pull(ctx, true); err == nil {
		t.Fatal("the pull succeeded with a failing database")
	}
	if err := r.Store.ExecForTest(`DROP TRIGGER capi_test_fail`); err != nil {
		t.Fatal(err)
	}
	if err := r.Svc.Pull(ctx, true); err != nil {
		t.Fatal(err)
	}
	if q := cs.Queries(); len(q) != 2 || q[1] != "startup=true" {
		t.Errorf("queries %v, want startup=true twice", q)
	}
	if n, err := r.Store.ActiveDecisionCount(ctx); err != nil || n != 20 {
		t.Errorf("%d active decisions, %v; want 20", n, err)
	}
}

// Past signal_queue_max the oldest signals go, counted; the newest arrive.
func TestSignalQueueBound(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetDown(true)
	r := startRig(t, filepath.Join(t.TempDir(), "crowdsec.db"), cs, func(o *capi.Options) { o.QueueMax = 5 })
	r.addAgent()
	var batch []*models.Alert
	for i := range 8 {
		batch = append(batch, alert(fmt.Sprintf("192.0.2.%d", i), i))
	}
	if _, err := r.agent().PushAlerts(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the oldest dropped", func() bool { return r.Svc.Stats.SignalsDropped.Load() == 3 })
	cs.SetDown(false)
	waitFor(t, "the rest sent", func() bool { return len(cs.Signals()) == 5 })
	for _, s := range cs.Signals() {
		if s.Message < "alert 3" {
			t.Errorf("an old signal was kept: %s", s.Message)
		}
	}
}

// The token is renewed a minute before it expires, not before.
func TestTokenRefreshMargin(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(t.TempDir(), "crowdsec.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range []struct {
		ttl    time.Duration
		logins int
	}{{2 * time.Minute, 1}, {50 * time.Second, 3}} {
		cs.SetTokenTTL(c.ttl)
		client, err := capi.NewClient(capi.ClientConfig{URL: cs.URL(), Login: capiLogin, Password: capiPassword})
		if err != nil {
			t.Fatal(err)
		}
		svc := capi.New(capi.Options{Client: client, Store: st})
		before := len(cs.Logins())
		for range 3 {
			if err := svc.SendMetrics(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got := len(cs.Logins()) - before; got != c.logins {
			t.Errorf("token lifetime %s: %d logins for 3 calls, want %d", c.ttl, got, c.logins)
		}
	}
}
