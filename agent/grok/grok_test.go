package grok

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/internal/testhub"
	"github.com/rampart-ips/rampart/rules/patterns"
)

func rampartLib(t testing.TB) *Library {
	t.Helper()
	l := NewLibrary()
	if err := l.LoadFS(patterns.FS, "."); err != nil {
		t.Fatalf("LoadFS: %v", err)
	}
	return l
}

func TestExpansionAndErrors(t *testing.T) {
	l := NewLibrary()
	for n, p := range map[string]string{
		"NUM": `[0-9]+`, "WORD": `\w+`, "PAIR": `%{WORD:key}=%{NUM:val}`,
		"LOOPA": `a%{LOOPB}`, "LOOPB": `b%{LOOPA}`, "SELF": `x%{SELF}`,
		"BAD": `%{NOPE}`,
	} {
		if err := l.Add(n, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Add("NUM", `ignored`); err != nil {
		t.Fatalf("re-add must return nil, got %v", err)
	}
	if d, _ := l.Definition("NUM"); d != `[0-9]+` {
		t.Fatalf("re-add must keep the first definition, got %q", d)
	}
	if err := l.Add("bad name", "x"); err == nil {
		t.Fatal("expected invalid name error")
	}
	tests := []struct {
		pattern, input string
		want           map[string]string
		err            string
	}{
		{pattern: `%{PAIR}`, input: "xx a=1 yy", want: map[string]string{"key": "a", "val": "1"}},
		{pattern: `^%{NUM:n:int}$`, input: "42", want: map[string]string{"n": "42"}},
		{pattern: `%{NUM}-%{NUM:second}`, input: "1-2", want: map[string]string{"second": "2"}},
		{pattern: `%{NUM:n}`, input: "abc", want: nil},
		{pattern: `(?P<raw>z+)(?<alt>y)`, input: "azzy", want: map[string]string{"raw": "zz", "alt": "y"}},
		{pattern: `%{NUM:a}(?:-%{WORD:opt})?;`, input: "7;", want: map[string]string{"a": "7", "opt": ""}},
		{pattern: `%{WORD:x} %{NUM:x}?!`, input: "ab !", want: map[string]string{"x": "ab"}},
		{pattern: `%{WORD:x} %{NUM:x}!`, input: "ab 12!", want: map[string]string{"x": "12"}},
		{pattern: `%{WORD:k.sub}`, input: "q", want: map[string]string{"k.sub": "q"}},
		{pattern: `%{MISSING}`, err: "unknown pattern %{MISSING}"},
		{pattern: `%{BAD}`, err: `pattern "%{BAD}": in %{BAD} at offset 0: unknown pattern %{NOPE}`},
		{pattern: `%{LOOPA}`, err: "cycle detected: LOOPA -> LOOPB -> LOOPA"},
		{pattern: `%{SELF}`, err: "cycle detected: SELF -> SELF"},
		{pattern: `(a`, err: "missing closing )"},
		// PCRE translations
		{pattern: `(?>%{NUM:n})x`, input: "12x", want: map[string]string{"n": "12"}},
		{pattern: `%{NUM:n}\Z`, input: "ab 99", want: map[string]string{"n": "99"}},
		{pattern: `a++%{NUM:n}`, input: "aa3", want: map[string]string{"n": "3"}},
		{pattern: `%{NUM:n}{2}+b`, input: "12b", want: map[string]string{"n": "2"}},
		{pattern: `x(?#comment)%{NUM:n}`, input: "x5", want: map[string]string{"n": "5"}},
		{pattern: `[(?>]%{NUM:n}`, input: ">5", want: map[string]string{"n": "5"}},
		{pattern: `\x{41}+%{NUM:n}`, input: "AA5", want: map[string]string{"n": "5"}},
		{pattern: `%{NUM}}+`, input: "1}}", want: map[string]string{}},
		{pattern: `a(?=b)`, err: "lookaround"},
		{pattern: `a(?!b)`, err: "lookaround"},
		{pattern: `(?<=a)b`, err: "lookaround"},
		{pattern: `(?<!a)b`, err: "lookaround"},
		{pattern: `(a)\1`, err: "backreference"},
		{pattern: `(?|a|b)`, err: "branch reset"},
	}
	for _, tc := range tests {
		p, err := l.Compile(tc.pattern)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Compile(%q) error = %v, want containing %q", tc.pattern, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Compile(%q): %v", tc.pattern, err)
			continue
		}
		got := p.Parse(tc.input)
		if !equalMaps(got, tc.want) {
			t.Errorf("Compile(%q).Parse(%q) = %#v, want %#v", tc.pattern, tc.input, got, tc.want)
		}
		dst := map[string]string{"keep": "me"}
		ok := p.ParseInto(tc.input, dst)
		if ok != (tc.want != nil) || dst["keep"] != "me" {
			t.Errorf("ParseInto(%q) = %v, dst=%v", tc.input, ok, dst)
		}
		for k, v := range tc.want {
			if dst[k] != v {
				t.Errorf("ParseInto(%q)[%q] = %q, want %q", tc.input, k, dst[k], v)
			}
		}
	}
	// cache returns the same compiled pattern
	a, _ := l.Compile(`%{PAIR}`)
	b, _ := l.Compile(`%{PAIR}`)
	if a != b {
		t.Error("Compile must cache")
	}
}

