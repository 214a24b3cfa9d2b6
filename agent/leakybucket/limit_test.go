package leakybucket_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/leakybucket"
)

// rampartSSH loads Rampart's own ssh scenarios (rules/).
func rampartSSH(t *testing.T) []*leakybucket.Scenario {
	t.Helper()
	var out []*leakybucket.Scenario
	for _, name := range []string{"ssh-bf", "ssh-slow-bf", "ssh-user-enum"} {
		sc, err := leakybucket.Load(filepath.Join("..", "..", "rules", "scenarios", "rampart", name+".yaml"), "test", nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sc...)
	}
	return out
}

// TestCapCannotHideAttack floods Rampart's ssh scenarios with one failed
// login from each of 30,000 distinct sources (1,000 a second of log time)
// under a cap of 1,000 live buckets per scenario, so the cap is full and
// evicting from the start to the end, while two brute forcers send
// ssh-bf's capacity+1 failures spread over the flood:
//   - A one every 0.8 s (800 flood sources in between: fewer than the cap);
//   - B two at once, then one every 1.2 s (1,200 flood sources in between,
//     more than the cap: a policy evicting the oldest or least recently
//     used bucket would have dropped B's each time).
//
// Both alerts must fire, no flood source may alert, and no scenario may
// hold more buckets than the cap.
func TestCapCannotHideAttack(t *testing.T) {
	const limit, flood, rate = 1000, 30000, 1000
	e := leakybucket.NewEngine(rampartSSH(t), true)
	e.SetLimit(limit)
	attack := map[int][]string{}
	for k := range 6 {
		attack[10000+k*800] = append(attack[10000+k*800], "198.51.100.1")
	}
	attack[5000] = append(attack[5000], "198.51.100.2", "198.51.100.2")
	for k := 1; k <= 4; k++ {
		attack[5000+k*1200] = append(attack[5000+k*1200], "198.51.100.2")
	}
	alerts := map[string][]string{} // source -> scenarios
	for i := range flood {
		at := t0.Add(time.Duration(i) * time.Second / rate)
		for _, ip := range attack[i] {
			for _, o := range e.Pour(sshEvent(ip, "root", "ssh_failed-auth", at)) {
				alerts[o.Overflow.Alert.Source.IP] = append(alerts[o.Overflow.Alert.Source.IP], o.Overflow.Alert.Scenario)
			}
		}
		ip := fmt.Sprintf("11.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		for _, o := range e.Pour(sshEvent(ip, "root", "ssh_failed-auth", at)) {
			alerts[o.Overflow.Alert.Source.IP] = append(alerts[o.Overflow.Alert.Source.IP], o.Overflow.Alert.Scenario)
		}
		if i%1000 == 999 {
			for _, s := range e.ScenarioStats() {
				if s.Alive > limit {
					t.Fatalf("after %d sources: %s holds %d buckets, cap %d", i+1, s.Name, s.Alive, limit)
				}
			}
		}
	}
	for _, ip := range []string{"198.51.100.1", "198.51.100.2"} {
		if got := alerts[ip]; len(got) != 1 || got[0] != "rampart/ssh-bf" {
			t.Errorf("%s: alerts %v, want rampart/ssh-bf", ip, got)
		}
		delete(alerts, ip)
	}
	if len(alerts) > 0 {
		t.Errorf("%d flood sources alerted", len(alerts))
	}
	for _, s := range e.ScenarioStats() {
		if s.Alive > limit || s.Evicted == 0 || s.Created != s.Alive+s.Evicted+s.Underflowed+s.Overflowed+s.Canceled {
			t.Errorf("%s: %+v", s.Name, s)
		}
	}
}

// TestEmptyBucketFreed: a leaky bucket is freed once it has leaked empty,
// not a whole capacity of leaks after its last event (a one-event
// ssh-slow-bf bucket lived 20 minutes instead of 2).
func TestEmptyBucketFreed(t *testing.T) {
	e := leakybucket.NewEngine(rampartSSH(t), true)
	e.Pour(sshEvent("198.51.100.1", "root", "ssh_failed-auth", t0))
	e.Pour(sshEvent("198.51.100.2", "root", "ssh_failed-auth", t0))
	e.Pour(sshEvent("198.51.100.2", "root", "ssh_failed-auth", t0.Add(time.Second)))
	alive := func() map[string]int64 {
		m := map[string]int64{}
		for _, s := range e.ScenarioStats() {
			m[s.Name] = s.Alive
		}
		return m
	}
	for _, step := range []struct {
		after time.Duration
		want  map[string]int64
	}{
		{9 * time.Second, map[string]int64{"rampart/ssh-bf": 2, "rampart/ssh-slow-bf": 2, "rampart/ssh-user-enum": 2}},
		// one event leaks in 10 s: .1's bucket is empty, .2's holds 1.1
		{10 * time.Second, map[string]int64{"rampart/ssh-bf": 1, "rampart/ssh-slow-bf": 2, "rampart/ssh-user-enum": 2}},
		{21 * time.Second, map[string]int64{"rampart/ssh-bf": 0, "rampart/ssh-slow-bf": 2, "rampart/ssh-user-enum": 0}},
		{2 * time.Minute, map[string]int64{"rampart/ssh-bf": 0, "rampart/ssh-slow-bf": 1, "rampart/ssh-user-enum": 0}},
		{4*time.Minute + time.Second, map[string]int64{"rampart/ssh-bf": 0, "rampart/ssh-slow-bf": 0, "rampart/ssh-user-enum": 0}},
	} {
		e.Tick(t0.Add(step.after))
		if got := alive(); fmt.Sprint(got) != fmt.Sprint(step.want) {
			t.Errorf("+%s: live buckets %v, want %v", step.after, got, step.want)
		}
	}
}

// TestCapSlowBruteForceTradeOff pins the trade-off the README states: a
// slow brute force (ssh-slow-bf, one attempt a minute: it overflows at the
// 20th) between its first two attempts holds less than one event, as
// evictable as any flood source's bucket. A flood of fewer than the cap's
// worth of new sources per attempt gap cannot push it out; one of more,
// sustained, can.
func TestCapSlowBruteForceTradeOff(t *testing.T) {
	const limit, gap = 1000, time.Minute
	run := func(perSecond int) bool {
		e := leakybucket.NewEngine(rampartSSH(t), true)
		e.SetLimit(limit)
		fired := false
		n := 0
		for s := range 25 * 60 {
			at := t0.Add(time.Duration(s) * time.Second)
			if s%int(gap/time.Second) == 0 {
				for _, o := range e.Pour(sshEvent("198.51.100.3", "root", "ssh_failed-auth", at)) {
					fired = fired || o.Overflow.Alert.Scenario == "rampart/ssh-slow-bf"
				}
			}
			for range perSecond {
				n++
				e.Pour(sshEvent(fmt.Sprintf("11.%d.%d.%d", n>>16&255, n>>8&255, n&255), "root", "ssh_failed-auth", at))
			}
		}
		return fired
	}
	// 10/s: 600 new sources per gap, under the cap of 1,000
	if !run(10) {
		t.Error("a flood under the cap's worth of sources per attempt gap hid a slow brute force")
	}
	// 25/s: 1,500 per gap, over it: the attacker's bucket goes each time
	if run(25) {
		t.Error("the slow brute force alerted under a flood of more than the cap per gap: the README's trade-off is out of date")
	}
}
