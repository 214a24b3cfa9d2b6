package leakybucket_test

import (
	"bufio"
	"bytes"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/agent/grok"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/leakybucket"
	"github.com/rampart-ips/rampart/agent/parser"
	"github.com/rampart-ips/rampart/internal/loggen"
	"github.com/rampart-ips/rampart/internal/testhub"
	"github.com/rampart-ips/rampart/rules/patterns"
)

// replay is a generated log parsed with the hub's rules, ready to pour.
type replay struct {
	scenarios []*leakybucket.Scenario
	helpers   *exprhelpers.Helpers
	events    []event.Event
}

// hubReplay parses n generated lines of a log kind ("sshd" or "nginx")
// with the parsers of its collections, and loads their scenarios; it skips
// when the shared hub is not there.
func hubReplay(t testing.TB, kind string, n int) *replay {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch kind {
	case "sshd":
		_, err = loggen.SSHDCount(&buf, n, 7)
	case "nginx":
		_, err = loggen.NginxCount(&buf, n, 7)
	}
	if err != nil {
		t.Fatal(err)
	}
	return hubReplayLog(t, kind, buf.Bytes())
}

// hubReplayLog is hubReplay of the given log lines.
func hubReplayLog(t testing.TB, kind string, log []byte) *replay {
	t.Helper()
	dir := testhub.Dir(t)
	h, err := hub.OpenHub(dir)
	if err != nil {
		t.Fatal(err)
	}
	parsers := []string{"crowdsecurity/syslog-logs", "crowdsecurity/dateparse-enrich", "crowdsecurity/whitelists"}
	var scenarios []string
	seen := map[string]bool{}
	var walk func(name string)
	walk = func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		info, ok := h.Item("collections", name)
		if !ok {
			t.Fatalf("collection %s not in the hub", name)
		}
		parsers = append(parsers, info.Deps["parsers"]...)
		scenarios = append(scenarios, info.Deps["scenarios"]...)
		for _, c := range info.Deps["collections"] {
			walk(c)
		}
	}
	logType := "syslog"
	switch kind {
	case "sshd":
		walk("crowdsecurity/sshd")
	case "nginx":
		logType = "nginx"
		for _, c := range []string{"crowdsecurity/nginx", "crowdsecurity/base-http-scenarios", "crowdsecurity/http-cve"} {
			walk(c)
		}
	}
	lib := grok.NewLibrary()
	if err := lib.LoadFS(patterns.FS, "."); err != nil {
		t.Fatal(err)
	}
	if err := lib.LoadDir(filepath.Join(dir, "patterns")); err != nil {
		t.Fatal(err)
	}
	r := &replay{helpers: exprhelpers.New(filepath.Join(dir, "data"))}
	var items []parser.Item
	done := map[string]bool{}
	for _, ref := range parsers {
		if done[ref] {
			continue
		}
		done[ref] = true
		path, _, stage, err := h.Resolve("parsers", ref)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, parser.Item{Name: ref, Stage: stage, Path: path})
	}
	pipe, err := parser.New(items, lib, r.helpers, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range scenarios {
		path, _, _, err := h.Resolve("scenarios", ref)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := leakybucket.Load(path, h.Version("scenarios", ref), r.helpers)
		if err != nil {
			t.Fatal(err)
		}
		r.scenarios = append(r.scenarios, sc...)
	}
	labels := map[string]string{"type": logType}
	sc := bufio.NewScanner(bytes.NewReader(log))
	for sc.Scan() {
		evt := event.New(event.Line{Raw: sc.Text(), Src: "/var/log/" + kind + ".log", Module: "file", Labels: labels})
		if err := pipe.Parse(&evt, nil); err != nil {
			t.Fatal(err)
		}
		if evt.Process && !evt.Whitelisted {
			r.events = append(r.events, evt)
		}
	}
	return r
}

// fresh returns copies of the events that share no map with them, as the
// filters of one run may set meta.
func (r *replay) fresh() []event.Event {
	out := make([]event.Event, len(r.events))
	for i, e := range r.events {
		e.Parsed, e.Meta, e.Enriched = maps.Clone(e.Parsed), maps.Clone(e.Meta), maps.Clone(e.Enriched)
		out[i] = e
	}
	return out
}

