package leakybucket

import (
	"github.com/expr-lang/expr/vm"

	"github.com/rampart-ips/rampart/agent/event"
)

// DisableTrim turns off queue trimming, so tests can check it changes no
// alert.
func DisableTrim(e *Engine) { e.trim = false }

// QueuedEvents is how many events all buckets hold.
func QueuedEvents(e *Engine) int {
	n := 0
	for _, sb := range e.state {
		for _, b := range sb.live {
			n += len(b.queue)
		}
	}
	return n
}

// HitScenarios returns the indexes of the scenarios p poured into.
func HitScenarios(p Prepared) []int {
	var out []int
	for _, h := range p.hits {
		out = append(out, h.scenario)
	}
	return out
}

// GroupByOK tells whether the scenario's groupby runs on evt (by the VM).
func GroupByOK(s *Scenario, evt *event.Event) bool {
	if s.groupby == nil {
		return true
	}
	var m vm.VM
	_, ok := runString(&m, s.groupby, map[string]any{"evt": evt})
	return ok
}
