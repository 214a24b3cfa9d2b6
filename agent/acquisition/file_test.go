package acquisition

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/internal/loggen"
)

// srcHarness runs one source against real files and collects what it sends.
type srcHarness struct {
	t       testing.TB
	src     Source
	out     chan event.Line
	hook    *logtest.Hook
	metrics *Metrics
	done    chan error
	cancel  context.CancelFunc
}

func acqTestOptions() (Options, *logtest.Hook, *Metrics) {
	logger := log.New()
	logger.Out = io.Discard
	logger.SetLevel(log.DebugLevel)
	hook := logtest.NewLocal(logger)
	m := NewMetrics(prometheus.NewRegistry())
	return Options{Metrics: m, Logger: log.NewEntry(logger)}, hook, m
}

// startFile starts a file source on cfg with test timings, after tweak.
func startFile(t testing.TB, cfg Config, tweak func(*fileTiming)) *srcHarness {
	t.Helper()
	opts, hook, m := acqTestOptions()
	if cfg.Source == "" {
		cfg.Source = "file"
	}
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{"type": "syslog"}
	}
	src, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	fs := src.(*fileSource)
	fs.timing.rescan = 300 * time.Millisecond
	fs.timing.drainGrace = 500 * time.Millisecond
	if tweak != nil {
		tweak(&fs.timing)
	}
	return runSource(t, src, hook, m)
}

func runSource(t testing.TB, src Source, hook *logtest.Hook, m *Metrics) *srcHarness {
	ctx, cancel := context.WithCancel(context.Background())
	h := &srcHarness{t: t, src: src, out: make(chan event.Line, 1<<20), hook: hook, metrics: m,
		done: make(chan error, 1), cancel: cancel}
	go func() { h.done <- src.Run(ctx, h.out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			t.Error("source did not stop within 5s of its context ending")
		}
	})
	return h
}

// waitLog waits for a log entry with message msg (and field file, if set).
func (h *srcHarness) waitLog(msg, file string) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range h.hook.AllEntries() {
			if e.Message == msg && (file == "" || e.Data["file"] == file) {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("no log %q for %q within 5s", msg, file)
}

// collect receives exactly n lines within timeout.
func (h *srcHarness) collect(n int, timeout time.Duration) []event.Line {
	h.t.Helper()
	var got []event.Line
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case l := <-h.out:
			got = append(got, l)
		case <-deadline:
			h.t.Fatalf("got %d lines of %d within %s; last: %v", len(got), n, timeout, lastN(raws(got), 3))
		}
	}
	return got
}

// expectNone checks that nothing more arrives for d: proving an absence
// takes waiting.
func (h *srcHarness) expectNone(d time.Duration) {
	h.t.Helper()
	select {
	case l := <-h.out:
		h.t.Fatalf("unexpected line %q from %s", l.Raw, l.Src)
	case <-time.After(d):
	}
}

func raws(ls []event.Line) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Raw
	}
	return out
}

func lastN(s []string, n int) []string { return s[max(0, len(s)-n):] }

func numbered(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s line %d", prefix, from+i)
	}
	return out
}

func writeLines(t testing.TB, f *os.File, lines []string) {
	t.Helper()
	if len(lines) == 0 {
		return
	}
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// inotifyAndPoll runs a test with inotify and with polling.
func inotifyAndPoll(t *testing.T, fn func(t *testing.T, poll bool)) {
	for _, poll := range []bool{false, true} {
		name := "inotify"
		if poll {
			name = "poll"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, poll)
		})
	}
}

func TestFileTailFromEnd(t *testing.T) {
	inotifyAndPoll(t, func(t *testing.T, poll bool) {
		path := filepath.Join(t.TempDir(), "auth.log")
		w := appendFile(t, path)
		writeLines(t, w, numbered("old", 0, 3))
		h := startFile(t, Config{Filenames: []string{path}, PollWithoutInotify: poll}, nil)
		h.waitLog("tailing file", path)

		want := numbered("new", 0, 5)
		writeLines(t, w, want)
		got := h.collect(len(want), 5*time.Second)
		if !slices.Equal(raws(got), want) {
			t.Fatalf("got %q, want %q", raws(got), want)
		}
		for _, l := range got {
			if l.Src != path || l.Module != "file" || l.Labels["type"] != "syslog" || l.Time.IsZero() {
				t.Fatalf("bad line metadata: %+v", l)
			}
		}
		h.expectNone(300 * time.Millisecond)
		if v := testutil.ToFloat64(h.metrics.hits["file"].WithLabelValues(path, "file", "syslog")); v != 5 {
			t.Errorf("cs_filesource_hits_total = %v, want 5", v)
		}
		if v := testutil.ToFloat64(h.metrics.lines.WithLabelValues(path, "syslog")); v != 5 {
			t.Errorf("rampart_acquisition_lines_total = %v, want 5", v)
		}
	})
}

