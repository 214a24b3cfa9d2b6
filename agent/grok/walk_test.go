package grok

import (
	"regexp"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/rampart-ips/rampart/internal/testhub"
)

// walkCase is an expression and inputs that exercise one rule of
// leftmost-first matching.
var walkCases = []struct {
	re     string
	inputs []string
}{
	{`(a|ab)(c|bcd)(d*)`, []string{"abcd", "xabcdx", "abc", "ab"}},
	{`(a+?)(a*)`, []string{"aaa", "baaa", ""}},
	{`(a*)(a+)`, []string{"aaa", "a"}},
	{`(a*?)b`, []string{"aaab", "b", "ac"}},
	{`(?:(a)|b)+`, []string{"ab", "ba", "aab", "bb"}},
	{`(?:(a)|(b))*?c`, []string{"abc", "c", "ac", "bac"}},
	{`(\w+)\s(\w+)?`, []string{"hello world", "hello ", "x"}},
	{`\bfoo\b`, []string{"foo", "afoo", "foo_", "é foo é", "\xfffoo\xff"}},
	{`\Bfoo`, []string{"afoo", "foo", "_foo"}},
	{`(?m)^b$`, []string{"a\nb\nc", "b", "ab"}},
	{`^b$`, []string{"a\nb", "b", "b\n"}},
	{`(?s)a.b`, []string{"a\nb", "axb"}},
	{`a.b`, []string{"a\nb", "axb", "aéb", "a\xffb", "a\xe2\x82b"}},
	{`[^"]*"`, []string{`abc"`, `é"`, "\xff\"", `"`, "abc"}},
	{`(x[^"]*)(é|")`, []string{`xaé"`, `xé`, "x\xff\xfe\""}},
	{`(\x{FFFD})`, []string{"\xff", "\uFFFD", "a"}},
	{`[\x{FFFD}b]+`, []string{"\xffb\xfe", "bb"}},
	{`(?i)abc`, []string{"ABC", "aBc", "xAbC"}},
	{`(?i)k`, []string{"K", "\u212a"}},
	{`(?i)[k]`, []string{"K", "\u212a"}},
	{`(?i)1-2`, []string{"1-2", "x1-2"}},
	{`(?i)σ+`, []string{"Σς", "σ", "xΣ"}},
	{`(.*?)€`, []string{"a\xe2\xe2\x82\xac", "\n€", "ab€c€"}},
	{`([^"]*)(.)`, []string{`ab"c`, "é\xff\"", `"`, "aé", "abcdefgh\"", "abcdefghé\"", "abcdefghijklmnoé"}},
	{`([^a]{2,})(é?)`, []string{"ééé", "bbé", "b"}},
	{`(?i)(s+)tr(a)ße`, []string{"ſSSTRAẞE", "STRASSE", "xsstrAße"}},
	{`[Jj]an(?:uary)?\b`, []string{"Jan", "jANUARY", "January x", "jan2"}},
	{`(?i)é\x{FFFD}x`, []string{"É\xffX", "é\uFFFDx", "éx"}},
	{`a{2,4}?(a*)`, []string{"aaaaa", "a"}},
	{`(ab){2,3}(b)?`, []string{"abababb", "ababb", "ab"}},
	{`(a|b|)+c`, []string{"abc", "c"}},
	{`(a*)*`, []string{"aa", "b"}},
	{`(a*)+b`, []string{"aab", "b"}},
	{`(?:a?)+?b`, []string{"aab"}},
	{`()`, []string{"", "a"}},
	{`$`, []string{"", "ab"}},
	{`\b`, []string{"", " a", "a"}},
	{`x*`, []string{"", "ax", "xx"}},
	{`[^\x00-\x{10FFFF}]`, []string{"a", ""}},
	{`(é+)(e?)`, []string{"ééée", "aé"}},
	{`(.*?) HTTP/(\d+)"`, []string{`GET / HTTP/x HTTP/1" HTTP/2"`, `GET HTTP/`, "a\n HTTP/1\""}},
	{`(.*) (\d+)`, []string{"a 1 b 2 c", "é é 3", "a\xff 4"}},
	{`((?:[a-z]+\.)*[a-z]+)\.com`, []string{"a.b.c.com", "com", "x.com.com"}},
	{`(\d+)\.(\d+)|(\d+)`, []string{"12.34", "12.", ".5"}},
	{`(?U)(a+)(a*)`, []string{"aaa"}},
	{`(?:(?:ab)*)(c)`, []string{"ababc", "abac"}},
	{`((a)|(b))*`, []string{"ab", "ba", "abab"}},
	{`(?:\.|\b)x`, []string{".x", "ax", " x", "x"}},
}

