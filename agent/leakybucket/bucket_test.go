package leakybucket_test

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/leakybucket"
	"github.com/rampart-ips/rampart/internal/testhub"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func loadYAML(t testing.TB, doc string) []*leakybucket.Scenario {
	t.Helper()
	p := filepath.Join(t.TempDir(), "scenario.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	sc, err := leakybucket.Load(p, "test", nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return sc
}

func sshEvent(ip, user, logType string, at time.Time) *event.Event {
	evt := event.New(event.Line{Raw: "synthetic", Labels: map[string]string{"type": "syslog"}})
	evt.Meta["source_ip"] = ip
	evt.Meta["target_user"] = user
	evt.Meta["log_type"] = logType
	evt.Meta["service"] = "ssh"
	evt.MarshaledTime = at.UTC().Format(time.RFC3339Nano)
	return &evt
}

const leakyDoc = `type: leaky
name: test/leaky
filter: "evt.Meta.log_type == 'ssh_failed-auth'"
groupby: evt.Meta.source_ip
capacity: 5
leakspeed: 10s
labels:
  remediation: true
`

// pour pours n events for ip every step from start and returns the
// overflows.
func pour(e *leakybucket.Engine, ip string, n int, start time.Time, step time.Duration) []event.Event {
	var out []event.Event
	for i := 0; i < n; i++ {
		out = append(out, e.Pour(sshEvent(ip, "root", "ssh_failed-auth", start.Add(time.Duration(i)*step)))...)
	}
	return out
}

func TestLeakyOverflowTiming(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, leakyDoc), true)
	// five events fit in a capacity-5 bucket, the sixth overflows
	if ovf := pour(e, "1.2.3.4", 5, t0, 150*time.Millisecond); len(ovf) != 0 {
		t.Fatalf("5 events overflowed")
	}
	ovf := e.Pour(sshEvent("1.2.3.4", "root", "ssh_failed-auth", t0.Add(900*time.Millisecond)))
	if len(ovf) != 1 {
		t.Fatalf("6 events within a second: %d overflows", len(ovf))
	}
	a := ovf[0].Overflow.Alert
	if a.Scenario != "test/leaky" || a.EventsCount != 6 || a.Capacity != 5 || a.Source.IP != "1.2.3.4" || !a.Remediation {
		t.Errorf("alert: %+v source %+v", a, a.Source)
	}
	if ovf[0].Overflow.Mapkey != "1.2.3.4" || len(a.Events) != 6 {
		t.Errorf("mapkey %q, %d events", ovf[0].Overflow.Mapkey, len(a.Events))
	}
	if a.StartAt != t0.Format(time.RFC3339) {
		t.Errorf("start_at %s", a.StartAt)
	}
	if e.Buckets() != 0 {
		t.Errorf("the overflowed bucket is still alive")
	}

	// six events 11 s apart leak faster than they fill
	e = leakybucket.NewEngine(loadYAML(t, leakyDoc), true)
	if ovf := pour(e, "1.2.3.4", 6, t0, 11*time.Second); len(ovf) != 0 {
		t.Errorf("6 events 11s apart overflowed")
	}
	// ... and so do 60 events 10 s apart (exactly the leak speed)
	if ovf := pour(e, "1.2.3.4", 60, t0.Add(time.Hour), 10*time.Second); len(ovf) != 0 {
		t.Errorf("events at the leak speed overflowed")
	}
	// while events just faster than the leak speed eventually overflow
	ovf = pour(e, "1.2.3.4", 60, t0.Add(2*time.Hour), 9*time.Second)
	if len(ovf) == 0 {
		t.Errorf("events every 9s never overflowed a 5/10s bucket")
	}
}

