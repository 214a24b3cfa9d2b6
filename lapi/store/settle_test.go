package store

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/testdb"

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
	s, err := Open(context.Background(), testConfig(tb, path))
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
		testdb.SkipUnlessSQLite(tb, "SQLite planner statistics")
		s := openAt(tb, path)
		pushDecisions(tb, s, "large", ipBans("large", 5000, time.Hour))
		mustExec(tb, s, `ANALYZE`)
		s.Close()
	}},
	{"statistics favouring decisions_seq", func(tb testing.TB, path string) {
		testdb.SkipUnlessSQLite(tb, "SQLite planner statistics")
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

// TestSettlePlans pins the query plans that keep inserting and ending
// decisions linear under every kind of statistics. Inserted rows are read by
// rowid range and never through decisions_seq (they all share one seq, so a
// per-row search there is quadratic); ended rows are found through
// decisions_seq as the outer loop only; the other rows of their keys through
// decisions_key, searched per key; decisions is never scanned; rows change
// one rowid at a time.
func TestSettlePlans(t *testing.T) {
	testdb.SkipUnlessSQLite(t, "checks SQLite query plans")
	const byKey = "USING INDEX decisions_key (value=? AND type=? AND scope=? AND active=?"
	const ended = "SEARCH e USING INDEX decisions_seq (seq=?)"
	cases := []struct {
		st       stmt
		access   []string
		noSeqIdx bool // an insert statement: decisions_seq must not appear
	}{
		{beatenStmt(1), []string{"SEARCH decisions USING INTEGER PRIMARY KEY (rowid>?)", "SEARCH o " + byKey + " AND until>?)"}, true},
		{supersededStmt(1), []string{"SEARCH n USING INTEGER PRIMARY KEY (rowid>?)", "SEARCH o " + byKey + ")"}, true},
		{hideStmt(1), []string{"SEARCH decisions USING INTEGER PRIMARY KEY (rowid=?)"}, true},
		{olderTombstonesStmt(sqliteDB, 1), []string{ended, "SEARCH o " + byKey + ")"}, false},
		// not covering: each candidate row's simulated flag is read (a key holds a handful of rows)
		{promotedStmt(sqliteDB, 1, 1), []string{ended, "SEARCH a " + byKey + " AND until>?)"}, false},
		{promoteStmt(1, 1), []string{"SEARCH decisions USING INTEGER PRIMARY KEY (rowid=?)"}, false},
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
			for _, c := range cases {
				access, all := queryPlan(t, s, c.st.q, c.st.args...)
				if !slices.Equal(access, c.access) {
					t.Errorf("%s: table accesses\n%s\nwant\n%s\n(whole plan: %s)", c.st.what, strings.Join(access, "\n"),
						strings.Join(c.access, "\n"), strings.Join(all, " | "))
				}
				if c.noSeqIdx && slices.ContainsFunc(all, func(l string) bool { return strings.Contains(l, "decisions_seq") }) {
					t.Errorf("%s: plan uses decisions_seq: %s", c.st.what, strings.Join(all, " | "))
				}
			}
		})
	}
}

// precedenceModel is what bouncers should hold, computed naively.
type precedenceModel struct {
	rows  map[string]*modelRow // by uuid
	order []string             // uuids in insertion order
	held  map[string]string    // key -> uuid of the shown active row
	tomb  map[string]string    // key -> uuid of the shown ended row
}

type modelRow struct {
	key, origin string
	until       int64
	active      bool
}

// longest returns key's longest active row, the first inserted on ties.
func (m *precedenceModel) longest(key string) string {
	best := ""
	for _, u := range m.order {
		r := m.rows[u]
		if r.key == key && r.active && (best == "" || r.until > m.rows[best].until) {
			best = u
		}
	}
	return best
}

