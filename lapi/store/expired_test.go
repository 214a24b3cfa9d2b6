package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestDecisionOverWhenStored: a decision whose end is already past when it
// is stored (a replay of old logs dates it from the alert's stop_at) is
// stored ended and hidden, as the sweep would leave it, so that the sweep
// has nothing to end; a live decision in the same push on the same address
// is shown as before, and bouncers hear of neither's end.
func TestDecisionOverWhenStored(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "expired.db"))
	defer s.Close()
	ctx := context.Background()
	cursor := s.Seq()

	past := ipBans("past", 3, -time.Hour)   // 10.0.0.0-2, over an hour ago
	live := ipBans("live", 1, 4*time.Hour)  // 10.0.0.0, four hours left
	late := ipBans("late", 2, -time.Minute) // 10.0.0.0-1, ended a minute ago
	pushDecisions(t, s, "mixed", append(append(past, live...), late...))

	var active, shown int
	if err := s.r.QueryRow(`SELECT COUNT(CASE WHEN active THEN 1 END), COUNT(CASE WHEN shown THEN 1 END) FROM decisions`).Scan(&active, &shown); err != nil {
		t.Fatal(err)
	}
	if active != 1 || shown != 1 {
		t.Fatalf("stored %d active, %d shown decisions; want the live one only", active, shown)
	}
	now := time.Now()
	if n, err := s.SweepExpired(ctx, now); err != nil || n != 0 {
		t.Fatalf("sweep ended %d decisions (%v); want none left to end", n, err)
	}
	if n, err := s.ActiveDecisionCount(ctx); err != nil || n != 1 {
		t.Fatalf("active decisions: %d (%v), want 1", n, err)
	}
	counts, err := s.CountActiveDecisions(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 1 || counts[0].Count != 1 {
		t.Fatalf("active decision counts %+v, want one of 1", counts)
	}
	var gotNew, gotDeleted []string
	if _, err := s.Stream(ctx, StreamQuery{Cursor: cursor}, now, func(d *DecisionRow) error {
		gotNew = append(gotNew, d.UUID)
		return nil
	}, func(d *DecisionRow) error {
		gotDeleted = append(gotDeleted, d.UUID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(gotNew) != 1 || gotNew[0] != "live-0" || len(gotDeleted) != 0 {
		t.Fatalf("delta new %v deleted %v; want new [live-0], nothing deleted", gotNew, gotDeleted)
	}
}
