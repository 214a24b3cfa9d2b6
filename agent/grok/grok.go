// Package grok compiles grok patterns (%{NAME:capture}) into Go regexp (RE2)
// expressions and extracts named captures from log lines.
//
// A Library holds pattern definitions; it has no package-level state, so
// several independent libraries can coexist. Compiled patterns are cached
// and safe for concurrent use.
package grok

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Library is a set of named grok pattern definitions plus a cache of
// compiled patterns. The zero value is not usable; call NewLibrary.
type Library struct {
	mu       sync.Mutex
	defs     map[string]string   // name -> raw definition
	expanded map[string]string   // name -> fully expanded regex text (cache)
	compiled map[string]*Pattern // grok source -> compiled pattern (cache)
	approx   map[string]*approx  // name -> approximation (see approx.go)
	// stats: what compiling has cost, for the loader's figures
	stats Stats
}

// Stats are a library's compilation figures: distinct expressions
// compiled (cache misses) and the time spent compiling them.
type Stats struct {
	Compiled int
	Took     time.Duration
}

// Stats returns what compiling has cost so far.
func (l *Library) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// NewLibrary returns an empty library.
func NewLibrary() *Library {
	return &Library{
		defs:     make(map[string]string),
		expanded: make(map[string]string),
		compiled: make(map[string]*Pattern),
		approx:   make(map[string]*approx),
	}
}

func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// Add registers a pattern definition. When name is already registered the
// first definition is kept and Add returns nil (upstream only warns
// "already registered"); use Has to detect that case if it matters.
// Definitions are checked lazily: errors in the regex itself surface when a
// pattern referencing it is compiled.
func (l *Library) Add(name, pattern string) error {
	if !validName(name) {
		return fmt.Errorf("grok: invalid pattern name %q", name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.defs[name]; !ok {
		l.defs[name] = pattern
	}
	return nil
}

// Has reports whether name is registered.
func (l *Library) Has(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.defs[name]
	return ok
}

// Definition returns the raw definition of name.
func (l *Library) Definition(name string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.defs[name]
	return d, ok
}

// Names returns the registered pattern names, sorted.
func (l *Library) Names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.defs))
}

// LoadFile loads a pattern file: one "NAME regex" definition per line,
// '#' comments and blank lines ignored.
func (l *Library) LoadFile(p string) error {
	if filepath.Base(p) == ApproxFile {
		// its lines are not definitions, and whether they apply depends
		// on the directory's definitions
		return fmt.Errorf("grok: %s holds approximations: load its directory", p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("grok: %w", err)
	}
	return l.loadBytes(p, data)
}

// LoadDir loads every pattern file of dir (not recursive; hidden files,
// Go sources and README/markdown files are skipped), in name order. A file
// named ApproxFile holds approximations instead (see AddApprox).
func (l *Library) LoadDir(dir string) error {
	return l.loadFS(os.DirFS(dir), ".", dir)
}

// LoadFS is LoadDir over an fs.FS (for example the embedded
// rules/patterns.FS).
func (l *Library) LoadFS(fsys fs.FS, dir string) error {
	return l.loadFS(fsys, dir, dir)
}

func skipFile(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".go") ||
		strings.HasSuffix(name, ".md") || strings.HasPrefix(strings.ToUpper(name), "README")
}

func (l *Library) loadFS(fsys fs.FS, dir, display string) error {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return fmt.Errorf("grok: %w", err)
	}
	// the directory's own definitions, to tell whether its approximations
	// apply to what the library ends up with
	own := NewLibrary()
	var approxSrc string
	var approxData []byte
	for _, e := range entries { // fs.ReadDir returns entries sorted by name
		if e.IsDir() || skipFile(e.Name()) {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("grok: %w", err)
		}
		src := path.Join(display, e.Name())
		if e.Name() == ApproxFile {
			approxSrc, approxData = src, data
			continue
		}
		if err := l.loadBytes(src, data); err != nil {
			return err
		}
		if err := own.loadBytes(src, data); err != nil {
			return err
		}
	}
	if approxData != nil {
		return l.loadApprox(approxSrc, approxData, own)
	}
	return nil
}

