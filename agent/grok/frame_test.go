package grok

import (
	"slices"
	"strings"
	"testing"
)

// TestFrame checks the fixed text found around captures: it is what the
// parser compares a capture's place in a line with.
func TestFrame(t *testing.T) {
	l := rampartLib(t)
	if err := l.Add("BRACKETED", `\[%{IP:inner}\]`); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 40)
	tests := []struct {
		pattern, name string
		want          Frame
	}{
		{`Failed %{WORD:m} for %{DATA:user} from %{IP:ip} port %{INT:port} ssh2`, "ip", Frame{" from ", " port "}},
		{`Failed %{WORD:m} for %{DATA:user} from %{IP:ip} port %{INT:port} ssh2`, "user", Frame{" for ", " from "}},
		{`Failed %{WORD:m} for %{DATA:user} from %{IP:ip} port %{INT:port} ssh2`, "port", Frame{" port ", " ssh2"}},
		// the start of an anchored pattern, an optional group, an
		// alternative end the frame
		{`^%{IP:ip} - %{NOTSPACE:user}`, "ip", Frame{"", " - "}},
		{`^(?:%{WORD:host} )?%{IP:ip} - `, "ip", Frame{"", " - "}},
		{`by(?: user %{WORD:user})? %{IP:ip} port`, "ip", Frame{" ", " port"}},
		{`(?:client|peer)=%{IP:ip}(?:,|$)`, "ip", Frame{"=", ""}},
		{`%{IP:ip}|%{WORD:w}`, "ip", Frame{}},
		// enclosing captures and groups add no text of their own
		{`client: %{BRACKETED:outer}, server`, "inner", Frame{"client: [", "], server"}},
		{`client: %{BRACKETED:outer}, server`, "outer", Frame{"client: ", ", server"}},
		{`a(?:b(?:c%{IP:ip}d)e)f`, "ip", Frame{"abc", "def"}},
		// case-insensitive letters are not fixed text; digits and
		// punctuation are
		{`(?i)from %{IP:ip} port`, "ip", Frame{"", ""}},
		{`(?i)- %{IP:ip} -`, "ip", Frame{"- ", " -"}},
		// only the text nearest the capture is kept
		{long + `%{IP:ip}` + long, "ip", Frame{long[:maxFrame], long[:maxFrame]}},
		// a name captured in two places has a frame only if both agree
		// (here the parser factors "from " out of the alternative)
		{`from %{IP:ip} port|from %{IP:ip} port`, "ip", Frame{"", " port"}},
		{`(?:to %{IP:ip} port|from %{IP:ip} port)`, "ip", Frame{}},
	}
	for _, tc := range tests {
		p, err := l.Compile(tc.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		i := slices.Index(p.Names(), tc.name)
		if i < 0 {
			t.Fatalf("%s: no capture %s in %v", tc.pattern, tc.name, p.Names())
		}
		if got := p.Frame(i); got != tc.want {
			t.Errorf("%s: frame of %s = %q, want %q", tc.pattern, tc.name, got, tc.want)
		}
	}
	if f := l.MustCompile(`from %{IP:ip}`).Frame(7); f != (Frame{}) {
		t.Errorf("frame of a capture out of range = %q", f)
	}
}

// TestMatchSpans checks that ParseMatch reports where each capture lies,
// through the approximated matcher too, and the occurrence Parse keeps.
func TestMatchSpans(t *testing.T) {
	l := rampartLib(t)
	line := "Failed password for x from 198.51.100.200 port 22 ssh2 from 2001:db8::7 port 5555 ssh2"
	p := l.MustCompile(`^Failed %{WORD:m} for %{DATA:user} from %{IP:ip} port %{INT:port} ssh2$`)
	if !p.Approximated() {
		t.Fatal("want a pattern matched through approximations (IP)")
	}
	got := map[string]string{}
	m, ok := p.ParseMatch(line, got)
	if !ok {
		t.Fatal("no match")
	}
	for i, name := range p.Names() {
		a, b := m.Span(i)
		if a < 0 || line[a:b] != got[name] {
			t.Errorf("span of %s = [%d,%d), value %q", name, a, b, got[name])
		}
	}
	if got["ip"] != "2001:db8::7" || got["user"] != "x from 198.51.100.200 port 22 ssh2" {
		t.Errorf("captures %v", got)
	}
	// the last non-empty occurrence, as Parse reports it
	p = l.MustCompile(`%{WORD:x} %{INT:x}?!`)
	m, ok = p.ParseMatch("ab !", map[string]string{})
	if a, b := m.Span(0); !ok || a != 0 || b != 2 {
		t.Errorf("span of x = [%d,%d), want [0,2)", a, b)
	}
	if a, b := m.Span(5); a != -1 || b != -1 {
		t.Errorf("span of a capture out of range = [%d,%d)", a, b)
	}
	if _, ok := p.ParseMatch("no", map[string]string{}); ok {
		t.Error("match on a line without one")
	}
}
