package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rampart-ips/rampart/models"
)

// ListOrigin is the origin of the decisions blocklist feeds bring, as
// upstream names those of its subscribed lists.
const ListOrigin = "lists"

// ListScenario is the decisions' scenario (and their alerts' source scope)
// for the feed name.
func ListScenario(name string) string { return "lists:" + name }

// ListEntry is one address or range of a feed.
type ListEntry struct {
	Value string // canonical: an address (scope Ip) or a masked prefix (scope Range)
	Scope string // models.ScopeIP or models.ScopeRange
	Range Range
}

// ListUpdate is the whole content of a feed, to be stored in place of what
// the feed held before.
type ListUpdate struct {
	Name     string
	Type     string // decision type
	Duration time.Duration
	Entries  []ListEntry
}

// ListResult says what ReplaceList changed.
type ListResult struct {
	Added, Removed, Renewed, Kept int
	AlertID                       int64 // the alert owning the added decisions (0: no change)
}

// ReplaceList makes the active decisions of feed u.Name exactly u.Entries,
// in one transaction, so that bouncers get additions and removals in one
// delta (beyond listAddsPerTx additions, the rest follow in transactions
// of their own): entries no longer in the feed end now, new ones are added under
// one alert ("update : +N/-M IPs", source scope lists:<name>), entries
// present in both keep their rows (and ids). A kept entry with less than
// half of u.Duration left is renewed to now+u.Duration, which bouncers see
// as a change of its duration; renewing at half-life keeps renewals rare
// (about twice per duration) while a feed that stops answering is still
// enforced for at least half a duration.
func (s *Store) ReplaceList(ctx context.Context, u ListUpdate, now time.Time) (ListResult, error) {
	var res ListResult
	if u.Name == "" || u.Type == "" || u.Duration <= 0 {
		return res, fmt.Errorf("list update needs a name, a type and a duration: %w", ErrInvalidData)
	}
	ctx = context.WithoutCancel(ctx)
	scenario := ListScenario(u.Name)
	ns := now.UnixNano()
	until := now.Add(u.Duration).UnixNano()
	renewBelow := ns + int64(u.Duration/2)

	want := make(map[decisionKey]int, len(u.Entries))
	for i := range u.Entries {
		e := &u.Entries[i]
		want[decisionKey{sanitize(e.Value), sanitize(u.Type), sanitize(e.Scope)}] = i
	}
	if err := s.prepare(ctx, pushStatements); err != nil {
		return res, err
	}
	// The additions are kept as indexes into u.Entries, their
	// NewDecisions built a transaction's share at a time: all of a
	// 100k-entry feed's (about 200 bytes each with the UUID) held the
	// heap up by 20 MB while the rest were written.
	build := func(dst []NewDecision, idx []int32) []NewDecision {
		for _, i := range idx {
			e := &u.Entries[i]
			dst = append(dst, NewDecision{UUID: uuid.NewString(), Until: time.Unix(0, until), Scenario: scenario, Type: u.Type,
				Scope: e.Scope, Value: e.Value, Origin: ListOrigin, Range: e.Range})
		}
		return dst
	}
	var later []int32        // additions past the first transaction's share
	var laterRenew []heldRow // renewals past it
	err := s.write(ctx, func(tx *wtx) error {
		res, later, laterRenew = ListResult{}, nil, nil
		// The change number first: it serialises decision writers, so
		// what is read next is what this transaction changes.
		seq, err := tx.seq()
		if err != nil {
			return err
		}
		held, err := heldListRows(tx, scenario, ns)
		if err != nil {
			return err
		}
		seen := make(map[decisionKey]bool, len(held))
		var ended []int64
		var renewed []heldRow
		for _, h := range held {
			if _, ok := want[h.key]; !ok || seen[h.key] {
				ended = append(ended, h.id)
				continue
			}
			seen[h.key] = true
			if h.until < renewBelow {
				renewed = append(renewed, h)
			} else {
				res.Kept++
			}
		}
		res.Removed, res.Renewed = len(ended), len(renewed)
		var added []int32
		for i := range u.Entries {
			e := &u.Entries[i]
			k := decisionKey{sanitize(e.Value), sanitize(u.Type), sanitize(e.Scope)}
			if seen[k] || want[k] != i {
				continue // held, or a duplicate in the feed
			}
			added = append(added, int32(i))
		}
		res.Added = len(added)
		if len(ended) > 0 {
			end := stmt{"ending a list decision", `UPDATE decisions SET active = FALSE, seq = ?, until = CASE WHEN until > ? THEN ? ELSE until END WHERE id = ?`,
				[]any{seq, ns, ns, int64(0)}}
			if err := eachID(tx, end, ended); err != nil {
				return err
			}
			if err := settleEnded(tx, seq, ns); err != nil {
				return err
			}
		}
		renewNow := renewed[:min(len(renewed), listAddsPerTx)]
		laterRenew = renewed[len(renewNow):]
		if err := renewList(tx, renewNow, until); err != nil {
			return err
		}
		if len(added) == 0 && len(ended) == 0 {
			if len(renewed) == 0 {
				// Rolled back: the change number is not spent, so
				// bouncers are not woken for an empty delta.
				return errListUnchanged
			}
			return nil
		}
		a := &models.Alert{Scenario: fmt.Sprintf("update : +%d/-%d IPs", len(added), len(ended)), Kind: "capi",
			Remediation: true, Source: &models.Source{Scope: scenario}}
		var ids []int64
		first := added[:min(len(added), listAddsPerTx)]
		later = added[len(first):]
		if err := createAlerts(tx, []NewAlert{{Alert: a, UUID: uuid.NewString(), StartAt: now, StopAt: now, Decisions: build(nil, first)}}, ns, &ids); err != nil {
			return fmt.Errorf("storing list %s: %w", u.Name, err)
		}
		res.AlertID = ids[0]
		return nil
	})
	// The rest of a large renewal or addition follows in transactions of
	// its own, so that pushes get the writer in between (a 100k-entry
	// feed in one transaction held them for seconds). Only these are
	// split: the removals and the first additions form one delta, and an
	// address banned (or renewed) a moment later than another harms
	// nothing. A failure leaves the rest to the next refresh.
	for err == nil && len(laterRenew) > 0 {
		chunk := laterRenew[:min(len(laterRenew), listAddsPerTx)]
		laterRenew = laterRenew[len(chunk):]
		err = s.write(ctx, func(tx *wtx) error { return renewList(tx, chunk, until) })
	}
	var buf []NewDecision
	for err == nil && len(later) > 0 {
		chunk := later[:min(len(later), listAddsPerTx)]
		later = later[len(chunk):]
		buf = build(buf[:0], chunk)
		err = s.write(ctx, func(tx *wtx) error {
			return insertDecisions(tx, []int64{res.AlertID}, [][]NewDecision{buf}, ns)
		})
		if err != nil {
			res.Added -= len(chunk) + len(later)
		}
	}
	if errors.Is(err, errListUnchanged) {
		return res, nil
	}
	if err != nil {
		return ListResult{}, fmt.Errorf("replacing list %s: %w", u.Name, err)
	}
	return res, nil
}

