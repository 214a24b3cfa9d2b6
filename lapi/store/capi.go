package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Origins and alert source scopes of the decisions pulled from the Central
// API, as upstream stores them.
const (
	OriginCAPI           = "CAPI"
	OriginLists          = "lists"
	CommunitySourceScope = "crowdsecurity/community-blocklist"
	ListSourcePrefix     = "lists:"
)

// QueuedSignal is one signal waiting for the Central API.
type QueuedSignal struct {
	ID   int64
	Body []byte
}

// PendingSignals returns up to limit queued signals, oldest first.
func (s *Store) PendingSignals(ctx context.Context, limit int) ([]QueuedSignal, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, body FROM capi_signals ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("reading queued signals: %w", err)
	}
	defer rows.Close()
	var out []QueuedSignal
	for rows.Next() {
		var q QueuedSignal
		var body string
		if err := rows.Scan(&q.ID, &body); err != nil {
			return nil, fmt.Errorf("reading queued signals: %w", err)
		}
		q.Body = []byte(body)
		out = append(out, q)
	}
	return out, rows.Err()
}

// SignalQueueLen is how many signals wait for the Central API.
func (s *Store) SignalQueueLen(ctx context.Context) (int64, error) {
	return s.queueLen(ctx, "capi_signals", "signals")
}

// AckSignals deletes the signals the Central API took.
func (s *Store) AckSignals(ctx context.Context, ids []int64) error {
	return s.ackQueue(ctx, "capi_signals", "signals", ids)
}

// TrimSignals keeps the newest max queued signals and returns how many
// older ones it dropped.
func (s *Store) TrimSignals(ctx context.Context, max int) (int64, error) {
	return s.trimQueue(ctx, "capi_signals", "signal", max)
}

// QueuedDeletion is the UUID of a decision ended here, waiting to be told
// to the console.
type QueuedDeletion struct {
	ID   int64
	UUID string
}

// PendingDeletions returns up to limit queued deletions, oldest first.
func (s *Store) PendingDeletions(ctx context.Context, limit int) ([]QueuedDeletion, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, uuid FROM capi_deletions ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("reading queued decision deletions: %w", err)
	}
	defer rows.Close()
	var out []QueuedDeletion
	for rows.Next() {
		var q QueuedDeletion
		if err := rows.Scan(&q.ID, &q.UUID); err != nil {
			return nil, fmt.Errorf("reading queued decision deletions: %w", err)
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// DeletionQueueLen is how many decision deletions wait for the console.
func (s *Store) DeletionQueueLen(ctx context.Context) (int64, error) {
	return s.queueLen(ctx, "capi_deletions", "decision deletions")
}

// AckDeletions deletes the queued deletions the Central API took.
func (s *Store) AckDeletions(ctx context.Context, ids []int64) error {
	return s.ackQueue(ctx, "capi_deletions", "decision deletions", ids)
}

// TrimDeletions keeps the newest max queued deletions and returns how
// many older ones it dropped.
func (s *Store) TrimDeletions(ctx context.Context, max int) (int64, error) {
	return s.trimQueue(ctx, "capi_deletions", "decision deletion", max)
}

// queueLen, ackQueue and trimQueue serve both queues for the Central API
// (capi_signals, capi_deletions): what is named by table, never by input.
func (s *Store) queueLen(ctx context.Context, table, what string) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting queued %s: %w", what, err)
	}
	return n, nil
}

func (s *Store) ackQueue(ctx context.Context, table, what string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *wtx) error {
		cond, args := inInts("id", ids)
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+cond, args...); err != nil {
			return fmt.Errorf("deleting sent %s: %w", what, err)
		}
		return nil
	})
}

func (s *Store) trimQueue(ctx context.Context, table, what string, max int) (int64, error) {
	var dropped int64
	err := s.write(ctx, func(tx *wtx) error {
		// Two statements: MySQL refuses a DELETE reading its own table.
		var cut int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM `+table+` ORDER BY id DESC LIMIT 1 OFFSET ?`, max).Scan(&cut)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("bounding the %s queue: %w", what, err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE id <= ?`, cut)
		if err != nil {
			return fmt.Errorf("bounding the %s queue: %w", what, err)
		}
		dropped, _ = res.RowsAffected()
		return nil
	})
	return dropped, err
}

