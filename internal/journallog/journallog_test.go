package journallog

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	log "github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		env  string
		want bool
	}{
		{"8:1234", true},
		{"8:1235", false},
		{"9:1234", false},
		{"8", false},
		{"", false},
		{"x:1234", false},
		{"8:1234:5", false},
		{" 8:1234", false},
	} {
		if got := matches(c.env, 8, 1234); got != c.want {
			t.Errorf("matches(%q, 8, 1234) = %v, want %v", c.env, got, c.want)
		}
	}
}

func TestFormatterPrefixes(t *testing.T) {
	var buf bytes.Buffer
	l := log.New()
	l.SetOutput(&buf)
	l.SetLevel(log.TraceLevel)
	l.SetFormatter(&Formatter{Inner: &log.TextFormatter{DisableTimestamp: true}})
	l.WithField("ip", "192.0.2.1").Error("e")
	l.Warn("w")
	l.Info("i")
	l.Debug("d")
	l.Trace("t")
	l.Warn("two\nlines") // one entry: the newline is quoted
	want := "<3>level=error msg=e ip=192.0.2.1\n<4>level=warning msg=w\n<6>level=info msg=i\n<7>level=debug msg=d\n<7>level=trace msg=t\n" +
		"<4>level=warning msg=\"two\\nlines\"\n"
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

// The helper process: logs through Setup on its real stderr, as the
// binaries do, and says whether Setup saw the journal.
func TestMain(m *testing.M) {
	if os.Getenv("JOURNALLOG_HELPER") == "1" {
		log.SetFormatter(&log.TextFormatter{FullTimestamp: true})
		on := Setup(log.StandardLogger(), os.Stderr)
		log.WithField("src", "192.0.2.9").Warn("ban")
		log.Info("started")
		log.Error("failed")
		fmt.Fprintf(os.Stdout, "journal=%v\n", on)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelper starts the helper with stderr on the stream socket (as
// systemd does with StandardError=journal) or on a pipe, and JOURNAL_STREAM
// naming the socket either way; it returns the helper's stdout and what
// arrived at the "journal" end.
func runHelper(t *testing.T, stderrOnSocket bool) (stdout, journal string) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	journalEnd, serviceEnd := os.NewFile(uintptr(fds[0]), "journal"), os.NewFile(uintptr(fds[1]), "service")
	defer journalEnd.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fds[1], &st); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "JOURNALLOG_HELPER=1", fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
	var out bytes.Buffer
	cmd.Stdout = &out
	var pipeR *os.File
	if stderrOnSocket {
		cmd.Stderr = serviceEnd
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		pipeR = r
		cmd.Stderr = w
		defer w.Close()
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serviceEnd.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	src := journalEnd
	if pipeR != nil {
		src = pipeR
		cmd.Stderr.(*os.File).Close()
	}
	var lines []string
	sc := bufio.NewScanner(src)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return out.String(), strings.Join(lines, "\n")
}

func TestJournalStreamDetected(t *testing.T) {
	out, got := runHelper(t, true)
	if out != "journal=true\n" {
		t.Fatalf("helper on the journal stream: %q", out)
	}
	want := "<4>level=warning msg=ban src=192.0.2.9\n<6>level=info msg=started\n<3>level=error msg=failed"
	if got != want {
		t.Fatalf("the journal got\n%s\nwant\n%s", got, want)
	}
}

// stderr redirected away from the journal (2>file in a unit): no prefix,
// the formatter untouched.
func TestOtherStreamUntouched(t *testing.T) {
	out, got := runHelper(t, false)
	if out != "journal=false\n" {
		t.Fatalf("helper with stderr on a pipe: %q", out)
	}
	if strings.Contains(got, "<4>") || !strings.Contains(got, "time=") || !strings.Contains(got, "msg=ban") {
		t.Fatalf("stderr on a pipe was changed:\n%s", got)
	}
}
