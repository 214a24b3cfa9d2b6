package exprhelpers

import (
	"fmt"

	"github.com/expr-lang/expr/vm"

	"github.com/rampart-ips/rampart/agent/event"
)

// Direct returns the Go closure a program compiled with Options was fused
// into, when the whole expression is one fused call on the event (most
// hub filters and groupbys are). Callers run it instead of the VM: a
// scenario set evaluates ~50 such expressions per event and the VM's
// per-run set-up was a large share of their cost. The closure gives what
// the program would (bool or string); a panic, which the VM would report
// as a run-time error, becomes an error.
func Direct(p *vm.Program) (func(*event.Event) (any, error), bool) {
	f, ok := DirectFrame(p)
	if !ok {
		return nil, false
	}
	return func(e *event.Event) (any, error) { return f(e, nil) }, true
}

// DirectFrame is Direct with a Frame: programs run on the same event with
// the same frame compute each value they share once (see Frame). A nil
// frame caches nothing.
func DirectFrame(p *vm.Program) (func(*event.Event, *Frame) (any, error), bool) {
	out := probe(p)
	switch {
	case out == nil:
		return nil, false
	case out.b != nil:
		b, t := out.b, out.slots
		return func(e *event.Event, fr *Frame) (res any, err error) {
			defer recoverInto(&err)
			return b(e, fr.of(t)), nil
		}, true
	default:
		box, t := out.box, out.slots
		return func(e *event.Event, fr *Frame) (res any, err error) {
			defer recoverInto(&err)
			return box(e, fr.of(t)), nil
		}, true
	}
}

func recoverInto(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("run-time error: %v", r)
	}
}
