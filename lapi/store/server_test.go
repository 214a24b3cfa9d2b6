package store

import (
	"context"
	"testing"
)

// TestPostgresPlansEachExecution: the store's PostgreSQL sessions plan
// every execution of a prepared statement with its values. With the
// default, a push's lookup of its alerts' UUIDs kept the generic plan made
// while the alerts table was small, a sequential scan, as the table grew:
// alert ingest through two LAPIs spent 0.5 ms of server CPU per alert
// instead of 0.2.
func TestPostgresPlansEachExecution(t *testing.T) {
	s := openBench(t)
	if s.d.kind != postgresDB {
		t.Skip("PostgreSQL only")
	}
	var mode string
	if err := s.r.QueryRowContext(context.Background(), `SHOW plan_cache_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "force_custom_plan" {
		t.Fatalf("plan_cache_mode = %s, want force_custom_plan", mode)
	}
}