func (l *Library) loadBytes(src string, data []byte) error {
	return parseLines(src, data, l.Add)
}

// parseLines calls fn for each "NAME text" line of a pattern file ('#'
// comments and blank lines ignored).
func parseLines(src string, data []byte, fn func(name, text string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			return fmt.Errorf("grok: %s:%d: definition %q has no pattern", src, n, line)
		}
		name, def := line[:i], strings.TrimSpace(line[i+1:])
		if err := fn(name, def); err != nil {
			return fmt.Errorf("%s:%d: %w", src, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("grok: %s: %w", src, err)
	}
	return nil
}

// Compile expands a grok expression and compiles it. %{NAME},
// %{NAME:capture} and %{NAME:capture:type} (type ignored) are expanded
// recursively; raw regex named groups (?P<x>..), (?<x>..) and (?'x'..) are
// captures too. Results are cached per expression. Errors are
// *CompileError.
func (l *Library) Compile(pattern string) (*Pattern, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.compiled[pattern]; ok {
		return p, nil
	}
	start := time.Now()
	defer func() {
		l.stats.Compiled++
		l.stats.Took += time.Since(start)
	}()
	exp, err := l.expandPattern(pattern)
	if err != nil {
		return nil, err
	}
	p, err := newPattern(pattern, exp)
	if err != nil {
		return nil, l.locate(pattern, exp, err)
	}
	p.lib, p.approx = l, l.approx
	l.compiled[pattern] = p
	return p, nil
}

// MustCompile is Compile that panics on error (for tests and constants).
func (l *Library) MustCompile(pattern string) *Pattern {
	p, err := l.Compile(pattern)
	if err != nil {
		panic(err)
	}
	return p
}

// Expand returns the regex text of a grok expression with every %{...}
// reference replaced (PCRE translation is not applied).
func (l *Library) Expand(pattern string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expandPattern(pattern)
}

func (l *Library) expandPattern(pattern string) (string, error) {
	exp, err := l.expand(pattern, "", nil)
	if ce, ok := err.(*CompileError); ok {
		ce.Pattern = pattern
	}
	return exp, err
}

// parseRef parses the inside of %{...}: NAME[:capture[:type]].
func parseRef(ref string) (name, capture string, ok bool) {
	name, rest, hasCap := strings.Cut(ref, ":")
	if !validName(name) {
		return "", "", false
	}
	if hasCap {
		capture, _, _ = strings.Cut(rest, ":")
	}
	return name, capture, true
}

// scanRefs returns s with each grok reference replaced by refText of the
// body fn returns for it; fn also gets the reference's span [at, end) in
// s. Text that is not a valid reference is kept as is.
func scanRefs(s string, fn func(name, capture string, at, end int) (string, error)) (string, error) {
	if !strings.Contains(s, "%{") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s) * 2)
	for pos := 0; ; {
		i := strings.Index(s[pos:], "%{")
		if i < 0 {
			b.WriteString(s[pos:])
			break
		}
		at := pos + i
		j := strings.IndexByte(s[at+2:], '}')
		if j < 0 {
			b.WriteString(s[pos:])
			break
		}
		end := at + 2 + j + 1
		name, capture, ok := parseRef(s[at+2 : end-1])
		if !ok {
			// not a grok reference: keep "%{" literally and go on
			b.WriteString(s[pos : at+2])
			pos = at + 2
			continue
		}
		b.WriteString(s[pos:at])
		body, err := fn(name, capture, at, end)
		if err != nil {
			return "", err
		}
		b.WriteString(refText(capture, body))
		pos = end
	}
	return b.String(), nil
}

// refText is the regex a reference expands to.
func refText(capture, body string) string {
	if capture != "" {
		return "(?P<" + capture + ">" + body + ")"
	}
	return "(?:" + body + ")"
}

