package parser_test

import (
	"testing"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/agent/parser"
)

// TestParseUnmarshalJSON: a JSON parser written like the hub's
// (caddy-logs, traefik-logs) decodes into evt.Unmarshaled even when the
// event arrives without that map, as acquisition's events do.
func TestParseUnmarshalJSON(t *testing.T) {
	path := writeRule(t, "json.yaml", `name: test/json
filter: UnmarshalJSON(evt.Line.Raw, evt.Unmarshaled, "app") in ["", nil]
onsuccess: next_stage
statics:
  - meta: source_ip
    expression: evt.Unmarshaled.app.request.remote_ip
  - parsed: kv
    expression: ParseKV("user=bob msg=\"a b\"", evt.Unmarshaled, "kv") ?? ""
  - meta: user
    expression: evt.Unmarshaled.kv.user
`)
	p, err := parser.New([]parser.Item{{Name: "test/json", Stage: "s01-parse", Path: path}}, testLibrary(t), exprhelpers.New(t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	evt := event.Event{Type: event.LOG, Process: true}
	evt.Line.Raw = `{"request":{"remote_ip":"192.0.2.7"}}`
	if err := p.Parse(&evt, nil); err != nil {
		t.Fatal(err)
	}
	if !evt.Process || evt.Meta["source_ip"] != "192.0.2.7" || evt.Meta["user"] != "bob" {
		t.Fatalf("Process %v Meta %v Unmarshaled %v", evt.Process, evt.Meta, evt.Unmarshaled)
	}
}
