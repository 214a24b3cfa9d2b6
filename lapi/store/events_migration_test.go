package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/testdb"

	"github.com/rampart-ips/rampart/models"
)

// toSchema5 turns s's database back into the layout before migration 6
// (a row per event in alert_events), events kept, so that reopening it
// runs the migration on what an older Rampart left.
func toSchema5(tb testing.TB, s *Store) {
	tb.Helper()
	mustExec(tb, s, `CREATE TABLE alert_events (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	alert_id BIGINT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
	ts TEXT NOT NULL,
	meta TEXT NOT NULL
)`, `CREATE INDEX alert_events_alert ON alert_events (alert_id)`)
	rows, err := s.w.Query(`SELECT id, events FROM alerts ORDER BY id`)
	if err != nil {
		tb.Fatal(err)
	}
	type row struct {
		id       int64
		ts, meta string
	}
	var old []row
	for rows.Next() {
		var id int64
		var blob string
		if err := rows.Scan(&id, &blob); err != nil {
			tb.Fatal(err)
		}
		for _, e := range decodeEvents(blob) {
			old = append(old, row{id, e.TS, string(appendMetaJSON(nil, e.Meta))})
		}
	}
	rows.Close()
	for _, r := range old {
		if _, err := s.w.Exec(`INSERT INTO alert_events (alert_id, ts, meta) VALUES (?, ?, ?)`, r.id, r.ts, r.meta); err != nil {
			tb.Fatal(err)
		}
	}
	mustExec(tb, s, `ALTER TABLE alerts DROP COLUMN events`, `DELETE FROM schema_migrations WHERE version >= 6`)
}

// A database of the previous schema, its events written as the previous
// version wrote them (a row each, interleaved between alerts), reads back
// the same after migration 6 moved them onto their alerts.
func TestEventsMigration(t *testing.T) {
	testdb.SkipUnlessSQLite(t, "migrates SQLite files of an older schema")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	mustDB := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustDB(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`)
	for v := 1; v <= 5; v++ {
		mustDB(migrations[v-1])
		mustDB(`INSERT INTO schema_migrations VALUES (?, 0)`, v)
	}
	start := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	for i, uuid := range []string{"a1", "a2", "a3"} {
		mustDB(`INSERT INTO alerts (uuid, machine_id, created_at, scenario, events_count, started_at, stopped_at, source_scope, source_value)
			VALUES (?, 'm', ?, 'crowdsecurity/ssh-bf', 2, ?, ?, 'Ip', '192.0.2.1')`, uuid, start+int64(i), start, start)
	}
	for _, e := range []struct {
		alert    int
		ts, meta string
	}{
		{1, "2024-01-02T03:04:05.123456789Z", `[{"key":"log_type","value":"ssh_failed-auth"},{"key":"user","value":"r\u003coot\"é"}]`},
		{2, "2024-01-02T03:04:06Z", `[]`},
		{1, "not a time", `[{"key":"k","value":""}]`}, // after a2's: order is by row, per alert
		{2, "2024-01-02T05:04:06+02:00", `not json`},
	} {
		mustDB(`INSERT INTO alert_events (alert_id, ts, meta) VALUES (?, ?, ?)`, e.alert, e.ts, e.meta)
	}
	mustDB(`INSERT INTO alert_meta (alert_id, key, value) VALUES (1, 'k', 'v')`)
	db.Close()

	s, err := Open(ctx, Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.QueryAlerts(ctx, AlertFilter{SortAsc: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]*models.Event{
		"a1": {
			{Timestamp: "2024-01-02 03:04:05.123456789 +0000 UTC", Meta: []models.Meta{{Key: "log_type", Value: "ssh_failed-auth"}, {Key: "user", Value: "r<oot\"é"}}},
			{Timestamp: "not a time", Meta: []models.Meta{{Key: "k", Value: ""}}},
		},
		"a2": {
			{Timestamp: "2024-01-02 03:04:06 +0000 UTC", Meta: []models.Meta{}},
			{Timestamp: "2024-01-02 03:04:06 +0000 UTC", Meta: []models.Meta{}},
		},
		"a3": {},
	}
	if len(got) != 3 {
		t.Fatalf("%d alerts after the migration, want 3", len(got))
	}
	for _, a := range got {
		if !reflect.DeepEqual(a.Events, want[a.UUID]) {
			g, _ := json.Marshal(a.Events)
			w, _ := json.Marshal(want[a.UUID])
			t.Errorf("alert %s events:\n got %s\nwant %s", a.UUID, g, w)
		}
		if a.UUID == "a1" && (len(a.Meta) != 1 || a.Meta[0] != (models.Meta{Key: "k", Value: "v"})) {
			t.Errorf("alert a1 meta %v", a.Meta)
		}
	}
	var blob string
	if err := s.QueryRowForTest(`SELECT events FROM alerts WHERE uuid = 'a1'`).Scan(&blob); err != nil ||
		blob != `{"e":[["2024-01-02T03:04:05.123456789Z",["log_type","ssh_failed-auth","user","r\u003coot\"é"]],["not a time",["k",""]]]}` {
		t.Errorf("a1's events stored as %s (%v), as a push writes them", blob, err)
	}
	var n int
	if err := s.QueryRowForTest(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'alert_events'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("alert_events left after the migration (%d, %v)", n, err)
	}
}

// Alerts pushed through the API read back the same before and after a
// round trip through the previous schema and migration 6.
func TestEventsMigrationRoundTrip(t *testing.T) {
	testdb.SkipUnlessSQLite(t, "migrates SQLite files of an older schema")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	s := openAt(t, path)
	now := time.Now().Truncate(time.Second)
	var push []NewAlert
	for i, uuid := range []string{"x", "y", "z"} {
		a := &models.Alert{Scenario: "s", Source: &models.Source{Scope: "Ip", Value: "192.0.2.9"}}
		for j := 0; j < i*3; j++ {
			a.Events = append(a.Events, &models.Event{Timestamp: now.Add(time.Duration(j) * time.Millisecond).Format(time.RFC3339Nano),
				Meta: []models.Meta{{Key: "n", Value: uuid}, {Key: "j", Value: string(rune('a' + j))}}})
		}
		a.Events = append(a.Events, nil, &models.Event{Timestamp: "bad"})
		push = append(push, NewAlert{Alert: a, UUID: uuid, StartAt: now, StopAt: now})
	}
	if _, err := s.CreateAlerts(ctx, push); err != nil {
		t.Fatal(err)
	}
	before, err := s.QueryAlerts(ctx, AlertFilter{}, now)
	if err != nil {
		t.Fatal(err)
	}
	toSchema5(t, s)
	s.Close()
	s = openAt(t, path)
	defer s.Close()
	after, err := s.QueryAlerts(ctx, AlertFilter{}, now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(before)
	a, _ := json.Marshal(after)
	if string(a) != string(b) {
		t.Errorf("alerts differ after the migration:\nbefore %s\n after %s", b, a)
	}
}
