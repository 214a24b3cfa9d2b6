package parser_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/agent/grok"
	"github.com/rampart-ips/rampart/agent/leakybucket"
	"github.com/rampart-ips/rampart/agent/parser"
	"github.com/rampart-ips/rampart/rules/patterns"
)

func writeRule(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func testLibrary(t *testing.T) *grok.Library {
	t.Helper()
	lib := grok.NewLibrary()
	if err := lib.LoadFS(patterns.FS, "."); err != nil {
		t.Fatal(err)
	}
	return lib
}

func loadBroken(t *testing.T, body string) *parser.LoadError {
	t.Helper()
	path := writeRule(t, "broken.yaml", body)
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic: %v", r)
			}
		}()
		_, err = parser.New([]parser.Item{{Name: "test/broken", Stage: "s01-parse", Path: path}}, testLibrary(t), exprhelpers.New(t.TempDir()), nil)
	}()
	if err == nil {
		t.Fatalf("no error for:\n%s", body)
	}
	var le *parser.LoadError
	if !errors.As(err, &le) {
		t.Fatalf("%T is not a *parser.LoadError: %v", err, err)
	}
	if le.File != path || le.Item != "test/broken" {
		t.Errorf("LoadError file %q item %q", le.File, le.Item)
	}
	for _, want := range []string{path, "test/broken"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	return le
}