// end ends the active rows match selects and returns the stream delta.
func (m *precedenceModel) end(match func(*modelRow) bool) (newRows map[string]string, deleted map[string]bool) {
	newRows, deleted = map[string]string{}, map[string]bool{}
	ended := map[string]bool{}
	for _, u := range m.order {
		if r := m.rows[u]; r.active && match(r) {
			r.active = false
			if m.held[r.key] == u {
				ended[r.key] = true
				delete(m.held, r.key)
				m.tomb[r.key] = u
				deleted[u] = true
			}
		}
	}
	for k := range ended {
		if u := m.longest(k); u != "" {
			m.held[k], newRows[k] = u, u
		}
	}
	return newRows, deleted
}

// TestDecisionPrecedence checks shown flags, startup streams and deltas
// after random inserts (repeated keys, tied durations, several alerts in one
// transaction) and deletions against a model: per key bouncers hold the
// longest active decision, a held one wins ties against new ones and the
// first inserted wins ties within a transaction; when the held one ends it
// is reported deleted once and the longest remaining one is promoted; a
// delta carries each change once.
func TestDecisionPrecedence(t *testing.T) {
	for _, st := range statistics {
		t.Run(st.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "precedence.db")
			st.setup(t, path)
			s := openAt(t, path)
			defer s.Close()
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(12, 6))
			m := &precedenceModel{rows: map[string]*modelRow{}, held: map[string]string{}, tomb: map[string]string{}}
			mine := func(v string) bool { return strings.HasPrefix(v, "192.0.2.") } // setup rows use other values
			base := time.Now().Add(time.Hour).Truncate(time.Second)
			cursor := s.Seq()
			for step := 0; step < 30; step++ {
				var wantNew map[string]string
				var wantDeleted map[string]bool
				switch op := rng.IntN(10); {
				case op < 6 || step < 3: // one transaction of one to three alerts
					var alerts []NewAlert
					winners := map[string]string{}
					for a := 0; a < 1+rng.IntN(3); a++ {
						n := 1 + rng.IntN(200)
						ds := make([]NewDecision, 0, n)
						for i := 0; i < n; i++ {
							v := fmt.Sprintf("192.0.2.%d", rng.IntN(50))
							typ := []string{"ban", "captcha"}[rng.IntN(2)]
							origin := []string{"cscli", "crowdsec"}[rng.IntN(2)]
							d := NewDecision{UUID: fmt.Sprintf("s%d-a%d-%d", step, a, i), Until: base.Add(time.Duration(rng.IntN(6)) * time.Minute),
								Scenario: "test", Type: typ, Scope: "Ip", Value: v, Origin: origin}
							d.Range, _ = ParseRange(v)
							ds = append(ds, d)
							k := v + " " + typ
							m.rows[d.UUID] = &modelRow{key: k, origin: origin, until: d.Until.UnixNano(), active: true}
							m.order = append(m.order, d.UUID)
							if w, ok := winners[k]; !ok || m.rows[d.UUID].until > m.rows[w].until {
								winners[k] = d.UUID
							}
						}
						now := time.Now()
						alerts = append(alerts, NewAlert{Alert: &models.Alert{Scenario: "test", Source: &models.Source{Scope: "test", Value: "x"}},
							UUID: fmt.Sprintf("s%d-a%d", step, a), StartAt: now, StopAt: now, Decisions: ds})
					}
					wantNew, wantDeleted = map[string]string{}, map[string]bool{}
					for k, w := range winners {
						if h, ok := m.held[k]; !ok || m.rows[w].until > m.rows[h].until {
							m.held[k], wantNew[k] = w, w
						}
					}
					if _, err := s.CreateAlerts(ctx, alerts); err != nil {
						t.Fatal(err)
					}
				case op < 8: // cscli decisions delete --origin
					origin := []string{"cscli", "crowdsec"}[rng.IntN(2)]
					v := fmt.Sprintf("192.0.2.%d", rng.IntN(50))
					if _, err := s.DeleteDecisions(ctx, DecisionFilter{Origins: []string{origin}, Value: v}); err != nil {
						t.Fatal(err)
					}
					wantNew, wantDeleted = m.end(func(r *modelRow) bool { return r.origin == origin && strings.HasPrefix(r.key, v+" ") })
				default: // cscli decisions delete --id of a held decision
					keys := slices.Sorted(maps.Keys(m.held))
					if len(keys) == 0 {
						continue
					}
					u := m.held[keys[rng.IntN(len(keys))]]
					var id int64
					if err := s.r.QueryRow(`SELECT id FROM decisions WHERE uuid = ?`, u).Scan(&id); err != nil {
						t.Fatal(err)
					}
					if err := s.DeleteDecision(ctx, id); err != nil {
						t.Fatal(err)
					}
					wantNew, wantDeleted = m.end(func(r *modelRow) bool { return r == m.rows[u] })
				}

				gotHeld, gotTomb := map[string]string{}, map[string]string{}
				rows, err := s.r.Query(`SELECT id, value || ' ' || type, uuid, active FROM decisions WHERE shown AND value LIKE '192.0.2.%'`)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var id int64
					var k, u string
					var active bool
					if err := rows.Scan(&id, &k, &u, &active); err != nil {
						t.Fatal(err)
					}
					into := map[bool]map[string]string{true: gotHeld, false: gotTomb}[active]
					if _, dup := into[k]; dup {
						t.Errorf("step %d: %s has two shown decisions with active=%v", step, k, active)
					}
					into[k] = u
				}
				rows.Close()
				if !maps.Equal(gotHeld, m.held) || !maps.Equal(gotTomb, m.tomb) {
					t.Fatalf("step %d: shown decisions\n%v\n%v\nwant\n%v\n%v", step, gotHeld, gotTomb, m.held, m.tomb)
				}

				gotNew, gotDeleted := map[string]string{}, map[string]bool{}
				next, err := s.Stream(ctx, StreamQuery{Cursor: cursor}, time.Now(), func(d *DecisionRow) error {
					if !mine(d.Value) {
						return nil
					}
					k := d.Value + " " + d.Type
					if _, dup := gotNew[k]; dup {
						t.Errorf("step %d: delta carries %s twice", step, k)
					}
					gotNew[k] = d.UUID
					return nil
				}, func(d *DecisionRow) error {
					if gotDeleted[d.UUID] {
						t.Errorf("step %d: delta deletes %s twice", step, d.UUID)
					}
					gotDeleted[d.UUID] = true
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if !maps.Equal(gotNew, wantNew) || !maps.Equal(gotDeleted, wantDeleted) {
					t.Fatalf("step %d: delta new %v deleted %v; want new %v deleted %v", step, gotNew, gotDeleted, wantNew, wantDeleted)
				}
				cursor = next
			}
		})
	}
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

