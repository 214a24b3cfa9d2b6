package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestUsageReportsCapped: a component reporting far too often keeps only
// its newest MaxUsageReports; the others keep all of theirs.
func TestUsageReportsCapped(t *testing.T) {
	ctx := context.Background()
	s := openBench(t)
	first := 0
	if s.d.kind != sqliteDB {
		// A commit costs a server an fsync: the first reports go in one
		// statement, older than the pushed ones, and the cap is applied
		// by the pushes that follow.
		first = MaxUsageReports
		base := time.Now().Add(-time.Hour).UnixNano()
		var q strings.Builder
		q.WriteString(`INSERT INTO usage_metrics (generated_type, generated_by, received_at, payload) VALUES `)
		for i := range first {
			if i > 0 {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, `('remediation_component', 'chatty', %d, '{"n":%d}')`, base+int64(i), i)
		}
		mustExec(t, s, q.String())
	}
	for i := first; i < MaxUsageReports+5; i++ {
		if err := s.StoreUsageMetrics(ctx, "remediation_component", "chatty", `{"n":`+strconv.Itoa(i)+`}`); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if err := s.StoreUsageMetrics(ctx, "remediation_component", "quiet", `{}`); err != nil {
			t.Fatal(err)
		}
	}
	chatty, err := s.UsageReports(ctx, "remediation_component", "chatty")
	if err != nil {
		t.Fatal(err)
	}
	if len(chatty) != MaxUsageReports || chatty[0].Payload != `{"n":5}` || chatty[len(chatty)-1].Payload != `{"n":`+strconv.Itoa(MaxUsageReports+4)+`}` {
		t.Errorf("chatty kept %d reports, %s to %s; want the newest %d", len(chatty), chatty[0].Payload, chatty[len(chatty)-1].Payload, MaxUsageReports)
	}
	quiet, err := s.UsageReports(ctx, "remediation_component", "quiet")
	if err != nil || len(quiet) != 3 {
		t.Errorf("quiet kept %d reports (%v), want 3", len(quiet), err)
	}
}
