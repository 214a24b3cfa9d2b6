package leakybucket_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/leakybucket"
)

// benchScenarios is a small hub: a leaky brute force, a distinct user
// enumeration and a trigger, all matching the same ssh events.
const benchScenarios = leakyDoc + `---
type: leaky
name: test/user-enum
filter: "evt.Meta.log_type == 'ssh_failed-auth'"
groupby: evt.Meta.source_ip
distinct: evt.Meta.target_user
capacity: 5
leakspeed: 10s
blackhole: 1m
---
type: trigger
name: test/other
filter: "evt.Meta.log_type == 'other'"
groupby: evt.Meta.source_ip
`

// BenchmarkPour pours failed logins from 1,000 sources, one event per
// source per second of log time, through Prepare and PourPrepared.
func BenchmarkPour(b *testing.B) {
	e := leakybucket.NewEngine(loadYAML(b, benchScenarios), true)
	const sources = 1000
	evts := make([]*event.Event, sources*8)
	for i := range evts {
		at := t0.Add(time.Duration(i/sources) * time.Second)
		evts[i] = sshEvent(fmt.Sprintf("10.0.%d.%d", (i%sources)/256, i%256), fmt.Sprintf("user%d", i%7), "ssh_failed-auth", at)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// each round of events is a later hour, so the buckets of the
		// previous one have leaked empty
		evt := *evts[i%len(evts)]
		evt.MarshaledTime = t0.Add(time.Duration(i/len(evts))*time.Hour + time.Duration(i%len(evts)/sources)*time.Second).Format(time.RFC3339Nano)
		e.PourPrepared(&evt, e.Prepare(&evt))
	}
}

// BenchmarkPrepareHub runs Prepare (every scenario's filter, then the
// groupby, distinct and cancel_on of those that match) on events parsed
// from a generated log by the hub's parsers, with the scenarios of its
// collections, as agentbench does; one op is one event. The events are
// few enough to stay in the CPU caches, as an event just parsed is when
// agentbench prepares it.
func BenchmarkPrepareHub(b *testing.B) {
	for _, kind := range []string{"nginx", "sshd"} {
		b.Run(kind, func(b *testing.B) {
			r := hubReplay(b, kind, 512)
			e := leakybucket.NewEngine(r.scenarios, true)
			evts := r.fresh()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e.Prepare(&evts[i%len(evts)])
				i++
			}
		})
	}
}

// BenchmarkPourHub runs PourPrepared, the serial stage of a replay, on
// events parsed from a generated log by the hub's parsers and prepared
// beforehand, with the scenarios of its collections and the alert
// contexts, as agentbench does; one op is one event. The log is poured in
// order from a fresh engine each time round, so buckets are created,
// filled, overflowed and left to leak as in a replay.
func BenchmarkPourHub(b *testing.B) {
	for _, kind := range []string{"nginx", "sshd"} {
		b.Run(kind, func(b *testing.B) {
			r := hubReplay(b, kind, 30000)
			evts := r.fresh()
			e := r.engine(b)
			preps := make([]leakybucket.Prepared, len(evts))
			for i := range evts {
				preps[i] = e.Prepare(&evts[i])
			}
			b.ReportAllocs()
			// CPU time as well as wall time: on a shared machine it
			// varies less
			var cpu time.Duration
			start := cpuTime()
			i := 0
			for b.Loop() {
				if i == len(evts) {
					b.StopTimer()
					cpu += cpuTime() - start
					e, i = r.engine(b), 0
					start = cpuTime()
					b.StartTimer()
				}
				e.PourPrepared(&evts[i], preps[i])
				i++
			}
			cpu += cpuTime() - start
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time (user and system) the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
