package store

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/testdb"
	"github.com/rampart-ips/rampart/models"
)

// TestReadPaths1M times the read paths over a database holding a million
// active decisions, as an installation reaches it: imports of several
// origins, alerts, ended rows, planner statistics taken, store reopened.
// A measurement, not a check: it runs only with RAMPART_READPATHS=<name>
// (the database kept between runs: SQLite file /tmp/<name>.db, or server
// database <name>), on the engine RAMPART_TEST_DB selects.
func TestReadPaths1M(t *testing.T) {
	name := os.Getenv("RAMPART_READPATHS")
	if name == "" {
		t.Skip("a measurement: set RAMPART_READPATHS=<database name> to run it")
	}
	ctx := context.Background()
	cfg := Config{Type: testdb.Kind(), Path: "/tmp/" + name + ".db", DBName: name, Host: "127.0.0.1"}
	switch cfg.Type {
	case "postgresql":
		cfg.User = "postgres"
	case "mysql":
		cfg.User = "root"
	}
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := s.QueryRowForTest(`SELECT COUNT(*) FROM decisions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		start := time.Now()
		load1M(t, s)
		t.Logf("loaded in %v", time.Since(start))
		analyze := map[string]string{"sqlite": "ANALYZE", "postgresql": "ANALYZE", "mysql": "ANALYZE TABLE decisions, alerts"}[cfg.Type]
		if err := s.ExecForTest(analyze); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if s, err = Open(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var active int64
	if err := s.QueryRowForTest(`SELECT COUNT(*) FROM decisions WHERE active = TRUE`).Scan(&active); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d decisions, %d active", cfg.Type, n, active)

	// RAMPART_READPATHS_OFF picks other addresses (a run's deletions end
	// the decisions of its own)
	off, _ := strconv.Atoi(os.Getenv("RAMPART_READPATHS_OFF"))
	ips := make([]string, 0, 1000)
	for i := 0; i < 1000; i++ {
		if i%2 == 0 {
			ips = append(ips, spreadIP(uint32(i*997+off)))
		} else {
			ips = append(ips, spreadIP(uint32(5_000_000+i)))
		}
	}
	now := time.Now()
	timeit := func(what string, reps int, fn func(i int) error) {
		// one warm-up, then reps; per op: median
		if err := fn(0); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		d := make([]time.Duration, reps)
		for i := 0; i < reps; i++ {
			st := time.Now()
			if err := fn(i + 1); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			d[i] = time.Since(st)
		}
		sort.Slice(d, func(a, b int) bool { return d[a] < d[b] })
		fmt.Printf("READPATH %s\t%s\tmedian %v\tmax %v\n", cfg.Type, what, d[reps/2], d[reps-1])
	}
	r := func(v string) *Range {
		x, err := ParseRange(v)
		if err != nil {
			t.Fatal(err)
		}
		return &x
	}
	qd := func(f DecisionFilter) error { _, err := s.QueryDecisions(ctx, f, now); return err }
	timeit("GET /v1/decisions?ip=", 400, func(i int) error { return qd(DecisionFilter{Contains: true, Range: r(ips[i%len(ips)])}) })
	timeit("GET /v1/decisions?range=/24", 100, func(i int) error {
		return qd(DecisionFilter{Contains: true, Range: r(ips[i%len(ips)] + "/24")})
	})
	timeit("GET /v1/decisions?range=/24&contains=false", 100, func(i int) error {
		return qd(DecisionFilter{Range: r(ips[i%len(ips)] + "/24")})
	})
	timeit("GET /v1/decisions?scope=ip&value=", 400, func(i int) error {
		return qd(DecisionFilter{Contains: true, Scopes: []string{"Ip"}, Value: ips[i%len(ips)]})
	})
	timeit("GET /v1/decisions?type=ban&origins=crowdsec&limit=100", 10, func(i int) error {
		return qd(DecisionFilter{Contains: true, Type: "ban", Origins: []string{"crowdsec"}, Limit: 100})
	})
	yes := true
	qa := func(f AlertFilter) error { f.Contains = true; _, err := s.QueryAlerts(ctx, f, now); return err }
	timeit("cscli decisions list", 5, func(int) error { return qa(AlertFilter{Limit: 100, HasActiveDecision: &yes}) })
	timeit("cscli decisions list -i", 50, func(i int) error {
		return qa(AlertFilter{Limit: 100, HasActiveDecision: &yes, Range: r(ips[i%len(ips)])})
	})
	timeit("cscli decisions list -r /16", 20, func(i int) error {
		return qa(AlertFilter{Limit: 100, HasActiveDecision: &yes, Range: r(ips[i%len(ips)] + "/16")})
	})
	timeit("cscli decisions list --origin crowdsec", 5, func(int) error {
		return qa(AlertFilter{Limit: 100, HasActiveDecision: &yes, Origin: "crowdsec"})
	})
	timeit("cscli decisions list --origin lists", 3, func(int) error {
		return qa(AlertFilter{Limit: 100, HasActiveDecision: &yes, Origin: "lists"})
	})
	timeit("cscli decisions list --scenario", 5, func(int) error {
		return qa(AlertFilter{Limit: 100, HasActiveDecision: &yes, Scenario: "crowdsecurity/http-probing"})
	})
	timeit("cscli decisions list --type ban", 5, func(int) error {
		return qa(AlertFilter{Limit: 100, HasActiveDecision: &yes, DecisionType: "ban"})
	})
	timeit("cscli decisions list --all", 1, func(int) error {
		return qa(AlertFilter{IncludeCAPI: true, HasActiveDecision: &yes})
	})
	timeit("cscli alerts list", 5, func(int) error { return qa(AlertFilter{Limit: 50}) })
	timeit("cscli alerts list -i", 50, func(i int) error { return qa(AlertFilter{Limit: 50, Range: r(ips[i%len(ips)])}) })
	timeit("metrics CountActiveDecisions", 5, func(int) error { _, err := s.CountActiveDecisions(ctx, now); return err })
	timeit("metrics CountAlertsByScenario", 5, func(int) error { _, err := s.CountAlertsByScenario(ctx); return err })
	timeit("UI decisions list", 5, func(int) error { _, err := s.UIActiveDecisions(ctx, now, UIOriginFilter{}, 501); return err })
	timeit("UI alerts per hour", 5, func(int) error { _, _, err := s.UIAlertsPerHour(ctx, now, 24); return err })
	timeit("UI top scenarios", 5, func(int) error {
		_, err := s.UITopAlerts(ctx, "scenario", now.Add(-24*time.Hour), 10)
		return err
	})
	timeit("profiles CountDecisions", 400, func(i int) error {
		_, err := s.CountDecisions(ctx, ips[i%len(ips)], now.Add(-time.Hour), now)
		return err
	})
	// writes: a few targeted deletions, the allowlist's, the sweep
	timeit("DELETE /v1/decisions?ip=", 100, func(i int) error {
		_, err := s.DeleteDecisions(ctx, DecisionFilter{Contains: true, Range: r(ips[(i*2)%len(ips)])})
		return err
	})
	timeit("allowlist add: end decisions in range", 100, func(i int) error {
		_, err := s.DeleteDecisions(ctx, DecisionFilter{Range: r(ips[(i*2+400)%len(ips)])})
		return err
	})
	pushExpiring(t, s, "sweep-"+strconv.FormatInt(time.Now().UnixNano(), 36), 2000)
	time.Sleep(1100 * time.Millisecond)
	timeit("SweepExpired (2000 due)", 1, func(i int) error {
		if i == 0 {
			return nil // no warm-up: it would sweep them
		}
		n, err := s.SweepExpired(ctx, time.Now())
		t.Logf("swept %d", n)
		return err
	})
	timeit("SweepExpired probe (none due)", 20, func(int) error {
		s.expMu.Lock()
		s.expNext = 0
		s.expMu.Unlock()
		_, err := s.SweepExpired(ctx, time.Now())
		return err
	})
	if os.Getenv("RAMPART_READPATHS_DELETE_ALL") == "1" {
		timeit("cscli decisions delete --all", 1, func(i int) error {
			if i == 0 {
				return nil
			}
			n, err := s.DeleteDecisions(ctx, DecisionFilter{})
			t.Logf("deleted %d", n)
			return err
		})
	}
}

// spreadIP is the n-th address of a bijective spread over IPv4.
func spreadIP(n uint32) string {
	v := n * 2654435761
	return fmt.Sprintf("%d.%d.%d.%d", v>>24, v>>16&255, v>>8&255, v&255)
}

// load1M stores 950,000 imported decisions in 50,000-decision alerts (lists,
// CAPI, cscli-import; one in a hundred a /24) and 50,000 alerts of the agent
// with one decision each, plus 20,000 that have expired and been swept.
func load1M(t *testing.T, s *Store) {
	ctx := context.Background()
	now := time.Now()
	next := uint32(0)
	for b := 0; b < 19; b++ {
		origin, scenario, scope := "lists", "lists:firehol_"+strconv.Itoa(b), "lists:firehol_"+strconv.Itoa(b)
		if b >= 10 && b < 15 {
			origin, scenario, scope = "CAPI", "crowdsecurity/ssh-bf", "crowdsecurity/community-blocklist"
		} else if b >= 15 {
			origin, scenario, scope = "cscli-import", "manual import", "cscli-import"
		}
		ds := make([]NewDecision, 0, 50000)
		for i := 0; i < 50000; i++ {
			v, sc := spreadIP(next), "Ip"
			next++
			if i%100 == 0 {
				v, sc = v[:lastDot(v)]+".0/24", "Range"
			}
			rg, err := ParseRange(v)
			if err != nil {
				t.Fatal(err)
			}
			ds = append(ds, NewDecision{UUID: fmt.Sprintf("imp-%d-%d", b, i), Until: now.Add(time.Duration(24+b) * time.Hour),
				Scenario: scenario, Type: "ban", Scope: sc, Value: v, Origin: origin, Range: rg})
		}
		a := &models.Alert{Scenario: scenario, Source: &models.Source{Scope: scope, Value: strconv.Itoa(b)}}
		if _, err := s.CreateAlerts(ctx, []NewAlert{{Alert: a, UUID: fmt.Sprintf("imp-%d", b), StartAt: now, StopAt: now, Decisions: ds}}); err != nil {
			t.Fatal(err)
		}
	}
	scenarios := []string{"crowdsecurity/ssh-bf", "crowdsecurity/http-probing", "crowdsecurity/http-crawl-non_statics",
		"crowdsecurity/http-bad-user-agent", "crowdsecurity/ssh-slow-bf"}
	for b := 0; b < 100; b++ {
		var as []NewAlert
		for i := 0; i < 500; i++ {
			v := spreadIP(next)
			next++
			rg, _ := ParseRange(v)
			sc := scenarios[(b*500+i)%len(scenarios)]
			typ := "ban"
			if i%10 == 0 {
				typ = "captcha"
			}
			u := fmt.Sprintf("agent-%d-%d", b, i)
			as = append(as, NewAlert{Alert: &models.Alert{Scenario: sc, Source: &models.Source{Scope: "Ip", Value: v, IP: v}},
				UUID: u, MachineID: "m1", StartAt: now, StopAt: now, Decisions: []NewDecision{{UUID: u, Until: now.Add(4 * time.Hour),
					Scenario: sc, Type: typ, Scope: "Ip", Value: v, Origin: "crowdsec", Range: rg}}})
		}
		if _, err := s.CreateAlerts(ctx, as); err != nil {
			t.Fatal(err)
		}
	}
	for b := 0; b < 10; b++ {
		pushExpiring(t, s, fmt.Sprintf("exp-%d", b), 2000)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, err := s.SweepExpired(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func lastDot(v string) int {
	for i := len(v) - 1; i >= 0; i-- {
		if v[i] == '.' {
			return i
		}
	}
	return 0
}

// pushExpiring stores n agent alerts whose decision ends in a second.
func pushExpiring(t *testing.T, s *Store, tag string, n int) {
	now := time.Now()
	var as []NewAlert
	for i := 0; i < n; i++ {
		v := spreadIP(uint32(3_000_000_000) + uint32(i))
		rg, _ := ParseRange(v)
		u := fmt.Sprintf("%s-%d", tag, i)
		as = append(as, NewAlert{Alert: &models.Alert{Scenario: "crowdsecurity/ssh-bf", Source: &models.Source{Scope: "Ip", Value: v, IP: v}},
			UUID: u, MachineID: "m1", StartAt: now, StopAt: now, Decisions: []NewDecision{{UUID: u, Until: now.Add(time.Second),
				Scenario: "crowdsecurity/ssh-bf", Type: "ban", Scope: "Ip", Value: v, Origin: "crowdsec", Range: rg}}})
	}
	if _, err := s.CreateAlerts(context.Background(), as); err != nil {
		t.Fatal(err)
	}
}
