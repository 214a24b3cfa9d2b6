package leakybucket_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/leakybucket"
)

// Two documents of one file with the same name and filter, as
// lourys/pterodactyl-wings-bf: a brute force, then a user enumeration.
const sharedDocs = `type: leaky
name: test/shared
filter: "evt.Meta.log_type == 'ssh_failed-auth'"
groupby: evt.Meta.source_ip
capacity: 5
leakspeed: 10m
---
type: leaky
name: test/shared
filter: evt.Meta.log_type == 'ssh_failed-auth'
groupby: evt.Meta.source_ip
distinct: evt.Meta.target_user
capacity: 5
leakspeed: 10m
`

// Scenarios with the same name and filter share one bucket per key, as
// upstream names buckets by filter, groupby value and name: each event is
// poured once per scenario into the bucket of whichever created it, under
// that one's settings. Here the first (no distinct) owns it, so two users
// alternating overflow it at the third event (the sixth pour), once;
// apart, the first would need six events and the second never overflow.
func TestSameNameAndFilterShareBuckets(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, sharedDocs), true)
	var ovfAt []int
	for i := range 5 {
		user := []string{"admin", "root"}[i%2]
		if ovf := e.Pour(sshEvent("1.2.3.4", user, "ssh_failed-auth", t0.Add(time.Duration(i)*time.Second))); len(ovf) > 0 {
			if len(ovf) != 1 || ovf[0].Overflow.Alert.EventsCount != 6 || len(ovf[0].Overflow.Alert.Events) != 6 {
				t.Fatalf("event %d: %d overflows, want one of 6 events", i+1, len(ovf))
			}
			ovfAt = append(ovfAt, i+1)
		}
	}
	// the third event overflows the shared bucket at the first scenario's
	// pour; the second's pour of it starts a bucket of its own (distinct),
	// which the two users never overflow
	if len(ovfAt) != 1 || ovfAt[0] != 3 {
		t.Fatalf("overflows after events %v, want [3]", ovfAt)
	}
}

// The bucket's owner's settings rule it: when the first document has the
// distinct, the second's pours of an already seen user are dropped too.
func TestSharedBucketOwnerDistinct(t *testing.T) {
	docs := strings.SplitN(sharedDocs, "---\n", 2)
	e := leakybucket.NewEngine(loadYAML(t, docs[1]+"---\n"+docs[0]), true)
	if ovf := pour(e, "1.2.3.4", 10, t0, time.Second); len(ovf) != 0 {
		t.Fatalf("one user ten times: %d overflows, want none (the owner's distinct)", len(ovf))
	}
}

// A different filter or name keeps buckets apart.
func TestDifferentFilterOrNameDoNotShare(t *testing.T) {
	for name, doc := range map[string]string{
		"filter": strings.Replace(sharedDocs, "filter: evt.Meta.log_type == 'ssh_failed-auth'", "filter: evt.Meta.log_type in ['ssh_failed-auth']", 1),
		"name":   strings.Replace(sharedDocs, "name: test/shared\nfilter: evt", "name: test/other\nfilter: evt", 1),
	} {
		e := leakybucket.NewEngine(loadYAML(t, doc), true)
		var n int
		for i := range 6 {
			user := []string{"admin", "root"}[i%2]
			n += len(e.Pour(sshEvent("1.2.3.4", user, "ssh_failed-auth", t0.Add(time.Duration(i)*time.Second))))
			if i == 2 && n != 0 {
				t.Errorf("%s differs: overflow at the third event", name)
			}
		}
		if n != 1 {
			t.Errorf("%s differs: %d overflows after six events, want 1", name, n)
		}
	}
}

// A reload keeps the buckets of same-named scenarios each in its place:
// the shared bucket (three events in) overflows at the next event.
func TestAdoptSameNamedScenarios(t *testing.T) {
	old := leakybucket.NewEngine(loadYAML(t, sharedDocs), true)
	pour(old, "1.2.3.4", 2, t0, time.Second)
	e := leakybucket.NewEngine(loadYAML(t, sharedDocs), true)
	if kept, buckets := e.Adopt(old); kept != 2 || buckets != 1 {
		t.Fatalf("Adopt kept %d scenarios, %d buckets; want 2, 1", kept, buckets)
	}
	if ovf := pour(e, "1.2.3.4", 1, t0.Add(2*time.Second), 0); len(ovf) != 1 {
		t.Fatalf("third event after the reload: %d overflows, want 1", len(ovf))
	}
}
