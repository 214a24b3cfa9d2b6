package exprhelpers

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/internal/lapitest"
	"github.com/rampart-ips/rampart/models"
)

const (
	decMachine  = "decisions-agent"
	decPassword = "decisions-agent-password-0123456789"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// banAlert is what `cscli decisions add` pushes: an alert carrying one
// decision on value, stopped at stop.
func banAlert(value, scope, typ, duration string, stop time.Time) *models.Alert {
	at := stop.UTC().Format(time.RFC3339)
	reason := "manual '" + typ + "' from 'test'"
	return &models.Alert{
		Scenario: reason, Message: reason, EventsCount: 1, StartAt: at, StopAt: at, Leakspeed: "0", Remediation: true,
		Kind: "cscli", Events: []*models.Event{}, Source: &models.Source{Scope: scope, Value: value},
		Decisions: []*models.Decision{{Duration: duration, Origin: "cscli", Scenario: reason, Scope: scope, Type: typ, Value: value}},
	}
}

// decisionLAPI starts a real LAPI over a SQLite file and returns it with
// a client logged in as the agent's machine would be.
func decisionLAPI(t *testing.T) (*lapitest.LAPI, *apiclient.Client) {
	t.Helper()
	l := lapitest.Start(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	l.AddMachine(decMachine, decPassword)
	c, err := apiclient.New(apiclient.Config{URL: l.URL(), MachineID: decMachine, Password: decPassword, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return l, c
}

// filter compiles a rule expression as the parsers and scenarios do.
func filter(t *testing.T, h *Helpers, src string) *vm.Program {
	t.Helper()
	p, err := expr.Compile(src, append(h.Options(), expr.Env(CompileEnv()))...)
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return p
}

func sourceEvent(ip string) *event.Event {
	return &event.Event{Meta: map[string]string{"source_ip": ip}}
}

// The helpers, in rule expressions, give what upstream's give from its
// database: decisions pushed through the LAPI as cscli pushes them, counted
// by the addresses they cover, expired ones in the totals, a since window,
// and the time left of the longest active one.
func TestDecisionHelpersAskTheLAPI(t *testing.T) {
	l, client := decisionLAPI(t)
	ctx := context.Background()
	now := time.Now()
	if _, err := client.PushAlerts(ctx, []*models.Alert{
		banAlert("203.0.113.7", "Ip", "ban", "4h", now),
		banAlert("203.0.113.0/24", "Range", "ban", "1h", now),
		banAlert("203.0.113.7", "Ip", "captcha", "1h", now.Add(-3*time.Hour)), // ended 2h ago
		banAlert("198.51.100.1", "Ip", "ban", "4h", now),
	}); err != nil {
		t.Fatal(err)
	}
	// The LAPI stamps decisions with the time they were stored: make the
	// expired one three hours old, as it would be, in the same SQLite file.
	db, err := sql.Open("sqlite", "file:"+l.DBPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE decisions SET created_at = created_at - ? WHERE type = 'captcha'`, int64(3*time.Hour)); err != nil {
		t.Fatal(err)
	}

	h := New(t.TempDir())
	h.SetDecisionCounter(client)
	h.ext().dec.wait = time.Minute // this test checks the answers, not the bound

	for _, c := range []struct {
		ip, rule string
		want     bool
	}{
		{"203.0.113.7", `GetDecisionsCount(evt.Meta.source_ip) > 0`, true},
		{"198.51.100.9", `GetDecisionsCount(evt.Meta.source_ip) > 0`, false},
		{"203.0.113.7", `GetDecisionsCount(evt.Meta.source_ip) == 3`, true}, // its ban, the /24, the ended captcha
		{"203.0.113.7", `GetActiveDecisionsCount(evt.Meta.source_ip) == 2`, true},
		{"203.0.113.7", `GetDecisionsSinceCount(evt.Meta.source_ip, "1h") == 2`, true},
		{"203.0.113.7", `GetDecisionsSinceCount(evt.Meta.source_ip, "6h") == 3`, true},
		{"203.0.113.7", `GetActiveDecisionsTimeLeft(evt.Meta.source_ip) > duration("3h50m")`, true},
		{"203.0.113.7", `GetActiveDecisionsTimeLeft(evt.Meta.source_ip) <= duration("4h")`, true},
		{"203.0.113.8", `GetDecisionsCount(evt.Meta.source_ip) == 1 && GetActiveDecisionsCount(evt.Meta.source_ip) == 1`, true},
		{"203.0.113.8", `GetActiveDecisionsTimeLeft(evt.Meta.source_ip) > duration("50m")`, true},
		{"203.0.113.8", `GetActiveDecisionsTimeLeft(evt.Meta.source_ip) <= duration("1h")`, true},
		{"198.51.100.9", `GetActiveDecisionsTimeLeft(evt.Meta.source_ip) == duration("0s")`, true},
		{"203.0.113.7", `GetDecisionsSinceCount(evt.Meta.source_ip, "7d") == 0`, true}, // upstream's time.ParseDuration: no days
		{"alice", `GetDecisionsCount(evt.Meta.source_ip) == 0`, true},
	} {
		got, err := expr.Run(filter(t, h, c.rule), Env(sourceEvent(c.ip)))
		if err != nil {
			t.Fatalf("%s on %s: %v", c.rule, c.ip, err)
		}
		if got != c.want {
			t.Errorf("%s on %s = %v, want %v", c.rule, c.ip, got, c.want)
		}
	}
	// Upstream's Active helpers fail the expression on a value that is
	// not an address; the node then does not match.
	for _, rule := range []string{`GetActiveDecisionsCount(evt.Meta.source_ip) == 0`, `GetActiveDecisionsTimeLeft(evt.Meta.source_ip) == duration("0s")`} {
		if _, err := expr.Run(filter(t, h, rule), Env(sourceEvent("alice"))); err == nil {
			t.Errorf("%s on alice: no error", rule)
		}
	}
}

// Answers are cached: a new decision shows once the cached answer is older
// than decisionFresh, and then without waiting: the stale answer is served
// while a background query refreshes it.
func TestDecisionHelpersCacheAndRefresh(t *testing.T) {
	_, client := decisionLAPI(t)
	ctx := context.Background()
	if _, err := client.PushAlerts(ctx, []*models.Alert{banAlert("203.0.113.7", "Ip", "ban", "4h", time.Now())}); err != nil {
		t.Fatal(err)
	}
	h := New(t.TempDir())
	clock := &testClock{t: time.Now()}
	h.now = clock.now
	h.SetDecisionCounter(client)
	d := &h.ext().dec
	d.wait = time.Minute

	if n := h.GetDecisionsCount("203.0.113.7"); n != 1 {
		t.Fatalf("first count %d, want 1", n)
	}
	if _, err := client.PushAlerts(ctx, []*models.Alert{banAlert("203.0.113.7", "Ip", "captcha", "4h", time.Now())}); err != nil {
		t.Fatal(err)
	}
	clock.add(decisionFresh / 2)
	if n := h.GetDecisionsCount("203.0.113.7"); n != 1 {
		t.Fatalf("count within the fresh window %d, want the cached 1", n)
	}
	clock.add(decisionFresh)
	if n := h.GetDecisionsCount("203.0.113.7"); n != 1 {
		t.Fatalf("count once stale %d, want the stale 1 while the refresh runs", n)
	}
	waitFor(t, "the refreshed count", func() bool { return h.GetDecisionsCount("203.0.113.7") == 2 })

	// The time left counts down on the agent's clock between queries, and
	// an answer whose decisions have all ended says none is active.
	left, err := h.GetActiveDecisionsTimeLeft("203.0.113.7")
	if err != nil || left <= 3*time.Hour+50*time.Minute-decisionFresh*3/2 {
		t.Fatalf("time left %s, %v", left, err)
	}
	clock.add(5 * time.Minute) // stale, not yet dropped: served as it is
	if l2, _ := h.GetActiveDecisionsTimeLeft("203.0.113.7"); l2 != left-5*time.Minute {
		t.Fatalf("time left 5 minutes later: %s, want %s", l2, left-5*time.Minute)
	}
}

// waitFor polls cond until it holds; no timing is asserted, the limit only
// ends a broken test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s never came", what)
}

// A LAPI that never answers does not hold the rule: the helper returns 0
// while the query is still in flight, later calls return at once without
// queueing more queries for the same value, and no query outlives its
// timeout.
func TestDecisionHelpersHungLAPI(t *testing.T) {
	var started, finished atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		defer finished.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.Error(w, `{"message":"too late"}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	defer close(release) // before srv.Close, which waits for the handlers
	client, err := apiclient.New(apiclient.Config{URL: srv.URL, MachineID: decMachine, Password: decPassword})
	if err != nil {
		t.Fatal(err)
	}
	h := New(t.TempDir())
	h.SetDecisionCounter(client)
	d := &h.ext().dec
	d.wait, d.timeout = 20*time.Millisecond, time.Hour // the query stays in flight for the whole test

	p := filter(t, h, `GetDecisionsCount(evt.Meta.source_ip) > 0`)
	for range 3 {
		got, err := expr.Run(p, Env(sourceEvent("203.0.113.7")))
		if err != nil || got != false {
			t.Fatalf("filter with a hung LAPI: %v, %v", got, err)
		}
	}
	if n := h.GetDecisionsCount("203.0.113.7"); n != 0 {
		t.Fatalf("count %d", n)
	}
	// They returned while the one request sent is held by the server.
	waitFor(t, "the request to reach the server", func() bool { return started.Load() == 1 })
	if s, f := started.Load(), finished.Load(); s != 1 || f != 0 {
		t.Fatalf("%d requests started, %d finished; want 1 held", s, f)
	}
	// Other values start their query but no longer wait on a failing LAPI.
	if left, err := h.GetActiveDecisionsTimeLeft("203.0.113.8"); left != 0 || err != nil {
		t.Fatalf("time left %s, %v", left, err)
	}
	// Beyond decisionMaxInFlight queries in flight, no more start.
	for i := range 2 * decisionMaxInFlight {
		h.GetDecisionsSinceCount(fmt.Sprintf("203.0.113.%d", i+1), "1h")
	}
	d.mu.Lock()
	pending := len(d.pending)
	d.mu.Unlock()
	if pending != decisionMaxInFlight || len(d.sem) != decisionMaxInFlight {
		t.Fatalf("%d queries in flight holding %d slots, want %d", pending, len(d.sem), decisionMaxInFlight)
	}
}

// Without a LAPI (hubtest, cscli explain) the helpers answer 0 at once and
// ask nothing.
func TestDecisionHelpersWithoutLAPI(t *testing.T) {
	h := New(t.TempDir())
	p := filter(t, h, `GetDecisionsCount(evt.Meta.source_ip) + GetDecisionsSinceCount(evt.Meta.source_ip, "1h") + GetActiveDecisionsCount(evt.Meta.source_ip)`)
	for _, ip := range []string{"203.0.113.7", "alice", ""} {
		got, err := expr.Run(p, Env(sourceEvent(ip)))
		if err != nil || got != 0 {
			t.Fatalf("%q: %v, %v", ip, got, err)
		}
	}
	if left, err := h.GetActiveDecisionsTimeLeft("alice"); left != 0 || err != nil {
		t.Fatalf("time left %s, %v", left, err)
	}
	if n := h.ext().dec.cache.len(); n != 0 {
		t.Fatalf("%d answers cached", n)
	}
}
