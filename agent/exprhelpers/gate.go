package exprhelpers

import (
	"hash/maphash"
	"slices"
	"sync/atomic"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/rampart-ips/rampart/agent/event"
)

// A requirement of a fused boolean subtree: when it is true, the string
// fn (of canonical key, see fused) contains one of lits. The CVE filters
// of the hub are mostly Upper(evt.Meta.http_path) contains '/SOME/PATH'
// behind shared guards: a Gate tests the literals of all of them in one
// scan of the path, and runs only the filters whose literal is there.
type requirement struct {
	key  string
	sv   strVal
	lits []string // none empty
	// exact: from == or in, as the guards the filters open with
	// (evt.Meta.log_type in [...]), which nearly every event passes.
	exact bool
	// For RegexpInFile(x, file): the file's patterns, each requiring
	// one of the literals (regexpSet); loading the file again makes them
	// stale.
	file string
	re   *regexpSet
}

// reqsOf returns requirements of the boolean subtree n, all of which hold
// when it is true (none when it knows of none). It follows boolean: n's
// fusable children may already be fused calls, which carry theirs.
func (f *fuser) reqsOf(n ast.Node) []requirement {
	if g, _ := f.fusedCall(n); g != nil {
		return g.reqs
	}
	switch n := n.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "and", "&&":
			return append(slices.Clip(f.reqsOf(n.Left)), f.reqsOf(n.Right)...)
		case "or", "||":
			// One side holds: what both require of the same string.
			a, b := f.reqsOf(n.Left), f.reqsOf(n.Right)
			for _, x := range a {
				for _, y := range b {
					if x.key == y.key && x.re == y.re {
						lits := append(slices.Clip(x.lits), y.lits...)
						slices.Sort(lits)
						return []requirement{{x.key, x.sv, slices.Compact(lits), x.exact && y.exact, x.file, x.re}}
					}
				}
			}
			return nil
		case "contains", "startsWith", "endsWith", "==":
			// The string contains the literal (== and the affixes too).
			k, ok := constString(n.Right)
			if !ok || k == "" {
				return nil
			}
			return f.require(n.Left, []string{k}, n.Operator == "==")
		case "in":
			arr, ok := n.Right.(*ast.ArrayNode)
			if !ok {
				return nil
			}
			var lits []string
			for _, v := range arr.Nodes {
				k, ok := constString(v)
				if !ok || k == "" {
					return nil
				}
				lits = append(lits, k)
			}
			return f.require(n.Left, lits, true)
		}
	case *ast.CallNode:
		// RegexpInFile(x, 'file'): some pattern of the file matches x,
		// so x contains the literal it requires, when all have one.
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || id.Value != "RegexpInFile" || len(n.Arguments) != 2 {
			return nil
		}
		name, ok := constString(n.Arguments[1])
		if !ok {
			return nil
		}
		rs := f.r.h.state.Load().reSets[name]
		if rs == nil || len(rs.always) > 0 || len(rs.lits.lits) == 0 {
			return nil
		}
		reqs := f.require(n.Arguments[0], rs.lits.lits, false)
		for i := range reqs {
			reqs[i].file, reqs[i].re = name, rs
		}
		return reqs
	case *ast.ConditionalNode:
		// c ? a : false holds when c and a do.
		if b, ok := n.Exp2.(*ast.BoolNode); ok && !b.Value {
			return append(slices.Clip(f.reqsOf(n.Cond)), f.reqsOf(n.Exp1)...)
		}
	case *ast.VariableDeclaratorNode:
		// As boolean: the body reads the value where it names it.
		var reqs []requirement
		f.let(n, func() { reqs = f.reqsOf(n.Expr) })
		return reqs
	}
	return nil
}

// require is the requirement that x contain one of lits, when x is a
// string with a key.
func (f *fuser) require(x ast.Node, lits []string, exact bool) []requirement {
	s := f.str(x)
	if s.fn == nil || s.key == "" {
		return nil
	}
	return []requirement{{key: s.key, sv: s, lits: lits, exact: exact}}
}

// Gate runs, for a set of programs (a scenario set's filters), the
// literal requirements of their fused forms: one scan of each string
// some of them require a literal of tells which of them may be true;
// Open says false for the others, which are false on the event. A Gate
// is read-only: goroutines share it, each with its own GateState.
type Gate struct {
	h        *Helpers
	slots    *slotTable
	subjects []gateSubject
	of       []int32 // program -> subject index, -1 for none
	// data marks the programs whose literals come from a data file
	// (RegexpInFile): they stay open once data is loaded after snap,
	// the data NewGate saw.
	data []bool
	snap *snapshot
}

type gateSubject struct {
	sv    strVal
	lits  *litSet
	progs [][]int32 // literal id -> programs requiring it
	// memo keeps the literals found in recent values of a subject with
	// many literals (the user agent against the bad user agents' words):
	// a value comes back often, and hashing it costs less than the scan.
	memo *scanMemo
}

// memoLits is the number of literals from which a subject's scans are
// memoized.
const memoLits = 64

// scanMemo is a direct-mapped cache of scans, safe for concurrent use
// (entries are immutable, swapped atomically; a racing store merely
// loses one).
type scanMemo struct {
	seed  maphash.Seed
	slots [256]atomic.Pointer[scanEntry]
}

type scanEntry struct {
	in  string
	ids []int32 // literals found in in, each once
}

