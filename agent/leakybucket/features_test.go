package leakybucket_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/agent/leakybucket"
)

func loadWithHelpers(t *testing.T, doc string) []*leakybucket.Scenario {
	t.Helper()
	p := filepath.Join(t.TempDir(), "scenario.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	sc, err := leakybucket.Load(p, "test", exprhelpers.New(t.TempDir()))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return sc
}

const counterDoc = `type: counter
name: test/counter
filter: "evt.Meta.log_type == 'ssh_failed-auth'"
groupby: evt.Meta.source_ip
capacity: -1
duration: 10m
`

func TestCounterReplay(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, counterDoc), true)
	var ovf []event.Event
	for _, d := range []time.Duration{0, time.Minute, 5 * time.Minute, 9*time.Minute + 59*time.Second} {
		ovf = append(ovf, e.Pour(sshEvent("1.2.3.4", "root", "ssh_failed-auth", t0.Add(d)))...)
	}
	// another key's event before the deadline does not end the count
	ovf = append(ovf, e.Pour(sshEvent("5.6.7.8", "root", "ssh_failed-auth", t0.Add(9*time.Minute)))...)
	if len(ovf) != 0 {
		t.Fatalf("counter overflowed before its duration: %d", len(ovf))
	}
	// any event at or after first+duration reveals the overflow, dated at
	// the deadline, before that event is poured
	ovf = e.Pour(sshEvent("9.9.9.9", "root", "ssh_failed-auth", t0.Add(12*time.Minute)))
	if len(ovf) != 1 {
		t.Fatalf("at the deadline: %d overflows", len(ovf))
	}
	a := ovf[0].Overflow.Alert
	if a.Scenario != "test/counter" || a.EventsCount != 4 || a.Source.IP != "1.2.3.4" || len(a.Events) != 4 {
		t.Errorf("alert: count %d source %+v, %d events", a.EventsCount, a.Source, len(a.Events))
	}
	if a.StartAt != t0.Format(time.RFC3339) || a.StopAt != t0.Add(10*time.Minute).Format(time.RFC3339) {
		t.Errorf("start %s stop %s", a.StartAt, a.StopAt)
	}
	// 5.6.7.8 (first at +9m) is due at +19m; a new 1.2.3.4 count starts now
	ovf = e.Pour(sshEvent("1.2.3.4", "root", "ssh_failed-auth", t0.Add(13*time.Minute)))
	if len(ovf) != 0 {
		t.Fatalf("early: %v", ovf)
	}
	ovf = e.Tick(t0.Add(30 * time.Minute))
	if len(ovf) != 3 {
		t.Fatalf("Tick: %d overflows, want 3", len(ovf))
	}
	// due order: 5.6.7.8 (+19m), 9.9.9.9 (+22m), 1.2.3.4 (+23m)
	for i, want := range []string{"5.6.7.8", "9.9.9.9", "1.2.3.4"} {
		if got := ovf[i].Overflow.Alert.Source.IP; got != want || ovf[i].Overflow.Alert.EventsCount != 1 {
			t.Errorf("overflow %d: %s with %d events, want %s with 1", i, got, ovf[i].Overflow.Alert.EventsCount, want)
		}
	}
	if e.Buckets() != 0 {
		t.Errorf("%d buckets left", e.Buckets())
	}
}

func TestCounterLive(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, counterDoc), false)
	for range 3 {
		if ovf := e.Pour(sshEvent("1.2.3.4", "root", "ssh_failed-auth", t0)); len(ovf) != 0 {
			t.Fatalf("live counter overflowed at once")
		}
	}
	if ovf := e.Tick(time.Now().Add(9 * time.Minute)); len(ovf) != 0 {
		t.Fatalf("overflowed before its duration")
	}
	ovf := e.Tick(time.Now().Add(10*time.Minute + time.Second))
	if len(ovf) != 1 || ovf[0].Overflow.Alert.EventsCount != 3 {
		t.Fatalf("after its duration: %v", ovf)
	}
}

func TestCounterValidation(t *testing.T) {
	for _, doc := range []string{
		"type: counter\nname: test/c\nfilter: 'true'\ncapacity: -1\n",
		"type: counter\nname: test/c\nfilter: 'true'\ncapacity: 5\nduration: 1m\n",
	} {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := leakybucket.Load(p, "", nil); err == nil {
			t.Errorf("no error for:\n%s", doc)
		}
	}
}

func TestOverflowFilter(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, leakyDoc+`blackhole: 1m
overflow_filter: "queue.Queue[-1].Meta.target_user != 'root' && signal.Alert.Source.IP == leaky.Mapkey && leaky.Total_count == 6"
`), true)
	// root's overflow is discarded: no alert, the bucket is reset, and no
	// blackhole starts
	if ovf := pour(e, "1.2.3.4", 6, t0, 100*time.Millisecond); len(ovf) != 0 {
		t.Fatalf("overflow_filter false: %d overflows", len(ovf))
	}
	if e.Buckets() != 0 {
		t.Errorf("discarded overflow left %d buckets", e.Buckets())
	}
	var ovf []event.Event
	for i := range 6 {
		ovf = append(ovf, e.Pour(sshEvent("1.2.3.4", "admin", "ssh_failed-auth", t0.Add(time.Second+time.Duration(i)*100*time.Millisecond)))...)
	}
	if len(ovf) != 1 || ovf[0].Overflow.Alert.EventsCount != 6 {
		t.Fatalf("overflow_filter true: %v", ovf)
	}
}