func equalMaps(a, b map[string]string) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestLoadDirAndFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "one"), []byte("# comment\n\n  # indented comment\nFOO   f+o\r\nBAR %{FOO:foo}-%{BAZ}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "two"), []byte("BAZ [0-9]+\nFOO ignored\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "skip.go"), []byte("package x\n"), 0o644)
	l := NewLibrary()
	if err := l.LoadDir(dir); err != nil {
		t.Fatal(err)
	}
	if got := l.MustCompile(`%{BAR}`).Parse("xffo-12"); got["foo"] != "ffo" {
		t.Fatalf("got %v", got)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("NONAME\n"), 0o644)
	if err := NewLibrary().LoadFile(bad); err == nil || !strings.Contains(err.Error(), "bad:1") {
		t.Fatalf("want error with position, got %v", err)
	}
	if err := NewLibrary().LoadDir(filepath.Join(dir, "nope")); err == nil {
		t.Fatal("missing dir must fail")
	}

	// Rampart's library, from disk and embedded, must define and compile
	// every name the hub parsers reference.
	disk := NewLibrary()
	if err := disk.LoadDir("../../rules/patterns"); err != nil {
		t.Fatal(err)
	}
	emb := rampartLib(t)
	required := strings.Fields(`GREEDYDATA DATA IPORHOST IP IPV4 IPV6 HOSTNAME INT NUMBER BASE10NUM
		WORD SPACE USERNAME HTTPDATE MONTHDAY MONTH MONTHNUM MONTHNUM2 YEAR TIME HOUR MINUTE SECOND URIPARAM
		LOGLEVEL NONNEGINT POSINT SYSLOGTIMESTAMP TIMESTAMP_ISO8601 ISO8601_TIMEZONE SYSLOGFACILITY SYSLOGHOST
		SYSLOGPROG PROG NOTDQUOTE NGINXERRTIME DAY2 NGUSER NGUSERNAME SSHD_FAIL SSHD_DISC_PREAUTH
		SSHD_BAD_VERSION SSHD_USER_FAIL SYSLOGBASE2 SYSLOGLINE URIPATH URIPATHPARAM QS QUOTEDSTRING DAY`)
	for _, n := range required {
		if !disk.Has(n) || !emb.Has(n) {
			t.Errorf("pattern %s missing from Rampart's library", n)
		}
	}
	if len(disk.Names()) != len(emb.Names()) {
		t.Errorf("disk has %d names, embedded %d", len(disk.Names()), len(emb.Names()))
	}
	for _, n := range emb.Names() {
		if _, err := emb.Compile("%{" + n + "}"); err != nil {
			t.Errorf("library pattern %s: %v", n, err)
		}
	}
}

