package parser_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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

func loadBroken(t *testing.T, body string) error {
	t.Helper()
	lib := grok.NewLibrary()
	if err := lib.LoadFS(patterns.FS, "."); err != nil {
		t.Fatal(err)
	}
	path := writeRule(t, "broken.yaml", body)
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic: %v", r)
			}
		}()
		_, err = parser.New([]parser.Item{{Name: "test/broken", Stage: "s01-parse", Path: path}}, lib, exprhelpers.New(t.TempDir()), nil)
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
	return err
}

func TestParserLoadErrors(t *testing.T) {
	cases := []struct {
		name, body string
		want       []string // substrings, then a position regexp
		pos        string
	}{
		{"yaml syntax", "name: test/broken\nfilter: \"1 == 1\"\ngrok:\n  pattern: [unclosed\n", []string{"yaml"}, `line \d+`},
		{"yaml bad indent", "name: test/broken\n filter: x\nfoo: bar\n", []string{"yaml"}, `line \d+`},
		{"unknown field", "name: test/broken\nfilterz: \"true\"\n", []string{"filterz"}, `line 2`},
		{"second document", "name: test/ok\nfilter: \"true\"\n---\nname: test/broken\nstatics: {meta: x}\n", []string{"document 2"}, `line \d+`},
		{"expr filter", "name: test/broken\nfilter: \"evt.Parsed.program == \"\n", []string{"filter"}, `\(1:\d+\)`},
		{"expr unknown function", "name: test/broken\nfilter: \"NoSuchHelper(evt.Line.Raw)\"\n", []string{"filter", "NoSuchHelper"}, `\(1:\d+\)`},
		{"expr in statics", "name: test/broken\nstatics:\n  - meta: x\n    expression: \"evt.Parsed.a +* 2\"\n", []string{"statics"}, `\(1:\d+\)`},
		{"expr in sub-node", "name: test/broken\nnodes:\n  - grok:\n      pattern: a\n      apply_on: message\n  - filter: \"evt.Meta[\"\n", []string{"node 1", "filter"}, `\(1:\d+\)`},
		{"expr in whitelist", "name: test/broken\nwhitelist:\n  reason: r\n  expression:\n    - \"evt.Meta.source_ip in\"\n", []string{"whitelist"}, `\(1:\d+\)`},
		{"grok unknown pattern", "name: test/broken\ngrok:\n  pattern: \"%{NO_SUCH_PATTERN:x} foo\"\n  apply_on: message\n", []string{"grok", "NO_SUCH_PATTERN"}, ``},
		{"grok bad regexp", "name: test/broken\ngrok:\n  pattern: \"(?<x>[a-z\"\n  apply_on: message\n", []string{"grok"}, ``},
		{"grok unknown name", "name: test/broken\ngrok:\n  name: NO_SUCH_NAME\n  apply_on: message\n", []string{"grok", "NO_SUCH_NAME"}, ``},
		{"pattern_syntax", "name: test/broken\npattern_syntax:\n  MYPAT: \"(unclosed\"\ngrok:\n  pattern: \"%{MYPAT}\"\n  apply_on: message\n", []string{"MYPAT"}, ``},
		{"whitelist cidr", "name: test/broken\nwhitelist:\n  reason: r\n  cidr: [\"10.0.0.0/99\"]\n", []string{"whitelist"}, ``},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := loadBroken(t, c.body)
			msg := err.Error()
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
