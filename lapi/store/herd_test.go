package store

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestSweepExpiredRemembersNextExpiry: once a sweep has looked, a later
// one before the next expiry needs no database, and sweeps nothing; at that
// expiry it ends the decision; a new decision (a published change) makes
// it look again, so a shorter one is ended on time too, also when another
// process added it.
func TestSweepExpiredRemembersNextExpiry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sweep.db")
	s := openAt(t, path)
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	if !s.SweepDue(now) {
		t.Fatal("a new store must look once")
	}
	pushDecisions(t, s, "hour", ipBans("hour", 1, time.Hour))
	if n, err := s.SweepExpired(ctx, now); err != nil || n != 0 {
		t.Fatalf("sweep ended %d (%v), want 0", n, err)
	}
	if s.SweepDue(now.Add(time.Minute)) {
		t.Fatal("nothing expires within the hour: the sweep must not be due")
	}
	if !s.SweepDue(now.Add(2 * time.Hour)) {
		t.Fatal("the decision expires within two hours: the sweep must be due")
	}

	// Another process adds a decision ending in a minute: once this one
	// hears of the change, the sweep looks again.
	other := openAt(t, path)
	defer other.Close()
	ds := ipBans("minute", 1, time.Minute)
	ds[0].Value, ds[0].Range = "10.9.9.9", mustRange(t, "10.9.9.9")
	pushDecisions(t, other, "minute", ds)
	if err := s.RefreshSeq(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.SweepDue(now.Add(2 * time.Minute)) {
		t.Fatal("a change was published: the sweep must look again")
	}
	if n, err := s.SweepExpired(ctx, now.Add(2*time.Minute)); err != nil || n != 1 {
		t.Fatalf("sweep two minutes on ended %d (%v), want the minute's decision", n, err)
	}
	if n, err := s.SweepExpired(ctx, now.Add(3*time.Minute)); err != nil || n != 0 {
		t.Fatalf("sweep three minutes on ended %d (%v), want none", n, err)
	}
	if n, err := s.SweepExpired(ctx, now.Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("sweep two hours on ended %d (%v), want the hour's decision", n, err)
	}
	if n, _ := s.ActiveDecisionCount(ctx); n != 0 {
		t.Fatalf("%d decisions still active", n)
	}
}

func mustRange(t *testing.T, v string) Range {
	t.Helper()
	r, err := ParseRange(v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestBouncersByKeys: one lookup of many keys returns each key's rows in
// id order, more keys than one statement takes included, and none for an
// unknown key.
func TestBouncersByKeys(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "keys.db"))
	defer s.Close()
	ctx := context.Background()
	n := bouncersByKeysChunk + 10
	hashes := make([]string, 0, n+1)
	for i := 0; i < n; i++ {
		h := "hash" + strconv.Itoa(i)
		hashes = append(hashes, h)
		for _, name := range []string{"b" + strconv.Itoa(i), "b" + strconv.Itoa(i) + "@10.0.0.1"} {
			if _, err := s.CreateBouncer(ctx, Bouncer{Name: name, APIKeyHash: h}); err != nil {
				t.Fatal(err)
			}
		}
	}
	hashes = append(hashes, "unknown")
	got, err := s.BouncersByKeys(ctx, hashes, "api-key")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d keys found, want %d", len(got), n)
	}
	for i := 0; i < n; i++ {
		rows := got["hash"+strconv.Itoa(i)]
		if len(rows) != 2 || rows[0].Name != "b"+strconv.Itoa(i) || rows[1].Name != "b"+strconv.Itoa(i)+"@10.0.0.1" || rows[0].ID > rows[1].ID {
			t.Fatalf("key %d: %+v", i, rows)
		}
	}
	if one, err := s.BouncersByKey(ctx, "hash3", "api-key"); err != nil || len(one) != 2 {
		t.Fatalf("one key: %d rows (%v)", len(one), err)
	}
	if _, ok := got["unknown"]; ok {
		t.Fatal("an unknown key has rows")
	}
}

// TestSetBouncersPulled: pull times of many bouncers in one write; an
// older time (another LAPI flushing late) does not move one back.
func TestSetBouncersPulled(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "pulls.db"))
	defer s.Close()
	ctx := context.Background()
	a, err := s.CreateBouncer(ctx, Bouncer{Name: "a", APIKeyHash: "ha"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateBouncer(ctx, Bouncer{Name: "b", APIKeyHash: "hb"})
	if err != nil {
		t.Fatal(err)
	}
	t1 := time.Unix(1_700_000_000, 0)
	t2 := t1.Add(time.Minute)
	if err := s.SetBouncersPulled(ctx, map[int64]time.Time{a.ID: t2, b.ID: t1}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBouncersPulled(ctx, map[int64]time.Time{a.ID: t1}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]time.Time{"a": t2, "b": t1} {
		got, err := s.GetBouncer(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got.LastPull == nil || !got.LastPull.Equal(want) {
			t.Errorf("%s last pull %v, want %v", name, got.LastPull, want)
		}
	}
}

// TestBouncersVersion: every change of a bouncer row moves the bouncers'
// version (the LAPI keeps key lookups while it stays), pull times and
// cursors do not; the allowlists' version is read with it.
func TestBouncersVersion(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "version.db"))
	defer s.Close()
	ctx := context.Background()
	last := int64(-1)
	step := func(what string, moves bool, fn func() error) {
		t.Helper()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		_, v, err := s.Versions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if moved := v != last; moved != moves {
			t.Errorf("%s: version %d -> %d, want moved=%v", what, last, v, moves)
		}
		last = v
	}
	step("nothing yet", true, func() error { return nil })
	var b *Bouncer
	step("create", true, func() (err error) { b, err = s.CreateBouncer(ctx, Bouncer{Name: "fw", APIKeyHash: "h"}); return })
	step("seen", true, func() error { return s.UpdateBouncerSeen(ctx, b.ID, "10.0.0.1", "fw", "v1") })
	step("os", true, func() error { return s.SetComponentOS(ctx, true, "fw", "linux", "6", "") })
	step("pulled", false, func() error { return s.SetBouncerPulled(ctx, b.ID, nil, time.Now()) })
	step("pulls", false, func() error { return s.SetBouncersPulled(ctx, map[int64]time.Time{b.ID: time.Now()}) })
	step("cursor", false, func() error { return s.SetStreamCursor(ctx, b.ID, "ua", 0, time.Now()) })
	step("delete", true, func() error { return s.DeleteBouncer(ctx, "fw") })
	step("create old", true, func() (err error) {
		_, err = s.CreateBouncer(ctx, Bouncer{Name: "old", APIKeyHash: "o"})
		return
	})
	step("prune", true, func() error {
		_, err := s.PruneBouncers(ctx, time.Now().Add(time.Hour))
		return err
	})
	step("prune none", false, func() error {
		_, err := s.PruneBouncers(ctx, time.Now().Add(time.Hour))
		return err
	})
	a0, _, _ := s.Versions(ctx)
	if err := s.CreateAllowlist(ctx, "l", ""); err != nil {
		t.Fatal(err)
	}
	if a1, _, _ := s.Versions(ctx); a1 == a0 {
		t.Error("the allowlists' version did not move with an allowlist")
	}
}
