package acquisition

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// fastSupervise wraps src with retries every few milliseconds; warnFirst
// failures are warned one by one, the rest at debug level.
func fastSupervise(src Source, opts Options, warnFirst int) *supervised {
	s := supervise(src, "syslog", opts)
	s.timing = superviseTiming{minRetry: 5 * time.Millisecond, maxRetry: 20 * time.Millisecond, healthy: time.Minute,
		warnFirst: warnFirst, warnEvery: time.Hour}
	return s
}

func upAndRetries(m *Metrics, name string) (float64, float64) {
	return testutil.ToFloat64(m.up.WithLabelValues(name, "syslog")), testutil.ToFloat64(m.retries.WithLabelValues(name, "syslog"))
}

func countLogs(hook *logtest.Hook, level log.Level, msg string) int {
	n := 0
	for _, e := range hook.AllEntries() {
		if e.Level == level && strings.HasPrefix(e.Message, msg) {
			n++
		}
	}
	return n
}

// A syslog port held by someone else: retried, warned about a few times
// then quietly, counted; once free, the server binds and reads.
func TestSupervisedSyslogPortTaken(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := busy.Addr().(*net.TCPAddr).Port
	opts, hook, m := acqTestOptions()
	src, err := newSyslogSource(Config{Source: "syslog", Protocol: "tcp", ListenPort: port, Labels: map[string]string{"type": "syslog"}}, opts)
	if err != nil {
		busy.Close()
		t.Fatal(err)
	}
	h := runSource(t, fastSupervise(src, opts, 2), hook, m)
	syslogWaitFor(t, "several failed attempts", func() bool { _, r := upAndRetries(m, src.Name()); return r >= 5 })
	if up, _ := upAndRetries(m, src.Name()); up != 0 {
		t.Errorf("source_up = %v while the port is taken", up)
	}
	if n := countLogs(hook, log.WarnLevel, "log source failed"); n != 2 {
		t.Errorf("%d warnings, want the first 2 failures only", n)
	}
	if countLogs(hook, log.DebugLevel, "log source failed") == 0 {
		t.Error("the later failures are not logged at debug level")
	}
	busy.Close()
	syslogWaitFor(t, "the source up", func() bool { up, _ := upAndRetries(m, src.Name()); return up == 1 })
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	syslogWrite(t, c, "<13>Feb 12 14:10:00 host app: once the port was free\n")
	if l := h.collect(1, 5*time.Second)[0]; !strings.HasSuffix(l.Raw, "once the port was free") {
		t.Errorf("read %q", l.Raw)
	}
	if countLogs(hook, log.InfoLevel, "log source reads again") != 1 {
		t.Error("the recovery is not logged")
	}
}

// journalctl missing at start, then installed, then dying: each is
// reported in the metrics, and the source reads in between.
func TestSupervisedJournalctl(t *testing.T) {
	fj := newFakeJournal(t)
	bin := filepath.Join(t.TempDir(), "journalctl")
	opts, hook, m := acqTestOptions()
	s, err := newJournalSourceWith(Config{Source: "journalctl", JournalctlFilter: journalTestFilters,
		Labels: map[string]string{"type": "syslog"}}, opts, bin)
	if err != nil {
		t.Fatal(err)
	}
	s.timing.minBackoff, s.timing.maxBackoff = 10*time.Millisecond, 50*time.Millisecond
	h := runSource(t, fastSupervise(s, opts, 5), hook, m)
	syslogWaitFor(t, "retries while journalctl is missing", func() bool { _, r := upAndRetries(m, s.Name()); return r >= 3 })
	if up, _ := upAndRetries(m, s.Name()); up != 0 {
		t.Errorf("source_up = %v without journalctl", up)
	}
	// a retry is counted just before its warning is logged
	syslogWaitFor(t, "a warning per retry", func() bool { return countLogs(hook, log.WarnLevel, "log source failed") >= 3 })

	_, missing := upAndRetries(m, s.Name())
	// The first journalctl prints an entry and exits, as when journald
	// goes away; the second follows.
	fj.write("die.1", "")
	fj.add(1, jentry("c1", 1, "sshd", "1", "one"))
	if err := os.Symlink(fj.bin, bin); err != nil {
		t.Fatal(err)
	}
	h.collect(1, 5*time.Second)
	fj.waitRuns(2)
	syslogWaitFor(t, "the source up", func() bool { up, _ := upAndRetries(m, s.Name()); return up == 1 })
	if _, r := upAndRetries(m, s.Name()); r < missing+1 {
		t.Errorf("retries %v, then %v: journalctl's exit not counted", missing, r)
	}
	fj.add(2, jentry("c2", 2, "sshd", "1", "two"))
	if l := h.collect(1, 5*time.Second)[0]; !strings.HasSuffix(l.Raw, "two") {
		t.Errorf("read %q from the second journalctl", l.Raw)
	}
}

func TestCheckListeners(t *testing.T) {
	for _, tc := range []struct {
		a, b  string // listen_addr, protocol
		clash bool
	}{
		{"127.0.0.1 udp", "127.0.0.1 udp", true},
		{"127.0.0.1 udp", "127.0.0.1 tcp", false},
		{"127.0.0.1 both", "127.0.0.1 tcp", true},
		{"0.0.0.0 udp", "192.0.2.1 udp", true},
		{":: udp", "127.0.0.1 udp", true},
		{"0.0.0.0 udp", "::1 udp", false},
		{"127.0.0.1 udp", "127.0.0.2 udp", false},
		{"- -", "127.0.0.1 udp", true}, // the defaults
	} {
		src := func(spec string) string {
			addr, proto, _ := strings.Cut(spec, " ")
			s := "[[source]]\nsource = \"syslog\"\nlisten_port = 514\nlabels = { type = \"syslog\" }\n"
			if addr != "-" {
				s += fmt.Sprintf("listen_addr = %q\nprotocol = %q\n", addr, proto)
			}
			return s
		}
		dir := t.TempDir()
		writeConf(t, dir, "a.toml", src(tc.a))
		writeConf(t, dir, "b.toml", src(tc.b))
		_, err := LoadDir(dir)
		switch {
		case tc.clash && (err == nil || !strings.Contains(err.Error(), "b.toml:1") || !strings.Contains(err.Error(), "a.toml:1")):
			t.Errorf("%s and %s: %v, want an error naming both", tc.a, tc.b, err)
		case !tc.clash && err != nil:
			t.Errorf("%s and %s: %v", tc.a, tc.b, err)
		}
	}
	// Different ports never clash.
	dir := t.TempDir()
	writeConf(t, dir, "a.toml", "[[source]]\nsource = \"syslog\"\nlisten_port = 514\nlabels = { type = \"syslog\" }\n"+
		"[[source]]\nsource = \"syslog\"\nlisten_port = 1514\nlabels = { type = \"syslog\" }\n")
	if _, err := LoadDir(dir); err != nil {
		t.Error(err)
	}
}
