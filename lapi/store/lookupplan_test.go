package store

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/dbkind"
	"github.com/rampart-ips/rampart/internal/testdb"
	"github.com/rampart-ips/rampart/models"
)

// lookupCase is one lookup by address or value, and how the index must be
// entered for it to be a seek: by the listed starts (a covering decision
// starts at a masked start), between the range's bounds, or by value.
type lookupCase struct {
	name string
	f    DecisionFilter
	// SQLite's EXPLAIN QUERY PLAN access, PostgreSQL's index condition
	sqlite, pg string
}

func lookupCases(t *testing.T) []lookupCase {
	r := func(v string) *Range {
		x, err := ParseRange(v)
		if err != nil {
			t.Fatal(err)
		}
		return &x
	}
	const covering = "SEARCH decisions USING INDEX decisions_range (ip_size=? AND start_ip=?"
	return []lookupCase{
		{"ip", DecisionFilter{Contains: true, Range: r("10.1.2.3")}, covering, "start_ip = ANY"},
		{"ipv6", DecisionFilter{Contains: true, Range: r("2001:db8::1")}, covering, "start_ip = ANY"},
		{"range", DecisionFilter{Contains: true, Range: r("10.1.2.0/24")}, covering, "start_ip = ANY"},
		{"range contained", DecisionFilter{Range: r("10.1.2.0/24")},
			"SEARCH decisions USING INDEX decisions_range (ip_size=? AND start_ip>? AND start_ip<?)", "start_ip <="},
		{"scope and value", DecisionFilter{Contains: true, Scopes: []string{"Ip"}, Value: "10.1.2.3"},
			"SEARCH decisions USING INDEX decisions_key (value=?", "value ="},
	}
}

// TestLookupPlans: a bouncer in live mode asks for one address on every
// request it filters (GET /v1/decisions?ip=), and DELETE /v1/decisions?ip=
// and an allowlist's new entry end decisions by address: each is a seek of
// decisions_range by the covering starts (or the range's bounds), or of
// decisions_key by value, under every statistics. The lookup by address
// bounded start_ip on one side only and walked every decision starting
// below the address (half the table: 0.2 s at 1M on SQLite, 28 ms and
// parallel workers on PostgreSQL).
func TestLookupPlans(t *testing.T) {
	now := time.Now()
	if testdb.IsSQLite() {
		for _, st := range statistics {
			t.Run(st.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "plan.db")
				st.setup(t, path)
				s := openAt(t, path)
				defer s.Close()
				for _, c := range lookupCases(t) {
					q := queryDecisionsStmt(s.d.kind, c.f, now)
					table, cond, args := deleteCond(s.d.kind, c.f, now.UnixNano())
					del := endStmt(table, cond, args, 1, now.UnixNano(), true)
					for _, x := range []stmt{q, del} {
						access, all := queryPlan(t, s, x.q, x.args...)
						if len(access) != 1 || !strings.HasPrefix(strings.Replace(access[0], "COVERING INDEX", "INDEX", 1), c.sqlite) {
							t.Errorf("%s (%s): %s, want %s", c.name, x.what, strings.Join(all, " | "), c.sqlite)
						}
					}
				}
			})
		}
		return
	}
	// Statistics taken on a small table, then a large one.
	s := grownAfterStatistics(t)
	for _, c := range lookupCases(t) {
		q := queryDecisionsStmt(s.d.kind, c.f, now)
		table, cond, args := deleteCond(s.d.kind, c.f, now.UnixNano())
		del := endStmt(table, cond, args, 1, now.UnixNano(), true)
		for _, x := range []stmt{q, del} {
			plan := serverPlan(t, s, false, x.q, x.args...)
			all := strings.Join(plan, "\n")
			if s.d.kind == postgresDB {
				idx := "decisions_range"
				if c.f.Value != "" {
					idx = "decisions_key"
				}
				if !strings.Contains(all, "Index Scan using "+idx) || !strings.Contains(all, c.pg) || strings.Contains(all, "Seq Scan") {
					t.Errorf("%s (%s): want a seek of %s (%s):\n%s", c.name, x.what, idx, c.pg, all)
				}
				continue
			}
			// MariaDB: one row, the pinned index, entered with few rows to read
			if len(plan) != 1 || !strings.Contains(plan[0], "key="+strings.TrimSuffix(strings.TrimPrefix(lookupFrom(s.d.kind, c.f),
				"decisions FORCE INDEX ("), ")")+" ") || strings.Contains(all, "type=ALL") || !fewRows(plan[0]) {
				t.Errorf("%s (%s): want a seek of the pinned index:\n%s", c.name, x.what, all)
			}
		}
	}
}

// fewRows says whether a MariaDB EXPLAIN line expects to read at most a
// hundred rows (a walk of half of 20,000 decisions expects thousands).
func fewRows(line string) bool {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "rows="); ok {
			return len(v) <= 2 || v == "100"
		}
	}
	return false
}