// TestFileRotateRenameCreate writes lines before the rename, to the old
// file after it (the writer has not reopened yet) and to the new file:
// each must arrive exactly once.
func TestFileRotateRenameCreate(t *testing.T) {
	for _, glob := range []string{"app.log", "app.log*"} {
		t.Run(glob, func(t *testing.T) {
			inotifyAndPoll(t, func(t *testing.T, poll bool) {
				dir := t.TempDir()
				path := filepath.Join(dir, "app.log")
				w := appendFile(t, path)
				writeLines(t, w, numbered("history", 0, 10))
				h := startFile(t, Config{Filenames: []string{filepath.Join(dir, glob)}, PollWithoutInotify: poll}, nil)
				h.waitLog("tailing file", path)

				// Rotations are far apart in life: each round waits for its lines.
				for round := range 3 {
					before := numbered(fmt.Sprintf("r%d before", round), 0, 300)
					after := numbered(fmt.Sprintf("r%d late", round), 0, 50)
					fresh := numbered(fmt.Sprintf("r%d new", round), 0, 200)
					writeLines(t, w, before)
					if err := os.Rename(path, fmt.Sprintf("%s.%d", path, round+1)); err != nil {
						t.Fatal(err)
					}
					writeLines(t, w, after[:25])
					nw := appendFile(t, path)
					writeLines(t, w, after[25:])
					writeLines(t, nw, fresh)
					w = nw
					want := slices.Concat(before, after, fresh)
					got := raws(h.collect(len(want), 10*time.Second))
					// Lines of one file keep their order; files may interleave.
					for _, part := range [][]string{before, after, fresh} {
						pre := part[0][:strings.Index(part[0], " line")]
						if g := withPrefix(got, pre); !slices.Equal(g, part) {
							t.Fatalf("%s: got %d lines, last %v; want %d in order", pre, len(g), lastN(g, 3), len(part))
						}
					}
				}
				h.expectNone(700 * time.Millisecond) // past drainGrace: nothing repeated
			})
		})
	}
}

func withPrefix(s []string, p string) []string {
	var out []string
	for _, l := range s {
		if strings.HasPrefix(l, p+" ") {
			out = append(out, l)
		}
	}
	return out
}

func TestFileCopyTruncate(t *testing.T) {
	inotifyAndPoll(t, func(t *testing.T, poll bool) {
		path := filepath.Join(t.TempDir(), "app.log")
		w := appendFile(t, path)
		writeLines(t, w, numbered("history", 0, 10))
		h := startFile(t, Config{Filenames: []string{path}, PollWithoutInotify: poll}, nil)
		h.waitLog("tailing file", path)

		first := numbered("first", 0, 20)
		writeLines(t, w, first)
		if got := raws(h.collect(len(first), 5*time.Second)); !slices.Equal(got, first) {
			t.Fatalf("got %q, want %q", got, first)
		}
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
		h.waitLog("file truncated: reading from its start", path)
		second := numbered("second", 0, 3)
		writeLines(t, w, second)
		if got := raws(h.collect(len(second), 5*time.Second)); !slices.Equal(got, second) {
			t.Fatalf("after truncation got %q, want %q", got, second)
		}
		h.expectNone(300 * time.Millisecond)
	})
}

