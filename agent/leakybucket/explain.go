package leakybucket

import (
	"time"

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

// StateWindow is how long the scenario's buckets can keep state: how long
// a full leaky bucket takes to empty (capacity × leakspeed), or a
// counter's duration, plus the blackhole after an overflow. Lines older
// than that cannot change what it decides now (see the warm-up of the
// file sources).
func (s *Scenario) StateWindow() time.Duration {
	span := s.leak * time.Duration(max(s.cfg.Capacity, 1))
	return max(span, s.duration) + s.blackhole
}

// StateWindow is the longest StateWindow of scenarios.
func StateWindow(scenarios []*Scenario) time.Duration {
	var w time.Duration
	for _, s := range scenarios {
		w = max(w, s.StateWindow())
	}
	return w
}
