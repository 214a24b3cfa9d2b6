package grok

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// grokkyBase is the base set upstream CrowdSec compiles in (grokky's): hub
// rules use these names beside their own pattern files, so Rampart's
// library must define every one (../shared/reference/hub-format.md, 9).
const grokkyBase = `ANSIC BASE10NUM BASE16FLOAT BASE16NUM CISCOMAC COMBINEDAPACHELOG COMMONAPACHELOG COMMONMAC DATA
DATE DATESTAMP DATESTAMP_EVENTLOG DATESTAMP_OTHER DATESTAMP_RFC2822 DATESTAMP_RFC822 DATE_EU
DATE_US DATE_X DAY EMAILADDRESS EMAILLOCALPART GREEDYDATA HOSTNAME HOSTPORT HOUR HTTPD20_ERRORLOG
HTTPD24_ERRORLOG HTTPDATE HTTPDERROR_DATE HTTPDUSER HTTPD_ERRORLOG INT IP IPORHOST IPV4 IPV6
ISO8601_SECOND ISO8601_TIMEZONE KITCHEN LOGLEVEL MAC MINUTE MONTH MONTHDAY MONTHNUM MONTHNUM2
NONNEGINT NOTSPACE NUMBER NUMTZ PATH POSINT PROG QS QUOTEDSTRING RFC1123 RFC1123Z RFC3339
RFC3339NANO RFC822Z RFC850 RUBYDATE SECOND SPACE SYSLOGBASE SYSLOGFACILITY SYSLOGHOST SYSLOGPROG
SYSLOGTIMESTAMP TIME TIMESTAMP_ISO8601 TTY TZ UNIXDATE UNIXPATH URI URIHOST URIPARAM URIPATH
URIPATHPARAM URIPROTO USER USERNAME UUID WINDOWSMAC WINPATH WORD YEAR`

// addedNames are the base set names Rampart's library lacked until issue 14.
const addedNames = `ANSIC DATESTAMP_EVENTLOG DATESTAMP_RFC2822 DATE_X HTTPD20_ERRORLOG HTTPD24_ERRORLOG HTTPDERROR_DATE
HTTPD_ERRORLOG KITCHEN NUMTZ RFC1123 RFC1123Z RFC3339 RFC3339NANO RFC822Z RFC850 RUBYDATE UNIXDATE DATE`

func TestGrokkyBaseSetDefined(t *testing.T) {
	l := rampartLib(t)
	names := strings.Fields(grokkyBase)
	if len(names) != 88 {
		t.Fatalf("%d names, want 88", len(names))
	}
	for _, n := range names {
		if _, err := l.Compile("%{" + n + "}"); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

// baseSetSamples are lines in the formats the dates and Apache error log
// names describe, each with the text the name must take whole.
var baseSetSamples = []struct{ name, line string }{
	{"DATE_X", "2024/01/31"},
	{"DATE", "2024/01/31"},
	{"NUMTZ", "-0700"},
	{"DATESTAMP_RFC2822", "Wed, 31 Jan 2024 23:59:59 +01:00"},
	{"DATESTAMP_EVENTLOG", "20240131235959"},
	{"HTTPDERROR_DATE", "Wed Jan 31 23:59:59.123456 2024"},
	{"HTTPDERROR_DATE", "Thu Feb 1 08:00:00 2024"},
	{"ANSIC", "Thu Feb  1 08:00:00 2024"},
	{"ANSIC", "Wed Jan 31 23:59:59 2024"},
	{"UNIXDATE", "Thu Feb  1 08:00:00 UTC 2024"},
	{"RUBYDATE", "Thu Feb 01 08:00:00 -0700 2024"},
	{"RFC822Z", "01 Feb 24 08:00 -0700"},
	{"RFC822Z", "01 Feb 24 08:00:00 -0700"},
	{"RFC850", "Thursday, 01-Feb-24 08:00:00 UTC"},
	{"RFC1123", "Thu, 01 Feb 2024 08:00:00 UTC"},
	{"RFC1123Z", "Thu, 01 Feb 2024 08:00:00 -0700"},
	{"RFC3339", "2024-02-01T08:00:00Z"},
	{"RFC3339", "2024-02-01T08:00:00.123+01:00"},
	{"RFC3339NANO", "2024-02-01T08:00:00.123456789-07:00"},
	{"KITCHEN", "3:04PM"},
	{"HTTPD20_ERRORLOG", "[Wed Jan 31 23:59:59 2024] [error] [client 192.0.2.1] File does not exist: /var/www/x"},
	{"HTTPD24_ERRORLOG", "[Wed Jan 31 23:59:59.123456 2024] [core:error] [pid 42:tid 140] [client 2001:db8::1:5050] AH00128: File does not exist: /x"},
	{"HTTPD24_ERRORLOG", "[Wed Jan 31 23:59:59.123456 2024] [proxy:error] [pid 42] (111)Connection refused: AH00957: attempt to connect to 127.0.0.1:8080 failed"},
	{"HTTPD_ERRORLOG", "[Wed Jan 31 23:59:59 2024] [notice] Apache configured -- resuming normal operations"},
	{"HTTPD_ERRORLOG", "[Wed Jan 31 23:59:59.123456 2024] [authz_core:error] [pid 7:tid 9] [client example.org:61234] AH01630: client denied by server configuration: /srv"},
}

func TestBaseSetSamples(t *testing.T) {
	l := rampartLib(t)
	for _, s := range baseSetSamples {
		p := l.MustCompile(`^%{` + s.name + `:whole}$`)
		if got := p.Parse(s.line); got == nil || got["whole"] != s.line {
			t.Errorf("%s on %q = %v", s.name, s.line, got)
		}
	}
	// DATE_X is an alternative of DATE, tried from the leftmost offset: the
	// date is not read from its third digit on ("24/01/31", an EU date)
	if got := l.MustCompile(`%{DATE:d}`).Parse("on 2024/01/31 at"); got["d"] != "2024/01/31" {
		t.Errorf("DATE = %q", got["d"])
	}
	want := map[string]string{
		"timestamp": "Wed Jan 31 23:59:59.123456 2024", "module": "authz_core", "loglevel": "error", "pid": "7", "tid": "9",
		"proxy_errorcode": "", "proxy_errormessage": "", "client": "example.org", "clientport": "61234",
		"errorcode": "AH01630", "message": "client denied by server configuration: /srv",
		"clientip": "", "errormsg": "",
	}
	got := l.MustCompile(`%{HTTPD_ERRORLOG}`).Parse(baseSetSamples[len(baseSetSamples)-1].line)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("HTTPD_ERRORLOG [%s] = %q, want %q", k, got[k], v)
		}
	}
	got = l.MustCompile(`%{HTTPD_ERRORLOG}`).Parse(baseSetSamples[20].line)
	if got["clientip"] != "192.0.2.1" || got["loglevel"] != "error" || got["errormsg"] != "File does not exist: /var/www/x" ||
		got["timestamp"] != "Wed Jan 31 23:59:59 2024" {
		t.Errorf("HTTPD_ERRORLOG 2.0 = %v", got)
	}
}

