package store

import (
	"context"
	"time"
)

// DecisionCount is the number of active decisions sharing a scenario
// (upstream's "reason"), origin and type (its "action").
type DecisionCount struct {
	Scenario, Origin, Type string
	Count                  int64
}

// CountActiveDecisions groups the active, unexpired decisions in one query.
// SQLite scans the table and sorts for the GROUP BY: about 0.7 s at 1M
// active decisions (a bare COUNT is 50 ms), hence the caller's cache.
func (s *Store) CountActiveDecisions(ctx context.Context, now time.Time) ([]DecisionCount, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT scenario, origin, type, COUNT(*) FROM decisions
		WHERE active AND until > ? GROUP BY scenario, origin, type`, now.UnixNano())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DecisionCount
	for rows.Next() {
		var d DecisionCount
		if err := rows.Scan(&d.Scenario, &d.Origin, &d.Type, &d.Count); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// CountAlertsByScenario counts stored alerts per scenario, leaving out the
// community blocklist and third-party lists as upstream's cs_alerts does.
// It tests the alert's source scope only, so it needs no join.
func (s *Store) CountAlertsByScenario(ctx context.Context) (map[string]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT scenario, COUNT(*) FROM alerts
		WHERE NOT (source_scope LIKE 'lists:%' OR source_scope = 'crowdsecurity/community-blocklist')
		GROUP BY scenario`)
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
