package acquisition

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// stateRun is one life of a file source that keeps its positions in dir.
func stateRun(t *testing.T, file, stateDir string, tweak func(*Options)) *srcHarness {
	t.Helper()
	opts, hook, m := acqTestOptions()
	opts.StateDir = stateDir
	if tweak != nil {
		tweak(&opts)
	}
	src, err := New(Config{Source: "file", Filenames: []string{file}, Labels: map[string]string{"type": "syslog"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	fs := src.(*fileSource)
	fs.timing.rescan = 300 * time.Millisecond
	fs.timing.drainGrace = 500 * time.Millisecond
	return runSource(t, src, hook, m)
}

// stop ends the run and waits for it (positions saved at exit).
func (h *srcHarness) stop() {
	h.t.Helper()
	h.cancel()
	err := <-h.done
	h.done <- err // for the cleanup's wait
}

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(l); err != nil {
			t.Fatal(err)
		}
	}
}

func checkLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// Lines written while the source is stopped are read at its next start,
// marked as backlog; lines after that are live again.
func TestFileResumesAfterStop(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "auth.log")
	appendLines(t, log, "old 1\n", "old 2\n")
	h := stateRun(t, log, state, nil)
	h.waitLog("tailing file", log)
	appendLines(t, log, "a1\n", "a2\n", "par")
	checkLines(t, raws(h.collect(2, 5*time.Second)), "a1", "a2")
	h.stop()

	appendLines(t, log, "tial\n", "b1\n", "b2\n")
	h = stateRun(t, log, state, nil)
	got := h.collect(3, 5*time.Second)
	checkLines(t, raws(got), "partial", "b1", "b2")
	for _, l := range got {
		if !l.Backlog {
			t.Errorf("line %q written while stopped is not marked as backlog", l.Raw)
		}
	}
	h.waitLog("tailing file", log)
	appendLines(t, log, "live\n")
	l := h.collect(1, 5*time.Second)[0]
	if l.Raw != "live" || l.Backlog {
		t.Fatalf("after the backlog: %+v", l)
	}
	h.expectNone(300 * time.Millisecond)
}

// Rotated while stopped: the rest of auth.log.1, then the new auth.log
// from its start.
func TestFileResumesAcrossRotation(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "auth.log")
	appendLines(t, log, "")
	h := stateRun(t, log, state, nil)
	h.waitLog("tailing file", log)
	appendLines(t, log, "a1\n")
	checkLines(t, raws(h.collect(1, 5*time.Second)), "a1")
	h.stop()

	appendLines(t, log, "a2\n")
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	appendLines(t, log, "n1\n", "n2\n")
	h = stateRun(t, log, state, nil)
	checkLines(t, raws(h.collect(3, 5*time.Second)), "a2", "n1", "n2")
	h.expectNone(800 * time.Millisecond) // the drained .1 is not read again
}

// Truncated (copytruncate) while stopped, or replaced by a file whose
// rotated predecessor is gone: the file under the name is read from its
// start.
func TestFileResumeTruncatedOrReplaced(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "auth.log")
	appendLines(t, log, "")
	h := stateRun(t, log, state, nil)
	h.waitLog("tailing file", log)
	appendLines(t, log, "a first line long enough\n", "a second line long enough\n")
	h.collect(2, 5*time.Second)
	h.stop()

	if err := os.WriteFile(log, []byte("t1\n"), 0o600); err != nil { // truncates, same inode
		t.Fatal(err)
	}
	h = stateRun(t, log, state, nil)
	checkLines(t, raws(h.collect(1, 5*time.Second)), "t1")
	h.stop()

	if err := os.Remove(log); err != nil {
		t.Fatal(err)
	}
	appendLines(t, log, "r1\n", "r2\n")
	h = stateRun(t, log, state, nil)
	checkLines(t, raws(h.collect(2, 5*time.Second)), "r1", "r2")
}

