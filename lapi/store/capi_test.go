package store

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// The signal queue keeps what is pushed with an alert (once, however often
// the alert is retried), gives it back oldest first, forgets what is
// acknowledged, and keeps only the newest when bounded.
func TestSignalQueue(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "q.db"))
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	var push []NewAlert
	for i := range 10 {
		push = append(push, NewAlert{Alert: &models.Alert{Scenario: "s", Source: &models.Source{Scope: "Ip", Value: "192.0.2.1"}},
			UUID: fmt.Sprintf("u%d", i), StartAt: now, StopAt: now, Signal: fmt.Appendf(nil, `{"n":%d}`, i)})
	}
	for range 2 { // a retried push queues nothing more
		if _, err := s.CreateAlerts(ctx, push); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.SignalQueueLen(ctx); err != nil || n != 10 {
		t.Fatalf("queue %d, %v; want 10", n, err)
	}
	got, err := s.PendingSignals(ctx, 4)
	if err != nil || len(got) != 4 || string(got[0].Body) != `{"n":0}` || string(got[3].Body) != `{"n":3}` {
		t.Fatalf("pending %v, %v", got, err)
	}
	if err := s.AckSignals(ctx, []int64{got[0].ID, got[1].ID}); err != nil {
		t.Fatal(err)
	}
	if dropped, err := s.TrimSignals(ctx, 5); err != nil || dropped != 3 {
		t.Fatalf("trim dropped %d, %v; want 3", dropped, err)
	}
	got, err = s.PendingSignals(ctx, 50)
	if err != nil || len(got) != 5 || string(got[0].Body) != `{"n":5}` {
		t.Fatalf("after trim %v, %v", got, err)
	}
	if dropped, err := s.TrimSignals(ctx, 5); err != nil || dropped != 0 {
		t.Fatalf("second trim dropped %d, %v", dropped, err)
	}
}

