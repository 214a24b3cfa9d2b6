package nftables

import (
	"cmp"
	"math"
	"slices"
	"sort"
)

// The kernel's interval sets refuse overlapping intervals (EEXIST), even
// without auto-merge, yet range bans overlap: a /16 and a /24 inside it,
// each with its own timeout. Hosts never reach the interval set (they go
// to the host set, a hash), so the model below only deals with ranges. It
// keeps what the caller asked for (the logical ranges) and derives what the
// kernel must hold (disjoint segments), so that Apply only sends the
// difference.
//
// Every maximal banned range (a root) forms a cluster with the ranges
// inside it; the cluster is cut into segments at the boundaries of its
// members, each segment timing out with the longest-lived member covering
// it, and neighbouring segments with the same expiry merged. When a member
// comes or goes, only that cluster is recomputed and only its changed
// segments are deleted and added, in one transaction, so addresses that
// stay banned never see a gap.

// rng is an inclusive address range.
type rng[A addr[A]] struct{ first, last A }

func (r rng[A]) contains(o rng[A]) bool {
	return r.first.cmp(o.first) <= 0 && o.last.cmp(r.last) <= 0
}

// seg is an interval the kernel holds, expiring at exp.
type seg[A addr[A]] struct {
	first, last A
	exp         uint32 // seconds since the model's epoch
}

// op is one kernel change to an interval or a host (first == last): an add
// with a timeout of ms milliseconds, or a delete when ms is 0.
type op[A addr[A]] struct {
	first, last A
	ms          uint64
}

type cluster[A addr[A]] struct {
	rng[A]                     // the root range
	ranges map[rng[A]]struct{} // member ranges, the root included
	segs   []seg[A]            // what the kernel holds for the cluster, by address
}

func newCluster[A addr[A]](r rng[A]) *cluster[A] {
	return &cluster[A]{rng: r, ranges: map[rng[A]]struct{}{r: {}}}
}

// model is the logical content of one family's interval set.
type model[A addr[A]] struct {
	ranges map[rng[A]]uint32 // range (two addresses or more) -> expiry
	roots  []*cluster[A]     // disjoint, by first address
}

func newModel[A addr[A]]() *model[A] {
	return &model[A]{ranges: map[rng[A]]uint32{}}
}

// size is the number of logical ranges.
func (m *model[A]) size() int { return len(m.ranges) }

// rootOf returns the index of the root holding a, or -1.
func (m *model[A]) rootOf(a A) int {
	i := sort.Search(len(m.roots), func(i int) bool { return m.roots[i].first.cmp(a) > 0 }) - 1
	if i >= 0 && a.cmp(m.roots[i].last) <= 0 {
		return i
	}
	return -1
}

func (m *model[A]) insertRoot(c *cluster[A]) {
	i := sort.Search(len(m.roots), func(i int) bool { return m.roots[i].first.cmp(c.first) > 0 })
	m.roots = slices.Insert(m.roots, i, c)
}

func (m *model[A]) removeRoot(c *cluster[A]) {
	if i := m.rootOf(c.first); i >= 0 && m.roots[i] == c {
		m.roots = slices.Delete(m.roots, i, i+1)
	}
}

// sweep forgets clusters whose every range has expired; the kernel has
// already dropped their segments.
func (m *model[A]) sweep(now uint32) {
	m.roots = slices.DeleteFunc(m.roots, func(c *cluster[A]) bool {
		for r := range c.ranges {
			if m.ranges[r] > now {
				return false
			}
		}
		for r := range c.ranges {
			delete(m.ranges, r)
		}
		return true
	})
}

// plan turns changes of logical ranges into kernel operations on the
// interval set. They must share one transaction.
type plan[A addr[A]] struct {
	m     *model[A]
	now   uint32 // seconds since the epoch
	nowMs uint64 // milliseconds since the epoch

	gdels []op[A]
	gadds []op[A]
	dirty map[*cluster[A]]bool
}

func newPlan[A addr[A]](m *model[A], nowMs uint64) *plan[A] {
	return &plan[A]{m: m, now: uint32(nowMs / 1000), nowMs: nowMs, dirty: map[*cluster[A]]bool{}}
}

