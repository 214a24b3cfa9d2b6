package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NewDecision is a decision about to be stored.
type NewDecision struct {
	UUID      string
	Until     time.Time
	Scenario  string
	Type      string
	Scope     string
	Value     string
	Origin    string
	Simulated bool
	Range     Range // zero Size for non-address scopes
}

// DecisionRow is a stored decision.
type DecisionRow struct {
	ID        int64
	UUID      string
	AlertID   int64
	Until     time.Time
	Scenario  string
	Type      string
	Scope     string
	Value     string
	Origin    string
	Simulated bool
	Active    bool
	CreatedAt time.Time
}

// DecisionFilter selects decisions. Empty fields do not filter.
type DecisionFilter struct {
	Scopes                 []string // exact values (callers normalise)
	Value                  string
	Type                   string
	Origins                []string
	Scenario               string // exact
	ScenariosContaining    []string
	ScenariosNotContaining []string
	Range                  *Range
	Contains               bool
	IncludeSimulated       bool
	UUIDs                  []string
	Limit                  int
	Offset                 int
	IDGt                   int64
}

func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(s)) + "%"
}

func inList(col string, vals []string) (string, []any) {
	ph := make([]string, len(vals))
	args := make([]any, len(vals))
	for i, v := range vals {
		ph[i] = "?"
		args[i] = v
	}
	return col + " IN (" + strings.Join(ph, ", ") + ")", args
}

// where renders the filter as SQL conditions on the decisions table
// aliased by prefix ("" or "d.").
func (f DecisionFilter) where(p string) ([]string, []any) {
	var conds []string
	var args []any
	add := func(c string, a ...any) { conds = append(conds, c); args = append(args, a...) }
	if len(f.Scopes) > 0 {
		c, a := inList(p+"scope", f.Scopes)
		add(c, a...)
	}
	if f.Value != "" {
		add(p+"value = ?", f.Value)
	}
	if f.Type != "" {
		add(p+"type = ?", f.Type)
	}
	if len(f.Origins) > 0 {
		c, a := inList(p+"origin", f.Origins)
		add(c, a...)
	}
	if f.Scenario != "" {
		add(p+"scenario = ?", f.Scenario)
	}
	if len(f.ScenariosContaining) > 0 {
		var ors []string
		for _, w := range f.ScenariosContaining {
			ors = append(ors, "LOWER("+p+"scenario) LIKE ? ESCAPE '\\'")
			args = append(args, likeEscape(w))
		}
		conds = append(conds, "("+strings.Join(ors, " OR ")+")")
	}
	for _, w := range f.ScenariosNotContaining {
		add("LOWER("+p+"scenario) NOT LIKE ? ESCAPE '\\'", likeEscape(w))
	}
	if f.Range != nil {
		c, a := rangeCond(*f.Range, f.Contains, p)
		add(c, a...)
	}
	if !f.IncludeSimulated {
		add(p + "simulated = FALSE")
	}
	if len(f.UUIDs) > 0 {
		c, a := inList(p+"uuid", f.UUIDs)
		add(c, a...)
	}
	if f.IDGt > 0 {
		add(p+"id > ?", f.IDGt)
	}
	return conds, args
}

// streamCols packs the text a stream row needs into one column: with
// modernc's driver every column read costs two mutex round trips, which at
// 1M rows is most of a startup stream. Stored decision fields never contain
// the unit separator (sanitize), so splitting is unambiguous.
const streamCols = "id, until, uuid || '\x1f' || scenario || '\x1f' || type || '\x1f' || scope || '\x1f' || value || '\x1f' || origin"

// unpackStream splits a streamCols text column into d's fields without
// allocating: they are substrings of packed.
func unpackStream(packed string, d *DecisionRow) bool {
	var f [6]string
	for i := 0; i < 5; i++ {
		j := strings.IndexByte(packed, unitSep)
		if j < 0 {
			return false
		}
		f[i], packed = packed[:j], packed[j+1:]
	}
	f[5] = packed
	d.UUID, d.Scenario, d.Type, d.Scope, d.Value, d.Origin = f[0], f[1], f[2], f[3], f[4], f[5]
	return true
}

const unitSep = '\x1f'

// sanitize keeps the unit separator out of stored decision fields.
func sanitize(s string) string {
	if strings.IndexByte(s, unitSep) < 0 {
		return s
	}
	return strings.ReplaceAll(s, string(rune(unitSep)), "\uFFFD")
}

