package leakybucket

import (
	"github.com/expr-lang/expr/vm"

	"github.com/rampart-ips/rampart/agent/event"
)

// Matches reports whether evt passes the scenario's filter, that is whether
// Pour would pour it into one of this scenario's buckets (cscli explain).
// It has no effect on any bucket.
func (s *Scenario) Matches(evt *event.Event) bool {
	if s.filter == nil {
		return true
	}
	var m vm.VM
	return runBool(&m, s.filter, map[string]any{"evt": evt})
}

// Scenarios returns the engine's scenarios in pour order.
func (e *Engine) Scenarios() []*Scenario { return e.scenarios }