func TestLibrarySamples(t *testing.T) {
	l := rampartLib(t)
	tests := []struct {
		pattern, input string
		want           map[string]string
	}{
		{`^%{IPV4:ip}$`, "206.81.24.125", map[string]string{"ip": "206.81.24.125"}},
		{`^%{IPV4:ip}$`, "1.2.3.2", map[string]string{"ip": "1.2.3.2"}},
		{`^%{IPV4:ip}$`, "1.2.3.256", nil},
		{`^%{IPV6:ip}$`, "fdfd:ace:ace:7::17a", map[string]string{"ip": "fdfd:ace:ace:7::17a"}},
		{`^%{IPV6:ip}$`, "2001:db8:0:0:0:0:2:1", map[string]string{"ip": "2001:db8:0:0:0:0:2:1"}},
		{`^%{IPV6:ip}$`, "::1", map[string]string{"ip": "::1"}},
		{`%{IP:ip}`, "from ::ffff:192.168.1.1 x", map[string]string{"ip": "::ffff:192.168.1.1"}},
		{`^%{IPORHOST:h}$`, "www.crowdsec11.net", map[string]string{"h": "www.crowdsec11.net"}},
		{`%{HTTPDATE:d}`, "[08/Jun/2020:08:04:43 +0000]", map[string]string{"d": "08/Jun/2020:08:04:43 +0000"}},
		{`^%{SYSLOGTIMESTAMP:t}`, "Jun  8 10:44:36 x", map[string]string{"t": "Jun  8 10:44:36"}},
		{`^%{TIMESTAMP_ISO8601:t} `, "2023-11-14T00:20:42.738197+01:00 h", map[string]string{"t": "2023-11-14T00:20:42.738197+01:00"}},
		{`%{NGINXERRTIME:t} \[%{LOGLEVEL:l}\]`, "2021/12/01 13:53:33 [error] 1#1", map[string]string{"t": "2021/12/01 13:53:33", "l": "error"}},
		{`^%{NUMBER:n}$`, "-1.5", map[string]string{"n": "-1.5"}},
		{`%{QS:q}`, `say "a \"b\"" now`, map[string]string{"q": `"a \"b\""`}},
		{`^%{URIPATHPARAM:u}$`, "/solr/admin?wt=json&x[]=1", map[string]string{"u": "/solr/admin?wt=json&x[]=1"}},
		{`^%{DAY:d} %{MONTH:m}`, "Tue Feb 3", map[string]string{"d": "Tue", "m": "Feb"}},
		{`%{NGUSER:u} \[`, "- user123 [", nil}, // digits are not part of NGUSERNAME (hub semantics)
		{`%{NGUSER:u} \[`, "- us.er@x [", map[string]string{"u": "us.er@x"}},
		{`%{SYSLOGLINE}`, "Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal from 35.188.49.176 port 53502",
			map[string]string{"timestamp": "Feb 12 14:10:21", "timestamp8601": "", "logsource": "sd-126005", "program": "sshd", "pid": "16378",
				"facility": "", "priority": "", "message": "Invalid user pascal from 35.188.49.176 port 53502"}},
		{`%{SSHD_FAIL}`, "Failed password for root from 1.2.3.4 port 22 ssh2",
			map[string]string{"sshd_auth_type": "password", "sshd_invalid_user": "root", "sshd_client_ip": "1.2.3.4", "sshd_port": "22", "sshd_protocol": "ssh2"}},
		{`%{SSHD_DISC_PREAUTH}`, "Disconnected from 1.2.3.4 port 22 [preauth]",
			map[string]string{"sshd_client_ip": "1.2.3.4", "sshd_port": "22", "sshd_privsep": "preauth"}},
		{`%{SSHD_BAD_VERSION}`, "Bad protocol version identification 'GET / HTTP/1.1' from 10.0.0.2 port 4",
			map[string]string{"sshd_client_ip": "10.0.0.2"}},
		{`%{NGINXERROR}`, "2021/12/01 13:53:33 [warn] 31#32: hello", map[string]string{"time": "2021/12/01 13:53:33", "loglevel": "warn", "pid": "31", "tid": "32", "cid": "", "message": "hello"}},
		{`%{COMBINEDAPACHELOG}`, `1.2.3.4 - bob [04/Jan/2020:07:25:02 +0000] "GET /x HTTP/1.1" 200 12 "-" "curl"`,
			map[string]string{"clientip": "1.2.3.4", "ident": "-", "auth": "bob", "timestamp": "04/Jan/2020:07:25:02 +0000", "verb": "GET",
				"request": "/x", "httpversion": "1.1", "rawrequest": "", "response": "200", "bytes": "12", "referrer": `"-"`, "agent": `"curl"`}},
	}
	for _, tc := range tests {
		p, err := l.Compile(tc.pattern)
		if err != nil {
			t.Errorf("Compile(%q): %v", tc.pattern, err)
			continue
		}
		got := p.Parse(tc.input)
		if tc.want == nil || len(tc.want) != len(got) {
			if !equalMaps(got, tc.want) {
				t.Errorf("%q on %q = %#v, want %#v", tc.pattern, tc.input, got, tc.want)
			}
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%q on %q: [%s] = %q, want %q", tc.pattern, tc.input, k, got[k], v)
			}
		}
	}
}

