package acquisition

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// syslogMsg is one syslog message, whichever RFC it came in.
type syslogMsg struct {
	Time    time.Time // zero when the message carried none
	Host    string    // "" when absent
	App     string    // the tag (RFC 3164) or APP-NAME (RFC 5424); "" when absent
	ProcID  string    // "" when absent
	Message string
}

// Errors of parseSyslog; the server counts them as malformed messages.
var (
	errSyslogEmpty  = errors.New("empty message")
	errSyslogNoHead = errors.New("neither <PRI> nor timestamp: not a syslog message")
)

// parseSyslog reads an RFC 5424 message (<PRI>1 TIMESTAMP HOST APP PROCID
// MSGID SD MSG) or an RFC 3164 one (<PRI>Mmm dd hh:mm:ss host tag[pid]:
// msg, where PRI, host and tag may be missing, and where the timestamp may
// be RFC 3339 as rsyslog forwards it). A year-less RFC 3164 timestamp is
// local time in the year that puts it closest before now. Both the RFCs
// tolerate a lot; what fails here is what no sender produces on purpose.
func parseSyslog(data []byte, now time.Time) (syslogMsg, error) {
	data = bytes.TrimRight(data, "\r\n\x00")
	if len(data) == 0 {
		return syslogMsg{}, errSyslogEmpty
	}
	var (
		m   syslogMsg
		err error
	)
	if data[0] == '<' {
		rest, perr := syslogSkipPRI(data)
		if perr != nil {
			return syslogMsg{}, perr
		}
		if v, ok := syslogVersion(rest); ok {
			m, err = parseSyslog5424(rest[v:])
		} else {
			m, err = parseSyslog3164(rest, true, now)
		}
	} else {
		m, err = parseSyslog3164(data, false, now)
	}
	if err == nil && m.Message == "" && m.App == "" {
		err = errSyslogEmpty
	}
	return m, err
}

// syslogSkipPRI checks "<N>" with N in 0..191 (facility*8+severity) and returns
// what follows it.
func syslogSkipPRI(b []byte) ([]byte, error) {
	end := bytes.IndexByte(b, '>')
	if end < 2 || end > 4 {
		return nil, fmt.Errorf("bad PRI %q", syslogPrefix(b, 6))
	}
	n, err := strconv.Atoi(string(b[1:end]))
	if err != nil || n < 0 || n > 191 || (end > 2 && b[1] == '0') {
		return nil, fmt.Errorf("bad PRI %q", b[:end+1])
	}
	return b[end+1:], nil
}

// syslogVersion recognises the RFC 5424 VERSION field ("1 ") after the
// PRI and returns its length with the space. An RFC 3164 message never
// has a digit followed by a space there: its timestamps start with a
// month name or a four-digit year followed by '-'.
func syslogVersion(b []byte) (int, bool) {
	i := 0
	for i < len(b) && i < 3 && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(b) || b[i] != ' ' || b[0] == '0' {
		return 0, false
	}
	return i + 1, true
}

// parseSyslog5424 reads what follows "<PRI>VERSION ".
func parseSyslog5424(b []byte) (syslogMsg, error) {
	var m syslogMsg
	fields := [5]string{}
	names := [5]string{"TIMESTAMP", "HOSTNAME", "APP-NAME", "PROCID", "MSGID"}
	for i := range fields {
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 {
			// RFC 5424 needs every header field, then the SD: a message
			// that stops early is truncated or not 5424.
			return m, fmt.Errorf("RFC 5424 message: %s missing", names[i])
		}
		fields[i] = string(b[:sp])
		b = b[sp+1:]
	}
	if ts := fields[0]; ts != "-" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return m, fmt.Errorf("RFC 5424 message: bad TIMESTAMP %q", ts)
		}
		m.Time = t
	}
	m.Host = syslogNil(fields[1])
	m.App = syslogNil(fields[2])
	m.ProcID = syslogNil(fields[3])

	// STRUCTURED-DATA: "-" or one or more [id param="value"...] elements,
	// where values may hold escaped \" \] \\ and unescaped spaces.
	switch {
	case len(b) > 0 && b[0] == '-':
		b = b[1:]
	case len(b) > 0 && b[0] == '[':
		n, err := syslogSDLen(b)
		if err != nil {
			return m, err
		}
		b = b[n:]
	default:
		return m, errors.New("RFC 5424 message: STRUCTURED-DATA missing")
	}
	if len(b) > 0 {
		if b[0] != ' ' {
			return m, errors.New("RFC 5424 message: no space after STRUCTURED-DATA")
		}
		b = bytes.TrimPrefix(b[1:], []byte("\xef\xbb\xbf")) // MSG may open with a UTF-8 BOM
	}
	m.Message = string(b)
	return m, nil
}