// BenchmarkDeleteDecisions ends 1k, 4k and 10k decisions at once (cscli
// decisions delete, or their expiry) with and without statistics.
func BenchmarkDeleteDecisions(b *testing.B) {
	for _, st := range statistics[:2] {
		for _, n := range []int{1000, 4000, 10000} {
			b.Run(fmt.Sprintf("%s/%d", strings.ReplaceAll(st.name, " ", "-"), n), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					path := filepath.Join(b.TempDir(), "bench.db")
					st.setup(b, path)
					s := openAt(b, path)
					pushDecisions(b, s, "bench", ipBans("bench", n, time.Hour))
					b.StartTimer()
					if _, err := s.DeleteDecisions(context.Background(), DecisionFilter{Scenario: "test"}); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					s.Close()
				}
			})
		}
	}
}

// TestStreamDeltaPlan: a delta is read through decisions_seq whatever the
// statistics, so each bouncer's poll costs O(delta) and never a scan of
// every decision (a planner fed statistics from a small table scanned).
func TestStreamDeltaPlan(t *testing.T) {
	testdb.SkipUnlessSQLite(t, "checks SQLite query plans")
	for _, st := range statistics {
		t.Run(st.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "plan.db")
			st.setup(t, path)
			s := openAt(t, path)
			defer s.Close()
			for _, active := range []bool{true, false} {
				for _, f := range []DecisionFilter{{}, {Scopes: []string{"ip", "range"}}, {Origins: []string{"crowdsec"}}} {
					q := streamStmt(StreamQuery{Cursor: 5, Filter: f}, active, time.Now())
					access, all := queryPlan(t, s, q.q, q.args...)
					if len(access) != 1 || !strings.HasPrefix(access[0], "SEARCH decisions USING INDEX decisions_seq (seq>?)") {
						t.Errorf("delta (active=%v, %+v): %s", active, f, strings.Join(all, " | "))
					}
				}
			}
		})
	}
}

