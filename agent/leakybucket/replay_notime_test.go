package leakybucket_test

import (
	"testing"

	"github.com/rampart-ips/rampart/agent/leakybucket"
)

// In replay (time-machine) mode an event without a parsed date goes into
// no bucket, as upstream: pouring it at the wall clock raised alerts a
// replay of the same log upstream does not. Live, the same events count.
func TestReplaySkipsEventsWithoutTime(t *testing.T) {
	for _, replay := range []bool{true, false} {
		e := leakybucket.NewEngine(loadYAML(t, leakyDoc), replay)
		n := 0
		for range 10 {
			evt := sshEvent("1.2.3.4", "root", "ssh_failed-auth", t0)
			evt.MarshaledTime = "" // no date parsed
			n += len(e.Pour(evt))
		}
		if replay && (n != 0 || e.Buckets() != 0) {
			t.Errorf("replay: %d overflows, %d buckets from undated events; want none", n, e.Buckets())
		}
		if !replay && n == 0 {
			t.Errorf("live: undated events raised no overflow")
		}
	}
}
