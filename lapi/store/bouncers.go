package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Bouncer is a remediation component identified by an API key. A key used
// from several addresses gets one row per address; stream cursors are kept
// per row and User-Agent (stream_cursors).
type Bouncer struct {
	ID          int64
	Name        string
	APIKeyHash  string
	IPAddress   string
	Type        string
	Version     string
	LastPull    *time.Time
	Cursor      *int64 // latest server-kept stream cursor delivered on this row; nil = none
	AuthType    string
	AutoCreated bool
	Revoked     bool
	OSName      string
	OSVersion   string
	FeatureFlag string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

const bouncerCols = `id, name, api_key, ip_address, type, version, last_pull, "cursor", auth_type, auto_created, revoked, os_name, os_version, featureflags, created_at, updated_at`

func scanBouncer(sc interface{ Scan(...any) error }) (*Bouncer, error) {
	var b Bouncer
	var lp, cur sql.NullInt64
	var created, updated int64
	if err := sc.Scan(&b.ID, &b.Name, &b.APIKeyHash, &b.IPAddress, &b.Type, &b.Version, &lp, &cur, &b.AuthType,
		&b.AutoCreated, &b.Revoked, &b.OSName, &b.OSVersion, &b.FeatureFlag, &created, &updated); err != nil {
		return nil, err
	}
	b.LastPull = nullTime(lp)
	if cur.Valid {
		v := cur.Int64
		b.Cursor = &v
	}
	b.CreatedAt, b.UpdatedAt = time.Unix(0, created), time.Unix(0, updated)
	return &b, nil
}

// CreateBouncer stores a bouncer with the SHA-512 hex of its key.
func (s *Store) CreateBouncer(ctx context.Context, b Bouncer) (*Bouncer, error) {
	now := nowNS()
	if b.AuthType == "" {
		b.AuthType = "api-key"
	}
	var id int64
	err := s.write(ctx, func(tx *wtx) error {
		var exists int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM bouncers WHERE name = ?`, b.Name).Scan(&exists)
		if err == nil {
			return fmt.Errorf("bouncer %s: %w", b.Name, ErrExists)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("looking up bouncer %s: %w", b.Name, err)
		}
		if err := tx.QueryRowContext(ctx, `INSERT INTO bouncers (name, api_key, ip_address, type, version, auth_type, auto_created, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			b.Name, b.APIKeyHash, b.IPAddress, b.Type, b.Version, b.AuthType, b.AutoCreated, now, now).Scan(&id); err != nil {
			return err
		}
		return bumpBouncers(tx)
	})
	if err != nil {
		return nil, err
	}
	b.ID = id
	b.CreatedAt, b.UpdatedAt = time.Unix(0, now), time.Unix(0, now)
	return &b, nil
}

// bumpBouncers counts a change of bouncer rows (not of their pull times
// or cursors, which change on every pull), so that the LAPI may keep key
// lookups until the count moves (BouncersVersion). The row is made by the
// first change: databases from before have none (version 0).
func bumpBouncers(tx *wtx) error {
	q := `INSERT INTO counters (name, value) VALUES ('bouncers', 1) ON CONFLICT (name) DO UPDATE SET value = counters.value + 1`
	if tx.s.d.kind == mysqlDB {
		q = `INSERT INTO counters (name, value) VALUES ('bouncers', 1) ON DUPLICATE KEY UPDATE value = value + 1`
	}
	if _, err := tx.ExecContext(tx.ctx, q); err != nil {
		return fmt.Errorf("counting a bouncer change: %w", err)
	}
	return nil
}

// Versions returns the allowlists' version (AllowlistsVersion) and the
// bouncers' (bumped by every change of a bouncer row but its pull time
// and cursor), read together: every bouncer request asks.
func (s *Store) Versions(ctx context.Context) (allowlists, bouncers int64, err error) {
	st, err := s.readStmt(ctx, `SELECT (SELECT value FROM counters WHERE name = 'allowlists'), COALESCE((SELECT value FROM counters WHERE name = 'bouncers'), 0)`)
	if err != nil {
		return 0, 0, err
	}
	if err := st.QueryRowContext(ctx).Scan(&allowlists, &bouncers); err != nil {
		return 0, 0, fmt.Errorf("reading change counts: %w", err)
	}
	return allowlists, bouncers, nil
}

// BouncersByKey returns the rows sharing a key hash, ordered by id.
func (s *Store) BouncersByKey(ctx context.Context, hash, authType string) ([]*Bouncer, error) {
	m, err := s.BouncersByKeys(ctx, []string{hash}, authType)
	return m[hash], err
}

// bouncersByKeysChunk bounds the placeholders of one lookup.
const bouncersByKeysChunk = 256

// BouncersByKeys returns the rows of each key hash, ordered by id; a key
// no row has is absent. Every bouncer request looks its key up: a fleet's
// requests arriving together are looked up in one statement.
func (s *Store) BouncersByKeys(ctx context.Context, hashes []string, authType string) (map[string][]*Bouncer, error) {
	out := make(map[string][]*Bouncer, len(hashes))
	for len(hashes) > 0 {
		n := min(len(hashes), bouncersByKeysChunk)
		var q string
		if n == 1 {
			q = `SELECT ` + bouncerCols + ` FROM bouncers WHERE api_key = ? AND auth_type = ? ORDER BY id`
		} else {
			q = `SELECT ` + bouncerCols + ` FROM bouncers WHERE api_key IN (?` + strings.Repeat(", ?", n-1) + `) AND auth_type = ? ORDER BY id`
		}
		args := make([]any, 0, n+1)
		for _, h := range hashes[:n] {
			args = append(args, h)
		}
		args = append(args, authType)
		hashes = hashes[n:]
		// A lone key (no herd) is the common statement: prepared once.
		var rows *sql.Rows
		var err error
		if n == 1 {
			var st stmter
			if st, err = s.readStmt(ctx, q); err == nil {
				rows, err = st.QueryContext(ctx, args...)
			}
		} else {
			rows, err = s.r.QueryContext(ctx, q, args...)
		}
		if err != nil {
			return nil, fmt.Errorf("looking up bouncer key: %w", err)
		}
		for rows.Next() {
			b, err := scanBouncer(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("looking up bouncer key: %w", err)
			}
			out[b.APIKeyHash] = append(out[b.APIKeyHash], b)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("looking up bouncer key: %w", err)
		}
	}
	return out, nil
}

// GetBouncer returns one bouncer by name or ErrNotFound.
func (s *Store) GetBouncer(ctx context.Context, name string) (*Bouncer, error) {
	b, err := scanBouncer(s.r.QueryRowContext(ctx, `SELECT `+bouncerCols+` FROM bouncers WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading bouncer %s: %w", name, err)
	}
	return b, nil
}

// ListBouncers returns every bouncer ordered by id.
func (s *Store) ListBouncers(ctx context.Context) ([]*Bouncer, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+bouncerCols+` FROM bouncers ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing bouncers: %w", err)
	}
	defer rows.Close()
	var out []*Bouncer
	for rows.Next() {
		b, err := scanBouncer(rows)
		if err != nil {
			return nil, fmt.Errorf("listing bouncers: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// UpdateBouncerSeen stores the caller's address, type and version.
func (s *Store) UpdateBouncerSeen(ctx context.Context, id int64, ip, typ, version string) error {
	return s.write(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE bouncers SET ip_address = ?, type = ?, version = ?, updated_at = ? WHERE id = ?`,
			ip, typ, version, nowNS(), id); err != nil {
			return err
		}
		return bumpBouncers(tx)
	})
}

// SetBouncerPulled moves a bouncer's stream cursor (only ever forward) and
// records the pull time. Callers do this only once a body was fully sent.
func (s *Store) SetBouncerPulled(ctx context.Context, id int64, cursor *int64, at time.Time) error {
	return s.write(ctx, func(tx *wtx) error {
		if cursor == nil {
			_, err := tx.ExecContext(ctx, `UPDATE bouncers SET last_pull = ? WHERE id = ?`, at.UnixNano(), id)
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE bouncers SET last_pull = ?, "cursor" = CASE WHEN "cursor" IS NULL OR "cursor" < ? THEN ? ELSE "cursor" END WHERE id = ?`,
			at.UnixNano(), *cursor, *cursor, id)
		return err
	})
}

// SetBouncersPulled records pull times of many bouncers in one
// transaction (the LAPI gathers them: a fleet of long-polls pulls at
// once). A time never moves back: two LAPIs may flush out of order.
func (s *Store) SetBouncersPulled(ctx context.Context, pulls map[int64]time.Time) error {
	if len(pulls) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *wtx) error {
		st, err := tx.stmt(`UPDATE bouncers SET last_pull = CASE WHEN last_pull IS NULL OR last_pull < ? THEN ? ELSE last_pull END WHERE id = ?`)
		if err != nil {
			return fmt.Errorf("recording bouncer pulls: %w", err)
		}
		defer st.Close()
		for id, at := range pulls {
			ns := at.UnixNano()
			if _, err := st.ExecContext(ctx, ns, ns, id); err != nil {
				return fmt.Errorf("recording bouncer pulls: %w", err)
			}
		}
		return nil
	})
}

// StreamCursor returns the server-kept stream cursor of a bouncer row for
// one User-Agent; nil when that client never completed a pull.
func (s *Store) StreamCursor(ctx context.Context, bouncerID int64, userAgent string) (*int64, error) {
	var c int64
	err := s.r.QueryRowContext(ctx, `SELECT "cursor" FROM stream_cursors WHERE bouncer_id = ? AND user_agent = ?`, bouncerID, userAgent).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading stream cursor: %w", err)
	}
	return &c, nil
}

// MaxStreamClients is how many server-kept cursors (User-Agents) one
// bouncer row keeps.
const MaxStreamClients = 16

// SetStreamCursor stores a client's server-kept cursor exactly (a startup
// resets it) once a body was fully sent, and records the pull on the row;
// bouncers.cursor keeps the row's latest for display.
func (s *Store) SetStreamCursor(ctx context.Context, bouncerID int64, userAgent string, cursor int64, at time.Time) error {
	return s.write(ctx, func(tx *wtx) error {
		upsert := `INSERT INTO stream_cursors (bouncer_id, user_agent, "cursor", last_pull) VALUES (?, ?, ?, ?)
			ON CONFLICT (bouncer_id, user_agent) DO UPDATE SET "cursor" = excluded."cursor", last_pull = excluded.last_pull`
		if s.d.kind == mysqlDB {
			upsert = `INSERT INTO stream_cursors (bouncer_id, user_agent, "cursor", last_pull) VALUES (?, ?, ?, ?)
			ON DUPLICATE KEY UPDATE "cursor" = VALUES("cursor"), last_pull = VALUES(last_pull)`
		}
		if _, err := tx.ExecContext(ctx, upsert,
			bouncerID, userAgent, cursor, at.UnixNano()); err != nil {
			return fmt.Errorf("storing stream cursor: %w", err)
		}
		// A key holder cycling User-Agents must not grow the table: a row
		// keeps its most recent few, the others start over (full state).
		if _, err := tx.ExecContext(ctx, `DELETE FROM stream_cursors WHERE bouncer_id = ? AND user_agent NOT IN (SELECT user_agent FROM (
			SELECT user_agent FROM stream_cursors WHERE bouncer_id = ? ORDER BY last_pull DESC LIMIT ?) kept)`, bouncerID, bouncerID, MaxStreamClients); err != nil {
			return fmt.Errorf("bounding stream cursors: %w", err)
		}
		_, err := tx.ExecContext(ctx, `UPDATE bouncers SET last_pull = ?, "cursor" = ? WHERE id = ?`, at.UnixNano(), cursor, bouncerID)
		return err
	})
}

// DeleteBouncer removes a bouncer; ErrNotFound when absent.
func (s *Store) DeleteBouncer(ctx context.Context, name string) error {
	return s.write(ctx, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM bouncers WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("deleting bouncer %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("bouncer %s: %w", name, ErrNotFound)
		}
		return bumpBouncers(tx)
	})
}

