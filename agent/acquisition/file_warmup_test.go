package acquisition

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/event"
)

func TestWarmRing(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const w = 32 * time.Minute // a checkpoint per minute at most
	var r fileRing
	r = addOffset(r, t0, 100, w)
	if from, ok := r.from(t0, w); !ok || from != 100 {
		t.Fatalf("one checkpoint: from %d %v, want 100", from, ok)
	}
	// Within a minute of the last one: not recorded (a start re-reads a
	// little more, never less).
	r = addOffset(r, t0.Add(30*time.Second), 150, w)
	if len(r) != 1 {
		t.Fatalf("checkpoint taken within window/%d: %+v", warmRingSize, r)
	}
	// Unmoved offsets are not recorded either.
	r = addOffset(r, t0.Add(5*time.Minute), 100, w)
	if len(r) != 1 {
		t.Fatalf("unmoved offset recorded: %+v", r)
	}
	for i := 1; i <= 100; i++ {
		r = addOffset(r, t0.Add(time.Duration(i)*time.Minute), int64(100+i*10), w)
	}
	// Bounded: the window's checkpoints and one anchor before it.
	if len(r) > warmRingSize+2 {
		t.Fatalf("%d checkpoints kept, want at most %d", len(r), warmRingSize+2)
	}
	now := t0.Add(100 * time.Minute)
	from, _ := r.from(now, w)
	// Lines read since now-w (68 min) start at the checkpoint of 68 min.
	if want := int64(100 + 68*10); from != want {
		t.Fatalf("from %d, want %d (the newest checkpoint at or before now-window)", from, want)
	}
	// A later start (a stop of 10 minutes) needs less of it.
	if from2, _ := r.from(now.Add(10*time.Minute), w); from2 != 100+78*10 {
		t.Fatalf("10 minutes later: from %d, want %d", from2, 100+78*10)
	}
	// Stopped longer than the window: nothing to read again.
	if from3, _ := r.from(now.Add(2*w), w); from3 != 100+100*10 {
		t.Fatalf("after the window: from %d, want the last offset", from3)
	}
	// A truncation starts the ring again.
	r = addOffset(r, now.Add(time.Minute), 5, w)
	if len(r) != 1 || r[0].Pos != 5 {
		t.Fatalf("after a truncation: %+v", r)
	}
	if addOffset(r, now, 10, 0) != nil {
		t.Fatal("a zero window keeps checkpoints")
	}
	if _, ok := fileRing(nil).from(now, w); ok {
		t.Fatal("an empty ring gives a warm-up offset")
	}
}

func TestWarmupWindowBounds(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want time.Duration
	}{
		{Options{}, 0},
		{Options{WarmupWindow: 10 * time.Minute}, 10 * time.Minute},
		{Options{WarmupWindow: 3 * time.Hour}, DefaultMaxBacklogAge},
		{Options{WarmupWindow: time.Hour, MaxBacklogAge: time.Minute}, time.Minute},
		{Options{WarmupWindow: time.Hour, MaxBacklogAge: -1}, 0},
	} {
		if got := c.o.warmupWindow(); got != c.want {
			t.Errorf("%+v: window %s, want %s", c.o, got, c.want)
		}
	}
}

func withWarmup(w time.Duration, maxBytes int64) func(*Options) {
	return func(o *Options) { o.WarmupWindow, o.MaxBacklogBytes = w, maxBytes }
}

// lineKinds renders lines as raw/w (warm-up), raw/b (backlog) or raw.
func lineKinds(ls []event.Line) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		switch {
		case l.Warmup:
			out[i] = l.Raw + "/w"
		case l.Backlog:
			out[i] = l.Raw + "/b"
		default:
			out[i] = l.Raw
		}
	}
	return out
}

