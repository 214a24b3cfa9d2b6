package acquisition

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/event"
)

// fakeJournalctl is a journalctl stand-in: a real process started the way
// the source starts journalctl. Invocation n (from 1) appends its argv to
// dir/argv (one argument a line, then "--"). A replay prints
// dir/replay.jsonl, then dir/replay.err to stderr with status 1 if that
// file exists. A follow rejects --after-cursor=bad like journalctl does;
// if dir/die.n exists it prints dir/control.n and exits 1, otherwise it
// follows dir/control.n (tail -f) until stopped.
const fakeJournalctl = `#!/bin/sh
dir='%s'
{ for a in "$@"; do printf '%%s\n' "$a"; done; echo -- ; } >> "$dir/argv"
n=$(grep -c '^--$' "$dir/argv")
follow=0
for a in "$@"; do
	case "$a" in
	--follow) follow=1 ;;
	--after-cursor=bad) echo "Failed to seek to cursor: Invalid argument" >&2; exit 1 ;;
	esac
done
if [ $follow = 0 ]; then
	cat "$dir/replay.jsonl"
	if [ -f "$dir/replay.err" ]; then cat "$dir/replay.err" >&2; exit 1; fi
	exit 0
fi
touch "$dir/control.$n"
if [ -f "$dir/die.$n" ]; then cat "$dir/control.$n"; echo "journal went away" >&2; exit 1; fi
exec tail -n +1 -f "$dir/control.$n"
`

type fakeJournal struct {
	t   *testing.T
	dir string
	bin string
}

func newFakeJournal(t *testing.T) *fakeJournal {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "journalctl")
	if err := os.WriteFile(bin, fmt.Appendf(nil, fakeJournalctl, dir), 0o755); err != nil {
		t.Fatal(err)
	}
	return &fakeJournal{t: t, dir: dir, bin: bin}
}

// invocations returns the argv of each run so far.
func (f *fakeJournal) invocations() [][]string {
	data, err := os.ReadFile(filepath.Join(f.dir, "argv"))
	if err != nil {
		return nil
	}
	var out [][]string
	var cur []string
	for _, l := range strings.Split(string(data), "\n") {
		if l == "--" {
			out = append(out, cur)
			cur = nil
		} else if l != "" {
			cur = append(cur, l)
		}
	}
	return out
}

// waitRuns waits until journalctl was started n times, and returns the argv
// of the last one.
func (f *fakeJournal) waitRuns(n int) []string {
	f.t.Helper()
	var runs [][]string
	syslogWaitFor(f.t, fmt.Sprintf("%d journalctl runs", n), func() bool { runs = f.invocations(); return len(runs) >= n })
	if len(runs) != n {
		f.t.Fatalf("journalctl ran %d times, want %d: %q", len(runs), n, runs)
	}
	return runs[n-1]
}

// waitRun returns the arguments of run n once it has started, whether or
// not run n+1 has too: a run that exits at once (a warm-up read) is
// followed at once by the next.
func (f *fakeJournal) waitRun(n int) []string {
	f.t.Helper()
	var runs [][]string
	syslogWaitFor(f.t, fmt.Sprintf("%d journalctl runs", n), func() bool { runs = f.invocations(); return len(runs) >= n })
	return runs[n-1]
}