// expiry converts a timeout in milliseconds to an expiry in seconds,
// rounded up.
func expiry(nowMs, ms uint64) uint32 {
	e := (nowMs + ms + 999) / 1000
	if e > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(e)
}

func (p *plan[A]) expiry(ms uint64) uint32 { return expiry(p.nowMs, ms) }

// remaining is the timeout in milliseconds left until exp, 0 if none.
func (p *plan[A]) remaining(exp uint32) uint64 {
	if end := uint64(exp) * 1000; end > p.nowMs {
		return end - p.nowMs
	}
	return 0
}

func (p *plan[A]) delRange(r rng[A]) {
	if _, ok := p.m.ranges[r]; !ok {
		return // never added, or already gone: nothing of ours to remove
	}
	delete(p.m.ranges, r)
	if i := p.m.rootOf(r.first); i >= 0 {
		p.dirty[p.m.roots[i]] = true
	}
}

// addRange records r.
func (p *plan[A]) addRange(r rng[A], ms uint64) {
	m := p.m
	m.ranges[r] = p.expiry(ms)
	if i := m.rootOf(r.first); i >= 0 && m.roots[i].contains(r) {
		c := m.roots[i]
		c.ranges[r] = struct{}{}
		p.dirty[c] = true
		return
	}
	// A new root. Prefixes nest or are disjoint, so the roots that start
	// inside r end inside it: absorb them.
	c := newCluster(r)
	lo := sort.Search(len(m.roots), func(i int) bool { return m.roots[i].first.cmp(r.first) >= 0 })
	hi := sort.Search(len(m.roots), func(i int) bool { return m.roots[i].first.cmp(r.last) > 0 })
	for _, old := range m.roots[lo:hi] {
		for or := range old.ranges {
			c.ranges[or] = struct{}{}
		}
		c.segs = append(c.segs, old.segs...)
		delete(p.dirty, old)
	}
	m.roots = slices.Replace(m.roots, lo, hi, c)
	p.dirty[c] = true
	sortSegs(c.segs)
}

// recompute derives the segments of every changed cluster and plans the
// difference with what the kernel holds.
func (p *plan[A]) recompute() {
	var todo []*cluster[A]
	for _, c := range p.m.roots {
		if p.dirty[c] {
			todo = append(todo, c)
		}
	}
	clear(p.dirty)
	for _, c := range todo {
		p.prune(c)
		if _, ok := c.ranges[c.rng]; !ok {
			p.dissolve(c)
			continue
		}
		segs := p.segmentize(c)
		p.diff(c.segs, segs)
		c.segs = segs
	}
}

// prune drops members that were deleted or have expired.
func (p *plan[A]) prune(c *cluster[A]) {
	m := p.m
	for r := range c.ranges {
		if exp, ok := m.ranges[r]; !ok || exp <= p.now {
			delete(c.ranges, r)
			delete(m.ranges, r)
		}
	}
}

// dissolve replaces a cluster whose root is gone by the clusters of the
// remaining maximal ranges.
func (p *plan[A]) dissolve(c *cluster[A]) {
	m := p.m
	m.removeRoot(c)
	rs := make([]rng[A], 0, len(c.ranges))
	for r := range c.ranges {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b rng[A]) int {
		if d := a.first.cmp(b.first); d != 0 {
			return d
		}
		return b.last.cmp(a.last)
	})
	var subs []*cluster[A]
	for _, r := range rs {
		if n := len(subs); n > 0 && subs[n-1].contains(r) {
			subs[n-1].ranges[r] = struct{}{}
			continue
		}
		subs = append(subs, newCluster(r))
	}
	var segs []seg[A]
	for _, s := range subs {
		s.segs = p.segmentize(s)
		segs = append(segs, s.segs...)
		m.insertRoot(s)
	}
	p.diff(c.segs, segs)
}

