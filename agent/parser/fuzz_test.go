package parser_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/agent/grok"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/leakybucket"
	"github.com/rampart-ips/rampart/agent/parser"
	"github.com/rampart-ips/rampart/internal/testhub"
	"github.com/rampart-ips/rampart/rules/patterns"
)

// hubEngine is a pipeline and scenarios loaded from the shared hub.
type hubEngine struct {
	pipe      *parser.Pipeline
	scenarios []*leakybucket.Scenario
}

var fuzzParsers = []string{
	"crowdsecurity/syslog-logs", "crowdsecurity/sshd-logs", "crowdsecurity/nginx-logs",
	"crowdsecurity/dateparse-enrich", "crowdsecurity/http-logs",
}

var fuzzScenarios = []string{"crowdsecurity/ssh-bf", "crowdsecurity/http-probing"}

func sharedHub(tb testing.TB) string {
	tb.Helper()
	return testhub.Dir(tb)
}

func loadHubEngine(tb testing.TB, parsers, scenarios []string) *hubEngine {
	tb.Helper()
	dir := sharedHub(tb)
	h, err := hub.OpenHub(dir)
	if err != nil {
		tb.Fatal(err)
	}
	lib := grok.NewLibrary()
	if err := lib.LoadFS(patterns.FS, "."); err != nil {
		tb.Fatal(err)
	}
	if err := lib.LoadDir(filepath.Join(dir, "patterns")); err != nil {
		tb.Fatal(err)
	}
	helpers := exprhelpers.New(filepath.Join(dir, "data"))
	var items []parser.Item
	for _, ref := range parsers {
		path, _, stage, err := h.Resolve("parsers", ref)
		if err != nil {
			tb.Fatal(err)
		}
		items = append(items, parser.Item{Name: ref, Stage: stage, Path: path})
	}
	pipe, err := parser.New(items, lib, helpers, nil)
	if err != nil {
		tb.Fatal(err)
	}
	he := &hubEngine{pipe: pipe}
	for _, ref := range scenarios {
		path, _, _, err := h.Resolve("scenarios", ref)
		if err != nil {
			tb.Fatal(err)
		}
		sc, err := leakybucket.Load(path, h.Version("scenarios", ref), helpers)
		if err != nil {
			tb.Fatal(err)
		}
		he.scenarios = append(he.scenarios, sc...)
	}
	return he
}

func (he *hubEngine) parse(tb testing.TB, line, typ string) event.Event {
	tb.Helper()
	evt := event.New(event.Line{Raw: line, Src: "/var/log/fuzz.log", Module: "file", Labels: map[string]string{"type": typ}})
	if err := he.pipe.Parse(&evt, nil); err != nil {
		tb.Fatalf("Parse(%q): %v", trunc(line), err)
	}
	return evt
}

