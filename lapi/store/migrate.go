package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
)

// migrations are applied in order; each runs once, recorded in
// schema_migrations. Never edit a released migration: append a new one.
var migrations = []string{
	// 1: initial schema. Times are unix nanoseconds in BIGINT columns.
	`
CREATE TABLE kv (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO counters (name, value) VALUES ('seq', 0), ('allowlists', 0);
CREATE TABLE machines (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	machine_id TEXT NOT NULL UNIQUE,
	password TEXT NOT NULL,
	ip_address TEXT NOT NULL DEFAULT '',
	is_validated BOOLEAN NOT NULL DEFAULT FALSE,
	auth_type TEXT NOT NULL DEFAULT 'password',
	scenarios TEXT NOT NULL DEFAULT '',
	version TEXT NOT NULL DEFAULT '',
	os_name TEXT NOT NULL DEFAULT '',
	os_version TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	last_push BIGINT,
	last_heartbeat BIGINT
);
CREATE TABLE bouncers (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	name TEXT NOT NULL UNIQUE,
	api_key TEXT NOT NULL,
	ip_address TEXT NOT NULL DEFAULT '',
	type TEXT NOT NULL DEFAULT '',
	version TEXT NOT NULL DEFAULT '',
	last_pull BIGINT,
	cursor BIGINT,
	auth_type TEXT NOT NULL DEFAULT 'api-key',
	auto_created BOOLEAN NOT NULL DEFAULT FALSE,
	revoked BOOLEAN NOT NULL DEFAULT FALSE,
	os_name TEXT NOT NULL DEFAULT '',
	os_version TEXT NOT NULL DEFAULT '',
	featureflags TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE INDEX bouncers_api_key ON bouncers (api_key);
CREATE TABLE alerts (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	uuid TEXT NOT NULL,
	machine_id TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	scenario TEXT NOT NULL,
	scenario_hash TEXT NOT NULL DEFAULT '',
	scenario_version TEXT NOT NULL DEFAULT '',
	message TEXT NOT NULL DEFAULT '',
	events_count INTEGER NOT NULL DEFAULT 0,
	started_at BIGINT NOT NULL,
	stopped_at BIGINT NOT NULL,
	capacity INTEGER NOT NULL DEFAULT 0,
	leakspeed TEXT NOT NULL DEFAULT '',
	simulated BOOLEAN NOT NULL DEFAULT FALSE,
	remediation BOOLEAN NOT NULL DEFAULT FALSE,
	kind TEXT NOT NULL DEFAULT '',
	source_scope TEXT NOT NULL DEFAULT '',
	source_value TEXT NOT NULL DEFAULT '',
	source_ip TEXT NOT NULL DEFAULT '',
	source_range TEXT NOT NULL DEFAULT '',
	source_as_number TEXT NOT NULL DEFAULT '',
	source_as_name TEXT NOT NULL DEFAULT '',
	source_country TEXT NOT NULL DEFAULT '',
	source_latitude REAL NOT NULL DEFAULT 0,
	source_longitude REAL NOT NULL DEFAULT 0
);
CREATE INDEX alerts_created_at ON alerts (created_at);
CREATE INDEX alerts_source_value ON alerts (source_value);
CREATE TABLE alert_events (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	alert_id BIGINT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
	ts TEXT NOT NULL,
	meta TEXT NOT NULL
);
CREATE INDEX alert_events_alert ON alert_events (alert_id);
CREATE TABLE alert_meta (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	alert_id BIGINT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
	key TEXT NOT NULL,
	value TEXT NOT NULL
);
CREATE INDEX alert_meta_alert ON alert_meta (alert_id);
-- A decision is active until it ends (expiry, deletion). 'shown' marks the
-- row bouncers hold for its (value, type, scope) key: the longest active
-- one, or the last ended one they must remove. 'seq' is the change number
-- of the row's last reportable change; stream cursors compare against it.
CREATE TABLE decisions (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	uuid TEXT NOT NULL,
	alert_id BIGINT,
	created_at BIGINT NOT NULL,
	until BIGINT NOT NULL,
	scenario TEXT NOT NULL,
	type TEXT NOT NULL,
	scope TEXT NOT NULL,
	value TEXT NOT NULL,
	origin TEXT NOT NULL,
	simulated BOOLEAN NOT NULL DEFAULT FALSE,
	ip_size INTEGER NOT NULL DEFAULT 0,
	start_ip BIGINT NOT NULL DEFAULT 0,
	end_ip BIGINT NOT NULL DEFAULT 0,
	start_suffix BIGINT NOT NULL DEFAULT 0,
	end_suffix BIGINT NOT NULL DEFAULT 0,
	active BOOLEAN NOT NULL,
	shown BOOLEAN NOT NULL,
	seq BIGINT NOT NULL
);
CREATE INDEX decisions_key ON decisions (value, type, scope, active, until);
CREATE INDEX decisions_seq ON decisions (seq);
CREATE INDEX decisions_active_until ON decisions (active, until);
CREATE INDEX decisions_alert ON decisions (alert_id);
CREATE INDEX decisions_range ON decisions (ip_size, start_ip, end_ip);
CREATE TABLE allowlists (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	name TEXT NOT NULL UNIQUE,
	description TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE TABLE allowlist_items (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	allowlist_id BIGINT NOT NULL REFERENCES allowlists (id) ON DELETE CASCADE,
	value TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	expires_at BIGINT,
	ip_size INTEGER NOT NULL DEFAULT 0,
	start_ip BIGINT NOT NULL DEFAULT 0,
	end_ip BIGINT NOT NULL DEFAULT 0,
	start_suffix BIGINT NOT NULL DEFAULT 0,
	end_suffix BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX allowlist_items_list ON allowlist_items (allowlist_id);
CREATE TABLE usage_metrics (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	generated_type TEXT NOT NULL,
	generated_by TEXT NOT NULL,
	received_at BIGINT NOT NULL,
	payload TEXT NOT NULL
);
CREATE INDEX usage_metrics_by ON usage_metrics (generated_type, generated_by, received_at);
`,
	// 2: an agent resending an alert after a lost reply (its UUID kept)
	// must not store it twice.
	`CREATE UNIQUE INDEX alerts_uuid ON alerts (uuid);`,
	// 3: active decisions counted per scenario, origin and type (and alerts
	// per scenario) as rows
	// come and go, so the cs_active_decisions gauge reads a handful of rows
	// instead of grouping 1M at every scrape. Decisions change only their
	// active flag after insertion; scenario, origin and type never change.
	`
CREATE TABLE active_decision_counts (
	scenario TEXT NOT NULL,
	origin TEXT NOT NULL,
	type TEXT NOT NULL,
	n INTEGER NOT NULL,
	PRIMARY KEY (scenario, origin, type)
) WITHOUT ROWID;
CREATE TRIGGER decisions_count_insert AFTER INSERT ON decisions WHEN NEW.active BEGIN
	INSERT INTO active_decision_counts (scenario, origin, type, n) VALUES (NEW.scenario, NEW.origin, NEW.type, 1)
		ON CONFLICT (scenario, origin, type) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER decisions_count_end AFTER UPDATE OF active ON decisions WHEN OLD.active AND NOT NEW.active BEGIN
	UPDATE active_decision_counts SET n = n - 1 WHERE scenario = OLD.scenario AND origin = OLD.origin AND type = OLD.type;
END;
CREATE TRIGGER decisions_count_revive AFTER UPDATE OF active ON decisions WHEN NEW.active AND NOT OLD.active BEGIN
	INSERT INTO active_decision_counts (scenario, origin, type, n) VALUES (NEW.scenario, NEW.origin, NEW.type, 1)
		ON CONFLICT (scenario, origin, type) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER decisions_count_delete AFTER DELETE ON decisions WHEN OLD.active BEGIN
	UPDATE active_decision_counts SET n = n - 1 WHERE scenario = OLD.scenario AND origin = OLD.origin AND type = OLD.type;
END;
INSERT INTO active_decision_counts (scenario, origin, type, n)
	SELECT scenario, origin, type, COUNT(*) FROM decisions WHERE active GROUP BY scenario, origin, type;
CREATE TABLE alert_counts (
	scenario TEXT NOT NULL PRIMARY KEY,
	n INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER alerts_count_insert AFTER INSERT ON alerts
	WHEN NOT (NEW.source_scope LIKE 'lists:%' OR NEW.source_scope = 'crowdsecurity/community-blocklist') BEGIN
	INSERT INTO alert_counts (scenario, n) VALUES (NEW.scenario, 1) ON CONFLICT (scenario) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER alerts_count_delete AFTER DELETE ON alerts
	WHEN NOT (OLD.source_scope LIKE 'lists:%' OR OLD.source_scope = 'crowdsecurity/community-blocklist') BEGIN
	UPDATE alert_counts SET n = n - 1 WHERE scenario = OLD.scenario;
END;
INSERT INTO alert_counts (scenario, n)
	SELECT scenario, COUNT(*) FROM alerts WHERE NOT (source_scope LIKE 'lists:%' OR source_scope = 'crowdsecurity/community-blocklist')
	GROUP BY scenario;
`,
	// 4: server-kept stream cursors per bouncer row and User-Agent, so two
	// different bouncers sharing a key on one address each get every change
	// (clients that keep their own cursor, as Rampart's bouncer does, need
	// no row). 'purged' is the highest change sequence retention deleted: a
	// client cursor below it may have missed a deletion.
	`
CREATE TABLE stream_cursors (
	bouncer_id BIGINT NOT NULL REFERENCES bouncers (id) ON DELETE CASCADE,
	user_agent TEXT NOT NULL,
	cursor BIGINT NOT NULL,
	last_pull BIGINT NOT NULL,
	PRIMARY KEY (bouncer_id, user_agent)
);
INSERT INTO stream_cursors (bouncer_id, user_agent, cursor, last_pull)
	SELECT id, CASE WHEN version = 'N/A' THEN type ELSE type || '/' || version END, cursor, COALESCE(last_pull, updated_at)
	FROM bouncers WHERE cursor IS NOT NULL;
INSERT INTO counters (name, value) VALUES ('purged', 0);
`,
	// 5: a simulated decision is never shown to bouncers, and no longer
	// supersedes a real one on its address: hide those stored as shown,
	// then show again, as a new change, the longest active real decision
	// of every key they left without a shown active row.
	`
UPDATE decisions SET shown = FALSE WHERE simulated AND shown;
UPDATE counters SET value = value + 1 WHERE name = 'seq' AND EXISTS (SELECT 1 FROM decisions WHERE simulated AND active);
UPDATE decisions SET shown = TRUE, seq = (SELECT value FROM counters WHERE name = 'seq')
WHERE id IN (
	SELECT (SELECT a.id FROM decisions a WHERE a.value = k.value AND a.type = k.type AND a.scope = k.scope
		AND a.active AND NOT a.simulated ORDER BY a.until DESC, a.id ASC LIMIT 1)
	FROM (SELECT DISTINCT value, type, scope FROM decisions WHERE simulated AND active) k
	WHERE NOT EXISTS (SELECT 1 FROM decisions o WHERE o.value = k.value AND o.type = k.type AND o.scope = k.scope AND o.active AND o.shown)
);
`,
	// 6: an alert's events kept in one JSON document on its row (see
	// appendEventsJSON) instead of a row each in alert_events: a replay's
	// pushes spent more inserting those rows (and their index) than
	// anything else, and they were four fifths of the database. Existing
	// events move over in moveEvents, then alert_events goes.
	`
ALTER TABLE alerts ADD COLUMN events TEXT NOT NULL DEFAULT '{"e":[]}';
`,
	// 7: signals waiting for the Central API, queued in the transaction
	// that stores their alert and deleted only once CAPI took them, so a
	// CAPI outage or a restart loses none (upstream keeps them in memory).
	// IF NOT EXISTS: tests replay the migrations after 5 and 6.
	`
CREATE TABLE IF NOT EXISTS capi_signals (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	created_at BIGINT NOT NULL,
	body TEXT NOT NULL
);
`,
	// 8: the active decision counts (migration 3) also per scope, for the
	// dashboard's counts by origin; recounted once from the table.
	`
DROP TRIGGER IF EXISTS decisions_count_insert;
DROP TRIGGER IF EXISTS decisions_count_end;
DROP TRIGGER IF EXISTS decisions_count_revive;
DROP TRIGGER IF EXISTS decisions_count_delete;
DROP TABLE IF EXISTS active_decision_counts;
CREATE TABLE active_decision_counts (
	scenario TEXT NOT NULL,
	origin TEXT NOT NULL,
	type TEXT NOT NULL,
	scope TEXT NOT NULL,
	n INTEGER NOT NULL,
	PRIMARY KEY (scenario, origin, type, scope)
) WITHOUT ROWID;
CREATE TRIGGER decisions_count_insert AFTER INSERT ON decisions WHEN NEW.active BEGIN
	INSERT INTO active_decision_counts (scenario, origin, type, scope, n) VALUES (NEW.scenario, NEW.origin, NEW.type, NEW.scope, 1)
		ON CONFLICT (scenario, origin, type, scope) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER decisions_count_end AFTER UPDATE OF active ON decisions WHEN OLD.active AND NOT NEW.active BEGIN
	UPDATE active_decision_counts SET n = n - 1
		WHERE scenario = OLD.scenario AND origin = OLD.origin AND type = OLD.type AND scope = OLD.scope;
END;
CREATE TRIGGER decisions_count_revive AFTER UPDATE OF active ON decisions WHEN NEW.active AND NOT OLD.active BEGIN
	INSERT INTO active_decision_counts (scenario, origin, type, scope, n) VALUES (NEW.scenario, NEW.origin, NEW.type, NEW.scope, 1)
		ON CONFLICT (scenario, origin, type, scope) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER decisions_count_delete AFTER DELETE ON decisions WHEN OLD.active BEGIN
	UPDATE active_decision_counts SET n = n - 1
		WHERE scenario = OLD.scenario AND origin = OLD.origin AND type = OLD.type AND scope = OLD.scope;
END;
INSERT INTO active_decision_counts (scenario, origin, type, scope, n)
	SELECT scenario, origin, type, scope, COUNT(*) FROM decisions WHERE active GROUP BY scenario, origin, type, scope;
`,
	// 9: UUIDs of decisions ended here, waiting to be told to the console
	// (POST /v3/decisions/delete), queued in the transaction that ends
	// them and deleted only once CAPI took them, as signals are.
	`
CREATE TABLE IF NOT EXISTS capi_deletions (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	created_at BIGINT NOT NULL,
	uuid TEXT NOT NULL
);
`,
	// 10: an alert's decisions indexed by origin too, so that "no CAPI or
	// lists decision" (cscli decisions and alerts list, the dashboard's
	// counts) and "a decision of this origin" are a seek per alert, not a
	// read of every decision of an import's alert (50,000). IF [NOT]
	// EXISTS: tests replay the migrations after 5 and 6.
	`
CREATE INDEX IF NOT EXISTS decisions_alert_origin ON decisions (alert_id, origin);
DROP INDEX IF EXISTS decisions_alert;
`,
}

