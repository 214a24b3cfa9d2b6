package leakybucket

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/internal/testhub"
)

func TestQueueWindow(t *testing.T) {
	const timeBased = `let failedAuths = filter(queue.Queue, {#.Meta.log_type == 'ssh_failed-auth'});
len(failedAuths) >= 4 &&
MedianInterval(map(failedAuths[-4:], {#.Time})) > duration("10m")`
	cases := []struct {
		cond string
		want []predWindow // nil: no trimming
	}{
		{timeBased, []predWindow{{`.Meta.log_type == "ssh_failed-auth"`, 4}}},
		{"len(filter(queue.Queue, {#.Meta.x == 'a'})) > 9", []predWindow{{`.Meta.x == "a"`, 10}}},
		{"3 <= len(filter(queue.Queue, {#.Meta.x == 'a'})) && filter(queue.Queue, {#.Meta.y == 'b'})[-6:][0].Meta.z == 'c'",
			[]predWindow{{`.Meta.x == "a"`, 3}, {`.Meta.y == "b"`, 6}}},
		{"let a = filter(queue.Queue, {#.Meta.x == 'a'}); len(a) >= 2 && a[-5:] != nil", []predWindow{{`.Meta.x == "a"`, 5}}},
		// outside the rule: whole-queue reads, non-monotone tests,
		// positional reads, predicates looking beyond their element
		{"len(queue.Queue) >= 3", nil},
		{"len(filter(queue.Queue, {#.Meta.x == 'a'})) == 3", nil},
		{"len(filter(queue.Queue, {#.Meta.x == 'a'})) < 3", nil},
		{"filter(queue.Queue, {#.Meta.x == 'a'})[0].Meta.y == 'b'", nil},
		{"filter(queue.Queue, {#.Meta.x == 'a'})[1:] != nil", nil},
		{"let a = filter(queue.Queue, {#.Meta.x == 'a'}); len(a) >= 2 && a[0] != nil", nil},
		{"len(filter(queue.Queue, {#.Meta.x == queue.Queue[0].Meta.x})) >= 2", nil},
		{"len(filter(queue.Queue, {#index > 2})) >= 2", nil},
		{"let n = 3; len(filter(queue.Queue, {len(#.Meta) > n})) >= 2", nil},
		{"len(filter($env.queue.Queue, {#.Meta.x == 'a'})) >= 2", nil},
		{"len(filter(queue.Queue, {#.Meta.x == 'a'})) >= leaky.Capacity", nil},
		{"leaky.Total_count > 3", nil},
	}
	for _, c := range cases {
		got, ok := queueWindow(c.cond)
		if !ok {
			got = nil
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %v\nwant %v", c.cond, got, c.want)
		}
	}
}

func TestContextValue(t *testing.T) {
	if got := contextValue([]string{"a", "b"}, 100); got != `["a","b"]` {
		t.Errorf("short: %s", got)
	}
	if got := contextValue([]string{"aaaa", "bbbb", "cccc"}, 16); got != `["aaaa","bbbb"]` {
		t.Errorf("dropping the last values: %s", got)
	}
	long := strings.Repeat("é\"<", 2000)
	got := contextValue([]string{long}, MaxContextValueLen)
	var back []string
	if len(got) > MaxContextValueLen || json.Unmarshal([]byte(got), &back) != nil || len(back) != 1 ||
		!strings.HasSuffix(back[0], "...") || !utf8.ValidString(back[0]) || !strings.HasPrefix(long, strings.TrimSuffix(back[0], "...")) {
		t.Errorf("cut value: %d bytes, %q...", len(got), got[:min(len(got), 40)])
	}
	if got := contextValue([]string{"abcdefgh"}, 5); got != "[]" {
		t.Errorf("no room: %s", got)
	}
}

// FuzzLoad loads arbitrary scenario files: an error or scenarios, never a
// panic; and whatever loads can be poured into.
func FuzzLoad(f *testing.F) {
	var hub []string
	if dir := testhub.DirIfPresent(f); dir != "" {
		hub, _ = filepath.Glob(filepath.Join(dir, "scenarios", "crowdsecurity", "ssh-*.yaml"))
	}
	for _, p := range hub {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := load("fuzz.yaml", data, "", nil)
		if err != nil {
			if _, ok := err.(*LoadError); !ok {
				t.Fatalf("%T is not a *LoadError: %v", err, err)
			}
			return
		}
		e := NewEngine(sc, true)
		for range 3 {
			e.Pour(newSSHEvent())
		}
	})
}

func newSSHEvent() *event.Event {
	evt := event.New(event.Line{Raw: "synthetic"})
	evt.Meta["source_ip"] = "192.0.2.1"
	evt.Meta["log_type"] = "ssh_failed-auth"
	evt.Meta["service"] = "ssh"
	evt.MarshaledTime = "2026-11-01T12:00:00Z"
	return &evt
}