var errListUnchanged = errors.New("list unchanged")

// listAddsPerTx bounds the additions one transaction of ReplaceList
// stores: about a tenth of a second of the writer on SQLite.
const listAddsPerTx = 10000

type heldRow struct {
	id    int64
	key   decisionKey
	until int64
	shown bool
}

// heldListRows reads the active decisions of a list, through the index on
// (active, until): a list's rows are a fraction of the active ones.
func heldListRows(tx *wtx, scenario string, now int64) ([]heldRow, error) {
	rows, err := tx.QueryContext(tx.ctx, `SELECT id, value, type, scope, until, shown FROM decisions INDEXED BY decisions_active_until
		WHERE active = TRUE AND until > ? AND origin = ? AND scenario = ? ORDER BY id`, now, ListOrigin, scenario)
	if err != nil {
		return nil, fmt.Errorf("reading the list's decisions: %w", err)
	}
	defer rows.Close()
	var out []heldRow
	for rows.Next() {
		var h heldRow
		if err := rows.Scan(&h.id, &h.key.value, &h.key.typ, &h.key.scope, &h.until, &h.shown); err != nil {
			return nil, fmt.Errorf("reading the list's decisions: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// renewList extends rows to until, as a change bouncers see.
func renewList(tx *wtx, rows []heldRow, until int64) error {
	if len(rows) == 0 {
		return nil
	}
	seq, err := tx.seq()
	if err != nil {
		return err
	}
	ids := make([]int64, len(rows))
	var hidden []heldRow
	for i, h := range rows {
		ids[i] = h.id
		if !h.shown {
			hidden = append(hidden, h)
		}
	}
	renew := stmt{"renewing a list decision", `UPDATE decisions SET until = ?, seq = ? WHERE id = ?`, []any{until, seq, int64(0)}}
	if err := eachID(tx, renew, ids); err != nil {
		return err
	}
	return settleRenewed(tx, seq, until, hidden)
}

// settleRenewed shows a renewed decision that was hidden behind a longer
// one (a manual ban on the same address) when it now outlasts it. Rare, so
// one lookup per row.
func settleRenewed(tx *wtx, seq, until int64, rows []heldRow) error {
	for _, h := range rows {
		var oid, ountil int64
		err := tx.QueryRowContext(tx.ctx, `SELECT id, until FROM decisions INDEXED BY decisions_key
			WHERE value = ? AND type = ? AND scope = ? AND active = TRUE AND shown AND id <> ? ORDER BY until DESC LIMIT 1`,
			h.key.value, h.key.typ, h.key.scope, h.id).Scan(&oid, &ountil)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("settling a renewed list decision: %w", err)
		case ountil >= until:
			continue
		default:
			if err := eachID(tx, hideStmt(0), []int64{oid}); err != nil {
				return err
			}
		}
		if err := eachID(tx, promoteStmt(seq, 0), []int64{h.id}); err != nil {
			return err
		}
	}
	return nil
}

// ListClaims returns the keys ClaimListRefresh has recorded: the feeds
// this database's LAPIs have refreshed, under their settings of the time.
// Only those are ever ended as unsubscribed, so that list decisions
// stored by anything else (the Central API's lists) are left alone.
func (s *Store) ListClaims(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name FROM kv WHERE name LIKE 'list-refresh:%'`)
	if err != nil {
		return nil, fmt.Errorf("reading list claims: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("reading list claims: %w", err)
		}
		out = append(out, strings.TrimPrefix(k, "list-refresh:"))
	}
	return out, rows.Err()
}

// DropListClaim forgets a claim key (a feed unsubscribed or changed).
func (s *Store) DropListClaim(ctx context.Context, key string) error {
	return s.write(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM kv WHERE name = ?`, "list-refresh:"+key)
		return err
	})
}