func TestScopeRange(t *testing.T) {
	sc := loadWithHelpers(t, leakyDoc+`scope:
  type: Range
  expression: IpToRange(evt.Meta.source_ip, "/24")
`)
	e := leakybucket.NewEngine(sc, true)
	ovf := pour(e, "1.2.3.4", 6, t0, 100*time.Millisecond)
	if len(ovf) != 1 {
		t.Fatalf("%d overflows", len(ovf))
	}
	a := ovf[0].Overflow.Alert
	if a.Source.Scope != "Range" || a.Source.Value != "1.2.3.0/24" || a.Source.IP != "1.2.3.4" || a.GetScope() != "Range" {
		t.Errorf("source %+v", a.Source)
	}
	if _, ok := ovf[0].Overflow.Sources["1.2.3.0/24"]; !ok || len(ovf[0].Overflow.Sources) != 1 {
		t.Errorf("sources %v", ovf[0].Overflow.Sources)
	}
	if !strings.HasPrefix(a.Message, "Range 1.2.3.0/24 performed 'test/leaky'") {
		t.Errorf("message %q", a.Message)
	}

	// without an expression, the range is the enricher's; none: discarded
	e = leakybucket.NewEngine(loadYAML(t, leakyDoc+"scope:\n  type: Range\n"), true)
	var got []event.Event
	for i := range 6 {
		evt := sshEvent("5.6.7.8", "root", "ssh_failed-auth", t0.Add(time.Duration(i)*100*time.Millisecond))
		evt.Meta["SourceRange"] = "5.6.0.0/16"
		got = append(got, e.Pour(evt)...)
	}
	if len(got) != 1 || got[0].Overflow.Alert.Source.Value != "5.6.0.0/16" {
		t.Fatalf("enriched range: %v", got)
	}
	if ovf := pour(e, "9.9.9.9", 6, t0, 100*time.Millisecond); len(ovf) != 0 {
		t.Errorf("a Range alert without a range was kept: %+v", ovf[0].Overflow.Alert.Source)
	}
	if e.Buckets() != 0 {
		t.Errorf("the discarded bucket stayed")
	}

	// the default stays Ip
	ovf = pour(leakybucket.NewEngine(loadYAML(t, leakyDoc), true), "1.2.3.4", 6, t0, 100*time.Millisecond)
	if s := ovf[0].Overflow.Alert.Source; s.Scope != "Ip" || s.Value != "1.2.3.4" {
		t.Errorf("default scope: %+v", s)
	}
}

func TestReprocessChain(t *testing.T) {
	doc := leakyDoc + "reprocess: true\n---\n" + `type: trigger
name: test/second-stage
filter: "evt.Type == 1 && evt.Overflow.Alert.Scenario == 'test/leaky'"
groupby: evt.Overflow.Alert.Source.IP
reprocess: true
---
type: trigger
name: test/third-stage
filter: "evt.Overflow.Alert?.Scenario == 'test/second-stage'"
groupby: evt.Overflow.Alert.Source.IP
---
type: trigger
name: test/loop
filter: "evt.Overflow.Alert?.Scenario in ['test/leaky', 'test/loop']"
reprocess: true
`
	e := leakybucket.NewEngine(loadYAML(t, doc), true)
	ovf := pour(e, "1.2.3.4", 6, t0, 100*time.Millisecond)
	var names []string
	for _, o := range ovf {
		names = append(names, o.Overflow.Alert.Scenario)
		if o.Type != event.OVFLW || o.Overflow.Alert.Source.IP != "1.2.3.4" {
			t.Errorf("%s: type %d source %+v", o.Overflow.Alert.Scenario, o.Type, o.Overflow.Alert.Source)
		}
	}
	// an overflow, then what pouring it back caused, in scenario order,
	// each followed in turn by what pouring those back caused; test/loop
	// feeds itself until the depth limit (3 re-pours)
	want := "test/leaky test/second-stage test/loop test/third-stage test/loop test/loop"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("overflows:\n got %s\nwant %s", got, want)
	}
	if ovf[0].Overflow.Alert.EventsCount != 6 || ovf[1].Overflow.Alert.EventsCount != 1 {
		t.Errorf("counts %d %d", ovf[0].Overflow.Alert.EventsCount, ovf[1].Overflow.Alert.EventsCount)
	}
	// the same again, without reprocess: one overflow
	e = leakybucket.NewEngine(loadYAML(t, strings.Replace(doc, "reprocess: true\n---", "---", 1)), true)
	if ovf := pour(e, "1.2.3.4", 6, t0, 100*time.Millisecond); len(ovf) != 1 {
		t.Errorf("without reprocess: %d overflows", len(ovf))
	}
}

