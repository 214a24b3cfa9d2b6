package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// The queries below feed the read-only web page. Each is a single bounded
// query on the reader pool so a page left open cannot slow the writer.

// UIDecision is an active decision as the page lists it.
type UIDecision struct {
	Value     string    `json:"value"`
	Scope     string    `json:"scope"`
	Type      string    `json:"type"`
	Scenario  string    `json:"scenario"`
	Origin    string    `json:"origin"`
	Simulated bool      `json:"simulated"`
	CreatedAt time.Time `json:"created_at"`
	Until     time.Time `json:"until"`
}

// UICount is a label with a number (top scenarios, top sources).
type UICount struct {
	Name  string `json:"name"`
	Count int64  `json:"count"`
}

// UIBouncer is a bouncer as the page lists it.
type UIBouncer struct {
	Name     string     `json:"name"`
	IP       string     `json:"ip"`
	Type     string     `json:"type"`
	Version  string     `json:"version"`
	LastPull *time.Time `json:"last_pull"`
	Revoked  bool       `json:"revoked"`
}

// Community-blocklist alerts would drown the local ones in every count, as
// they do in `cscli alerts list` without --all.
const uiLocalAlerts = `NOT EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = a.id AND d.origin IN ('CAPI', 'lists'))
	AND NOT (a.source_scope LIKE 'lists:%' OR a.source_scope = 'crowdsecurity/community-blocklist')`

// UIOriginFilter narrows the page's decision list to one origin and, when
// List is set, to one list (a decision's scenario under origin lists).
type UIOriginFilter struct {
	Origin string `json:"origin"`
	List   string `json:"list"`
}