// expand replaces grok references in s, the text of definition name ("" for
// the pattern being compiled); stack holds the names being expanded (cycle
// detection). Caller holds l.mu.
func (l *Library) expand(s, name string, stack []string) (string, error) {
	return scanRefs(s, func(ref, capture string, at, _ int) (string, error) {
		if strings.ContainsAny(capture, "<>()") {
			return "", &CompileError{Name: name, Offset: at, Err: fmt.Errorf("invalid capture name %q in %%{%s:%s}", capture, ref, capture)}
		}
		body, err := l.expandName(ref, stack)
		if err != nil {
			if _, ok := err.(*CompileError); !ok {
				err = &CompileError{Name: name, Offset: at, Err: err}
			}
			return "", err
		}
		return body, nil
	})
}

// expandName returns the expanded definition of name. Unknown names and
// cycles are returned as plain errors for the referrer to locate.
func (l *Library) expandName(name string, stack []string) (string, error) {
	if e, ok := l.expanded[name]; ok {
		return e, nil
	}
	for k, s := range stack {
		if s == name {
			cyc := append(append([]string{}, stack[k:]...), name)
			return "", fmt.Errorf("cycle detected: %s", strings.Join(cyc, " -> "))
		}
	}
	def, ok := l.defs[name]
	if !ok {
		return "", fmt.Errorf("unknown pattern %%{%s}", name)
	}
	e, err := l.expand(def, name, append(stack, name))
	if err != nil {
		return "", err
	}
	l.expanded[name] = e
	return e, nil
}

// Pattern is a compiled grok expression. It is immutable and safe for
// concurrent use.
//
// Compiling checks the expression and works out its captures; the regular
// expressions that match are built on first use (see build): a daemon
// loading a whole hub compiles hundreds of large expressions of which a
// host uses a few, and building them all took seconds and most of its
// memory.
type Pattern struct {
	source   string
	expanded string
	capNames []string // translate's names of the groups _N
	names    []string // distinct capture names, in order of first appearance
	groups   [][]int  // per names entry: submatch indexes of the strict expression
	frames   []Frame  // per names entry, see Frame
	// lib and its approximations when the pattern was compiled, for build
	lib    *Library
	approx map[string]*approx

	once   sync.Once
	strict matcher
	fast   *fastMatcher
}

// matcher is a compiled expression and where each capture name lands in
// its submatches.
type matcher struct {
	re       *regexp.Regexp
	anchored *regexp.Regexp // ^(?:re): tried first, see find
	direct   int            // inputs shorter than this skip anchored, see find
	groups   [][]int        // per Pattern.names entry: submatch indexes, in pattern order
	walk     *walker        // the same search, cheaper (nil: not supported), see walk.go
}

// Go's regexp runs its bit-state backtracker, rather than the NFA, on
// programs of at most 500 instructions and inputs of at most 256Ki bits /
// instructions bytes (regexp/backtrack.go). Were these limits to change,
// only speed would.
const (
	backtrackMaxProg = 500
	backtrackBits    = 256 * 1024
)

// compileMatcher compiles a translated expression. capNames maps the
// renamed groups _N back to their names; names not accepted by keep are
// skipped, the others are appended to *names (when new) and mapped.
func compileMatcher(tr string, capNames []string, names *[]string, keep func(string) bool) (matcher, error) {
	re, err := regexp.Compile(tr)
	if err != nil {
		return matcher{}, err
	}
	m := matcher{re: re}
	// An unanchored NFA search adds a start thread at every position until
	// a match is found, which with IPORHOST-style openings costs a large
	// epsilon closure per byte. Most grok patterns match from the first
	// byte, and a match starting at 0 is the leftmost one, so the anchored
	// search gives the same submatches when it succeeds.
	if !strings.HasPrefix(tr, "^") {
		if a, err := regexp.Compile("^(?:" + tr + ")"); err == nil && a.NumSubexp() == re.NumSubexp() {
			m.anchored = a
		}
	}
	// The backtracker tries start offsets in order and returns the first
	// that matches, sharing one visited set; an anchored try first would
	// only repeat its work (and clearing that set).
	if tree, err := syntax.Parse(tr, syntax.Perl); err == nil {
		if n := progSize(tree); n <= backtrackMaxProg {
			m.direct = backtrackBits / n
		}
	}
	if m.groups, err = mapGroups(re.SubexpNames(), capNames, names, keep); err != nil {
		return matcher{}, err
	}
	return m, nil
}