// Bounds: stopped longer than max_backlog_age, nothing of the backlog is
// read; a backlog over max_backlog_bytes is read from its newest part.
func TestFileBacklogBounds(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "auth.log")
	appendLines(t, log, "")
	h := stateRun(t, log, state, nil)
	h.waitLog("tailing file", log)
	h.stop()

	appendLines(t, log, "0123456789\n", "abcdefghij\n", "last\n")
	small := func(o *Options) { o.MaxBacklogBytes = 13 }
	h = stateRun(t, log, state, small)
	checkLines(t, raws(h.collect(1, 5*time.Second)), "last") // "ij\n" cut, dropped
	h.waitLog("backlog larger than max_backlog_bytes: reading only its newest part", "")
	h.stop()

	// Age the state file as if the agent had been stopped two hours.
	path := fileStatePath(state, []string{log})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st fileStateFile
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	st.Saved = time.Now().Add(-2 * time.Hour)
	if err := saveFileState(path, &st); err != nil {
		t.Fatal(err)
	}
	appendLines(t, log, "stale\n")
	h = stateRun(t, log, state, nil)
	h.waitLog("the source was stopped longer than max_backlog_age: skipping what was written meanwhile", "")
	h.waitLog("tailing file", log)
	appendLines(t, log, "fresh\n")
	checkLines(t, raws(h.collect(1, 5*time.Second)), "fresh")
}

// A damaged state file is reported and the source reads new lines.
func TestFileStateDamaged(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "auth.log")
	appendLines(t, log, "old\n")
	if err := os.WriteFile(fileStatePath(state, []string{log}), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := stateRun(t, log, state, nil)
	h.waitLog("ignoring the saved file positions: reading new lines only", "")
	h.waitLog("tailing file", log)
	appendLines(t, log, "new\n")
	checkLines(t, raws(h.collect(1, 5*time.Second)), "new")
}

// BenchmarkFileSaveState is the cost of one periodic write of a source's
// positions (two files; an atomic replace with two fsyncs), paid once per
// state_save_interval while lines arrive, never per line.
func BenchmarkFileSaveState(b *testing.B) {
	dir := b.TempDir()
	opts, _, _ := acqTestOptions()
	opts.StateDir = filepath.Join(dir, "state")
	var paths []string
	for _, n := range []string{"auth.log", "access.log"} {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, []byte(strings.Repeat("a line of some log\n", 100)), 0o600); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	src, err := New(Config{Source: "file", Filenames: paths, Labels: map[string]string{"type": "syslog"}}, opts)
	if err != nil {
		b.Fatal(err)
	}
	r := &fileRun{s: src.(*fileSource), files: map[string]*tailedFile{}, openErrs: map[string]openErr{}}
	defer r.close()
	for _, p := range paths {
		of, err := r.open(p, true)
		if err != nil {
			b.Fatal(err)
		}
		r.files[p] = &tailedFile{path: p, cur: of}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for _, t := range r.files {
			t.cur.offset = int64(i % 1900) // moved: each save writes
		}
		r.saveState()
	}
	if r.saveErr != "" {
		b.Fatal(r.saveErr)
	}
}

// With a glob that also matches the rotated name (auth.log*), the rotated
// file is found by its inode under its new name: its rest is read once,
// and the new auth.log from its start.
func TestFileResumeRotationGlob(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(dir, "auth.log")
	appendLines(t, log, "")
	opts, hook, m := acqTestOptions()
	opts.StateDir = state
	start := func() *srcHarness {
		src, err := New(Config{Source: "file", Filenames: []string{log + "*"}, Labels: map[string]string{"type": "syslog"}}, opts)
		if err != nil {
			t.Fatal(err)
		}
		src.(*fileSource).timing.drainGrace = 300 * time.Millisecond
		return runSource(t, src, hook, m)
	}
	h := start()
	h.waitLog("tailing file", log)
	appendLines(t, log, "a1\n")
	checkLines(t, raws(h.collect(1, 5*time.Second)), "a1")
	h.stop()

	appendLines(t, log, "a2\n")
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	appendLines(t, log, "n1\n")
	h = start()
	got := raws(h.collect(2, 5*time.Second))
	slices.Sort(got)
	checkLines(t, got, "a2", "n1")
	h.expectNone(time.Second)
}
