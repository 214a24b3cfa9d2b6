package parser

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"gopkg.in/yaml.v3"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/internal/testhub"
)

// hubStaticExprs returns the expressions of every static of the hub's
// parsers and postoverflows.
func hubStaticExprs(t *testing.T) []string {
	hubDir := testhub.Dir(t)
	var out []string
	seen := map[string]bool{}
	var walk func(n NodeConfig)
	add := func(ss []Static) {
		for _, s := range ss {
			if s.Expression != "" && !seen[s.Expression] {
				seen[s.Expression] = true
				out = append(out, s.Expression)
			}
		}
	}
	walk = func(n NodeConfig) {
		add(n.Statics)
		add(n.Grok.Statics)
		for _, c := range n.Nodes {
			walk(c)
		}
	}
	for _, dir := range []string{"parsers", "postoverflows"} {
		root := filepath.Join(hubDir, dir)
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			dec := yaml.NewDecoder(strings.NewReader(string(data)))
			for {
				var n NodeConfig
				if dec.Decode(&n) != nil {
					break
				}
				walk(n)
			}
			return nil
		})
	}
	if len(out) == 0 {
		t.Fatalf("no static expressions in %s", hubDir)
	}
	return out
}

// A static whose expression is a plain field read, or its len(), gets its
// value without running the program: that value must be the text of what
// the program gives, over the hub's static expressions and hand-picked
// ones, on events with the field set (multibyte text too), set empty,
// missing, and with nil maps.
func TestStaticTextMatchesProgram(t *testing.T) {
	p := NewPipeline(nil, exprhelpers.New(t.TempDir()), nil)
	exprs := append(hubStaticExprs(t), "evt.Parsed.x", `evt.Parsed["x"]`, "evt.Meta.x", "evt.Enriched.x",
		"evt.Line.Raw", "evt.Line.Src", "evt.Line.Module", "evt.Line.Labels.type", "evt.StrTime",
		"evt.StrTimeFormat", "evt.MarshaledTime", "evt.WhitelistReason", "evt.Stage",
		"len(evt.Parsed.x)", "len(evt.Parsed.nope)", "len(evt.Line.Raw)", "len(evt.Meta.x)",
		// not plain reads: run as programs
		"evt.Parsed?.x", "evt.Parsed.x + evt.Parsed.y", "evt.Unmarshaled.x", "len(evt.Line.Labels)",
		"evt.Line.Labels", "evt.Parsed.x.y", "evt.Type", "x.Parsed.x", `evt["Parsed"]["x"]`)
	full := func() *event.Event {
		e := event.New(event.Line{Raw: "raw ünïcødé", Src: "/var/log/x", Module: "file", Labels: map[string]string{"type": "nginx"}})
		e.StrTime, e.StrTimeFormat, e.MarshaledTime, e.WhitelistReason, e.Stage = "st", "fmt", "mt", "wr", "s01-parse"
		e.Unmarshaled = map[string]any{"x": "u"}
		for i, m := range []map[string]string{e.Parsed, e.Meta, e.Enriched} {
			for _, k := range []string{"x", "y", "remote_addr", "time_local", "http_path", "MarshaledTime", "timestamp", "program", "message", "source_ip", "logsource"} {
				m[k] = k + "-välue-" + string(rune('a'+i)) // which map it came from shows
			}
		}
		return &e
	}
	empty := func() *event.Event {
		e := full()
		for _, m := range []map[string]string{e.Parsed, e.Meta, e.Enriched, e.Line.Labels} {
			for k := range m {
				m[k] = ""
			}
		}
		return e
	}
	missing := func() *event.Event {
		e := event.New(event.Line{})
		return &e
	}
	nilMaps := func() *event.Event { return &event.Event{} }
	plain := 0
	for _, src := range exprs {
		prog, err := p.compileExpr(src)
		if err != nil {
			continue // a helper this test does not load data for
		}
		if prog.text == nil {
			continue
		}
		plain++
		for i, mk := range []func() *event.Event{full, empty, missing, nilMaps} {
			evt := mk()
			env := p.newRunEnv()
			env.env["evt"], env.evt = evt, evt
			out, err := env.vm.Run(prog.vm, env.env)
			if err != nil {
				t.Fatalf("%s (event %d): %v", src, i, err)
			}
			if got, want := prog.text(evt), staticText(out); got != want {
				t.Errorf("%s (event %d): text %q, program %q", src, i, got, want)
			}
		}
	}
	if plain < 10 {
		t.Fatalf("only %d plain reads among %d expressions", plain, len(exprs))
	}
	for _, src := range []string{"evt.Parsed?.x", "evt.Parsed.x + evt.Parsed.y", "evt.Unmarshaled.x", "len(evt.Line.Labels)",
		"evt.Line.Labels", "evt.Parsed.x.y", "evt.Type", "x.Parsed.x", "evt.Parsed.x ?? 'a'", "evt.Line.Time",
		"len(evt.Parsed)", "Upper(evt.Parsed.x)"} {
		if textOf(src) != nil {
			t.Errorf("%s taken for a plain field read", src)
		}
	}
	for _, src := range []string{"evt.Parsed.x", `evt.Parsed["x"]`, " evt.Meta.source_ip ", "evt.Line.Labels.type", "len(evt.Parsed.http_args)"} {
		if textOf(src) == nil {
			t.Errorf("%s not taken for a plain field read", src)
		}
	}
	// sanity: expr itself agrees on a missing entry
	if out, _ := expr.Eval("evt.Parsed.nope", map[string]any{"evt": missing()}); out != nil && out != "" {
		t.Fatalf("expr gives %v for a missing entry", out)
	}
}