// TestAlertsByAddressPlan: cscli decisions list -i / alerts list -i find
// the alerts of the decisions an address seek finds; checked alert by
// alert, an import's alert meant reading its 50,000 decisions (1 s at 1M).
func TestAlertsByAddressPlan(t *testing.T) {
	r, err := ParseRange("10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	now := time.Now()
	f := AlertFilter{Range: &r, Contains: true, HasActiveDecision: &yes, Limit: 100}
	conds, args := f.where(testKind(), now.UnixNano())
	q := `SELECT a.id FROM alerts a WHERE ` + strings.Join(conds, " AND ") + ` ORDER BY a.created_at DESC, a.id DESC LIMIT 100`
	if testdb.IsSQLite() {
		for _, st := range statistics {
			t.Run(st.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "plan.db")
				st.setup(t, path)
				s := openAt(t, path)
				defer s.Close()
				_, all := queryPlan(t, s, q, args...)
				// the alerts by id, or all of them with a bloom filter: bounded by
				// the alerts either way; the decisions by address, once
				i := slices.Index(all, "LIST SUBQUERY 1")
				if i < 0 || i+1 == len(all) || !strings.HasPrefix(all[i+1], "SEARCH d USING INDEX decisions_range (ip_size=? AND start_ip=?") {
					t.Errorf("want the alerts of an address seek: %s", strings.Join(all, " | "))
				}
			})
		}
		return
	}
	s := grownAfterStatistics(t)
	all := strings.Join(serverPlan(t, s, false, q, args...), "\n")
	if s.d.kind == postgresDB {
		if !strings.Contains(all, "Index Scan using decisions_range on decisions") || !strings.Contains(all, "start_ip = ANY") {
			t.Errorf("want the alerts of an address seek:\n%s", all)
		}
	} else if !strings.Contains(all, "select_type=MATERIALIZED table=d type=range") || !strings.Contains(all, "key=decisions_range") {
		t.Errorf("want the alerts of an address seek:\n%s", all)
	}
}

// TestUIDecisionsPlan: the dashboard's newest active decisions are a walk
// of the primary key backwards, stopping at the limit; ordered by
// created_at, every active decision was read and sorted (4 s at 1M).
func TestUIDecisionsPlan(t *testing.T) {
	now := time.Now()
	if testdb.IsSQLite() {
		for _, st := range statistics {
			t.Run(st.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "plan.db")
				st.setup(t, path)
				s := openAt(t, path)
				defer s.Close()
				q := uiDecisionsStmt(s.d.kind, now, UIOriginFilter{}, 500)
				if _, all := queryPlan(t, s, q.q, q.args...); !slices.Equal(all, []string{"SCAN decisions"}) {
					t.Errorf("want a walk of the rowids: %s", strings.Join(all, " | "))
				}
			})
		}
		return
	}
	s := grownAfterStatistics(t)
	q := uiDecisionsStmt(s.d.kind, now, UIOriginFilter{}, 500)
	plan := serverPlan(t, s, false, q.q, q.args...)
	all := strings.Join(plan, "\n")
	if s.d.kind == postgresDB {
		if !strings.Contains(all, "Index Scan Backward using decisions_pkey") || strings.Contains(all, "Sort") {
			t.Errorf("want a walk of the primary key:\n%s", all)
		}
	} else if len(plan) != 1 || !strings.Contains(all, "key=PRIMARY ") || strings.Contains(all, "filesort") {
		t.Errorf("want a walk of the primary key:\n%s", all)
	}
}

// TestAlertListPlanMariaDB: cscli decisions list (the newest alerts with
// an active decision and no CAPI one) checks each alert's decisions by
// alert_id. MariaDB turned the EXISTS into IN subqueries it materialised
// whole, reading every decision (4.4 s at 1M); the store's sessions keep
// them correlated.
func TestAlertListPlanMariaDB(t *testing.T) {
	if testdb.Kind() != "mysql" {
		t.Skip("a MariaDB optimizer switch; running on " + testdb.Kind())
	}
	s := grownAfterStatistics(t)
	yes := true
	f := AlertFilter{Contains: true, HasActiveDecision: &yes, Limit: 100}
	conds, args := f.where(testKind(), time.Now().UnixNano())
	q := `SELECT a.id FROM alerts a WHERE ` + strings.Join(conds, " AND ") + ` ORDER BY a.created_at DESC, a.id DESC LIMIT 100`
	all := strings.Join(serverPlan(t, s, false, q, args...), "\n")
	if strings.Contains(all, "MATERIALIZED") || strings.Count(all, "select_type=DEPENDENT SUBQUERY table=d type=ref") != 2 {
		t.Errorf("want each alert's decisions by alert_id:\n%s", all)
	}
}

