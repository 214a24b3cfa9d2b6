package store

import (
	"context"
	"fmt"
	"time"
)

// FlushPolicy is the retention policy ([db_config.flush]).
type FlushPolicy struct {
	MaxAge   time.Duration // alerts created before now-MaxAge go (0: no age limit)
	MaxItems int           // keep at most this many alerts (0: no count limit)
	// Ended decisions are kept until every server-kept cursor that pulled
	// within TombstoneHorizon (7 days when 0) has received them, and at
	// least TombstoneMinAge (DefaultTombstoneMinAge when 0).
	TombstoneHorizon time.Duration
	TombstoneMinAge  time.Duration
}

// DefaultTombstoneMinAge keeps ended decisions long enough that a bouncer
// keeping its own cursor (which retention cannot see) and pulling within
// it never finds its cursor gone and never needs a full resync.
const DefaultTombstoneMinAge = time.Hour

// FlushResult says what a flush removed.
type FlushResult struct {
	Alerts    int64
	Decisions int64
}

// Flush applies the retention policy. Alerts that still carry an active
// decision are never removed by age or count: retention must not lift a ban.
// Ended decisions are purged only once no live bouncer still needs their
// 'deleted' report.
func (s *Store) Flush(ctx context.Context, p FlushPolicy, now time.Time) (FlushResult, error) {
	var res FlushResult
	ns := now.UnixNano()
	if _, err := s.SweepExpired(ctx, now); err != nil {
		return res, err
	}
	noActive := `NOT EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = a.id AND d.active)`
	err := s.write(ctx, func(tx *wtx) error {
		if p.MaxAge > 0 {
			n, err := deleteAlertsTx(tx, `SELECT a.id FROM alerts a WHERE a.created_at < ? AND `+noActive, []any{now.Add(-p.MaxAge).UnixNano()}, ns)
			if err != nil {
				return fmt.Errorf("flushing alerts by age: %w", err)
			}
			res.Alerts += n
		}
		if p.MaxItems > 0 {
			var total int64
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM alerts`).Scan(&total); err != nil {
				return fmt.Errorf("counting alerts: %w", err)
			}
			if excess := total - int64(p.MaxItems); excess > 0 {
				n, err := deleteAlertsTx(tx, fmt.Sprintf(`SELECT a.id FROM alerts a WHERE %s ORDER BY a.created_at ASC, a.id ASC LIMIT %d`, noActive, excess), nil, ns)
				if err != nil {
					return fmt.Errorf("flushing alerts by count: %w", err)
				}
				res.Alerts += n
			}
		}
		// The lowest server-kept cursor that pulled recently bounds what
		// may go; cursors idle beyond the horizon are forgotten (their
		// client's next delta is a full state, as for a new client).
		horizon := p.TombstoneHorizon
		if horizon <= 0 {
			horizon = 7 * 24 * time.Hour
		}
		minAge := p.TombstoneMinAge
		if minAge == 0 {
			minAge = DefaultTombstoneMinAge
		}
		since := now.Add(-horizon).UnixNano()
		if _, err := tx.ExecContext(ctx, `DELETE FROM stream_cursors WHERE last_pull < ?`, since); err != nil {
			return fmt.Errorf("forgetting idle stream cursors: %w", err)
		}
		var minCursor *int64
		if err := tx.QueryRowContext(ctx, `SELECT MIN("cursor") FROM stream_cursors`).Scan(&minCursor); err != nil {
			return fmt.Errorf("reading bouncer cursors: %w", err)
		}
		var current int64
		if err := tx.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'seq'`).Scan(&current); err != nil {
			return fmt.Errorf("reading sequence: %w", err)
		}
		limit := current
		if minCursor != nil && *minCursor < limit {
			limit = *minCursor
		}
		// Ended list decisions go even while their alert lives: the alert
		// of a feed's update keeps its entries still in the feed alive
		// for as long as the feed lists them, and one ended entry per
		// refresh would otherwise pile up under it.
		purgeable := `FROM decisions WHERE NOT active AND seq <= ? AND until < ?
			AND (alert_id IS NULL OR origin = 'lists' OR NOT EXISTS (SELECT 1 FROM alerts a WHERE a.id = decisions.alert_id))`
		args := []any{limit, now.Add(-minAge).UnixNano()}
		// Client-kept cursors below the highest purged change get
		// ErrCursorGone instead of a delta missing that deletion.
		var top int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) `+purgeable, args...).Scan(&top); err != nil {
			return fmt.Errorf("recording purged changes: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE counters SET value = ? WHERE name = 'purged' AND value < ?`, top, top); err != nil {
			return fmt.Errorf("recording purged changes: %w", err)
		}
		r, err := tx.ExecContext(ctx, `DELETE `+purgeable, args...)
		if err != nil {
			return fmt.Errorf("purging ended decisions: %w", err)
		}
		res.Decisions, _ = r.RowsAffected()
		// Usage reports are deltas summed for display; a week of them is
		// what cscli shows, as upstream keeps.
		if _, err := tx.ExecContext(ctx, `DELETE FROM usage_metrics WHERE received_at < ?`, now.Add(-UsageRetention).UnixNano()); err != nil {
			return fmt.Errorf("purging usage metrics: %w", err)
		}
		return nil
	})
	return res, err
}
