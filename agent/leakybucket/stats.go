package leakybucket

import (
	"container/heap"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ips/rampart/agent/event"
)

// The counters are written only by the pouring goroutine; they are atomics
// so that a metrics scrape may read them meanwhile without a race or a
// lock on the hot path.

// scenarioCounters counts one scenario's buckets in one engine.
type scenarioCounters struct {
	created, overflowed, underflowed, canceled, evicted, alive atomic.Int64
	// poured is indexed by the engine's source index (pour goroutine only).
	poured []*atomic.Int64
}

// pourKey is what upstream labels cs_bucket_poured_total with besides the
// scenario: the line's source and acquisition module.
type pourKey struct{ src, typ string }

type pouredCounter struct {
	scenario int
	key      pourKey
	n        *atomic.Int64
}

// engineStats are an engine's counters.
type engineStats struct {
	scenarios []scenarioCounters
	// srcs indexes the (source, type) pairs seen; last caches the latest.
	srcs    map[pourKey]int
	last    pourKey
	lastIdx int
	// mu guards poured and bySrc's length, the lists a scrape reads.
	mu     sync.Mutex
	poured []pouredCounter
	bySrc  []*sourcePour // by source index
	delay  *histogram
}

// DelayBuckets returns the upper bounds, in seconds, of the alert delay
// histogram (see AlertDelay): from a millisecond, for a live agent, to
// half a minute, for one that fell behind.
func DelayBuckets() []float64 { return []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30} }

// PourTimeBuckets returns the upper bounds, in seconds, of the pour-time
// histogram (cs_bucket_pour_seconds). Upstream's start at a millisecond,
// where every Rampart pour would land in the first.
func PourTimeBuckets() []float64 {
	return []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 0.001, 0.0025, 0.005, 0.01}
}

// histogram counts durations per bound (the last count is above every
// bound) with atomics: written by the pouring goroutine, read by scrapes.
type histogram struct {
	bounds []float64
	counts []atomic.Int64
	sumNs  atomic.Int64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]atomic.Int64, len(bounds)+1)}
}

func (h *histogram) observe(d time.Duration) {
	i := sort.SearchFloat64s(h.bounds, d.Seconds())
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
}

// HistogramStat is a histogram read at one moment: Counts[i] durations
// were at most Bounds[i] (not cumulative; the last is above every bound).
type HistogramStat struct {
	Bounds []float64
	Counts []uint64
	Sum    float64 // seconds
}

func (h *histogram) stat() HistogramStat {
	st := HistogramStat{Bounds: h.bounds, Counts: make([]uint64, len(h.counts)), Sum: time.Duration(h.sumNs.Load()).Seconds()}
	for i := range h.counts {
		st.Counts[i] = uint64(h.counts[i].Load())
	}
	return st
}

// sourcePour is what the engine knows of one source's events: how long
// pouring them took and how many reached a bucket (OK) or none (KO).
type sourcePour struct {
	key    pourKey
	time   *histogram
	ok, ko atomic.Int64
}

func newEngineStats(n int) *engineStats {
	return &engineStats{scenarios: make([]scenarioCounters, n), srcs: map[pourKey]int{}, lastIdx: -1,
		delay: newHistogram(DelayBuckets())}
}

// srcIndex returns the index of evt's (source, type), registering it.
func (st *engineStats) srcIndex(evt *event.Event) int {
	i := st.lastIdx
	if i < 0 || st.last.src != evt.Line.Src || st.last.typ != evt.Line.Module {
		k := pourKey{evt.Line.Src, evt.Line.Module}
		var ok bool
		if i, ok = st.srcs[k]; !ok {
			i = len(st.srcs)
			st.srcs[k] = i
			st.mu.Lock()
			st.bySrc = append(st.bySrc, &sourcePour{key: k, time: newHistogram(PourTimeBuckets())})
			st.mu.Unlock()
		}
		st.last, st.lastIdx = k, i
	}
	return i
}

// countPourTime records how long pouring evt took and whether any
// scenario took it.
func (e *Engine) countPourTime(evt *event.Event, poured bool, d time.Duration) {
	sp := e.stats.bySrc[e.stats.srcIndex(evt)]
	sp.time.observe(d)
	if poured {
		sp.ok.Add(1)
	} else {
		sp.ko.Add(1)
	}
}