// A blackhole discards only the overflows it sees, as upstream: the key's
// events keep filling a fresh bucket meanwhile, its overflow inside the
// blackhole is discarded (and the bucket emptied, not kept full), and the
// first overflow after the blackhole ends is an alert at once.
func TestBlackhole(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, leakyDoc+"blackhole: 1m\n"), true)
	if ovf := pour(e, "1.2.3.4", 6, t0, 100*time.Millisecond); len(ovf) != 1 {
		t.Fatalf("first burst: %d overflows", len(ovf))
	}
	// within the blackhole: the burst fills buckets, whose overflows are
	// discarded; 20 events make 3 overflows (6+6+6), 2 left in a bucket
	if ovf := pour(e, "1.2.3.4", 20, t0.Add(2*time.Second), 100*time.Millisecond); len(ovf) != 0 {
		t.Errorf("blackholed burst overflowed %d times", len(ovf))
	}
	if e.Buckets() != 1 {
		t.Errorf("a blackholed key has %d buckets, want the one still filling", e.Buckets())
	}
	// another key is not blackholed
	if ovf := pour(e, "5.6.7.8", 6, t0.Add(3*time.Second), 100*time.Millisecond); len(ovf) != 1 {
		t.Errorf("other key: %d overflows", len(ovf))
	}
	// the blackhole ends 1m after the first overflow (t0+500ms), not after
	// the discarded ones (this one at t0+50.5s): a bucket filled before
	// then overflows just after it, on its 6th event
	if ovf := pour(e, "1.2.3.4", 6, t0.Add(50*time.Second), 100*time.Millisecond); len(ovf) != 0 {
		t.Errorf("late in the blackhole: %d overflows", len(ovf))
	}
	if ovf := pour(e, "1.2.3.4", 5, t0.Add(58*time.Second), 100*time.Millisecond); len(ovf) != 0 {
		t.Errorf("5 events overflowed")
	}
	ovf := pour(e, "1.2.3.4", 1, t0.Add(61*time.Second), 0)
	if len(ovf) != 1 {
		t.Fatalf("first overflow after the blackhole: %d overflows", len(ovf))
	}
	if n := ovf[0].Overflow.Alert.EventsCount; n != 6 {
		t.Errorf("events_count %d, want the 6 of the bucket filled across the blackhole's end", n)
	}
}

// One slow ssh attacker, 28 failed logins, against ssh-slow-bf's
// parameters: 11 in 10 s overflow and start the 1 m blackhole; the next 17,
// every 6 s, fill a fresh bucket that overflows (on its 12th, at 82 s)
// after the blackhole has ended. Upstream raises two alerts; dropping the
// events inside the blackhole left too few after it for a second.
func TestBlackholeSlowAttacker(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, `type: leaky
name: test/ssh-slow-bf
filter: "evt.Meta.log_type == 'ssh_failed-auth'"
groupby: evt.Meta.source_ip
capacity: 10
leakspeed: 60s
blackhole: 1m
`), true)
	ovf := pour(e, "198.51.100.7", 11, t0, time.Second)
	ovf = append(ovf, pour(e, "198.51.100.7", 17, t0.Add(16*time.Second), 6*time.Second)...)
	if len(ovf) != 2 {
		t.Fatalf("%d alerts, want 2", len(ovf))
	}
	for i, want := range []struct {
		at     time.Duration
		events int32
	}{{10 * time.Second, 11}, {82 * time.Second, 12}} {
		a := ovf[i].Overflow.Alert
		if a.StopAt != t0.Add(want.at).UTC().Format(time.RFC3339) || a.EventsCount != want.events {
			t.Errorf("alert %d: at %s with %d events, want at %s with %d", i+1, a.StopAt, a.EventsCount, t0.Add(want.at).UTC().Format(time.RFC3339), want.events)
		}
	}
}

func TestDistinct(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, `type: leaky
name: test/user-enum
filter: "evt.Meta.log_type == 'ssh_failed-auth'"
groupby: evt.Meta.source_ip
distinct: evt.Meta.target_user
capacity: 3
leakspeed: 10s
`), true)
	var ovf []event.Event
	for i := 0; i < 50; i++ {
		ovf = append(ovf, e.Pour(sshEvent("1.2.3.4", "root", "ssh_failed-auth", t0.Add(time.Duration(i)*10*time.Millisecond)))...)
	}
	if len(ovf) != 0 {
		t.Fatalf("one user 50 times overflowed")
	}
	for i, u := range []string{"admin", "oracle", "test"} {
		ovf = append(ovf, e.Pour(sshEvent("1.2.3.4", u, "ssh_failed-auth", t0.Add(time.Second+time.Duration(i)*10*time.Millisecond)))...)
	}
	if len(ovf) != 1 {
		t.Fatalf("4 distinct users: %d overflows", len(ovf))
	}
	if n := ovf[0].Overflow.Alert.EventsCount; n != 4 {
		t.Errorf("events_count %d, want 4 (duplicates are not poured)", n)
	}
}