// After a stop, the lines read within the window before the saved
// position come again marked warm-up, then the backlog, then live lines;
// a second restart with nothing new re-reads the same, never a line as
// new twice.
func TestFileWarmupReplay(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "auth.log")
	appendLines(t, log, "history\n")
	h := stateRun(t, log, state, withWarmup(time.Hour, 0))
	h.waitLog("tailing file", log)
	appendLines(t, log, "a1\n", "a2\n")
	checkLines(t, raws(h.collect(2, 5*time.Second)), "a1", "a2")
	h.stop()

	appendLines(t, log, "b1\n")
	h = stateRun(t, log, state, withWarmup(time.Hour, 0))
	checkLines(t, lineKinds(h.collect(3, 5*time.Second)), "a1/w", "a2/w", "b1/b")
	if !strings.Contains(h.logText(), "warm-up: re-reading 6 bytes written in the last 1h0m0s to restore bucket state") {
		t.Fatalf("no warm-up info line:\n%s", h.logText())
	}
	h.waitLog("tailing file", log)
	appendLines(t, log, "live\n")
	checkLines(t, lineKinds(h.collect(1, 5*time.Second)), "live")
	h.stop()

	st := readState(t, state)
	if f := st.Files[0]; f.WarmFrom != int64(len("history\n")) || f.Offset != int64(len("history\na1\na2\nb1\nlive\n")) {
		t.Fatalf("saved %+v: want warm_from after the history, offset at the end", f)
	}
	h = stateRun(t, log, state, withWarmup(time.Hour, 0))
	checkLines(t, lineKinds(h.collect(4, 5*time.Second)), "a1/w", "a2/w", "b1/w", "live/w")
	h.waitLog("tailing file", log)
	appendLines(t, log, "next\n")
	checkLines(t, lineKinds(h.collect(1, 5*time.Second)), "next")
}

// The warm-up starts at the newest checkpoint at or before the window's
// start, is cut to max_backlog_bytes (the cut line dropped), and there is
// none without a window.
func TestFileWarmupBounds(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "auth.log")
	appendLines(t, log, "")
	h := stateRun(t, log, state, withWarmup(time.Hour, 0))
	h.waitLog("tailing file", log)
	appendLines(t, log, "old1\n", "old2\n", "recent1\n", "recent2\n")
	h.collect(4, 5*time.Second)
	h.stop()

	// Checkpoints as if old1 and old2 had been read two hours ago.
	now := time.Now()
	st := readState(t, state)
	st.Files[0].Warm = fileRing{{At: now.Add(-3 * time.Hour), Pos: 0}, {At: now.Add(-2 * time.Hour), Pos: 10},
		{At: now.Add(-time.Minute), Pos: st.Files[0].Offset}}
	writeState(t, state, st)
	h = stateRun(t, log, state, withWarmup(time.Hour, 0))
	h.waitLog("tailing file", log)
	appendLines(t, log, "live\n")
	checkLines(t, lineKinds(h.collect(3, 5*time.Second)), "recent1/w", "recent2/w", "live")
	h.stop()

	// 14 bytes: the end of recent1 is dropped, recent2 re-read.
	h = stateRun(t, log, state, withWarmup(time.Hour, 14))
	h.waitLog("tailing file", log)
	appendLines(t, log, "live2\n")
	checkLines(t, lineKinds(h.collect(3, 5*time.Second)), "recent2/w", "live/w", "live2")
	h.stop()

	h = stateRun(t, log, state, withWarmup(0, 0))
	h.waitLog("tailing file", log)
	appendLines(t, log, "live3\n")
	checkLines(t, lineKinds(h.collect(1, 5*time.Second)), "live3")
	if strings.Contains(h.logText(), "warm-up") {
		t.Fatal("warm-up without a window")
	}
}

// logText is every message logged so far, one a line.
func (h *srcHarness) logText() string {
	var b strings.Builder
	for _, e := range h.hook.AllEntries() {
		b.WriteString(e.Message + "\n")
	}
	return b.String()
}

func readState(t *testing.T, dir string) *fileStateFile {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "file-*.offsets"))
	if len(paths) != 1 {
		t.Fatalf("state files %q, want one", paths)
	}
	data, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	var st fileStateFile
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func writeState(t *testing.T, dir string, st *fileStateFile) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "file-*.offsets"))
	if err := saveFileState(paths[0], st); err != nil {
		t.Fatal(err)
	}
}
