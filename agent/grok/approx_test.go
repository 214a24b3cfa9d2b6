package grok

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/rampart-ips/rampart/internal/loggen"
	"github.com/rampart-ips/rampart/internal/testhub"
	"github.com/rampart-ips/rampart/rules/patterns"
)

// hubGrok is every grok expression of the hub parsers, compiled against
// Rampart's library plus the hub pattern files and pattern_syntax entries
// (first definition wins, as in the agent).
func hubGrok(t testing.TB) (*Library, []*Pattern) {
	t.Helper()
	return hubGrokAt(t, testhub.Dir(t))
}

// hubGrokAt is hubGrok for the hub in hubDir.
func hubGrokAt(t testing.TB, hubDir string) (*Library, []*Pattern) {
	t.Helper()
	l := rampartLib(t)
	if err := l.LoadDir(filepath.Join(hubDir, "patterns")); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(hubDir, "parsers", "*", "*", "*.yaml"))
	var sources []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc any
			if dec.Decode(&doc) != nil {
				break
			}
			sources = append(sources, grokSources(t, l, doc)...)
		}
	}
	if len(sources) < 20 {
		t.Fatalf("found only %d grok expressions in the hub parsers", len(sources))
	}
	var out []*Pattern
	for _, s := range sources {
		p, err := l.Compile(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		out = append(out, p)
	}
	return l, out
}

