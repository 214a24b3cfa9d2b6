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
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Library is a set of named grok pattern definitions plus a cache of
// compiled patterns. The zero value is not usable; call NewLibrary.
type Library struct {
	mu       sync.Mutex
	defs     map[string]string   // name -> raw definition
	expanded map[string]string   // name -> fully expanded regex text (cache)
	compiled map[string]*Pattern // grok source -> compiled pattern (cache)
}

// NewLibrary returns an empty library.
func NewLibrary() *Library {
	return &Library{
		defs:     make(map[string]string),
		expanded: make(map[string]string),
		compiled: make(map[string]*Pattern),
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
	out := make([]string, 0, len(l.defs))
	for n := range l.defs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// LoadFile loads a pattern file: one "NAME regex" definition per line,
// '#' comments and blank lines ignored.
func (l *Library) LoadFile(p string) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("grok: %w", err)
	}
	return l.loadBytes(p, data)
}

// LoadDir loads every pattern file of dir (not recursive; hidden files,
// Go sources and README/markdown files are skipped), in name order.
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
	for _, e := range entries { // fs.ReadDir returns entries sorted by name
		if e.IsDir() || skipFile(e.Name()) {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("grok: %w", err)
		}
		if err := l.loadBytes(path.Join(display, e.Name()), data); err != nil {
			return err
		}
	}
	return nil
}

