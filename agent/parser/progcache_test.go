package parser

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/grok"
)

// An expression repeated across nodes and files is compiled once: the
// nodes share its program and each still runs as written.
func TestRepeatedExpressionsShareAProgram(t *testing.T) {
	dir := t.TempDir()
	doc := `filter: "evt.Line.Labels.type == 'x'"
name: test/%s
statics:
  - meta: %s
    expression: evt.Line.Raw + '-%s'
`
	var items []Item
	for _, n := range []string{"a", "b"} {
		path := filepath.Join(dir, n+".yaml")
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(doc, "%s", n)), 0o600); err != nil {
			t.Fatal(err)
		}
		items = append(items, Item{Name: "test/" + n, Stage: "s01-parse", Path: path})
	}
	p, err := New(items, grok.NewLibrary(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := p.files[0].nodes[0], p.files[1].nodes[0]
	if a.filter == nil || a.filter != b.filter {
		t.Errorf("the filter both files hold was compiled twice")
	}
	evt := event.New(event.Line{Raw: "l", Labels: map[string]string{"type": "x"}})
	if err := p.Parse(&evt, nil); err != nil {
		t.Fatal(err)
	}
	if evt.Meta["a"] != "l-a" || evt.Meta["b"] != "l-b" {
		t.Errorf("meta %v", evt.Meta)
	}
}