// TestParserLoadErrors writes one broken parser per case and checks the
// error names the file, the item, the document, the node, the key and the
// YAML line of that key (expr errors also carry their own line:column).
func TestParserLoadErrors(t *testing.T) {
	cases := []struct {
		name, body string
		doc        int
		node, key  string
		line       int
		want       []string // substrings of the message
	}{
		{"yaml syntax", "name: test/broken\nfilter: \"1 == 1\"\ngrok:\n  pattern: [unclosed\n", 1, "", "", 3, []string{"yaml"}},
		{"yaml bad indent", "name: test/broken\n filter: x\nfoo: bar\n", 1, "", "", 2, []string{"yaml"}},
		{"yaml tab", "name: test/broken\n\tfilter: x\n", 1, "", "", 2, []string{"yaml"}},
		{"not a mapping", "- a\n- b\n", 1, "", "", 1, []string{"cannot unmarshal"}},
		{"unknown field", "name: test/broken\nfilterz: \"true\"\n", 1, "", "filterz", 2, []string{"unknown key"}},
		{"unknown nested field", "name: test/broken\ngrok:\n  pattern: a\n  apply_onn: message\n", 1, "", "apply_onn", 4, []string{"unknown key"}},
		{"wrong type", "name: test/broken\nstatics: {meta: x}\n", 1, "", "", 2, []string{"cannot unmarshal"}},
		{"second document", "name: test/ok\nfilter: \"true\"\n---\nname: test/broken\nstatics: {meta: x}\n", 2, "", "", 5, []string{"document 2"}},
		{"expr filter", "name: test/broken\nfilter: \"evt.Parsed.program == \"\n", 1, "", "filter", 2, []string{"(1:22)"}},
		{"expr multi-line filter", "name: test/broken\ndescription: d\nfilter: |\n  evt.Line.Labels.type == 'x'\n  && evt.Nope.y\n", 1, "", "filter", 3, []string{"(2:"}},
		{"expr unknown function", "name: test/broken\nfilter: \"NoSuchHelper(evt.Line.Raw)\"\n", 1, "", "filter", 2, []string{"NoSuchHelper", "(1:1)"}},
		{"expr in statics", "name: test/broken\nstatics:\n  - meta: a\n    value: b\n  - meta: x\n    expression: \"evt.Parsed.a +* 2\"\n", 1, "", "statics[1].expression", 6, []string{"(1:15)"}},
		{"expr in grok statics", "name: test/broken\ngrok:\n  pattern: a\n  apply_on: message\n  statics:\n    - meta: x\n      expression: \"evt.(\"\n", 1, "", "grok.statics[0].expression", 7, nil},
		{"grok expression", "name: test/broken\ngrok:\n  pattern: a\n  expression: \"evt.Parsed[\"\n", 1, "", "grok.expression", 4, nil},
		{"expr in sub-node", "name: test/broken\nnodes:\n  - grok:\n      pattern: a\n      apply_on: message\n  - filter: \"evt.Meta[\"\n", 1, "node 1", "filter", 6, []string{"node 1: filter", "(1:9)"}},
		{"expr in sub-sub-node", "name: test/broken\nnodes:\n  - nodes:\n    - filter: \"true\"\n    - grok:\n        pattern: \"%{NOPE}\"\n", 1, "node 0/node 1", "grok.pattern", 6, []string{"NOPE"}},
		{"expr in whitelist", "name: test/broken\nwhitelist:\n  reason: r\n  expression:\n    - \"true\"\n    - \"evt.Meta.source_ip in\"\n", 1, "", "whitelist.expression[1]", 6, []string{"(1:21)"}},
		{"grok unknown pattern", "name: test/broken\ngrok:\n  pattern: \"%{NO_SUCH_PATTERN:x} foo\"\n  apply_on: message\n", 1, "", "grok.pattern", 3, []string{"NO_SUCH_PATTERN"}},
		{"grok bad regexp", "name: test/broken\ngrok:\n  pattern: \"(?<x>[a-z\"\n  apply_on: message\n", 1, "", "grok.pattern", 3, []string{"offset"}},
		{"grok unknown name", "name: test/broken\ngrok:\n  name: NO_SUCH_NAME\n  apply_on: message\n", 1, "", "grok.name", 3, []string{"NO_SUCH_NAME"}},
		{"pattern_syntax", "name: test/broken\npattern_syntax:\n  OK_PAT: a+\n  MYPAT: \"(unclosed\"\ngrok:\n  pattern: \"%{MYPAT}\"\n  apply_on: message\n", 1, "", "pattern_syntax.MYPAT", 4, []string{"MYPAT"}},
		{"pattern_syntax name", "name: test/broken\npattern_syntax:\n  \"BAD NAME\": a\n", 1, "", "pattern_syntax.BAD NAME", 3, []string{"invalid pattern name"}},
		{"whitelist cidr", "name: test/broken\nwhitelist:\n  reason: r\n  cidr:\n    - 10.0.0.0/8\n    - 10.0.0.0/99\n", 1, "", "whitelist.cidr[1]", 6, []string{"10.0.0.0/99"}},
		{"whitelist ip", "name: test/broken\nwhitelist:\n  reason: r\n  ip: [\"1.2.3.999\"]\n", 1, "", "whitelist.ip[0]", 4, []string{"1.2.3.999"}},
		{"data type", "name: test/broken\ndata:\n  - dest_file: x.txt\n    type: nope\n", 1, "", "data", 2, nil},
		// constructs Rampart refuses rather than load and behave otherwise
		{"upstream-only key", "name: test/broken\nprofiling: true\nfilter: \"true\"\n", 1, "", "profiling", 2, []string{"not supported by Rampart"}},
		{"format", "name: test/broken\nformat: 5.0\nfilter: \"true\"\n", 1, "", "format", 2, []string{"format 5.0 is not supported"}},
		{"onsuccess", "name: test/broken\nfilter: \"true\"\nonsuccess: next_parser\nstatics:\n  - meta: a\n    value: b\n", 1, "", "onsuccess", 3, []string{"next_parser"}},
		{"onsuccess in sub-node", "name: test/broken\nnodes:\n  - filter: \"true\"\n    onsuccess: stop\n", 1, "node 0", "onsuccess", 4, []string{"stop"}},
		{"enrichment method", "name: test/broken\nstatics:\n  - meta: a\n    value: b\n  - method: UnmarshalJSON\n    expression: evt.Line.Raw\n", 1, "", "statics[1].method", 5, []string{"UnmarshalJSON", "not supported by Rampart"}},
		{"grok without apply_on", "name: test/broken\nfilter: \"true\"\ngrok:\n  pattern: \"%{IP:ip}\"\n", 1, "", "grok", 3, []string{"apply_on or expression"}},
		{"static without destination", "name: test/broken\nstatics:\n  - value: b\n", 1, "", "statics[0]", 3, []string{"needs a method, meta"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			le := loadBroken(t, c.body)
			msg := le.Error()
			t.Log(msg)
			if le.Doc != c.doc || le.Node != c.node || le.Key != c.key || le.Line != c.line {
				t.Errorf("got doc %d node %q key %q line %d, want doc %d node %q key %q line %d",
					le.Doc, le.Node, le.Key, le.Line, c.doc, c.node, c.key, c.line)
			}
			if want := fmt.Sprintf("line %d", c.line); !strings.Contains(msg, want) {
				t.Errorf("message lacks %q", want)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q", w)
				}
			}
		})
	}
}