func inInts(col string, ids []int64) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return col + " IN (?" + strings.Repeat(", ?", len(ids)-1) + ")", args
}

// PutKV stores a setting, replacing its value. An upsert: MySQL counts an
// UPDATE writing the same value as affecting no row.
func (s *Store) PutKV(ctx context.Context, name, value string) error {
	q := `INSERT INTO kv (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`
	if s.d.kind == mysqlDB {
		q = `INSERT INTO kv (name, value) VALUES (?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value)`
	}
	return s.write(ctx, func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, q, name, value); err != nil {
			return fmt.Errorf("writing setting %s: %w", name, err)
		}
		return nil
	})
}

// MachineScenarios is the union of the scenarios every machine sent at
// login (what the LAPI tells the Central API it runs), sorted.
func (s *Store) MachineScenarios(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT scenarios FROM machines WHERE scenarios <> ''`)
	if err != nil {
		return nil, fmt.Errorf("reading machine scenarios: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	var out []string
	for rows.Next() {
		var list string
		if err := rows.Scan(&list); err != nil {
			return nil, fmt.Errorf("reading machine scenarios: %w", err)
		}
		for _, sc := range strings.Split(list, ",") {
			if sc = strings.TrimSpace(sc); sc != "" && !seen[sc] {
				seen[sc] = true
				out = append(out, sc)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading machine scenarios: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// DecisionSource gives a large set of decisions by index, so that their
// NewDecisions (about 200 bytes each with the UUID) are built a chunk at a
// time instead of being held all at once: a 100k-address community pull
// held 21 MB of them for the whole store, and the collector let the heap
// grow to several times that.
type DecisionSource interface {
	Len() int
	// Fill appends decisions [from, to) to dst.
	Fill(dst []NewDecision, from, to int) []NewDecision
}

// Decisions is a DecisionSource over decisions already built.
type Decisions []NewDecision

// Len is how many there are.
func (ds Decisions) Len() int { return len(ds) }

// Fill appends ds[from:to] to dst.
func (ds Decisions) Fill(dst []NewDecision, from, to int) []NewDecision {
	return append(dst, ds[from:to]...)
}

// ReplacePulled stores an alert of pulled decisions (the community list, or
// one blocklist), the decisions of src (a.Decisions is ignored), and ends
// the active decisions of the same origin on the same values held by other
// alerts: bouncers see the new decisions take over, never a gap. Values
// missing from src are left alone (they run out, or CAPI deletes them), as
// upstream does.
//
// The decisions go chunk at a time (all at once when chunk <= 0), each
// chunk in its own transaction with the ending of what it replaces: one
// transaction of 100k decisions held the database's writer for seconds,
// and every agent's push waited behind it. Only one chunk of NewDecisions
// is built at a time.
func (s *Store) ReplacePulled(ctx context.Context, a NewAlert, origin string, src DecisionSource, chunk int) (int64, error) {
	ctx = context.WithoutCancel(ctx) // see PushAlerts
	if err := s.prepare(ctx, pushStatements); err != nil {
		return 0, err
	}
	total := src.Len()
	if chunk <= 0 || chunk > total {
		chunk = max(total, 1)
	}
	buf := src.Fill(make([]NewDecision, 0, min(chunk, total)), 0, min(chunk, total))
	a.Decisions = buf
	next := len(buf)
	var id int64
	now := nowNS()
	err := s.write(ctx, func(tx *wtx) error {
		var ids []int64
		if err := createAlerts(tx, []NewAlert{a}, now, &ids); err != nil {
			return err
		}
		id = ids[0]
		if len(a.Decisions) == 0 {
			return nil
		}
		return endReplaced(tx, origin, id, 0, now)
	})
	for err == nil && next < total {
		to := min(next+chunk, total)
		// The previous chunk is stored: its slots are reused.
		part := src.Fill(buf[:0], next, to)
		next = to
		err = s.write(ctx, func(tx *wtx) error {
			// Once the transaction holds its change number it is the only
			// writer of decisions: its rows are those above the maximum.
			if _, err := tx.seq(); err != nil {
				return err
			}
			var after int64
			if err := tx.QueryRowContext(ctx, lastDecisionSQL).Scan(&after); err != nil {
				return fmt.Errorf("reading the last decision id: %w", err)
			}
			batch := [][]NewDecision{part}
			if err := insertAlertsDecisions(tx, []int64{id}, batch, firstLongest(batch), now); err != nil {
				return err
			}
			if err := settleInserted(tx, after); err != nil {
				return err
			}
			return endReplaced(tx, origin, id, after, now)
		})
	}
	return id, err
}

// endReplaced ends the active decisions of origin, held by other alerts,
// on the values of alert id's decisions above after.
func endReplaced(tx *wtx, origin string, id, after, now int64) error {
	if tx.s.d.kind != mysqlDB {
		_, err := endDecisions(tx, `origin = ? AND alert_id <> ? AND value IN (SELECT n.value FROM decisions n WHERE n.alert_id = ? AND n.id > ?)`,
			[]any{origin, id, id, after}, now, true)
		return err
	}
	// MySQL refuses an UPDATE whose subquery reads its own table: the
	// values first, then the ending by lists of them.
	rows, err := tx.QueryContext(tx.ctx, `SELECT DISTINCT value FROM decisions WHERE alert_id = ? AND id > ?`, id, after)
	if err != nil {
		return fmt.Errorf("reading pulled values: %w", err)
	}
	var values []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("reading pulled values: %w", err)
		}
		values = append(values, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading pulled values: %w", err)
	}
	for len(values) > 0 {
		n := min(len(values), 1000)
		cond, args := inList("value", values[:n])
		values = values[n:]
		if _, err := endDecisions(tx, `origin = ? AND alert_id <> ? AND `+cond, append([]any{origin, id}, args...), now, true); err != nil {
			return err
		}
	}
	return nil
}

// ExpirePulled ends the active decisions of origin on values (CAPI's
// explicit deletions); a scope other than Ip must match too. It returns
// how many ended.
func (s *Store) ExpirePulled(ctx context.Context, origin, scope string, values []string) (int64, error) {
	var total int64
	for len(values) > 0 {
		n := min(len(values), 500)
		chunk := values[:n]
		values = values[n:]
		err := s.write(ctx, func(tx *wtx) error {
			cond, args := inList("value", chunk)
			cond = "origin = ? AND " + cond
			args = append([]any{origin}, args...)
			if !strings.EqualFold(scope, "ip") {
				cond += " AND LOWER(scope) = LOWER(?)"
				args = append(args, scope)
			}
			k, err := endDecisions(tx, cond, args, nowNS(), true)
			total += k
			return err
		})
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// LastAlertCreated is when the newest alert of this source scope was
// stored (zero when there is none).
func (s *Store) LastAlertCreated(ctx context.Context, sourceScope string) (time.Time, error) {
	var v sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(created_at) FROM alerts WHERE source_scope = ?`, sourceScope).Scan(&v); err != nil {
		return time.Time{}, fmt.Errorf("reading the last pull: %w", err)
	}
	if !v.Valid {
		return time.Time{}, nil
	}
	return time.Unix(0, v.Int64), nil
}

