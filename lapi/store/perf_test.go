package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// fill stores n IPv4 ban decisions in alerts of batch decisions each.
func fill(tb testing.TB, s *Store, n, batch int) {
	tb.Helper()
	ctx := context.Background()
	now := time.Now()
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		ds := make([]NewDecision, 0, end-start)
		for i := start; i < end; i++ {
			v := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
			r, _ := ParseRange(v)
			ds = append(ds, NewDecision{UUID: fmt.Sprintf("00000000-0000-0000-0000-%012d", i), Until: now.Add(4 * time.Hour),
				Scenario: "import", Type: "ban", Scope: "Ip", Value: v, Origin: "cscli-import", Range: r})
		}
		a := &models.Alert{Scenario: "import", Source: &models.Source{Scope: "cscli-import", Value: "import"}}
		if _, err := s.CreateAlerts(ctx, []NewAlert{{Alert: a, UUID: fmt.Sprintf("alert-%d", start), StartAt: now, StopAt: now, Decisions: ds}}); err != nil {
			tb.Fatal(err)
		}
	}
}

func openBench(tb testing.TB) *Store {
	tb.Helper()
	s, err := Open(context.Background(), testConfig(tb, filepath.Join(tb.TempDir(), "bench.db")))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkInsert1M measures storing 1M decisions in 50k-decision alerts.
func BenchmarkInsert1M(b *testing.B) {
	for i := 0; i < b.N; i++ {
		s := openBench(b)
		start := time.Now()
		fill(b, s, 1_000_000, 50_000)
		b.ReportMetric(time.Since(start).Seconds(), "s/1M")
	}
}

// BenchmarkStreamStartup1M measures reading the startup snapshot of 1M.
func BenchmarkStreamStartup1M(b *testing.B) {
	s := openBench(b)
	fill(b, s, 1_000_000, 50_000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		count := func(*DecisionRow) error { n++; return nil }
		if _, err := s.Stream(context.Background(), StreamQuery{Startup: true, Filter: DecisionFilter{Scopes: []string{"Ip", "Range"}}}, time.Now(), count, count); err != nil {
			b.Fatal(err)
		}
		if n != 1_000_000 {
			b.Fatalf("streamed %d", n)
		}
	}
}

// BenchmarkCountActiveDecisions1M measures the cs_active_decisions query
// over 1M active decisions.
func BenchmarkCountActiveDecisions1M(b *testing.B) {
	s := openBench(b)
	fill(b, s, 1_000_000, 50_000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cs, err := s.CountActiveDecisions(context.Background(), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if len(cs) != 1 || cs[0].Count != 1_000_000 {
			b.Fatalf("counted %+v", cs)
		}
	}
}
