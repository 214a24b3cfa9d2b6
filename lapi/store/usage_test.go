package store

import (
	"context"
	"strconv"
	"testing"
)

// TestUsageReportsCapped: a component reporting far too often keeps only
// its newest MaxUsageReports; the others keep all of theirs.
func TestUsageReportsCapped(t *testing.T) {
	ctx := context.Background()
	s := openBench(t)
	for i := range MaxUsageReports + 5 {
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
