// Package leakybucket runs hub-format scenarios over parsed events:
// leaky, trigger, conditional and counter buckets keyed by groupby, with
// distinct, blackhole, cancel_on and overflow_filter, turning overflows into
// alerts (with their scope and context) and re-pouring those marked
// reprocess. Time comes from the events in replay (time-machine) mode and
// from the clock in live mode. Per-event work (filters, groupby, distinct,
// cancel_on) may run in many goroutines through Prepare; the bucket work
// runs in one, in input order, so alerts never depend on how many
// goroutines prepared the events. It never talks to the LAPI.
package leakybucket

import (
	"container/heap"
	"fmt"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/event"
)

// Queue is what conditions and overflow filters see as `queue`.
type Queue struct {
	Queue []event.Event
}

// bucketView is what conditions and overflow filters see as `leaky`; the
// field names, underscores included, are upstream's so hub expressions work
// unchanged.
type bucketView struct {
	Name        string
	Mapkey      string
	Capacity    int
	Leakspeed   time.Duration
	Duration    time.Duration
	Total_count int
	First_ts    time.Time
	Last_ts     time.Time
	Ovflw_ts    time.Time
}

type bucketKey struct {
	scenario int
	key      string
}

type bucket struct {
	// tokens is kept in nanoseconds of leak (one token = leakspeed) so
	// refills are exact: floating point made 540s/60s fall just short of 9.
	tokens int64
	last   time.Time
	first  time.Time
	queue  []event.Event
	poured int
	// distinct is nil unless the scenario has a distinct expression.
	distinct map[string]bool
	// matched[i] holds which window predicates queue[i] matched, counts
	// how many queued events match each; both nil unless trimming.
	matched []uint64
	counts  []int
	noTrim  bool
	// lastLine is when the last poured event's line was read (for the
	// alert delay).
	lastLine time.Time
}

// dropFront forgets the n oldest queued events.
func (b *bucket) dropFront(n int) {
	if n <= 0 {
		return
	}
	// Zeroed so the dropped events' maps are freed now rather than when
	// append next moves the array.
	clear(b.queue[:n])
	b.queue = b.queue[n:]
	if b.matched != nil {
		for _, bits := range b.matched[:n] {
			for i := range b.counts {
				if bits&(1<<i) != 0 {
					b.counts[i]--
				}
			}
		}
		b.matched = b.matched[n:]
	}
}

// Engine pours events into the scenarios' buckets.
//
// Prepare may be called from any number of goroutines at once, also while
// PourPrepared runs; Pour, PourPrepared and Tick from one goroutine at a
// time; SetContexts before any of them.
type Engine struct {
	scenarios  []*Scenario
	reads      []fieldMask // per scenario: its own queue readers' and the contexts'
	contexts   []contextKey
	buckets    map[bucketKey]*bucket
	blackholes map[bucketKey]time.Time
	counters   counterHeap
	counterSeq uint64
	replay     bool
	trim       bool
	log        *log.Entry
	lastGC     time.Time
	stats      *engineStats

	// Scratch for the sequential stage, reused so that conditions, filters
	// and contexts do not allocate a VM and an env per evaluation.
	vm     vm.VM
	q      Queue
	view   bucketView
	signal event.RuntimeAlert
	qEnv   map[string]any
	evtEnv map[string]any
	// scratch holds *scratch for Prepare, which runs concurrently.
	scratch sync.Pool
}

// NewEngine builds an engine; replay selects time-machine mode (event
// timestamps) over the clock.
func NewEngine(scenarios []*Scenario, replay bool) *Engine {
	e := &Engine{scenarios: scenarios, buckets: map[bucketKey]*bucket{}, blackholes: map[bucketKey]time.Time{},
		replay: replay, trim: true, log: log.WithField("component", "buckets"),
		stats: newEngineStats(len(scenarios))}
	e.qEnv = map[string]any{"queue": &e.q, "leaky": &e.view, "signal": &e.signal}
	e.evtEnv = map[string]any{"evt": nil}
	e.scratch.New = func() any { return &scratch{env: map[string]any{"evt": nil}} }
	e.computeReads()
	return e
}

func (e *Engine) computeReads() {
	var ctx fieldMask
	for _, c := range e.contexts {
		ctx |= c.reads
	}
	e.reads = make([]fieldMask, len(e.scenarios))
	for i, s := range e.scenarios {
		e.reads[i] = s.reads | ctx
	}
}

// Buckets returns how many buckets are alive.
func (e *Engine) Buckets() int { return len(e.buckets) }

// replayTime is an event's own time: its MarshaledTime, else its Time.
func replayTime(evt *event.Event) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, evt.MarshaledTime); err == nil {
		return t, true
	}
	if !evt.Time.IsZero() {
		return evt.Time, true
	}
	return time.Time{}, false
}

