package exprhelpers

import (
	"fmt"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/rampart-ips/rampart/agent/event"
)

// rewriteData are the data files of the rewrite tests: case and Unicode
// variants, JSON lines with and without the key, a line that is not a
// valid regexp.
var rewriteData = map[string]string{
	"words.txt": strings.Join([]string{
		"/admin", "foo", "BAR", "ǅ", "ß", ".php", "ı", "(?i)adm", "[invalid", "^/x$", "%2e%2e",
		`{"uri":"/wp-","cve":"C1"}`, `{"cve":"C2"}`, `{"uri":"admin","cve":"C3"}`, "foo",
	}, "\n") + "\n",
	"json.txt": `{"uri":"/a","cve":"A"}` + "\n" + `{"uri":"/b/c","cve":"B"}` + "\n" + `{"uri":"c","cve":"C"}` + "\n",
}

func rewriteHelpers(t *testing.T) *Helpers {
	t.Helper()
	h := New(writeData(t, rewriteData))
	if err := h.Load([]DataFile{{DestFile: "words.txt", Type: "string"}, {DestFile: "json.txt", Type: "string"}}); err != nil {
		t.Fatal(err)
	}
	return h
}

func rewriteEvents() []*event.Event {
	var out []*event.Event
	for _, p := range []string{"", "/admin/x", "/ADMIN", "foo", "xFOOx", "/x", "ǅ", "ǆ", "SS", "ß", "I", "ı", "/a%2Fb", "/%zz",
		"/wp-login.php", "%2E%2E/", "(?i)adm", "/a", "/b/c/d", "zc", `{"uri":"/wp-","cve":"C1"}`} {
		e := event.New(event.Line{Raw: p})
		e.Meta["p"] = p
		e.Parsed["q"] = Upper(p)
		out = append(out, &e)
	}
	e := event.Event{} // nil maps
	return append(out, &e)
}

func compileBoth(t *testing.T, h *Helpers, src string) (plain, opt *vm.Program) {
	t.Helper()
	env := expr.Env(CompileEnv())
	var err error
	if plain, err = expr.Compile(src, append([]expr.Option{env}, h.OptionsUnoptimized()...)...); err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	if opt, err = expr.Compile(src, append([]expr.Option{env}, h.Options()...)...); err != nil {
		t.Fatalf("compile optimized %q: %v", src, err)
	}
	return plain, opt
}

// sameResults runs both programs on copies of each event and compares
// value, error and the event's maps afterwards.
func sameResults(t *testing.T, src string, plain, opt *vm.Program, evts []*event.Event) {
	t.Helper()
	for _, e := range evts {
		a, b := *e, *e
		a.Meta, b.Meta = maps.Clone(e.Meta), maps.Clone(e.Meta)
		va, ea := expr.Run(plain, Env(&a))
		vb, eb := expr.Run(opt, Env(&b))
		if !reflect.DeepEqual(va, vb) || (ea == nil) != (eb == nil) || !maps.Equal(a.Meta, b.Meta) {
			t.Errorf("%s on %q:\nplain     %#v, %v, %v\noptimized %#v, %v, %v", src, e.Meta["p"], va, ea, a.Meta, vb, eb, b.Meta)
		}
	}
}

// Every operator, side, folding and quantifier the any(File()) rewrite
// knows, over tricky lines and inputs, gives what expr's loop gives.
func TestAnyFileRewrite(t *testing.T) {
	h := rewriteHelpers(t)
	evts := rewriteEvents()
	xs := []string{"evt.Meta.p", "Upper(evt.Meta.p)", "Lower(PathUnescape(evt.Parsed.q))", "'/admin/x'", "evt.Meta.nope"}
	lines := []string{"#", "Upper(#)", "Lower(#)", "JsonExtract(#, 'uri')"}
	n := 0
	for _, quant := range []string{"any", "none"} {
		for _, file := range []string{"words.txt", "json.txt", "unknown.txt"} {
			for _, op := range []string{"==", "contains", "startsWith", "endsWith", "matches"} {
				for _, x := range xs {
					for _, l := range lines {
						srcs := []string{fmt.Sprintf("%s(File(%q), {%s %s %s})", quant, file, x, op, l)}
						if op != "matches" {
							srcs = append(srcs, fmt.Sprintf("%s(File(%q), {%s %s %s})", quant, file, l, op, x))
						}
						for _, src := range srcs {
							plain, opt := compileBoth(t, h, src)
							if file != "unknown.txt" && !strings.Contains(opt.Disassemble(), "rampartAnyFile") && !strings.Contains(opt.Disassemble(), "OpCallTyped") {
								t.Errorf("%s: not rewritten:\n%s", src, opt.Disassemble())
							}
							sameResults(t, src, plain, opt, evts)
							n++
						}
					}
				}
			}
		}
	}
	t.Logf("%d expressions", n)
}

