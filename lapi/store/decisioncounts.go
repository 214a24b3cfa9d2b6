package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrNotAddress is the error of the decision counts for a value that is
// neither an IP nor a CIDR range: like upstream, the counts only know
// decisions by the addresses they cover.
var ErrNotAddress = errors.New("not an IP address or range")

// DecisionCounts is what the expression helpers GetDecisionsCount,
// GetDecisionsSinceCount, GetActiveDecisionsCount and
// GetActiveDecisionsTimeLeft need to know about one value.
type DecisionCounts struct {
	Total  int       // every decision covering the value, expired or deleted included
	Since  int       // those created after the since time (0 when none was given)
	Active int       // those still in force
	Until  time.Time // the latest end among the active ones; zero when none
}

// CountDecisions counts the decisions that cover value (an IP or a CIDR:
// a decision on 192.0.2.0/24 counts for 192.0.2.7), whatever their type,
// origin or scope, simulated ones included, as upstream's database helpers
// do. since, when not zero, also counts those created after it.
func (s *Store) CountDecisions(ctx context.Context, value string, since, now time.Time) (DecisionCounts, error) {
	st, err := countStmt(value, since, now)
	if err != nil {
		return DecisionCounts{}, err
	}
	var c DecisionCounts
	var until sql.NullInt64
	if err := s.r.QueryRowContext(ctx, st.q, st.args...).Scan(&c.Total, &c.Since, &c.Active, &until); err != nil {
		return DecisionCounts{}, fmt.Errorf("counting decisions for %s: %w", value, err)
	}
	if until.Valid {
		c.Until = time.Unix(0, until.Int64)
	}
	return c, nil
}

// countStmt selects the counts in one pass over the decisions covering
// value, a few index probes of decisions_range (see rangeCond); the index
// is pinned, as the planner would scan a table its statistics say is
// small.
func countStmt(value string, since, now time.Time) (stmt, error) {
	r, err := ParseRange(value)
	if err != nil {
		return stmt{}, fmt.Errorf("%w: %w", ErrNotAddress, err)
	}
	cond, args := rangeCond(r, true, "")
	sinceNS := int64(-1 << 63)
	if !since.IsZero() {
		sinceNS = since.UnixNano()
	}
	n := now.UnixNano()
	q := `SELECT COUNT(*),
		COALESCE(SUM(CASE WHEN ? AND created_at > ? THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN active AND until > ? THEN 1 ELSE 0 END), 0),
		MAX(CASE WHEN active AND until > ? THEN until END)
		FROM decisions INDEXED BY decisions_range WHERE ` + cond
	a := []any{!since.IsZero(), sinceNS, n, n}
	return stmt{"counting decisions", q, append(a, args...)}, nil
}

// candidateStarts lists the start_ip every CIDR covering r can have (33
// for IPv4, 65 for IPv6 upper halves, fewer for a range: its longer masks
// repeat its start).
func candidateStarts(r Range) []any {
	if r.Size == 4 {
		out := make([]any, 0, 33)
		start := uint32(r.Start)
		for bits := 0; bits <= 32; bits++ {
			out = appendNew(out, int64(start&^(^uint32(0)>>uint(bits))))
		}
		return out
	}
	// Upper halves are stored shifted into signed order (shift); mask the
	// unsigned value.
	hi := uint64(r.Start) ^ (1 << 63)
	out := make([]any, 0, 65)
	for bits := 0; bits <= 64; bits++ {
		var m uint64
		if bits < 64 {
			m = ^uint64(0) >> uint(bits)
		}
		out = appendNew(out, shift(hi&^m))
	}
	return out
}

// appendNew appends v unless it is the last value (masks by growing
// prefix length are ascending, so repeats are adjacent).
func appendNew(out []any, v int64) []any {
	if len(out) > 0 && out[len(out)-1] == any(v) {
		return out
	}
	return append(out, v)
}

// DecisionsCount counts every decision covering value (profiles'
// GetDecisionsCount).
func (s *Store) DecisionsCount(ctx context.Context, value string) (int, error) {
	c, err := s.CountDecisions(ctx, value, time.Time{}, time.Now())
	return c.Total, err
}

// DecisionsSinceCount counts the decisions covering value created after
// since.
func (s *Store) DecisionsSinceCount(ctx context.Context, value string, since time.Time) (int, error) {
	c, err := s.CountDecisions(ctx, value, since, time.Now())
	return c.Since, err
}

// ActiveDecisionsCount counts the active decisions covering value.
func (s *Store) ActiveDecisionsCount(ctx context.Context, value string) (int, error) {
	c, err := s.CountDecisions(ctx, value, time.Time{}, time.Now())
	return c.Active, err
}

// ActiveDecisionsTimeLeft returns the longest time left among the active
// decisions covering value (0 when none).
func (s *Store) ActiveDecisionsTimeLeft(ctx context.Context, value string) (time.Duration, error) {
	now := time.Now()
	c, err := s.CountDecisions(ctx, value, time.Time{}, now)
	if err != nil || c.Until.IsZero() {
		return 0, err
	}
	return c.Until.Sub(now), nil
}