// scratch is one Prepare call's VM and env.
type scratch struct {
	vm  vm.VM
	env map[string]any
	evt *event.Event
}

// directFn is a program fused into one Go closure (exprhelpers.Direct).
type directFn func(*event.Event) (any, error)

// run runs p on the scratch's event, through f when p has one.
func (sc *scratch) run(p *vm.Program, f directFn) (any, error) {
	if f != nil {
		return f(sc.evt)
	}
	return sc.vm.Run(p, sc.env)
}

func (sc *scratch) runBool(p *vm.Program, f directFn) bool {
	out, err := sc.run(p, f)
	if err != nil {
		return false
	}
	b, _ := out.(bool)
	return b
}

func (sc *scratch) runString(p *vm.Program, f directFn) (string, bool) {
	out, err := sc.run(p, f)
	return asString(out, err)
}

func runString(m *vm.VM, p *vm.Program, env map[string]any) (string, bool) {
	return asString(m.Run(p, env))
}

func asString(out any, err error) (string, bool) {
	if err != nil {
		return "", false
	}
	switch o := out.(type) {
	case string:
		return o, true
	case nil:
		return "", true
	default:
		return fmt.Sprint(o), true
	}
}

func runBool(m *vm.VM, p *vm.Program, env map[string]any) bool {
	out, err := m.Run(p, env)
	if err != nil {
		return false
	}
	b, _ := out.(bool)
	return b
}

// Prepared is what Prepare learned about an event: which scenarios it
// matched, with their groupby key, distinct value and cancel_on result.
type Prepared struct {
	at    time.Time
	timed bool
	hits  []hit
}

type hit struct {
	scenario   int
	key        string
	distinct   string
	cancel     bool
	noDistinct bool // the distinct expression failed: nothing is poured
}

// Prepare runs, for each scenario in order, the event's filter, then its
// groupby, cancel_on and distinct. It reads no bucket and changes no engine
// state, so many goroutines may prepare different events at once; the
// result goes to PourPrepared with the same event. Filters may change the
// event (http-cve-probing calls evt.SetMeta), which is why they all run
// here, before any bucket keeps a copy of it: every scenario queues the
// event as the last filter left it.
func (e *Engine) Prepare(evt *event.Event) Prepared {
	var p Prepared
	if e.replay {
		p.at, p.timed = replayTime(evt)
	} else if evt.Line.Backlog {
		// Written while the agent was stopped: its own time, never one
		// ahead of the clock (a year-less syslog date guessed wrong).
		if at, ok := replayTime(evt); ok && at.Before(time.Now()) {
			p.at, p.timed = at, true
		}
	}
	sc := e.scratch.Get().(*scratch)
	sc.env["evt"], sc.evt = evt, evt
	for i, s := range e.scenarios {
		if s.filter != nil && !sc.runBool(s.filter, s.filterFn) {
			continue
		}
		h := hit{scenario: i}
		if s.groupby != nil {
			k, ok := sc.runString(s.groupby, s.groupbyFn)
			if !ok {
				continue
			}
			h.key = k
		}
		if s.cancelOn != nil {
			h.cancel = sc.runBool(s.cancelOn, s.cancelOnFn)
		}
		if s.distinct != nil && !h.cancel {
			v, ok := sc.runString(s.distinct, s.distinctFn)
			h.distinct, h.noDistinct = v, !ok
		}
		if p.hits == nil {
			p.hits = make([]hit, 0, min(len(e.scenarios)-i, 8))
		}
		p.hits = append(p.hits, h)
	}
	sc.env["evt"], sc.evt = nil, nil
	e.scratch.Put(sc)
	return p
}

// Pour sends one parsed event to every scenario and returns the overflows
// it caused (due counters first, then in scenario order), followed by what
// pouring back those of reprocess scenarios caused, in the same order and
// recursively, at most maxReprocessDepth deep.
//
// The caller must not change evt after Pour (or PourPrepared) returns:
// buckets keep shallow copies that share its maps.
func (e *Engine) Pour(evt *event.Event) []event.Event {
	return e.PourPrepared(evt, e.Prepare(evt))
}

// PourPrepared does the bucket work for an event, given what Prepare(evt)
// returned for it. Events must be poured in their input order, from one
// goroutine, and not changed once poured (see Pour).
func (e *Engine) PourPrepared(evt *event.Event, p Prepared) []event.Event {
	start := time.Now()
	out := e.pour(evt, p, 0)
	e.countPourTime(evt, len(p.hits) > 0, time.Since(start))
	return out
}

// maxReprocessDepth bounds overflow re-pouring: a scenario matching its own
// overflows would otherwise loop forever.
const maxReprocessDepth = 3

