package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/testdb"
)

// streamValues is the stream's new and deleted decisions as "value until".
func streamValues(t *testing.T, s *Store, q StreamQuery) (news, dels []string, seq int64) {
	t.Helper()
	seq, err := s.Stream(context.Background(), q, time.Now(), func(d *DecisionRow) error {
		news = append(news, d.Value+" "+d.Scenario)
		return nil
	}, func(d *DecisionRow) error {
		dels = append(dels, d.Value+" "+d.Scenario)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return news, dels, seq
}

// A simulated decision never reaches the stream, and one lasting longer
// than a real decision on the same address must not hide it: bouncers keep
// the real ban, at startup and in deltas, and hear nothing when the
// simulated one ends.
func TestSimulatedDecisionsNeverShown(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "db"))
	defer s.Close()
	ctx := context.Background()
	ban := func(v, scenario string, d time.Duration, sim bool) NewDecision {
		r, _ := ParseRange(v)
		return NewDecision{UUID: v + scenario, Until: time.Now().Add(d), Scenario: scenario, Type: "ban", Scope: "Ip",
			Value: v, Origin: "crowdsec", Range: r, Simulated: sim}
	}
	pushDecisions(t, s, "real", []NewDecision{ban("192.0.2.1", "real", time.Hour, false)})
	_, _, cursor := streamValues(t, s, StreamQuery{Startup: true})
	pushDecisions(t, s, "sim", []NewDecision{ban("192.0.2.1", "sim", 4*time.Hour, true), ban("192.0.2.2", "sim", 4*time.Hour, true)})

	news, dels, _ := streamValues(t, s, StreamQuery{Startup: true})
	if len(news) != 1 || news[0] != "192.0.2.1 real" || len(dels) != 0 {
		t.Errorf("startup stream: new %v deleted %v; want only the real ban", news, dels)
	}
	news, dels, cursor = streamValues(t, s, StreamQuery{Cursor: cursor})
	if len(news)+len(dels) != 0 {
		t.Errorf("delta after simulated decisions: new %v deleted %v; want nothing", news, dels)
	}
	// no dedup (upstream's dedup=false) shows every row but still no simulated one
	news, _, _ = streamValues(t, s, StreamQuery{Startup: true, NoDedup: true})
	if len(news) != 1 {
		t.Errorf("dedup=false stream: %v", news)
	}
	// ending the simulated decisions tells bouncers nothing
	if _, err := s.DeleteDecisions(ctx, DecisionFilter{Scenario: "sim"}); err != nil {
		t.Fatal(err)
	}
	news, dels, cursor = streamValues(t, s, StreamQuery{Cursor: cursor})
	if len(news)+len(dels) != 0 {
		t.Errorf("delta after ending simulated decisions: new %v deleted %v; want nothing", news, dels)
	}
	// a real decision ending with a simulated one still active promotes nothing simulated
	pushDecisions(t, s, "sim2", []NewDecision{ban("192.0.2.1", "sim2", 4*time.Hour, true)})
	if _, err := s.DeleteDecisions(ctx, DecisionFilter{Scenario: "real"}); err != nil {
		t.Fatal(err)
	}
	news, dels, _ = streamValues(t, s, StreamQuery{Cursor: cursor})
	if len(news) != 0 || len(dels) != 1 || dels[0] != "192.0.2.1 real" {
		t.Errorf("delta after ending the real ban: new %v deleted %v; want the real ban deleted", news, dels)
	}
	// cscli and the alerts API still see them
	rows, err := s.QueryDecisions(ctx, DecisionFilter{IncludeSimulated: true, Value: "192.0.2.1"}, time.Now())
	if err != nil || len(rows) != 1 || !rows[0].Simulated {
		t.Errorf("simulated decision not queryable: %+v %v", rows, err)
	}
}

// A database where a simulated decision superseded a real ban (stored by
// an older version) is repaired at open: the real ban is shown again, as
// a change bouncers get in their next delta.
func TestMigrationShowsRealBansHiddenBySimulated(t *testing.T) {
	testdb.SkipUnlessSQLite(t, "replays SQLite migration 5")
	path := filepath.Join(t.TempDir(), "db")
	s := openAt(t, path)
	r, _ := ParseRange("192.0.2.1")
	pushDecisions(t, s, "real", []NewDecision{{UUID: "r", Until: time.Now().Add(time.Hour), Scenario: "real", Type: "ban", Scope: "Ip",
		Value: "192.0.2.1", Origin: "crowdsec", Range: r}})
	pushDecisions(t, s, "sim", []NewDecision{{UUID: "s", Until: time.Now().Add(4 * time.Hour), Scenario: "sim", Type: "ban", Scope: "Ip",
		Value: "192.0.2.1", Origin: "crowdsec", Range: r, Simulated: true}})
	_, _, cursor := streamValues(t, s, StreamQuery{Startup: true})
	// the state the older version left
	toSchema5(t, s)
	mustExec(t, s, `UPDATE decisions SET shown = (scenario = 'sim')`, `DELETE FROM schema_migrations WHERE version >= 5`)
	if news, _, _ := streamValues(t, s, StreamQuery{Startup: true}); len(news) != 0 {
		t.Fatalf("setup: startup stream %v, want the real ban hidden", news)
	}
	s.Close()
	s = openAt(t, path)
	defer s.Close()
	if news, _, _ := streamValues(t, s, StreamQuery{Startup: true}); len(news) != 1 || news[0] != "192.0.2.1 real" {
		t.Errorf("startup stream after the migration: %v", news)
	}
	if news, dels, _ := streamValues(t, s, StreamQuery{Cursor: cursor}); len(news) != 1 || len(dels) != 0 {
		t.Errorf("delta after the migration: new %v deleted %v; want the real ban again", news, dels)
	}
}
