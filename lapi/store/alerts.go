package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// NewAlert is an alert about to be stored with its final decisions.
type NewAlert struct {
	Alert     *models.Alert
	UUID      string
	MachineID string
	StartAt   time.Time
	StopAt    time.Time
	Decisions []NewDecision
	// Duplicate is set by CreateAlerts and PushAlerts when the alert was
	// not stored because its UUID already was (a retried push, or the
	// UUID twice in one), so that what follows a store (notifications)
	// happens once.
	Duplicate bool
	// Signal is the alert as the Central API takes it (one JSON item of
	// POST /v3/signals), nil when it is not shared: queued in the same
	// transaction as the alert, once per alert however often it is pushed.
	Signal []byte
}

const (
	maxMetaKey   = 255
	maxMetaValue = 4095
)

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// CreateAlerts stores alerts and their decisions in one transaction and
// returns their ids in order. An alert whose UUID is already stored (an
// agent retrying a push whose reply it lost) is not stored again: its
// existing id is returned and its decisions are not added twice.
func (s *Store) CreateAlerts(ctx context.Context, alerts []NewAlert) ([]int64, error) {
	return s.PushAlerts(ctx, "", alerts)
}

// PushAlerts is CreateAlerts for a machine's push: the machine's last push
// time is recorded in the same transaction (a second commit per push cost
// as much as the inserts). machineID "" records nothing.
//
// The push is not interrupted when its client goes away: with a context
// that can end, the SQLite driver starts a goroutine and a progress
// callback for every statement, and a push whose reply was lost is
// answered from its UUIDs when the client sends it again.
func (s *Store) PushAlerts(ctx context.Context, machineID string, alerts []NewAlert) ([]int64, error) {
	ctx = context.WithoutCancel(ctx)
	if err := s.prepare(ctx, pushStatements); err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(alerts))
	now := nowNS()
	err := s.write(ctx, func(tx *wtx) error {
		ids = ids[:0]
		if err := createAlerts(tx, alerts, now, &ids); err != nil {
			return err
		}
		if machineID == "" {
			return nil
		}
		if _, err := tx.exec(lastPushSQL, now, machineID); err != nil {
			return fmt.Errorf("recording the machine's push: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

func createAlerts(tx *wtx, alerts []NewAlert, now int64, ids *[]int64) error {
	if len(alerts) == 0 {
		return nil
	}
	// One lookup for the batch's UUIDs, and the new alerts inserted by
	// multi-row statements: two statements per alert cost as much as
	// everything else of a push.
	known, err := knownAlerts(tx, alerts)
	if err != nil {
		return err
	}
	fresh := make([]*NewAlert, 0, len(alerts))
	first := make(map[string]int, len(alerts)) // UUID -> index in fresh
	slot := make([]int, len(alerts))           // index in fresh, or -1: known
	for i := range alerts {
		na := &alerts[i]
		na.Duplicate = true
		if _, ok := known[na.UUID]; ok {
			slot[i] = -1
			continue
		}
		// A UUID twice in one push is one alert, as across pushes.
		if k, ok := first[na.UUID]; ok {
			slot[i] = k
			continue
		}
		na.Duplicate = false
		first[na.UUID] = len(fresh)
		slot[i] = len(fresh)
		fresh = append(fresh, na)
	}
	freshIDs, err := insertAlertRows(tx, fresh, now)
	if err != nil {
		return err
	}
	for i, k := range slot {
		if k < 0 {
			*ids = append(*ids, known[alerts[i].UUID])
		} else {
			*ids = append(*ids, freshIDs[k])
		}
	}
	// Meta goes in multi-row statements after the alerts, in the same
	// order as one by one: modernc's per-statement cost dominated.
	metas := newRowInserter(tx, metaRows)
	signals := newRowInserter(tx, signalRows)
	var alertIDs []int64
	var decisions [][]NewDecision
	for k, na := range fresh {
		id := freshIDs[k]
		a := na.Alert
		if na.Signal != nil {
			if err := signals.add(now, string(na.Signal)); err != nil {
				return err
			}
		}
		for _, m := range a.Meta {
			if err := metas.add(id, truncate(m.Key, maxMetaKey), truncate(m.Value, maxMetaValue)); err != nil {
				return err
			}
		}
		if len(na.Decisions) > 0 {
			alertIDs = append(alertIDs, id)
			decisions = append(decisions, na.Decisions)
		}
	}
	if err := metas.flush(); err != nil {
		return err
	}
	if err := signals.flush(); err != nil {
		return err
	}
	return insertDecisions(tx, alertIDs, decisions, now)
}

// insertDecisions stores decisions[i] for alertIDs[i] and settles which
// of them bouncers hold.
func insertDecisions(tx *wtx, alertIDs []int64, decisions [][]NewDecision, now int64) error {
	if len(decisions) == 0 {
		return nil
	}
	// Decision ids only grow and, once the transaction holds its change
	// number, it is the only writer of decisions (see the package doc),
	// so its decisions are exactly those above the current maximum.
	if _, err := tx.seq(); err != nil {
		return err
	}
	var after int64
	last, err := tx.stmt(lastDecisionSQL)
	if err != nil {
		return fmt.Errorf("reading the last decision id: %w", err)
	}
	err = last.QueryRowContext(tx.ctx).Scan(&after)
	last.Close()
	if err != nil {
		return fmt.Errorf("reading the last decision id: %w", err)
	}
	shown := firstLongest(decisions)
	if err := insertAlertsDecisions(tx, alertIDs, decisions, shown, now); err != nil {
		return err
	}
	return settleInserted(tx, after)
}

// knownAlerts returns the ids of the alerts already stored under the
// UUIDs of alerts (an agent retrying a push whose reply it lost).
func knownAlerts(tx *wtx, alerts []NewAlert) (map[string]int64, error) {
	known := map[string]int64{}
	uuids := make([]any, len(alerts))
	for i := range alerts {
		uuids[i] = alerts[i].UUID
	}
	for len(uuids) > 0 {
		n := alertLookupRows.per
		for n > len(uuids) {
			n /= 2
		}
		st, err := tx.stmt(alertLookupRows.sql(n))
		if err != nil {
			return nil, fmt.Errorf("preparing alert lookup: %w", err)
		}
		rows, err := st.QueryContext(tx.ctx, uuids[:n]...)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("looking up alerts: %w", err)
		}
		for rows.Next() {
			var u string
			var id int64
			if err := rows.Scan(&u, &id); err != nil {
				rows.Close()
				st.Close()
				return nil, fmt.Errorf("looking up alerts: %w", err)
			}
			known[u] = id
		}
		err = rows.Err()
		rows.Close()
		st.Close()
		if err != nil {
			return nil, fmt.Errorf("looking up alerts: %w", err)
		}
		uuids = uuids[n:]
	}
	return known, nil
}

// insertAlertRows inserts the alert rows and returns their ids in order.
func insertAlertRows(tx *wtx, alerts []*NewAlert, now int64) ([]int64, error) {
	ids := make([]int64, 0, len(alerts))
	args := make([]any, 0, alertRows.cols*min(len(alerts), alertRows.per))
	var blob []byte
	nowT := time.Unix(0, now)
	for len(alerts) > 0 {
		n := alertRows.per
		for n > len(alerts) {
			n /= 2
		}
		args = args[:0]
		for _, na := range alerts[:n] {
			a := na.Alert
			src := a.Source
			if src == nil {
				src = &models.Source{}
			}
			args = append(args, na.UUID, na.MachineID, now, a.Scenario, a.ScenarioHash, a.ScenarioVersion, a.Message,
				a.EventsCount, na.StartAt.UnixNano(), na.StopAt.UnixNano(), a.Capacity, a.Leakspeed, a.Simulated, a.Remediation, a.Kind,
				src.Scope, src.Value, src.IP, src.Range, src.AsNumber, src.AsName, src.Cn, src.Latitude, src.Longitude)
			blob = appendEventsJSON(blob[:0], a.Events, nowT)
			args = append(args, string(blob))
		}
		got, err := insertReturningIDs(tx, alertRows.sql(n), args)
		if err != nil {
			return nil, err
		}
		// The rows are inserted in VALUES order, each taking the next
		// id: the sorted ids are theirs in order. Anything else would be
		// a bug worth failing the push for. On servers other LAPIs insert
		// alerts at the same time, so ids need not be consecutive; there
		// RETURNING gives them in VALUES order.
		consecutive := tx.s.d.kind == sqliteDB
		if consecutive {
			slices.Sort(got)
		}
		if len(got) != n || consecutive && got[n-1]-got[0] != int64(n-1) {
			return nil, fmt.Errorf("inserting alerts: %d rows gave ids %v", n, got)
		}
		ids = append(ids, got...)
		alerts = alerts[n:]
	}
	return ids, nil
}

func insertReturningIDs(tx *wtx, q string, args []any) ([]int64, error) {
	st, err := tx.stmt(q)
	if err != nil {
		return nil, fmt.Errorf("preparing alert insert: %w", err)
	}
	defer st.Close()
	rows, err := st.QueryContext(tx.ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("inserting alerts: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("inserting alerts: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inserting alerts: %w", err)
	}
	return ids, nil
}

// rowSpec is a multi-row statement: head, then up to per rows of cols
// values, then tail. per is a power of two.
type rowSpec struct {
	what      string
	cols, per int
	texts     map[int]string // by number of rows: per and the powers of two below
}

func newRowSpec(what, head string, cols, per int, tail string) *rowSpec {
	r := &rowSpec{what: what, cols: cols, per: per, texts: map[int]string{}}
	row := "(?" + strings.Repeat(", ?", cols-1) + ")"
	for n := per; n >= 1; n /= 2 {
		var b strings.Builder
		b.WriteString(head)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(row)
		}
		b.WriteString(tail)
		r.texts[n] = b.String()
	}
	return r
}

// sql is the statement for rows rows, a power of two up to per.
func (r *rowSpec) sql(rows int) string { return r.texts[rows] }

// The multi-row statements, built once: a push used to rebuild their
// texts, a tenth of its allocations.
var (
	alertRows = newRowSpec("alert", `INSERT INTO alerts (uuid, machine_id, created_at, scenario, scenario_hash, scenario_version, message,
		events_count, started_at, stopped_at, capacity, leakspeed, simulated, remediation, kind, source_scope, source_value, source_ip,
		source_range, source_as_number, source_as_name, source_country, source_latitude, source_longitude, events) VALUES `, 25, 64, ` RETURNING id`)
	alertLookupRows = newRowSpec("alert lookup", `SELECT uuid, id FROM alerts WHERE uuid IN (`, 1, 64, `)`)
	metaRows        = newRowSpec("alert meta", `INSERT INTO alert_meta (alert_id, "key", value) VALUES `, 3, 256, "")
	decisionRows    = newRowSpec("decision", `INSERT INTO decisions (`+strings.Join(newDecisionCols, ", ")+`) VALUES `, len(newDecisionCols), 256, "")
	signalRows      = newRowSpec("signal", `INSERT INTO capi_signals (created_at, body) VALUES `, 2, 64, "")
	pushStatements  = alertStatements()
	// newDecisionCols are the columns a new decision row sets.
	newDecisionCols = []string{"uuid", "alert_id", "created_at", "until", "scenario", "type", "scope", "value", "origin", "simulated",
		"ip_size", "start_ip", "end_ip", "start_suffix", "end_suffix", "active", "shown", "seq"}
)

const (
	lastPushSQL     = `UPDATE machines SET last_push = ? WHERE machine_id = ?`
	lastDecisionSQL = `SELECT COALESCE(MAX(id), 0) FROM decisions`
)

// alertStatements lists the statements storing alerts: those each push
// runs, and each multi-row size used (per, then the powers of two below it
// for the rest). Parsing them once saves modernc a parse per push each.
func alertStatements() []string {
	qs := []string{lastPushSQL, lastDecisionSQL, nextSeqSQL, beatenStmt(0).q, supersededStmt(0).q, hideStmt(0).q}
	for _, r := range []*rowSpec{alertRows, alertLookupRows, metaRows, decisionRows, signalRows} {
		for n := r.per; n >= 1; n /= 2 {
			qs = append(qs, r.sql(n))
		}
	}
	return qs
}

// rowInserter inserts rows through multi-row INSERT statements: per rows
// at a time, the rest in power-of-two chunks, so that a handful of
// statement texts serve every count and stay prepared.
type rowInserter struct {
	tx   *wtx
	spec *rowSpec
	args []any
}

func newRowInserter(tx *wtx, spec *rowSpec) *rowInserter {
	return &rowInserter{tx: tx, spec: spec}
}

func (r *rowInserter) add(row ...any) error {
	r.args = append(r.args, row...)
	if len(r.args) < r.spec.cols*r.spec.per {
		return nil
	}
	return r.flush()
}

// flush inserts the rows added so far.
func (r *rowInserter) flush() error {
	args := r.args
	for len(args) > 0 {
		n := r.spec.per
		for n*r.spec.cols > len(args) {
			n /= 2
		}
		st, err := r.tx.stmt(r.spec.sql(n))
		if err != nil {
			return fmt.Errorf("preparing %s insert: %w", r.spec.what, err)
		}
		_, err = st.ExecContext(r.tx.ctx, args[:n*r.spec.cols]...)
		st.Close()
		if err != nil {
			return fmt.Errorf("inserting %s: %w", r.spec.what, err)
		}
		args = args[n*r.spec.cols:]
	}
	r.args = r.args[:0]
	return nil
}

// AlertFilter selects alerts (GET and DELETE /v1/alerts, cscli).
type AlertFilter struct {
	ID                int64
	Scope             string
	Value             string
	Scenario          string
	Range             *Range
	Contains          bool
	Since             *time.Time // started_at >= Since
	Until             *time.Time // started_at <= Until
	CreatedBefore     *time.Time
	DecisionType      string
	Origin            string
	IncludeCAPI       bool
	HasActiveDecision *bool
	ExcludeSimulated  bool
	Kind              string
	MachineID         string
	Limit             int // 0 = no limit
	SortAsc           bool
	WithoutDecisions  bool // omit decisions from the result
}

// where is f's conditions on alerts a for engine k.
func (f AlertFilter) where(k kind, now int64) ([]string, []any) {
	var conds []string
	var args []any
	add := func(c string, a ...any) { conds = append(conds, c); args = append(args, a...) }
	if f.ID != 0 {
		add("a.id = ?", f.ID)
	}
	if f.Scope != "" {
		add("a.source_scope = ?", f.Scope)
	}
	if f.Value != "" {
		add("a.source_value = ?", f.Value)
	}
	if f.Scenario != "" {
		add("(a.scenario = ? OR EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = a.id AND d.scenario = ?"+perAlert(k)+"))", f.Scenario, f.Scenario)
	}
	if f.Range != nil {
		// The alerts of the few decisions the address seek finds, not a
		// check of every alert's decisions (an import's alert has 50,000).
		c, a := rangeCond(*f.Range, f.Contains, "d.")
		add("a.id IN (SELECT d.alert_id FROM decisions d INDEXED BY decisions_range WHERE "+c+")", a...)
	}
	if f.Since != nil {
		add("a.started_at >= ?", f.Since.UnixNano())
	}
	if f.Until != nil {
		add("a.started_at <= ?", f.Until.UnixNano())
	}
	if f.CreatedBefore != nil {
		add("a.created_at <= ?", f.CreatedBefore.UnixNano())
	}
	if f.DecisionType != "" {
		add("EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = a.id AND d.type = ?)", f.DecisionType)
	}
	if f.Origin != "" {
		add("EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = a.id AND d.origin = ?)", f.Origin)
	}
	if !f.IncludeCAPI && f.Origin == "" {
		add("NOT EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = a.id AND d.origin IN ('CAPI', 'lists'))")
		add("NOT (a.source_scope LIKE 'lists:%' OR a.source_scope = 'crowdsecurity/community-blocklist')")
	}
	if f.HasActiveDecision != nil {
		if *f.HasActiveDecision {
			add("EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = a.id AND d.active AND d.until >= ?"+perAlert(k)+")", now)
		} else {
			add("NOT EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = a.id)")
		}
	}
	if f.ExcludeSimulated {
		add("a.simulated = FALSE")
	}
	if f.Kind != "" {
		add("a.kind = ?", f.Kind)
	}
	if f.MachineID != "" {
		add("a.machine_id = ?", f.MachineID)
	}
	return conds, args
}

// perAlert ends an EXISTS on an alert's decisions that PostgreSQL must
// check alert by alert, a seek of decisions_alert_origin, as the newest
// alerts are walked: OFFSET 0 keeps it from becoming a semi-join or a
// hashed subplan. Its sampled statistics at 1M (95% of the decisions in
// 19 imports' alerts) put 450 decisions in each alert, and it hashed every
// active decision, or every decision of the scenario, for cscli decisions
// list --scenario (0.5-0.8 s; SQLite and MariaDB already check per alert).
func perAlert(k kind) string {
	if k == postgresDB {
		return " OFFSET 0"
	}
	return ""
}

const alertCols = `a.id, a.uuid, a.machine_id, a.created_at, a.scenario, a.scenario_hash, a.scenario_version, a.message, a.events_count,
	a.started_at, a.stopped_at, a.capacity, a.leakspeed, a.simulated, a.remediation, a.kind, a.source_scope, a.source_value, a.source_ip,
	a.source_range, a.source_as_number, a.source_as_name, a.source_country, a.source_latitude, a.source_longitude, a.events`

func rfc3339(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339) }

// QueryAlerts returns alerts with their decisions, events and meta, newest
// first (SortAsc reverses).
func (s *Store) QueryAlerts(ctx context.Context, f AlertFilter, now time.Time) ([]*models.Alert, error) {
	conds, args := f.where(s.d.kind, now.UnixNano())
	q := `SELECT ` + alertCols + ` FROM alerts a`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	if f.SortAsc {
		q += ` ORDER BY a.created_at ASC, a.id ASC`
	} else {
		q += ` ORDER BY a.created_at DESC, a.id DESC`
	}
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("querying alerts: %w", err)
	}
	var out []*models.Alert
	byID := map[int64]*models.Alert{}
	for rows.Next() {
		var a models.Alert
		var src models.Source
		var created, started, stopped int64
		var events string
		if err := rows.Scan(&a.ID, &a.UUID, &a.MachineID, &created, &a.Scenario, &a.ScenarioHash, &a.ScenarioVersion, &a.Message,
			&a.EventsCount, &started, &stopped, &a.Capacity, &a.Leakspeed, &a.Simulated, &a.Remediation, &a.Kind, &src.Scope, &src.Value,
			&src.IP, &src.Range, &src.AsNumber, &src.AsName, &src.Cn, &src.Latitude, &src.Longitude, &events); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading alert: %w", err)
		}
		a.Events = readEvents(events)
		a.CreatedAt, a.StartAt, a.StopAt = rfc3339(created), rfc3339(started), rfc3339(stopped)
		if a.MachineID == "" {
			a.MachineID = "N/A"
		}
		a.Source = &src
		out = append(out, &a)
		byID[a.ID] = &a
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("querying alerts: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	if err := s.fillAlerts(ctx, out, byID, now, !f.WithoutDecisions); err != nil {
		return nil, err
	}
	return out, nil
}

func idList(alerts []*models.Alert) string {
	var b strings.Builder
	for i, a := range alerts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(a.ID, 10))
	}
	return b.String()
}

