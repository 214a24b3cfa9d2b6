package exprhelpers

import (
	"sync/atomic"
	"unsafe"
)

// strMemo remembers recent results of a pure string function. Hub
// scenarios call Upper(evt.Meta.http_path) and the like dozens of times
// per event; every call gets the same map value, whose bytes stay put,
// so the slot is chosen from the input's data pointer and length and a
// repeat costs a hash and a string compare instead of an allocation.
//
// Slots hold immutable entries swapped atomically: lock-free and safe for
// concurrent use; a racing store merely loses an entry. An entry keeps its
// input string alive, so its address cannot be reused for another string
// while the entry exists, and a hit compares the whole input anyway. This
// pins at most memoSlots recent strings. Strings built with unsafe over a
// buffer that is later rewritten must not reach expressions (nothing in
// the agent does that: lines are copied out of the reader's buffer).
type strMemo struct {
	f     func(string) string
	empty any // f(""), boxed
	slots [memoSlots]atomic.Pointer[memoEntry]
}

// memoSlots is enough for the distinct strings of a few events in flight
// on each core.
const (
	memoBits  = 9
	memoSlots = 1 << memoBits
)

type memoEntry struct {
	in    string
	out   string
	boxed any // out as an interface, so expr gets it without allocating
}

func newStrMemo(f func(string) string) *strMemo {
	return &strMemo{f: f, empty: any(f(""))}
}

func (m *strMemo) slot(s string) *atomic.Pointer[memoEntry] {
	p := uint64(uintptr(unsafe.Pointer(unsafe.StringData(s))))
	h := (p ^ uint64(len(s))<<48) * 0x9e3779b97f4a7c15
	return &m.slots[h>>(64-memoBits)]
}

// get returns f(s) as a string and boxed.
func (m *strMemo) get(s string) (string, any) {
	if s == "" {
		return m.empty.(string), m.empty
	}
	sl := m.slot(s)
	if e := sl.Load(); e != nil && e.in == s {
		return e.out, e.boxed
	}
	out := m.f(s)
	e := &memoEntry{in: s, out: out, boxed: out}
	sl.Store(e)
	return out, e.boxed
}

// newMemos returns the memoized helpers, by name: the foldable helpers
// worth memoizing (they allocate). Each Helpers has its own set.
func newMemos() map[string]*strMemo {
	return map[string]*strMemo{
		"Upper":         newStrMemo(Upper),
		"Lower":         newStrMemo(Lower),
		"PathUnescape":  newStrMemo(PathUnescape),
		"QueryUnescape": newStrMemo(QueryUnescape),
	}
}

// memoFn adapts a memo to expr's calling convention; like fn1, a non
// string argument counts as "".
func memoFn(m *strMemo) func(...any) (any, error) {
	return func(p ...any) (any, error) {
		_, out := m.get(str(p, 0))
		return out, nil
	}
}
