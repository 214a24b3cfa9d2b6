package runner_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/acquisition"
	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/ruleset"
	"github.com/rampart-ips/rampart/agent/runner"
	"github.com/rampart-ips/rampart/internal/loggen"
	"github.com/rampart-ips/rampart/internal/testhub"
	"github.com/rampart-ips/rampart/models"
)

// lineSource replays a real file, line by line (the acquisition package's
// file source does the same with rotation and tailing on top).
type lineSource struct {
	path   string
	labels map[string]string
	live   bool // keep running after EOF, as a live source does
}

func (s *lineSource) Name() string { return "test:" + s.path }

func (s *lineSource) Run(ctx context.Context, out chan<- event.Line) error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		select {
		case out <- event.Line{Raw: sc.Text(), Src: s.path, Module: "file", Labels: s.labels, Time: time.Now()}:
		case <-ctx.Done():
			return nil
		}
	}
	if s.live {
		<-ctx.Done()
	}
	return sc.Err()
}

// sink collects alerts, as the delivery queue would take them.
type sink struct {
	mu     sync.Mutex
	alerts []*models.Alert
}

func (s *sink) Push(_ context.Context, alerts ...*models.Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alerts = append(s.alerts, alerts...)
	return nil
}

func (s *sink) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, a := range s.alerts {
		out = append(out, a.Scenario+" "+a.Source.Value)
	}
	return out
}