// add appends lines to what invocation n prints.
func (f *fakeJournal) add(n int, lines ...string) {
	f.t.Helper()
	fh, err := os.OpenFile(filepath.Join(f.dir, fmt.Sprintf("control.%d", n)), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	defer fh.Close()
	for _, l := range lines {
		if _, err := fh.WriteString(l + "\n"); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fakeJournal) write(name, content string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, name), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// jentry is a journalctl JSON line; msg is a string, a []int of bytes or nil.
func jentry(cursor string, usec int64, ident, pid string, msg any) string {
	e := map[string]any{"__CURSOR": cursor, "__REALTIME_TIMESTAMP": fmt.Sprint(usec), "_HOSTNAME": "web1",
		"_SYSTEMD_UNIT": "ssh.service", "PRIORITY": "6", "MESSAGE": msg}
	if ident != "" {
		e["SYSLOG_IDENTIFIER"] = ident
	}
	if pid != "" {
		e["_PID"] = pid
	}
	b, _ := json.Marshal(e)
	return string(b)
}

var journalTestFilters = []string{"_SYSTEMD_UNIT=ssh.service", "+", "SYSLOG_IDENTIFIER=sshd"}

func startJournal(t *testing.T, fj *fakeJournal, stateDir string) (*srcHarness, *journalSource) {
	t.Helper()
	return startJournalWith(t, fj, stateDir, 0)
}

// startJournalWith is startJournal with a warm-up window.
func startJournalWith(t *testing.T, fj *fakeJournal, stateDir string, warmup time.Duration) (*srcHarness, *journalSource) {
	t.Helper()
	opts, hook, m := acqTestOptions()
	opts.StateDir, opts.WarmupWindow = stateDir, warmup
	s, err := newJournalSourceWith(Config{Source: "journalctl", JournalctlFilter: journalTestFilters,
		Labels: map[string]string{"type": "syslog", "env": "test"}}, opts, fj.bin)
	if err != nil {
		t.Fatal(err)
	}
	s.timing.minBackoff, s.timing.maxBackoff = 10*time.Millisecond, 50*time.Millisecond
	s.timing.saveEvery = 20 * time.Millisecond
	return runSource(t, s, hook, m), s
}

// stop ends the source and waits for Run, which then saved its cursor.
func stopJournal(t *testing.T, h *srcHarness) {
	t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("journal source did not stop")
	}
	h.done <- nil // for the harness cleanup
}

func TestJournalFollow(t *testing.T) {
	fj := newFakeJournal(t)
	h, s := startJournal(t, fj, "")
	argv := fj.waitRuns(1)
	want := append([]string{"--follow", "--merge", "--output=json", "--lines=0"}, journalTestFilters...)
	if !slices.Equal(argv, want) {
		t.Errorf("argv = %q, want %q", argv, want)
	}
	t1 := time.Date(2025, 11, 25, 10, 0, 1, 123456000, time.UTC)
	fj.add(1,
		jentry("c1", t1.UnixMicro(), "sshd", "123", "Failed password for root from 1.2.3.4 port 22 ssh2"),
		"-- No entries --",
		`{"__CURSOR":`,
		jentry("c2", t1.UnixMicro(), "sshd", "124", nil),
		jentry("c3", t1.UnixMicro()+1, "sshd", "", []int{'b', 'i', 'n', 0, 0xff}),
		jentry("c4", t1.UnixMicro()+2, "", "7", "no identifier"),
	)
	got := h.collect(3, 5*time.Second)
	wantRaw := []string{
		stamp(t1) + " web1 sshd[123]: Failed password for root from 1.2.3.4 port 22 ssh2",
		stamp(t1) + " web1 sshd: bin\x00\xff",
		stamp(t1) + " web1 no identifier",
	}
	for i, l := range got {
		if l.Raw != wantRaw[i] {
			t.Errorf("line %d = %q, want %q", i, l.Raw, wantRaw[i])
		}
		if l.Src != "journalctl-_SYSTEMD_UNIT=ssh.service.+.SYSLOG_IDENTIFIER=sshd" || l.Module != "journalctl" ||
			l.Labels["type"] != "syslog" || l.Labels["env"] != "test" {
			t.Errorf("line %d: src %q module %q labels %v", i, l.Src, l.Module, l.Labels)
		}
	}
	if !got[0].Time.Equal(t1) {
		t.Errorf("time = %v, want %v", got[0].Time, t1)
	}
	h.expectNone(50 * time.Millisecond)
	if c := s.lastCursor(); c != "c4" {
		t.Errorf("cursor = %q, want c4", c)
	}
	if s.Name() != "journalctl:_SYSTEMD_UNIT=ssh.service + SYSLOG_IDENTIFIER=sshd" {
		t.Errorf("Name = %q", s.Name())
	}
	if v := testutil.ToFloat64(h.metrics.hits["journalctl"].WithLabelValues(got[0].Src, "journalctl", "syslog")); v != 3 {
		t.Errorf("cs_journalctlsource_hits_total = %v, want 3", v)
	}
}

func TestJournalCursorResume(t *testing.T) {
	fj := newFakeJournal(t)
	state := filepath.Join(t.TempDir(), "state") // created on first save
	h, _ := startJournal(t, fj, state)
	fj.waitRuns(1)
	fj.add(1, jentry("s=1;i=1", 1, "sshd", "1", "one"), jentry("s=1;i=2", 2, "sshd", "1", "two"))
	h.collect(2, 5*time.Second)

	// Saved while running, not only at exit.
	path := journalCursorPath(state, journalTestFilters)
	syslogWaitFor(t, "the cursor to be saved", func() bool {
		c, _ := loadJournalCursor(path, journalTestFilters)
		return c == "s=1;i=2"
	})
	fj.add(1, jentry("s=1;i=3", 3, "sshd", "1", "three"))
	h.collect(1, 5*time.Second)
	stopJournal(t, h)
	if c, err := loadJournalCursor(path, journalTestFilters); err != nil || c != "s=1;i=3" {
		t.Fatalf("saved cursor = %q, %v; want s=1;i=3", c, err)
	}
	var f journalCursorFile
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &f); err != nil || !slices.Equal(f.Filters, journalTestFilters) || f.Saved.IsZero() {
		t.Errorf("state file %s: %v %+v", data, err, f)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 1 {
		t.Errorf("state dir holds %d files, want the cursor alone (no temporary files)", len(ents))
	}

	// A new source (an agent restart) resumes after the saved cursor.
	h2, _ := startJournal(t, fj, state)
	argv := fj.waitRuns(2)
	want := append([]string{"--follow", "--merge", "--output=json", "--after-cursor=s=1;i=3", "--lines=all"}, journalTestFilters...)
	if !slices.Equal(argv, want) {
		t.Errorf("argv after restart = %q, want %q", argv, want)
	}
	fj.add(2, jentry("s=1;i=4", 4, "sshd", "1", "four"), jentry("s=1;i=5", time.Now().Add(time.Minute).UnixMicro(), "sshd", "1", "five"))
	got := h2.collect(2, 5*time.Second)
	if l := got[0]; !strings.HasSuffix(l.Raw, "sshd[1]: four") || !l.Backlog {
		t.Errorf("after restart got %q (backlog %v), want four, logged before the start, as backlog", l.Raw, l.Backlog)
	}
	if l := got[1]; l.Backlog {
		t.Errorf("an entry logged after the start is marked as backlog: %q", l.Raw)
	}
}

func TestJournalctlRestarted(t *testing.T) {
	fj := newFakeJournal(t)
	fj.write("die.1", "")
	fj.add(1, jentry("c1", 1, "sshd", "1", "one"), jentry("c2", 2, "sshd", "1", "two"))
	h, _ := startJournal(t, fj, "")
	h.collect(2, 5*time.Second)
	argv := fj.waitRuns(2)
	if !slices.Contains(argv, "--after-cursor=c2") {
		t.Errorf("restarted with %q, want --after-cursor=c2", argv)
	}
	fj.add(2, jentry("c3", 3, "sshd", "1", "three"))
	if l := h.collect(1, 5*time.Second)[0]; !strings.HasSuffix(l.Raw, "three") {
		t.Errorf("after the restart got %q", l.Raw)
	}
	found := false
	for _, e := range h.hook.AllEntries() {
		if e.Message == "journalctl exited: restarting it" && e.Level == log.WarnLevel && e.Data["stderr"] == "journal went away" {
			found = true
		}
	}
	if !found {
		t.Error("no warning with journalctl's stderr about the restart")
	}
}

func TestJournalRejectedCursor(t *testing.T) {
	fj := newFakeJournal(t)
	state := t.TempDir()
	path := journalCursorPath(state, journalTestFilters)
	if err := saveJournalCursor(path, journalTestFilters, "bad", time.Now()); err != nil {
		t.Fatal(err)
	}
	h, _ := startJournal(t, fj, state)
	if argv := fj.waitRuns(2); !slices.Contains(argv, "--lines=0") {
		t.Errorf("second run %q, want --lines=0", argv)
	}
	if argv := fj.invocations()[0]; !slices.Contains(argv, "--after-cursor=bad") {
		t.Errorf("first run %q, want the saved cursor", argv)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("rejected cursor file still there: %v", err)
	}
	fj.add(2, jentry("c1", 1, "sshd", "1", "fresh"))
	h.collect(1, 5*time.Second)
}

func TestJournalReplay(t *testing.T) {
	fj := newFakeJournal(t)
	fj.write("replay.jsonl", strings.Join([]string{
		jentry("c1", 1_700_000_000_000_000, "sshd", "1", "one"),
		jentry("c2", 1_700_000_001_000_000, "sshd", "1", "two"),
	}, "\n")+"\n")
	opts, _, _ := acqTestOptions()
	opts.StateDir = t.TempDir()
	s, err := newJournalReplayWith([]string{"_SYSTEMD_UNIT=ssh.service"}, map[string]string{"type": "syslog"}, opts, fj.bin)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan event.Line, 10)
	if err := s.Run(context.Background(), out); err != nil {
		t.Fatalf("replay Run = %v", err)
	}
	close(out)
	var got []string
	for l := range out {
		got = append(got, l.Raw)
		if l.Time.Unix() < 1_700_000_000 || l.Module != "journalctl" {
			t.Errorf("line %+v", l)
		}
	}
	if len(got) != 2 || !strings.HasSuffix(got[0], "one") || !strings.HasSuffix(got[1], "two") {
		t.Errorf("replay gave %q", got)
	}
	if argv := fj.waitRuns(1); !slices.Equal(argv, []string{"--output=json", "--no-pager", "_SYSTEMD_UNIT=ssh.service"}) {
		t.Errorf("replay argv = %q", argv)
	}
	if ents, _ := os.ReadDir(opts.StateDir); len(ents) != 0 {
		t.Errorf("a replay saved state: %v", ents)
	}

	fj.write("replay.err", "Failed to add match: Invalid argument\n")
	err = s.Run(context.Background(), make(chan event.Line, 10))
	if err == nil || !strings.Contains(err.Error(), "Failed to add match") {
		t.Errorf("failing replay = %v, want journalctl's complaint", err)
	}
}