// TestAlertOriginPlan: "no CAPI or lists decision" (cscli decisions and
// alerts list without --all, the dashboard's alert counts) and "a decision
// of this origin" seek decisions_alert_origin per alert; through
// decisions_alert they read every decision of an import's alert (50,000:
// 0.5 s for the dashboard's counts at 1M on SQLite, 2 s on MariaDB).
func TestAlertOriginPlan(t *testing.T) {
	now := time.Now()
	var qs []stmt
	for _, f := range []AlertFilter{{Limit: 50}, {Origin: "cscli", Limit: 50}} {
		conds, args := f.where(testKind(), now.UnixNano())
		qs = append(qs, stmt{"alerts", `SELECT a.id FROM alerts a WHERE ` + strings.Join(conds, " AND ") + ` ORDER BY a.created_at DESC, a.id DESC LIMIT 50`, args})
	}
	qs = append(qs, stmt{"dashboard", `SELECT COUNT(*) FROM alerts a WHERE a.created_at >= ? AND ` + uiLocalAlerts, []any{int64(0)}})
	if testdb.IsSQLite() {
		for _, st := range statistics {
			t.Run(st.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "plan.db")
				st.setup(t, path)
				s := openAt(t, path)
				defer s.Close()
				for _, q := range qs {
					access, all := queryPlan(t, s, q.q, q.args...)
					for _, a := range access {
						if (strings.HasPrefix(a, "SEARCH d ") || strings.HasPrefix(a, "SCAN d")) &&
							!strings.Contains(a, "decisions_alert_origin (alert_id=? AND origin=?)") {
							t.Errorf("%s: %s", q.what, strings.Join(all, " | "))
						}
					}
				}
			})
		}
		return
	}
	s := grownAfterStatistics(t)
	for i, q := range qs {
		all := strings.Join(serverPlan(t, s, false, q.q, q.args...), "\n")
		if s.d.kind == postgresDB {
			if i == 1 {
				continue // "of this origin": a semi-join, planned by the statistics
			}
			if !strings.Contains(all, "decisions_alert_origin on decisions d") || !strings.Contains(all, "origin =") {
				t.Errorf("%s:\n%s", q.what, all)
			}
		} else if !strings.Contains(all, "table=d type=ref") || !strings.Contains(all, "key=decisions_alert_origin ") ||
			strings.Contains(all, "MATERIALIZED") {
			t.Errorf("%s:\n%s", q.what, all)
		}
	}
}

// testKind is the engine RAMPART_TEST_DB selects.
func testKind() kind {
	switch testdb.Kind() {
	case dbkind.PostgreSQL:
		return postgresDB
	case dbkind.MySQL:
		return mysqlDB
	}
	return sqliteDB
}

// TestAlertScenarioPlanPostgreSQL: cscli decisions list --scenario walks
// the newest alerts and checks each one's decisions through
// decisions_alert_origin. With the statistics ANALYZE samples at 1M (most
// decisions in a few imports' alerts, so few distinct alert_id), PostgreSQL
// made the EXISTS on active decisions a semi-join hashing every active
// decision (0.5-0.8 s), or the scenario's a hashed subplan over every
// decision. The statistics are those of that sample: alert_id's distinct
// count set to what it estimated.
func TestAlertScenarioPlanPostgreSQL(t *testing.T) {
	if testdb.Kind() != dbkind.PostgreSQL {
		t.Skip("PostgreSQL's semi-joins; running on " + testdb.Kind())
	}
	s := grownAfterStatistics(t)
	// the agent's alerts, one decision each, newer than the imports
	now := time.Now()
	var as []NewAlert
	for i := 0; i < 3000; i++ {
		v := spreadIP(uint32(7_000_000 + i))
		rg, err := ParseRange(v)
		if err != nil {
			t.Fatal(err)
		}
		sc := []string{"crowdsecurity/ssh-bf", "crowdsecurity/http-probing"}[i%2]
		u := fmt.Sprintf("agent-%d", i)
		as = append(as, NewAlert{Alert: &models.Alert{Scenario: sc, Source: &models.Source{Scope: "Ip", Value: v, IP: v}},
			UUID: u, MachineID: "m1", StartAt: now, StopAt: now, Decisions: []NewDecision{{UUID: u, Until: now.Add(4 * time.Hour),
				Scenario: sc, Type: "ban", Scope: "Ip", Value: v, Origin: "crowdsec", Range: rg}}})
	}
	if _, err := s.CreateAlerts(context.Background(), as); err != nil {
		t.Fatal(err)
	}
	// alert_id's distinct count as ANALYZE's sample estimated it at 1M:
	// 0.22% of the rows (2,240 for 70,000 alerts)
	mustExec(t, s, `ALTER TABLE decisions ALTER COLUMN alert_id SET (n_distinct = -0.0022)`)
	mustExec(t, s, `ANALYZE`)
	yes := true
	for _, f := range []AlertFilter{
		{Scenario: "crowdsecurity/http-probing", HasActiveDecision: &yes, Limit: 100},
		{HasActiveDecision: &yes, Limit: 100},
	} {
		conds, args := f.where(s.d.kind, time.Now().UnixNano())
		q := `SELECT a.id FROM alerts a WHERE ` + strings.Join(conds, " AND ") + ` ORDER BY a.created_at DESC, a.id DESC LIMIT 100`
		all := strings.Join(serverPlan(t, s, false, q, args...), "\n")
		if strings.Contains(all, "Seq Scan on decisions") || strings.Contains(all, "Hash") ||
			!strings.Contains(all, "Index Scan Backward using alerts_created_at") {
			t.Errorf("scenario %q: want the newest alerts, each one's decisions by alert_id:\n%s", f.Scenario, all)
		}
	}
}