// The shared deletions queue the UUIDs of the decisions they end (by
// filter and by id; an already ended one and one without UUID are not
// queued), the plain ones queue nothing; the queue gives them back oldest
// first, forgets what is acknowledged and keeps only the newest when
// bounded.
func TestDeletionQueue(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "d.db"))
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	var ds []NewDecision
	for i := range 8 {
		v := fmt.Sprintf("192.0.2.%d", i)
		u := fmt.Sprintf("u%d", i)
		if i == 7 {
			u = ""
		}
		ds = append(ds, NewDecision{UUID: u, Until: now.Add(time.Hour), Scenario: "s", Type: "ban", Scope: "Ip", Value: v,
			Origin: "crowdsec", Range: RangeOf(netip.MustParsePrefix(v + "/32"))})
	}
	if _, err := s.CreateAlerts(ctx, []NewAlert{{Alert: &models.Alert{Scenario: "s", Source: &models.Source{Scope: "Ip", Value: "192.0.2.0"}},
		UUID: "a", StartAt: now, StopAt: now, Decisions: ds}}); err != nil {
		t.Fatal(err)
	}
	rows, err := s.QueryDecisions(ctx, DecisionFilter{Value: "192.0.2.5"}, now)
	if err != nil || len(rows) != 1 {
		t.Fatalf("decision on 192.0.2.5: %d, %v", len(rows), err)
	}
	pending := func() []string {
		t.Helper()
		q, err := s.PendingDeletions(ctx, 50)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range q {
			out = append(out, d.UUID)
		}
		return out
	}
	if n, err := s.DeleteDecisions(ctx, DecisionFilter{Value: "192.0.2.0"}); err != nil || n != 1 {
		t.Fatalf("plain deletion: %d, %v", n, err)
	}
	if got := pending(); len(got) != 0 {
		t.Fatalf("a plain deletion queued %v", got)
	}
	if n, err := s.DeleteDecisionsShared(ctx, DecisionFilter{Value: "192.0.2.1"}); err != nil || n != 1 {
		t.Fatalf("shared deletion: %d, %v", n, err)
	}
	if err := s.DeleteDecisionShared(ctx, rows[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDecisionShared(ctx, rows[0].ID); err != nil { // already ended
		t.Fatal(err)
	}
	if n, err := s.DeleteDecisionsShared(ctx, DecisionFilter{}); err != nil || n != 5 {
		t.Fatalf("shared deletion of the rest: %d, %v", n, err)
	}
	if got := pending(); !slices.Equal(got[:2], []string{"u1", "u5"}) || len(got) != 6 {
		t.Fatalf("queued %v; want u1, u5, then u2 u3 u4 u6", got)
	}
	if n, err := s.DeletionQueueLen(ctx); err != nil || n != 6 {
		t.Fatalf("queue %d, %v; want 6", n, err)
	}
	q, err := s.PendingDeletions(ctx, 2)
	if err != nil || len(q) != 2 {
		t.Fatalf("pending %v, %v", q, err)
	}
	if err := s.AckDeletions(ctx, []int64{q[0].ID, q[1].ID}); err != nil {
		t.Fatal(err)
	}
	if dropped, err := s.TrimDeletions(ctx, 3); err != nil || dropped != 1 {
		t.Fatalf("trim dropped %d, %v; want 1", dropped, err)
	}
	if got := pending(); len(got) != 3 {
		t.Fatalf("after trim %v", got)
	}
}

// A pull replaces the same origin's decisions on the values it brings
// (chunk by chunk), leaves other values and other origins alone, and
// bouncers see the new decisions hold every value; CAPI's deletions end
// theirs.
func TestReplacePulled(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "p.db"))
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	pulled := func(until time.Time, values ...string) (NewAlert, Decisions) {
		var ds Decisions
		for _, v := range values {
			ds = append(ds, NewDecision{UUID: v + until.String(), Until: until, Scenario: "crowdsecurity/ssh-bf", Type: "ban", Scope: "Ip",
				Value: v, Origin: OriginCAPI, Range: RangeOf(netip.MustParsePrefix(v + "/32"))})
		}
		return NewAlert{Alert: &models.Alert{Scenario: "update", Source: &models.Source{Scope: CommunitySourceScope}},
			UUID: models.NewAlertUUID(), StartAt: now, StopAt: now}, ds
	}
	a, ds := pulled(now.Add(time.Hour), "192.0.2.1", "192.0.2.2", "192.0.2.3")
	if _, err := s.ReplacePulled(ctx, a, OriginCAPI, ds, 2); err != nil {
		t.Fatal(err)
	}
	// A local ban on .3 is not CAPI's: it stays.
	local := NewAlert{Alert: &models.Alert{Scenario: "local", Source: &models.Source{Scope: "Ip", Value: "192.0.2.3"}}, UUID: "local",
		StartAt: now, StopAt: now, Decisions: []NewDecision{{UUID: "l", Until: now.Add(time.Hour), Scenario: "local", Type: "ban", Scope: "Ip",
			Value: "192.0.2.3", Origin: "crowdsec", Range: RangeOf(netip.MustParsePrefix("192.0.2.3/32"))}}}
	if _, err := s.CreateAlerts(ctx, []NewAlert{local}); err != nil {
		t.Fatal(err)
	}
	later := now.Add(2 * time.Hour)
	a, ds = pulled(later, "192.0.2.4", "192.0.2.2", "192.0.2.3")
	if _, err := s.ReplacePulled(ctx, a, OriginCAPI, ds, 2); err != nil {
		t.Fatal(err)
	}
	active, err := s.QueryDecisions(ctx, DecisionFilter{Origins: []string{OriginCAPI}}, now)
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, d := range active {
		vals = append(vals, d.Value)
		if d.Value != "192.0.2.1" && d.Until.UnixNano() != later.UnixNano() {
			t.Errorf("%s until %s, want the new pull's", d.Value, d.Until)
		}
	}
	slices.Sort(vals)
	if want := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}; !slices.Equal(vals, want) {
		t.Errorf("active CAPI decisions on %v, want %v", vals, want)
	}
	if n, err := s.ExpirePulled(ctx, OriginCAPI, "Ip", []string{"192.0.2.1", "192.0.2.3"}); err != nil || n != 2 {
		t.Fatalf("expired %d, %v; want 2", n, err)
	}
	held := map[string]string{}
	if _, err := s.Stream(ctx, StreamQuery{Startup: true}, now, func(d *DecisionRow) error {
		held[d.Value] = d.Origin
		return nil
	}, func(*DecisionRow) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"192.0.2.2": OriginCAPI, "192.0.2.3": "crowdsec", "192.0.2.4": OriginCAPI}; fmt.Sprint(held) != fmt.Sprint(want) {
		t.Errorf("bouncers hold %v, want %v", held, want)
	}
	if last, err := s.LastAlertCreated(ctx, CommunitySourceScope); err != nil || last.IsZero() {
		t.Errorf("last pull %v, %v", last, err)
	}
}

