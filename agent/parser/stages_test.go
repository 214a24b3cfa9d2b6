package parser

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/grok"
)

// As upstream, only a successful node with onsuccess: next_stage moves an
// event to the next stage: one whose stage succeeded through other nodes
// only is not processed (pf-logs: the block lines reach s02, the pass
// lines stop after s01). A child with next_stage moves it as well.
func TestStagesNeedNextStage(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"s00-raw": `filter: "true"
name: test/raw
onsuccess: next_stage
statics:
  - meta: raw
    value: "yes"
`,
		"s01-parse": `filter: "true"
name: test/tag
statics:
  - meta: tagged
    value: "yes"
---
filter: "evt.Line.Raw contains 'block'"
name: test/block
onsuccess: next_stage
statics:
  - meta: kind
    value: block
---
filter: "evt.Line.Raw contains 'child'"
name: test/parent
nodes:
  - filter: "true"
    onsuccess: next_stage
    statics:
      - meta: kind
        value: child
`,
		"s02-enrich": `filter: "true"
name: test/enrich
statics:
  - meta: enriched
    value: "yes"
`,
	}
	var items []Item
	for stage, doc := range files {
		path := filepath.Join(dir, stage+".yaml")
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		items = append(items, Item{Name: "test/" + stage, Stage: stage, Path: path})
	}
	p, err := New(items, grok.NewLibrary(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string]bool{"a block line": true, "a pass line": false, "a child line": true} {
		evt := event.New(event.Line{Raw: line})
		if err := p.Parse(&evt, nil); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if evt.Meta["tagged"] != "yes" {
			t.Errorf("%q: s01 node without next_stage did not run: %v", line, evt.Meta)
		}
		if evt.Process != want || (evt.Meta["enriched"] == "yes") != want {
			t.Errorf("%q: processed %v, meta %v; want processed and enriched %v", line, evt.Process, evt.Meta, want)
		}
	}
}
