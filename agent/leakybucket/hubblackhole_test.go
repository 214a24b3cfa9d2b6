package leakybucket_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// One slow ssh attacker replayed through the hub's own sshd collection:
// 11 failed logins a second apart, then 17 six seconds apart from 16 s.
// The alerts are those CrowdSec itself (1.4.6, Debian's build, in
// time-machine mode) raised on this very log: a blackhole discards only
// the overflows inside it, so the events meanwhile fill a fresh bucket and
// a second alert comes soon after the blackhole ends.
//
//   - ssh-slow-bf (10 per 60 s, blackhole 1 m): the 11th login overflows
//     at 10 s; a fresh bucket from 16 s overflows on its 12th login, at
//     82 s, after the blackhole (10 s to 70 s).
//   - ssh-bf (5 per 10 s, blackhole 1 m): overflows at 5 s; the bucket
//     from 6 s overflows at 22 s inside the blackhole and is discarded;
//     the one from 28 s overflows on its 12th login at 94 s.
//
// Dropping every event of a blackholed key, as Rampart once did, left one
// alert each.
func TestHubSlowAttackerBlackhole(t *testing.T) {
	t0 := time.Date(2026, time.February, 12, 10, 0, 0, 0, time.UTC)
	var log strings.Builder
	at := func(i int) time.Time {
		if i < 11 {
			return t0.Add(time.Duration(i) * time.Second)
		}
		return t0.Add(16*time.Second + time.Duration(i-11)*6*time.Second)
	}
	for i := range 28 {
		fmt.Fprintf(&log, "%s bastion sshd[%d]: Failed password for root from 198.51.100.7 port %d ssh2\n",
			at(i).Format(time.Stamp), 4000+i, 50000+i)
	}
	r := hubReplayLog(t, "sshd", []byte(log.String()))
	if len(r.events) != 28 {
		t.Fatalf("%d of 28 lines parsed", len(r.events))
	}
	e := r.engine(t)
	var got []string
	for _, evt := range r.fresh() {
		for _, ov := range e.Pour(&evt) {
			a := ov.Overflow.Alert
			if a == nil || !(strings.HasPrefix(a.Scenario, "crowdsecurity/ssh-bf") || strings.HasPrefix(a.Scenario, "crowdsecurity/ssh-slow-bf")) {
				continue
			}
			// syslog has no year: compare the time of day
			got = append(got, fmt.Sprintf("%s %s %s..%s %d", a.Scenario, a.Source.Value, clock(t, a.StartAt), clock(t, a.StopAt), a.EventsCount))
		}
	}
	want := []string{
		"crowdsecurity/ssh-bf 198.51.100.7 10:00:00..10:00:05 6",
		"crowdsecurity/ssh-slow-bf 198.51.100.7 10:00:00..10:00:10 11",
		"crowdsecurity/ssh-slow-bf 198.51.100.7 10:00:16..10:01:22 12",
		"crowdsecurity/ssh-bf 198.51.100.7 10:00:28..10:01:34 12",
	}
	if !slices.Equal(got, want) {
		t.Errorf("alerts:\n  %s\nwant (CrowdSec's):\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func clock(t *testing.T, rfc3339 string) string {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, rfc3339)
	if err != nil {
		t.Fatalf("alert time %q: %v", rfc3339, err)
	}
	return ts.UTC().Format(time.TimeOnly)
}