// scan returns the literals of l found in x.
func (m *scanMemo) scan(l *litSet, x string) []int32 {
	sl := &m.slots[maphash.String(m.seed, x)&255]
	if e := sl.Load(); e != nil && e.in == x {
		return e.ids
	}
	var ids []int32
	seen := map[int32]bool{}
	l.find(x, func(id int32, _ int) bool {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
		return false
	})
	sl.Store(&scanEntry{in: x, ids: ids})
	return ids
}

// GateState is a Gate's per-event state; the zero value is ready.
type GateState struct {
	epoch   uint32
	valid   bool
	scanned []bool // by subject
	open    []bool // by program
}

// NewGate prepares the requirements of progs (nil entries and programs
// that are not fused have none). Each program gets one requirement: not
// an exact one (those are the guards, that the engine tests anyway, and
// cheaply), on the string most programs require literals of, so that few
// strings are scanned.
func (h *Helpers) NewGate(progs []*vm.Program) *Gate {
	g := &Gate{h: h, slots: &h.slots, of: make([]int32, len(progs)), data: make([]bool, len(progs)), snap: h.state.Load()}
	reqs := make([][]requirement, len(progs))
	count := map[string]int{}
	for i, p := range progs {
		if out := probe(p); out != nil && out.b != nil && out.slots == &h.slots {
			reqs[i] = out.reqs
			seen := map[string]bool{}
			for _, r := range out.reqs {
				if usable(r, g.snap) && !seen[r.key] {
					seen[r.key] = true
					count[r.key]++
				}
			}
		}
	}
	type subj struct {
		idx  int
		lits map[string]int32
		all  []string
	}
	subjects := map[string]*subj{}
	for i := range progs {
		g.of[i] = -1
		var best *requirement
		for j, r := range reqs[i] {
			if !usable(r, g.snap) {
				continue
			}
			if best == nil || count[r.key] > count[best.key] || (count[r.key] == count[best.key] && len(r.lits) < len(best.lits)) {
				best = &reqs[i][j]
			}
		}
		if best == nil {
			continue
		}
		s := subjects[best.key]
		if s == nil {
			s = &subj{idx: len(g.subjects), lits: map[string]int32{}}
			subjects[best.key] = s
			g.subjects = append(g.subjects, gateSubject{sv: best.sv})
		}
		gs := &g.subjects[s.idx]
		for _, l := range best.lits {
			id, ok := s.lits[l]
			if !ok {
				id = int32(len(s.all))
				s.lits[l] = id
				s.all = append(s.all, l)
				gs.progs = append(gs.progs, nil)
			}
			if !slices.Contains(gs.progs[id], int32(i)) {
				gs.progs[id] = append(gs.progs[id], int32(i))
			}
		}
		g.of[i] = int32(s.idx)
		g.data[i] = best.re != nil
	}
	for _, s := range subjects {
		gs := &g.subjects[s.idx]
		gs.lits = newLitSet(s.all)
		if len(s.all) >= memoLits && gs.sv.fold == nil {
			gs.memo = &scanMemo{seed: maphash.MakeSeed()}
		}
	}
	return g
}

// usable tells that r may gate: not exact, and from the current data.
func usable(r requirement, snap *snapshot) bool {
	return !r.exact && (r.re == nil || snap.reSets[r.file] == r.re)
}

// Open tells whether program i may be true on e: false when its required
// string lacks all its literals. fr is the frame the programs run with
// (the strings are read through it, and a Reset of it resets st).
func (g *Gate) Open(i int, e *event.Event, fr *Frame, st *GateState) bool {
	s := g.of[i]
	if s < 0 || e == nil || (g.data[i] && g.h.state.Load() != g.snap) {
		return true
	}
	if fr == nil || !st.valid || st.epoch != fr.epoch {
		if len(st.scanned) != len(g.subjects) {
			st.scanned = make([]bool, len(g.subjects))
			st.open = make([]bool, len(g.of))
		} else {
			clear(st.scanned)
			clear(st.open)
		}
		st.valid = fr != nil
		if fr != nil {
			st.epoch = fr.epoch
		}
	}
	if !st.scanned[s] {
		st.scanned[s] = true
		sub := &g.subjects[s]
		mark := func(id int32, _ int) bool {
			for _, p := range sub.progs[id] {
				st.open[p] = true
			}
			return false
		}
		// Upper(evt.Meta.http_path): the filters that pass need it, the
		// others not; scan an ASCII path folding rather than make it.
		fr := fr.of(g.slots)
		if sub.memo != nil {
			for _, id := range sub.memo.scan(sub.lits, sub.sv.fn(e, fr)) {
				mark(id, 0)
			}
		} else if x, ok := sub.sv.peek(fr); ok || sub.sv.fold == nil {
			if !ok {
				x = sub.sv.fn(e, fr)
			}
			sub.lits.find(x, mark)
		} else if y := sub.sv.arg(e, fr); isASCII(y) {
			sub.lits.findFold(y, sub.sv.fold, mark)
		} else {
			sub.lits.find(sub.sv.fn(e, fr), mark)
		}
	}
	return st.open[i]
}

// probe returns the closures of a program fused whole (see Direct).
func probe(p *vm.Program) *fused {
	if p == nil {
		return nil
	}
	c, ok := p.Node().(*ast.CallNode)
	if !ok || len(c.Arguments) != 1 {
		return nil
	}
	if id, ok := c.Arguments[0].(*ast.IdentifierNode); !ok || id.Value != "evt" {
		return nil
	}
	k, ok := c.Callee.(*ast.ConstantNode)
	if !ok {
		return nil
	}
	var pr fusedProbe
	switch f := k.Value.(type) {
	case func(any) bool:
		f(&pr)
	case func(any) any:
		f(&pr)
	}
	return pr.out
}
