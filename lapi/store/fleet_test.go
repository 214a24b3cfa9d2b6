package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/testdb"
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

// TestListenerReconnects: when PostgreSQL drops the listening connection
// (a server restart, a proxy timeout), the store reconnects, and a change
// committed meanwhile still wakes it: it re-reads the sequence after
// reconnecting.
func TestListenerReconnects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relisten.db")
	a := openAt(t, path)
	defer a.Close()
	b := openAt(t, path)
	defer b.Close()
	if b.d.kind != postgresDB {
		t.Skip("LISTEN/NOTIFY is PostgreSQL's")
	}
	for round := range 2 {
		ch := b.Changed()
		before := b.Seq()
		// Both listeners connect in the background: wait for them.
		for n, deadline := 0, time.Now().Add(time.Minute); n != 2; time.Sleep(10 * time.Millisecond) {
			if err := a.QueryRowForTest(`SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()
				AND application_name = ?`, listenerName).Scan(&n); err != nil || time.Now().After(deadline) {
				t.Fatalf("round %d: %d listeners connected (%v), want 2", round, n, err)
			}
		}
		var killed int
		if err := a.QueryRowForTest(`SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = ?`, listenerName).Scan(&killed); err != nil || killed != 2 {
			t.Fatalf("round %d: terminating the listeners: %d (%v), want 2", round, killed, err)
		}
		tag := fmt.Sprintf("relisten-%d", round)
		pushDecisions(t, a, tag, ipBans(tag, 1, time.Hour))
		select {
		case <-ch:
		case <-time.After(time.Minute):
			t.Fatalf("round %d: store B was not woken after its listener was cut", round)
		}
		if got := b.Seq(); got <= before {
			t.Errorf("round %d: store B's seq stayed at %d", round, got)
		}
	}
}

// TestServerConfigErrors: a server configuration that cannot work says
// what is wrong and where.
func TestServerConfigErrors(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Type: "postgresql", DBName: "x"}, "db_config.host is empty"},
		{Config{Type: "mysql", Host: "127.0.0.1"}, "db_config.db_name is empty"},
		{Config{Type: "oracle"}, `database type "oracle" is unknown (use sqlite, postgresql or mysql)`},
		{Config{Type: "postgres", Host: "127.0.0.1", Port: 1, DBName: "x"}, "cannot connect to postgresql at 127.0.0.1:1 (database \"x\"): "},
		{Config{Type: "mysql", Host: "127.0.0.1", Port: 1, DBName: "x"}, "cannot connect to mysql at 127.0.0.1:1 (database \"x\"): "},
	} {
		s, err := Open(ctx, c.cfg)
		if err == nil {
			s.Close()
			t.Errorf("%+v: opened", c.cfg)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	// A wrong password, where the server checks one (MariaDB's root here;
	// the test PostgreSQL trusts local connections).
	if testdb.Kind() == "mysql" {
		d := testdb.Fresh(t)
		_, err := Open(ctx, Config{Type: "mysql", Host: d.Host, Port: d.Port, User: d.User, Password: "wrong", DBName: d.Name})
		if err == nil || !strings.Contains(err.Error(), "cannot connect to mysql at") || !strings.Contains(err.Error(), "Access denied") {
			t.Errorf("wrong password: %v", err)
		}
	}
}