func TestFileGlobCreatedLater(t *testing.T) {
	inotifyAndPoll(t, func(t *testing.T, poll bool) {
		dir := t.TempDir()
		h := startFile(t, Config{Filenames: []string{filepath.Join(dir, "*.log")}, PollWithoutInotify: poll},
			func(ft *fileTiming) {
				if !poll {
					ft.rescan = time.Hour // inotify alone must find it
				}
			})
		h.waitLog("no file matches yet: waiting for one to appear", "")
		if err := os.WriteFile(filepath.Join(dir, "other.txt"), []byte("not matched\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "late.log")
		w := appendFile(t, path)
		want := numbered("late", 0, 4)
		writeLines(t, w, want) // all of a file that appears later is news
		if got := raws(h.collect(len(want), 5*time.Second)); !slices.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		more := numbered("more", 0, 2)
		writeLines(t, w, more)
		if got := raws(h.collect(len(more), 5*time.Second)); !slices.Equal(got, more) {
			t.Fatalf("got %q, want %q", got, more)
		}
		h.expectNone(300 * time.Millisecond)
	})
}

func TestFilePartialLine(t *testing.T) {
	inotifyAndPoll(t, func(t *testing.T, poll bool) {
		path := filepath.Join(t.TempDir(), "app.log")
		w := appendFile(t, path)
		h := startFile(t, Config{Filenames: []string{path}, PollWithoutInotify: poll},
			func(ft *fileTiming) { ft.partialFlush = time.Second })
		h.waitLog("tailing file", path)

		if _, err := w.WriteString("one\r\n\ntw"); err != nil {
			t.Fatal(err)
		}
		if got := raws(h.collect(1, 5*time.Second)); got[0] != "one" {
			t.Fatalf("got %q, want one (CR and empty line dropped)", got)
		}
		h.expectNone(400 * time.Millisecond) // "tw" is held
		if _, err := w.WriteString("o\nthree"); err != nil {
			t.Fatal(err)
		}
		if got := raws(h.collect(1, 5*time.Second)); got[0] != "two" {
			t.Fatalf("got %q, want two", got)
		}
		// "three" never gets its newline: it leaves after partialFlush.
		if got := raws(h.collect(1, 5*time.Second)); got[0] != "three" {
			t.Fatalf("got %q, want three", got)
		}
		h.expectNone(300 * time.Millisecond)
	})
}

func TestFileLongLineCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	w := appendFile(t, path)
	h := startFile(t, Config{Filenames: []string{path}}, nil)
	h.waitLog("tailing file", path)
	long := strings.Repeat("x", 200<<10)
	if _, err := w.WriteString("a\n" + long + "\nb\n" + long[:maxLineLen] + "\n"); err != nil {
		t.Fatal(err)
	}
	got := raws(h.collect(4, 5*time.Second))
	if got[0] != "a" || got[1] != long[:maxLineLen] || got[2] != "b" || got[3] != long[:maxLineLen] {
		t.Fatalf("got lines of lengths %d %d %d %d", len(got[0]), len(got[1]), len(got[2]), len(got[3]))
	}
	if v := testutil.ToFloat64(h.metrics.truncated.WithLabelValues(path)); v != 1 {
		t.Errorf("truncated lines = %v, want 1", v)
	}
	h.expectNone(200 * time.Millisecond)
}

func TestFileReplay(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	want := numbered("replay", 0, 1000)
	if err := os.WriteFile(path, []byte(strings.Join(want, "\n")), 0o644); err != nil { // no final newline
		t.Fatal(err)
	}
	gzPath := filepath.Join(dir, "auth.log.2.gz")
	gf, err := os.Create(gzPath)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(gf)
	fmt.Fprint(gz, "zipped 1\nzipped 2\n")
	gz.Close()
	gf.Close()

	for _, tc := range []struct {
		dsn  string
		want []string
	}{
		{"file://" + path, want},
		{"file://" + gzPath, []string{"zipped 1", "zipped 2"}},
		{"file://" + filepath.Join(dir, "auth.log*"), append(slices.Clone(want), "zipped 1", "zipped 2")},
	} {
		opts, hook, m := acqTestOptions()
		src, err := FromDSN(tc.dsn, map[string]string{"type": "syslog"}, opts)
		if err != nil {
			t.Fatal(err)
		}
		h := runSource(t, src, hook, m)
		select {
		case err := <-h.done:
			h.done <- err // for the cleanup
			if err != nil {
				t.Fatalf("%s: Run: %v", tc.dsn, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: replay did not return", tc.dsn)
		}
		if got := raws(h.collect(len(tc.want), time.Second)); !slices.Equal(got, tc.want) {
			t.Fatalf("%s: got %d lines, want %d", tc.dsn, len(got), len(tc.want))
		}
		h.expectNone(0)
	}

	for _, tc := range []struct{ dsn, labelType, err string }{
		{"file://" + path, "", "labels need a type"},
		{"nosuch://x", "syslog", `source "nosuch" is not available`},
		{"file://" + filepath.Join(dir, "none*"), "syslog", "no file matches"},
		{"file://relative/x.log", "syslog", "host"},
		{"file://" + path + "?x=1", "syslog", "no parameters"},
		{"/var/log/auth.log", "syslog", "want scheme://"},
	} {
		opts, _, _ := acqTestOptions()
		_, err := FromDSN(tc.dsn, map[string]string{"type": tc.labelType}, opts)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("FromDSN(%q) = %v, want an error with %q", tc.dsn, err, tc.err)
		}
	}
}

func TestIdleWarning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quiet.log")
	w := appendFile(t, path)
	idle := Duration(200 * time.Millisecond)
	h := startFile(t, Config{Filenames: []string{path}, IdleWarning: &idle}, nil)
	name := h.src.Name()
	gauge := h.metrics.idle.WithLabelValues(name)
	waitGauge := func(want float64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for testutil.ToFloat64(gauge) != want {
			if time.Now().After(deadline) {
				t.Fatalf("rampart_acquisition_idle{source=%q} is %v, want %v", name, testutil.ToFloat64(gauge), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitGauge(1)
	idleWarnings := func() int {
		n := 0
		for _, e := range h.hook.AllEntries() {
			if e.Level == log.WarnLevel && strings.HasPrefix(e.Message, "no lines read from "+name+" for 200ms: check the path") {
				n++
			}
		}
		return n
	}
	// the gauge is set just before the warning is logged: wait for it,
	// then make sure one stays one
	deadline := time.Now().Add(5 * time.Second)
	for idleWarnings() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if warnings := idleWarnings(); warnings != 1 {
		t.Fatalf("%d idle warnings, want 1", warnings)
	}
	writeLines(t, w, []string{"wake up"})
	h.collect(1, 5*time.Second)
	waitGauge(0)
	h.waitLog("lines are read again", "")
	waitGauge(1) // and quiet again
}

func TestIdleWarningDisabled(t *testing.T) {
	var zero Duration
	path := filepath.Join(t.TempDir(), "quiet.log")
	appendFile(t, path)
	h := startFile(t, Config{Filenames: []string{path}, IdleWarning: &zero}, nil)
	h.waitLog("tailing file", path)
	time.Sleep(100 * time.Millisecond) // an absence: wait past a would-be period
	if v := testutil.ToFloat64(h.metrics.idle.WithLabelValues(h.src.Name())); v != 0 {
		t.Fatalf("idle gauge %v with idle_warning 0", v)
	}
}

// BenchmarkFileTail measures lines per second from a file appended to
// while the source tails it (go test -bench FileTail -benchtime 200000x),
// without a state directory and with positions saved every second (the
// daemon's default) or every 10 ms (their cost magnified).
func BenchmarkFileTail(b *testing.B) {
	b.Run("no-positions", func(b *testing.B) { benchFileTail(b, nil) })
	b.Run("positions-1s", func(b *testing.B) {
		benchFileTail(b, func(o *Options) { o.StateDir = b.TempDir() })
	})
	b.Run("positions-10ms", func(b *testing.B) {
		benchFileTail(b, func(o *Options) { o.StateDir, o.SaveInterval = b.TempDir(), 10*time.Millisecond })
	})
}

func benchFileTail(b *testing.B, tweak func(*Options)) {
	path := filepath.Join(b.TempDir(), "bench.log")
	w := appendFile(b, path)
	var h *srcHarness
	if tweak == nil {
		h = startFile(b, Config{Filenames: []string{path}}, nil)
	} else {
		opts, hook, m := acqTestOptions()
		tweak(&opts)
		src, err := New(Config{Source: "file", Filenames: []string{path}, Labels: map[string]string{"type": "syslog"}}, opts)
		if err != nil {
			b.Fatal(err)
		}
		h = runSource(b, src, hook, m)
	}
	h.waitLog("tailing file", path)
	line := `Nov 25 21:16:01 host sshd[1234]: Failed password for invalid user admin from 192.0.2.10 port 52144 ssh2` + "\n"
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() {
		const batch = 500
		chunk := strings.Repeat(line, batch)
		for i := 0; i < b.N; i += batch {
			if n := min(batch, b.N-i); n < batch {
				chunk = strings.Repeat(line, n)
			}
			if _, err := w.WriteString(chunk); err != nil {
				panic(err)
			}
		}
	}()
	for range b.N {
		select {
		case <-h.out:
		case <-time.After(10 * time.Second):
			b.Fatal("lines stopped arriving")
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lines/s")
}

// BenchmarkReadFile is the -dsn file:// replay's reading: a 100k-line
// sshd log cut into lines and handed over in batches.
func BenchmarkReadFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "auth.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := loggen.SSHDCount(f, 100000, 1); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	labels := map[string]string{"type": "syslog"}
	b.ReportAllocs()
	lines := 0
	for b.Loop() {
		lines = 0
		if _, err := ReadFile(context.Background(), path, labels, nil, func(ls []event.Line) error {
			lines += len(ls)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	if lines != 100000 {
		b.Fatalf("%d lines read, want 100000", lines)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
}