func TestJournalMissingBinary(t *testing.T) {
	opts, _, _ := acqTestOptions()
	missing := filepath.Join(t.TempDir(), "journalctl")
	live, err := newJournalSourceWith(Config{Source: "journalctl", JournalctlFilter: []string{"A=b"}, Labels: map[string]string{"type": "syslog"}}, opts, missing)
	if err != nil {
		t.Fatal(err)
	}
	replay, err := newJournalReplayWith([]string{"A=b"}, map[string]string{"type": "syslog"}, opts, missing)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*journalSource{live, replay} {
		err := s.Run(context.Background(), make(chan event.Line))
		if err == nil || !strings.Contains(err.Error(), "journalctl") {
			t.Errorf("Run without journalctl = %v, want a clear error", err)
		}
	}
}

func TestJournalFilters(t *testing.T) {
	for _, ok := range [][]string{
		{"_SYSTEMD_UNIT=ssh.service"},
		{"_SYSTEMD_UNIT=ssh.service", "+", "_COMM=sshd"},
		{"MESSAGE=with = and spaces"},
		{"/usr/sbin/sshd"},
		{"--unit=ssh.service"},
		{"-u", "ssh.service", "--priority=warning"},
		{"--dmesg"},
		{"--boot"},
	} {
		if err := checkJournalFilters(ok); err != nil {
			t.Errorf("checkJournalFilters(%q) = %v", ok, err)
		}
	}
	for _, bad := range [][]string{
		nil,
		{"ssh.service"},
		{"_systemd_unit=ssh"},
		{"1FIELD=x"},
		{"--output=cat"},
		{"--follow"},
		{"--after-cursor=x"},
		{"--since=today"},
		{"-n", "10"},
		{"--unit"},
		{"-u"},
	} {
		if err := checkJournalFilters(bad); err == nil {
			t.Errorf("checkJournalFilters(%q) accepted", bad)
		}
	}
	opts, _, _ := acqTestOptions()
	if _, err := newJournalSource(Config{Source: "journalctl", JournalctlFilter: []string{"A=b"}, ListenPort: 514}, opts); err == nil {
		t.Error("journalctl source with listen_port accepted")
	}
}