const decisionCols = `id, uuid, COALESCE(alert_id, 0), until, scenario, type, scope, value, origin, simulated, active, created_at`

func scanDecision(sc interface{ Scan(...any) error }, d *DecisionRow) error {
	var until, created int64
	if err := sc.Scan(&d.ID, &d.UUID, &d.AlertID, &until, &d.Scenario, &d.Type, &d.Scope, &d.Value, &d.Origin, &d.Simulated, &d.Active, &created); err != nil {
		return err
	}
	d.Until = time.Unix(0, until)
	d.CreatedAt = time.Unix(0, created)
	return nil
}

// insertAlertsDecisions stores each alert's decisions (batches[i] for
// alertIDs[i]), those marked in shown as shown; settleInserted then compares
// them with the rows bouncers hold. A decision already over when stored
// (a replay of old logs: upstream dates it from the alert's stop_at) is
// stored ended and hidden, as the expiry sweep would leave it: no bouncer
// can hold it, and the sweep had to end and settle every one of them.
func insertAlertsDecisions(tx *wtx, alertIDs []int64, batches [][]NewDecision, shown [][]bool, created int64) error {
	seq, err := tx.seq()
	if err != nil {
		return err
	}
	vals := make([]any, 0, len(newDecisionCols))
	row := func(b, i int) []any {
		d := &batches[b][i]
		until := d.Until.UnixNano()
		// A live decision outlasts an ended one, so firstLongest
		// shows an ended one only when its key has no live one.
		live := until > created
		return append(vals[:0], sanitize(d.UUID), alertIDs[b], created, until, sanitize(d.Scenario), sanitize(d.Type), sanitize(d.Scope),
			sanitize(d.Value), sanitize(d.Origin), d.Simulated, d.Range.Size, d.Range.Start, d.Range.End, d.Range.StartSuffix,
			d.Range.EndSuffix, live, live && shown[b][i], seq)
	}
	if tx.s.d.kind == postgresDB {
		// COPY: with multi-row INSERTs an import of 1M cost the
		// backends 1.7 times the CPU and the LAPI twice.
		var at [][2]int
		for b, ds := range batches {
			for i := range ds {
				at = append(at, [2]int{b, i})
			}
		}
		return tx.copyFrom("decisions", newDecisionCols, len(at), func(k int) []any { return row(at[k][0], at[k][1]) })
	}
	// Multi-row statements: modernc's per-statement cost dominates otherwise.
	ins := newRowInserter(tx, decisionRows)
	for b, ds := range batches {
		for i := range ds {
			if err := ins.add(row(b, i)...); err != nil {
				return err
			}
		}
	}
	return ins.flush()
}

// decisionKey is what bouncers hold one decision for.
type decisionKey struct{ value, typ, scope string }

// firstLongest marks, among the decisions a transaction inserts (in
// order), the one per (value, type, scope) that may be shown: the longest,
// the first on ties. Done in Go, in one pass, so that no statement has to
// compare the new rows with each other. A simulated decision is never
// shown: bouncers must not get it, and it must not hide (supersede) a real
// one on the same address.
func firstLongest(batches [][]NewDecision) [][]bool {
	type best struct {
		until     int64
		batch, at int
	}
	n := 0
	for _, ds := range batches {
		n += len(ds)
	}
	winner := make(map[decisionKey]best, n)
	shown := make([][]bool, len(batches))
	for b, ds := range batches {
		shown[b] = make([]bool, len(ds))
		for i := range ds {
			d := &ds[i]
			if d.Simulated {
				continue
			}
			k := decisionKey{sanitize(d.Value), sanitize(d.Type), sanitize(d.Scope)}
			u := d.Until.UnixNano()
			if w, ok := winner[k]; ok {
				if u <= w.until {
					continue
				}
				shown[w.batch][w.at] = false
			}
			winner[k] = best{u, b, i}
			shown[b][i] = true
		}
	}
	return shown
}

