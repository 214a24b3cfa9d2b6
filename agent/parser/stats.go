package parser

import (
	"runtime"
	"sort"
	"sync/atomic"
	"time"
)

// Parse runs on many goroutines at ~100k lines/s: shared counters would
// bounce one cache line between cores on every node. Counts therefore go
// to shards, one per scratch runEnv (sync.Pool keeps those per P), as
// plain atomics; the pipeline only sums the shards when asked.

// Per-node counter layout within a lineStats.nodes slot.
const (
	cHits = iota
	cOK
	cWLHits
	cWLOK
	cDropped // lines dropped as possibly forged (inject.go)
	nodeCounters
)

// srcKey is what upstream labels parser metrics with: the line's source
// (file path...) and its acquisition module (type).
type srcKey struct{ src, typ string }

// ParseTimeBuckets are the upper bounds of the parse-time histogram
// (cs_parsing_time_seconds). Upstream's start at 0.5 ms, where every line
// Rampart parses would land in the first; these resolve microseconds.
func ParseTimeBuckets() []float64 {
	return []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 0.001, 0.0025, 0.005, 0.01}
}

// nParseBuckets is len(ParseTimeBuckets()).
const nParseBuckets = 11

// parseBucket is the index of the first ParseTimeBuckets bound ns fits
// under (nParseBuckets: beyond the last), without a slice on the hot path.
func parseBucket(ns int64) int {
	switch {
	case ns <= 5e3:
		return 0
	case ns <= 10e3:
		return 1
	case ns <= 25e3:
		return 2
	case ns <= 50e3:
		return 3
	case ns <= 100e3:
		return 4
	case ns <= 250e3:
		return 5
	case ns <= 500e3:
		return 6
	case ns <= 1e6:
		return 7
	case ns <= 2.5e6:
		return 8
	case ns <= 5e6:
		return 9
	case ns <= 10e6:
		return 10
	}
	return nParseBuckets
}

// lineStats counts one source's lines and its nodes' hits in one shard.
type lineStats struct {
	hits, ok atomic.Int64
	nodes    []atomic.Int64 // nodeCounters per node slot
	// time to parse a line: per-bucket counts (the last is +Inf) and sum
	dur    [nParseBuckets + 1]atomic.Int64
	durSum atomic.Int64
}

// observe records one line's parse time.
func (l *lineStats) observe(d time.Duration) {
	l.dur[parseBucket(int64(d))].Add(1)
	l.durSum.Add(int64(d))
}

// statShard is one runEnv's counters. Only the goroutine holding the
// runEnv writes to it; its map changes under Pipeline.statMu so Stats may
// read it meanwhile.
type statShard struct {
	slots int // node slots the entries have room for
	m     map[srcKey]*lineStats
}

// shardRef is what a runEnv's cleanup gets back: the shard, which outlives
// the runEnv (sync.Pool drops those at GC) so that no count is lost, and
// is handed to the next runEnv.
type shardRef struct{ s *statShard }

type slotInfo struct {
	name, stage, reason string
}

// takeShard returns a free shard sized for the current nodes, or a new one.
func (p *Pipeline) takeShard() *statShard {
	p.statMu.Lock()
	defer p.statMu.Unlock()
	for i := len(p.freeShards) - 1; i >= 0; i-- {
		if s := p.freeShards[i]; s.slots == len(p.slots) {
			p.freeShards = append(p.freeShards[:i], p.freeShards[i+1:]...)
			return s
		}
	}
	s := &statShard{slots: len(p.slots), m: map[srcKey]*lineStats{}}
	p.shards = append(p.shards, s)
	return s
}

// newRunEnv makes a scratch env with its own shard, given back for reuse
// once the env is collected.
func (p *Pipeline) newRunEnv() *runEnv {
	env := &runEnv{env: map[string]any{}, shard: &shardRef{s: p.takeShard()}, hits: make([]grokHit, 0, 4)}
	runtime.AddCleanup(env, func(r *shardRef) {
		p.statMu.Lock()
		p.freeShards = append(p.freeShards, r.s)
		p.statMu.Unlock()
	}, env.shard)
	return env
}

