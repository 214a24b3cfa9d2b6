package leakybucket_test

import (
	"maps"
	"testing"

	"github.com/rampart-ips/rampart/agent/event"
)

// TestPouredEventsStayUnchanged: buckets keep the maps of the events
// poured (no copy), so the engine must never write to them once an event
// is poured, whatever scenarios, overflows, re-pours and contexts run
// after. Each event's maps are compared at the end with a snapshot taken
// when it was poured; meanwhile another goroutine reads the maps of every
// event poured, so that under -race a later write by the engine is
// reported even where the value written equals the old one.
func TestPouredEventsStayUnchanged(t *testing.T) {
	if testing.Short() {
		t.Skip("parses generated logs")
	}
	for _, kind := range []string{"sshd", "nginx"} {
		t.Run(kind, func(t *testing.T) {
			r := hubReplay(t, kind, 20000)
			events := r.fresh()
			e := r.engine(t)
			poured := make(chan *event.Event, 64)
			done := make(chan int)
			go func() {
				n := 0
				for evt := range poured {
					for _, m := range []map[string]string{evt.Meta, evt.Enriched, evt.Parsed} {
						for k, v := range m {
							n += len(k) + len(v)
						}
					}
				}
				done <- n
			}()
			type snapshot struct{ meta, enriched, parsed map[string]string }
			snaps := make([]snapshot, len(events))
			overflows := 0
			for i := range events {
				evt := &events[i]
				overflows += len(e.Pour(evt))
				// taken after Pour: filters may set meta before any
				// bucket keeps the event
				snaps[i] = snapshot{maps.Clone(evt.Meta), maps.Clone(evt.Enriched), maps.Clone(evt.Parsed)}
				poured <- evt
			}
			close(poured)
			<-done
			if overflows == 0 {
				t.Fatal("no overflow: the test checks nothing")
			}
			for i := range events {
				evt, s := &events[i], snaps[i]
				if !maps.Equal(evt.Meta, s.meta) || !maps.Equal(evt.Enriched, s.enriched) || !maps.Equal(evt.Parsed, s.parsed) {
					t.Fatalf("event %d (%q) changed after it was poured:\nmeta %v\nwas  %v", i, evt.Line.Raw, evt.Meta, s.meta)
				}
			}
			t.Logf("%d events, %d overflows", len(events), overflows)
		})
	}
}
