package leakybucket

import "container/heap"

// Adopt moves into e, a fresh engine from a reload, the state old holds
// for the scenarios both have with the same Identity: live buckets,
// blackholes, pending counters and the bucket counters. Buckets of
// scenarios that changed or went away are dropped; new scenarios start
// empty. It returns how many scenarios were kept and how many buckets
// moved. old must not be used afterwards; both engines must be idle
// (the caller pours from one goroutine and calls Adopt from it).
func (e *Engine) Adopt(old *Engine) (kept, buckets int) {
	if old == nil {
		return 0, 0
	}
	byID := make(map[string]int, len(e.scenarios))
	for i, s := range e.scenarios {
		if id := s.identity; id != "" {
			if _, dup := byID[id]; !dup {
				byID[id] = i
			}
		}
	}
	remap := make([]int, len(old.scenarios))
	for i, s := range old.scenarios {
		remap[i] = -1
		if j, ok := byID[s.identity]; ok && s.identity != "" {
			remap[i] = j
			kept++
			oc, nc := &old.stats.scenarios[i], &e.stats.scenarios[j]
			nc.created.Store(oc.created.Load())
			nc.overflowed.Store(oc.overflowed.Load())
			nc.underflowed.Store(oc.underflowed.Load())
			nc.canceled.Store(oc.canceled.Load())
		}
	}
	// A scenario's state (live buckets, their expiry heap, blackholes,
	// cap warnings) moves whole: ranks depend only on the scenario's
	// definition, which is the same.
	for i, sb := range old.state {
		j := remap[i]
		if j < 0 {
			continue
		}
		e.state[j] = sb
		e.stats.scenarios[j].alive.Add(int64(len(sb.live)))
		e.stats.scenarios[j].evicted.Store(old.stats.scenarios[i].evicted.Load())
		buckets += len(sb.live)
	}
	for _, c := range old.counters {
		j := remap[c.bk.scenario]
		if j < 0 || old.state[c.bk.scenario].live[c.bk.key] != c.b {
			continue
		}
		// the old sequence numbers keep the order of counters due together
		heap.Push(&e.counters, counterDue{at: c.at, seq: c.seq, bk: bucketKey{j, c.bk.key}, b: c.b})
	}
	e.counterSeq = max(e.counterSeq, old.counterSeq)
	e.lastGC, e.poured = old.lastGC, old.poured
	for i := range old.state {
		old.state[i] = newScenarioBuckets()
	}
	old.counters = nil
	return kept, buckets
}
