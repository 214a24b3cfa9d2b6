package exprhelpers_test

import (
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
)

// queue and leaky stand for the scenario engine's condition environment.
type queue struct{ Queue []event.Event }
type leaky struct{}

func compileHub(h *exprhelpers.Helpers, e hubExpr, optimized bool) (*vm.Program, error) {
	opts := h.Options()
	if !optimized {
		opts = h.OptionsUnoptimized()
	}
	env := map[string]any{"evt": &event.Event{}}
	if e.key == "condition" {
		env = map[string]any{"queue": &queue{}, "leaky": &leaky{}}
	}
	return expr.Compile(e.src, append([]expr.Option{expr.Env(env)}, opts...)...)
}

// result is what one evaluation did: its value or error, and the event
// maps after it (filters may call SetMeta).
type result struct {
	out    any
	err    string
	meta   map[string]string
	parsed map[string]string
}

func evalHub(p *vm.Program, e hubExpr, evt *event.Event, window []event.Event) result {
	env := map[string]any{"evt": evt}
	if e.key == "condition" {
		env = map[string]any{"queue": &queue{Queue: window}, "leaky": &leaky{}}
	}
	var r result
	out, err := expr.Run(p, env)
	r.out = out
	if err != nil {
		r.err = err.Error()
	}
	r.meta, r.parsed = evt.Meta, evt.Parsed
	return r
}

// testEvents are the events the hub-expression equivalence tests run:
// the parsed nginx and sshd lines (300 with -short), the edge cases and
// the probe events made from one nginx access line.
func (c *corpus) testEvents() []event.Event {
	var evts []event.Event
	evts = append(evts, c.events["nginx"]...)
	evts = append(evts, c.events["sshd"]...)
	if testing.Short() {
		evts = evts[:300:300]
	}
	evts = append(evts, edgeEvents()...)
	for _, e := range c.events["nginx"] {
		if e.Process && e.Meta["log_type"] == "http_access-log" {
			evts = append(evts, c.probeEvents(e)...)
			break
		}
	}
	return evts
}

// Every hub expression gives the same results, errors and event changes
// with and without the compile-time rewrites, over parsed nginx and sshd
// events and hand-made edge cases.
func TestOptimizedHubExpressionsMatch(t *testing.T) {
	c := loadCorpus(t)
	h := c.helpers
	evts := c.testEvents()
	compiled, rewritten, direct := 0, 0, 0
	for _, e := range c.exprs {
		plain, perr := compileHub(h, e, false)
		opt, oerr := compileHub(h, e, true)
		if (perr == nil) != (oerr == nil) {
			t.Errorf("%s %s %q: compile error plain=%v optimized=%v", e.item, e.key, e.src, perr, oerr)
			continue
		}
		if perr != nil {
			t.Logf("%s %s: does not compile: %v", e.item, e.key, perr)
			continue
		}
		compiled++
		if opt.Disassemble() != plain.Disassemble() {
			rewritten++
		}
		fn, isDirect := exprhelpers.Direct(opt)
		if isDirect && e.key != "condition" {
			direct++
		} else {
			fn = nil
		}
		for i := range evts {
			lo := max(0, i-6)
			a := evalHub(plain, e, cloneEvent(&evts[i]), evts[lo:i])
			b := evalHub(opt, e, cloneEvent(&evts[i]), evts[lo:i])
			if !reflect.DeepEqual(a.out, b.out) || a.err != b.err || !maps.Equal(a.meta, b.meta) || !maps.Equal(a.parsed, b.parsed) {
				t.Errorf("%s %s %q\nevent %d (%q):\nplain     %#v err=%q meta=%v\noptimized %#v err=%q meta=%v",
					e.item, e.key, e.src, i, evts[i].Line.Raw, a.out, a.err, a.meta, b.out, b.err, b.meta)
				break
			}
			if fn == nil {
				continue
			}
			ev := cloneEvent(&evts[i])
			out, err := fn(ev)
			if !reflect.DeepEqual(a.out, out) || (a.err != "") != (err != nil) || !maps.Equal(a.meta, ev.Meta) {
				t.Errorf("%s %s %q\nevent %d (%q):\nplain  %#v err=%q\ndirect %#v err=%v",
					e.item, e.key, e.src, i, evts[i].Line.Raw, a.out, a.err, out, err)
				break
			}
		}
	}
	t.Logf("%d expressions, %d compiled, %d rewritten, %d run directly, %d events", len(c.exprs), compiled, rewritten, direct, len(evts))
	if compiled < 100 || rewritten < 20 || direct < 50 {
		t.Errorf("only %d expressions compiled, %d rewritten, %d direct", compiled, rewritten, direct)
	}
}