// Predicates with more than the test (an effect, a further condition)
// keep their loop, over the lines that pass the test only.
func TestAnyFileFilterRewrite(t *testing.T) {
	h := rewriteHelpers(t)
	evts := rewriteEvents()
	for _, src := range []string{
		`any(File("json.txt"), {evt.Meta.p contains JsonExtract(#, "uri") ? evt.SetMeta("cve", JsonExtract(#, "cve")) : false})`,
		`any(File("words.txt"), {evt.Meta.p contains JsonExtract(#, "uri") ? evt.SetMeta("cve", JsonExtract(#, "cve")) : false})`,
		`any(File("words.txt"), {Upper(evt.Meta.p) contains Upper(#) && evt.SetMeta("hit", #)})`,
		`none(File("words.txt"), {evt.Meta.p startsWith # and len(#) > 3})`,
		`any(File("words.txt"), {# contains evt.Meta.p && evt.SetMeta("hit", #)})`,
		`any(File("words.txt"), {evt.Meta.p == # ? evt.SetMeta("hit", #) : false})`,
		`any(File("unknown.txt"), {evt.Meta.p contains # && evt.SetMeta("hit", #)})`,
		// Not rewritten: the false branch is not false, or the test uses #
		// on both sides.
		`any(File("json.txt"), {evt.Meta.p contains JsonExtract(#, "uri") ? evt.SetMeta("cve", JsonExtract(#, "cve")) : true})`,
		`any(File("words.txt"), {# contains # && evt.SetMeta("hit", #)})`,
	} {
		plain, opt := compileBoth(t, h, src)
		sameResults(t, src, plain, opt, evts)
	}
}

// The filters of the hub shapes are fused; constants are folded.
func TestRewriteShapes(t *testing.T) {
	h := rewriteHelpers(t)
	evts := rewriteEvents()
	for _, tt := range []struct {
		src  string
		want string // in the optimized disassembly
	}{
		{`Upper('/foo') + Lower('ABC') + PathUnescape('%41%zz') + QueryUnescape('a+b%zz') + TrimSpace(' x ')`, "/FOOabc%41%zza+b%zzx"},
		{`evt.Meta.p in ['foo', '/x'] && Upper(PathUnescape(evt.Meta.p)) contains Upper('/x')`, "OpCallTyped"},
		{`evt.Meta.p not in ['foo', '/x'] || !(Lower(evt.Parsed.q) startsWith '/a')`, "OpCallTyped"},
		{`Upper(evt.Meta.p) matches Upper('^/ADM.N')`, "OpCallTyped"},
		{`evt.Meta.p matches '[invalid'`, "rampartMatches"},
		{`evt.Meta.p in ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'foo']`, "OpCallTyped"},
		{`evt.Meta.p == evt.Parsed.q or evt.Meta.p endsWith evt.Line.Raw`, "OpCallTyped"},
		{`evt.Meta.p != '' ? Upper(evt.Meta.p) : 'none'`, "OpCallTyped"},
		{`let r = Lower(evt.Meta.p); r matches '^/adm' || r == 'foo'`, "OpCallTyped"},
		{`RegexpInFile(evt.Meta.p, "nope") || IsIPV4(evt.Meta.p) || IpInRange(evt.Meta.p, '10.0.0.0/8')`, "OpCallTyped"},
		{`evt.Meta.p + '/' + evt.Parsed.q`, "OpCallTyped"},
		{`len(evt.Meta.p) > 2 and evt.Meta.p[0:2] == '/a'`, "OpCallTyped"},
	} {
		plain, opt := compileBoth(t, h, tt.src)
		if d := opt.Disassemble(); !strings.Contains(d, tt.want) {
			t.Errorf("%s: optimized program lacks %q:\n%s", tt.src, tt.want, d)
		}
		sameResults(t, tt.src, plain, opt, evts)
	}
}