// syslogSDLen returns the length of the SD-ELEMENTs opening b.
func syslogSDLen(b []byte) (int, error) {
	i := 0
	for i < len(b) && b[i] == '[' {
		quoted := false
		j := i + 1
		for ; j < len(b); j++ {
			c := b[j]
			if quoted && c == '\\' {
				j++ // the escaped character, whatever it is
				continue
			}
			if c == '"' {
				quoted = !quoted
			} else if c == ']' && !quoted {
				break
			}
		}
		if j >= len(b) {
			return 0, errors.New("RFC 5424 message: unterminated STRUCTURED-DATA element")
		}
		i = j + 1
	}
	return i, nil
}

func syslogNil(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// parseSyslog3164 reads what follows the PRI (if any) of a BSD syslog message.
func parseSyslog3164(b []byte, hasPRI bool, now time.Time) (syslogMsg, error) {
	var m syslogMsg
	t, n := syslogStamp3164(b, now)
	if n > 0 {
		m.Time = t
		b = b[n:]
	} else if !hasPRI {
		return m, errSyslogNoHead
	}
	s := string(b)
	// HOSTNAME then TAG, or TAG alone (local senders and many devices
	// leave the host out), or neither. RFC 3164 has no marker telling a
	// host from a tag; the tag is the token ending in ':'. Without a
	// timestamp there is no header to take a host from.
	first, afterFirst, _ := strings.Cut(s, " ")
	if app, pid, ok := syslogSplitTag(first); ok {
		m.App, m.ProcID, m.Message = app, pid, afterFirst
		return m, nil
	}
	if n > 0 && first != "" && afterFirst != "" {
		m.Host = first
		second, afterSecond, _ := strings.Cut(afterFirst, " ")
		if app, pid, ok := syslogSplitTag(second); ok {
			m.App, m.ProcID, m.Message = app, pid, afterSecond
			return m, nil
		}
		m.Message = afterFirst
		return m, nil
	}
	m.Message = s
	return m, nil
}

// syslogSplitTag recognises "prog:" and "prog[pid]:".
func syslogSplitTag(tok string) (app, pid string, ok bool) {
	if len(tok) < 2 || len(tok) > 64 || tok[len(tok)-1] != ':' {
		return "", "", false
	}
	tok = tok[:len(tok)-1]
	if open := strings.IndexByte(tok, '['); open >= 0 {
		if open == 0 || tok[len(tok)-1] != ']' {
			return "", "", false
		}
		app, pid = tok[:open], tok[open+1:len(tok)-1]
	} else {
		app = tok
	}
	if strings.ContainsAny(app, "[]:") || strings.ContainsAny(pid, "[]: ") {
		return "", "", false
	}
	return app, pid, true
}

// syslogStamp3164 reads "Mmm dd hh:mm:ss" (day space-padded or not,
// optional fraction) or an RFC 3339 timestamp, each followed by a space
// or the end, and returns the time and the length consumed (0: none).
func syslogStamp3164(b []byte, now time.Time) (time.Time, int) {
	if len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		end := bytes.IndexByte(b, ' ')
		if end < 0 {
			end = len(b)
		}
		t, err := time.Parse(time.RFC3339Nano, string(b[:end]))
		if err != nil {
			return time.Time{}, 0
		}
		return t, syslogSkipSpace(b, end)
	}
	if len(b) < 14 {
		return time.Time{}, 0
	}
	month, ok := syslogMonth(string(b[:3]))
	if !ok || b[3] != ' ' {
		return time.Time{}, 0
	}
	i := 4
	if b[i] == ' ' {
		i++
	}
	day, n := syslogDigits(b[i:], 2)
	if n == 0 || day < 1 || day > 31 || i+n >= len(b) || b[i+n] != ' ' {
		return time.Time{}, 0
	}
	i += n + 1
	if len(b) < i+8 || b[i+2] != ':' || b[i+5] != ':' {
		return time.Time{}, 0
	}
	hh, n1 := syslogDigits(b[i:], 2)
	mm, n2 := syslogDigits(b[i+3:], 2)
	ss, n3 := syslogDigits(b[i+6:], 2)
	if n1 != 2 || n2 != 2 || n3 != 2 || hh > 23 || mm > 59 || ss > 60 {
		return time.Time{}, 0
	}
	i += 8
	nsec := 0
	if i < len(b) && b[i] == '.' {
		frac, n := syslogDigits(b[i+1:], 9)
		if n == 0 {
			return time.Time{}, 0
		}
		for k := n; k < 9; k++ {
			frac *= 10
		}
		nsec = frac
		i += 1 + n
	}
	if i < len(b) && b[i] != ' ' {
		return time.Time{}, 0
	}
	local := now.Local()
	t := time.Date(local.Year(), month, day, hh, mm, ss, nsec, time.Local)
	// No year on the wire: a December line read in January is last year's.
	// A day of slack allows for clocks a little ahead of ours.
	if t.After(local.Add(24 * time.Hour)) {
		t = t.AddDate(-1, 0, 0)
	}
	return t, syslogSkipSpace(b, i)
}