// fillLog is a DecisionSource that records what it was asked for.
type fillLog struct {
	Decisions
	calls [][2]int
}

func (f *fillLog) Fill(dst []NewDecision, from, to int) []NewDecision {
	f.calls = append(f.calls, [2]int{from, to})
	return f.Decisions.Fill(dst, from, to)
}

// ReplacePulled builds the decisions a chunk at a time, in order, and
// stores them all.
func TestReplacePulledChunks(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "c.db"))
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	src := &fillLog{}
	for i := range 7 {
		v := fmt.Sprintf("192.0.2.%d", i)
		src.Decisions = append(src.Decisions, NewDecision{UUID: v, Until: now.Add(time.Hour), Scenario: "crowdsecurity/ssh-bf", Type: "ban",
			Scope: "Ip", Value: v, Origin: OriginCAPI, Range: RangeOf(netip.MustParsePrefix(v + "/32"))})
	}
	a := NewAlert{Alert: &models.Alert{Scenario: "update", Source: &models.Source{Scope: CommunitySourceScope}},
		UUID: models.NewAlertUUID(), StartAt: now, StopAt: now}
	if _, err := s.ReplacePulled(ctx, a, OriginCAPI, src, 3); err != nil {
		t.Fatal(err)
	}
	if want := [][2]int{{0, 3}, {3, 6}, {6, 7}}; !slices.Equal(src.calls, want) {
		t.Errorf("filled %v, want %v", src.calls, want)
	}
	active, err := s.QueryDecisions(ctx, DecisionFilter{Origins: []string{OriginCAPI}}, now)
	if err != nil || len(active) != 7 {
		t.Fatalf("%d active CAPI decisions, %v; want 7", len(active), err)
	}
}

// A lock is held against other owners until it goes stale, refreshed by
// its owner, and released only by its owner.
func TestTryLock(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "l.db"))
	defer s.Close()
	ctx := context.Background()
	try := func(owner string, stale time.Duration, want bool) {
		t.Helper()
		if got, err := s.TryLock(ctx, "pullCAPI", owner, stale); err != nil || got != want {
			t.Fatalf("TryLock(%s) = %v, %v; want %v", owner, got, err, want)
		}
	}
	try("a", time.Hour, true)
	try("a", time.Hour, true) // its owner refreshes it
	try("b", time.Hour, false)
	if err := s.Unlock(ctx, "pullCAPI", "b"); err != nil {
		t.Fatal(err)
	}
	try("b", time.Hour, false)      // b could not release a's lock
	try("b", time.Nanosecond, true) // stale: taken over
	if err := s.Unlock(ctx, "pullCAPI", "b"); err != nil {
		t.Fatal(err)
	}
	try("c", time.Hour, true)
}

// PutKV creates, replaces, and writes the same value again.
func TestPutKV(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "kv.db"))
	defer s.Close()
	ctx := context.Background()
	for _, v := range []string{"a", "b", "b"} {
		if err := s.PutKV(ctx, "k", v); err != nil {
			t.Fatalf("PutKV(%q): %v", v, err)
		}
		if got, err := s.GetKV(ctx, "k"); err != nil || got != v {
			t.Fatalf("GetKV = %q, %v; want %q", got, err, v)
		}
	}
}