// ---- hub parsers ----------------------------------------------------------

type hubNode struct {
	pattern string // grok source (pattern: or %{name})
	applyOn string
}

type hubParser struct {
	syntax map[string]string
	order  []string
	nodes  []hubNode // top-level grok nodes only
}

func yamlScalar(v string) string {
	v = strings.TrimSpace(v)
	switch {
	case strings.HasPrefix(v, `"`) && strings.HasSuffix(v, `"`) && len(v) >= 2:
		s, err := strconv.Unquote(v)
		if err != nil {
			return v[1 : len(v)-1]
		}
		return s
	case strings.HasPrefix(v, `'`) && strings.HasSuffix(v, `'`) && len(v) >= 2:
		return strings.ReplaceAll(v[1:len(v)-1], `''`, `'`)
	}
	return v
}

func indentOf(s string) int { return len(s) - len(strings.TrimLeft(s, " -")) }

// loadHubParser is a minimal extraction of the first YAML document of a
// hub parser: pattern_syntax entries (any level) and grok pattern/name/
// apply_on of the shallowest grok nodes.
func loadHubParser(t testing.TB, rel string) hubParser {
	t.Helper()
	f, err := os.Open(filepath.Join(testhub.Dir(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hp := hubParser{syntax: map[string]string{}}
	var grokNodes []struct {
		indent int
		node   hubNode
	}
	syntaxIndent, grokIndent := -1, -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		if trim == "---" {
			break
		}
		if trim == "" || strings.HasPrefix(trim, "#") {
			continue
		}
		ind := indentOf(line)
		key, val, _ := strings.Cut(strings.TrimLeft(trim, "- "), ":")
		if syntaxIndent >= 0 {
			if ind > syntaxIndent {
				name := strings.TrimSpace(key)
				if _, dup := hp.syntax[name]; !dup {
					hp.order = append(hp.order, name)
				}
				hp.syntax[name] = yamlScalar(val)
				continue
			}
			syntaxIndent = -1
		}
		if grokIndent >= 0 && ind <= grokIndent {
			grokIndent = -1
		}
		switch {
		case key == "pattern_syntax":
			syntaxIndent = ind
		case key == "grok":
			grokIndent = ind
			grokNodes = append(grokNodes, struct {
				indent int
				node   hubNode
			}{indent: ind})
		case grokIndent >= 0 && key == "pattern":
			grokNodes[len(grokNodes)-1].node.pattern = yamlScalar(val)
		case grokIndent >= 0 && key == "name":
			grokNodes[len(grokNodes)-1].node.pattern = "%{" + yamlScalar(val) + "}"
		case grokIndent >= 0 && key == "apply_on":
			grokNodes[len(grokNodes)-1].node.applyOn = yamlScalar(val)
		}
	}
	minInd := 1 << 30
	for _, g := range grokNodes {
		minInd = min(minInd, g.indent)
	}
	for _, g := range grokNodes {
		if g.indent == minInd {
			hp.nodes = append(hp.nodes, g.node)
		}
	}
	return hp
}

// compile registers the parser's local patterns (global registry, first
// definition wins, like upstream) and compiles its grok nodes.
func (hp hubParser) compile(t testing.TB, l *Library) []*Pattern {
	t.Helper()
	for _, n := range hp.order {
		if err := l.Add(n, hp.syntax[n]); err != nil {
			t.Fatal(err)
		}
	}
	var out []*Pattern
	for _, n := range hp.nodes {
		p, err := l.Compile(n.pattern)
		if err != nil {
			t.Fatalf("compile %q: %v", n.pattern, err)
		}
		out = append(out, p)
	}
	return out
}

// run applies the first matching grok node to evt (apply_on field).
func (hp hubParser) run(pats []*Pattern, evt map[string]string, raw string) bool {
	for i, p := range pats {
		src := raw
		if on := hp.nodes[i].applyOn; on != "Line.Raw" {
			src = evt[on]
		}
		if p.ParseInto(src, evt) {
			return true
		}
	}
	return false
}

var assertRe = regexp.MustCompile(`^results\["([^"]+)"\]\["([^"]+)"\]\[(\d+)\]\.(?:Evt\.Parsed\["(\w+)"\] == "(.*)"|Success == (true|false))$`)

type expectation struct {
	success *bool
	parsed  map[string]string
}

// loadAsserts returns, for one stage/parser, the expectations per result index.
func loadAsserts(t *testing.T, test, stage, parser string) map[int]*expectation {
	t.Helper()
	f, err := os.Open(filepath.Join(testhub.Dir(t), ".tests", test, "parser.assert"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int]*expectation{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := assertRe.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != stage || m[2] != parser {
			continue
		}
		idx, _ := strconv.Atoi(m[3])
		e := out[idx]
		if e == nil {
			e = &expectation{parsed: map[string]string{}}
			out[idx] = e
		}
		if m[6] != "" {
			b := m[6] == "true"
			e.success = &b
		} else {
			v, err := strconv.Unquote(`"` + m[5] + `"`)
			if err != nil {
				t.Fatalf("bad assert value %q", m[5])
			}
			e.parsed[m[4]] = v
		}
	}
	return out
}

func readLines(t *testing.T, test string) []string {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(testhub.Dir(t), ".tests", test, "*.log"))
	if len(matches) == 0 {
		t.Fatalf("no log for %s", test)
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// fields set by statics rather than grok
var staticFields = map[string]bool{"logsource": true, "impact_completion": true, "static_ressource": true, "file_name": true, "http_path": true}

func checkStage(t *testing.T, test string, idx int, stage, parser string, ok bool, evt map[string]string, exp map[int]*expectation) {
	t.Helper()
	e := exp[idx]
	if e == nil {
		return
	}
	if e.success != nil && *e.success != ok {
		t.Errorf("%s line %d: %s success = %v, want %v (evt %v)", test, idx, parser, ok, *e.success, evt)
	}
	for k, v := range e.parsed {
		if staticFields[k] {
			continue
		}
		if evt[k] != v {
			t.Errorf("%s line %d: %s Parsed[%q] = %q, want %q", test, idx, parser, k, evt[k], v)
		}
	}
}

// TestHubParsers feeds the hub's test logs through the hub parsers' grok
// nodes compiled against Rampart's library and checks parser.assert.
func TestHubParsers(t *testing.T) {
	l := rampartLib(t)
	syslogP := loadHubParser(t, "parsers/s00-raw/crowdsecurity/syslog-logs.yaml")
	sshdP := loadHubParser(t, "parsers/s01-parse/crowdsecurity/sshd-logs.yaml")
	succP := loadHubParser(t, "parsers/s01-parse/crowdsecurity/sshd-success-logs.yaml")
	nginxP := loadHubParser(t, "parsers/s01-parse/crowdsecurity/nginx-logs.yaml")
	httpP := loadHubParser(t, "parsers/s02-enrich/crowdsecurity/http-logs.yaml")
	if len(syslogP.nodes) != 2 || len(sshdP.nodes) != 16 || len(succP.nodes) != 1 || len(nginxP.nodes) != 6 || len(httpP.nodes) != 2 {
		t.Fatalf("extraction: syslog %d sshd %d success %d nginx %d http %d nodes",
			len(syslogP.nodes), len(sshdP.nodes), len(succP.nodes), len(nginxP.nodes), len(httpP.nodes))
	}
	syslogPats := syslogP.compile(t, l)
	sshdPats := sshdP.compile(t, l)
	succPats := succP.compile(t, l)
	nginxPats := nginxP.compile(t, l)
	httpPats := httpP.compile(t, l)

	type stage struct {
		stage, name string
		hp          hubParser
		pats        []*Pattern
		runAll      bool // http-logs: every grok node runs
	}
	s00 := stage{"s00-raw", "crowdsecurity/syslog-logs", syslogP, syslogPats, false}
	sshd := stage{"s01-parse", "crowdsecurity/sshd-logs", sshdP, sshdPats, false}
	succ := stage{"s01-parse", "crowdsecurity/sshd-success-logs", succP, succPats, false}
	ngx := stage{"s01-parse", "crowdsecurity/nginx-logs", nginxP, nginxPats, false}
	hl := stage{"s02-enrich", "crowdsecurity/http-logs", httpP, httpPats, true}
	cases := []struct {
		test   string
		syslog bool
		stages []stage
	}{
		{"syslog-logs", true, nil},
		{"sshd-logs", true, []stage{sshd}},
		{"sshd-success-logs", true, []stage{succ}},
		{"opnsense-sshd", true, []stage{sshd}},
		{"pfsense-rfc5424-nginx", true, []stage{ngx}},
		{"nginx_http-logs", false, []stage{ngx, hl}},
	}
	for _, tc := range cases {
		t.Run(tc.test, func(t *testing.T) {
			lines := readLines(t, tc.test)
			exps := map[string]map[int]*expectation{}
			all := append([]stage{s00}, tc.stages...)
			for _, st := range all {
				exps[st.name] = loadAsserts(t, tc.test, st.stage, st.name)
			}
			checked := 0
			for i, raw := range lines {
				evt := map[string]string{}
				if tc.syslog {
					ok := s00.hp.run(s00.pats, evt, raw)
					checkStage(t, tc.test, i, s00.stage, s00.name, ok, evt, exps[s00.name])
					if !ok {
						continue
					}
				} else {
					evt["message"], evt["program"] = raw, "nginx"
				}
				for _, st := range tc.stages {
					var ok bool
					if st.runAll {
						for k, p := range st.pats {
							if p.ParseInto(evt[st.hp.nodes[k].applyOn], evt) {
								ok = true
							}
						}
					} else {
						ok = st.hp.run(st.pats, evt, raw)
					}
					checkStage(t, tc.test, i, st.stage, st.name, ok, evt, exps[st.name])
				}
				checked++
			}
			total := 0
			for _, e := range exps {
				for _, x := range e {
					total += len(x.parsed)
				}
			}
			if checked == 0 || total == 0 {
				t.Fatalf("nothing checked (%d lines, %d assertions)", checked, total)
			}
			t.Logf("%s: %d lines, %d Parsed assertions", tc.test, checked, total)
		})
	}
}

func FuzzCompileParse(f *testing.F) {
	f.Add(`%{SYSLOGLINE}`, "Feb 12 14:10:21 host sshd[1]: Invalid user a from 1.2.3.4 port 2")
	f.Add(`%{IP:ip}(?:-%{WORD:w})?`, "1.2.3.4-x")
	f.Add(`(?>a++)(?<n>b)\Z`, "aab")
	f.Add(`%{NOPE}`, "")
	f.Add(`[(?<x>]%{INT}{2}+`, "(1")
	l := rampartLib(f)
	f.Fuzz(func(t *testing.T, pattern, input string) {
		if len(pattern) > 512 || len(input) > 4096 {
			return
		}
		p, err := l.Compile(pattern)
		if err != nil {
			return
		}
		m := p.Parse(input)
		if (m != nil) != p.Match(input) {
			t.Fatalf("Parse/Match disagree on %q / %q", pattern, input)
		}
		if m != nil && len(m) != len(p.Names()) {
			t.Fatalf("map has %d keys, want %d", len(m), len(p.Names()))
		}
		for _, v := range m {
			if !strings.Contains(input, v) {
				t.Fatalf("capture %q not a substring of input", v)
			}
		}
	})
}

func BenchmarkSyslogSSHD(b *testing.B) {
	l := rampartLib(b)
	line := "Apr  6 18:51:41 eve sshd[2784424]: Failed password for root from 192.168.1.2 port 51182 ssh2"
	sys := l.MustCompile(`^%{SYSLOGLINE}`)
	fail := l.MustCompile(`%{SSHD_FAIL}`)
	evt := make(map[string]string, 16)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(evt)
		if !sys.ParseInto(line, evt) || !fail.ParseInto(evt["message"], evt) {
			b.Fatal("no match")
		}
	}
	if evt["sshd_client_ip"] != "192.168.1.2" || evt["program"] != "sshd" {
		b.Fatalf("bad parse: %v", evt)
	}
}
