package store

import (
	"context"
	"fmt"
	"time"
)

// UsageRetention is how long usage-metrics reports are kept.
const UsageRetention = 7 * 24 * time.Hour

// MaxUsageReports bounds the reports kept per component, whatever their
// age: a week of one a minute, the shortest interval Rampart's components
// allow. A client reporting faster loses its oldest windows, not the
// LAPI's disk or the dashboard's time.
const MaxUsageReports = 7 * 24 * 60

// UsageReport is one stored usage-metrics item as a component pushed it.
type UsageReport struct {
	Kind       string // "remediation_component" or "log_processor"
	By         string // bouncer name or machine id
	ReceivedAt time.Time
	Payload    string // the JSON item
}

// UsageReports returns the stored reports of one kind, oldest first; by
// limits them to one component when not empty. Reports are bounded by
// retention (a few hundred per component a week), so no paging.
func (s *Store) UsageReports(ctx context.Context, kind, by string) ([]UsageReport, error) {
	q := `SELECT generated_type, generated_by, received_at, payload FROM usage_metrics WHERE generated_type = ?`
	args := []any{kind}
	if by != "" {
		q += ` AND generated_by = ?`
		args = append(args, by)
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY received_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading usage metrics: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []UsageReport
	for rows.Next() {
		var r UsageReport
		var ns int64
		if err := rows.Scan(&r.Kind, &r.By, &ns, &r.Payload); err != nil {
			return nil, fmt.Errorf("reading usage metrics: %w", err)
		}
		r.ReceivedAt = time.Unix(0, ns)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading usage metrics: %w", err)
	}
	return out, nil
}

// UsageReportsAfter returns the reports stored after id (every kind),
// oldest first, with the largest id returned (id itself when none).
func (s *Store) UsageReportsAfter(ctx context.Context, id int64) ([]UsageReport, int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, generated_type, generated_by, received_at, payload FROM usage_metrics WHERE id > ? ORDER BY id`, id)
	if err != nil {
		return nil, id, fmt.Errorf("reading usage metrics: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []UsageReport
	last := id
	for rows.Next() {
		var r UsageReport
		var ns int64
		if err := rows.Scan(&last, &r.Kind, &r.By, &ns, &r.Payload); err != nil {
			return nil, id, fmt.Errorf("reading usage metrics: %w", err)
		}
		r.ReceivedAt = time.Unix(0, ns)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, id, fmt.Errorf("reading usage metrics: %w", err)
	}
	return out, last, nil
}
