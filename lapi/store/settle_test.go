package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// pushDecisions stores ds as one alert's decisions.
func pushDecisions(tb testing.TB, s *Store, tag string, ds []NewDecision) {
	tb.Helper()
	now := time.Now()
	a := &models.Alert{Scenario: "test", Source: &models.Source{Scope: "test", Value: tag}}
	if _, err := s.CreateAlerts(context.Background(), []NewAlert{{Alert: a, UUID: tag, StartAt: now, StopAt: now, Decisions: ds}}); err != nil {
		tb.Fatal(err)
	}
}

// ipBans are n ban decisions on distinct addresses, lasting d.
func ipBans(tag string, n int, d time.Duration) []NewDecision {
	until := time.Now().Add(d)
	ds := make([]NewDecision, 0, n)
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		r, _ := ParseRange(v)
		ds = append(ds, NewDecision{UUID: fmt.Sprintf("%s-%d", tag, i), Until: until, Scenario: "test", Type: "ban", Scope: "Ip",
			Value: v, Origin: "cscli", Range: r})
	}
	return ds
}

func openAt(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), Config{Path: path})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func mustExec(tb testing.TB, s *Store, qs ...string) {
	tb.Helper()
	for _, q := range qs {
		if _, err := s.w.Exec(q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
}

// statistics prepares, at path, the planner statistics a LAPI may run with.
var statistics = []struct {
	name  string
	setup func(tb testing.TB, path string)
}{
	{"fresh", func(tb testing.TB, path string) {}},
	{"restart after a few pushes", func(tb testing.TB, path string) {
		s := openAt(tb, path)
		for i := 0; i < 10; i++ {
			pushDecisions(tb, s, fmt.Sprintf("few-%d", i), ipBans(fmt.Sprintf("few-%d", i), 1, time.Hour))
		}
		s.Close()
		// the caller's Open runs PRAGMA optimize, which analyses decisions now
	}},
	{"ANALYZE after a large import", func(tb testing.TB, path string) {
		s := openAt(tb, path)
		pushDecisions(tb, s, "large", ipBans("large", 5000, time.Hour))
		mustExec(tb, s, `ANALYZE`)
		s.Close()
	}},
	{"statistics favouring decisions_seq", func(tb testing.TB, path string) {
		s := openAt(tb, path)
		pushDecisions(tb, s, "few", ipBans("few", 3, time.Hour))
		mustExec(tb, s, `ANALYZE`,
			`UPDATE sqlite_stat1 SET stat = '1000000 1000000 1000000 1000000 500000 1' WHERE idx = 'decisions_key'`,
			`UPDATE sqlite_stat1 SET stat = '1000000 1' WHERE idx = 'decisions_seq'`,
			`ANALYZE sqlite_schema`)
		s.Close()
	}},
}

// queryPlan returns the table accesses (SCAN and SEARCH lines) and every
// other line of q's EXPLAIN QUERY PLAN.
func queryPlan(t *testing.T, s *Store, q string, args ...any) (access, all []string) {
	t.Helper()
	rows, err := s.w.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("explaining %s: %v", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		all = append(all, detail)
		if (strings.HasPrefix(detail, "SCAN ") || strings.HasPrefix(detail, "SEARCH ")) && !strings.Contains(detail, "subquery-") {
			access = append(access, detail)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return access, all
}

// TestSettleInsertedPlans pins the insert path's query plans under every
// kind of statistics: new rows are read by rowid range, held ones through
// decisions_key searched per key, never through decisions_seq (every new row
// shares one seq, so a per-row search there is quadratic) and never by a
// scan of decisions.
func TestSettleInsertedPlans(t *testing.T) {
	const byKey = "SEARCH o USING INDEX decisions_key (value=? AND type=? AND scope=? AND active=?"
	want := map[string][]string{
		"hiding new decisions held ones outlast": {"SEARCH decisions USING INTEGER PRIMARY KEY (rowid>?)", byKey + " AND until>?)"},
		"finding superseded decisions":           {"SEARCH n USING INTEGER PRIMARY KEY (rowid>?)", byKey + ")"},
		"hiding a superseded decision":           {"SEARCH decisions USING INTEGER PRIMARY KEY (rowid=?)"},
	}
	for _, st := range statistics {
		t.Run(st.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "plan.db")
			st.setup(t, path)
			s := openAt(t, path)
			defer s.Close()
			var analysed int
			if err := s.w.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'`).Scan(&analysed); err != nil {
				t.Fatal(err)
			}
			if analysed == 1 {
				if err := s.w.QueryRow(`SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'decisions'`).Scan(&analysed); err != nil {
					t.Fatal(err)
				}
			}
			if (analysed > 0) != (st.name != "fresh") {
				t.Fatalf("decisions statistics present: %v", analysed > 0)
			}
			for _, q := range []stmt{beatenStmt(1), supersededStmt(1), hideStmt(1)} {
				access, all := queryPlan(t, s, q.q, q.args...)
				w, ok := want[q.what]
				if !ok {
					t.Fatalf("no expected plan for %q", q.what)
				}
				if !slices.Equal(access, w) {
					t.Errorf("%s: table accesses\n%s\nwant\n%s\n(whole plan: %s)", q.what, strings.Join(access, "\n"), strings.Join(w, "\n"), strings.Join(all, " | "))
				}
				for _, l := range all {
					if strings.Contains(l, "decisions_seq") {
						t.Errorf("%s: plan uses decisions_seq: %s", q.what, strings.Join(all, " | "))
					}
				}
			}
		})
	}
}

// TestInsertPrecedence checks the shown flags and the stream deltas after
// batches with repeated keys and tied durations against a model: per key
// bouncers hold the longest active decision, a held one wins ties against
// new ones and the first inserted wins ties within a batch; a delta carries
// each key whose held decision changed, once.
func TestInsertPrecedence(t *testing.T) {
	for _, st := range statistics {
		t.Run(st.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "precedence.db")
			st.setup(t, path)
			s := openAt(t, path)
			defer s.Close()
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(12, 6))
			type held struct {
				uuid  string
				until int64
			}
			model := map[string]held{} // "value type" -> held decision; setup rows use other values
			base := time.Now().Add(time.Hour).Truncate(time.Second)
			cursor := s.Seq()
			for batch := 0; batch < 8; batch++ {
				n := 1 + rng.IntN(400)
				if batch == 7 {
					n = 1
				}
				ds := make([]NewDecision, 0, n)
				winners := map[string]held{}
				for i := 0; i < n; i++ {
					v := fmt.Sprintf("192.0.2.%d", rng.IntN(60))
					typ := []string{"ban", "captcha"}[rng.IntN(2)]
					d := NewDecision{UUID: fmt.Sprintf("b%d-%d", batch, i), Until: base.Add(time.Duration(rng.IntN(6)) * time.Minute),
						Scenario: "test", Type: typ, Scope: "Ip", Value: v, Origin: "cscli"}
					d.Range, _ = ParseRange(v)
					ds = append(ds, d)
					k := v + " " + typ
					if w, ok := winners[k]; !ok || d.Until.UnixNano() > w.until {
						winners[k] = held{d.UUID, d.Until.UnixNano()}
					}
				}
				changed := map[string]held{}
				for k, w := range winners {
					if h, ok := model[k]; !ok || w.until > h.until {
						model[k], changed[k] = w, w
					}
				}
				pushDecisions(t, s, fmt.Sprintf("batch-%d", batch), ds)

				got := map[string]held{}
				rows, err := s.r.Query(`SELECT value || ' ' || type, uuid, until FROM decisions WHERE active AND shown AND value LIKE '192.0.2.%'`)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var k string
					var h held
					if err := rows.Scan(&k, &h.uuid, &h.until); err != nil {
						t.Fatal(err)
					}
					if _, dup := got[k]; dup {
						t.Errorf("batch %d: %s has two shown active decisions", batch, k)
					}
					got[k] = h
				}
				rows.Close()
				if !equalHeld(got, model) {
					t.Fatalf("batch %d: shown decisions\n%v\nwant\n%v", batch, got, model)
				}

				delta := map[string]held{}
				var deleted int
				next, err := s.Stream(ctx, StreamQuery{Cursor: cursor}, time.Now(), func(d *DecisionRow) error {
					k := d.Value + " " + d.Type
					if _, dup := delta[k]; dup {
						t.Errorf("batch %d: delta carries %s twice", batch, k)
					}
					delta[k] = held{d.UUID, d.Until.UnixNano()}
					return nil
				}, func(*DecisionRow) error { deleted++; return nil })
				if err != nil {
					t.Fatal(err)
				}
				if !equalHeld(delta, changed) || deleted != 0 {
					t.Fatalf("batch %d: delta new %v, %d deleted; want new %v, none deleted", batch, delta, deleted, changed)
				}
				cursor = next
			}
		})
	}
}

func equalHeld[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// BenchmarkInsertOneAlert stores one alert of 1k, 4k and 10k decisions in a
// fresh database and in one whose planner statistics were written at a
// restart (PRAGMA optimize after a few pushes), as on a running LAPI.
func BenchmarkInsertOneAlert(b *testing.B) {
	for _, st := range statistics[:2] {
		for _, n := range []int{1000, 4000, 10000} {
			b.Run(fmt.Sprintf("%s/%d", strings.ReplaceAll(st.name, " ", "-"), n), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					path := filepath.Join(b.TempDir(), "bench.db")
					st.setup(b, path)
					s := openAt(b, path)
					ds := ipBans("bench", n, time.Hour)
					b.StartTimer()
					pushDecisions(b, s, "bench", ds)
					b.StopTimer()
					s.Close()
				}
			})
		}
	}
}