func TestTrigger(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, `type: trigger
name: test/trigger
filter: "evt.Meta.log_type == 'exploit'"
groupby: evt.Meta.source_ip
blackhole: 1m
`), true)
	if ovf := e.Pour(sshEvent("1.2.3.4", "", "ssh_failed-auth", t0)); len(ovf) != 0 {
		t.Errorf("filtered-out event triggered")
	}
	if ovf := e.Pour(sshEvent("1.2.3.4", "", "exploit", t0)); len(ovf) != 1 || ovf[0].Overflow.Alert.EventsCount != 1 {
		t.Fatalf("trigger: %v", ovf)
	}
	if ovf := e.Pour(sshEvent("1.2.3.4", "", "exploit", t0.Add(time.Second))); len(ovf) != 0 {
		t.Errorf("trigger inside its blackhole fired")
	}
	if ovf := e.Pour(sshEvent("9.9.9.9", "", "exploit", t0.Add(time.Second))); len(ovf) != 1 {
		t.Errorf("other source did not trigger")
	}
	if ovf := e.Pour(sshEvent("1.2.3.4", "", "exploit", t0.Add(2*time.Minute))); len(ovf) != 1 {
		t.Errorf("trigger after its blackhole did not fire")
	}
	if e.Buckets() != 0 {
		t.Errorf("triggers left %d buckets", e.Buckets())
	}
}

func TestConditionalCancelOn(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, `type: conditional
name: test/conditional
filter: "evt.Meta.service == 'ssh'"
groupby: evt.Meta.source_ip
capacity: -1
leakspeed: 1m
condition: "len(queue.Queue) >= 3"
cancel_on: "evt.Meta.log_type == 'ssh_success'"
`), true)
	var ovf []event.Event
	at := t0
	step := func(logType string) {
		at = at.Add(time.Second)
		ovf = append(ovf, e.Pour(sshEvent("1.2.3.4", "root", logType, at))...)
	}
	step("ssh_failed-auth")
	step("ssh_failed-auth")
	step("ssh_success") // cancels the bucket
	if e.Buckets() != 0 {
		t.Errorf("cancel_on left %d buckets", e.Buckets())
	}
	step("ssh_failed-auth")
	step("ssh_failed-auth")
	if len(ovf) != 0 {
		t.Fatalf("overflowed before the condition held across a cancel: %d", len(ovf))
	}
	step("ssh_failed-auth")
	if len(ovf) != 1 {
		t.Fatalf("condition held: %d overflows", len(ovf))
	}
	if n := ovf[0].Overflow.Alert.EventsCount; n != 3 {
		t.Errorf("events_count %d", n)
	}
}

func TestGroupByIsolation(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, leakyDoc), true)
	var ovf []event.Event
	for i := 0; i < 5; i++ {
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		ovf = append(ovf, e.Pour(sshEvent("1.1.1.1", "root", "ssh_failed-auth", at))...)
		ovf = append(ovf, e.Pour(sshEvent("2.2.2.2", "root", "ssh_failed-auth", at))...)
	}
	if len(ovf) != 0 || e.Buckets() != 2 {
		t.Fatalf("5+5 events: %d overflows, %d buckets", len(ovf), e.Buckets())
	}
	ovf = e.Pour(sshEvent("1.1.1.1", "root", "ssh_failed-auth", t0.Add(time.Second)))
	if len(ovf) != 1 || ovf[0].Overflow.Alert.Source.IP != "1.1.1.1" || ovf[0].Overflow.Mapkey != "1.1.1.1" {
		t.Fatalf("6th event of 1.1.1.1: %v", ovf)
	}
	for _, me := range ovf[0].Overflow.Alert.Events {
		for _, m := range me.Meta {
			if m.Key == "source_ip" && m.Value != "1.1.1.1" {
				t.Errorf("alert of 1.1.1.1 holds an event of %s", m.Value)
			}
		}
	}
	if e.Buckets() != 1 {
		t.Errorf("2.2.2.2's bucket: %d buckets alive", e.Buckets())
	}
}

type ovfSummary struct {
	Scenario, Key, Start, Stop string
	Count                      int32
}

func summarize(ovf []event.Event) []ovfSummary {
	out := make([]ovfSummary, 0, len(ovf))
	for _, o := range ovf {
		a := o.Overflow.Alert
		out = append(out, ovfSummary{a.Scenario, o.Overflow.Mapkey, a.StartAt, a.StopAt, a.EventsCount})
	}
	return out
}