// TestApproxBaseSet: every name of the base set, alone, anchored and in a
// line, answers the same with and without approximations (the dates use
// MONTH, the Apache error logs IPORHOST), on sample, hostile and mutated
// lines.
func TestApproxBaseSet(t *testing.T) {
	l := rampartLib(t)
	e := &equivalence{t: t, verified: map[*Pattern]int{}, fallback: map[*Pattern]int{}}
	var lines []string
	for _, s := range baseSetSamples {
		lines = append(lines, s.line, "x "+s.line+" y", "["+s.line+"]")
		for _, tok := range hostileTokens {
			// the token in place of the client, the month and the day
			lines = append(lines,
				strings.Replace(s.line, "192.0.2.1", tok, 1),
				strings.Replace(s.line, "example.org", tok, 1),
				strings.Replace(s.line, "Jan", tok, 1),
				strings.Replace(s.line, "Feb", tok, 1))
		}
	}
	lines = append(lines, hostileLines()...)
	slices.Sort(lines)
	lines = slices.Compact(lines)
	r := rand.New(rand.NewPCG(5, 6))
	base := len(lines)
	for range 600 {
		lines = append(lines, mutate(r, lines[r.IntN(base)]))
	}
	var pats []*Pattern
	// the names added for the base set, and DATE that gained DATE_X; the
	// others are covered by TestApproxShapes and TestApproxEquivalence
	for _, n := range strings.Fields(addedNames) {
		for _, sh := range []string{`%{N:x}`, `^%{N:x}$`, `%{N:x} %{GREEDYDATA:rest}`} {
			// without an approximated reference there is no fast path to check
			if p := l.MustCompile(strings.ReplaceAll(sh, "%{N:", "%{"+n+":")); p.matchers().fast != nil {
				pats = append(pats, p)
			}
		}
	}
	t.Logf("%d lines, %d approximated expressions", len(lines), len(pats))
	for _, s := range lines {
		for _, p := range pats {
			e.check(p, s)
		}
	}
	// the Apache error log must be served by the fast path
	var verified int
	for p, n := range e.verified {
		if strings.HasPrefix(p.source, "%{HTTPD_ERRORLOG:") {
			verified += n
			if p.matchers().fast == nil {
				t.Errorf("%s is not approximated", p.source)
			}
		}
	}
	if verified == 0 {
		t.Error("no HTTPD_ERRORLOG match was verified on the fast path")
	}
}