func (r *replay) engine(t testing.TB) *leakybucket.Engine {
	t.Helper()
	e := leakybucket.NewEngine(r.scenarios, true)
	ctx, err := leakybucket.LoadContexts("../../rules/contexts/bf_base.yaml", "../../rules/contexts/http_base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetContexts(ctx, r.helpers); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestPrepareInParallel: preparing events in 4 goroutines while pouring
// them in order in another gives exactly the overflows of pouring them one
// by one, on nginx too, whose filters set meta.
func TestPrepareInParallel(t *testing.T) {
	if testing.Short() {
		t.Skip("parses generated logs")
	}
	for _, kind := range []string{"sshd", "nginx"} {
		t.Run(kind, func(t *testing.T) {
			r := hubReplay(t, kind, 20000)
			events := r.fresh()
			e := r.engine(t)
			var want []event.Event
			for i := range events {
				want = append(want, e.Pour(&events[i])...)
			}
			if len(want) == 0 {
				t.Fatal("no overflow at all")
			}

			// as the agent does: workers prepare batches while one
			// goroutine pours the batches already prepared, in order
			events = r.fresh()
			e = r.engine(t)
			const workers, size = 4, 256
			type batch struct {
				from, to int
				preps    []leakybucket.Prepared
				done     chan struct{}
			}
			var batches []*batch
			for from := 0; from < len(events); from += size {
				batches = append(batches, &batch{from: from, to: min(from+size, len(events)), done: make(chan struct{})})
			}
			work := make(chan *batch)
			go func() {
				for _, b := range batches {
					work <- b
				}
				close(work)
			}()
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for b := range work {
						for i := b.from; i < b.to; i++ {
							b.preps = append(b.preps, e.Prepare(&events[i]))
						}
						close(b.done)
					}
				})
			}
			var got []event.Event
			for _, b := range batches {
				<-b.done
				for i := b.from; i < b.to; i++ {
					got = append(got, e.PourPrepared(&events[i], b.preps[i-b.from])...)
				}
			}
			wg.Wait()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%d overflows in parallel, %d sequentially, or they differ", len(got), len(want))
			}
			t.Logf("%d events, %d overflows", len(events), len(want))
		})
	}
}

// TestTrimmingKeepsAlerts: forgetting the events conditions can no longer
// read changes neither which alerts come nor their counts, times, sources
// or last event, and it keeps far fewer events.
func TestTrimmingKeepsAlerts(t *testing.T) {
	if testing.Short() {
		t.Skip("parses generated logs")
	}
	r := hubReplay(t, "sshd", 150000)
	type summary struct {
		Scenario, Key, Start, Stop, Source string
		Count                              int32
		Last                               any
	}
	run := func(trim bool) ([]summary, int) {
		e := r.engine(t)
		if !trim {
			leakybucket.DisableTrim(e)
		}
		events := r.fresh()
		var out []summary
		for i := range events {
			for _, o := range e.Pour(&events[i]) {
				a := o.Overflow.Alert
				out = append(out, summary{a.Scenario, o.Overflow.Mapkey, a.StartAt, a.StopAt, a.Source.Value, a.EventsCount, a.Events[len(a.Events)-1]})
			}
		}
		return out, leakybucket.QueuedEvents(e)
	}
	trimmed, kept := run(true)
	full, all := run(false)
	if !reflect.DeepEqual(trimmed, full) {
		t.Errorf("trimming changed the alerts: %d with, %d without", len(trimmed), len(full))
	}
	timeBased := 0
	for _, s := range full {
		if s.Scenario == "crowdsecurity/ssh-time-based-bf" || s.Scenario == "crowdsecurity/ssh-time-based-bf_user-enum" {
			timeBased++
		}
	}
	if timeBased == 0 {
		t.Error("no time-based alert: the test checks nothing")
	}
	if kept*2 > all {
		t.Errorf("trimming kept %d of %d queued events", kept, all)
	}
	t.Logf("%d alerts (%d time-based); queued events at the end: %d trimmed, %d not", len(full), timeBased, kept, all)
}

// Prepare, which runs the filters through a shared frame and skips those
// a guard or the literal gate rules out, pours each event of the hub's
// logs into the scenarios whose filter the VM finds true (run in order on
// another copy, as the filters may set meta), and changes it alike.
func TestPrepareMatchesVM(t *testing.T) {
	for _, kind := range []string{"nginx", "sshd"} {
		r := hubReplay(t, kind, 6000)
		e := leakybucket.NewEngine(r.scenarios, false)
		a, b := r.fresh(), r.fresh()
		hits := 0
		for k := range a {
			got := leakybucket.HitScenarios(e.Prepare(&a[k]))
			var want []int
			for i, s := range r.scenarios {
				if s.Matches(&b[k]) && leakybucket.GroupByOK(s, &b[k]) {
					want = append(want, i)
				}
			}
			if !slices.Equal(got, want) || !maps.Equal(a[k].Meta, b[k].Meta) {
				t.Fatalf("%s event %d (%q): Prepare poured into %v, the VM's filters match %v\nmeta %v\nwant %v", kind, k, a[k].Line.Raw, got, want, a[k].Meta, b[k].Meta)
			}
			hits += len(got)
		}
		t.Logf("%s: %d events, %d hits", kind, len(a), hits)
		if hits == 0 {
			t.Errorf("%s: no event matched a scenario", kind)
		}
	}
}
