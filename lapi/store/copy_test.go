package store

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/testdb"
)

// TestCopyTablesCoverSchema fails when a migration adds a table CopyTo
// does not know: list it in copyTables (or derivedTables) in the order
// its references need.
func TestCopyTablesCoverSchema(t *testing.T) {
	s, err := Open(context.Background(), Config{Path: filepath.Join(t.TempDir(), "c.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.r.QueryContext(context.Background(), `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	known := append(append([]string{"counters", "schema_migrations"}, copyTables...), derivedTables...)
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(known, name) {
			t.Errorf("table %s is not copied by CopyTo: add it to copyTables", name)
		}
	}
}

// BenchmarkCopyTo copies a SQLite database of RAMPART_COPY_DECISIONS
// active decisions (10000 by default; 1000000 for the README's figures)
// and a hundredth as many alerts to each server, once per iteration.
// The cpu-s/op metric is this process's CPU (reading SQLite, encoding),
// not the server's.
func BenchmarkCopyTo(b *testing.B) {
	n := 10000
	if v := os.Getenv("RAMPART_COPY_DECISIONS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	src, err := Open(ctx, Config{Path: filepath.Join(b.TempDir(), "src.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	fillForCopy(b, src, n)
	for _, kind := range []string{"postgresql", "mysql"} {
		b.Run(kind, func(b *testing.B) {
			d := testdb.ConfigFor(b, kind, filepath.Join(b.TempDir(), "bench-"+kind))
			dst, err := Open(ctx, Config{Type: d.Type, Host: d.Host, Port: d.Port, User: d.User, Password: d.Password, DBName: d.Name})
			if err != nil {
				b.Fatal(err)
			}
			defer dst.Close()
			var cpu time.Duration
			b.ResetTimer()
			for b.Loop() {
				before := procCPU()
				counts, err := CopyTo(ctx, src, dst, CopyOptions{Force: true})
				cpu += procCPU() - before
				if err != nil {
					b.Fatal(err)
				}
				if counts[6].Table != "decisions" || counts[6].Rows != int64(n) {
					b.Fatalf("copied %v", counts)
				}
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

func procCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fillForCopy stores n active decisions and n/100 alerts in src with SQL
// (the store's own paths would take minutes for 1M).
func fillForCopy(tb testing.TB, src *Store, n int) {
	tb.Helper()
	now := time.Now().UnixNano()
	alerts := max(n/100, 1)
	if err := src.ExecForTest(`WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < ?)
INSERT INTO alerts (uuid, machine_id, created_at, scenario, started_at, stopped_at, source_scope, source_value, source_ip, events_count, events)
SELECT 'a-' || x, 'agent1', ?, 'bench/scenario', ?, ?, 'Ip', '10.0.0.' || (x % 250), '10.0.0.' || (x % 250), 1,
	'{"e":[{"t":"2026-01-01T00:00:00Z","m":[{"key":"source_ip","value":"10.0.0.1"}]}]}' FROM i`, alerts, now, now, now); err != nil {
		tb.Fatal(err)
	}
	if err := src.ExecForTest(`WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < ?)
INSERT INTO decisions (uuid, alert_id, created_at, until, scenario, type, scope, value, origin, ip_size, start_ip, end_ip, active, shown, seq)
SELECT 'd-' || x, 1 + x % ?, ?, ?, 'bench/scenario', 'ban', 'Ip',
	'10.' || ((x >> 16) & 255) || '.' || ((x >> 8) & 255) || '.' || (x & 255), 'crowdsec', 4, 167772160 + x, 167772160 + x, TRUE, TRUE, x FROM i`,
		n, alerts, now, now+int64(time.Hour)); err != nil {
		tb.Fatal(err)
	}
	if err := src.ExecForTest(`UPDATE counters SET value = ? WHERE name = 'seq'`, n); err != nil {
		tb.Fatal(err)
	}
}

// TestCopyToPostgresNotOwner copies into tables another role owns (the
// schema created by a LAPI running as postgres, the copy run as a role with
// every privilege but ownership): the count triggers cannot be turned off,
// they count the copied rows instead, and the counts match the source.
func TestCopyToPostgresNotOwner(t *testing.T) {
	ctx := context.Background()
	src, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "src.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fillForCopy(t, src, 300)
	d := testdb.ConfigFor(t, "postgresql", filepath.Join(t.TempDir(), "notowner"))
	cfg := Config{Type: d.Type, Host: d.Host, Port: d.Port, User: d.User, Password: d.Password, DBName: d.Name}
	owner, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	role := d.Name + "_copier"
	for _, q := range []string{
		`DROP ROLE IF EXISTS ` + role, `CREATE ROLE ` + role + ` LOGIN`,
		`GRANT CREATE, USAGE ON SCHEMA public TO ` + role,
		`GRANT ALL ON ALL TABLES IN SCHEMA public TO ` + role,
		`GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO ` + role,
	} {
		if err := owner.ExecForTest(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Before owner closes (the deferred Close above runs after this), once
	// dst has closed (its deferred Close below runs before).
	defer func() {
		for _, q := range []string{`DROP OWNED BY ` + role, `DROP ROLE IF EXISTS ` + role} {
			if err := owner.ExecForTest(q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	}()
	cfg.User = role
	dst, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := dst.ExecForTest(`ALTER TABLE decisions DISABLE TRIGGER USER`); err == nil {
		t.Fatal("the copier role may alter decisions: the test no longer covers the fallback")
	}
	if _, err := CopyTo(ctx, src, dst, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT COUNT(*) FROM decisions`, `SELECT SUM(n) FROM active_decision_counts`,
		`SELECT SUM(n) FROM alert_counts`, `SELECT value FROM counters WHERE name = 'seq'`,
	} {
		var a, b int64
		if err := src.QueryRowForTest(q).Scan(&a); err != nil {
			t.Fatal(err)
		}
		if err := dst.QueryRowForTest(q).Scan(&b); err != nil {
			t.Fatal(err)
		}
		if a != b || a == 0 {
			t.Errorf("%s: source %d, target %d", q, a, b)
		}
	}
}