// LatestUntil is the furthest end of the active decisions of origin and
// scenario (zero when none is active).
func (s *Store) LatestUntil(ctx context.Context, origin, scenario string) (time.Time, error) {
	var v sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(until) FROM decisions WHERE active AND origin = ? AND scenario = ?`, origin, scenario).Scan(&v); err != nil {
		return time.Time{}, fmt.Errorf("reading decisions of %s: %w", scenario, err)
	}
	if !v.Valid {
		return time.Time{}, nil
	}
	return time.Unix(0, v.Int64), nil
}

// AllowItem is one entry of an allowlist being replaced.
type AllowItem struct {
	Value, Description string
	Expires            *time.Time
}

// ReplaceAllowlist makes the allowlist name (created if missing) hold
// exactly items, in one transaction: the console's allowlists are pulled
// whole. Items that do not parse are an error before anything changes.
func (s *Store) ReplaceAllowlist(ctx context.Context, name, description string, items []AllowItem) error {
	ranges := make([]Range, len(items))
	for i, it := range items {
		r, err := ParseRange(it.Value)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidData, err)
		}
		ranges[i] = r
	}
	now := nowNS()
	return s.write(ctx, func(tx *wtx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM allowlists WHERE name = ?`, name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			if _, err := tx.ExecContext(ctx, `INSERT INTO allowlists (name, description, created_at, updated_at) VALUES (?, ?, ?, ?)`,
				name, description, now, now); err != nil {
				return fmt.Errorf("creating allowlist %s: %w", name, err)
			}
			err = tx.QueryRowContext(ctx, `SELECT id FROM allowlists WHERE name = ?`, name).Scan(&id)
		}
		if err != nil {
			return fmt.Errorf("allowlist %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM allowlist_items WHERE allowlist_id = ?`, id); err != nil {
			return fmt.Errorf("emptying allowlist %s: %w", name, err)
		}
		for i, it := range items {
			var exp any
			if it.Expires != nil {
				exp = it.Expires.UnixNano()
			}
			r := ranges[i]
			if _, err := tx.ExecContext(ctx, `INSERT INTO allowlist_items (allowlist_id, value, description, created_at, expires_at, ip_size, start_ip, end_ip, start_suffix, end_suffix)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, it.Value, it.Description, now, exp, r.Size, r.Start, r.End, r.StartSuffix, r.EndSuffix); err != nil {
				return fmt.Errorf("adding %s to allowlist %s: %w", it.Value, name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE allowlists SET description = ?, updated_at = ? WHERE id = ?`, description, now, id); err != nil {
			return err
		}
		return bumpAllowlists(tx)
	})
}