func syslogSkipSpace(b []byte, i int) int {
	if i < len(b) && b[i] == ' ' {
		return i + 1
	}
	return i
}

func syslogMonth(s string) (time.Month, bool) {
	for m := time.January; m <= time.December; m++ {
		if m.String()[:3] == s {
			return m, true
		}
	}
	return 0, false
}

// syslogDigits parses up to max leading decimal digits of b.
func syslogDigits(b []byte, max int) (v, n int) {
	for n < len(b) && n < max && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int(b[n]-'0')
		n++
	}
	return v, n
}

func syslogPrefix(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// classicSyslogLine builds "Mmm _d hh:mm:ss host prog[pid]: message", the
// line rsyslog writes to /var/log/syslog and journalctl prints in its
// default (short) output. It is what the hub's crowdsecurity/syslog-logs
// parser groks with SYSLOGLINE for labels type = "syslog", so journald
// and network syslog lines go through the same parsers as log files.
// The timestamp is local time, as in those files, so the date parser
// reads it the same way. Without prog the tag is left out (SYSLOGLINE
// allows that); without pid, the brackets.
func classicSyslogLine(t time.Time, host, prog, pid, msg string) string {
	var sb strings.Builder
	sb.Grow(len(time.Stamp) + len(host) + len(prog) + len(pid) + len(msg) + 6)
	sb.WriteString(t.Local().Format(time.Stamp))
	sb.WriteByte(' ')
	sb.WriteString(host)
	if prog != "" {
		sb.WriteByte(' ')
		sb.WriteString(prog)
		if pid != "" {
			sb.WriteByte('[')
			sb.WriteString(pid)
			sb.WriteByte(']')
		}
		sb.WriteByte(':')
	}
	sb.WriteByte(' ')
	sb.WriteString(msg)
	return sb.String()
}

// syslogToken makes s usable as one space-free field of a classic line
// (host, program, pid): senders may put anything in them, and a space
// there would shift every field the parsers read after it.
func syslogToken(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '[' || r == ']' }) {
		s = strings.Map(func(r rune) rune {
			if r <= ' ' || r == 0x7f || r == '[' || r == ']' {
				return '_'
			}
			return r
		}, s)
	}
	return s
}