func (e *Engine) pour(evt *event.Event, p Prepared, depth int) []event.Event {
	now := p.at
	if !p.timed {
		now = time.Now()
	}
	out := e.expireCounters(now)
	for _, h := range p.hits {
		if ovf, ok := e.pourHit(evt, h, now); ok {
			out = append(out, ovf)
		}
	}
	if now.Sub(e.lastGC) > time.Minute {
		e.gc(now)
	}
	return e.reprocess(out, depth)
}

// reprocess pours back the overflows of reprocess scenarios, as upstream
// re-injects them into the pipeline, and appends what that caused.
func (e *Engine) reprocess(out []event.Event, depth int) []event.Event {
	if depth >= maxReprocessDepth {
		return out
	}
	n := len(out)
	for i := 0; i < n; i++ {
		if !out[i].Overflow.Reprocess {
			continue
		}
		// a copy: filters may SetMeta on it, the caller gets out[i] as built
		re := out[i]
		out = append(out, e.pour(&re, e.Prepare(&re), depth+1)...)
	}
	return out
}

// Tick emits the overflows of counters whose duration has elapsed by now
// and drops dead buckets. Live agents call it every second or so with the
// clock, since a counter must overflow even when no event comes; a replay
// may call it with its last event's time to flush counters at the end.
func (e *Engine) Tick(now time.Time) []event.Event {
	out := e.expireCounters(now)
	e.gc(now)
	return e.reprocess(out, 0)
}

// dead reports whether a bucket has expired by now.
func dead(s *Scenario, b *bucket, now time.Time) bool {
	if s.leak > 0 && s.cfg.Capacity > 0 && now.Sub(b.last) >= time.Duration(s.cfg.Capacity)*s.leak {
		return true // fully leaked: an underflow
	}
	return s.cfg.Type == "conditional" && s.leak > 0 && now.Sub(b.last) >= s.leak
}

func (e *Engine) pourHit(evt *event.Event, h hit, now time.Time) (event.Event, bool) {
	s := e.scenarios[h.scenario]
	bk := bucketKey{h.scenario, h.key}
	if until, ok := e.blackholes[bk]; ok {
		if now.Before(until) {
			return event.Event{}, false
		}
		delete(e.blackholes, bk)
	}
	b := e.buckets[bk]
	if b != nil && dead(s, b, now) {
		// decided here as gc would have: the outcome must not depend on
		// whether other keys' events made gc run meanwhile
		e.dropBucket(bk, &e.stats.scenarios[h.scenario].underflowed)
		b = nil
	}
	if h.cancel {
		e.dropBucket(bk, &e.stats.scenarios[h.scenario].canceled)
		return event.Event{}, false
	}
	if h.noDistinct {
		return event.Event{}, false
	}
	if s.distinct != nil && b != nil && b.distinct[h.distinct] {
		return event.Event{}, false
	}
	if b == nil {
		b = &bucket{tokens: int64(s.cfg.Capacity) * int64(s.leak), last: now, first: now}
		if s.distinct != nil {
			b.distinct = map[string]bool{}
		}
		if len(s.window) > 0 && e.trim {
			b.counts = make([]int, len(s.window))
			b.matched = []uint64{}
		}
		e.addBucket(bk, b)
		if s.cfg.Type == "counter" {
			e.counterSeq++
			heap.Push(&e.counters, counterDue{at: now.Add(s.duration), seq: e.counterSeq, bk: bk, b: b})
		}
	}
	if s.distinct != nil {
		b.distinct[h.distinct] = true
	}
	b.queue = append(b.queue, e.queued(h.scenario, evt, now))
	b.poured++
	b.lastLine = evt.Line.Time
	e.countPour(h.scenario, evt)
	if keep := s.queueKeep(); keep > 0 && len(b.queue) > keep {
		b.dropFront(len(b.queue) - keep)
	}
	if b.matched != nil {
		e.trimWindow(s, b)
	}
	overflow := false
	switch s.cfg.Type {
	case "trigger":
		overflow = true
	case "leaky":
		if el := now.Sub(b.last); el > 0 {
			b.tokens = min(int64(s.cfg.Capacity)*int64(s.leak), b.tokens+int64(el))
		}
		b.last = now
		if b.tokens >= int64(s.leak) {
			b.tokens -= int64(s.leak)
		} else {
			overflow = true
		}
	case "conditional":
		b.last = now
		e.setView(s, h.key, b, time.Time{})
		e.q.Queue = b.queue
		overflow = runBool(&e.vm, s.condition, e.qEnv)
		e.q.Queue = nil
	case "counter":
		b.last = now
	}
	if !overflow {
		return event.Event{}, false
	}
	e.dropBucket(bk, &e.stats.scenarios[h.scenario].overflowed)
	return e.overflow(s, bk, b, now)
}