// grokSources walks a parser document: it registers pattern_syntax entries
// and returns the grok expressions (pattern, or %{name}).
func grokSources(t testing.TB, l *Library, v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if ps, ok := v["pattern_syntax"].(map[string]any); ok {
			keys := make([]string, 0, len(ps))
			for k := range ps {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if err := l.Add(k, ps[k].(string)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if g, ok := v["grok"].(map[string]any); ok {
			if p, ok := g["pattern"].(string); ok && p != "" {
				out = append(out, p)
			} else if n, ok := g["name"].(string); ok && n != "" {
				out = append(out, "%{"+n+"}")
			}
		}
		for k, sub := range v {
			if k != "pattern_syntax" && k != "grok" {
				out = append(out, grokSources(t, l, sub)...)
			}
		}
	case []any:
		for _, sub := range v {
			out = append(out, grokSources(t, l, sub)...)
		}
	}
	return out
}

// tokens that strain the approximations: invalid or edge addresses,
// hostnames with long labels, month look-alikes, binary.
var hostileTokens = []string{
	"999.1.1.1", "01.2.3.4", "1.2.3.4.5", "256.256.256.256", "1.2.3", "1.2.3.04", "255.255.255.255", "0.0.0.0",
	"1234.1.1.1", "1.2.3.4567", "::", "::1", "1::", "::ffff:1.2.3.4", "::ffff:999.1.1.1", "1:2:3:4:5:6:7:8",
	"1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:1.2.3.4", "1::2:3:4:5:6:1.2.3.4",
	"fe80::1%eth0", "fe80::1%", "12345::1", ":::", "1::2::3", "ab:80", "dead:beef", "g::1", "::1.2.3", "FFFF::abcd",
	"1:2", "a:b:c", "12:34:56", "2001:db8::1.2.3.4%z", "[::1]", "a", "a.", "-a.b", "a-.b", "a_b.c", "xn--bcher-kva.ch",
	strings.Repeat("a", 63) + ".com", strings.Repeat("b", 64) + ".com", strings.Repeat("c", 63) + "-" + strings.Repeat("d", 5),
	"host." + strings.Repeat("e", 70), "März", "Mär", "MAR", "Marc", "Septembe", "September", "Sept", "Juni", "Jul",
	"Dezember", "Decz", "Octobers", "ä", "\xff\xfe", "\xe2\x82", "é", "1.2.3.4\x00", "\x00", "x1.2.3.4", "1.2.3.4x",
}

// testLines are the texts the grok equivalence tests check: generated
// sshd and nginx lines, the test logs of the hubs in dirs, hostile tokens
// in context, then mutations of those and random bytes (seeded).
func testLines(t *testing.T, seed uint64, mutations, randoms int, dirs ...string) []string {
	t.Helper()
	var ssh, ngx bytes.Buffer
	if _, err := loggen.SSHDCount(&ssh, 400, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := loggen.NginxCount(&ngx, 400, 7); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(ssh.String()+ngx.String()), "\n")
	for _, dir := range dirs {
		logs, _ := filepath.Glob(filepath.Join(dir, ".tests", "*", "*.log"))
		if len(logs) == 0 {
			t.Fatalf("no test logs under %s", dir)
		}
		for _, f := range logs {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, strings.Split(string(data), "\n")...)
		}
	}
	lines = append(lines, hostileLines()...)
	slices.Sort(lines)
	lines = slices.Compact(lines)
	r := rand.New(rand.NewPCG(seed, seed+1))
	base := len(lines)
	for range mutations {
		lines = append(lines, mutate(r, lines[r.IntN(base)]))
	}
	for range randoms {
		b := make([]byte, r.IntN(120))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		lines = append(lines, string(b))
	}
	return lines
}

func hostileLines() []string {
	var out []string
	for _, tok := range hostileTokens {
		out = append(out,
			tok+` - - [12/Feb/2026:14:10:21 +0000] "GET / HTTP/1.1" 200 12 "-" "curl"`,
			tok+` 1.2.3.4 - - [12/Feb/2026:14:10:21 +0000] "GET /a HTTP/1.1" 404 0 "-" "-"`,
			`1.2.3.4 - - [12/`+tok+`/2026:14:10:21 +0000] "GET / HTTP/1.1" 200 12 "-" "curl"`,
			"Failed password for root from "+tok+" port 22 ssh2",
			"Failed password for invalid user "+tok+" from 1.2.3.4 port 22 ssh2",
			"Invalid user admin from "+tok+" port 4242",
			"Connection closed by authenticating user root "+tok+" port 22 [preauth]",
			"Feb 12 14:10:21 "+tok+" sshd[42]: Accepted password for bob from 10.0.0.1 port 1 ssh2",
			tok+" 12 14:10:21 host sshd[42]: x",
			"refused connect from "+tok+" ("+tok+")",
			`<13>1 2026-02-12T14:10:21+00:00 `+tok+` nginx 1 - - hello`,
			"2021/12/01 13:53:33 [error] 1#1: *5 open() failed, client: "+tok+`, server: x, request: "GET /a HTTP/1.1", host: "`+tok+`"`,
			tok, " "+tok+" ",
		)
	}
	return out
}

// mutate damages a line around the characters the approximations care
// about.
func mutate(r *rand.Rand, s string) string {
	const alpha = "0123456789abcdefABCDEF:.%- _zä\xff"
	b := []byte(s)
	for range 1 + r.IntN(3) {
		if len(b) == 0 {
			break
		}
		i := r.IntN(len(b))
		c := alpha[r.IntN(len(alpha))]
		switch r.IntN(3) {
		case 0:
			b[i] = c
		case 1:
			b = append(b[:i], b[i+1:]...)
		default:
			b = append(b[:i], append([]byte{c}, b[i:]...)...)
		}
	}
	return string(b)
}

// strictParse is Parse without approximations.
func strictParse(p *Pattern, s string) map[string]string {
	loc := p.matchers().strict.find(s)
	if loc == nil {
		return nil
	}
	m := map[string]string{}
	p.fill(s, loc, p.matchers().strict.groups, m)
	return m
}

// equivalence counts, per pattern, inputs answered by the fast path.
type equivalence struct {
	t        *testing.T
	verified map[*Pattern]int
	fallback map[*Pattern]int
	failures int
}

func (e *equivalence) check(p *Pattern, s string) {
	want := strictParse(p, s)
	got := p.Parse(s)
	if !equalMaps(got, want) || p.Match(s) != (want != nil) {
		e.failures++
		if e.failures <= 20 {
			e.t.Errorf("%q on %q:\n fast   %v\n strict %v", p.source, s, got, want)
		}
	}
	if p.matchers().fast != nil {
		if loc, ok := p.matchers().fast.find(s); loc != nil && ok {
			e.verified[p]++
		} else if loc != nil {
			e.fallback[p]++
		}
	}
}

func subjects(s string) []string {
	out := []string{s}
	if _, msg, ok := strings.Cut(s, ": "); ok {
		out = append(out, msg)
	}
	if _, q, ok := strings.Cut(s, `"`); ok {
		if q, _, ok = strings.Cut(q, `"`); ok {
			out = append(out, q)
			if _, path, ok := strings.Cut(q, " "); ok {
				out = append(out, path)
			}
		}
	}
	return out
}

// TestApproxEquivalence: every hub grok expression gives the same answer
// (match or not, every capture) with and without approximations, on
// generated, hub test, hostile and mutated lines.
func TestApproxEquivalence(t *testing.T) {
	l, pats := hubGrok(t)
	if len(l.Approximations()) != 4 {
		t.Fatalf("approximations in use: %v", l.Approximations())
	}
	lines := testLines(t, 1, 600, 50, testhub.Dir(t))

	e := &equivalence{t: t, verified: map[*Pattern]int{}, fallback: map[*Pattern]int{}}
	fast := 0
	for _, p := range pats {
		if p.matchers().fast != nil {
			fast++
		}
	}
	if fast < len(pats)/2 {
		t.Errorf("only %d of %d hub expressions use approximations", fast, len(pats))
	}
	for _, s := range lines {
		for _, sub := range subjects(s) {
			for _, p := range pats {
				e.check(p, sub)
			}
		}
	}
	// the fast path must actually serve the common case (testLines
	// generates 400 sshd and 400 nginx lines)
	ngxPat := pats[0]
	for _, p := range pats {
		if strings.HasPrefix(p.source, "(%{IPORHOST:target_fqdn}(:%{INT:port})? )?%{IPORHOST:remote_addr} - (%{NGCUSTOMUSER") {
			ngxPat = p
		}
	}
	if ngxPat.matchers().fast == nil || e.verified[ngxPat] < 800/3 || e.fallback[ngxPat] > e.verified[ngxPat]/5 {
		t.Errorf("nginx expression: fast %v, verified %d, fell back %d", ngxPat.matchers().fast != nil, e.verified[ngxPat], e.fallback[ngxPat])
	}
	t.Logf("%d lines, %d expressions (%d approximated), nginx verified %d fell back %d",
		len(lines), len(pats), fast, e.verified[ngxPat], e.fallback[ngxPat])
}

// TestApproxShapes checks, pattern by pattern, equivalence on tokens in
// assorted contexts, and the cases that must stay strict.
func TestApproxShapes(t *testing.T) {
	l := rampartLib(t)
	e := &equivalence{t: t, verified: map[*Pattern]int{}, fallback: map[*Pattern]int{}}
	names := []string{"IPV4", "IPV6", "HOSTNAME", "MONTH", "IP", "IPORHOST"}
	shapes := []string{`%{N:x}`, `^%{N:x}$`, `%{N:x}:%{INT:p}`, `(%{N:a} )?%{N:b} `, `%{N:x}\.?%{WORD:w}`,
		`%{N:x}(?:[.:]%{N:y})?`, `\[%{N:x}\]`, `%{N:x}%{GREEDYDATA:rest}`, `%{DATA:pre}%{N:x}%{DATA:post}$`}
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range names {
		for _, sh := range shapes {
			p := l.MustCompile(strings.ReplaceAll(sh, "%{N:", "%{"+n+":"))
			for _, tok := range hostileTokens {
				for _, s := range []string{tok, tok + " " + tok, "x " + tok + ":80 y", "[" + tok + "]", tok + ".", "_" + tok + "_", tok + "\n"} {
					e.check(p, s)
				}
				for range 3 {
					e.check(p, mutate(r, tok+" "+hostileTokens[r.IntN(len(hostileTokens))]))
				}
			}
		}
	}
	// a repeated occurrence only shows its last submatch: stays strict
	for _, src := range []string{`(?:%{IPV4} )+end`, `(?:%{IPV4:ip},){2}`} {
		p := l.MustCompile(src)
		if p.matchers().fast != nil {
			for _, c := range p.matchers().fast.checks {
				t.Errorf("%s: internal group %d is repeated but approximated", src, c.group)
			}
		}
		e.check(p, "1.2.3.4 999.1.1.1 end")
		e.check(p, "1.2.3.4,999.1.1.1,")
	}
	// flags change what the definition accepts: keep those occurrences strict
	for _, src := range []string{`(?i)%{MONTH:m} %{IPV4:ip}`, `(?i:%{HOSTNAME:h})`, `(?U)%{IPV6:ip}`} {
		p := l.MustCompile(src)
		if p.matchers().fast != nil {
			for _, c := range p.matchers().fast.checks {
				if c.ap.name != "IPV4" { // digits read the same under (?i)
					t.Errorf("%s: %s approximated under flags", src, c.ap.name)
				}
			}
		}
		for _, s := range []string{"JAN 1.2.3.4", "jan 999.1.1.1", "kelvin.example", "fe80::1%eth0 x", "MäRZ 1.2.3.4"} {
			e.check(p, s)
		}
	}
}

// TestApproxSuperset: each approximation accepts, in context, every token
// its definition accepts, and picks the same token when followed by
// various continuations (the preference rule).
func TestApproxSuperset(t *testing.T) {
	l := rampartLib(t)
	pieces := map[string][]string{
		"IPV4":     {"1", "25", "255", "256", "0", "01", "999", ".", "..", "1.2.3.4", "9"},
		"IPV6":     {"1", "ff", "ffff", "fffff", "0", ":", "::", ".", "1.2.3.4", "%eth0", "%", "a", "g", "255"},
		"HOSTNAME": {"a", "b1", "-", ".", " ", "ab-cd", strings.Repeat("a", 62), "a", "_", "ä", "9"},
		"MONTH":    {"Jan", "uary", "uar", "Mär", "z", "März", "Mai", "x", "ä", "S", "ept", "ember", "JAN", "ab", " ", "Dez", "Oct"},
	}
	contexts := []string{"", " ", "a", "1", ".", ":", "-", "ä", "\xff", "%", "_"}
	conts := []string{`$`, ``, `[^0-9A-Za-z]`, ` `, `\.`, `:`, `[0-9]`, `[a-z]`, `%`, `(?s:.)$`}
	r := rand.New(rand.NewPCG(5, 6))
	for name, ps := range pieces {
		ap := l.approx[name]
		if ap == nil {
			t.Fatalf("no approximation for %s", name)
		}
		approxAP := &approx{def: ap.re}
		approxAP.compileVerifiers()
		ap.once.Do(ap.compileVerifiers)
		var strictRe, fastRe [2][]*regexp.Regexp // [has prefix][continuation]
		for i, pre := range []string{"^", "^(?s:.)"} {
			for _, c := range conts {
				strictRe[i] = append(strictRe[i], regexp.MustCompile(pre+"("+ap.def+")"+c))
				fastRe[i] = append(fastRe[i], regexp.MustCompile(pre+"("+ap.re+")"+c))
			}
		}
		accepted := 0
		for range 10000 {
			var b strings.Builder
			for range 1 + r.IntN(6) {
				b.WriteString(ps[r.IntN(len(ps))])
			}
			tok := b.String()
			pre, post := contexts[r.IntN(len(contexts))], contexts[r.IntN(len(contexts))]
			s := pre + tok + post
			a, z := len(pre), len(pre)+len(tok)
			if ap.accepts(s, a, z) {
				accepted++
				if !approxAP.accepts(s, a, z) {
					t.Errorf("%s: approximation rejects %q in %q", name, tok, s)
				}
			}
			hasPre := 0
			if pre != "" {
				hasPre = 1
			}
			for k := range conts {
				want := strictRe[hasPre][k].FindStringSubmatchIndex(s)
				got := fastRe[hasPre][k].FindStringSubmatchIndex(s)
				if want != nil && got == nil {
					t.Errorf("%s: approximation + %s misses %q", name, conts[k], s)
				}
				if got != nil && ap.accepts(s, got[2], got[3]) && (want == nil || want[2] != got[2] || want[3] != got[3]) {
					t.Errorf("%s + %s on %q: approximation picks %q (verified), definition %v", name, conts[k], s, s[got[2]:got[3]], want)
				}
			}
		}
		if accepted < 200 {
			t.Errorf("%s: only %d generated tokens accepted by the definition", name, accepted)
		}
	}
}

func TestApproxOnlyForShippedDefinitions(t *testing.T) {
	// a library whose IPV4 comes from elsewhere does not use the IPV4
	// approximation, and MONTH referencing nothing changed keeps its own
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "mine"), []byte("IPV4 [0-9.]+\n"), 0o644)
	l := NewLibrary()
	if err := l.LoadDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := l.LoadFS(patterns.FS, "."); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(l.Approximations(), " ")
	if got != "HOSTNAME MONTH" {
		t.Errorf("approximations = %q, want HOSTNAME MONTH (IPV4 and IPV6 depend on a foreign IPV4)", got)
	}
	p := l.MustCompile(`%{IPV4:ip}`)
	if p.Approximated() {
		t.Error("foreign IPV4 must not be approximated")
	}
	if m := p.Parse("x 1.2.3.4.5.6 y"); m["ip"] != "1.2.3.4.5.6" {
		t.Errorf("got %v", m)
	}

	if err := NewLibrary().LoadFile("../../rules/patterns/" + ApproxFile); err == nil {
		t.Error("LoadFile of the approximations file must fail")
	}

	// AddApprox checks its inputs
	l2 := NewLibrary()
	l2.Add("A", `a{1,20}`)
	l2.Add("B", `(b)+`)
	if err := l2.AddApprox("NOPE", `x`); err == nil {
		t.Error("unknown name accepted")
	}
	if err := l2.AddApprox("B", `b+`); err == nil {
		t.Error("definition with a capture accepted")
	}
	if err := l2.AddApprox("A", `(?P<x>a+)`); err == nil {
		t.Error("approximation with a capture accepted")
	}
	if err := l2.AddApprox("A", `%{B}`); err == nil {
		t.Error("approximation with a reference accepted")
	}
	if err := l2.AddApprox("A", `[a-z]+`); err != nil {
		t.Fatal(err)
	}
	p = l2.MustCompile(`%{A:x}!`)
	if !p.Approximated() {
		t.Fatal("AddApprox not used")
	}
	long := strings.Repeat("a", 25) + "!"
	for s, want := range map[string]string{"aa!": "aa", "ba!": "a", "bb!": "", "zaa!": "aa", long: long[5:25]} {
		m := p.Parse(s)
		if want == "" && m != nil || want != "" && m["x"] != want {
			t.Errorf("%q: got %v, want %q", s, m, want)
		}
	}
}