// walkExprs are the expressions of every grok pattern of the hub and the
// corpus that matchers walk: the approximated one and the verifiers of
// its approximations, or the strict one when there is no approximated
// one.
func walkExprs(t *testing.T) []*regexp.Regexp {
	t.Helper()
	seen := map[string]bool{}
	var out []*regexp.Regexp
	add := func(re *regexp.Regexp) {
		if re != nil && !seen[re.String()] {
			seen[re.String()] = true
			out = append(out, re)
		}
	}
	for _, dir := range []string{testhub.Dir(t), testhub.Corpus(t)} {
		_, pats := hubGrokAt(t, dir)
		for _, p := range pats {
			p.matchers()
			if p.fast == nil {
				add(p.strict.re)
			} else {
				add(p.fast.re)
				for _, c := range p.fast.checks {
					for _, v := range c.ap.verify {
						add(v)
					}
				}
			}
		}
	}
	return out
}

// checkWalk compares the walker's answer on s with regexp's; it returns
// whether the walker answered.
func checkWalk(t *testing.T, re *regexp.Regexp, w *walker, s string) bool {
	t.Helper()
	got, ok := w.find(s)
	if !ok {
		return false
	}
	want := re.FindStringSubmatchIndex(s)
	if !slices.Equal(got, want) {
		t.Errorf("%q on %q:\n walker %v\n regexp %v", re, s, got, want)
	}
	if w.nsub == 2 {
		if m, ok := w.matches(s); ok && m != (want != nil) {
			t.Errorf("%q on %q: walker matches %v, regexp %v", re, s, m, want != nil)
		}
	}
	return true
}

// TestWalkCases: the walker finds what regexp finds on expressions made
// to trip a backtracking matcher, and refuses those it does not mirror.
func TestWalkCases(t *testing.T) {
	refused := map[string]bool{`(a*)*`: true, `(a*)+b`: true, `(?:a?)+?b`: true, `(a|b|)+c`: true}
	for _, c := range walkCases {
		re := regexp.MustCompile(c.re)
		w, err := newWalker(c.re)
		if refused[c.re] != (err != nil) {
			t.Errorf("%q: walker error %v", c.re, err)
		}
		if err != nil {
			continue
		}
		for _, s := range c.inputs {
			if !checkWalk(t, re, w, s) {
				t.Errorf("%q on %q: walker gave up", c.re, s)
			}
		}
	}
}

// TestWalkHub: on every expression the hub's and the corpus's grok
// patterns run, the walker finds what regexp finds, line by line, on the
// hub's test logs and worse; and it answers, rather than giving up, on
// nearly every line. With -short, on a sample of the lines.
func TestWalkHub(t *testing.T) {
	exprs := walkExprs(t)
	lines := testLines(t, 3, 1000, 100, testhub.Dir(t), testhub.Corpus(t))
	if testing.Short() {
		var sample []string
		for k := 0; k < len(lines); k += 8 {
			sample = append(sample, lines[k])
		}
		lines = sample
	}
	var walked, answered, gaveUp atomic.Int64
	const parts = 4
	t.Run("parts", func(t *testing.T) {
		for part := range parts {
			t.Run(strconv.Itoa(part), func(t *testing.T) {
				t.Parallel()
				for k := part; k < len(exprs); k += parts {
					re := exprs[k]
					w, err := newWalker(re.String())
					if err != nil {
						continue
					}
					walked.Add(1)
					for _, s := range lines {
						for _, sub := range subjects(s) {
							if checkWalk(t, re, w, sub) {
								answered.Add(1)
							} else {
								gaveUp.Add(1)
							}
						}
					}
					if t.Failed() {
						return
					}
				}
			})
		}
	})
	t.Logf("%d expressions (%d walked), %d lines: %d answers, %d give-ups",
		len(exprs), walked.Load(), len(lines), answered.Load(), gaveUp.Load())
	if walked.Load() < int64(len(exprs))*9/10 {
		t.Errorf("the walker takes only %d of %d expressions", walked.Load(), len(exprs))
	}
	if gaveUp.Load() > answered.Load()/1000 {
		t.Errorf("the walker gave up %d times for %d answers", gaveUp.Load(), answered.Load())
	}
}

func FuzzWalk(f *testing.F) {
	for _, c := range walkCases {
		for _, s := range c.inputs {
			f.Add(c.re, s)
		}
	}
	f.Add(`(?P<_0>[0-9]+\.[0-9]+)(?:\.|\b)(.*?) (\w+)`, "1.2.3 a b")
	f.Fuzz(func(t *testing.T, expr, s string) {
		if len(expr) > 256 || len(s) > 1024 {
			return
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		w, err := newWalker(expr)
		if err != nil {
			return
		}
		checkWalk(t, re, w, s)
	})
}

// TestWalkServesHubParsers: the expressions of the sshd and nginx
// parsers, which most hosts run, are walked rather than left to regexp.
func TestWalkServesHubParsers(t *testing.T) {
	l := rampartLib(t)
	pats := []*Pattern{l.MustCompile(`^%{SYSLOGLINE}`)}
	for _, rel := range []string{"parsers/s01-parse/crowdsecurity/sshd-logs.yaml", "parsers/s01-parse/crowdsecurity/nginx-logs.yaml"} {
		pats = append(pats, loadHubParser(t, rel).compile(t, l)...)
	}
	for _, p := range pats {
		m := &p.matchers().strict
		if p.fast != nil {
			m = &p.fast.matcher
		}
		if m.walk == nil {
			t.Errorf("%s: not walked", p.source)
		}
	}
}