// TryLock takes the named lock for owner across every LAPI of the database
// unless another owner took it less than stale ago; false when it is held.
// A lock whose holder died is taken over once stale.
func (s *Store) TryLock(ctx context.Context, name, owner string, stale time.Duration) (bool, error) {
	key := "lock:" + name
	got := false
	err := s.write(ctx, func(tx *wtx) error {
		var v string
		err := tx.QueryRowContext(ctx, `SELECT value FROM kv WHERE name = ?`, key).Scan(&v)
		now := time.Now()
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, `INSERT INTO kv (name, value) VALUES (?, ?)`, key, fmt.Sprintf("%s %d", owner, now.UnixNano()))
		case err != nil:
		default:
			holder, at, _ := strings.Cut(v, " ")
			ns, _ := strconv.ParseInt(at, 10, 64)
			if holder != owner && now.Sub(time.Unix(0, ns)) < stale {
				return nil
			}
			_, err = tx.ExecContext(ctx, `UPDATE kv SET value = ? WHERE name = ?`, fmt.Sprintf("%s %d", owner, now.UnixNano()), key)
		}
		if err != nil {
			return fmt.Errorf("taking lock %s: %w", name, err)
		}
		got = true
		return nil
	})
	return got, err
}

// Unlock releases the named lock if owner holds it.
func (s *Store) Unlock(ctx context.Context, name, owner string) error {
	key := "lock:" + name
	return s.write(ctx, func(tx *wtx) error {
		var v string
		err := tx.QueryRowContext(ctx, `SELECT value FROM kv WHERE name = ?`, key).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("releasing lock %s: %w", name, err)
		}
		if holder, _, _ := strings.Cut(v, " "); holder != owner {
			return nil // taken over after it went stale
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM kv WHERE name = ?`, key)
		return err
	})
}