// The optimized programs share memos and file indexes between
// goroutines: running them concurrently gives the sequential results
// (run with -race).
func TestOptimizedConcurrent(t *testing.T) {
	c := loadCorpus(t)
	var progs, plains []*vm.Program
	filters := c.nginxFilters()
	for _, f := range filters {
		p, err := compileHub(c.helpers, f, true)
		if err != nil {
			t.Fatal(err)
		}
		q, err := compileHub(c.helpers, f, false)
		if err != nil {
			t.Fatal(err)
		}
		progs, plains = append(progs, p), append(plains, q)
	}
	evts := c.events["nginx"][:400]
	want := make([][]result, len(evts))
	for i := range evts {
		for j, p := range plains {
			want[i] = append(want[i], evalHub(p, filters[j], cloneEvent(&evts[i]), nil))
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var v vm.VM
			for k := range evts {
				i := (k + g*97) % len(evts)
				for j, p := range progs {
					e := cloneEvent(&evts[i])
					out, err := v.Run(p, map[string]any{"evt": e})
					if w := want[i][j]; out != w.out || (err != nil) != (w.err != "") || !maps.Equal(e.Meta, w.meta) {
						t.Errorf("%s on event %d: %v, %v; want %v, %q", filters[j].item, i, out, err, w.out, w.err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkNginxScenarioFilters evaluates the filters of every scenario
// of the nginx collections on each parsed nginx event; one op is one
// event through all filters. expr.Run builds a VM per call (what the
// engines do); reusedVM runs every program on one vm.VM.
func BenchmarkNginxScenarioFilters(b *testing.B) {
	c := loadCorpus(b)
	filters := c.nginxFilters()
	var evts []event.Event
	for _, e := range c.events["nginx"] {
		if e.Process && !e.Whitelisted {
			evts = append(evts, e)
		}
	}
	for _, optimized := range []bool{false, true} {
		progs := make([]*vm.Program, 0, len(filters))
		for _, f := range filters {
			p, err := compileHub(c.helpers, f, optimized)
			if err != nil {
				b.Fatalf("%s: %v", f.item, err)
			}
			progs = append(progs, p)
		}
		name := map[bool]string{false: "unoptimized", true: "optimized"}[optimized]
		envs := make([]map[string]any, len(evts))
		for i := range evts {
			envs[i] = map[string]any{"evt": &evts[i]}
		}
		b.Run(name+"/expr.Run", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				env := envs[i%len(envs)]
				i++
				for _, p := range progs {
					if _, err := expr.Run(p, env); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/event")
		})
		b.Run(name+"/reusedVM", func(b *testing.B) {
			b.ReportAllocs()
			var v vm.VM
			i := 0
			for b.Loop() {
				env := envs[i%len(envs)]
				i++
				for _, p := range progs {
					if _, err := v.Run(p, env); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/event")
		})
	}
}

// BenchmarkNginxFilterEach costs each nginx-collection filter alone
// (go test -bench NginxFilterEach), to find what is left to optimize.
func BenchmarkNginxFilterEach(b *testing.B) {
	c := loadCorpus(b)
	var envs []map[string]any
	for i, e := range c.events["nginx"] {
		if e.Process && !e.Whitelisted {
			envs = append(envs, map[string]any{"evt": &c.events["nginx"][i]})
		}
	}
	for i, f := range c.nginxFilters() {
		name := fmt.Sprintf("%02d-%s", i, strings.TrimSuffix(filepath.Base(f.item), ".yaml"))
		for _, optimized := range []bool{false, true} {
			p, err := compileHub(c.helpers, f, optimized)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(name+map[bool]string{false: "/plain", true: "/opt"}[optimized], func(b *testing.B) {
				var v vm.VM
				i := 0
				for b.Loop() {
					if _, err := v.Run(p, envs[i%len(envs)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