func TestAlertContext(t *testing.T) {
	e := leakybucket.NewEngine(loadYAML(t, leakyDoc), true)
	ctx, err := leakybucket.LoadContexts("../../rules/contexts/bf_base.yaml", "../../rules/contexts/http_base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(ctx) != 6 || ctx["target_user"][0] != "evt.Meta.target_user" || ctx["cve"][0] != "evt.Meta.cve" {
		t.Fatalf("default contexts: %v", ctx)
	}
	ctx["source"] = []string{"evt.Meta.source_ip", "evt.Meta.nope", "Upper(evt.Meta.target_user)"}
	if err := e.SetContexts(ctx, exprhelpers.New(t.TempDir())); err != nil {
		t.Fatal(err)
	}
	var ovf []event.Event
	for i, u := range []string{"root", "admin", "root", "", "admin", "oracle"} {
		ovf = append(ovf, e.Pour(sshEvent("1.2.3.4", u, "ssh_failed-auth", t0.Add(time.Duration(i)*100*time.Millisecond)))...)
	}
	if len(ovf) != 1 {
		t.Fatalf("%d overflows", len(ovf))
	}
	var got []string
	for _, m := range ovf[0].Overflow.Alert.Meta {
		got = append(got, m.Key+"="+m.Value)
	}
	want := `source=["1.2.3.4","ROOT","ADMIN","ORACLE"] target_user=["root","admin","oracle"]`
	if strings.Join(got, " ") != want {
		t.Errorf("alert meta:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if err := e.SetContexts(map[string][]string{"bad": {"evt.Meta["}}, nil); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("bad context expression: %v", err)
	}
}

func TestLoadErrorPositions(t *testing.T) {
	cases := []struct {
		name, body string
		key        string
		line       int
		want       string
	}{
		{"expr on line 4", "type: leaky\nname: test/x\ncapacity: 5\nfilter: \"evt.Meta.x ==\"\nleakspeed: 1s\n", "filter", 4, `\(1:\d+\)`},
		{"block condition", "type: conditional\nname: test/x\nleakspeed: 1m\nfilter: 'true'\ncondition: |\n  len(queue.Queue) >\n", "condition", 5, `\(1:\d+\)`},
		{"second document", "type: trigger\nname: test/ok\nfilter: 'true'\n---\ntype: trigger\nname: test/x\nfilter: 'true'\ngroupby: \"evt.Meta[\"\n", "groupby", 8, `document 2`},
		{"scope", "type: trigger\nname: test/x\nfilter: 'true'\nscope:\n  type: Range\n  expression: \"IpToRange(\"\n", "scope", 4, `\(1:\d+\)`},
		{"duration", "type: leaky\nname: test/x\nfilter: 'true'\ncapacity: 5\nleakspeed: 1s\nblackhole: soon\n", "blackhole", 6, ``},
		// constructs Rampart refuses rather than load and behave otherwise
		{"unknown key", "type: trigger\nname: test/x\nfilter: 'true'\nblackhole: 1m\nfitler: 'false'\n", "fitler", 5, `unknown key`},
		{"nested unknown key", "type: trigger\nname: test/x\nfilter: 'true'\nscope:\n  type: Range\n  expresion: x\n", "expresion", 6, `unknown key`},
		{"bayesian key", "type: trigger\nname: test/x\nfilter: 'true'\nbayesian_prior: 0.5\n", "bayesian_prior", 4, `bayesian scenario type is not supported by Rampart`},
		{"bayesian type", "name: test/x\ntype: bayesian\nfilter: 'true'\ncapacity: -1\n", "type", 2, `bayesian scenarios are not supported`},
		{"trigger capacity", "type: trigger\nname: test/x\nfilter: 'true'\ncapacity: 3\n", "capacity", 4, `capacity must be 0`},
		{"no filter", "type: trigger\nname: test/x\ngroupby: evt.Meta.source_ip\n", "filter", 1, `needs a filter`},
		{"format", "type: trigger\nname: test/x\nformat: 4.0\nfilter: 'true'\n", "format", 3, `format 4 is not supported`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "broken.yaml")
			if err := os.WriteFile(p, []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := leakybucket.Load(p, "", exprhelpers.New(t.TempDir()))
			var le *leakybucket.LoadError
			if !errors.As(err, &le) {
				t.Fatalf("%T: %v", err, err)
			}
			if le.File != p || le.Item != "test/x" || le.Key != c.key || le.Line != c.line {
				t.Errorf("file %q item %q key %q line %d", le.File, le.Item, le.Key, le.Line)
			}
			if c.want != "" && !regexp.MustCompile(c.want).MatchString(err.Error()) {
				t.Errorf("message lacks %s: %v", c.want, err)
			}
			for _, part := range []string{p, "(test/x)", fmt.Sprintf("line %d", c.line), c.key} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("message lacks %q: %v", part, err)
				}
			}
			t.Log(err)
		})
	}
}
