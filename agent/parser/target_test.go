package parser_test

import (
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/agent/parser"
	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// TestStaticTargets: a static's target may be any string field of the
// event or an entry of one of its maps, as upstream's (windows-bf's test
// sets evt.Line.Module); a target that is no such field assigns nothing.
func TestStaticTargets(t *testing.T) {
	path := writeRule(t, "targets.yaml", `name: test/targets
filter: "true"
statics:
  - target: evt.Line.Module
    value: wineventlog
  - target: Line.Src
    value: /var/log/x.log
  - target: evt.Line.Labels.type
    value: changed
  - target: evt.Unmarshaled.k
    value: v
  - target: evt.Parsed.EventID
    value: "6200"
  - target: source_ip
    value: 192.0.2.1
  - target: evt.Line.Backlog
    value: "true"
  - target: evt.Line.Raw.x
    value: "no"
`)
	p, err := parser.New([]parser.Item{{Name: "test/targets", Stage: "s00-raw", Path: path}}, testLibrary(t), exprhelpers.New(t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	evt := event.New(event.Line{Raw: "x", Module: "file"})
	evt.Unmarshaled = map[string]any{}
	if err := p.Parse(&evt, nil); err != nil {
		t.Fatal(err)
	}
	if evt.Line.Module != "wineventlog" || evt.Line.Src != "/var/log/x.log" || evt.Line.Labels["type"] != "changed" ||
		evt.Unmarshaled["k"] != "v" || evt.Parsed["EventID"] != "6200" {
		t.Errorf("line %+v unmarshaled %v parsed %v", evt.Line, evt.Unmarshaled, evt.Parsed)
	}
	if evt.Line.Backlog || evt.Line.Raw != "x" || evt.Meta["source_ip"] != "" {
		t.Errorf("a target that is no string field was assigned: line %+v meta %v", evt.Line, evt.Meta)
	}
}

// TestLoadDataAndUsesMethod: a parser given as bytes runs in its place in
// the stage (by file name), and UsesMethod sees the statics methods of
// every node, sub-nodes included.
func TestLoadDataAndUsesMethod(t *testing.T) {
	path := writeRule(t, "geo.yaml", `name: test/geo
filter: "true"
nodes:
  - filter: "true"
    statics:
      - method: GeoIpASN
        expression: evt.Meta.source_ip
`)
	p, err := parser.New([]parser.Item{{Name: "test/geo", Stage: "s00-raw", Path: path}}, testLibrary(t), exprhelpers.New(t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p.UsesMethod("GeoIpCity", "GeoIpASN") || p.UsesMethod("GeoIpCity", "reverse_dns") {
		t.Errorf("UsesMethod: ASN %v, city/dns %v", p.UsesMethod("GeoIpCity", "GeoIpASN"), p.UsesMethod("GeoIpCity", "reverse_dns"))
	}
	err = p.LoadData(parser.Item{Name: "first", Stage: "s00-raw", Path: "00_first.yaml"}, []byte(`name: first
filter: "true"
statics:
  - meta: source_ip
    value: 192.0.2.5
`))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	evt := event.New(event.Line{Raw: "x"})
	if err := p.Parse(&evt, func(_, name string, _ *event.Event, _ bool) { order = append(order, name) }); err != nil {
		t.Fatal(err)
	}
	if len(order) == 0 || order[0] != "first" || evt.Meta["source_ip"] != "192.0.2.5" {
		t.Errorf("order %v meta %v", order, evt.Meta)
	}
	if err := p.LoadData(parser.Item{Name: "bad", Stage: "s00-raw", Path: "bad.yaml"}, []byte("filter: \"evt.Nope(\"\n")); err == nil {
		t.Error("a broken parser given as bytes loaded")
	}
}

// TestUnassignableTargetWarnsOnce: a target no event field answers to is
// a property of the rule; it is said once, not once per line (a busy log
// would flood the journal).
func TestUnassignableTargetWarnsOnce(t *testing.T) {
	hook := &logtest.Hook{}
	std := log.StandardLogger()
	saved := std.ReplaceHooks(log.LevelHooks{})
	std.AddHook(hook)
	t.Cleanup(func() { std.ReplaceHooks(saved) })

	path := writeRule(t, "nofield.yaml", `name: test/nofield
filter: "true"
statics:
  - target: evt.NoSuchField
    value: x
`)
	p, err := parser.New([]parser.Item{{Name: "test/nofield", Stage: "s00-raw", Path: path}}, testLibrary(t), exprhelpers.New(t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		evt := event.New(event.Line{Raw: "x", Module: "file"})
		if err := p.Parse(&evt, nil); err != nil {
			t.Fatal(err)
		}
	}
	warnings := 0
	for _, e := range hook.AllEntries() {
		if e.Level <= log.WarnLevel && strings.Contains(e.Message, "cannot assign static target") {
			warnings++
		}
	}
	if warnings != 1 {
		t.Errorf("%d warnings for 5 lines, want 1", warnings)
	}
}