// mapGroups maps the submatches of an expression whose groups are named
// subexpNames (regexp's SubexpNames, syntax's CapNames) to capture names:
// capNames maps the renamed groups _N back to their names; names not
// accepted by keep are skipped, the others are appended to *names (when
// new). It returns the submatch indexes of each *names entry.
func mapGroups(subexpNames, capNames []string, names *[]string, keep func(string) bool) ([][]int, error) {
	pos := make(map[string]int, len(*names))
	for i, n := range *names {
		pos[n] = i
	}
	groups := make([][]int, len(*names))
	for idx, sub := range subexpNames {
		if sub == "" {
			continue
		}
		k, err := strconv.Atoi(strings.TrimPrefix(sub, "_"))
		if err != nil || k < 0 || k >= len(capNames) {
			return nil, fmt.Errorf("unexpected group name %q", sub)
		}
		name := capNames[k]
		if !keep(name) {
			continue
		}
		i, ok := pos[name]
		if !ok {
			i = len(*names)
			pos[name] = i
			*names = append(*names, name)
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], idx)
	}
	return groups, nil
}

// find is re.FindStringSubmatchIndex: the walker's when it has an
// answer, else regexp's.
func (m *matcher) find(s string) []int {
	if m.walk != nil {
		if loc, ok := m.walk.find(s); ok {
			return loc
		}
	}
	return m.findRegexp(s)
}

// findRegexp is re.FindStringSubmatchIndex, trying the anchored form
// first where the NFA would run.
func (m *matcher) findRegexp(s string) []int {
	if m.anchored != nil && len(s) >= m.direct {
		if loc := m.anchored.FindStringSubmatchIndex(s); loc != nil {
			return loc
		}
	}
	return m.re.FindStringSubmatchIndex(s)
}

func newPattern(source, expanded string) (*Pattern, error) {
	tr, capNames, err := translate(expanded)
	if err != nil {
		return nil, err
	}
	// Parsing is all of regexp.Compile that can fail (syntax.Compile and
	// the rest cannot), so build will succeed; the tree gives the
	// captures and their frames, and is not kept (it is large).
	tree, err := syntax.Parse(tr, syntax.Perl)
	if err != nil {
		return nil, err
	}
	p := &Pattern{source: source, expanded: tr, capNames: capNames}
	if p.groups, err = mapGroups(tree.CapNames(), capNames, &p.names, keepAll); err != nil {
		return nil, err
	}
	p.computeFrames(tree)
	return p, nil
}

func keepAll(string) bool { return true }

// build compiles the expressions that match: the strict one and, when
// the library's approximations make it smaller, the fast one.
func (p *Pattern) build() {
	names := slices.Clone(p.names)
	m, err := compileMatcher(p.expanded, p.capNames, &names, keepAll)
	if err != nil || len(names) != len(p.names) {
		// newPattern parsed this very expression without error
		panic(fmt.Sprintf("grok: %q parsed but does not compile: %v", p.source, err))
	}
	p.strict = m
	if len(p.approx) > 0 && p.lib != nil {
		p.lib.mu.Lock()
		defer p.lib.mu.Unlock()
		p.lib.addFast(p)
	}
	if p.fast == nil {
		// With a fast expression the strict one only serves the lines
		// an approximation let through wrongly, rare enough for regexp:
		// its walker would be the largest structure of the pattern
		// (heavy definitions expanded), for little.
		p.strict.addWalker(p.expanded)
	}
}

