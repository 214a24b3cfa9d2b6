package exprhelpers_test

import (
	"maps"
	"testing"

	"github.com/rampart-ips/rampart/agent/exprhelpers"
)

// Over every hub filter and the corpus events: when one of a filter's
// leading guards fails, expr finds the filter false and leaves the event
// as it was, so a scenario set may skip it (leakybucket's Prepare).
func TestLeadingGuardsOnHub(t *testing.T) {
	c := loadCorpus(t)
	var evts = append(c.events["nginx"], c.events["sshd"]...)
	if testing.Short() {
		evts = evts[:300:300]
	}
	evts = append(evts, edgeEvents()...)
	filters, guarded, skips := 0, 0, 0
	for _, e := range c.exprs {
		if e.key != "filter" {
			continue
		}
		filters++
		gs := exprhelpers.LeadingGuards(e.src)
		if len(gs) == 0 {
			continue
		}
		guarded++
		p, err := compileHub(c.helpers, e, false)
		if err != nil {
			continue
		}
		for i := range evts {
			pass := true
			for _, g := range gs {
				pass = pass && g.Test(&evts[i])
			}
			if pass {
				continue
			}
			skips++
			ev := cloneEvent(&evts[i])
			r := evalHub(p, e, ev, nil)
			if r.err != "" || r.out != false || !maps.Equal(r.meta, evts[i].Meta) || !maps.Equal(r.parsed, evts[i].Parsed) {
				t.Errorf("%s %q: guard failed but expr gives %#v err=%q on %q", e.item, e.src, r.out, r.err, evts[i].Line.Raw)
				break
			}
		}
	}
	t.Logf("%d filters, %d with guards, %d skips checked", filters, guarded, skips)
	if guarded < 30 || skips == 0 {
		t.Errorf("only %d of %d filters have guards, %d skips", guarded, filters, skips)
	}
}