func TestJournalField(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{`"plain"`, "plain", true},
		{`"caf\u00e9"`, "café", true},
		{`[104,105]`, "hi", true},
		{`[0,255]`, "\x00\xff", true},
		{`null`, "", false},
		{``, "", false},
		{`["first","second"]`, "first", true},
		{`[[104,105],"x"]`, "hi", true},
		{`[]`, "", true},
	} {
		got, ok, err := journalField(json.RawMessage(tc.in))
		if err != nil || got != tc.want || ok != tc.ok {
			t.Errorf("journalField(%s) = %q, %v, %v; want %q, %v", tc.in, got, ok, err, tc.want, tc.ok)
		}
	}
	for _, bad := range []string{`[256]`, `[-1]`, `{}`, `12`, `[1.5]`} {
		if _, _, err := journalField(json.RawMessage(bad)); err == nil {
			t.Errorf("journalField(%s) accepted", bad)
		}
	}
}

// TestJournalReal writes through systemd-cat and reads it back through
// the real journalctl; it needs a running journald.
func TestJournalReal(t *testing.T) {
	if _, err := exec.LookPath("systemd-cat"); err != nil {
		t.Skip("no systemd-cat")
	}
	if _, err := exec.LookPath("journalctl"); err != nil {
		t.Skip("no journalctl")
	}
	if _, err := os.Stat("/run/systemd/journal/socket"); err != nil {
		t.Skip("journald is not running")
	}
	ident := fmt.Sprintf("rampart-test-%d", time.Now().UnixNano())
	filters := []string{"SYSLOG_IDENTIFIER=" + ident}
	opts, hook, m := acqTestOptions()
	s, err := newJournalSourceWith(Config{Source: "journalctl", JournalctlFilter: filters, Labels: map[string]string{"type": "syslog"}}, opts, "journalctl")
	if err != nil {
		t.Fatal(err)
	}
	h := runSource(t, s, hook, m)
	// --lines=0 only shows what is logged after journalctl has opened the
	// journal: log until a line comes back.
	deadline := time.Now().Add(20 * time.Second)
	for {
		cmd := exec.Command("systemd-cat", "-t", ident)
		cmd.Stdin = strings.NewReader("Invalid user rampart from 192.0.2.1 port 22\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("systemd-cat cannot log: %v %s", err, out)
		}
		select {
		case l := <-h.out:
			if !strings.Contains(l.Raw, " "+ident+"[") || !strings.HasSuffix(l.Raw, ": Invalid user rampart from 192.0.2.1 port 22") {
				t.Errorf("journal line %q", l.Raw)
			}
			r, err := newJournalReplayWith(filters, map[string]string{"type": "syslog"}, opts, "journalctl")
			if err != nil {
				t.Fatal(err)
			}
			out := make(chan event.Line, 100)
			if err := r.Run(context.Background(), out); err != nil {
				t.Fatal(err)
			}
			if len(out) == 0 {
				t.Error("replay found nothing")
			}
			return
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing read back from the journal")
		}
	}
}