// PruneBouncers deletes bouncers whose last pull (or creation, if they never
// pulled) is before the given time and returns their names.
func (s *Store) PruneBouncers(ctx context.Context, before time.Time) ([]string, error) {
	var names []string
	err := s.write(ctx, func(tx *wtx) error {
		rows, err := tx.QueryContext(ctx, `SELECT name FROM bouncers WHERE COALESCE(last_pull, created_at) < ?`, before.UnixNano())
		if err != nil {
			return err
		}
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			names = append(names, n)
		}
		rows.Close()
		for _, n := range names {
			if _, err := tx.ExecContext(ctx, `DELETE FROM bouncers WHERE name = ?`, n); err != nil {
				return err
			}
		}
		if len(names) == 0 {
			return nil
		}
		return bumpBouncers(tx)
	})
	return names, err
}

// StoreUsageMetrics keeps a usage-metrics payload for cscli to show.
func (s *Store) StoreUsageMetrics(ctx context.Context, kind, by, payload string) error {
	return s.write(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO usage_metrics (generated_type, generated_by, received_at, payload) VALUES (?, ?, ?, ?)`,
			kind, by, nowNS(), payload); err != nil {
			return err
		}
		// Beyond the newest MaxUsageReports of this component, the oldest
		// go; the (type, by, received_at) index serves both queries.
		_, err := tx.ExecContext(ctx, `DELETE FROM usage_metrics WHERE generated_type = ? AND generated_by = ? AND received_at <= (SELECT received_at FROM (
			SELECT received_at FROM usage_metrics WHERE generated_type = ? AND generated_by = ?
			ORDER BY received_at DESC LIMIT 1 OFFSET ?) oldest)`, kind, by, kind, by, MaxUsageReports)
		return err
	})
}

// SetComponentOS records what a component's usage metrics say about it.
func (s *Store) SetComponentOS(ctx context.Context, bouncer bool, name, osName, osVersion, featureFlags string) error {
	return s.write(ctx, func(tx *wtx) error {
		if bouncer {
			if _, err := tx.ExecContext(ctx, `UPDATE bouncers SET os_name = ?, os_version = ?, featureflags = ? WHERE name = ?`, osName, osVersion, featureFlags, name); err != nil {
				return err
			}
			return bumpBouncers(tx)
		}
		_, err := tx.ExecContext(ctx, `UPDATE machines SET os_name = ?, os_version = ? WHERE machine_id = ?`, osName, osVersion, name)
		return err
	})
}
