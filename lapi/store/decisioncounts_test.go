package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/testdb"
)

// TestCountPlan pins the counts' plan: a search of decisions_range by
// ip_size and the listed starts, under every kind of statistics, never a
// scan of the decisions starting below the value.
func TestCountPlan(t *testing.T) {
	testdb.SkipUnlessSQLite(t, "checks SQLite query plans")
	for _, st := range statistics {
		t.Run(st.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "plan.db")
			st.setup(t, path)
			s := openAt(t, path)
			defer s.Close()
			for _, v := range []string{"10.0.0.7", "2001:db8::1", "10.0.0.0/8"} {
				c, err := countStmt(v, time.Now(), time.Now())
				if err != nil {
					t.Fatal(err)
				}
				access, all := queryPlan(t, s, c.q, c.args...)
				want := "SEARCH decisions USING INDEX decisions_range (ip_size=? AND start_ip=?"
				if len(access) != 1 || !strings.HasPrefix(access[0], want) {
					t.Errorf("%s: table accesses %q, want %q (whole plan: %s)", v, access, want, strings.Join(all, " | "))
				}
			}
		})
	}
}

// The counts' index probes find every covering decision: each prefix
// length of IPv4 and IPv6, upper and lower halves.
func TestCountCoveringPrefixes(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "c.db"))
	defer s.Close()
	var ds []NewDecision
	add := func(v string) {
		r, err := ParseRange(v)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, NewDecision{UUID: v, Until: time.Now().Add(time.Hour), Scenario: "t", Type: "ban", Scope: "Range", Value: v,
			Origin: "cscli", Range: r})
	}
	for _, v := range []string{"0.0.0.0/0", "128.0.0.0/1", "203.0.113.0/24", "203.0.113.77/32", "203.0.113.76/31", "203.0.0.0/16",
		"::/0", "2001:db8::/32", "2001:db8:1:2::/64", "2001:db8:1:2:8000::/65", "2001:db8:1:2:ffff::/80", "2001:db8:1:2:ffff::1/128",
		"2001:db8:1:3::/64"} {
		add(v)
	}
	pushDecisions(t, s, "prefixes", ds)
	for v, want := range map[string]int{
		"203.0.113.77":             6,
		"203.0.113.76":             5, // not the /32 .77
		"203.0.114.1":              3,
		"10.0.0.1":                 1,
		"2001:db8:1:2:ffff::1":     6,
		"2001:db8:1:2:ffff::2":     5,
		"2001:db8:1:2::1":          3,
		"2001:db8:1:2:8000::/65":   4, // itself, the /64, the /32, ::/0
		"2001:db8:1:3:ffff::1/128": 3,
	} {
		c, err := s.CountDecisions(context.Background(), v, time.Time{}, time.Now())
		if err != nil || c.Total != want || c.Active != want {
			t.Errorf("%s: %+v, %v; want %d", v, c, err, want)
		}
	}
	if _, err := s.CountDecisions(context.Background(), "alice", time.Time{}, time.Now()); err == nil {
		t.Error("counting alice: no error")
	}
}

// BenchmarkCountDecisions1M measures the decision helpers' query for one
// address among 1M decisions, against the same count by range condition
// alone (what the prefix list avoids: a walk of every decision starting
// below the address).
func BenchmarkCountDecisions1M(b *testing.B) {
	s := openBench(b)
	fill(b, s, 1_000_000, 50_000)
	const v = "10.8.66.3" // decision #542275, past the middle of the index
	b.Run("prefixes", func(b *testing.B) {
		for b.Loop() {
			c, err := s.CountDecisions(context.Background(), v, time.Time{}, time.Now())
			if err != nil || c.Total != 1 {
				b.Fatalf("%+v %v", c, err)
			}
		}
	})
	b.Run("range-only", func(b *testing.B) {
		r, _ := ParseRange(v)
		cond, args := rangeCond(r, true, "")
		for b.Loop() {
			var n int
			if err := s.r.QueryRow(`SELECT COUNT(*) FROM decisions WHERE `+cond, args...).Scan(&n); err != nil || n != 1 {
				b.Fatalf("%d %v", n, err)
			}
		}
	})
}