func trunc(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

var fuzzSeeds = []string{
	"Nov  1 12:00:00 host sshd[42]: Failed password for root from 1.2.3.4 port 22 ssh2",
	"Nov  1 12:00:00 host sshd[42]: Invalid user admin from 1.2.3.4 port 4242",
	"2026-11-01T12:00:00.123456+01:00 host sshd[42]: Failed password for invalid user bob from 2001:db8::1 port 22 ssh2",
	`1.2.3.4 - - [01/Nov/2026:12:00:00 +0000] "GET /.env HTTP/1.1" 404 153 "-" "curl/8.0"`,
	`1.2.3.4 - - [01/Nov/2026:12:00:00 +0000] "GET /index.php?x=%00 HTTP/1.1" 400 0 "-" "-"`,
	`2026/11/01 12:00:00 [error] 42#42: *1 open() "/usr/share/nginx/html/x" failed (2: No such file or directory), client: 1.2.3.4, server: _, request: "GET /x HTTP/1.1", host: "h"`,
	"",
	"\x00\x00\x00",
	"\xff\xfe\xfd sshd[1]: Failed password for \xff from 1.2.3.4 port 22 ssh2",
	"Nov  1 12:00:00 host sshd[42]: Failed password for root from 999.2.3.4 port 99999 ssh2",
}

// FuzzParsePipeline feeds arbitrary lines through real hub parsers: it must
// never panic or fail, and an event the parsers reject (Process=false)
// must have no effect on the buckets when poured.
func FuzzParsePipeline(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	he := loadHubEngine(f, fuzzParsers, fuzzScenarios)
	engine := leakybucket.NewEngine(he.scenarios, true)
	f.Fuzz(func(t *testing.T, line string, nginx bool) {
		typ := "syslog"
		if nginx {
			typ = "nginx"
		}
		evt := he.parse(t, line, typ)
		if !evt.Process {
			before := engine.Buckets()
			if ovf := engine.Pour(&evt); len(ovf) != 0 {
				t.Fatalf("unparsed line %q overflowed %d buckets", trunc(line), len(ovf))
			}
			if engine.Buckets() > before {
				t.Fatalf("unparsed line %q created a bucket (stage %s, meta %v)", trunc(line), evt.Stage, evt.Meta)
			}
			return
		}
		for _, s := range he.scenarios {
			s.Matches(&evt)
		}
		engine.Pour(&evt)
		if engine.Buckets() > 10000 {
			t.Fatalf("%d buckets", engine.Buckets())
		}
	})
}

// TestHostileLines sends huge, binary, invalid UTF-8 and NUL-laden lines
// through the real hub parsers: they end unparsed (Process false), never
// panic and never stall. A well-formed sshd line with one odd byte in the
// user name still parses: dropping it would let an attacker hide a brute
// force behind such names.
func TestHostileLines(t *testing.T) {
	he := loadHubEngine(t, fuzzParsers, fuzzScenarios)
	engine := leakybucket.NewEngine(he.scenarios, true)
	bin := make([]byte, 4096)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	sshPrefix := "Nov  1 12:00:00 host sshd[42]: Failed password for root from 1.2.3.4 port 22 ssh2"
	nearLimit := strings.Replace(sshPrefix, "root", strings.Repeat("r", parser.DefaultMaxLineBytes-len(sshPrefix)), 1)
	cases := map[string]struct {
		line     string
		typ      string
		mayParse bool
	}{
		"1MiB of a":          {line: strings.Repeat("a", 1<<20), typ: "syslog"},
		"10MiB of a":         {line: strings.Repeat("a", 10<<20), typ: "syslog"},
		"10MiB nginx-ish":    {line: "1.2.3.4 - - [" + strings.Repeat("x", 10<<20), typ: "nginx"},
		"1MiB sshd message":  {line: strings.Replace(sshPrefix, "root", strings.Repeat("r", 1<<20), 1), typ: "syslog"},
		"10MiB sshd message": {line: strings.Replace(sshPrefix, "root", strings.Repeat("r", 10<<20), 1), typ: "syslog"},
		"1MiB of NUL":        {line: strings.Repeat("\x00", 1<<20), typ: "syslog"},
		"1MiB binary":        {line: strings.Repeat(string(bin), 256), typ: "nginx"},
		"near the limit":     {line: nearLimit, typ: "syslog", mayParse: true},
		"binary":             {line: string(bin), typ: "syslog"},
		"binary nginx":       {line: string(bin), typ: "nginx"},
		"invalid utf-8":      {line: "\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc", typ: "syslog"},
		"NUL bytes":          {line: strings.Repeat("\x00", 1000), typ: "syslog"},
		"NUL nginx":          {line: strings.Repeat("\x00", 1000), typ: "nginx"},
		"NUL inside sshd":    {line: strings.Replace(sshPrefix, "root", "ro\x00ot", 1), typ: "syslog", mayParse: true},
		"invalid utf-8 user": {line: strings.Replace(sshPrefix, "root", "\xff\xfe", 1), typ: "syslog", mayParse: true},
		"CR LF":              {line: "\r\n\r\n", typ: "syslog"},
		// a user name copying sshd's text a thousand times: dropped as
		// possibly forged, in time linear in the line
		"injected frames": {line: "Nov  1 12:00:00 host sshd[42]: Failed password for invalid user x" +
			strings.Repeat(" from 198.51.100.200 port 22 ssh2", 1500) + " from 203.0.113.9 port 5555 ssh2", typ: "syslog"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			evt := he.parse(t, c.line, c.typ)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
			if evt.Process && !c.mayParse {
				t.Errorf("parsed: meta %v", evt.Meta)
			}
			if !evt.Process {
				if ovf := engine.Pour(&evt); len(ovf) > 0 {
					t.Errorf("unparsed line overflowed")
				}
				return
			}
			// it parsed: the fields must be the line's own bytes
			for k, v := range evt.Parsed {
				if len(v) > len(c.line) {
					t.Errorf("Parsed[%s] longer than the line", k)
				}
			}
			engine.Pour(&evt)
		})
	}
}

// FuzzLoadParser loads arbitrary bytes as a parser file: the result is a
// pipeline or a *parser.LoadError, never a panic (and never one caught by
// the loader's own recover, which would hide a bug).
func FuzzLoadParser(f *testing.F) {
	if dir := testhub.DirIfPresent(f); dir != "" {
		files, _ := filepath.Glob(filepath.Join(dir, "parsers", "*", "*", "*.yaml"))
		for _, p := range files {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	for _, s := range []string{
		"name: a\nfilter: \"evt.Meta[\"\n",
		"name: a\nnodes:\n  - grok:\n      pattern: \"%{IP:x\"\n",
		"name: a\npattern_syntax:\n  X: \"(\"\n",
		"name: a\nwhitelist:\n  cidr: [\"::/999\"]\n",
		"---\n---\nname: a\n",
	} {
		f.Add([]byte(s))
	}
	lib := grok.NewLibrary()
	if err := lib.LoadFS(patterns.FS, "."); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "fuzz.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		// helpers nil: a fuzzed data: block must not read files
		_, err := parser.New([]parser.Item{{Name: "fuzz/x", Stage: "s01-parse", Path: path}}, lib, nil, nil)
		if err == nil {
			return
		}
		var le *parser.LoadError
		if !errors.As(err, &le) {
			t.Fatalf("%T: %v", err, err)
		}
		if strings.Contains(err.Error(), "internal error") {
			t.Fatalf("recovered panic: %v", err)
		}
	})
}
