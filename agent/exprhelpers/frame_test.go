package exprhelpers_test

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
)

// The hub's scenario filters, run in order on each event as the scenario
// engine does, through one Frame, a Gate and the guards' GuardFunc, give
// what plain expr gives running each filter on its own (the events, which
// filters may change with SetMeta, change alike).
func TestFrameGateMatchPlain(t *testing.T) {
	c := loadCorpus(t)
	h := c.helpers
	var filters []hubExpr
	for _, e := range c.exprs {
		if e.key == "filter" && strings.HasPrefix(e.item, "scenarios") {
			filters = append(filters, e)
		}
	}
	plain := make([]*vm.Program, len(filters))
	opt := make([]*vm.Program, len(filters))
	direct := make([]func(*event.Event, *exprhelpers.Frame) (any, error), len(filters))
	var guards [][]func(*event.Event, *exprhelpers.Frame) bool
	var plainGuards [][]exprhelpers.Guard
	ndirect := 0
	for i, f := range filters {
		var err error
		if plain[i], err = compileHub(h, f, false); err != nil {
			t.Fatalf("%s: %v", f.item, err)
		}
		if opt[i], err = compileHub(h, f, true); err != nil {
			t.Fatalf("%s: %v", f.item, err)
		}
		if fn, ok := exprhelpers.DirectFrame(opt[i]); ok {
			direct[i] = fn
			ndirect++
		}
		var gs []func(*event.Event, *exprhelpers.Frame) bool
		for _, g := range exprhelpers.LeadingGuards(f.src) {
			gs = append(gs, h.GuardFunc(g))
		}
		guards = append(guards, gs)
		plainGuards = append(plainGuards, exprhelpers.LeadingGuards(f.src))
	}
	gate := h.NewGate(opt)
	evts := c.testEvents()
	var fr exprhelpers.Frame
	var st exprhelpers.GateState
	var m vm.VM
	closed, ran := 0, 0
	for k := range evts {
		a, b := cloneEvent(&evts[k]), cloneEvent(&evts[k])
		fr.Reset()
		for i, f := range filters {
			want, err := expr.Run(plain[i], map[string]any{"evt": a})
			wantB, _ := want.(bool)
			wantB = wantB && err == nil
			for j, g := range guards[i] {
				if g(b, &fr) != plainGuards[i][j].Test(a) {
					t.Fatalf("%s: guard %d differs on event %d (%q)", f.item, j, k, evts[k].Line.Raw)
				}
			}
			var got bool
			switch {
			case !gate.Open(i, b, &fr, &st):
				closed++
				if wantB {
					t.Fatalf("%s %q: the gate closed on event %d (%q), plain gives true", f.item, f.src, k, evts[k].Line.Raw)
				}
				continue
			case direct[i] != nil:
				out, err := direct[i](b, &fr)
				got, _ = out.(bool)
				got = got && err == nil
			default:
				out, err := m.Run(opt[i], map[string]any{"evt": b})
				got, _ = out.(bool)
				got = got && err == nil
				if strings.Contains(f.src, "Set") {
					fr.Reset()
				}
			}
			ran++
			if got != wantB || !maps.Equal(a.Meta, b.Meta) || !maps.Equal(a.Parsed, b.Parsed) {
				t.Fatalf("%s %q\nevent %d (%q): plain %v, frame %v\nmeta plain %v\nmeta frame %v", f.item, f.src, k, evts[k].Line.Raw, wantB, got, a.Meta, b.Meta)
			}
		}
	}
	t.Logf("%d filters (%d direct), %d events: %d evaluations, %d closed by the gate", len(filters), ndirect, len(evts), ran, closed)
	if closed == 0 || ndirect < len(filters)*3/4 {
		t.Error(fmt.Sprintf("gate closed %d, %d direct of %d", closed, ndirect, len(filters)))
	}
}
