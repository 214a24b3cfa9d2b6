package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/testdb"
)

// TestStreamCursorsMigration: a database from before per-client cursors
// keeps each bouncer's cursor, now under the User-Agent it last pulled with,
// so an upgrade does not send every bouncer a full state as its next delta.
func TestStreamCursorsMigration(t *testing.T) {
	testdb.SkipUnlessSQLite(t, "migrates SQLite files of an older schema")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= 3; v++ {
		if _, err := db.Exec(migrations[v-1]); err != nil {
			t.Fatalf("migration %d: %v", v, err)
		}
		if _, err := db.Exec(`INSERT INTO schema_migrations VALUES (?, 0)`, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []struct {
		name, typ, version string
		cursor             any
	}{
		{"fw", "crowdsec-firewall-bouncer", "v0.0.31", 42},
		{"odd", "weird-bouncer", "N/A", 7},
		{"never", "", "", nil},
	} {
		if _, err := db.Exec(`INSERT INTO bouncers (name, api_key, type, version, cursor, last_pull, created_at, updated_at) VALUES (?, 'h', ?, ?, ?, 1, 1, 1)`,
			b.name, b.typ, b.version, b.cursor); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, want := range map[string]struct {
		ua     string
		cursor int64
	}{"fw": {"crowdsec-firewall-bouncer/v0.0.31", 42}, "odd": {"weird-bouncer", 7}} {
		b, err := s.GetBouncer(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.StreamCursor(ctx, b.ID, want.ua)
		if err != nil || c == nil || *c != want.cursor {
			t.Errorf("%s: cursor for %q = %v (%v), want %d", name, want.ua, c, err, want.cursor)
		}
	}
	b, _ := s.GetBouncer(ctx, "never")
	if c, err := s.StreamCursor(ctx, b.ID, ""); err != nil || c != nil {
		t.Errorf("a bouncer that never pulled got cursor %v (%v)", c, err)
	}
}

// TestStreamCursorsBounded: cursors are per (row, User-Agent), a row keeps
// its MaxStreamClients most recent, retention forgets idle ones, and
// deleting a bouncer deletes its cursors.
func TestStreamCursorsBounded(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, testConfig(t, filepath.Join(t.TempDir(), "c.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.CreateBouncer(ctx, Bouncer{Name: "fw", APIKeyHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range MaxStreamClients + 4 {
		if err := s.SetStreamCursor(ctx, b.ID, fmt.Sprintf("ua/%d", i), int64(i), now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		var n int
		if err := s.r.QueryRow(`SELECT COUNT(*) FROM stream_cursors`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != MaxStreamClients {
		t.Errorf("%d cursors kept, want %d", n, MaxStreamClients)
	}
	if c, _ := s.StreamCursor(ctx, b.ID, "ua/0"); c != nil {
		t.Errorf("the oldest client's cursor was kept")
	}
	last := fmt.Sprintf("ua/%d", MaxStreamClients+3)
	if c, _ := s.StreamCursor(ctx, b.ID, last); c == nil || *c != MaxStreamClients+3 {
		t.Errorf("the newest client's cursor = %v", c)
	}
	if got, _ := s.GetBouncer(ctx, "fw"); got.Cursor == nil || *got.Cursor != MaxStreamClients+3 || got.LastPull == nil {
		t.Errorf("bouncer row after pulls: %+v", got)
	}
	// eight days later, retention forgets every cursor idle for the horizon
	if _, err := s.Flush(ctx, FlushPolicy{}, now.Add(8*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Errorf("%d idle cursors kept by retention", n)
	}
	if err := s.SetStreamCursor(ctx, b.ID, "ua", 1, now); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBouncer(ctx, "fw"); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Errorf("%d cursors left after deleting their bouncer", n)
	}
}