// A concatenation of event strings, the shape of hub groupbys such as
// evt.Meta.source_ip + '/' + evt.Parsed.target_fqdn, is fused whole: it
// runs directly, without the VM, and gives what expr gives.
func TestConcatRunsDirect(t *testing.T) {
	h := rewriteHelpers(t)
	for _, src := range []string{
		`evt.Meta.p + '/' + evt.Parsed.q`,
		`Upper(evt.Meta.p) + evt.Line.Raw + evt.Meta.missing`,
		`(evt.Meta.p == 'foo' ? 'x' : evt.Parsed.q) + 'y'`,
	} {
		plain, opt := compileBoth(t, h, src)
		fn, ok := Direct(opt)
		if !ok {
			t.Fatalf("%s: not run directly:\n%s", src, opt.Disassemble())
		}
		for _, e := range rewriteEvents() {
			want, err := expr.Run(plain, Env(e))
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			if got, err := fn(e); err != nil || got != want {
				t.Errorf("%s on %q: direct %#v, %v; expr %#v", src, e.Meta["p"], got, err, want)
			}
		}
		if _, err := fn(nil); err == nil {
			t.Errorf("%s: a nil event gave no error", src)
		}
	}
}

// A nil event fails in both forms, and an empty file still short-cuts.
func TestRewriteNilEvent(t *testing.T) {
	h := rewriteHelpers(t)
	for _, tt := range []struct {
		src     string
		wantErr bool
	}{
		{`evt.Meta.p == 'a'`, true},
		{`Upper(evt.Meta.p) contains 'A'`, true},
		{`any(File('words.txt'), {evt.Meta.p contains #})`, true},
		{`any(File('unknown.txt'), {evt.Meta.p contains #})`, false},
		{`false && evt.Meta.p == 'a'`, false},
	} {
		plain, opt := compileBoth(t, h, tt.src)
		for i, p := range []*vm.Program{plain, opt} {
			_, err := expr.Run(p, map[string]any{"evt": (*event.Event)(nil)})
			if (err != nil) != tt.wantErr {
				t.Errorf("%s (optimized: %v): err = %v, want error: %v", tt.src, i == 1, err, tt.wantErr)
			}
		}
	}
}

// Rules compiled before their file is loaded (or reloaded) see the data
// loaded later.
func TestRewriteSeesLaterLoads(t *testing.T) {
	dir := writeData(t, map[string]string{"late.txt": "admin\n"})
	h := New(dir)
	src := `any(File('late.txt'), {Upper(evt.Meta.p) contains Upper(#)})`
	prog, err := expr.Compile(src, append([]expr.Option{expr.Env(CompileEnv())}, h.Options()...)...)
	if err != nil {
		t.Fatal(err)
	}
	e := event.New(event.Line{})
	e.Meta["p"] = "/Admin/"
	if out, err := expr.Run(prog, Env(&e)); err != nil || out != false {
		t.Fatalf("before Load: %v, %v", out, err)
	}
	if err := h.Load([]DataFile{{DestFile: "late.txt", Type: "string"}}); err != nil {
		t.Fatal(err)
	}
	if out, err := expr.Run(prog, Env(&e)); err != nil || out != true {
		t.Fatalf("after Load: %v, %v", out, err)
	}
}

// An empty line is contained in, starts and ends everything; the loader
// drops empty lines, so build the index directly.
func TestLineIndexEmptyLine(t *testing.T) {
	for op, want := range map[int]bool{opContains: true, opStartsWith: true, opEndsWith: true, opEqual: false} {
		idx := buildLineIndex([]string{"abc", ""}, lineFold{kind: foldUpper}, op)
		if got := idx.has("zzz"); got != want {
			t.Errorf("op %d: has = %v, want %v", op, got, want)
		}
	}
	idx := buildLineIndex([]string{"abc", "", "z"}, lineFold{}, opContains)
	if got := idx.filter("zz"); !slices.Equal(got, []string{"", "z"}) {
		t.Errorf("filter = %q", got)
	}
}