// grownAfterStatistics opens a server store whose statistics were taken on
// a handful of decisions lasting an hour before it grew to 20k lasting ten,
// as when an import follows a restart.
func grownAfterStatistics(t *testing.T) *Store {
	t.Helper()
	s := openAt(t, filepath.Join(t.TempDir(), "plan.db"))
	t.Cleanup(func() { s.Close() })
	pushDecisions(t, s, "few", ipBans("few", 10, time.Hour))
	if s.d.kind == postgresDB {
		mustExec(t, s, `ANALYZE`)
	} else {
		mustExec(t, s, `ANALYZE TABLE decisions`)
	}
	for i := 0; i < 4; i++ {
		pushDecisions(t, s, fmt.Sprintf("big-%d", i), ipBans(fmt.Sprintf("big-%d", i), 5000, 10*time.Hour))
	}
	return s
}

// serverPlan returns the lines of a server's EXPLAIN of q, each column as
// name=value, run in a write transaction (pinned: inside pinnedPlans).
func serverPlan(t *testing.T, s *Store, pinned bool, q string, args ...any) []string {
	t.Helper()
	var plan []string
	explain := func(tx *wtx) error {
		rows, err := tx.QueryContext(tx.ctx, "EXPLAIN "+q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			var line []string
			for i, v := range vals {
				line = append(line, cols[i]+"="+v.String)
			}
			plan = append(plan, strings.Join(line, " "))
		}
		return rows.Err()
	}
	err := s.write(context.Background(), func(tx *wtx) error {
		if pinned {
			return pinnedPlans(tx, func() error { return explain(tx) })
		}
		return explain(tx)
	})
	if err != nil {
		t.Fatalf("explaining %s: %v", q, err)
	}
	return plan
}

// TestSettlePlansServer pins, on PostgreSQL and MariaDB, the plan of the
// statement settling a push's new decisions: new rows read by id range,
// held ones through decisions_key, never a scan, hash or sort of decisions.
// Planned freely with statistics from a small table, both servers drove
// the join from the held rows (or hashed them all), reading the whole
// table once per push.
func TestSettlePlansServer(t *testing.T) {
	if testdb.IsSQLite() {
		t.Skip("checks server query plans; TestSettlePlans covers SQLite")
	}
	s := grownAfterStatistics(t)
	var after int64
	if err := s.r.QueryRow(`SELECT MAX(id) - 5000 FROM decisions`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	st := pairsStmt(s.d.kind, after)
	plan := serverPlan(t, s, true, st.q, st.args...)
	all := strings.Join(plan, "\n")
	var want, never []string
	if s.d.kind == postgresDB {
		want = []string{"Nested Loop", "on decisions n", "decisions_pkey", "Index Scan using decisions_key on decisions o"}
		never = []string{"Seq Scan", "Hash", "Sort", "Merge"}
		// n is the outer side: it comes first.
		if i, j := strings.Index(all, "decisions n"), strings.Index(all, "decisions o"); i < 0 || j < i {
			t.Errorf("new rows are not the outer side:\n%s", all)
		}
	} else {
		if len(plan) != 2 || !strings.Contains(plan[0], "table=n ") || !strings.Contains(plan[0], "key=PRIMARY ") ||
			!strings.Contains(plan[1], "table=o ") || !strings.Contains(plan[1], "key=decisions_key ") {
			t.Errorf("want n by PRIMARY then o by decisions_key:\n%s", all)
		}
		never = []string{"type=ALL", "filesort", "join buffer"}
	}
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("plan lacks %q:\n%s", w, all)
		}
	}
	for _, w := range never {
		if strings.Contains(all, w) {
			t.Errorf("plan has %q:\n%s", w, all)
		}
	}
}