func TestDeterminism(t *testing.T) {
	docs := leakyDoc + "---\n" + `type: leaky
name: test/user-enum
filter: "evt.Meta.log_type == 'ssh_failed-auth'"
groupby: evt.Meta.source_ip
distinct: evt.Meta.target_user
capacity: 3
leakspeed: 20s
blackhole: 30s
`
	sc := loadYAML(t, docs)
	run := func() []ovfSummary {
		e := leakybucket.NewEngine(sc, true)
		r := rand.New(rand.NewSource(42))
		at := t0
		var ovf []event.Event
		for i := 0; i < 5000; i++ {
			at = at.Add(time.Duration(r.Intn(3000)) * time.Millisecond)
			ip := fmt.Sprintf("10.0.0.%d", r.Intn(8))
			user := fmt.Sprintf("u%d", r.Intn(6))
			ovf = append(ovf, e.Pour(sshEvent(ip, user, "ssh_failed-auth", at))...)
		}
		return summarize(ovf)
	}
	a, b := run(), run()
	if len(a) == 0 {
		t.Fatal("no overflows at all")
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two runs differ: %d vs %d overflows", len(a), len(b))
	}
}

func TestGarbageCollection(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, leakyDoc+"---\n"+`type: conditional
name: test/conditional
filter: "evt.Meta.log_type == 'ssh_failed-auth'"
groupby: evt.Meta.source_ip
capacity: -1
leakspeed: 1m
condition: "len(queue.Queue) > 1000"
`), true)
	for i := 0; i < 200; i++ {
		e.Pour(sshEvent(fmt.Sprintf("10.0.%d.%d", i/250, i%250), "root", "ssh_failed-auth", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	if n := e.Buckets(); n != 400 {
		t.Fatalf("%d buckets, want 400", n)
	}
	// As upstream's time machine, a replay frees buckets every 5,000
	// events, by the time of the one at hand: one source's events an
	// hour later (11 s apart, never overflowing) free the others' at the
	// 5,000th.
	at := t0.Add(time.Hour)
	for i := 200; i < 4999; i++ {
		e.Pour(sshEvent("9.9.9.9", "root", "ssh_failed-auth", at))
		at = at.Add(11 * time.Second)
	}
	if n := e.Buckets(); n != 402 {
		t.Fatalf("after 4,999 events: %d buckets, want 402", n)
	}
	e.Pour(sshEvent("9.9.9.9", "root", "ssh_failed-auth", at))
	if n := e.Buckets(); n != 2 {
		t.Errorf("after the 5,000th event: %d buckets, want 2 (the new source's)", n)
	}
	if e.Tick(at.Add(time.Hour)); e.Buckets() != 0 {
		t.Errorf("a tick an hour later left %d buckets", e.Buckets())
	}
}

// FuzzPour pours random sequences of synthetic events into the hub's
// ssh-bf and http-probing scenarios: no panic, and the number of buckets
// stays bounded by the number of distinct keys.
func FuzzPour(f *testing.F) {
	dir := testhub.Dir(f)
	h, err := hub.OpenHub(dir)
	if err != nil {
		f.Fatal(err)
	}
	helpers := exprhelpers.New(filepath.Join(dir, "data"))
	var scenarios []*leakybucket.Scenario
	for _, ref := range []string{"crowdsecurity/ssh-bf", "crowdsecurity/http-probing"} {
		path, _, _, err := h.Resolve("scenarios", ref)
		if err != nil {
			f.Fatal(err)
		}
		sc, err := leakybucket.Load(path, "", helpers)
		if err != nil {
			f.Fatal(err)
		}
		scenarios = append(scenarios, sc...)
	}
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 9, 17, 25, 33, 41, 49, 57, 65, 73, 81, 89, 97, 105, 113, 121, 255, 254})
	f.Add([]byte("\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\x02\xfa\x02"))
	const ips, users = 8, 4
	f.Fuzz(func(t *testing.T, ops []byte) {
		e := leakybucket.NewEngine(scenarios, true)
		at := t0
		for i, op := range ops {
			ip := fmt.Sprintf("192.0.2.%d", op&7)
			user := fmt.Sprintf("u%d", (op>>3)&3)
			// the top bits choose the time step: mostly bursts, sometimes
			// hours, sometimes backwards
			switch op >> 5 {
			case 0, 1, 2:
				at = at.Add(time.Duration(op>>3) * 100 * time.Millisecond)
			case 3, 4:
				at = at.Add(time.Duration(op) * time.Second)
			case 5:
				at = at.Add(-time.Duration(op&31) * time.Second)
			case 6:
				at = at.Add(time.Duration(op) * time.Hour)
			}
			evt := sshEvent(ip, user, "ssh_failed-auth", at)
			if i%3 == 1 {
				evt.Meta["log_type"] = "http_access-log"
				evt.Meta["service"] = "http"
				evt.Meta["http_status"] = []string{"404", "403", "400", "200"}[op&3]
				evt.Parsed["static_ressource"] = "false"
				evt.Parsed["request"] = fmt.Sprintf("/p%d", op)
				evt.Meta["http_path"] = evt.Parsed["request"]
				evt.Parsed["verb"] = "GET"
			}
			if op == 0xff {
				evt.MarshaledTime = "not a time"
			}
			for _, o := range e.Pour(evt) {
				a := o.Overflow.Alert
				if a == nil || a.Source == nil || a.EventsCount <= 0 || len(a.Events) == 0 {
					t.Fatalf("malformed overflow %+v", o.Overflow)
				}
			}
			if n := e.Buckets(); n > ips*len(scenarios) {
				t.Fatalf("%d buckets for %d keys and %d scenarios", n, ips, len(scenarios))
			}
		}
	})
}

