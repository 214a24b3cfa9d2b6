package acquisition

import (
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/grok"
	"github.com/rampart-ips/rampart/rules/patterns"
)

func TestSyslogParse(t *testing.T) {
	now := time.Date(2025, time.November, 25, 12, 0, 0, 0, time.Local)
	at := func(mo time.Month, d, h, m, s int) time.Time { return time.Date(2025, mo, d, h, m, s, 0, time.Local) }
	for _, tc := range []struct {
		name string
		in   string
		want syslogMsg
	}{
		{"3164 full", "<34>Nov 25 10:00:01 web1 sshd[123]: Failed password for root",
			syslogMsg{Time: at(11, 25, 10, 0, 1), Host: "web1", App: "sshd", ProcID: "123", Message: "Failed password for root"}},
		{"3164 padded day", "<13>Nov  5 10:00:01 web1 kernel: oops",
			syslogMsg{Time: at(11, 5, 10, 0, 1), Host: "web1", App: "kernel", Message: "oops"}},
		{"3164 unpadded day, fraction", "<13>Nov 5 10:00:01.250 web1 cron[9]: x",
			syslogMsg{Time: at(11, 5, 10, 0, 1).Add(250 * time.Millisecond), Host: "web1", App: "cron", ProcID: "9", Message: "x"}},
		{"3164 no host", "<13>Nov 25 10:00:01 sshd[123]: hello there",
			syslogMsg{Time: at(11, 25, 10, 0, 1), App: "sshd", ProcID: "123", Message: "hello there"}},
		{"3164 no PRI", "Nov 25 10:00:01 web1 postfix/smtpd[77]: connect from x",
			syslogMsg{Time: at(11, 25, 10, 0, 1), Host: "web1", App: "postfix/smtpd", ProcID: "77", Message: "connect from x"}},
		{"3164 no PRI no host", "Nov 25 10:00:01 su: session opened",
			syslogMsg{Time: at(11, 25, 10, 0, 1), App: "su", Message: "session opened"}},
		{"3164 no tag", "<13>Nov 25 10:00:01 web1 just words here",
			syslogMsg{Time: at(11, 25, 10, 0, 1), Host: "web1", Message: "just words here"}},
		{"3164 no timestamp", "<13>sshd[5]: hi",
			syslogMsg{App: "sshd", ProcID: "5", Message: "hi"}},
		{"3164 December line read in January is last year's", "<13>Dec 31 23:59:59 h a: b",
			syslogMsg{Time: time.Date(2024, 12, 31, 23, 59, 59, 0, time.Local), Host: "h", App: "a", Message: "b"}},
		{"3164 RFC 3339 stamp (rsyslog forwarding)", "<86>2025-11-25T10:00:01.5+01:00 web1 sshd[1]: m",
			syslogMsg{Time: time.Date(2025, 11, 25, 9, 0, 1, 5e8, time.UTC), Host: "web1", App: "sshd", ProcID: "1", Message: "m"}},
		{"3164 trailing newline", "<13>Nov 25 10:00:01 h a: b\r\n",
			syslogMsg{Time: at(11, 25, 10, 0, 1), Host: "h", App: "a", Message: "b"}},
		{"5424 full", `<165>1 2025-11-25T10:00:01.003Z mymachine.example.com evntslog 8710 ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event`,
			syslogMsg{Time: time.Date(2025, 11, 25, 10, 0, 1, 3e6, time.UTC), Host: "mymachine.example.com", App: "evntslog", ProcID: "8710", Message: "An application event"}},
		{"5424 nil values", `<34>1 - - - - - - msg only`,
			syslogMsg{Message: "msg only"}},
		{"5424 SD with escapes and several elements", `<34>1 2025-11-25T10:00:01+02:00 h app - - [a x="q\"]t" y="s p"][b@1 z="\\"] text`,
			syslogMsg{Time: time.Date(2025, 11, 25, 8, 0, 1, 0, time.UTC), Host: "h", App: "app", Message: "text"}},
		{"5424 BOM", "<34>1 2025-11-25T10:00:01Z h app 1 - - \xef\xbb\xbfcaf\xc3\xa9",
			syslogMsg{Time: time.Date(2025, 11, 25, 10, 0, 1, 0, time.UTC), Host: "h", App: "app", ProcID: "1", Message: "café"}},
		{"5424 SD and no MSG", `<34>1 2025-11-25T10:00:01Z h app 1 ID [a b="c"]`,
			syslogMsg{Time: time.Date(2025, 11, 25, 10, 0, 1, 0, time.UTC), Host: "h", App: "app", ProcID: "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSyslog([]byte(tc.in), now)
			if err != nil {
				t.Fatalf("parseSyslog(%q): %v", tc.in, err)
			}
			if !got.Time.Equal(tc.want.Time) {
				t.Errorf("time = %v, want %v", got.Time, tc.want.Time)
			}
			got.Time, tc.want.Time = time.Time{}, time.Time{}
			if got != tc.want {
				t.Errorf("parseSyslog(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestSyslogParseMalformed(t *testing.T) {
	for _, in := range []string{
		"",
		"\r\n",
		"<13>",
		"<999>Nov 25 10:00:01 h a: b",
		"<1a>Nov 25 10:00:01 h a: b",
		"<013>Nov 25 10:00:01 h a: b",
		"<>x",
		"<13",
		"just some text without a header",
		"\x00\x01\x02\xff\xfe",
		"<34>1 2025-13-45T10:00:01Z h a - - - m", // bad TIMESTAMP
		"<34>1 2025-11-25T10:00:01Z h a",         // truncated header
		`<34>1 2025-11-25T10:00:01Z h a - - [x y="]`, // unterminated SD
		`<34>1 - h a - - x m`,                        // SD neither - nor [
		`<34>1 - h a - - -m`,                         // no space after SD
	} {
		if m, err := parseSyslog([]byte(in), time.Now()); err == nil {
			t.Errorf("parseSyslog(%q) = %+v, want an error", in, m)
		}
	}
}

// The rebuilt lines must go through the hub's crowdsecurity/syslog-logs
// parser (^%{SYSLOGLINE}) and give the fields the s01 parsers filter on.
func TestClassicSyslogLineGroks(t *testing.T) {
	lib := grok.NewLibrary()
	if err := lib.LoadFS(patterns.FS, "."); err != nil {
		t.Fatal(err)
	}
	sys := lib.MustCompile(`^%{SYSLOGLINE}`)
	ts := time.Date(2025, time.November, 5, 10, 0, 1, 0, time.Local)
	for _, tc := range []struct {
		host, prog, pid, msg string
		want                 string
	}{
		{"web1", "sshd", "123", "Invalid user a from 1.2.3.4 port 2", "Nov  5 10:00:01 web1 sshd[123]: Invalid user a from 1.2.3.4 port 2"},
		{"10.0.0.7", "kernel", "", "oops", "Nov  5 10:00:01 10.0.0.7 kernel: oops"},
		{"2001:db8::1", "sshd-session", "9", "m", "Nov  5 10:00:01 2001:db8::1 sshd-session[9]: m"},
		{"web1", "", "", "no tag at all", "Nov  5 10:00:01 web1 no tag at all"},
	} {
		line := classicSyslogLine(ts, tc.host, tc.prog, tc.pid, tc.msg)
		if line != tc.want {
			t.Errorf("classicSyslogLine = %q, want %q", line, tc.want)
		}
		got := sys.Parse(line)
		if got == nil {
			t.Errorf("%q does not match SYSLOGLINE", line)
			continue
		}
		if got["logsource"] != tc.host || got["program"] != tc.prog || got["pid"] != tc.pid || got["message"] != tc.msg {
			t.Errorf("%q groks to %v", line, got)
		}
	}
}

func TestSyslogToken(t *testing.T) {
	for in, want := range map[string]string{
		"sshd": "sshd", "my app": "my_app", "a[1]": "a_1_", "x\ty\n": "x_y_", "bad\xffutf": "bad?utf",
	} {
		if got := syslogToken(in); got != want {
			t.Errorf("syslogToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzSyslogParse(f *testing.F) {
	for _, s := range []string{
		"<34>Nov 25 10:00:01 web1 sshd[123]: Failed password",
		`<165>1 2025-11-25T10:00:01.003Z h app 1 ID [a b="c\]"] m`,
		"Nov  5 10:00:01 su: x",
	} {
		f.Add([]byte(s))
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseSyslog(b, now)
		if err != nil {
			return
		}
		line := classicSyslogLine(syslogOrNow(m.Time, now), syslogToken(syslogOrDash(m.Host)), syslogToken(m.App), syslogToken(m.ProcID), m.Message)
		if !strings.Contains(line, m.Message) {
			t.Fatalf("line %q lost the message %q", line, m.Message)
		}
	})
}

func syslogOrNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}

func syslogOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
