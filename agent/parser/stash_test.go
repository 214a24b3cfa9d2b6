package parser_test

import (
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/agent/parser"
)

// A node's stash: section fills a named cache when its grok matches, and
// a later event reads it back with GetFromStash (charon-ipsec-logs' way
// of tying a thread id to the peer it authenticates).
func TestStashSection(t *testing.T) {
	path := writeRule(t, "stash.yaml", `name: test/stash
nodes:
  - grok:
      pattern: '^%{NUMBER:thread} id=%{WORD:id}$'
      apply_on: Line.Raw
    stash:
      - name: threads
        key: evt.Parsed.thread
        value: evt.Parsed.id
        ttl: 1m
        size: 10
  - grok:
      pattern: '^%{NUMBER:thread} failed$'
      apply_on: Line.Raw
    statics:
      - meta: peer
        expression: GetFromStash("threads", evt.Parsed.thread)
`)
	h := exprhelpers.New(t.TempDir())
	p, err := parser.New([]parser.Item{{Name: "test/stash", Stage: "s01-parse", Path: path}}, testLibrary(t), h, nil)
	if err != nil {
		t.Fatal(err)
	}
	parse := func(line string) event.Event {
		evt := event.New(event.Line{Raw: line})
		if err := p.Parse(&evt, nil); err != nil {
			t.Fatal(err)
		}
		return evt
	}
	parse("42 id=alice")
	if got := h.GetFromStash("threads", "42"); got != "alice" {
		t.Fatalf("stash[42] = %q, want alice", got)
	}
	if evt := parse("42 failed"); evt.Meta["peer"] != "alice" {
		t.Fatalf("peer = %q, want alice (meta %v)", evt.Meta["peer"], evt.Meta)
	}
	if evt := parse("7 failed"); evt.Meta["peer"] != "" {
		t.Fatalf("peer of an unknown thread = %q", evt.Meta["peer"])
	}
}

func TestStashSectionErrors(t *testing.T) {
	for body, want := range map[string]string{
		"name: test/broken\nstash:\n  - name: s\n    key: evt.Line.Raw\n":                                              "name, key and value are required",
		"name: test/broken\nstash:\n  - name: s\n    key: evt.Line.Raw\n    value: evt.Line.Raw\n    ttl: soon\n":      "invalid duration",
		"name: test/broken\nstash:\n  - name: s\n    key: evt.Line.Raw\n    value: evt.Line.Raw\n    strategy: FIFO\n": "unknown strategy",
		"name: test/broken\nstash:\n  - name: s\n    key: evt.Nope\n    value: evt.Line.Raw\n":                         "stash[0].key",
	} {
		le := loadBroken(t, body)
		if !strings.Contains(le.Error(), want) {
			t.Errorf("error %q does not say %q", le.Error(), want)
		}
	}
}
