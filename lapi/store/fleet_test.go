package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// TestStreamExactlyOnceAcrossStores drives concurrent writers through two
// stores on one database (two LAPIs) while readers pull deltas by cursor
// from both, and checks that every reader gets every change exactly once:
// each decision's creation, then its deletion, never twice and never
// skipped. With a sequence whose numbers are not committed in order (a
// transaction holding 10 committing after one holding 11), a reader whose
// cursor passed 11 never gets 10's rows, and the final check fails.
func TestStreamExactlyOnceAcrossStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	a := openAt(t, path)
	defer a.Close()
	b := openAt(t, path)
	defer b.Close()
	stores := []*Store{a, b}
	ctx := context.Background()

	const writers, ops, readers = 4, 30, 4
	errs := make(chan error, writers+readers)
	var wg sync.WaitGroup
	// Writer w adds decisions w-0, w-1, ... and deletes every third one it
	// added, alternating between the two stores.
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ops {
				s := stores[(w+i)%2]
				v := fmt.Sprintf("192.0.%d.%d", w, i)
				r, _ := ParseRange(v)
				now := time.Now()
				al := &models.Alert{Scenario: "fleet", Source: &models.Source{Scope: "Ip", Value: v}}
				d := NewDecision{UUID: "d-" + v, Until: now.Add(time.Hour), Scenario: "fleet", Type: "ban", Scope: "Ip", Value: v, Origin: "cscli", Range: r}
				if _, err := s.CreateAlerts(ctx, []NewAlert{{Alert: al, UUID: "a-" + v, StartAt: now, StopAt: now, Decisions: []NewDecision{d}}}); err != nil {
					errs <- fmt.Errorf("writer %d adding %s: %w", w, v, err)
					return
				}
				if i%3 == 2 {
					old := fmt.Sprintf("192.0.%d.%d", w, i-1)
					if _, err := s.DeleteDecisions(ctx, DecisionFilter{Value: old}); err != nil {
						errs <- fmt.Errorf("writer %d deleting %s: %w", w, old, err)
						return
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// A reader pulls deltas from its store until the writers are done,
	// then once more; it records every emission per value.
	type seen struct{ news, dels int }
	results := make([]map[string]*seen, readers)
	var rg sync.WaitGroup
	for rd := range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			s := stores[rd%2]
			got := map[string]*seen{}
			results[rd] = got
			var cursor int64
			pull := func() error {
				rec := func(del bool) func(*DecisionRow) error {
					return func(d *DecisionRow) error {
						e := got[d.Value]
						if e == nil {
							e = &seen{}
							got[d.Value] = e
						}
						if del {
							e.dels++
						} else {
							e.news++
						}
						return nil
					}
				}
				next, err := s.Stream(ctx, StreamQuery{Cursor: cursor, ClientCursor: true}, time.Now(), rec(false), rec(true))
				if err != nil {
					return err
				}
				cursor = next
				return nil
			}
			for last := false; !last; {
				select {
				case <-done:
					last = true
				default:
				}
				if err := pull(); err != nil {
					errs <- fmt.Errorf("reader %d: %w", rd, err)
					return
				}
			}
		}()
	}
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every decision was created once; every third one was deleted once.
	for rd, got := range results {
		for w := range writers {
			for i := range ops {
				v := fmt.Sprintf("192.0.%d.%d", w, i)
				deleted := i%3 == 1
				e := got[v]
				if e == nil {
					t.Errorf("reader %d never got %s (deleted %v): a gap in the stream", rd, v, deleted)
					continue
				}
				// A deleted decision may have been created and deleted
				// between two pulls: then only its deletion is reported.
				wantNews := 1
				if deleted && e.news == 0 {
					wantNews = 0
				}
				wantDels := 0
				if deleted {
					wantDels = 1
				}
				if e.news != wantNews || e.dels != wantDels {
					t.Errorf("reader %d got %s as new %d times and deleted %d times; want %d and %d", rd, v, e.news, e.dels, wantNews, wantDels)
				}
			}
		}
	}
}

// TestChangedAcrossStores: a change committed through one store wakes the
// long-polls of another store on the same database (another LAPI), and
// moves its Seq.
func TestChangedAcrossStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wake.db")
	a := openAt(t, path)
	defer a.Close()
	b := openAt(t, path)
	defer b.Close()
	if b.d.kind == sqliteDB {
		t.Skip("SQLite has one LAPI per database; changes from cscli are picked up by RefreshSeq")
	}
	for round := range 3 {
		ch := b.Changed()
		before := b.Seq()
		pushDecisions(t, a, fmt.Sprintf("wake-%d", round), ipBans(fmt.Sprintf("wake-%d", round), 1, time.Hour))
		select {
		case <-ch:
		case <-time.After(time.Minute):
			t.Fatalf("round %d: a change through store A did not wake store B", round)
		}
		if got := b.Seq(); got <= before || got != a.Seq() {
			t.Errorf("round %d: store B's seq is %d (was %d), store A's %d", round, got, before, a.Seq())
		}
	}
}
