// Package leakybucket runs hub-format scenarios over parsed events:
// leaky, trigger, conditional and counter buckets keyed by groupby, with
// distinct, blackhole, cancel_on and overflow_filter, turning overflows into
// alerts (with their scope and context) and re-pouring those marked
// reprocess. As upstream, scenarios with the same name and filter share
// their buckets (see sharePeers). Time comes from the events in replay (time-machine) mode and
// from the clock in live mode. Per-event work (filters, groupby, distinct,
// cancel_on) may run in many goroutines through Prepare; the bucket work
// runs in one, in input order, so alerts never depend on how many
// goroutines prepared the events. It never talks to the LAPI.
package leakybucket

import (
	"container/heap"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
)

// Queue is what conditions and overflow filters see as `queue`. Its
// events are pointers: the scenarios an event fills share one copy of it.
type Queue struct {
	Queue []*event.Event
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

// bucket is one live bucket. A flood of distinct sources makes hundreds of
// thousands of them, so it is kept small: times as Unix nanoseconds, the
// queue as pointers to copies shared between scenarios, a short list for
// distinct values, trimming state only where a condition is trimmed.
type bucket struct {
	key string
	// tokens is kept in nanoseconds of leak (one token = leakspeed) so
	// refills are exact: floating point made 540s/60s fall just short of 9.
	tokens int64
	// last and first are Unix nanoseconds; lastLine is when the last
	// poured event's line was read (for the alert delay), 0 when unknown.
	last, first, lastLine int64
	// rank orders the scenario's buckets for expiry and eviction (see
	// Scenario.rank); idx is the bucket's place in that heap.
	rank   int64
	idx    int
	poured int
	queue  []*event.Event
	// distinct holds the values seen (distinct scenarios only): a list
	// while short, as most buckets see one or two, then distinctSet.
	distinct    []string
	distinctSet map[string]struct{}
	// win is nil unless the scenario's condition is trimmed (see
	// queueWindow).
	win *window
}

// window is a trimmed bucket's bookkeeping: matched[i] holds which window
// predicates queue[i] matched, counts how many queued events match each.
type window struct {
	matched []uint64
	counts  []int
}

// maxDistinctList is how many distinct values a bucket keeps in a list
// before switching to a map.
const maxDistinctList = 8

func (b *bucket) seen(v string) bool {
	if b.distinctSet != nil {
		_, ok := b.distinctSet[v]
		return ok
	}
	return slices.Contains(b.distinct, v)
}

func (b *bucket) remember(v string) {
	switch {
	case b.distinctSet != nil:
		b.distinctSet[v] = struct{}{}
	case len(b.distinct) < maxDistinctList:
		b.distinct = append(b.distinct, v)
	default:
		b.distinctSet = make(map[string]struct{}, 2*maxDistinctList)
		for _, d := range b.distinct {
			b.distinctSet[d] = struct{}{}
		}
		b.distinctSet[v] = struct{}{}
		b.distinct = nil
	}
}

// dropFront forgets the n oldest queued events.
func (b *bucket) dropFront(n int) {
	if n <= 0 {
		return
	}
	// Zeroed so the dropped events are freed now rather than when append
	// next moves the array.
	clear(b.queue[:n])
	b.queue = b.queue[n:]
	if b.win != nil {
		for _, bits := range b.win.matched[:n] {
			for i := range b.win.counts {
				if bits&(1<<i) != 0 {
					b.win.counts[i]--
				}
			}
		}
		b.win.matched = b.win.matched[n:]
	}
}

// scenarioBuckets is one scenario's live state: its buckets, ordered for
// expiry and eviction, and its blackholes. Everything the cap on live
// buckets needs lives here, so it goes wherever the scenario's buckets go.
type scenarioBuckets struct {
	live  map[string]*bucket
	order bucketHeap
	// blackholes maps a key to when its blackhole ends (Unix ns);
	// holeOrder lists them by start, which is by end as every blackhole of
	// a scenario lasts the same.
	blackholes map[string]int64
	holeOrder  []hole
	// warned is when the cap was last logged (wall clock).
	warned time.Time
}

type hole struct {
	key   string
	until int64
}

func newScenarioBuckets() *scenarioBuckets {
	return &scenarioBuckets{live: map[string]*bucket{}, blackholes: map[string]int64{}}
}

// bucketHeap is a scenario's buckets, lowest rank first.
type bucketHeap []*bucket

func (h bucketHeap) Len() int           { return len(h) }
func (h bucketHeap) Less(i, j int) bool { return h[i].rank < h[j].rank }
func (h bucketHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *bucketHeap) Push(x any) {
	b := x.(*bucket)
	b.idx = len(*h)
	*h = append(*h, b)
}
func (h *bucketHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return b
}

// rank orders a scenario's buckets: the lowest is the first to expire and,
// when the scenario is at its cap, the first evicted, being the least
// likely to overflow. A leaky bucket's rank is when it will have leaked
// empty (its last pour plus what it holds times the leakspeed): ordering by
// it is ordering by how full the bucket is now, whatever now is. A
// conditional bucket's is when it expires (its last pour plus the
// leakspeed); a counter's, how many events it counted (counters end at
// their duration, the fullest is the likeliest to matter).
func (s *Scenario) rank(b *bucket) int64 {
	switch s.cfg.Type {
	case "leaky":
		return b.last + int64(s.cfg.Capacity)*int64(s.leak) - b.tokens
	case "conditional":
		return b.last + int64(s.leak)
	case "counter":
		return int64(b.poured)
	}
	return b.last
}

// expires reports whether a scenario's buckets die of their rank: leaky
// ones when they have leaked empty, conditional ones when idle for their
// leakspeed.
func (s *Scenario) expires() bool {
	return s.cfg.Type == "leaky" || s.cfg.Type == "conditional"
}

// dead reports whether a bucket has expired by now: an underflow. A leaky
// bucket that has leaked empty is dead at once: a new bucket for its key
// would behave the same, and keeping it only costs memory.
func dead(s *Scenario, b *bucket, now int64) bool {
	return s.expires() && b.rank <= now
}

// Engine pours events into the scenarios' buckets.
//
// Prepare may be called from any number of goroutines at once, also while
// PourPrepared runs; Pour, PourPrepared and Tick from one goroutine at a
// time; SetContexts before any of them.
type Engine struct {
	scenarios []*Scenario
	reads     []fieldMask // per scenario: its own queue readers' and the contexts'
	contexts  []contextKey
	state     []*scenarioBuckets // per scenario
	// peers lists, per scenario, the other scenarios whose buckets it
	// shares (see sharePeers); nil for almost all.
	peers      [][]int
	counters   counterHeap
	counterSeq uint64
	replay     bool
	trim       bool
	// limit caps each scenario's live buckets (and blackholes); 0 for
	// none. See SetLimit.
	limit  int
	log    *log.Entry
	lastGC time.Time
	// poured counts a replay's pours, for its gc (see pour).
	poured uint64
	stats  *engineStats

	// Scratch for the sequential stage, reused so that conditions, filters
	// and contexts do not allocate a VM and an env per evaluation.
	vm     vm.VM
	q      Queue
	view   bucketView
	signal event.RuntimeAlert
	qEnv   map[string]any
	// winLists holds the lists windowed conditions read (see windowed).
	winLists [][]any
	evtEnv   map[string]any
	// scratch holds *scratch for Prepare, which runs concurrently.
	scratch sync.Pool
	// guards are the tests of the distinct leading guards of the
	// scenario filters (scenGuards indexes them): Prepare tests each once
	// per event, sharing the frame of the filters.
	guards []func(*event.Event, *exprhelpers.Frame) bool
	// scenGuards index, per scenario, the guards its filter opens with;
	// mayWrite tells that an expression of the scenario may change the
	// event (see indexGuards).
	scenGuards [][]int
	mayWrite   []bool
	// gate skips the filters whose required literals an event lacks
	// (exprhelpers.Gate); nil when no scenario was compiled with helpers.
	gate *exprhelpers.Gate
}

// indexGuards collects the leading guards of the filters (most hub
// filters open with the same log_type, service or status tests) so that
// Prepare tests each once per event and skips the scenarios one of them
// fails, instead of running every filter.
func (e *Engine) indexGuards() {
	seen := map[string]int{}
	e.scenGuards = make([][]int, len(e.scenarios))
	e.mayWrite = make([]bool, len(e.scenarios))
	for i, s := range e.scenarios {
		// SetMeta and SetParsed are the only writes an expression can
		// make: after a scenario that may call one, tested guards are
		// tested again.
		for _, src := range []string{s.cfg.Filter, s.cfg.GroupBy, s.cfg.Distinct, s.cfg.CancelOn} {
			if strings.Contains(src, "Set") {
				e.mayWrite[i] = true
			}
		}
		if s.filter == nil {
			continue
		}
		for _, g := range exprhelpers.LeadingGuards(s.cfg.Filter) {
			k := g.Map + "\x00" + g.Key + "\x00" + strings.Join(g.Values, "\x00")
			idx, ok := seen[k]
			if !ok {
				idx = len(e.guards)
				seen[k] = idx
				test := func(e *event.Event, _ *exprhelpers.Frame) bool { return g.Test(e) }
				if s.helpers != nil {
					test = s.helpers.GuardFunc(g)
				}
				e.guards = append(e.guards, test)
			}
			e.scenGuards[i] = append(e.scenGuards[i], idx)
		}
	}
}

// newGate is the gate of the filters compiled with the first helpers
// found (a gate's frame serves one Helpers: all of them, in the agent).
func newGate(scenarios []*Scenario) *exprhelpers.Gate {
	var h *exprhelpers.Helpers
	progs := make([]*vm.Program, len(scenarios))
	for i, s := range scenarios {
		if h == nil {
			h = s.helpers
		}
		if h != nil && s.helpers == h {
			progs[i] = s.filter
		}
	}
	if h == nil {
		return nil
	}
	return h.NewGate(progs)
}

// NewEngine builds an engine; replay selects time-machine mode (event
// timestamps) over the clock.
func NewEngine(scenarios []*Scenario, replay bool) *Engine {
	e := &Engine{scenarios: scenarios, state: make([]*scenarioBuckets, len(scenarios)),
		replay: replay, trim: true, log: log.WithField("component", "buckets"),
		stats: newEngineStats(len(scenarios))}
	for i := range e.state {
		e.state[i] = newScenarioBuckets()
	}
	e.qEnv = map[string]any{"queue": &e.q, "leaky": &e.view, "signal": &e.signal}
	e.evtEnv = map[string]any{"evt": nil}
	e.indexGuards()
	e.gate = newGate(scenarios)
	e.scratch.New = func() any {
		return &scratch{env: map[string]any{"evt": nil}, guard: make([]uint8, len(e.guards))}
	}
	e.computeReads()
	e.peers = sharePeers(scenarios)
	return e
}

// sharePeers finds the scenarios that share buckets. Upstream names a
// bucket by its scenario's filter text, groupby value and name, so
// scenarios with the same name and filter (several documents of one file,
// like a brute force and a user enumeration) fill one bucket per key:
// whichever of them creates it, its settings (type, capacity, distinct,
// cancel_on, blackhole...) rule it, and the others' matching events are
// poured into it too, each event once per scenario.
func sharePeers(scenarios []*Scenario) [][]int {
	type ident struct{ name, filter string }
	groups := map[ident][]int{}
	for i, s := range scenarios {
		id := ident{s.cfg.Name, s.cfg.Filter}
		groups[id] = append(groups[id], i)
	}
	var peers [][]int
	for _, g := range groups {
		if len(g) < 2 {
			continue
		}
		if peers == nil {
			peers = make([][]int, len(scenarios))
		}
		for _, i := range g {
			for _, j := range g {
				if j != i {
					peers[i] = append(peers[i], j)
				}
			}
		}
	}
	return peers
}

// peerBucket is the bucket for key a peer of scenario holds, and that
// peer; the scenario itself when none does. Buckets are only created when
// no peer holds one, so at most one does.
func (e *Engine) peerBucket(scenario int, key string) (int, *bucket) {
	if e.peers == nil {
		return scenario, nil
	}
	for _, j := range e.peers[scenario] {
		if b := e.state[j].live[key]; b != nil {
			return j, b
		}
	}
	return scenario, nil
}

// ownerHit redoes a hit's cancel_on and distinct with the programs of the
// scenario owning the bucket it goes to, a peer of the one it matched:
// upstream runs them as the bucket's own processors.
func (e *Engine) ownerHit(evt *event.Event, h hit, owner *Scenario) hit {
	h.cancel, h.distinct, h.noDistinct = false, "", false
	e.evtEnv["evt"] = evt
	defer func() { e.evtEnv["evt"] = nil }()
	if owner.cancelOn != nil {
		if owner.cancelOnFn != nil {
			out, err := owner.cancelOnFn(evt, nil)
			b, _ := out.(bool)
			h.cancel = err == nil && b
		} else {
			h.cancel = runBool(&e.vm, owner.cancelOn, e.evtEnv)
		}
	}
	if owner.distinct != nil && !h.cancel {
		var v string
		var ok bool
		if owner.distinctFn != nil {
			v, ok = asString(owner.distinctFn(evt, nil))
		} else {
			v, ok = runString(&e.vm, owner.distinct, e.evtEnv)
		}
		h.distinct, h.noDistinct = v, !ok
	}
	return h
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

// SetLimit caps each scenario's live buckets at n (0: no cap); it must be
// called before pouring starts. A scenario at its cap that needs a bucket
// for a new key first drops its dead buckets, then evicts its least full
// one (see Scenario.rank), counted in ScenarioStat.Evicted and logged. A
// flood of sources sending one event each thus only pushes out buckets
// holding less than one event, never a fuller one: a brute force in
// progress keeps its bucket. Blackholes are capped alike, the soonest to
// end dropped.
func (e *Engine) SetLimit(n int) { e.limit = max(n, 0) }

// Limit returns the cap on each scenario's live buckets, 0 for none.
func (e *Engine) Limit() int { return e.limit }

// Buckets returns how many buckets are alive.
func (e *Engine) Buckets() int {
	n := 0
	for _, sb := range e.state {
		n += len(sb.live)
	}
	return n
}

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
	// gate is the state of Engine.gate for the event.
	gate exprhelpers.GateState
	// frame holds the values the event's direct programs share; writes
	// tells that the programs of the scenario being run may change the
	// event (Engine.mayWrite).
	frame  exprhelpers.Frame
	writes bool
	// guard holds, per Engine.guards entry, 0 when not yet tested on
	// the event, else 1 (passed) or 2 (failed).
	guard []uint8
}

// passes tells whether sc's event passes all of the guards gs, testing
// each guard at most once per event.
func (sc *scratch) passes(e *Engine, gs []int) bool {
	for _, g := range gs {
		st := sc.guard[g]
		if st == 0 {
			st = 2
			if e.guards[g](sc.evt, &sc.frame) {
				st = 1
			}
			sc.guard[g] = st
		}
		if st == 2 {
			return false
		}
	}
	return true
}

// directFn is a program fused into one Go closure
// (exprhelpers.DirectFrame).
type directFn func(*event.Event, *exprhelpers.Frame) (any, error)

// run runs p on the scratch's event, through f when p has one, which
// shares the values it computes with the others through the scratch's
// frame. A program run by the VM may change the event (SetMeta) when the
// scenario's may (writes): the frame then forgets what it held.
func (sc *scratch) run(p *vm.Program, f directFn) (any, error) {
	if f != nil {
		return f(sc.evt, &sc.frame)
	}
	if sc.writes {
		defer sc.frame.Reset()
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
	} else if evt.Line.Backlog || evt.Line.Warmup {
		// Written while the agent was stopped, or read again to rebuild
		// the buckets (warm-up): its own time, never one
		// ahead of the clock (a year-less syslog date guessed wrong).
		if at, ok := replayTime(evt); ok && at.Before(time.Now()) {
			p.at, p.timed = at, true
		}
	}
	sc := e.scratch.Get().(*scratch)
	sc.env["evt"], sc.evt = evt, evt
	sc.frame.Reset()
	clear(sc.guard)
	dirty := false // the last scenario run may have changed the event
	for i, s := range e.scenarios {
		if dirty {
			clear(sc.guard)
			dirty = false
		}
		// A failed guard is a false filter: skip its evaluation.
		if !sc.passes(e, e.scenGuards[i]) {
			continue
		}
		// As a failed guard: a literal the filter requires is missing.
		if e.gate != nil && !e.gate.Open(i, evt, &sc.frame, &sc.gate) {
			continue
		}
		dirty = e.mayWrite[i]
		sc.writes = dirty
		if s.filter != nil && !sc.runBool(s.filter, s.filterFn) {
			continue
		}
		if e.replay && !p.timed && s.cfg.Type != "trigger" {
			// As upstream's time machine: an event with no time of its
			// own (no parsed date) is poured into no bucket but a
			// trigger's, which overflows at the wall clock.
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
	if !evt.Line.Warmup { // counted when first read, before the stop
		e.countPourTime(evt, len(p.hits) > 0, time.Since(start))
	}
	return out
}

// replayGCEvery is how many events a replay pours between two gc runs,
// upstream's figure.
const replayGCEvery = 5000

// maxReprocessDepth bounds overflow re-pouring: a scenario matching its own
// overflows would otherwise loop forever.
const maxReprocessDepth = 3

func (e *Engine) pour(evt *event.Event, p Prepared, depth int) []event.Event {
	now := p.at
	if !p.timed {
		now = time.Now()
	}
	out := e.expireCounters(now)
	if e.replay {
		// As upstream's time machine, a replay frees buckets every 5,000
		// events, by the time of the one at hand: sources' lines
		// interleave out of time order (merged files, hub tests repeating
		// blocks), so one source's later line is no clock for another's
		// bucket, whose own lines still find it dead (see pourHit).
		if e.poured++; e.poured%replayGCEvery == 0 {
			e.gc(now)
		}
	}
	// the queued copies of evt, by what they keep: scenarios reading the
	// same fields share one
	var copies [1 << fieldBits]*event.Event
	for _, h := range p.hits {
		if ovf, ok := e.pourHit(evt, h, now, &copies); ok {
			out = append(out, ovf)
		}
	}
	// gc only pops expired buckets off each scenario's heap, so live it
	// can run every second: buckets are freed as soon as they die.
	if !e.replay && (now.Sub(e.lastGC) >= time.Second || now.Before(e.lastGC)) {
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

func (e *Engine) pourHit(evt *event.Event, h hit, now time.Time, copies *[1 << fieldBits]*event.Event) (event.Event, bool) {
	// owner is the scenario whose bucket the event goes to: the hit's own,
	// or a peer's already holding one for the key (see sharePeers).
	owner := h.scenario
	b := e.state[owner].live[h.key]
	if b == nil && e.peers != nil && e.peers[owner] != nil {
		owner, b = e.peerBucket(owner, h.key)
	}
	s := e.scenarios[owner]
	sb := e.state[owner]
	ns := now.UnixNano()
	// A blackholed key still fills its bucket, as upstream: the blackhole
	// only discards the overflows it sees (see overflow).
	if b != nil && dead(s, b, ns) {
		// decided here as gc would have: the outcome must not depend on
		// whether other keys' events made gc run meanwhile
		e.dropBucket(owner, b, &e.stats.scenarios[owner].underflowed)
		b = nil
	}
	if b == nil && owner != h.scenario {
		// the peer's bucket was dead: a new one is the hit's own
		owner = h.scenario
		s, sb = e.scenarios[owner], e.state[owner]
	}
	if owner != h.scenario {
		h = e.ownerHit(evt, h, s)
	}
	if h.cancel {
		if b != nil {
			e.dropBucket(owner, b, &e.stats.scenarios[owner].canceled)
		}
		return event.Event{}, false
	}
	if h.noDistinct {
		return event.Event{}, false
	}
	if s.distinct != nil && b != nil && b.seen(h.distinct) {
		return event.Event{}, false
	}
	if b == nil {
		if e.limit > 0 && len(sb.live) >= e.limit {
			e.makeRoom(owner, ns)
		}
		b = &bucket{key: h.key, tokens: int64(s.cfg.Capacity) * int64(s.leak), last: ns, first: ns}
		if len(s.window) > 0 && e.trim {
			b.win = &window{counts: make([]int, len(s.window)), matched: []uint64{}}
		}
		b.rank = s.rank(b)
		e.addBucket(owner, b)
		if s.cfg.Type == "counter" {
			e.counterSeq++
			heap.Push(&e.counters, counterDue{at: now.Add(s.duration), seq: e.counterSeq, bk: bucketKey{owner, h.key}, b: b})
		}
	}
	if s.distinct != nil {
		b.remember(h.distinct)
	}
	m := e.reads[owner]
	if copies[m] == nil {
		copies[m] = queued(evt, m, now)
	}
	b.queue = append(b.queue, copies[m])
	b.poured++
	b.lastLine = 0
	if !evt.Line.Time.IsZero() && !evt.Line.Warmup { // a warm-up overflow is no alert to time
		b.lastLine = evt.Line.Time.UnixNano()
	}
	e.countPour(owner, evt)
	if keep := s.queueKeep(); keep > 0 && len(b.queue) > keep {
		b.dropFront(len(b.queue) - keep)
	}
	if b.win != nil {
		e.trimWindow(s, b)
	}
	overflow := false
	switch s.cfg.Type {
	case "trigger":
		overflow = true
	case "leaky":
		if el := ns - b.last; el > 0 {
			b.tokens = min(int64(s.cfg.Capacity)*int64(s.leak), b.tokens+el)
		}
		b.last = ns
		if b.tokens >= int64(s.leak) {
			b.tokens -= int64(s.leak)
		} else {
			overflow = true
		}
	case "conditional":
		b.last = ns
		e.setView(s, h.key, b, time.Time{})
		if b.win != nil && s.windowCond != nil {
			overflow = e.windowed(s, b)
			break
		}
		e.q.Queue = b.queue
		overflow = runBool(&e.vm, s.condition, e.qEnv)
		e.q.Queue = nil
	case "counter":
		b.last = ns
	}
	if !overflow {
		b.rank = s.rank(b)
		heap.Fix(&sb.order, b.idx)
		return event.Event{}, false
	}
	e.dropBucket(owner, b, &e.stats.scenarios[owner].overflowed)
	return e.overflow(s, owner, b, now)
}

// makeRoom frees a place for a new bucket in a scenario at its cap: its
// dead buckets go first; if none was, the least full one is evicted.
func (e *Engine) makeRoom(scenario int, now int64) {
	sb := e.state[scenario]
	e.gcScenario(scenario, now)
	if len(sb.live) < e.limit || len(sb.order) == 0 {
		return
	}
	c := &e.stats.scenarios[scenario]
	e.dropBucket(scenario, sb.order[0], &c.evicted)
	if t := time.Now(); t.Sub(sb.warned) >= time.Minute {
		sb.warned = t
		e.log.WithFields(log.Fields{"scenario": e.scenarios[scenario].cfg.Name, "limit": e.limit, "evicted": c.evicted.Load()}).
			Warn("scenario at its cap on live buckets: evicting the least full ones to make room for new sources (crowdsec_service.max_buckets_per_scenario)")
	}
}

// queued is the copy of evt buckets keep, without the bulky fields m says
// nothing reading the queue looks at. Alerts read Meta, Enriched, Time and
// MarshaledTime; conditions, overflow filters, scope expressions and
// contexts may read more, and fieldsIn says what. The copy shares evt's
// maps (nothing changes a poured event, see Pour), but for a small Meta
// (see compact): copying them all was most of the cost of pouring.
func queued(evt *event.Event, m fieldMask, now time.Time) *event.Event {
	c := *evt
	c.Time = now
	c.Meta = compact(evt.Meta)
	if m&readsParsed == 0 {
		c.Parsed = nil
	}
	if m&readsLine == 0 {
		c.Line = event.Line{}
	}
	if m&readsUnmarshaled == 0 {
		c.Unmarshaled = nil
	}
	return &c
}

// smallMap is how many entries a Go map holds in its single group, at the
// smallest size a map has.
const smallMap = 8

// compact returns a copy of a Meta that fits one group, else Meta itself.
// A bucket may keep the event for many minutes, and event.New sizes Meta
// for 12 entries, two groups, where an sshd line has 8: the copy halves
// what a flood of one-line sources holds (internal/floodbench). A larger
// Meta (nginx lines have 11) would copy to about its size. Enriched is
// shared: New sizes it for one group.
func compact(m map[string]string) map[string]string {
	if m == nil || len(m) > smallMap {
		return m
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
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
	n := len(b.queue)
	e.q.Queue = b.queue[n-1:]
	var bits uint64
	failed := false
	for i, w := range s.window {
		var out any
		var err error
		if w.direct != nil {
			out, err = w.direct(b.queue[n-1], nil)
		} else {
			out, err = e.vm.Run(w.match, e.qEnv)
			if res, ok := out.([]any); ok && len(res) == 1 {
				out = res[0]
			} else {
				out = nil
			}
		}
		m, ok := out.(bool)
		if err != nil || !ok {
			failed = true
			break
		}
		if m {
			bits |= 1 << i
		}
	}
	e.q.Queue = nil
	if failed {
		b.win = nil // this bucket keeps every event from now on
		return
	}
	w := b.win
	for i := range s.window {
		if bits&(1<<i) != 0 {
			w.counts[i]++
		}
	}
	w.matched = append(w.matched, bits)
	drop := 0
	var left [maxWindowPreds]int
	copy(left[:], w.counts)
	for ; drop < n-1; drop++ {
		old := w.matched[drop]
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

// windowed runs the windowed condition of a trimmed bucket (see
// compileWindow): each list holds, in queue order, the queued events whose
// bits say they match its P, which is what filter(queue.Queue, P) gives.
func (e *Engine) windowed(s *Scenario, b *bucket) bool {
	for len(e.winLists) < len(s.window) {
		e.winLists = append(e.winLists, nil)
	}
	lists := e.winLists[:len(s.window)]
	for i := range lists {
		l := lists[i][:0]
		for j, bits := range b.win.matched {
			if bits&(1<<i) != 0 {
				l = append(l, b.queue[j])
			}
		}
		lists[i] = l
	}
	e.qEnv[windowVar] = lists
	overflow := runBool(&e.vm, s.windowCond, e.qEnv)
	e.qEnv[windowVar] = nil
	for i := range lists {
		// the queued events are the bucket's to free
		clear(lists[i])
	}
	return overflow
}

func (e *Engine) setView(s *Scenario, key string, b *bucket, ovflw time.Time) {
	e.view = bucketView{Name: s.cfg.Name, Mapkey: key, Capacity: s.cfg.Capacity, Leakspeed: s.leak, Duration: s.duration,
		Total_count: b.poured, First_ts: time.Unix(0, b.first).UTC(), Last_ts: time.Unix(0, b.last).UTC(), Ovflw_ts: ovflw}
}

// gc drops dead buckets and ended blackholes. Each scenario's buckets are
// ordered by when they die, so it costs only what it frees.
func (e *Engine) gc(now time.Time) {
	e.lastGC = now
	ns := now.UnixNano()
	for i := range e.state {
		e.gcScenario(i, ns)
	}
}

func (e *Engine) gcScenario(scenario int, now int64) {
	s, sb := e.scenarios[scenario], e.state[scenario]
	c := &e.stats.scenarios[scenario]
	for len(sb.order) > 0 && dead(s, sb.order[0], now) {
		e.dropBucket(scenario, sb.order[0], &c.underflowed)
	}
	n := 0
	for _, h := range sb.holeOrder {
		if h.until > now {
			break
		}
		if until, ok := sb.blackholes[h.key]; ok && until == h.until {
			delete(sb.blackholes, h.key)
		}
		n++
	}
	sb.popHoles(n)
}

// popHoles forgets the n oldest entries of holeOrder, reusing its array
// once half of it is spent.
func (sb *scenarioBuckets) popHoles(n int) {
	if n == 0 {
		return
	}
	clear(sb.holeOrder[:n])
	sb.holeOrder = sb.holeOrder[n:]
	if len(sb.holeOrder) == 0 {
		sb.holeOrder = nil
	}
}

// blackholed reports whether key's overflow at now falls inside a
// blackhole, which then swallows it: the key's blackhole started at an
// earlier overflow kept and ends blackhole later (exclusive), as upstream.
// An ended one is forgotten here as gc would.
func (e *Engine) blackholed(scenario int, key string, now int64) bool {
	sb := e.state[scenario]
	until, ok := sb.blackholes[key]
	if !ok {
		return false
	}
	if now < until {
		return true
	}
	delete(sb.blackholes, key)
	return false
}

// addBlackhole mutes key's overflows until then; at the cap, the
// blackholes ending first make room (a source let out early may raise one
// more alert, which hides nothing).
func (e *Engine) addBlackhole(scenario int, key string, until int64) {
	sb := e.state[scenario]
	if e.limit > 0 && len(sb.blackholes) >= e.limit {
		n := 0
		for _, h := range sb.holeOrder {
			if len(sb.blackholes) < e.limit {
				break
			}
			if u, ok := sb.blackholes[h.key]; ok && u == h.until {
				delete(sb.blackholes, h.key)
			}
			n++
		}
		sb.popHoles(n)
	}
	sb.blackholes[key] = until
	sb.holeOrder = append(sb.holeOrder, hole{key, until})
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
		if e.state[c.bk.scenario].live[c.bk.key] != c.b {
			continue // cancelled or evicted meanwhile
		}
		e.dropBucket(c.bk.scenario, c.b, &e.stats.scenarios[c.bk.scenario].overflowed)
		if ovf, ok := e.overflow(e.scenarios[c.bk.scenario], c.bk.scenario, c.b, c.at); ok {
			out = append(out, ovf)
		}
	}
	return out
}
