package store

import (
	"context"
	"fmt"
	"time"
)

// DecisionCount is the number of active decisions sharing a scenario
// (upstream's "reason"), origin, type (its "action") and scope.
type DecisionCount struct {
	Scenario, Origin, Type, Scope string
	Count                         int64
}

// CountActiveDecisions counts the active, unexpired decisions per
// scenario, origin, type and scope. The active ones are counted by
// triggers (migrations 3 and 8); those whose time ran out but that the
// once-a-second sweep has not ended yet are subtracted through the
// (active, until) index. Both reads are proportional to the number of
// groups and of such stragglers, not to the table: the gauge costs the
// same at 10 or 1M decisions.
func (s *Store) CountActiveDecisions(ctx context.Context, now time.Time) ([]DecisionCount, error) {
	type group struct{ scenario, origin, typ, scope string }
	counts := map[group]int64{}
	var order []group
	read := func(q string, sign int64, args ...any) error {
		rows, err := s.r.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("counting active decisions: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var g group
			var n int64
			if err := rows.Scan(&g.scenario, &g.origin, &g.typ, &g.scope, &n); err != nil {
				return fmt.Errorf("counting active decisions: %w", err)
			}
			if _, ok := counts[g]; !ok {
				order = append(order, g)
			}
			counts[g] += sign * n
		}
		return rows.Err()
	}
	if err := read(`SELECT scenario, origin, type, scope, n FROM active_decision_counts WHERE n > 0`, 1); err != nil {
		return nil, err
	}
	if err := read(`SELECT scenario, origin, type, scope, COUNT(*) FROM decisions WHERE active = TRUE AND until <= ?
		GROUP BY scenario, origin, type, scope`, -1, now.UnixNano()); err != nil {
		return nil, err
	}
	var out []DecisionCount
	for _, g := range order {
		if n := counts[g]; n > 0 {
			out = append(out, DecisionCount{Scenario: g.scenario, Origin: g.origin, Type: g.typ, Scope: g.scope, Count: n})
		}
	}
	return out, nil
}

// CountAlertsByScenario counts stored alerts per scenario, leaving out the
// community blocklist and third-party lists as upstream's cs_alerts does.
// The counts are kept by triggers (migration 3), so reading them costs one
// row per scenario whatever the number of alerts.
func (s *Store) CountAlertsByScenario(ctx context.Context) (map[string]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT scenario, n FROM alert_counts WHERE n > 0`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var sc string
		var n int64
		if err := rows.Scan(&sc, &n); err != nil {
			return nil, err
		}
		out[sc] = n
	}
	return out, rows.Err()
}
