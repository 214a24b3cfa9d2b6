package leakybucket_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/leakybucket"
)

// In a replay, one source's later line does not end another's bucket: as
// in the endlessh hub test, two sources' lines alternate, all of one at
// t0, all of the other six minutes later, past when the first's one-event
// bucket has leaked empty (5 min). As upstream's time machine, which frees
// buckets only every 5,000 events, both overflow at their sixth line.
func TestReplayOtherSourceLaterDoesNotEndBucket(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, strings.Replace(leakyDoc, "leakspeed: 10s", "leakspeed: 5m", 1)), true)
	var got []string
	for range 6 {
		for _, src := range []struct {
			ip string
			at time.Time
		}{{"1.1.1.1", t0}, {"2.2.2.2", t0.Add(6 * time.Minute)}} {
			for _, o := range e.Pour(sshEvent(src.ip, "root", "ssh_failed-auth", src.at)) {
				got = append(got, o.Overflow.Alert.Source.IP)
			}
		}
	}
	if strings.Join(got, " ") != "1.1.1.1 2.2.2.2" {
		t.Fatalf("overflows %v, want [1.1.1.1 2.2.2.2]", got)
	}
}