// TestConditionalExpiryIndependentOfOtherKeys: an idle conditional bucket
// expires after its leakspeed whether or not events of other keys made the
// garbage collector run in between.
func TestConditionalExpiryIndependentOfOtherKeys(t *testing.T) {
	doc := `type: conditional
name: test/conditional
filter: "evt.Meta.service == 'ssh'"
groupby: evt.Meta.source_ip
capacity: -1
leakspeed: 1m
condition: "len(queue.Queue) >= 3"
`
	run := func(otherKey bool) int {
		e := leakybucket.NewEngine(loadYAML(t, doc), true)
		n := len(e.Pour(sshEvent("1.1.1.1", "root", "x", t0)))
		n += len(e.Pour(sshEvent("1.1.1.1", "root", "x", t0.Add(59*time.Second))))
		if otherKey {
			n += len(e.Pour(sshEvent("2.2.2.2", "root", "x", t0.Add(119*time.Second))))
		}
		// 61 s after the last event: the bucket has expired
		n += len(e.Pour(sshEvent("1.1.1.1", "root", "x", t0.Add(120*time.Second))))
		return n
	}
	with, without := run(true), run(false)
	if with != without {
		t.Errorf("overflows depend on another key's events: %d with, %d without", with, without)
	}
	if without != 0 {
		t.Errorf("an expired conditional bucket kept its queue: %d overflows", without)
	}
}

// StateWindow is how long a scenario can keep state: what a warm-up must
// read again for its buckets to be rebuilt.
func TestStateWindow(t *testing.T) {
	leaky := loadYAML(t, leakyDoc+"blackhole: 1m\n")
	if w := leaky[0].StateWindow(); w != 5*10*time.Second+time.Minute {
		t.Errorf("leaky: %s, want capacity x leakspeed + blackhole", w)
	}
	counter := loadYAML(t, "type: counter\nname: test/counter\nfilter: \"true\"\ncapacity: -1\nduration: 20m\n")
	if w := counter[0].StateWindow(); w != 20*time.Minute {
		t.Errorf("counter: %s, want its duration", w)
	}
	if w := leakybucket.StateWindow(append(leaky, counter...)); w != 20*time.Minute {
		t.Errorf("both: %s, want the longest", w)
	}
	if w := leakybucket.StateWindow(nil); w != 0 {
		t.Errorf("none: %s", w)
	}
}

// TestAlertMessage: the alert's message is upstream's, to the character.
func TestAlertMessage(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, leakyDoc), true)
	start := t0.Add(1500 * time.Millisecond)
	out := pour(e, "192.0.2.7", 6, start, 250*time.Millisecond)
	if len(out) != 1 {
		t.Fatalf("%d overflows, want 1", len(out))
	}
	want := "Ip 192.0.2.7 performed 'test/leaky' (6 events over 1.25s) at 2026-11-01 12:00:02.75 +0000 UTC"
	if got := out[0].Overflow.Alert.Message; got != want {
		t.Errorf("message\n %q\nwant\n %q", got, want)
	}
}