// settleInserted compares a transaction's shown new decisions (ids above
// after) with the rows bouncers hold: a held row lasting at least as long
// keeps its place, otherwise the new one supersedes it. The cost must stay
// linear in the batch whatever statistics the planner holds (with
// sqlite_stat1 a per-row search through decisions_seq, where every new row
// shares one seq, made a 10k-decision alert take 90 s): new rows are read by
// rowid range only and held rows through decisions_key, the join order and
// indexes pinned with CROSS JOIN, INDEXED BY and NOT INDEXED.
func settleInserted(tx *wtx, after int64) error {
	if tx.s.d.kind != sqliteDB {
		return settleInsertedServer(tx, after)
	}
	st := beatenStmt(after)
	if _, err := tx.exec(st.q, st.args...); err != nil {
		return fmt.Errorf("settling decision precedence (%s): %w", st.what, err)
	}
	st = supersededStmt(after)
	ids, err := queryIDs(tx, st)
	if err != nil {
		return fmt.Errorf("settling decision precedence (%s): %w", st.what, err)
	}
	if err := eachID(tx, hideStmt(0), ids); err != nil {
		return fmt.Errorf("settling decision precedence: %w", err)
	}
	return nil
}

// settleInsertedServer is settleInserted on servers: one statement finds
// every pair of a shown new decision and a shown held one of its key, and
// the pairs say which loses. A new decision is beaten (hidden) when a held
// one of its key lasts at least as long; otherwise it supersedes (hides)
// every held one of its key. That is what beatenStmt then supersededStmt
// do, in one pass instead of two.
//
// The pass must cost O(new rows) whatever the statistics: planned freely,
// with statistics taken on a small table, PostgreSQL and MariaDB drove the
// join from the held rows, or hashed or sorted all of them, once per push:
// an import of 1M in 50k pushes read the table 40 times (PostgreSQL: 33 s
// of statement time in a 60 s run). The join order is pinned (PostgreSQL: a LATERAL subquery
// behind OFFSET 0; MySQL: STRAIGHT_JOIN), new rows read by id range and
// held ones through decisions_key.
func settleInsertedServer(tx *wtx, after int64) error {
	st := pairsStmt(tx.s.d.kind, after)
	type pair struct{ n, nUntil, o, oUntil int64 }
	var pairs []pair
	err := pinnedPlans(tx, func() error {
		rows, err := tx.QueryContext(tx.ctx, st.q, st.args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p pair
			if err := rows.Scan(&p.n, &p.nUntil, &p.o, &p.oUntil); err != nil {
				return err
			}
			pairs = append(pairs, p)
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("settling decision precedence (%s): %w", st.what, err)
	}
	if len(pairs) == 0 {
		return nil
	}
	beaten := make(map[int64]bool)
	for _, p := range pairs {
		if p.oUntil >= p.nUntil {
			beaten[p.n] = true
		}
	}
	hide := slices.Collect(maps.Keys(beaten))
	for _, p := range pairs {
		if !beaten[p.n] {
			hide = append(hide, p.o)
		}
	}
	slices.Sort(hide)
	hide = slices.Compact(hide)
	if err := eachID(tx, hideStmt(0), hide); err != nil {
		return fmt.Errorf("settling decision precedence: %w", err)
	}
	return nil
}

// pairsStmt selects, on a server, each shown new decision (id above after)
// with each shown active held decision of its key: their ids and ends.
func pairsStmt(k kind, after int64) stmt {
	if k == mysqlDB {
		return stmt{"finding held decisions of new keys", `SELECT STRAIGHT_JOIN n.id, n.until, o.id, o.until
		FROM decisions n FORCE INDEX (PRIMARY) JOIN decisions o FORCE INDEX (decisions_key)
		ON o.value = n.value AND o.type = n.type AND o.scope = n.scope AND o.active = TRUE AND o.shown AND o.id <= ?
		WHERE n.id > ? AND n.shown`, []any{after, after}}
	}
	return stmt{"finding held decisions of new keys", `SELECT n.id, n.until, o.id, o.until FROM decisions n CROSS JOIN LATERAL (
		SELECT o.id, o.until FROM decisions o WHERE o.value = n.value AND o.type = n.type AND o.scope = n.scope
		AND o.active = TRUE AND o.shown AND o.id <= ? OFFSET 0) o
		WHERE n.id > ? AND n.shown`, []any{after, after}}
}

// pinnedPlans runs fn with PostgreSQL's planner kept from what its
// statistics may suggest but the store's statements must never do: scan
// decisions whole, or compile a statement its stale estimates call large
// (JIT took a quarter of a second per push). Other engines run fn as it is.
func pinnedPlans(tx *wtx, fn func() error) error {
	if tx.s.d.kind != postgresDB {
		return fn()
	}
	if _, err := tx.ExecContext(tx.ctx, `SET LOCAL enable_seqscan = off; SET LOCAL jit = off`); err != nil {
		return fmt.Errorf("pinning query plans: %w", err)
	}
	if err := fn(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(tx.ctx, `SET LOCAL enable_seqscan TO DEFAULT; SET LOCAL jit TO DEFAULT`); err != nil {
		return fmt.Errorf("unpinning query plans: %w", err)
	}
	return nil
}

// stmt is one statement of the settling; tests check its query plan.
type stmt struct {
	what string
	q    string
	args []any
}

// beatenStmt hides the new decisions a held one lasts at least as long as.
func beatenStmt(after int64) stmt {
	return stmt{"hiding new decisions held ones outlast", `UPDATE decisions NOT INDEXED SET shown = FALSE WHERE id > ? AND shown AND EXISTS (
		SELECT 1 FROM decisions o INDEXED BY decisions_key WHERE o.value = decisions.value AND o.type = decisions.type
		AND o.scope = decisions.scope AND o.active = TRUE AND o.until >= decisions.until AND o.shown AND o.id <= ?)`, []any{after, after}}
}

// supersededStmt selects the held decisions a new one supersedes.
func supersededStmt(after int64) stmt {
	return stmt{"finding superseded decisions", `SELECT o.id FROM decisions n NOT INDEXED CROSS JOIN decisions o INDEXED BY decisions_key
		WHERE n.id > ? AND n.shown AND o.value = n.value AND o.type = n.type AND o.scope = n.scope AND o.active = TRUE AND o.shown
		AND o.id <= ?`, []any{after, after}}
}

// hideStmt hides one decision from bouncers.
func hideStmt(id int64) stmt {
	return stmt{"hiding a superseded decision", `UPDATE decisions SET shown = FALSE WHERE id = ?`, []any{id}}
}

// endDecisions ends the active decisions matching cond (deletion sets until
// to now, expiry keeps it), then promotes, per key whose shown row ended, the
// longest remaining active row so bouncers learn the new state.
func endDecisions(tx *wtx, cond string, args []any, now int64, setUntil bool) (int64, error) {
	return endDecisionsIn(tx, "decisions", cond, args, now, setUntil)
}

// endDecisionsIn is endDecisions updating table, the decisions table
// with an index hint (see lookupFrom).
func endDecisionsIn(tx *wtx, table, cond string, args []any, now int64, setUntil bool) (int64, error) {
	seq, err := tx.seq()
	if err != nil {
		return 0, err
	}
	st := endStmt(table, cond, args, seq, now, setUntil)
	res, err := tx.ExecContext(tx.ctx, st.q, st.args...)
	if err != nil {
		return 0, fmt.Errorf("ending decisions: %w", err)
	}
	n, _ := res.RowsAffected()
	if n == 0 {
		return 0, nil
	}
	if err := settleEnded(tx, seq, now); err != nil {
		return 0, err
	}
	return n, nil
}

// endStmt ends the active decisions of table matching cond.
func endStmt(table, cond string, args []any, seq, now int64, setUntil bool) stmt {
	q := `UPDATE ` + table + ` SET active = FALSE, seq = ?`
	a := []any{seq}
	if setUntil {
		q += `, until = CASE WHEN until > ? THEN ? ELSE until END`
		a = append(a, now, now)
	}
	q += ` WHERE active AND ` + cond
	return stmt{"ending decisions", q, append(a, args...)}
}

// settleEnded keeps, per key whose shown row ended in this transaction,
// only that ended row shown and promotes the longest remaining active row.
// Like settleInserted it must stay linear whatever the statistics: the
// ended rows are found through decisions_seq (seq = this transaction's),
// the rest of their key through decisions_key, order and indexes pinned,
// and rows change one rowid at a time.
func settleEnded(tx *wtx, seq, now int64) error {
	for _, st := range []struct {
		find, set stmt
	}{
		{olderTombstonesStmt(tx.s.d.kind, seq), hideStmt(0)},
		{promotedStmt(tx.s.d.kind, seq, now), promoteStmt(seq, 0)},
	} {
		ids, err := queryIDs(tx, st.find)
		if err != nil {
			return fmt.Errorf("settling ended decisions (%s): %w", st.find.what, err)
		}
		if err := eachID(tx, st.set, ids); err != nil {
			return fmt.Errorf("settling ended decisions: %w", err)
		}
	}
	return nil
}

// olderTombstonesStmt finds the ended rows still shown for keys whose shown
// row ended now: only the latest ended row of a key stays shown.
func olderTombstonesStmt(k kind, seq int64) stmt {
	return stmt{"finding older ended decisions", `SELECT o.id FROM decisions e INDEXED BY decisions_seq CROSS JOIN decisions o INDEXED BY decisions_key
		WHERE e.seq = ? AND ` + notActive(k, "e") + ` AND e.shown AND o.value = e.value AND o.type = e.type AND o.scope = e.scope
		AND ` + notActive(k, "o") + ` AND o.shown AND o.seq < ?`, []any{seq, seq}}
}

// promotedStmt finds, per key whose shown row ended now, the longest
// remaining active row that is not simulated (NULL when none is left).
func promotedStmt(k kind, seq, now int64) stmt {
	a := "decisions a INDEXED BY decisions_key"
	if k == mysqlDB {
		a = "decisions a FORCE INDEX (decisions_key)"
	}
	return stmt{"finding decisions to promote", `SELECT (SELECT a.id FROM ` + a + `
			WHERE a.value = e.value AND a.type = e.type AND a.scope = e.scope AND a.active = TRUE AND a.until > ? AND NOT a.simulated
			ORDER BY a.until DESC, a.id ASC LIMIT 1)
		FROM decisions e INDEXED BY decisions_seq WHERE e.seq = ? AND ` + notActive(k, "e") + ` AND e.shown`, []any{now, seq}}
}

// notActive is the condition that alias's row has ended. On servers it is
// written so that no index can serve it: with statistics taken before
// decisions ended (few ended rows), PostgreSQL read the other rows of the
// ended keys, and MariaDB the ended rows themselves, through
// decisions_active_until (every ended decision, per ended row) instead of
// decisions_key and decisions_seq, which the hints pin on SQLite.
func notActive(k kind, alias string) string {
	if k == sqliteDB {
		return alias + ".active = FALSE"
	}
	return "COALESCE(" + alias + ".active, TRUE) = FALSE"
}

// promoteStmt shows one decision to bouncers as a change of seq.
func promoteStmt(seq, id int64) stmt {
	return stmt{"promoting a decision", `UPDATE decisions SET shown = TRUE, seq = ? WHERE id = ?`, []any{seq, id}}
}

// queryIDs runs st and returns the ids it selects, NULLs left out.
func queryIDs(tx *wtx, st stmt) ([]int64, error) {
	ps, err := tx.stmt(st.q)
	if err != nil {
		return nil, err
	}
	defer ps.Close()
	rows, err := ps.QueryContext(tx.ctx, st.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id sql.NullInt64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		if id.Valid {
			ids = append(ids, id.Int64)
		}
	}
	return ids, rows.Err()
}

// eachID runs st, whose last argument is an id, for every id. One rowid at
// a time because SQLite plans "rowid = ?" without consulting statistics,
// while for "id IN (...)" stale ones (a table analysed while small) choose
// a scan of every decision.
//
// On servers (a round trip per statement) the ids go in IN lists instead:
// their planners do not have SQLite's trouble with them.
func eachID(tx *wtx, st stmt, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if tx.s.d.kind != sqliteDB {
		return eachIDList(tx, st, ids)
	}
	ps, err := tx.stmt(st.q)
	if err != nil {
		return fmt.Errorf("%s: %w", st.what, err)
	}
	defer ps.Close()
	args := append([]any{}, st.args...)
	for _, id := range ids {
		args[len(args)-1] = id
		if _, err := ps.ExecContext(tx.ctx, args...); err != nil {
			return fmt.Errorf("%s %d: %w", st.what, id, err)
		}
	}
	return nil
}

// eachIDList is eachID for servers: st's "id = ?" becomes "id IN (...)",
// up to 1000 ids a statement, written as literals (they are integers).
func eachIDList(tx *wtx, st stmt, ids []int64) error {
	head, ok := strings.CutSuffix(st.q, "id = ?")
	if !ok {
		return fmt.Errorf("%s: statement does not end with an id", st.what)
	}
	args := st.args[:len(st.args)-1]
	var b strings.Builder
	for len(ids) > 0 {
		n := min(len(ids), 1000)
		b.Reset()
		b.WriteString(head)
		b.WriteString("id IN (")
		for i, id := range ids[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(id, 10))
		}
		b.WriteByte(')')
		if _, err := tx.ExecContext(tx.ctx, b.String(), args...); err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
		ids = ids[n:]
	}
	return nil
}

// sweepProbeSQL finds when the next active decision expires. It runs at
// least every second and before stream pulls while a change is unseen, so
// it must be a seek into decisions_active_until whatever the statistics: a
// bare "active" is no index constraint to SQLite or MariaDB (both read
// every active decision: 1M entries a probe), hence "= TRUE"; and with
// statistics taken on a small table PostgreSQL expected many matches and
// scanned the table (0.56 s at 1M), which the ORDER BY the index gives for
// free rules out.
const sweepProbeSQL = `SELECT until FROM decisions WHERE active = TRUE ORDER BY until LIMIT 1`

// SweepExpired ends decisions whose time is up, so that bouncers get them in
// their next delta exactly once. Every stream request calls it first, so
// it remembers when the next active decision expires: until then, and
// until another decision change is published, nothing can have expired and
// the database is not asked. (A change another process made and this one
// has not heard of yet can only be seen late, by at most the wake-up lag a
// long-poll has anyway: its stream leaves expired rows out, and the
// bouncer expires what it holds by duration.)
func (s *Store) SweepExpired(ctx context.Context, now time.Time) (int64, error) {
	ns := now.UnixNano()
	seq := s.Seq()
	if !s.sweepDue(seq, ns) {
		return 0, nil
	}
	st, err := s.readStmt(ctx, sweepProbeSQL)
	if err != nil {
		return 0, err
	}
	var next sql.NullInt64
	if err := st.QueryRowContext(ctx).Scan(&next); err != nil && err != sql.ErrNoRows {
		return 0, fmt.Errorf("looking for expired decisions: %w", err)
	}
	if !next.Valid || next.Int64 > ns {
		if !next.Valid {
			next.Int64 = math.MaxInt64 // none active: the next comes with a change
		}
		s.expMu.Lock()
		s.expSeq, s.expNext = seq, next.Int64
		s.expMu.Unlock()
		return 0, nil
	}
	var n int64
	err = s.write(ctx, func(tx *wtx) error {
		var err error
		// "active = TRUE" again: the rows are found through
		// decisions_active_until (see sweepProbeSQL).
		n, err = endDecisions(tx, `active = TRUE AND until <= ?`, []any{ns}, ns, false)
		return err
	})
	return n, err
}

// SweepDue says whether SweepExpired at now would ask the database: false
// when no active decision can have expired yet.
func (s *Store) SweepDue(now time.Time) bool {
	return s.sweepDue(s.Seq(), now.UnixNano())
}

func (s *Store) sweepDue(seq, ns int64) bool {
	s.expMu.Lock()
	defer s.expMu.Unlock()
	return s.expSeq != seq || s.expNext == 0 || ns >= s.expNext
}

// QueryDecisions returns the active decisions matching f (GET /v1/decisions).
func (s *Store) QueryDecisions(ctx context.Context, f DecisionFilter, now time.Time) ([]DecisionRow, error) {
	st := queryDecisionsStmt(s.d.kind, f, now)
	rows, err := s.r.QueryContext(ctx, st.q, st.args...)
	if err != nil {
		return nil, fmt.Errorf("querying decisions: %w", err)
	}
	defer rows.Close()
	var out []DecisionRow
	for rows.Next() {
		var d DecisionRow
		if err := scanDecision(rows, &d); err != nil {
			return nil, fmt.Errorf("querying decisions: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// queryDecisionsStmt selects the active decisions matching f. A bouncer in
// live mode asks by address on every request it filters, so a lookup by
// address or range must be a seek of decisions_range (see rangeCond) and
// one by value a seek of decisions_key, whatever the statistics: both are
// pinned (with statistics from a small table SQLite scanned every decision
// in id order, and MariaDB ended decisions by address through a walk of
// the primary key).
func queryDecisionsStmt(k kind, f DecisionFilter, now time.Time) stmt {
	conds, args := f.where("")
	conds = append([]string{"active = TRUE", "until > ?"}, conds...)
	args = append([]any{now.UnixNano()}, args...)
	q := `SELECT ` + decisionCols + ` FROM ` + lookupFrom(k, f) + ` WHERE ` + strings.Join(conds, " AND ") + ` ORDER BY id`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
		if f.Offset > 0 {
			q += fmt.Sprintf(" OFFSET %d", f.Offset)
		}
	}
	return stmt{"querying decisions", q, args}
}

// lookupFrom is the decisions table for a statement selecting f: pinned
// to the index a filter by value or address seeks (SQLite INDEXED BY,
// MySQL FORCE INDEX; PostgreSQL, which has no hints, plans these seeks
// with its statistics, fresh or stale), plain for the other filters, which
// read what they select.
func lookupFrom(k kind, f DecisionFilter) string {
	var idx string
	switch {
	case f.Value != "":
		idx = "decisions_key"
	case f.Range != nil:
		idx = "decisions_range"
	default:
		return "decisions"
	}
	if k == mysqlDB {
		return "decisions FORCE INDEX (" + idx + ")"
	}
	return "decisions INDEXED BY " + idx
}

// DeleteDecisions expires the active decisions matching f and returns how
// many ended. An empty filter expires everything.
func (s *Store) DeleteDecisions(ctx context.Context, f DecisionFilter) (int64, error) {
	return s.deleteDecisions(ctx, f, false)
}

// DeleteDecisionsShared is DeleteDecisions queuing, in the same
// transaction, the UUIDs of the decisions it ends for the console
// (capi_deletions): a crash or restart loses none. DeleteDecisions stays
// the cheaper call when nothing is shared.
func (s *Store) DeleteDecisionsShared(ctx context.Context, f DecisionFilter) (int64, error) {
	return s.deleteDecisions(ctx, f, true)
}

func (s *Store) deleteDecisions(ctx context.Context, f DecisionFilter, share bool) (int64, error) {
	now := nowNS()
	table, cond, args := deleteCond(s.d.kind, f, now)
	var n int64
	err := s.write(ctx, func(tx *wtx) error {
		if share {
			if err := queueDeletions(tx, table, cond, args, now); err != nil {
				return err
			}
		}
		var err error
		n, err = endDecisionsIn(tx, table, cond, args, now, true)
		return err
	})
	return n, err
}

// queueDeletions queues the UUIDs of the active decisions matching cond,
// which the caller ends next in the same transaction. The change number
// is taken first: it makes this transaction the only writer of decisions,
// so another LAPI of the database cannot end (and queue) the same ones.
func queueDeletions(tx *wtx, table, cond string, args []any, now int64) error {
	if _, err := tx.seq(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(tx.ctx, `INSERT INTO capi_deletions (created_at, uuid) SELECT ?, uuid FROM `+table+` WHERE active AND uuid <> '' AND `+cond,
		append([]any{now}, args...)...); err != nil {
		return fmt.Errorf("queuing decision deletions for the console: %w", err)
	}
	return nil
}

// deleteCond is the table (with its index hint) and condition of the
// decisions DeleteDecisions ends: a deletion by address (DELETE
// /v1/decisions?ip=, an allowlist's new entry) seeks like a lookup.
func deleteCond(k kind, f DecisionFilter, now int64) (table, cond string, args []any) {
	f.IncludeSimulated = true
	conds, args := f.where("")
	conds = append(conds, "until > ?")
	return lookupFrom(k, f), strings.Join(conds, " AND "), append(args, now)
}

// DeleteDecision expires one decision by id; an already ended one is
// reported to bouncers again. ErrNotFound when the id is unknown.
func (s *Store) DeleteDecision(ctx context.Context, id int64) error {
	return s.deleteDecision(ctx, id, false)
}

// DeleteDecisionShared is DeleteDecision queuing the decision's UUID for
// the console when it ends here (see DeleteDecisionsShared).
func (s *Store) DeleteDecisionShared(ctx context.Context, id int64) error {
	return s.deleteDecision(ctx, id, true)
}

func (s *Store) deleteDecision(ctx context.Context, id int64, share bool) error {
	now := nowNS()
	return s.write(ctx, func(tx *wtx) error {
		// The change number first: on a server another LAPI may end the
		// decision between this read and the update otherwise.
		seq, err := tx.seq()
		if err != nil {
			return err
		}
		var active bool
		err = tx.QueryRowContext(ctx, `SELECT active FROM decisions WHERE id = ?`, id).Scan(&active)
		if err == sql.ErrNoRows {
			return fmt.Errorf("decision with id '%d' doesn't exist: unable to delete: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("reading decision %d: %w", id, err)
		}
		if active {
			if share {
				if err := queueDeletions(tx, "decisions", `id = ?`, []any{id}, now); err != nil {
					return err
				}
			}
			_, err = endDecisions(tx, `id = ?`, []any{id}, now, true)
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE decisions SET until = ?, seq = ? WHERE id = ?`, now, seq, id)
		return err
	})
}

// StreamQuery describes one pull of the decision stream.
type StreamQuery struct {
	Filter  DecisionFilter
	Startup bool  // full state instead of a delta
	Cursor  int64 // last delivered sequence, for deltas
	NoDedup bool  // dedup=false: every row, not only the one bouncers hold
	// ClientCursor says Cursor comes from the client, which keeps its own:
	// a delta it cannot get whole fails with ErrCursorGone.
	ClientCursor bool
	// OnSnapshot, when set, receives the snapshot's sequence (the cursor
	// the response brings the client to) before any row is emitted.
	OnSnapshot func(seq int64)
}

// ErrCursorGone is a client-kept cursor from which no complete delta can be
// built: retention purged changes after it, or it is ahead of this
// database (restored from a backup). The client must pull the full state.
var ErrCursorGone = errors.New("stream cursor can no longer be served: pull the full state (startup=true)")

// Stream emits the stream's new then deleted decisions from one consistent
// snapshot, each list by ascending id, and returns the sequence the caller
// stores as the bouncer's cursor once the response is fully delivered.
func (s *Store) Stream(ctx context.Context, q StreamQuery, now time.Time, emitNew, emitDeleted func(*DecisionRow) error) (int64, error) {
	// The sequence and the rows come from one snapshot: on servers a
	// REPEATABLE READ transaction, whose snapshot is taken at its first
	// read (the sequence); see the package doc for why that has no gap.
	opts := &sql.TxOptions{ReadOnly: true}
	if s.d.kind != sqliteDB {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.r.BeginTx(ctx, opts)
	if err != nil {
		return 0, fmt.Errorf("opening stream snapshot: %w", err)
	}
	defer tx.Rollback()
	var seq, purged int64
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT value FROM counters WHERE name = 'seq'), (SELECT value FROM counters WHERE name = 'purged')`).Scan(&seq, &purged); err != nil {
		return 0, fmt.Errorf("reading stream sequence: %w", err)
	}
	if q.ClientCursor && !q.Startup && (q.Cursor < purged || q.Cursor > seq) {
		return 0, fmt.Errorf("cursor %d (changes purged up to %d, current %d): %w", q.Cursor, purged, seq, ErrCursorGone)
	}
	if q.OnSnapshot != nil {
		q.OnSnapshot(seq)
	}
	run := func(active bool, emit func(*DecisionRow) error) error {
		st := streamStmt(q, active, now)
		rows, err := tx.QueryContext(ctx, st.q, st.args...)
		if err != nil {
			return fmt.Errorf("querying stream: %w", err)
		}
		defer rows.Close()
		d := DecisionRow{Active: active}
		var until int64
		var packed string
		for rows.Next() {
			if err := rows.Scan(&d.ID, &until, &packed); err != nil {
				return fmt.Errorf("reading stream row: %w", err)
			}
			if !unpackStream(packed, &d) {
				return fmt.Errorf("decision %d: malformed stream row", d.ID)
			}
			d.Until = time.Unix(0, until)
			if err := emit(&d); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	if err := run(true, emitNew); err != nil {
		return 0, err
	}
	if err := run(false, emitDeleted); err != nil {
		return 0, err
	}
	return seq, nil
}

// streamStmt selects the active (or ended) decisions of a stream answer.
// A delta is read through decisions_seq, pinned with INDEXED BY: with
// statistics taken on a small table the planner would otherwise scan every
// decision, and each bouncer's delta must cost O(delta), not O(table).
func streamStmt(q StreamQuery, active bool, now time.Time) stmt {
	c, a := q.Filter.where("")
	c = append([]string{}, c...)
	a = append([]any{}, a...)
	from := "decisions"
	if !q.Startup {
		from = "decisions INDEXED BY decisions_seq"
		c = append([]string{"seq > ?"}, c...)
		a = append([]any{q.Cursor}, a...)
	}
	if active {
		c = append(c, "active", "until > ?")
		a = append(a, now.UnixNano())
	} else {
		c = append(c, "NOT active")
	}
	if !q.NoDedup {
		c = append(c, "shown")
	}
	return stmt{"stream", `SELECT ` + streamCols + ` FROM ` + from + ` WHERE ` + strings.Join(c, " AND ") + ` ORDER BY id`, a}
}

// ActiveDecisionCount counts every active decision (for metrics and status).
func (s *Store) ActiveDecisionCount(ctx context.Context) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM decisions WHERE active AND until > ?`, nowNS()).Scan(&n)
	return n, err
}