// addWalker gives m a walker for its expression tr, when the walker
// supports it.
func (m *matcher) addWalker(tr string) {
	if w, err := newWalker(tr); err == nil && w.nsub == 2*(m.re.NumSubexp()+1) {
		m.walk = w
	}
}

// matchers builds the expressions on first use.
func (p *Pattern) matchers() *Pattern {
	p.once.Do(p.build)
	return p
}

// String returns the grok source of the pattern.
func (p *Pattern) String() string { return p.source }

// Expanded returns the final RE2 expression (captures are renamed _0, _1...).
func (p *Pattern) Expanded() string { return p.expanded }

// Regexp returns the underlying compiled expression.
func (p *Pattern) Regexp() *regexp.Regexp { return p.matchers().strict.re }

// Names returns the capture names the pattern yields (do not modify).
func (p *Pattern) Names() []string { return p.names }

// Approximated reports whether the pattern matches through approximations
// (see AddApprox); results are the same either way.
func (p *Pattern) Approximated() bool { return p.matchers().fast != nil }

// Match reports whether s matches, without extracting captures.
func (p *Pattern) Match(s string) bool {
	p.matchers()
	if p.fast != nil {
		if !p.fast.re.MatchString(s) {
			return false
		}
		loc, _ := p.find(s)
		return loc != nil
	}
	return p.strict.re.MatchString(s)
}

// Parse searches s (unanchored) and returns the named captures, or nil when
// s does not match. Every capture name is present; a group that did not
// participate yields "". When a name appears several times, the last
// non-empty value wins.
func (p *Pattern) Parse(s string) map[string]string {
	loc, groups := p.find(s)
	if loc == nil {
		return nil
	}
	m := make(map[string]string, len(p.names))
	p.fill(s, loc, groups, m)
	return m
}

// ParseInto is Parse writing the captures into dst (existing keys that are
// not captures of this pattern are left alone). It returns false, leaving
// dst untouched, when s does not match.
func (p *Pattern) ParseInto(s string, dst map[string]string) bool {
	_, ok := p.ParseMatch(s, dst)
	return ok
}

// Match is where a pattern matched a text: the place of each capture.
type Match struct {
	loc    []int
	groups [][]int
}

// Span returns where capture i (an index into Names) lies in the text,
// [start, end), for the occurrence Parse reports (the last non-empty
// one), or -1, -1 when it captured nothing.
func (m Match) Span(i int) (int, int) {
	if i < 0 || i >= len(m.groups) {
		return -1, -1
	}
	start, end := -1, -1
	for _, g := range m.groups[i] {
		if a, b := m.loc[2*g], m.loc[2*g+1]; a >= 0 && b > a {
			start, end = a, b
		}
	}
	return start, end
}

// ParseMatch is ParseInto that also returns where the captures lie.
func (p *Pattern) ParseMatch(s string, dst map[string]string) (Match, bool) {
	loc, groups := p.find(s)
	if loc == nil {
		return Match{}, false
	}
	p.fill(s, loc, groups, dst)
	return Match{loc: loc, groups: groups}, true
}

// find returns the submatches of the leftmost-first match of s and the
// group table they go with.
func (p *Pattern) find(s string) ([]int, [][]int) {
	p.matchers()
	if f := p.fast; f != nil {
		loc, ok := f.find(s)
		if loc == nil {
			return nil, nil // the fast expression accepts a superset
		}
		if ok {
			return loc, f.groups
		}
	}
	return p.strict.find(s), p.strict.groups
}

func (p *Pattern) fill(s string, loc []int, groups [][]int, m map[string]string) {
	for i, name := range p.names {
		v := ""
		for _, g := range groups[i] {
			if a, b := loc[2*g], loc[2*g+1]; a >= 0 && b > a {
				v = s[a:b]
			}
		}
		m[name] = v
	}
}