// fillAlerts loads the children of alerts in chunks of ids.
func (s *Store) fillAlerts(ctx context.Context, alerts []*models.Alert, byID map[int64]*models.Alert, now time.Time, withDecisions bool) error {
	const chunk = 500
	for start := 0; start < len(alerts); start += chunk {
		end := min(start+chunk, len(alerts))
		ids := idList(alerts[start:end])
		if withDecisions {
			rows, err := s.r.QueryContext(ctx, `SELECT `+decisionCols+` FROM decisions WHERE alert_id IN (`+ids+`) ORDER BY id`)
			if err != nil {
				return fmt.Errorf("reading alert decisions: %w", err)
			}
			for rows.Next() {
				var d DecisionRow
				if err := scanDecision(rows, &d); err != nil {
					rows.Close()
					return fmt.Errorf("reading alert decisions: %w", err)
				}
				a := byID[d.AlertID]
				sim := a.Simulated
				a.Decisions = append(a.Decisions, &models.Decision{
					Duration: models.FormatRemaining(d.Until, now), ID: d.ID, Origin: d.Origin, Scenario: d.Scenario,
					Scope: d.Scope, Simulated: &sim, Type: d.Type, Value: d.Value,
				})
			}
			rows.Close()
		}
		rows, err := s.r.QueryContext(ctx, `SELECT alert_id, "key", value FROM alert_meta WHERE alert_id IN (`+ids+`) ORDER BY id`)
		if err != nil {
			return fmt.Errorf("reading alert meta: %w", err)
		}
		for rows.Next() {
			var id int64
			var m models.Meta
			if err := rows.Scan(&id, &m.Key, &m.Value); err != nil {
				rows.Close()
				return fmt.Errorf("reading alert meta: %w", err)
			}
			byID[id].Meta = append(byID[id].Meta, m)
		}
		rows.Close()
	}
	return nil
}