// countPour counts evt poured into a scenario's bucket.
func (e *Engine) countPour(scenario int, evt *event.Event) {
	if evt.Line.Warmup {
		return // counted when first read, before the stop
	}
	st := e.stats
	i := st.srcIndex(evt)
	sc := &st.scenarios[scenario]
	for len(sc.poured) <= i {
		sc.poured = append(sc.poured, nil)
	}
	c := sc.poured[i]
	if c == nil {
		c = new(atomic.Int64)
		sc.poured[i] = c
		st.mu.Lock()
		st.poured = append(st.poured, pouredCounter{scenario: scenario, key: st.last, n: c})
		st.mu.Unlock()
	}
	c.Add(1)
}

// PouredStat counts the events of one source poured into a scenario.
type PouredStat struct {
	Source, Type string
	Poured       int64
}

// ScenarioStat is one scenario's bucket counters in an engine: buckets
// Created, ended by Overflowed, Underflowed (leaked empty or expired),
// Canceled (cancel_on) or Evicted (to stay within the cap, see SetLimit),
// those Alive now, and the events Poured by source.
type ScenarioStat struct {
	Name                                                       string
	Created, Overflowed, Underflowed, Canceled, Evicted, Alive int64
	Poured                                                     []PouredStat
}

// SourcePourStat is one source's pour figures: the time each event took
// to pour and how many reached a bucket (OK) or none (KO).
type SourcePourStat struct {
	Source, Type string
	OK, KO       int64
	Time         HistogramStat
}

// SourcePourStats returns them per source. Safe to call while events are
// poured.
func (e *Engine) SourcePourStats() []SourcePourStat {
	e.stats.mu.Lock()
	srcs := append([]*sourcePour(nil), e.stats.bySrc...)
	e.stats.mu.Unlock()
	out := make([]SourcePourStat, len(srcs))
	for i, sp := range srcs {
		out[i] = SourcePourStat{Source: sp.key.src, Type: sp.key.typ, OK: sp.ok.Load(), KO: sp.ko.Load(), Time: sp.time.stat()}
	}
	return out
}

// ScenarioStats returns every scenario's counters, in scenario order. Safe
// to call while events are poured.
func (e *Engine) ScenarioStats() []ScenarioStat {
	out := make([]ScenarioStat, len(e.scenarios))
	for i, s := range e.scenarios {
		c := &e.stats.scenarios[i]
		out[i] = ScenarioStat{Name: s.cfg.Name, Created: c.created.Load(), Overflowed: c.overflowed.Load(),
			Underflowed: c.underflowed.Load(), Canceled: c.canceled.Load(), Evicted: c.evicted.Load(), Alive: c.alive.Load()}
	}
	e.stats.mu.Lock()
	for _, p := range e.stats.poured {
		out[p.scenario].Poured = append(out[p.scenario].Poured, PouredStat{Source: p.key.src, Type: p.key.typ, Poured: p.n.Load()})
	}
	e.stats.mu.Unlock()
	return out
}

// AlertDelay returns the alert delay histogram. An overflow's delay runs
// from its last event's Line.Time (when the line was read) to the moment
// it leaves the engine; overflows without a line time are not counted.
func (e *Engine) AlertDelay() HistogramStat { return e.stats.delay.stat() }

// addBucket and dropBucket keep the alive count in step with the
// scenarios' live buckets; every insertion and removal goes through them.
func (e *Engine) addBucket(scenario int, b *bucket) {
	sb := e.state[scenario]
	sb.live[b.key] = b
	heap.Push(&sb.order, b)
	c := &e.stats.scenarios[scenario]
	c.created.Add(1)
	c.alive.Add(1)
}

// dropBucket removes b, if alive, counting why: into one of the
// scenario's overflowed/underflowed/canceled/evicted counters.
func (e *Engine) dropBucket(scenario int, b *bucket, why *atomic.Int64) {
	sb := e.state[scenario]
	if sb.live[b.key] != b {
		return
	}
	delete(sb.live, b.key)
	heap.Remove(&sb.order, b.idx)
	e.stats.scenarios[scenario].alive.Add(-1)
	why.Add(1)
}
