package leakybucket_test

import (
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/leakybucket"
)

// Lines written while the agent was stopped arrive at once when it
// starts: live, they are timed by their own timestamps, not the clock, so
// six failed logins spread over an hour (an admin mistyping) are not a
// burst, while six within seconds still are.
func TestBacklogEventsKeepTheirTime(t *testing.T) {
	ago := time.Now().Add(-time.Hour)
	backlog := func(e *leakybucket.Engine, ip string, step time.Duration) int {
		n := 0
		for i := range 6 {
			evt := sshEvent(ip, "root", "ssh_failed-auth", ago.Add(time.Duration(i)*step))
			evt.Line.Backlog = true
			n += len(e.Pour(evt))
		}
		return n
	}
	e := leakybucket.NewEngine(loadYAML(t, leakyDoc), false)
	if n := backlog(e, "192.0.2.1", 10*time.Minute); n != 0 {
		t.Errorf("6 backlog failures 10 min apart overflowed %d times", n)
	}
	if n := backlog(e, "192.0.2.2", time.Second); n != 1 {
		t.Errorf("6 backlog failures 1 s apart overflowed %d times, want 1", n)
	}
	// Live lines keep the clock: the same spread-out timestamps, read now,
	// are a burst.
	if n := len(pour(e, "192.0.2.3", 6, ago, 10*time.Minute)); n != 1 {
		t.Errorf("6 live failures overflowed %d times, want 1", n)
	}
	// A backlog timestamp ahead of the clock (a guessed syslog year) is
	// not believed.
	evt := sshEvent("192.0.2.4", "root", "ssh_failed-auth", time.Now().Add(24*time.Hour))
	evt.Line.Backlog = true
	e.Pour(evt)
}