// segmentize cuts a cluster into disjoint segments; each expires with the
// longest-lived member covering it.
func (p *plan[A]) segmentize(c *cluster[A]) []seg[A] {
	m := p.m
	items := make([]seg[A], 0, len(c.ranges))
	for r := range c.ranges {
		items = append(items, seg[A]{r.first, r.last, m.ranges[r]})
	}
	// Parents before children: by first address, then widest first.
	slices.SortFunc(items, func(a, b seg[A]) int {
		if d := a.first.cmp(b.first); d != 0 {
			return d
		}
		return b.last.cmp(a.last)
	})
	var out []seg[A]
	emit := func(first, last A, exp uint32) {
		if n := len(out); n > 0 && out[n-1].exp == exp && !out[n-1].last.isMax() && out[n-1].last.next() == first {
			out[n-1].last = last
			return
		}
		out = append(out, seg[A]{first, last, exp})
	}
	type frame struct {
		last A
		exp  uint32
	}
	var stack []frame
	var cur A // first address not yet emitted
	curOK := false
	pop := func() {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if curOK && cur.cmp(f.last) <= 0 {
			emit(cur, f.last, f.exp)
		}
		cur, curOK = f.last.next(), !f.last.isMax()
	}
	for _, it := range items {
		for len(stack) > 0 && stack[len(stack)-1].last.cmp(it.first) < 0 {
			pop()
		}
		exp := it.exp
		if n := len(stack); n > 0 {
			top := stack[n-1]
			exp = max(exp, top.exp)
			if curOK && cur.cmp(it.first) < 0 {
				emit(cur, it.first.prev(), top.exp)
			}
		}
		stack = append(stack, frame{it.last, exp})
		cur, curOK = it.first, true
	}
	for len(stack) > 0 {
		pop()
	}
	return out
}

// diff plans the kernel changes from old to new segments, both sorted.
func (p *plan[A]) diff(old, new []seg[A]) {
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		switch {
		case j == len(new) || (i < len(old) && old[i].first.cmp(new[j].first) < 0):
			p.gdels = append(p.gdels, op[A]{first: old[i].first, last: old[i].last})
			i++
		case i == len(old) || new[j].first.cmp(old[i].first) < 0:
			p.groupAdd(new[j])
			j++
		default:
			if old[i].last != new[j].last {
				p.gdels = append(p.gdels, op[A]{first: old[i].first, last: old[i].last})
				p.groupAdd(new[j])
			} else if old[i].exp != new[j].exp {
				p.groupAdd(new[j]) // same interval: the add refreshes its timeout
			}
			i++
			j++
		}
	}
}

func (p *plan[A]) groupAdd(s seg[A]) {
	if ms := p.remaining(s.exp); ms > 0 {
		p.gadds = append(p.gadds, op[A]{first: s.first, last: s.last, ms: ms})
	}
}

func sortSegs[A addr[A]](s []seg[A]) {
	slices.SortFunc(s, func(a, b seg[A]) int { return a.first.cmp(b.first) })
}

// sortOps orders operations by address, keeping the order of equal ones
// (the later add of a duplicate wins in the kernel as in the model).
// Inserting in address order is markedly cheaper for the kernel's tree.
func sortOps[A addr[A]](ops []op[A]) {
	if o4, ok := any(ops).([]op[ip4]); ok {
		radixSort4(o4)
		return
	}
	slices.SortStableFunc(ops, func(a, b op[A]) int { return a.first.cmp(b.first) })
}

// radixSort4 is a stable LSD radix sort on the first address, 16 bits per
// pass.
func radixSort4(ops []op[ip4]) {
	if len(ops) < 256 {
		slices.SortStableFunc(ops, func(a, b op[ip4]) int { return cmp.Compare(a.first, b.first) })
		return
	}
	tmp := make([]op[ip4], len(ops))
	src, dst := ops, tmp
	var count [1 << 16]int
	for shift := uint(0); shift < 32; shift += 16 {
		clear(count[:])
		for _, o := range src {
			count[(uint32(o.first)>>shift)&0xffff]++
		}
		sum := 0
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, o := range src {
			k := (uint32(o.first) >> shift) & 0xffff
			dst[count[k]] = o
			count[k]++
		}
		src, dst = dst, src
	}
	// Two passes: the result is back in ops.
}