// lineStats returns the counters for src and typ in env's shard, caching
// the last pair: a worker's consecutive lines nearly always share it.
func (r *runEnv) lineStats(p *Pipeline, src, typ string) *lineStats {
	if r.ent != nil && r.entKey.src == src && r.entKey.typ == typ {
		return r.ent
	}
	if r.shard.s.slots != len(p.slots) {
		// Nodes were loaded since: the old shard keeps its counts.
		r.shard.s = p.takeShard()
	}
	k := srcKey{src, typ}
	s := r.shard.s
	e := s.m[k]
	if e == nil {
		e = &lineStats{nodes: make([]atomic.Int64, nodeCounters*s.slots)}
		p.statMu.Lock()
		s.m[k] = e
		p.statMu.Unlock()
	}
	r.ent, r.entKey = e, k
	return e
}

// count adds one to counter c of node n for the line being parsed.
func (r *runEnv) count(n *node, c int) {
	if r.ent != nil {
		r.ent.nodes[n.slot*nodeCounters+c].Add(1)
	}
}

// LineStat counts the lines of one source (Type is the acquisition
// module, as upstream's cs_parser_hits_total): those parsed (OK) and not,
// and how long parsing took: Durations per ParseTimeBuckets bound (not
// cumulative; one more for beyond the last), DurationSum in seconds.
type LineStat struct {
	Source, Type string
	Hits, OK     int64
	Durations    [nParseBuckets + 1]uint64
	DurationSum  float64
}

// NodeStat counts one parser node's runs on one source's lines: Hits once
// its filter passed, OK when it succeeded; WLHits when its whitelist was
// checked and WLOK when that whitelisted the event; Dropped when the line
// was dropped because a client-written field may have forged the source
// address the node set.
type NodeStat struct {
	Source, Type, Name, Stage, Reason string
	Hits, OK, WLHits, WLOK, Dropped   int64
}

// Stats sums the counters of every shard, sorted by source, type (and
// node name, stage). Nodes never hit are left out, as upstream's vectors
// only hold label sets once counted. Safe to call while Parse runs.
func (p *Pipeline) Stats() ([]LineStat, []NodeStat) {
	// By name and stage, not slot: two files may name a node alike and
	// a metric must not repeat a label set.
	type nodeKey struct {
		srcKey
		name, stage string
	}
	lines := map[srcKey]*LineStat{}
	nodes := map[nodeKey]*NodeStat{}
	p.statMu.Lock()
	for _, s := range p.shards {
		for k, e := range s.m {
			l := lines[k]
			if l == nil {
				l = &LineStat{Source: k.src, Type: k.typ}
				lines[k] = l
			}
			// OK before Hits: a line counted OK is already counted as a
			// hit, so Hits-OK never goes negative.
			l.OK += e.ok.Load()
			l.Hits += e.hits.Load()
			for i := range e.dur {
				l.Durations[i] += uint64(e.dur[i].Load())
			}
			l.DurationSum += time.Duration(e.durSum.Load()).Seconds()
			for slot := 0; slot < s.slots; slot++ {
				c := e.nodes[slot*nodeCounters : (slot+1)*nodeCounters]
				ok, wlok, dropped := c[cOK].Load(), c[cWLOK].Load(), c[cDropped].Load()
				hits, wl := c[cHits].Load(), c[cWLHits].Load()
				if hits == 0 && wl == 0 {
					continue
				}
				info := p.slots[slot]
				nk := nodeKey{k, info.name, info.stage}
				n := nodes[nk]
				if n == nil {
					n = &NodeStat{Source: k.src, Type: k.typ, Name: info.name, Stage: info.stage, Reason: info.reason}
					nodes[nk] = n
				}
				n.Hits, n.OK, n.WLHits, n.WLOK = n.Hits+hits, n.OK+ok, n.WLHits+wl, n.WLOK+wlok
				n.Dropped += dropped
			}
		}
	}
	p.statMu.Unlock()
	outL := make([]LineStat, 0, len(lines))
	for _, l := range lines {
		outL = append(outL, *l)
	}
	sort.Slice(outL, func(i, j int) bool {
		if outL[i].Source != outL[j].Source {
			return outL[i].Source < outL[j].Source
		}
		return outL[i].Type < outL[j].Type
	})
	outN := make([]NodeStat, 0, len(nodes))
	for _, n := range nodes {
		outN = append(outN, *n)
	}
	sort.Slice(outN, func(i, j int) bool {
		a, b := outN[i], outN[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.Stage != b.Stage {
			return a.Stage < b.Stage
		}
		return a.Name < b.Name
	})
	return outL, outN
}