// TestSweepProbePlan: the expiry probe, run every second and before every
// stream pull, seeks into decisions_active_until on every engine and
// under every statistics (it read every active decision on SQLite and
// MariaDB, and PostgreSQL scanned the table when its statistics were old).
func TestSweepProbePlan(t *testing.T) {
	if testdb.IsSQLite() {
		for _, st := range statistics {
			t.Run(st.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "plan.db")
				st.setup(t, path)
				s := openAt(t, path)
				defer s.Close()
				access, all := queryPlan(t, s, sweepProbeSQL)
				want := []string{"SEARCH decisions USING COVERING INDEX decisions_active_until (active=?)"}
				if !slices.Equal(access, want) || slices.ContainsFunc(all, func(l string) bool { return strings.Contains(l, "TEMP B-TREE") }) {
					t.Errorf("sweep probe: %s", strings.Join(all, " | "))
				}
			})
		}
		return
	}
	// Statistics taken on a small table, then a large one: the plan must
	// still read the index in order and stop at its first entry.
	s := grownAfterStatistics(t)
	all := strings.Join(serverPlan(t, s, false, sweepProbeSQL), "\n")
	if s.d.kind == postgresDB {
		if !strings.Contains(all, "Index Only Scan using decisions_active_until") || strings.Contains(all, "Seq Scan") || strings.Contains(all, "Sort") {
			t.Errorf("sweep probe:\n%s", all)
		}
	} else if !strings.Contains(all, "type=ref ") || !strings.Contains(all, "key=decisions_active_until ") || strings.Contains(all, "filesort") {
		// ref on active, read in until order: the first entry is the answer.
		t.Errorf("sweep probe:\n%s", all)
	}
}

// TestSettleEndedPlansServer pins, on PostgreSQL and MariaDB, the plans of
// settling ended decisions (every deletion and sweep): the ended rows by
// decisions_seq, the other rows of their keys by decisions_key. With
// statistics taken before any decision ended, PostgreSQL read the other
// rows through decisions_active_until (every ended decision, per ended
// row) and MariaDB read both sides that way.
func TestSettleEndedPlansServer(t *testing.T) {
	if testdb.IsSQLite() {
		t.Skip("checks server query plans; TestSettlePlans covers SQLite")
	}
	s := grownAfterStatistics(t)
	r, err := ParseRange("10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteDecisions(context.Background(), DecisionFilter{Range: &r, Contains: true}); err != nil || n == 0 {
		t.Fatalf("ending decisions: %d, %v", n, err)
	}
	seq := s.Seq()
	for _, st := range []struct {
		st    stmt
		other string // alias of the key's other rows
	}{{olderTombstonesStmt(s.d.kind, seq), "o"}, {promotedStmt(s.d.kind, seq, time.Now().UnixNano()), "a"}} {
		plan := serverPlan(t, s, false, st.st.q, st.st.args...)
		all := strings.Join(plan, "\n")
		if s.d.kind == postgresDB {
			if !strings.Contains(all, "using decisions_seq on decisions e") || !strings.Contains(all, "using decisions_key on decisions "+st.other) ||
				strings.Contains(all, "decisions_active_until") || strings.Contains(all, "Seq Scan") {
				t.Errorf("%s:\n%s", st.st.what, all)
			}
			continue
		}
		if !strings.Contains(all, "table=e type=ref possible_keys=") || !strings.Contains(all, "key=decisions_seq ") ||
			!strings.Contains(all, "table="+st.other+" type=ref") || !strings.Contains(all, "key=decisions_key ") ||
			strings.Contains(all, "key=decisions_active_until") {
			t.Errorf("%s:\n%s", st.st.what, all)
		}
	}
}