// queued is the copy of evt a bucket keeps: a shallow copy sharing evt's
// maps (the caller does not change evt after pouring it), without the bulky
// fields nothing reading the queue of that scenario looks at. Alerts read
// Meta, Enriched, Time and MarshaledTime; conditions, overflow filters,
// scope expressions and contexts may read more, and fieldsIn says what.
func (e *Engine) queued(scenario int, evt *event.Event, now time.Time) event.Event {
	c := *evt
	c.Time = now
	m := e.reads[scenario]
	if m&readsParsed == 0 {
		c.Parsed = nil
	}
	if m&readsLine == 0 {
		c.Line = event.Line{}
	}
	if m&readsUnmarshaled == 0 {
		c.Unmarshaled = nil
	}
	return c
}

// queueKeep is how many events a bucket queue holds, 0 for no bound. As
// upstream: capacity+1, or cache_size+1 when cache_size is smaller or the
// capacity unbounded; counters are unbounded.
func (s *Scenario) queueKeep() int {
	size := s.cfg.Capacity
	if s.cfg.Type == "counter" {
		size = -1
	}
	if c := s.cfg.CacheSize; c > 0 && (size < 0 || c <= size) {
		size = c
	}
	if size < 0 {
		return 0
	}
	return size + 1
}

// trimWindow records which window predicates the newest queued event
// matches, then drops the oldest events the condition can no longer read
// (see queueWindow for the rule). The newest event always stays.
func (e *Engine) trimWindow(s *Scenario, b *bucket) {
	if b.noTrim {
		return
	}
	n := len(b.queue)
	e.q.Queue = b.queue[n-1:]
	var bits uint64
	for i, w := range s.window {
		out, err := e.vm.Run(w.match, e.qEnv)
		res, ok := out.([]any)
		if err != nil || !ok || len(res) != 1 {
			b.noTrim = true
			break
		}
		m, ok := res[0].(bool)
		if !ok {
			b.noTrim = true
			break
		}
		if m {
			bits |= 1 << i
		}
	}
	e.q.Queue = nil
	if b.noTrim {
		b.matched, b.counts = nil, nil
		return
	}
	for i := range s.window {
		if bits&(1<<i) != 0 {
			b.counts[i]++
		}
	}
	b.matched = append(b.matched, bits)
	drop := 0
	var left [maxWindowPreds]int
	copy(left[:], b.counts)
	for ; drop < n-1; drop++ {
		old := b.matched[drop]
		needed := false
		for i, w := range s.window {
			if old&(1<<i) != 0 && left[i] <= w.keep {
				needed = true
				break
			}
		}
		if needed {
			break
		}
		for i := range left {
			if old&(1<<i) != 0 {
				left[i]--
			}
		}
	}
	b.dropFront(drop)
}

func (e *Engine) setView(s *Scenario, key string, b *bucket, ovflw time.Time) {
	e.view = bucketView{Name: s.cfg.Name, Mapkey: key, Capacity: s.cfg.Capacity, Leakspeed: s.leak, Duration: s.duration,
		Total_count: b.poured, First_ts: b.first, Last_ts: b.last, Ovflw_ts: ovflw}
}

// gc drops dead buckets and ended blackholes so memory stays bounded on
// long replays.
func (e *Engine) gc(now time.Time) {
	e.lastGC = now
	for k, b := range e.buckets {
		if dead(e.scenarios[k.scenario], b, now) {
			e.dropBucket(k, &e.stats.scenarios[k.scenario].underflowed)
		}
	}
	for k, until := range e.blackholes {
		if now.After(until) {
			delete(e.blackholes, k)
		}
	}
}

// counterDue is when a counter bucket overflows; seq orders counters due
// at the same instant by creation, so the output is deterministic.
type counterDue struct {
	at  time.Time
	seq uint64
	bk  bucketKey
	b   *bucket
}

type counterHeap []counterDue

func (h counterHeap) Len() int { return len(h) }
func (h counterHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h counterHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *counterHeap) Push(x any)   { *h = append(*h, x.(counterDue)) }
func (h *counterHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = counterDue{}
	*h = old[:len(old)-1]
	return x
}

// expireCounters overflows the counters due by now, in due order; each
// overflows at its own due time, whatever the time of the event that
// revealed it.
func (e *Engine) expireCounters(now time.Time) []event.Event {
	var out []event.Event
	for len(e.counters) > 0 && !now.Before(e.counters[0].at) {
		c := heap.Pop(&e.counters).(counterDue)
		if e.buckets[c.bk] != c.b {
			continue // cancelled meanwhile
		}
		e.dropBucket(c.bk, &e.stats.scenarios[c.bk.scenario].overflowed)
		if ovf, ok := e.overflow(e.scenarios[c.bk.scenario], c.bk, c.b, c.at); ok {
			out = append(out, ovf)
		}
	}
	return out
}