func TestStrMemo(t *testing.T) {
	m := newStrMemo(Upper)
	for _, s := range []string{"", "a", "abc", "ǅx", "ABC"} {
		if got, box := m.get(s); got != Upper(s) || box != any(Upper(s)) {
			t.Errorf("get(%q) = %q, %v", s, got, box)
		}
	}
	// Equal content at another address, and other content at the same
	// length: every answer is computed for its own input.
	x := strings.Clone("hello")
	y := strings.Clone("hello")
	z := strings.Clone("world")
	for _, in := range []string{x, y, z, x, z} {
		if got, _ := m.get(in); got != Upper(in) {
			t.Errorf("get(%q) = %q", in, got)
		}
	}
}

// Many goroutines on few slots: every answer is right (run with -race).
func TestStrMemoConcurrent(t *testing.T) {
	m := newStrMemo(Lower)
	words := make([]string, 3000)
	for i := range words {
		words[i] = fmt.Sprintf("/Path/%d/ÉTÉ", i)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 20000 {
				w := words[r.IntN(len(words))]
				if got, box := m.get(w); got != Lower(w) || box.(string) != got {
					t.Errorf("get(%q) = %q", w, got)
					return
				}
			}
		})
	}
	wg.Wait()
}

// The literal scan reports every occurrence, by increasing position.
func TestLitSetFind(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abcé\xff"[r.IntN(5)]
		}
		return string(b)
	}
	for range 2000 {
		lits := make([]string, 1+r.IntN(6))
		for i := range lits {
			lits[i] = word(r.IntN(4))
		}
		s := word(r.IntN(12))
		var got, want []string
		last := -1
		newLitSet(lits).find(s, func(id int32, pos int) bool {
			if pos < last {
				t.Fatalf("positions go back: %d after %d", pos, last)
			}
			last = pos
			got = append(got, fmt.Sprint(pos, ":", id))
			return false
		})
		for pos := range len(s) {
			for id, l := range lits {
				if l != "" && strings.HasPrefix(s[pos:], l) {
					want = append(want, fmt.Sprint(pos, ":", id))
				}
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("lits %q in %q: got %v, want %v", lits, s, got, want)
		}
	}
}

func TestRequiredLiteral(t *testing.T) {
	for pat, want := range map[string]string{
		`\bNikto\b`:     "Nikto",
		`(?i)nikto`:     "",
		`a|bcd`:         "",
		`x*abc(de)+f?`:  "abc",
		`(long)+ab`:     "long",
		`(?:xy){2,}z`:   "xy",
		`q{0,3}`:        "",
		`^/dana-na/.*x`: "/dana-na/",
		`é.\x{FFFD}`:    "é",
	} {
		re, err := regexp.Compile(pat)
		if err != nil {
			t.Fatal(err)
		}
		rs := newRegexpSet([]*regexp.Regexp{re})
		got := ""
		if len(rs.byLit) == 1 {
			got = rs.lits.lits[0]
		}
		if got != want {
			t.Errorf("%s: literal %q, want %q", pat, got, want)
		}
	}
}

// RegexpInFile with its literal prefilter answers as trying every pattern.
func TestRegexpSetMatchesLoop(t *testing.T) {
	h := hubHelpers(t)
	res := h.state.Load().regexps["bad_user_agents.regex.txt"]
	extra := []string{`(?i)zgrab`, `^curl/`, `a+b`, `[x-z]{3}`, `\x{FFFD}bad`, `(?:Go|Java)-http`}
	for _, p := range extra {
		res = append(res, regexp.MustCompile(p))
	}
	rs := newRegexpSet(res)
	inputs := []string{"", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "Mozilla/5.00 (Nikto/2.1.6)", "sqlmap/1.7", "ZGrab/0.x",
		"curl/8.0", "xcurl/", "aaab", "zzz", "\xffbad", "\uFFFDbad", "Go-http-client/1.1", "masscan/1.3", "360Spider", "x360Spidery"}
	r := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		b := []byte(inputs[r.IntN(len(inputs))])
		for range 3 {
			if len(b) > 0 {
				b[r.IntN(len(b))] = "aAbZ \xff/"[r.IntN(7)]
			}
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		want := slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(s) })
		if got := rs.match(s); got != want {
			t.Errorf("match(%q) = %v, want %v", s, got, want)
		}
	}
}