// TestParserLoadAtomic: a file whose second document is broken adds
// nothing; the pipeline keeps what it had and goes on loading.
func TestParserLoadAtomic(t *testing.T) {
	good := writeRule(t, "good.yaml", "name: test/good\nfilter: \"true\"\nstatics:\n  - meta: ok\n    value: yes\n")
	broken := writeRule(t, "broken.yaml", "name: test/half\nfilter: \"true\"\n---\nname: test/broken\nfilter: \"(\"\n")
	p := parser.NewPipeline(testLibrary(t), nil, nil)
	if err := p.Load(parser.Item{Name: "test/good", Stage: "s01-parse", Path: good}); err != nil {
		t.Fatal(err)
	}
	if err := p.Load(parser.Item{Name: "test/broken", Stage: "s00-raw", Path: broken}); err == nil {
		t.Fatal("no error")
	}
	if got := p.Stages(); len(got) != 1 || got[0] != "s01-parse" || len(p.Items()) != 1 {
		t.Fatalf("stages %v items %v", got, p.Items())
	}
	var seen []string
	evt := event.New(event.Line{Raw: "x"})
	if err := p.Parse(&evt, func(_, name string, _ *event.Event, _ bool) { seen = append(seen, name) }); err != nil {
		t.Fatal(err)
	}
	if !evt.Process || evt.Meta["ok"] != "yes" || len(seen) != 1 || seen[0] != "test/good" {
		t.Errorf("process %v meta %v nodes %v", evt.Process, evt.Meta, seen)
	}
}

// TestParserLoadGarbage loads files no one should write: it must never
// panic, and empty or comment-only files load as nothing.
func TestParserLoadGarbage(t *testing.T) {
	bin := make([]byte, 2048)
	for i := range bin {
		bin[i] = byte(i*31 + 7)
	}
	for name, body := range map[string]string{
		"binary":        string(bin),
		"NUL":           "name: a\x00b\n",
		"invalid utf-8": "name: \xff\xfe\nfilter: \"\xc3\x28\"\n",
		"alias bomb":    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nname: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
		"deep nodes":    "name: x\n" + strings.Repeat("nodes:\n- ", 200) + "filter: \"true\"\n",
		"scalar":        "42\n",
		"null nodes":    "name: x\nnodes: [~, ~]\n",
		"empty":         "",
		"comments":      "# nothing\n---\n# still nothing\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := writeRule(t, "garbage.yaml", body)
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("panic: %v", r)
				}
			}()
			_, err := parser.New([]parser.Item{{Name: "test/garbage", Stage: "s01-parse", Path: path}}, testLibrary(t), nil, nil)
			t.Log(err)
			var le *parser.LoadError
			if err != nil && !errors.As(err, &le) {
				t.Errorf("%T: %v", err, err)
			}
		})
	}
}

func TestParserMissingFile(t *testing.T) {
	lib := grok.NewLibrary()
	_, err := parser.New([]parser.Item{{Name: "test/missing", Stage: "s01-parse", Path: "/nonexistent/x.yaml"}}, lib, nil, nil)
	var le *parser.LoadError
	if !errors.As(err, &le) || le.Item != "test/missing" || !strings.Contains(err.Error(), "/nonexistent/x.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestScenarioLoadErrors(t *testing.T) {
	cases := []struct {
		name, body string
		want       []string
		pos        string
	}{
		{"yaml syntax", "type: leaky\nname: test/broken\nfilter: [\n", nil, `line \d+`},
		{"unknown field", "type: leaky\nname: test/broken\ncapacityy: 5\n", []string{"capacityy"}, `line 3`},
		{"expr filter", "type: leaky\nname: test/broken\nfilter: \"evt.Meta.log_type ==\"\ncapacity: 5\nleakspeed: 10s\n", []string{"test/broken", "filter"}, `\(1:\d+\)`},
		{"expr groupby", "type: leaky\nname: test/broken\nfilter: \"true\"\ngroupby: \"evt.Meta[\"\ncapacity: 5\nleakspeed: 10s\n", []string{"test/broken", "groupby"}, `\(1:\d+\)`},
		{"expr condition", "type: conditional\nname: test/broken\nfilter: \"true\"\ncondition: \"len(queue.Nope) >\"\nleakspeed: 10s\n", []string{"test/broken", "condition"}, `\(1:\d+\)`},
		{"bad leakspeed", "type: leaky\nname: test/broken\nfilter: \"true\"\ncapacity: 5\nleakspeed: 10 parsecs\n", []string{"test/broken", "leakspeed"}, ``},
		{"unknown type", "type: leakyy\nname: test/broken\nfilter: \"true\"\n", []string{"test/broken", "leakyy"}, ``},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeRule(t, "broken-scenario.yaml", c.body)
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panic: %v", r)
					}
				}()
				_, err = leakybucket.Load(path, "", exprhelpers.New(t.TempDir()))
			}()
			if err == nil {
				t.Fatalf("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("error does not name the file: %v", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %v", w, msg)
				}
			}
			if c.pos != "" && !regexp.MustCompile(c.pos).MatchString(msg) {
				t.Errorf("error lacks a position (%s): %v", c.pos, msg)
			}
			t.Log(msg)
		})
	}
}
