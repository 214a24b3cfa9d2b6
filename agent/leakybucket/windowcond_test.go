package leakybucket

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
)

// TestWindowedCondition: a trimmed conditional bucket runs its condition
// on the lists of queued events matching each predicate, kept as it
// pours, instead of filtering the queue; the overflows are those of the
// plain condition on the untrimmed queue, for conditions of several
// predicates, repeated ones, lets and slices, on random streams. The
// predicates and the condition must take the fast paths (a closure per
// predicate, a windowed condition), or the test checks nothing.
func TestWindowedCondition(t *testing.T) {
	conds := []string{
		`let failedAuths = filter(queue.Queue, {#.Meta.log_type == 'ssh_failed-auth'});
len(failedAuths) >= 4 &&
MedianInterval(map(failedAuths[-4:], {#.Time})) > duration("10m")`,
		"len(filter(queue.Queue, {#.Meta.log_type == 'a'})) >= 3 && len(filter(queue.Queue, {#.Meta.user == 'root'})) > 1",
		"3 <= len(filter(queue.Queue, {#.Meta.log_type == 'a'})) && filter(queue.Queue, {#.Meta.user != 'root'})[-2:][0].Meta.user == 'bob'",
		"let a = filter(queue.Queue, {#.Meta.log_type in ['a', 'b']}); len(a) >= 2 && a[-3:][0].Meta.user == 'root' && len(filter(queue.Queue, {#.Meta.log_type in ['a', 'b']})) > 2",
		"len(filter(queue.Queue, {Upper(#.Meta.user) == 'ROOT'})) >= 2 && len(filter(queue.Queue, {#.Meta.log_type == 'b'})) > 1",
	}
	helpers := exprhelpers.New(t.TempDir())
	for ci, cond := range conds {
		doc := fmt.Sprintf("type: conditional\nname: test/cond%d\nfilter: \"true\"\ngroupby: evt.Meta.source_ip\ncapacity: -1\nleakspeed: 1h\ncondition: |\n  %s\n", ci, indent(cond))
		sc, err := load("cond.yaml", []byte(doc), "", helpers)
		if err != nil {
			t.Fatalf("%s: %v", cond, err)
		}
		s := sc[0]
		if s.windowCond == nil || len(s.window) == 0 {
			t.Fatalf("%s: no windowed condition", cond)
		}
		for _, w := range s.window {
			if w.direct == nil {
				t.Fatalf("%s: a predicate runs in the VM", cond)
			}
		}
		rng := rand.New(rand.NewPCG(uint64(ci), 1))
		var evts []*event.Event
		at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		for range 3000 {
			at = at.Add(time.Duration(rng.IntN(1200)) * time.Second)
			evt := event.New(event.Line{Raw: "synthetic"})
			evt.Meta["source_ip"] = fmt.Sprintf("192.0.2.%d", rng.IntN(4))
			evt.Meta["log_type"] = []string{"a", "b", "c", "ssh_failed-auth"}[rng.IntN(4)]
			evt.Meta["user"] = []string{"root", "bob", "eve"}[rng.IntN(3)]
			evt.MarshaledTime = at.Format(time.RFC3339)
			evts = append(evts, &evt)
		}
		run := func(trim bool) []string {
			e := NewEngine(sc, true)
			e.trim = trim
			var out []string
			for i, evt := range evts {
				for _, o := range e.Pour(evt) {
					out = append(out, fmt.Sprintf("%d %s %d", i, o.Overflow.Mapkey, o.Overflow.Alert.EventsCount))
				}
			}
			return out
		}
		windowed, plain := run(true), run(false)
		if len(plain) == 0 {
			t.Errorf("%s: no overflow", cond)
		}
		if !reflect.DeepEqual(windowed, plain) {
			t.Errorf("%s:\nwindowed %d overflows %v\nplain    %d overflows %v", cond, len(windowed), windowed, len(plain), plain)
		}
	}
}

func indent(s string) string {
	out := []byte{}
	for i := 0; i < len(s); i++ {
		out = append(out, s[i])
		if s[i] == '\n' {
			out = append(out, "  "...)
		}
	}
	return string(out)
}
