package store

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Decisions pushed already expired (a replay of old logs) end in the push,
// leaving what the next sweep would have left, and that sweep nothing to
// do: bouncers hear the deletion of the one they could hold, nothing of
// the one a longer held ban outlasts.
func TestPushEndsExpiredDecisions(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "db"))
	defer s.Close()
	ban := func(v string, d time.Duration) NewDecision {
		r, _ := ParseRange(v)
		return NewDecision{UUID: v + d.String(), Until: time.Now().Add(d), Scenario: "test", Type: "ban", Scope: "Ip", Value: v, Origin: "crowdsec", Range: r}
	}
	pushDecisions(t, s, "held", []NewDecision{ban("192.0.2.1", time.Hour)})
	_, _, cursor := streamValues(t, s, StreamQuery{Startup: true})
	pushDecisions(t, s, "replay", []NewDecision{ban("192.0.2.1", -time.Minute), ban("192.0.2.2", -time.Minute), ban("192.0.2.3", time.Hour)})

	var active int
	if err := s.QueryRowForTest(`SELECT COUNT(*) FROM decisions WHERE active`).Scan(&active); err != nil || active != 2 {
		t.Errorf("%d active decisions after the push (%v), want 2: the expired ones ended", active, err)
	}
	if n, err := s.SweepExpired(context.Background(), time.Now()); err != nil || n != 0 {
		t.Errorf("the sweep after the push ended %d (%v), want 0", n, err)
	}
	news, dels, _ := streamValues(t, s, StreamQuery{Cursor: cursor})
	slices.Sort(news)
	if !slices.Equal(news, []string{"192.0.2.3 test"}) || !slices.Equal(dels, []string{"192.0.2.2 test"}) {
		t.Errorf("delta: new %v deleted %v; want new [192.0.2.3 test], deleted [192.0.2.2 test]", news, dels)
	}
	if news, _, _ := streamValues(t, s, StreamQuery{Startup: true}); !slices.Equal(news, []string{"192.0.2.1 test", "192.0.2.3 test"}) {
		t.Errorf("startup stream %v, want the held ban and the live one", news)
	}
}
