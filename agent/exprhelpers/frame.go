package exprhelpers

import (
	"sync"

	"github.com/rampart-ips/rampart/agent/event"
)

// Frame holds, for one event, the values of the pure subexpressions that
// the fused programs of a Helpers share: event map reads, string helper
// calls on them (Lower(evt.Parsed.request)) and membership tests
// (evt.Meta.log_type in [...]). The ~50 filters of the http scenarios
// read a dozen distinct values between them, each many times; with a
// frame each is computed once per event, the others are a slot load
// instead of a map lookup or a memo probe.
//
// A frame is only valid while the event does not change: Reset it for
// each event, and after running anything that may write to the event
// (a program that is not Direct, such as one calling SetMeta). The zero
// Frame is ready to use. A frame is not safe for concurrent use.
//
// Slots are numbered per Helpers: a frame serves the programs of the
// first Helpers that uses it, and runs those of any other uncached.
type Frame struct {
	owner *slotTable
	epoch uint32
	strs  []strSlot
	bools []boolSlot
}

// of returns f when it may hold the slots of t, else nil (no caching).
func (f *Frame) of(t *slotTable) *Frame {
	if f == nil || f.owner == t {
		return f
	}
	if f.owner == nil {
		f.owner = t
		return f
	}
	return nil
}

// A slot holds a value when its epoch is the frame's.
type strSlot struct {
	epoch uint32
	s     string
	boxed any // s as an interface, made on demand for programs returning it
}

type boolSlot struct {
	epoch uint32
	v     bool
}

// Reset forgets every value: the next event, or the event changed.
func (f *Frame) Reset() {
	f.epoch++
	if f.epoch == 0 {
		// Wrapped: drop the slots, whose epochs may now look current.
		f.strs, f.bools = f.strs[:0], f.bools[:0]
	}
}

// strSlot returns slot id, growing the frame to hold it; new slots are
// stale.
func (f *Frame) strSlot(id int) *strSlot {
	for id >= len(f.strs) {
		f.strs = append(f.strs, strSlot{epoch: f.epoch - 1})
	}
	return &f.strs[id]
}

func (f *Frame) boolSlot(id int) *boolSlot {
	for id >= len(f.bools) {
		f.bools = append(f.bools, boolSlot{epoch: f.epoch - 1})
	}
	return &f.bools[id]
}

// slotTable numbers the cacheable subexpressions of the programs compiled
// with a Helpers' options, by canonical text, so that the programs of a
// scenario set share one slot per distinct subexpression.
type slotTable struct {
	mu    sync.Mutex
	strs  map[string]int
	bools map[string]int
}

func (t *slotTable) id(bools bool, key string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := &t.strs
	if bools {
		m = &t.bools
	}
	if *m == nil {
		*m = map[string]int{}
	}
	id, ok := (*m)[key]
	if !ok {
		id = len(*m)
		(*m)[key] = id
	}
	return id
}

// A fused string or boolean subtree: it reads the event and, when f is not
// nil, the frame's slots.
type (
	fusedStr  = func(e *event.Event, f *Frame) string
	fusedBool = func(e *event.Event, f *Frame) bool
)

// cachedStr computes x at most once per frame epoch, in slot id.
func cachedStr(id int, x fusedStr) fusedStr {
	return func(e *event.Event, f *Frame) string {
		if f == nil {
			return x(e, nil)
		}
		if id < len(f.strs) {
			if sl := &f.strs[id]; sl.epoch == f.epoch {
				return sl.s
			}
		}
		s := x(e, f)
		// x may have grown the slots: take the slot afterwards.
		sl := f.strSlot(id)
		sl.epoch, sl.s, sl.boxed = f.epoch, s, nil
		return s
	}
}

// boxedSlot returns the string x (a cachedStr of slot id) as an
// interface, boxing it once per frame epoch.
func boxedSlot(id int, x fusedStr) func(*event.Event, *Frame) any {
	return func(e *event.Event, f *Frame) any {
		s := x(e, f)
		if f == nil {
			return s
		}
		sl := f.strSlot(id)
		if sl.boxed == nil {
			sl.boxed = s
		}
		return sl.boxed
	}
}

// cachedBool computes x at most once per frame epoch, in slot id.
func cachedBool(id int, x fusedBool) fusedBool {
	return func(e *event.Event, f *Frame) bool {
		if f == nil {
			return x(e, nil)
		}
		if id < len(f.bools) {
			if sl := &f.bools[id]; sl.epoch == f.epoch {
				return sl.v
			}
		}
		v := x(e, f)
		sl := f.boolSlot(id)
		sl.epoch, sl.v = f.epoch, v
		return v
	}
}