// A restart first reads again, marked as warm-up, the entries read within
// the window before the saved cursor, up to that cursor (an entry logged
// after the save is never warm-up), then follows after the cursor.
func TestJournalWarmup(t *testing.T) {
	fj := newFakeJournal(t)
	state := filepath.Join(t.TempDir(), "state")
	h, _ := startJournalWith(t, fj, state, time.Hour)
	fj.waitRuns(1)
	now := time.Now().UnixMicro()
	e := []string{jentry("s=1;i=1", now, "sshd", "1", "one"), jentry("s=1;i=2", now, "sshd", "1", "two"),
		jentry("s=1;i=3", now, "sshd", "1", "three"), jentry("s=1;i=4", time.Now().Add(time.Minute).UnixMicro(), "sshd", "1", "four")}
	fj.add(1, e[:3]...)
	h.collect(3, 5*time.Second)
	stopJournal(t, h)

	// What journalctl prints from the warm-up start: the three read, and
	// one logged while stopped.
	fj.write("replay.jsonl", strings.Join(e, "\n")+"\n")
	h2, _ := startJournalWith(t, fj, state, time.Hour)
	argv := fj.waitRun(2)
	if len(argv) < 3 || argv[0] != "--output=json" || !strings.HasPrefix(argv[2], "--since=@") || slices.Contains(argv, "--follow") {
		t.Fatalf("warm-up argv %q: want a read since the first start", argv)
	}
	for i, l := range h2.collect(3, 5*time.Second) {
		if !l.Warmup || l.Backlog || !strings.HasSuffix(l.Raw, []string{"one", "two", "three"}[i]) {
			t.Fatalf("warm-up line %d: %+v", i, l)
		}
	}
	want := append([]string{"--follow", "--merge", "--output=json", "--after-cursor=s=1;i=3", "--lines=all"}, journalTestFilters...)
	if argv := fj.waitRuns(3); !slices.Equal(argv, want) {
		t.Fatalf("follow after the warm-up: %q, want %q", argv, want)
	}
	fj.add(3, e[3])
	if l := h2.collect(1, 5*time.Second)[0]; l.Warmup || !strings.HasSuffix(l.Raw, "four") {
		t.Fatalf("after the warm-up: %+v", l)
	}
	stopJournal(t, h2)
	st, err := loadJournalState(journalCursorPath(state, journalTestFilters), journalTestFilters)
	if err != nil || st.Cursor != "s=1;i=4" || len(st.Warm) == 0 || st.Warm[0].Pos != "" {
		t.Fatalf("saved %+v, %v: want cursor s=1;i=4 and checkpoints from the first start", st, err)
	}
}
