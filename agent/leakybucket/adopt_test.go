package leakybucket_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/leakybucket"
)

// TestAdopt: a reload keeps the buckets of scenarios whose definition is
// identical (5 events before, the 6th after overflows) and drops those of
// a changed scenario, in whatever order the new set lists them.
func TestAdopt(t *testing.T) {
	old := leakybucket.NewEngine(append(loadYAML(t, counterDoc), loadYAML(t, leakyDoc)...), true)
	if ovf := pour(old, "1.2.3.4", 5, t0, 100*time.Millisecond); len(ovf) != 0 {
		t.Fatalf("5 events overflowed")
	}
	// Same files, loaded again, in another order: both kept.
	e := leakybucket.NewEngine(append(loadYAML(t, leakyDoc), loadYAML(t, counterDoc)...), true)
	if kept, buckets := e.Adopt(old); kept != 2 || buckets != 2 {
		t.Fatalf("Adopt kept %d scenarios, %d buckets; want 2, 2", kept, buckets)
	}
	ovf := pour(e, "1.2.3.4", 1, t0.Add(600*time.Millisecond), 0)
	if len(ovf) != 1 || ovf[0].Overflow.Alert.Scenario != "test/leaky" || ovf[0].Overflow.Alert.EventsCount != 6 {
		t.Fatalf("the 6th event after the reload: %d overflows, want test/leaky with 6 events", len(ovf))
	}
	// The counter kept its due time: ten minutes after its first event.
	if ovf := e.Tick(t0.Add(10*time.Minute - time.Second)); len(ovf) != 0 {
		t.Fatalf("counter overflowed early")
	}
	if ovf := e.Tick(t0.Add(10 * time.Minute)); len(ovf) != 1 || ovf[0].Overflow.Alert.EventsCount != 6 {
		t.Fatalf("counter after the reload: %d overflows, want 1 of 6 events", len(ovf))
	}

	// A changed scenario (capacity 6) starts empty.
	changed := leakybucket.NewEngine(loadYAML(t, leakyDoc), true)
	pour(changed, "5.6.7.8", 5, t0, 100*time.Millisecond)
	next := leakybucket.NewEngine(loadYAML(t, strings.Replace(leakyDoc, "capacity: 5", "capacity: 6", 1)), true)
	if kept, buckets := next.Adopt(changed); kept != 0 || buckets != 0 {
		t.Fatalf("Adopt kept %d scenarios, %d buckets of a changed scenario", kept, buckets)
	}
	if ovf := pour(next, "5.6.7.8", 6, t0.Add(time.Second), 10*time.Millisecond); len(ovf) != 0 {
		t.Fatalf("a changed scenario inherited the old bucket")
	}
}

// A reload inside a blackhole keeps it and the bucket filling meanwhile:
// the key's overflow still inside it is discarded, the first after it ends
// is an alert.
func TestAdoptBlackhole(t *testing.T) {
	doc := leakyDoc + "blackhole: 1m\n"
	old := leakybucket.NewEngine(loadYAML(t, doc), true)
	if ovf := pour(old, "1.2.3.4", 6, t0, 100*time.Millisecond); len(ovf) != 1 {
		t.Fatalf("first burst: %d overflows", len(ovf))
	}
	pour(old, "1.2.3.4", 3, t0.Add(58*time.Second), 100*time.Millisecond)
	e := leakybucket.NewEngine(loadYAML(t, doc), true)
	if kept, buckets := e.Adopt(old); kept != 1 || buckets != 1 {
		t.Fatalf("Adopt kept %d scenarios, %d buckets; want 1, 1", kept, buckets)
	}
	if ovf := pour(e, "1.2.3.4", 3, t0.Add(58300*time.Millisecond), 100*time.Millisecond); len(ovf) != 0 {
		t.Fatalf("an overflow inside the adopted blackhole was kept")
	}
	pour(e, "1.2.3.4", 5, t0.Add(59*time.Second), 100*time.Millisecond)
	ovf := pour(e, "1.2.3.4", 1, t0.Add(61*time.Second), 0)
	if len(ovf) != 1 || ovf[0].Overflow.Alert.EventsCount != 6 {
		t.Fatalf("after the blackhole: %d overflows, want 1 of 6 events", len(ovf))
	}
}