// LookupFile's contains entries: leftmost match, then first in the file.
func TestLookupFileContainsOrder(t *testing.T) {
	pats := []string{"bc", "abc", "b", "cd", "abcd", "d"}
	var lines []string
	for i, p := range pats {
		lines = append(lines, fmt.Sprintf(`{"tag":"t%d","pattern":%q,"type":"contains"}`, i, p))
	}
	h := New(writeData(t, map[string]string{"m.json": strings.Join(lines, "\n")}))
	if err := h.Load([]DataFile{{DestFile: "m.json", Type: "map"}}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 3000 {
		b := make([]byte, r.IntN(8))
		for i := range b {
			b[i] = "abcdx"[r.IntN(5)]
		}
		s := string(b)
		best, want := -1, ""
		for i, p := range pats {
			if j := strings.Index(s, p); j >= 0 && (best < 0 || j < best) {
				best, want = j, fmt.Sprintf("t%d", i)
			}
		}
		if got := h.LookupFile(s, "m.json"); got != want {
			t.Fatalf("LookupFile(%q) = %q, want %q", s, got, want)
		}
	}
}

// The prefix and suffix indexes answer what testing every line does.
func TestLineIndexEdges(t *testing.T) {
	lines := []string{".sql", ".sql.gz", "env.bak", ".env", "/.git/config", "a", "ba", "/admin", "/admin/", "x/.env"}
	xs := []string{"", "a", "/backup.sql", "/backup.sql.gz", "/.env", "/x/.env", ".env", "env", "/admin", "/ADMIN/", "/admin/x", "b", "aba", "/z.sql.tar"}
	for _, op := range []int{opStartsWith, opEndsWith} {
		for _, fold := range []lineFold{{}, {kind: foldUpper}} {
			idx := buildLineIndex(lines, fold, op)
			for _, x := range xs {
				want := false
				for i := range lines {
					want = want || idx.test(x, i)
				}
				if got := idx.has(x); got != want {
					t.Errorf("op %d fold %d: has(%q) = %v, want %v", op, fold.kind, x, got, want)
				}
			}
		}
	}
}

// On an ASCII text, the folding scan reports what the plain scan of the
// upper- (lower-) cased text does.
func TestLitSetFindFold(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	word := func(n int, alpha string) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alpha[r.IntN(len(alpha))]
		}
		return string(b)
	}
	scan := func(l *litSet, s string, fold *[256]byte) []string {
		var out []string
		f := func(id int32, pos int) bool {
			out = append(out, fmt.Sprint(pos, ":", id))
			return false
		}
		if fold == nil {
			l.find(s, f)
		} else {
			l.findFold(s, fold, f)
		}
		return out
	}
	for range 3000 {
		lits := make([]string, 1+r.IntN(6))
		for i := range lits {
			lits[i] = word(r.IntN(4), "aAbB/zZ@[")
		}
		l := newLitSet(lits)
		s := word(r.IntN(14), "aAbB/zZ@[`{")
		if got, want := scan(l, s, upperASCII), scan(l, Upper(s), nil); !slices.Equal(got, want) {
			t.Fatalf("upper: lits %q in %q: got %v, want %v", lits, s, got, want)
		}
		if got, want := scan(l, s, lowerASCII), scan(l, Lower(s), nil); !slices.Equal(got, want) {
			t.Fatalf("lower: lits %q in %q: got %v, want %v", lits, s, got, want)
		}
	}
}

// A memoized scan finds what a scan does, on new and repeated values.
func TestScanMemo(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abcd/"[r.IntN(5)]
		}
		return string(b)
	}
	lits := make([]string, 40)
	for i := range lits {
		lits[i] = word(1 + r.IntN(3))
	}
	l := newLitSet(lits)
	m := &scanMemo{seed: maphash.MakeSeed()}
	values := make([]string, 600) // more than the memo's slots: collisions
	for i := range values {
		values[i] = word(r.IntN(10))
	}
	for range 3 {
		for _, v := range values {
			want := map[int32]bool{}
			l.find(v, func(id int32, _ int) bool { want[id] = true; return false })
			got := map[int32]bool{}
			for _, id := range m.scan(l, v) {
				if got[id] {
					t.Fatalf("%q: literal %d twice", v, id)
				}
				got[id] = true
			}
			if !maps.Equal(got, want) {
				t.Fatalf("%q: memo found %v, scan %v", v, got, want)
			}
		}
	}
}