// readEvents decodes an alert's events column as GET /v1/alerts shows
// them: each time parsed and written as Go prints a UTC time, as upstream
// does; never nil.
func readEvents(blob string) []*models.Event {
	stored, ok := parseStoredEvents(blob)
	if !ok {
		stored = decodeEvents(blob)
	}
	events := make([]*models.Event, len(stored))
	slab := make([]models.Event, len(stored))
	var lastTS, lastShown string
	for i, se := range stored {
		e := &slab[i]
		e.Meta, e.Timestamp = se.Meta, se.TS
		// An alert's events mostly share their time's text: parsed once.
		if se.TS == lastTS && i > 0 {
			e.Timestamp = lastShown
		} else if t, err := time.Parse(time.RFC3339Nano, se.TS); err == nil {
			e.Timestamp = t.UTC().String()
		}
		lastTS, lastShown = se.TS, e.Timestamp
		events[i] = e
	}
	return events
}

// parseStoredEvents reads an events column as appendEventsJSON writes it,
// its strings needing no unescaping and printable ASCII: listing every
// alert spent most of its time in encoding/json on them. Anything else
// says !ok, for encoding/json.
func parseStoredEvents(s string) ([]storedEvent, bool) {
	p := storedParser{s: s}
	if !p.lit(`{"e":[`) {
		return nil, false
	}
	if p.lit("]}") {
		return []storedEvent{}, p.i == len(s)
	}
	// Counted from the text, for one allocation of each: an upper bound.
	out := make([]storedEvent, 0, strings.Count(s, `",[`))
	items := make([]string, 0, strings.Count(s, ",")+1)
	prev := 0 // start of the previous event's items
	for {
		var e storedEvent
		if !p.lit("[") {
			return nil, false
		}
		if e.TS, p.ok = p.str(); !p.ok || !p.lit(",[") {
			return nil, false
		}
		start := len(items)
		if !p.lit("]") {
			for {
				var item string
				if p.lit("0") {
					k := len(items) - start
					if prev+k >= start {
						return nil, false
					}
					item = items[prev+k]
				} else if item, p.ok = p.str(); !p.ok {
					return nil, false
				}
				items = append(items, item)
				if p.lit("]") {
					break
				}
				if !p.lit(",") {
					return nil, false
				}
			}
		}
		if !p.lit("]") || (len(items)-start)%2 != 0 {
			return nil, false
		}
		e.Meta = pairs(items[start:])
		prev = start
		out = append(out, e)
		if p.lit("]}") {
			return out, p.i == len(s)
		}
		if !p.lit(",") {
			return nil, false
		}
	}
}