func TestCompileErrorLocation(t *testing.T) {
	l := NewLibrary()
	l.Add("OK", `[0-9]+`)
	l.Add("BADCLASS", `x%{OK}[a-z`)
	l.Add("WRAP", `%{OK} %{BADCLASS}`)
	l.Add("LOOK", `%{OK}(?=x)`)
	for src, want := range map[string]string{
		`%{WRAP}`:     `pattern "%{WRAP}": in %{BADCLASS} at offset 6: missing closing ] in "[a-z"`,
		`a%{LOOK}`:    `pattern "a%{LOOK}": in %{LOOK} at offset 5: lookaround "(?=x)" is not supported by RE2`,
		`ab(cd`:       `pattern "ab(cd": at offset 0: missing closing ): ` + "`ab(cd`",
		`x%{OK}**`:    `pattern "x%{OK}**": at offset 6: invalid nested repetition operator: ` + "`**`",
		`%{OK} %{NO}`: `pattern "%{OK} %{NO}": at offset 6: unknown pattern %{NO}`,
	} {
		_, err := l.Compile(src)
		if err == nil || err.Error() != want {
			t.Errorf("Compile(%q):\n got  %v\n want %s", src, err, want)
		}
		if strings.Contains(err.Error(), "grok: grok") {
			t.Errorf("doubled prefix: %v", err)
		}
	}
}

// The check must see the token's neighbours: these definitions assert a
// word boundary at an edge that their approximation does not.
func TestApproxContext(t *testing.T) {
	l := NewLibrary()
	l.Add("TAIL", `[a-z]{1,30}\b`)
	l.Add("HEAD", `\b[a-z]{1,30}`)
	for _, n := range []string{"TAIL", "HEAD"} {
		if err := l.AddApprox(n, `[a-z]+`); err != nil {
			t.Fatal(err)
		}
	}
	e := &equivalence{t: t, verified: map[*Pattern]int{}, fallback: map[*Pattern]int{}}
	for _, src := range []string{`%{TAIL:x}[0-9]`, `[0-9]%{HEAD:x}`, `%{TAIL:x}`, `%{HEAD:x}$`} {
		p := l.MustCompile(src)
		if !p.Approximated() {
			t.Fatalf("%s not approximated", src)
		}
		for _, s := range []string{"abc1", "1abc", "abc 1", "1 abc", "ab_c", "_abc", "é1abc", "abc\xff"} {
			e.check(p, s)
		}
	}
}