// migrationStep is the work of migration v that SQL alone cannot do, run
// in its transaction after its SQL; nil when there is none.
func migrationStep(v int) func(context.Context, *sql.Tx) error {
	if v == 6 {
		return moveEvents
	}
	return nil
}

// moveEvents writes each alert's alert_events rows (in id order) into its
// events column, as a push now writes them, and drops alert_events. An
// event's time and meta are kept as stored; a meta that is not JSON
// (never written, but it read as no meta) becomes none.
func moveEvents(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT alert_id, ts, meta FROM alert_events ORDER BY alert_id, id`)
	if err != nil {
		return fmt.Errorf("reading alert events: %w", err)
	}
	defer rows.Close()
	update, err := tx.PrepareContext(ctx, `UPDATE alerts SET events = ? WHERE id = ?`)
	if err != nil {
		return fmt.Errorf("preparing event move: %w", err)
	}
	defer update.Close()
	var alert int64
	var events []storedEvent
	var blob []byte
	flush := func() error {
		if len(events) == 0 {
			return nil
		}
		blob = appendStoredEvents(blob[:0], events)
		if _, err := update.ExecContext(ctx, string(blob), alert); err != nil {
			return fmt.Errorf("moving the events of alert %d: %w", alert, err)
		}
		events = events[:0]
		return nil
	}
	for rows.Next() {
		var id int64
		var e storedEvent
		var meta []byte
		if err := rows.Scan(&id, &e.TS, &meta); err != nil {
			return fmt.Errorf("reading alert events: %w", err)
		}
		if id != alert {
			if err := flush(); err != nil {
				return err
			}
			alert = id
		}
		_ = json.Unmarshal(meta, &e.Meta)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading alert events: %w", err)
	}
	if err := flush(); err != nil {
		return err
	}
	rows.Close()
	if _, err := tx.ExecContext(ctx, `DROP TABLE alert_events`); err != nil {
		return fmt.Errorf("dropping alert_events: %w", err)
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	var current int
	if err := s.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d): refusing to run an older Rampart on it", current, len(migrations))
	}
	for v := current + 1; v <= len(migrations); v++ {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if step := migrationStep(v); step != nil {
			if err := step(ctx, tx.Tx); err != nil {
				tx.Rollback()
				return fmt.Errorf("migration %d: %w", v, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, nowNS()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
		s.log.WithField("version", v).Info("applied schema migration")
	}
	return nil
}
