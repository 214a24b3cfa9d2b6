package exprhelpers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rampart-ips/rampart/internal/netaddr"
	"github.com/rampart-ips/rampart/models"
)

// The decision helpers (GetDecisionsCount, GetDecisionsSinceCount,
// GetActiveDecisionsCount, GetActiveDecisionsTimeLeft) answer what
// upstream's read from its database: the decisions covering a value (an IP
// or a CIDR), whatever their type or origin, expired ones included in the
// counts. Rampart's agent has no database: it asks the LAPI (GET
// /v1/decisions/count, see DecisionCounter), and a rule must never wait on
// the network, so:
//   - answers are cached per (value, since) in a bounded LRU, fresh for
//     decisionFresh; an older one is served at once while a background
//     query refreshes it (stale-while-revalidate), for at most decisionStale;
//   - on a miss, the caller that starts the query waits for it at most
//     decisionWait, then gets 0 while the query goes on in the background
//     (bounded by decisionTimeout) and fills the cache for later events;
//     callers that find a query for their key already running, and every
//     caller while the LAPI is failing, get 0 (or the last answer) at once;
//   - at most decisionMaxInFlight queries run at once; beyond that, 0;
//   - failures keep the last answer, are retried after decisionFresh, and
//     log a warning at most once a minute per helper.
//
// Without a counter (hubtest, cscli explain, replays without a LAPI) the
// helpers answer 0 at once, as upstream's do without a database.

const (
	decisionWait        = 200 * time.Millisecond
	decisionTimeout     = 2 * time.Second
	decisionFresh       = 10 * time.Second
	decisionStale       = 10 * time.Minute
	decisionCacheSize   = 4096
	decisionMaxInFlight = 4
)

// DecisionCounter answers the decision helpers; *apiclient.Client, logged
// in as the agent's machine, is the one the agent uses.
type DecisionCounter interface {
	CountDecisions(ctx context.Context, value, since string) (*models.DecisionCountsResponse, error)
}

// decisionAnswer is what is known about one (value, since). It is never
// modified once cached.
type decisionAnswer struct {
	total, active, since int
	until                time.Time // end of the longest active decision (local clock); zero: none
	checked              time.Time // last query, answered or failed
	answered             time.Time // last answered query; zero: never
}

type decisionState struct {
	now   func() time.Time
	cache *lruCache[*decisionAnswer]
	sem   chan struct{}

	// The bounds, fields so tests can widen them.
	wait, timeout, fresh, stale time.Duration

	mu      sync.Mutex
	src     DecisionCounter
	pending map[string]chan struct{} // keys being queried
	failing time.Time                // until then, misses do not wait
}

func (d *decisionState) init(now func() time.Time) {
	d.now = now
	d.cache = newLRUCache[*decisionAnswer](decisionCacheSize, 0, now)
	d.sem = make(chan struct{}, decisionMaxInFlight)
	d.wait, d.timeout, d.fresh, d.stale = decisionWait, decisionTimeout, decisionFresh, decisionStale
	d.pending = map[string]chan struct{}{}
}

// SetDecisionCounter makes the decision helpers ask src (nil: answer 0, as
// without a LAPI). The agent sets its LAPI client on every rule set it
// loads.
func (h *Helpers) SetDecisionCounter(src DecisionCounter) {
	d := &h.ext().dec
	d.mu.Lock()
	d.src = src
	d.mu.Unlock()
}

// counter returns the current counter, warning once per helper when there
// is none.
func (h *Helpers) counter(helper string) DecisionCounter {
	d := &h.ext().dec
	d.mu.Lock()
	src := d.src
	d.mu.Unlock()
	if src == nil {
		h.ext().net.warnOnce(helper, helper+": no LAPI to ask on this agent (upstream's case without a database); it answers 0")
	}
	return src
}

// lookup returns what is known about (value, since), asking src when that
// is missing or old; ok is false when nothing is known (the helpers then
// answer 0).
func (d *decisionState) lookup(h *Helpers, helper string, src DecisionCounter, value, since string) (decisionAnswer, bool) {
	key := value + "\x00" + since
	now := d.now()
	if a, ok := d.cache.get(key); ok {
		if now.Sub(a.checked) >= d.fresh {
			d.query(h, helper, src, key, value, since)
		}
		return *a, !a.answered.IsZero()
	}
	done, started := d.query(h, helper, src, key, value, since)
	if !started {
		return decisionAnswer{}, false
	}
	d.mu.Lock()
	failing := now.Before(d.failing)
	d.mu.Unlock()
	if failing {
		return decisionAnswer{}, false
	}
	t := time.NewTimer(d.wait)
	defer t.Stop()
	select {
	case <-done:
		if a, ok := d.cache.get(key); ok && !a.answered.IsZero() {
			return *a, true
		}
	case <-t.C:
		// Later misses answer 0 at once until the LAPI answers again.
		d.mu.Lock()
		d.failing = d.now().Add(d.fresh)
		d.mu.Unlock()
		h.ext().net.warn(helper, fmt.Errorf("the LAPI did not answer within %s: 0 for now, the answer is cached when it comes", d.wait))
	}
	return decisionAnswer{}, false
}