// UIActiveDecisions returns up to limit active decisions matching f (the
// zero filter: all), the last stored first.
func (s *Store) UIActiveDecisions(ctx context.Context, now time.Time, f UIOriginFilter, limit int) ([]UIDecision, error) {
	st := uiDecisionsStmt(s.d.kind, now, f, limit)
	rows, err := s.r.QueryContext(ctx, st.q, st.args...)
	if err != nil {
		return nil, fmt.Errorf("listing active decisions: %w", err)
	}
	defer rows.Close()
	out := []UIDecision{}
	for rows.Next() {
		var d UIDecision
		var created, until int64
		if err := rows.Scan(&d.Value, &d.Scope, &d.Type, &d.Scenario, &d.Origin, &d.Simulated, &created, &until); err != nil {
			return nil, err
		}
		d.CreatedAt, d.Until = time.Unix(0, created).UTC(), time.Unix(0, until).UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}

// uiDecisionsStmt selects the newest active decisions by walking the
// primary key backwards until it has limit of them: newest is latest
// inserted (ids grow with insertion, as created_at does). Ordered by
// created_at, which no index holds, every active decision was read and
// sorted (4 s at 1M on SQLite). The walk is pinned: through
// decisions_active_until it would read them all again.
func uiDecisionsStmt(k kind, now time.Time, f UIOriginFilter, limit int) stmt {
	from := "decisions NOT INDEXED"
	if k == mysqlDB {
		from = "decisions FORCE INDEX (PRIMARY)"
	}
	cond, args := "", []any{now.UnixNano()}
	if f.Origin != "" {
		cond, args = " AND origin = ?", append(args, f.Origin)
		if f.List != "" {
			cond, args = cond+" AND scenario = ?", append(args, f.List)
		}
	}
	return stmt{"listing active decisions", `SELECT value, scope, type, scenario, origin, simulated, created_at, until
		FROM ` + from + ` WHERE active = TRUE AND until > ?` + cond + ` ORDER BY id DESC LIMIT ?`, append(args, limit)}
}

// UIAlertsPerHour counts local alerts in n hourly buckets; the last bucket
// is the hour containing now, so buckets line up with clock hours.
func (s *Store) UIAlertsPerHour(ctx context.Context, now time.Time, n int) (start time.Time, counts []int64, err error) {
	start = now.Truncate(time.Hour).Add(-time.Duration(n-1) * time.Hour)
	counts = make([]int64, n)
	rows, err := s.r.QueryContext(ctx, `SELECT `+s.d.intDiv("a.created_at - ?", "?")+` AS h, COUNT(*) FROM alerts a
		WHERE a.created_at >= ? AND `+uiLocalAlerts+` GROUP BY h`,
		start.UnixNano(), int64(time.Hour), start.UnixNano())
	if err != nil {
		return start, nil, fmt.Errorf("counting alerts per hour: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h, c int64
		if err := rows.Scan(&h, &c); err != nil {
			return start, nil, err
		}
		if h >= 0 && h < int64(n) { // clock skew could put a row past now
			counts[h] = c
		}
	}
	return start, counts, rows.Err()
}

// UITopAlerts returns the limit most frequent values of column (scenario or
// source) among local alerts created since.
func (s *Store) UITopAlerts(ctx context.Context, column string, since time.Time, limit int) ([]UICount, error) {
	var expr string
	switch column { // never interpolate caller text into SQL
	case "scenario":
		expr = "a.scenario"
	case "source":
		expr = "CASE WHEN a.source_value != '' THEN a.source_value ELSE a.source_ip END"
	default:
		return nil, fmt.Errorf("unknown column %q", column)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+expr+` AS k, COUNT(*) AS n FROM alerts a
		WHERE a.created_at >= ? AND `+uiLocalAlerts+` GROUP BY k ORDER BY n DESC, k ASC LIMIT ?`, since.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("top %s: %w", column, err)
	}
	defer rows.Close()
	out := []UICount{}
	for rows.Next() {
		var c UICount
		if err := rows.Scan(&c.Name, &c.Count); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// UIBouncers returns up to limit bouncers, most recently pulling first.
func (s *Store) UIBouncers(ctx context.Context, limit int) ([]UIBouncer, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, ip_address, type, version, last_pull, revoked FROM bouncers
		ORDER BY COALESCE(last_pull, 0) DESC, name ASC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("listing bouncers: %w", err)
	}
	defer rows.Close()
	out := []UIBouncer{}
	for rows.Next() {
		var b UIBouncer
		var last sql.NullInt64
		if err := rows.Scan(&b.Name, &b.IP, &b.Type, &b.Version, &last, &b.Revoked); err != nil {
			return nil, err
		}
		b.LastPull = nullTime(last)
		out = append(out, b)
	}
	return out, rows.Err()
}

// UIOrigin is the number of active decisions of one origin, by type and
// by scope, and for origin lists by list.
type UIOrigin struct {
	Origin string           `json:"origin"`
	Count  int64            `json:"count"`
	Types  map[string]int64 `json:"types"`
	Scopes map[string]int64 `json:"scopes"`
	Lists  []UIList         `json:"lists,omitempty"`
}

// UIList is the number of active decisions of one list, by type and scope.
type UIList struct {
	Name   string           `json:"name"`
	Count  int64            `json:"count"`
	Types  map[string]int64 `json:"types"`
	Scopes map[string]int64 `json:"scopes"`
}

// UIDecisionOrigins counts the active decisions per origin, type, scope
// and (for origin lists) list, the largest first. It reads the counts the triggers
// keep (CountActiveDecisions), so it costs the same at 10 or 1M decisions.
func (s *Store) UIDecisionOrigins(ctx context.Context, now time.Time) ([]UIOrigin, error) {
	counts, err := s.CountActiveDecisions(ctx, now)
	if err != nil {
		return nil, err
	}
	byOrigin := map[string]*UIOrigin{}
	lists := map[string]int{} // list name: index in the lists origin's Lists
	var order []*UIOrigin
	for _, c := range counts {
		o := byOrigin[c.Origin]
		if o == nil {
			o = &UIOrigin{Origin: c.Origin, Types: map[string]int64{}, Scopes: map[string]int64{}}
			byOrigin[c.Origin] = o
			order = append(order, o)
		}
		o.Count += c.Count
		o.Types[c.Type] += c.Count
		o.Scopes[c.Scope] += c.Count
		if c.Origin != OriginLists {
			continue
		}
		i, ok := lists[c.Scenario]
		if !ok {
			i = len(o.Lists)
			lists[c.Scenario] = i
			o.Lists = append(o.Lists, UIList{Name: c.Scenario, Types: map[string]int64{}, Scopes: map[string]int64{}})
		}
		o.Lists[i].Count += c.Count
		o.Lists[i].Types[c.Type] += c.Count
		o.Lists[i].Scopes[c.Scope] += c.Count
	}
	out := make([]UIOrigin, 0, len(order))
	for _, o := range order {
		slices.SortFunc(o.Lists, func(a, b UIList) int { return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Name, b.Name)) })
		out = append(out, *o)
	}
	slices.SortFunc(out, func(a, b UIOrigin) int { return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Origin, b.Origin)) })
	return out, nil
}