// pairs turns flat key, value items into meta.
func pairs(items []string) []models.Meta {
	m := make([]models.Meta, len(items)/2)
	for i := range m {
		m[i] = models.Meta{Key: items[2*i], Value: items[2*i+1]}
	}
	return m
}

// decodeEvents is parseStoredEvents for any text encoding/json reads;
// what it cannot read shows as no events, as a row's bad meta did.
func decodeEvents(s string) []storedEvent {
	var stored []storedEvent
	var doc struct {
		E [][]json.RawMessage `json:"e"`
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return nil
	}
	var prev []string
	for _, raw := range doc.E {
		var e storedEvent
		var items []any
		if len(raw) != 2 || json.Unmarshal(raw[0], &e.TS) != nil || json.Unmarshal(raw[1], &items) != nil || len(items)%2 != 0 {
			return nil
		}
		cur := make([]string, len(items))
		for i, it := range items {
			switch v := it.(type) {
			case string:
				cur[i] = v
			case float64:
				if v != 0 || i >= len(prev) {
					return nil
				}
				cur[i] = prev[i]
			default:
				return nil
			}
		}
		e.Meta = pairs(cur)
		stored = append(stored, e)
		prev = cur
	}
	return stored
}

type storedParser struct {
	s  string
	i  int
	ok bool
}