// query starts a background query of (value, since) unless one is running
// or too many are; done closes once the cache holds its outcome, and
// started says whether this call started it.
func (d *decisionState) query(h *Helpers, helper string, src DecisionCounter, key, value, since string) (done <-chan struct{}, started bool) {
	d.mu.Lock()
	if ch, ok := d.pending[key]; ok {
		d.mu.Unlock()
		return ch, false
	}
	select {
	case d.sem <- struct{}{}:
	default:
		d.mu.Unlock()
		h.ext().net.warn(helper, errors.New("too many LAPI queries in flight: 0 for now"))
		return nil, false
	}
	ch := make(chan struct{})
	d.pending[key] = ch
	d.mu.Unlock()
	go func() {
		defer func() {
			<-d.sem
			d.mu.Lock()
			delete(d.pending, key)
			d.mu.Unlock()
			close(ch)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
		defer cancel()
		start := d.now()
		a, err := d.ask(ctx, src, value, since, start)
		if err != nil {
			d.mu.Lock()
			d.failing = d.now().Add(d.fresh)
			d.mu.Unlock()
			h.ext().net.warn(helper, fmt.Errorf("asking the LAPI about %s: %w", value, err))
			d.failed(key, start)
			return
		}
		d.cache.setTTL(key, a, d.stale)
		d.mu.Lock()
		d.failing = time.Time{} // answering again: misses may wait again
		d.mu.Unlock()
	}()
	return ch, true
}

// ask runs one query.
func (d *decisionState) ask(ctx context.Context, src DecisionCounter, value, since string, start time.Time) (*decisionAnswer, error) {
	r, err := src.CountDecisions(ctx, value, since)
	if err != nil {
		return nil, err
	}
	left, err := time.ParseDuration(r.TimeLeft)
	if err != nil {
		return nil, fmt.Errorf("time_left %q: %w", r.TimeLeft, err)
	}
	a := &decisionAnswer{total: r.Count, active: r.ActiveCount, checked: start, answered: start}
	if r.SinceCount != nil {
		a.since = *r.SinceCount
	}
	if left > 0 {
		a.until = start.Add(left)
	}
	return a, nil
}

// failed records a failed query: the last answer is kept, within its
// staleness limit, and the key is not asked again before d.fresh.
func (d *decisionState) failed(key string, at time.Time) {
	a := &decisionAnswer{checked: at}
	ttl := d.fresh
	if prev, ok := d.cache.get(key); ok && !prev.answered.IsZero() {
		if left := prev.answered.Add(d.stale).Sub(at); left > 0 {
			kept := *prev
			kept.checked = at
			a, ttl = &kept, left
		}
	}
	d.cache.setTTL(key, a, ttl)
}

// decisions is the common path of the helpers: nothing is asked without a
// counter or for a value that cannot have decisions (valid false).
func (h *Helpers) decisions(helper, value, since string) (a decisionAnswer, valid bool) {
	d := &h.ext().dec
	src := h.counter(helper)
	if src == nil {
		return decisionAnswer{}, true
	}
	if _, err := netaddr.ParsePrefix(value); err != nil {
		return decisionAnswer{}, false
	}
	a, _ = d.lookup(h, helper, src, value, since)
	return a, true
}

// errNotAddress is the Active helpers' error for a value that is not an IP
// or range, upstream's failure of the expression.
func errNotAddress(helper, value string) error {
	return fmt.Errorf("%s: '%s' is not an IP address or range", helper, value)
}

// notAddress logs upstream's error for the counting helpers, which answer 0.
func (h *Helpers) notAddress(helper, value string) {
	h.ext().net.warn(helper, errNotAddress(helper, value))
}

// GetDecisionsCount returns how many decisions, expired ones included,
// cover value (an IP or a range); 0 for any other value.
func (h *Helpers) GetDecisionsCount(value string) int {
	a, ok := h.decisions("GetDecisionsCount", value, "")
	if !ok {
		h.notAddress("GetDecisionsCount", value)
	}
	return a.total
}

// GetDecisionsSinceCount returns how many decisions covering value were
// created within since, a Go duration such as "24h" (upstream's parsing:
// no days); 0 when either is invalid.
func (h *Helpers) GetDecisionsSinceCount(value, since string) int {
	const helper = "GetDecisionsSinceCount"
	if h.counter(helper) == nil {
		return 0
	}
	if _, err := time.ParseDuration(since); err != nil {
		h.ext().net.warn(helper, fmt.Errorf("since '%s': %w", since, err))
		return 0
	}
	a, ok := h.decisions(helper, value, since)
	if !ok {
		h.notAddress(helper, value)
	}
	return a.since
}

// GetActiveDecisionsCount returns how many decisions in force cover value;
// a value that is not an IP or range fails the expression, as upstream's.
func (h *Helpers) GetActiveDecisionsCount(value string) (int, error) {
	a, ok := h.decisions("GetActiveDecisionsCount", value, "")
	if !ok {
		return 0, errNotAddress("GetActiveDecisionsCount", value)
	}
	if !a.until.IsZero() && !h.now().Before(a.until) {
		return 0, nil // every decision known has ended since the answer
	}
	return a.active, nil
}

// GetActiveDecisionsTimeLeft returns the longest time left among the
// decisions in force covering value (0 when none); a value that is not an
// IP or range fails the expression, as upstream's.
func (h *Helpers) GetActiveDecisionsTimeLeft(value string) (time.Duration, error) {
	a, ok := h.decisions("GetActiveDecisionsTimeLeft", value, "")
	if !ok {
		return 0, errNotAddress("GetActiveDecisionsTimeLeft", value)
	}
	if a.until.IsZero() {
		return 0, nil
	}
	return max(a.until.Sub(h.now()), 0), nil
}