func (l *Library) loadBytes(src string, data []byte) error {
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
		if err := l.Add(name, def); err != nil {
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
// captures too. Results are cached per expression.
func (l *Library) Compile(pattern string) (*Pattern, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.compiled[pattern]; ok {
		return p, nil
	}
	exp, err := l.expand(pattern, nil)
	if err != nil {
		return nil, err
	}
	p, err := newPattern(pattern, exp)
	if err != nil {
		return nil, err
	}
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
	return l.expand(pattern, nil)
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

// expand replaces grok references in s; stack holds the names being
// expanded (cycle detection). Caller holds l.mu.
func (l *Library) expand(s string, stack []string) (string, error) {
	if !strings.Contains(s, "%{") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s) * 2)
	for {
		i := strings.Index(s, "%{")
		if i < 0 {
			b.WriteString(s)
			break
		}
		j := strings.IndexByte(s[i+2:], '}')
		if j < 0 {
			b.WriteString(s)
			break
		}
		name, capture, ok := parseRef(s[i+2 : i+2+j])
		if !ok {
			// not a grok reference: keep "%{" literally and go on
			b.WriteString(s[:i+2])
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		s = s[i+2+j+1:]
		body, err := l.expandName(name, stack)
		if err != nil {
			return "", err
		}
		if capture != "" {
			if strings.ContainsAny(capture, "<>()") {
				return "", fmt.Errorf("grok: invalid capture name %q in %%{%s:%s}", capture, name, capture)
			}
			b.WriteString("(?P<")
			b.WriteString(capture)
			b.WriteString(">")
		} else {
			b.WriteString("(?:")
		}
		b.WriteString(body)
		b.WriteString(")")
	}
	return b.String(), nil
}

func (l *Library) expandName(name string, stack []string) (string, error) {
	if e, ok := l.expanded[name]; ok {
		return e, nil
	}
	for k, s := range stack {
		if s == name {
			cyc := append(append([]string{}, stack[k:]...), name)
			return "", fmt.Errorf("grok: cycle detected: %s", strings.Join(cyc, " -> "))
		}
	}
	def, ok := l.defs[name]
	if !ok {
		if len(stack) > 0 {
			return "", fmt.Errorf("grok: unknown pattern %%{%s} (referenced by %s)", name, stack[len(stack)-1])
		}
		return "", fmt.Errorf("grok: unknown pattern %%{%s}", name)
	}
	e, err := l.expand(def, append(stack, name))
	if err != nil {
		return "", err
	}
	l.expanded[name] = e
	return e, nil
}

// Pattern is a compiled grok expression. It is immutable and safe for
// concurrent use.
type Pattern struct {
	source   string
	expanded string
	re       *regexp.Regexp
	anchored *regexp.Regexp // ^(?:re): tried first, see find
	names    []string       // distinct capture names, in order of first appearance
	groups   [][]int        // per name: submatch indexes, in pattern order
}

func newPattern(source, expanded string) (*Pattern, error) {
	tr, capNames, err := translate(expanded)
	if err != nil {
		return nil, fmt.Errorf("grok: compiling %q: %w", source, err)
	}
	re, err := regexp.Compile(tr)
	if err != nil {
		return nil, fmt.Errorf("grok: compiling %q: %w", source, err)
	}
	p := &Pattern{source: source, expanded: tr, re: re}
	// An unanchored NFA search adds a start thread at every position until
	// a match is found, which with IPORHOST-style openings costs a large
	// epsilon closure per byte. Most grok patterns match from the first
	// byte, and a match starting at 0 is the leftmost one, so the anchored
	// search gives the same submatches when it succeeds.
	if !strings.HasPrefix(tr, "^") {
		if a, err := regexp.Compile("^(?:" + tr + ")"); err == nil && a.NumSubexp() == re.NumSubexp() {
			p.anchored = a
		}
	}
	pos := make(map[string]int)
	for idx, sub := range re.SubexpNames() {
		if sub == "" {
			continue
		}
		k, err := strconv.Atoi(strings.TrimPrefix(sub, "_"))
		if err != nil || k < 0 || k >= len(capNames) {
			return nil, fmt.Errorf("grok: compiling %q: unexpected group name %q", source, sub)
		}
		name := capNames[k]
		i, ok := pos[name]
		if !ok {
			i = len(p.names)
			pos[name] = i
			p.names = append(p.names, name)
			p.groups = append(p.groups, nil)
		}
		p.groups[i] = append(p.groups[i], idx)
	}
	return p, nil
}

// String returns the grok source of the pattern.
func (p *Pattern) String() string { return p.source }

// Expanded returns the final RE2 expression (captures are renamed _0, _1...).
func (p *Pattern) Expanded() string { return p.expanded }

// Regexp returns the underlying compiled expression.
func (p *Pattern) Regexp() *regexp.Regexp { return p.re }

// Names returns the capture names the pattern yields (do not modify).
func (p *Pattern) Names() []string { return p.names }

// Match reports whether s matches, without extracting captures.
func (p *Pattern) Match(s string) bool { return p.re.MatchString(s) }

// Parse searches s (unanchored) and returns the named captures, or nil when
// s does not match. Every capture name is present; a group that did not
// participate yields "". When a name appears several times, the last
// non-empty value wins.
func (p *Pattern) Parse(s string) map[string]string {
	loc := p.find(s)
	if loc == nil {
		return nil
	}
	m := make(map[string]string, len(p.names))
	p.fill(s, loc, m)
	return m
}

// ParseInto is Parse writing the captures into dst (existing keys that are
// not captures of this pattern are left alone). It returns false, leaving
// dst untouched, when s does not match.
func (p *Pattern) ParseInto(s string, dst map[string]string) bool {
	loc := p.find(s)
	if loc == nil {
		return false
	}
	p.fill(s, loc, dst)
	return true
}

// find is re.FindStringSubmatchIndex, trying the anchored form first.
func (p *Pattern) find(s string) []int {
	if p.anchored != nil {
		if loc := p.anchored.FindStringSubmatchIndex(s); loc != nil {
			return loc
		}
	}
	return p.re.FindStringSubmatchIndex(s)
}

func (p *Pattern) fill(s string, loc []int, m map[string]string) {
	for i, name := range p.names {
		v := ""
		for _, g := range p.groups[i] {
			if a, b := loc[2*g], loc[2*g+1]; a >= 0 && b > a {
				v = s[a:b]
			}
		}
		m[name] = v
	}
}