func (p *storedParser) lit(l string) bool {
	if strings.HasPrefix(p.s[p.i:], l) {
		p.i += len(l)
		return true
	}
	return false
}

// str reads a JSON string that needs no unescaping.
func (p *storedParser) str() (string, bool) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return "", false
	}
	for j := p.i + 1; j < len(p.s); j++ {
		switch c := p.s[j]; {
		case c == '"':
			v := p.s[p.i+1 : j]
			p.i = j + 1
			return v, true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return "", false
		}
	}
	return "", false
}

// GetAlert returns one alert or ErrNotFound.
func (s *Store) GetAlert(ctx context.Context, id int64, now time.Time) (*models.Alert, error) {
	as, err := s.QueryAlerts(ctx, AlertFilter{ID: id, IncludeCAPI: true}, now)
	if err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, ErrNotFound
	}
	return as[0], nil
}

// DeleteAlerts deletes the matching alerts with their events and meta. Their
// active decisions end and stay behind, detached, so bouncers hear of them.
func (s *Store) DeleteAlerts(ctx context.Context, f AlertFilter) (int64, error) {
	f.IncludeCAPI = true
	now := nowNS()
	conds, args := f.where(s.d.kind, now)
	sel := `SELECT a.id FROM alerts a`
	if len(conds) > 0 {
		sel += ` WHERE ` + strings.Join(conds, " AND ")
	}
	var n int64
	err := s.write(ctx, func(tx *wtx) error {
		var err error
		n, err = deleteAlertsTx(tx, sel, args, now)
		return err
	})
	return n, err
}