// EndList ends every active decision of a list (a feed unsubscribed).
func (s *Store) EndList(ctx context.Context, name string) (int64, error) {
	return s.DeleteDecisions(ctx, DecisionFilter{Origins: []string{ListOrigin}, Scenario: ListScenario(name)})
}

// ClaimListRefresh records that this LAPI refreshes list name now, unless
// one did less than minAge ago (false): the LAPIs of one database then
// fetch each feed about once per interval between them rather than once
// each, and never two at a time. The claim is a compare-and-set of the
// list's kv row, so two LAPIs claiming together cannot both win. A LAPI
// that dies after claiming delays the next refresh by one interval.
// The key names the list (and, from the caller, its settings: a changed
// subscription is not held back by its former self's claim).
func (s *Store) ClaimListRefresh(ctx context.Context, key string, now time.Time, minAge time.Duration) (bool, error) {
	key = "list-refresh:" + key
	next := strconv.FormatInt(now.UnixNano(), 10)
	claimed := false
	err := s.write(ctx, func(tx *wtx) error {
		claimed = false
		var prev string
		err := tx.QueryRowContext(ctx, `SELECT value FROM kv WHERE name = ?`, key).Scan(&prev)
		if errors.Is(err, sql.ErrNoRows) {
			// Two LAPIs inserting together: the loser's unique
			// violation is retried by write, and finds the row.
			if _, err := tx.ExecContext(ctx, `INSERT INTO kv (name, value) VALUES (?, ?)`, key, next); err != nil {
				return err
			}
			claimed = true
			return nil
		}
		if err != nil {
			return err
		}
		if last, err := strconv.ParseInt(prev, 10, 64); err == nil && now.Sub(time.Unix(0, last)) < minAge {
			return nil
		}
		res, err := tx.ExecContext(ctx, `UPDATE kv SET value = ? WHERE name = ? AND value = ?`, next, key, prev)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		claimed = err == nil && n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("claiming the refresh of list %s: %w", key, err)
	}
	return claimed, nil
}

// UnclaimListRefresh gives up the claim ClaimListRefresh made at now (the
// refresh failed), so that the next attempt, here or on another LAPI, is
// not held back by it.
func (s *Store) UnclaimListRefresh(ctx context.Context, key string, now time.Time) error {
	return s.write(ctx, func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `UPDATE kv SET value = '0' WHERE name = ? AND value = ?`, "list-refresh:"+key, strconv.FormatInt(now.UnixNano(), 10))
		return err
	})
}