// The date memo answers what ParseDate answers, for a run of repeated and
// changing timestamps, formats and values no layout reads.
func TestDateMemoMatchesParseDate(t *testing.T) {
	ins := []string{
		"12/Feb/2026:00:00:00 +0000", "12/Feb/2026:00:00:00 +0000", "12/Feb/2026:00:00:01 +0000",
		"2026-02-12T00:00:01Z", "2026-02-12T00:00:01Z", " 2026-02-12T00:00:01Z ", "Feb 12 00:00:01",
		"Feb 12 00:00:01", "1700000000", "1700000000", "-5", "-5", "", "", "12/Feb/2026:00:00:01 +0000",
	}
	var m dateMemo
	for _, format := range []string{"", "02/Jan/2006:15:04:05 -0700", "2006"} {
		for _, in := range ins {
			evt := event.New(event.Line{})
			evt.StrTimeFormat = format
			want := ParseDate(in, &evt)["MarshaledTime"]
			got, ok := m.get(in, format)
			if !ok {
				t.Fatalf("%q %q: memo has no time, ParseDate %q", in, format, want)
			}
			if m.year < 0 {
				// the clock's time: only close to ParseDate's
				g, err1 := time.Parse(time.RFC3339Nano, got)
				w, err2 := time.Parse(time.RFC3339Nano, want)
				if err1 != nil || err2 != nil || w.Sub(g).Abs() > time.Minute {
					t.Fatalf("%q %q: memo %q, ParseDate %q", in, format, got, want)
				}
				continue
			}
			if got != want {
				t.Fatalf("%q %q: memo %q, ParseDate %q", in, format, got, want)
			}
		}
	}
}

// A value no layout reads is the clock's time, read again for every line:
// the memo must not keep it, not even for the empty value a zero memo
// would seem to hold.
func TestDateMemoKeepsNoClockTime(t *testing.T) {
	var m dateMemo
	got, ok := m.get("", "")
	if !ok || got == "" {
		t.Fatalf("empty value: %q %v, want the clock's time", got, ok)
	}
	for _, in := range []string{"", "not a date"} {
		m.get(in, "")
		if m.year >= 0 {
			t.Fatalf("%q: the clock's time is memoized (year %d)", in, m.year)
		}
	}
	m.get("Feb 12 00:00:01", "")
	if m.year != time.Now().UTC().Year() {
		t.Fatalf("yearless timestamp memoized for year %d", m.year)
	}
	m.get("12/Feb/2026:00:00:01 +0000", "")
	if m.year != 0 {
		t.Fatalf("dated timestamp memoized for year %d, want always (0)", m.year)
	}
}

// The date memo stands in for this package's ParseDate only: an enricher
// a caller registers under that name still runs, on every line.
func TestParseDateReplacedRuns(t *testing.T) {
	calls := 0
	own := func(in string, _ *event.Event) map[string]string {
		calls++
		return map[string]string{"MarshaledTime": "own:" + in}
	}
	for _, tc := range []struct {
		name    string
		methods map[string]Enricher
		want    string
	}{
		{"default", nil, "2026-02-12T10:00:00Z"},
		{"replaced", map[string]Enricher{"ParseDate": own}, "own:2026-02-12T10:00:00Z"},
	} {
		p := NewPipeline(nil, exprhelpers.New(t.TempDir()), tc.methods)
		err := p.LoadData(Item{Name: "test/date", Stage: "s02-enrich", Path: "date.yaml"}, []byte(`name: test/date
filter: "true"
statics:
  - method: ParseDate
    expression: evt.StrTime
  - meta: timestamp
    expression: evt.Enriched.MarshaledTime
`))
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			evt := event.New(event.Line{Raw: "x"})
			evt.StrTime = "2026-02-12T10:00:00Z"
			if err := p.Parse(&evt, nil); err != nil {
				t.Fatal(err)
			}
			if got := evt.Meta["timestamp"]; got != tc.want {
				t.Fatalf("%s: timestamp %q, want %q", tc.name, got, tc.want)
			}
		}
	}
	if calls != 3 {
		t.Fatalf("replaced ParseDate ran %d times for 3 lines", calls)
	}
}