func deleteAlertsTx(tx *wtx, sel string, args []any, now int64) (int64, error) {
	ctx := tx.ctx
	if _, err := tx.ExecContext(ctx, `CREATE TEMPORARY TABLE IF NOT EXISTS doomed_alerts (id INTEGER PRIMARY KEY)`); err != nil {
		return 0, fmt.Errorf("preparing alert deletion: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM doomed_alerts`); err != nil {
		return 0, fmt.Errorf("preparing alert deletion: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO doomed_alerts (id) `+sel, args...); err != nil {
		return 0, fmt.Errorf("selecting alerts to delete: %w", err)
	}
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM decisions WHERE alert_id IN (SELECT id FROM doomed_alerts) AND active LIMIT 1`).Scan(&one)
	if err == nil {
		if _, err := endDecisions(tx, `alert_id IN (SELECT id FROM doomed_alerts) AND until > ?`, []any{now}, now, true); err != nil {
			return 0, err
		}
		// Expired-but-unswept rows end too, keeping their own until.
		if _, err := endDecisions(tx, `alert_id IN (SELECT id FROM doomed_alerts)`, nil, now, false); err != nil {
			return 0, err
		}
	} else if err != sql.ErrNoRows {
		return 0, fmt.Errorf("checking decisions of doomed alerts: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE decisions SET alert_id = NULL WHERE alert_id IN (SELECT id FROM doomed_alerts)`); err != nil {
		return 0, fmt.Errorf("detaching decisions: %w", err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM alerts WHERE id IN (SELECT id FROM doomed_alerts)`)
	if err != nil {
		return 0, fmt.Errorf("deleting alerts: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
