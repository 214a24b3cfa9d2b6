package leakybucket_test

import (
	"testing"

	"github.com/rampart-ips/rampart/agent/leakybucket"
)

// In replay (time-machine) mode an event without a parsed date goes into
// no bucket but a trigger's, as upstream: pouring it at the wall clock
// raised alerts a replay of the same log upstream does not. Live, the
// same events count.
func TestReplaySkipsEventsWithoutTime(t *testing.T) {
	const triggerDoc = `type: trigger
name: test/trigger
filter: "evt.Meta.log_type == 'ssh_failed-auth'"
groupby: evt.Meta.source_ip
`
	for _, replay := range []bool{true, false} {
		e := leakybucket.NewEngine(loadYAML(t, leakyDoc), replay)
		trig := leakybucket.NewEngine(loadYAML(t, triggerDoc), replay)
		n, triggered := 0, 0
		for range 10 {
			evt := sshEvent("1.2.3.4", "root", "ssh_failed-auth", t0)
			evt.MarshaledTime = "" // no date parsed
			n += len(e.Pour(evt))
			triggered += len(trig.Pour(evt))
		}
		if replay && (n != 0 || e.Buckets() != 0) {
			t.Errorf("replay: %d overflows, %d buckets from undated events; want none", n, e.Buckets())
		}
		if !replay && n == 0 {
			t.Errorf("live: undated events raised no overflow")
		}
		if triggered == 0 {
			t.Errorf("replay %v: a trigger did not fire on undated events", replay)
		}
	}
}