func sshRules(t *testing.T) *ruleset.Ruleset {
	t.Helper()
	h, err := hub.OpenHub(testhub.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ruleset.Load(h, ruleset.Spec{Collections: []string{"crowdsecurity/sshd"},
		Parsers: []string{"crowdsecurity/syslog-logs", "crowdsecurity/dateparse-enrich"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	return rs
}

// A replay raises the same alerts, in the same order, whatever the number
// of parsing workers and whether its source sends lines one by one or in
// batches (the -dsn file:// replay), and Run returns once the file is
// processed.
func TestReplaySameAlertsAnyWorkers(t *testing.T) {
	rs := sshRules(t)
	var buf bytes.Buffer
	if _, err := loggen.SSHDCount(&buf, 20000, 3); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "auth.log")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"type": "syslog"}
	batched, err := acquisition.FromDSN("file://"+path, labels, acquisition.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := batched.(acquisition.BatchSource); !ok {
		t.Fatal("the file replay does not send batches")
	}
	var first []string
	for _, run := range []struct {
		workers int
		src     acquisition.Source
	}{{1, &lineSource{path: path, labels: labels}}, {4, &lineSource{path: path, labels: labels}}, {1, batched}, {4, batched}} {
		workers := run.workers
		s := &sink{}
		a, err := runner.New(runner.Config{Rules: rs, Sink: s, Workers: workers, Replay: true,
			Sources: []acquisition.Source{run.src}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = a.Run(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Stats.Lines.Load(); got != 20000 {
			t.Fatalf("%d lines processed, want 20000", got)
		}
		keys := s.keys()
		if len(keys) == 0 {
			t.Fatal("no alert from 20k sshd lines with attacks")
		}
		checkTiming(t, &a.Timing, 20000)
		if first == nil {
			first = keys
			continue
		}
		if !slices.Equal(first, keys) {
			t.Fatalf("workers=%d, %s: %d alerts differ from workers=1 (%d)", workers, run.src.Name(), len(keys), len(first))
		}
	}
}

// checkTiming checks that a finished replay's milestones came in order
// and that its batches hold its lines.
func checkTiming(t *testing.T, tm *runner.Timing, lines int64) {
	t.Helper()
	steps := []struct {
		name string
		at   int64
	}{{"started", tm.Started.Load()}, {"first line", tm.FirstLine.Load()}, {"sources done", tm.SourcesDone.Load()},
		{"last pushed", tm.LastPush.Load()}, {"last poured", tm.LastPoured.Load()}}
	for i, s := range steps {
		if s.at == 0 {
			t.Errorf("timing: %s not marked", s.name)
		} else if i > 0 && s.at < steps[i-1].at {
			t.Errorf("timing: %s before %s", s.name, steps[i-1].name)
		}
	}
	if n := tm.Batches.Load(); n == 0 || n > lines {
		t.Errorf("timing: %d batches for %d lines", n, lines)
	}
}

// Live: a brute force written to the log raises its alert while the agent
// keeps running.
func TestLiveAlert(t *testing.T) {
	rs := sshRules(t)
	path := filepath.Join(t.TempDir(), "auth.log")
	var b bytes.Buffer
	now := time.Now()
	for i := range 10 {
		fmt.Fprintf(&b, "%s host sshd[%d]: Failed password for root from 203.0.113.77 port %d ssh2\n", now.Format(time.Stamp), 100+i, 40000+i)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	a, err := runner.New(runner.Config{Rules: rs, Sink: s, Workers: 2,
		Sources: []acquisition.Source{&lineSource{path: path, labels: map[string]string{"type": "syslog"}, live: true}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(s.keys(), "crowdsecurity/ssh-bf 203.0.113.77") {
		if time.Now().After(deadline) {
			t.Fatalf("no ssh-bf alert; got %v", s.keys())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// SourceStats splits the line counts per source (and its labels.type), even
// when the sources' lines interleave within batches, and adds up to Stats.
func TestSourceStats(t *testing.T) {
	rs := sshRules(t)
	dir := t.TempDir()
	var sshd bytes.Buffer
	if _, err := loggen.SSHDCount(&sshd, 3000, 2); err != nil {
		t.Fatal(err)
	}
	auth, other := filepath.Join(dir, "auth.log"), filepath.Join(dir, "other.log")
	if err := os.WriteFile(auth, sshd.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var junk bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&junk, "junk %d\n", i)
	}
	if err := os.WriteFile(other, junk.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := runner.New(runner.Config{Rules: rs, Sink: &sink{}, Workers: 2, Replay: true, Sources: []acquisition.Source{
		&lineSource{path: auth, labels: map[string]string{"type": "syslog"}},
		&lineSource{path: other, labels: map[string]string{"type": "custom"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := a.SourceStats()
	if len(got) != 2 || got[0].Source != auth || got[1].Source != other {
		t.Fatalf("sources: %+v", got)
	}
	if s := got[0]; s.Module != "file" || s.Type != "syslog" || s.Read != 3000 || s.Parsed+s.Unparsed != s.Read || s.Parsed == 0 {
		t.Errorf("auth.log: %+v", s)
	}
	if s := got[1]; s.Type != "custom" || s.Read != 1000 || s.Unparsed != 1000 || s.Parsed != 0 {
		t.Errorf("other.log: %+v", s)
	}
	if p, w := got[0].Parsed+got[1].Parsed, got[0].Whitelisted+got[1].Whitelisted; p != a.Stats.Parsed.Load() || w != a.Stats.Whitelisted.Load() {
		t.Errorf("parsed %d whitelisted %d, Stats say %d %d", p, w, a.Stats.Parsed.Load(), a.Stats.Whitelisted.Load())
	}
}

// A source that fails ends the run with its error, replaying or live: the
// daemon must exit rather than run on reading nothing. Live, sources that
// all end by themselves are an error too.
func TestSourceFailureEndsRun(t *testing.T) {
	rs := sshRules(t)
	good := filepath.Join(t.TempDir(), "auth.log")
	if err := os.WriteFile(good, []byte("nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"type": "syslog"}
	for _, tc := range []struct {
		name    string
		replay  bool
		sources []acquisition.Source
		want    string
	}{
		{"replay", true, []acquisition.Source{&lineSource{path: "/nonexistent/auth.log", labels: labels}}, "/nonexistent/auth.log"},
		{"live, one of two", false, []acquisition.Source{&lineSource{path: good, labels: labels, live: true},
			&lineSource{path: "/nonexistent/auth.log", labels: labels, live: true}}, "/nonexistent/auth.log"},
		{"live, all ended", false, []acquisition.Source{&lineSource{path: good, labels: labels}}, "every log source stopped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := runner.New(runner.Config{Rules: rs, Sink: &sink{}, Workers: 1, Replay: tc.replay, Sources: tc.sources})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = a.Run(ctx)
			if ctx.Err() != nil {
				t.Fatal("Run did not return before its context ended")
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error about %s", err, tc.want)
			}
		})
	}
}

// linesSource sends its lines, then runs until cancelled, as a live
// source does.
type linesSource struct{ lines []event.Line }

func (s *linesSource) Name() string { return "test:lines" }

func (s *linesSource) Run(ctx context.Context, out chan<- event.Line) error {
	for _, l := range s.lines {
		select {
		case out <- l:
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// Warm-up lines rebuild the buckets, blackholes included, but raise no
// alert and are not counted as lines read: 6 failures from .1 read again
// (an overflow raised before the stop) then a 7th, new, is in the
// blackhole; 5 from .2 read again then a 6th, new, overflows.
func TestWarmupRebuildsBucketsWithoutAlerts(t *testing.T) {
	rs := sshRules(t)
	now := time.Now()
	var lines []event.Line
	add := func(ip string, n int, warm bool) {
		for i := range n {
			raw := fmt.Sprintf("%s host sshd[%d]: Failed password for root from %s port %d ssh2", now.Format(time.Stamp), 100+i, ip, 40000+i)
			lines = append(lines, event.Line{Raw: raw, Src: "auth.log", Module: "file", Labels: map[string]string{"type": "syslog"},
				Time: now, Warmup: warm})
		}
	}
	add("203.0.113.1", 6, true)
	add("203.0.113.2", 5, true)
	add("203.0.113.1", 1, false)
	add("203.0.113.2", 1, false)
	add("203.0.113.3", 6, false) // the barrier: its alert comes last
	s := &sink{}
	a, err := runner.New(runner.Config{Rules: rs, Sink: s, Workers: 2, Sources: []acquisition.Source{&linesSource{lines: lines}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(s.keys(), "crowdsecurity/ssh-bf 203.0.113.3") {
		if time.Now().After(deadline) {
			t.Fatalf("no ssh-bf alert for the barrier; got %v", s.keys())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := s.keys(), []string{"crowdsecurity/ssh-bf 203.0.113.2", "crowdsecurity/ssh-bf 203.0.113.3"}; !slices.Equal(got, want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
	if w, wo, l := a.Stats.Warmup.Load(), a.Stats.WarmupOverflows.Load(), a.Stats.Lines.Load(); w != 11 || wo != 1 || l != 8 {
		t.Fatalf("warm-up lines %d, their overflows %d, lines %d: want 11, 1, 8", w, wo, l)
	}
	if st := a.SourceStats(); len(st) != 1 || st[0].Read != 8 {
		t.Fatalf("source stats %+v: want the 8 new lines read", st)
	}
	var timed uint64
	for _, c := range a.Engine().AlertDelay().Counts {
		timed += c
	}
	if timed != 2 {
		t.Fatalf("%d alert delays observed, want 2 (the warm-up overflow is no alert)", timed)
	}
}

// The workers reuse the maps of the lines they drop (unparsed or
// whitelisted) for the next lines: every alert, events and meta included,
// must be what a plain sequential parse and pour with fresh events
// raises. A map reused while a bucket or an alert still read it would
// show here as wrong or missing meta (and, under -race, as a race).
func TestReplayAlertsMatchFreshEvents(t *testing.T) {
	rs := sshRules(t)
	var buf bytes.Buffer
	if _, err := loggen.SSHDCount(&buf, 20000, 5); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "auth.log")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"type": "syslog"}

	// the reference: one event.New per line, nothing reused
	var want []string
	engine := rs.NewEngine(true)
	unparsed := 0
	for line := range strings.Lines(buf.String()) {
		evt := event.New(event.Line{Raw: strings.TrimSuffix(line, "\n"), Src: path, Module: "file", Labels: labels})
		_ = rs.Parse(&evt, nil)
		if !evt.Process || evt.Whitelisted {
			unparsed++
			continue
		}
		for _, ov := range engine.PourPrepared(&evt, engine.Prepare(&evt)) {
			if ov.Overflow.Alert != nil {
				want = append(want, alertDigest(t, ov.Overflow.Alert))
			}
		}
	}
	if unparsed < 1000 || len(want) == 0 {
		t.Fatalf("%d lines dropped and %d alerts: the log does not exercise the reuse", unparsed, len(want))
	}

	s := &sink{}
	a, err := runner.New(runner.Config{Rules: rs, Sink: s, Workers: 2, Replay: true,
		Sources: []acquisition.Source{&lineSource{path: path, labels: labels}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var got []string
	for _, al := range s.alerts {
		got = append(got, alertDigest(t, al))
	}
	if len(got) != len(want) {
		t.Fatalf("%d alerts, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("alert %d differs from a fresh-event replay's:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}

// alertDigest is an alert's JSON without what the clock sets.
func alertDigest(t *testing.T, a *models.Alert) string {
	t.Helper()
	c := *a
	c.CreatedAt = ""
	data, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
