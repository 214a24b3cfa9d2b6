package grok

// Approximate, then verify.
//
// A few library definitions (IPV6, IPV4 octets, HOSTNAME's counted labels,
// MONTH) expand to very large programs: a hub nginx pattern compiles to
// ~3000 instructions, far above the 500 under which Go's regexp uses its
// bit-state backtracker instead of the much slower NFA. An approximation
// is a small regex accepting a superset of such a definition. A pattern is
// also compiled with each approximated reference emitted as an internal
// capture group around the approximation; a line is matched with that
// fast expression and every internal group that took part is checked
// against the exact definition. The line falls back to the strict
// expression when a check fails. No fast match means no strict match,
// since the fast expression accepts a superset.
//
// Why a verified fast match is the strict match. Go's regexp returns the
// leftmost match, and among those the first in backtracking priority. Let
// F be the fast expression's match (verified) and S the strict one's.
// Start: S is also a fast match, so it cannot start before F; F, verified,
// is also a strict match, so it cannot start before S. Then read each
// parse as its sequence of decisions, an approximated token counting as
// one decision, its end (nothing inside is captured and what follows
// depends only on that offset). At the first decision where F and S
// differ, the fast expression ranks F's choice first and the strict one
// ranks S's. A decision of the common context ranks the same in both, so
// it is a token's end; both ends are accepted by the definition (S is a
// strict parse, F was verified), hence by the approximation, and the
// invariant (both rank a token's ends in the same order: longest first)
// rules the disagreement out. So F and S agree, captures included.
// Needed for this: a token's submatch must be its only use (occurrences
// under a repetition that can run twice stay strict) and the token must
// read as in isolation (occurrences whose text parses differently in
// context, under (?i) say, stay strict). The check sees one rune on each
// side of the token, all that \b, ^ and $ look at.

import (
	"fmt"
	"maps"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// ApproxFile is the file of a pattern directory that holds approximations
// ("NAME regex" lines), read by LoadDir and LoadFS. An approximation
// listed there is used only while the library's definition of NAME is the
// one from that same directory.
const ApproxFile = "approximations"

// approx is an approximation of one definition.
type approx struct {
	name    string
	re      string         // the approximation (RE2 syntax)
	def     string         // the definition, expanded and translated
	reTree  *syntax.Regexp // parsed re and def, to check that an
	defTree *syntax.Regexp // occurrence reads the same in context

	once     sync.Once
	verify   [4]*regexp.Regexp // ^def$ with a context rune before (bit 0) and/or after (bit 1)
	walkOnce [4]sync.Once      // each built on first use: not every context occurs
	walk     [4]*walker        // the same, walked (nil: regexp only)
}

func (ap *approx) compileVerifiers() {
	for v := range ap.verify {
		s := "^"
		if v&1 != 0 {
			s += "(?s:.)"
		}
		s += "(?:" + ap.def + ")"
		if v&2 != 0 {
			s += "(?s:.)"
		}
		// The definition compiled as part of a pattern already, so this
		// cannot fail; a nil verifier would only force the strict path.
		ap.verify[v], _ = regexp.Compile(s + "$")
	}
}

// walker returns the walker of verifier v, nil when there is none.
func (ap *approx) walker(v int) *walker {
	ap.walkOnce[v].Do(func() {
		if re := ap.verify[v]; re != nil {
			// no groups (captureFree)
			if w, err := newWalker(re.String()); err == nil && w.nsub == 2 {
				ap.walk[v] = w
			}
		}
	})
	return ap.walk[v]
}

// inContext widens s[a:b] by the rune on each side, where there is one,
// and says which (the verifier variant: bit 0 before, bit 1 after).
func inContext(s string, a, b int) (v, lo, hi int) {
	v, lo, hi = 0, a, b
	if a > 0 {
		_, n := utf8.DecodeLastRuneInString(s[:a])
		lo -= n
		v |= 1
	}
	if b < len(s) {
		_, n := utf8.DecodeRuneInString(s[b:])
		hi += n
		v |= 2
	}
	return v, lo, hi
}

// accepts reports whether the definition matches s[a:b] exactly, seen in
// its context: the verifier includes the rune before and after, so word
// boundaries and text anchors at the edges evaluate as in the line.
func (ap *approx) accepts(s string, a, b int) bool {
	v, lo, hi := inContext(s, a, b)
	if w := ap.walker(v); w != nil {
		if matched, ok := w.matches(s[lo:hi]); ok {
			return matched
		}
	}
	re := ap.verify[v]
	return re != nil && re.MatchString(s[lo:hi])
}

// AddApprox registers re as an approximation of name's definition, used
// by patterns compiled afterwards. The caller guarantees, for every input
// and every surrounding text:
//
//   - superset: re matches every span the definition matches;
//   - same preference: over the spans both match from one start, the
//     definition prefers them in the same order as re does (simplest: both
//     prefer the longest, as greedy quantifiers without alternatives that
//     favour a shorter token do);
//
// Neither may contain capture groups. Breaking the first rule loses
// matches and the second changes captures; the equivalence tests of this
// package check both for the shipped approximations.
func (l *Library) AddApprox(name, re string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addApprox(name, re)
}

func (l *Library) addApprox(name, re string) error {
	def, err := l.expandName(name, nil)
	if err != nil {
		return fmt.Errorf("grok: approximation of %s: %w", name, err)
	}
	if strings.Contains(re, "%{") {
		return fmt.Errorf("grok: approximation of %s: must be a plain regex", name)
	}
	ap := &approx{name: name, re: re}
	if ap.def, ap.defTree, err = captureFree(def); err != nil {
		return fmt.Errorf("grok: approximation of %s: definition: %w", name, err)
	}
	if _, ap.reTree, err = captureFree(re); err != nil {
		return fmt.Errorf("grok: approximation of %s: %w", name, err)
	}
	// a new map, not an update: a compiled pattern builds with the
	// approximations there were when it was compiled (Pattern.approx)
	m := maps.Clone(l.approx)
	m[name] = ap
	l.approx = m
	return nil
}

// Approximations returns the names that have an approximation, sorted.
func (l *Library) Approximations() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.approx))
}

// captureFree translates exp and parses it as a group body, rejecting
// capture groups: the fast path could not report nor check them.
func captureFree(exp string) (string, *syntax.Regexp, error) {
	tr, _, err := translate(exp)
	if err != nil {
		return "", nil, err
	}
	re, err := syntax.Parse("(?P<x>"+tr+")", syntax.Perl)
	if err != nil {
		return "", nil, err
	}
	if re.Op != syntax.OpCapture {
		return "", nil, fmt.Errorf("unexpected parse of %q", exp)
	}
	if hasCapture(re.Sub[0]) {
		return "", nil, fmt.Errorf("has a capture group")
	}
	return tr, re.Sub[0], nil
}

func hasCapture(re *syntax.Regexp) bool {
	if re.Op == syntax.OpCapture {
		return true
	}
	for _, s := range re.Sub {
		if hasCapture(s) {
			return true
		}
	}
	return false
}

// loadApprox reads an approximations file of a directory whose own
// definitions are in own.
func (l *Library) loadApprox(src string, data []byte, own *Library) error {
	return parseLines(src, data, func(name, re string) error {
		want, err := own.expandName(name, nil)
		if err != nil {
			return fmt.Errorf("grok: approximation of %s: %w", name, err)
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if got, err := l.expandName(name, nil); err != nil || got != want {
			// defined differently (first definition wins): the
			// approximation is not known to be a superset of that one
			return nil
		}
		return l.addApprox(name, re)
	})
}

// internal groups of the fast expression are named NUL + occurrence
// number; a NUL cannot be typed into a hub pattern by accident, and
// addFast gives up on patterns that contain one.
const internalPrefix = "\x00"

func internalIndex(capName string) (int, bool) {
	if !strings.HasPrefix(capName, internalPrefix) {
		return 0, false
	}
	k, err := strconv.Atoi(capName[len(internalPrefix):])
	return k, err == nil
}

// fastExpansion expands a pattern with numbered occurrences of
// approximated names, in the order strict expansion meets them.
type fastExpansion struct {
	l      *Library
	approx map[string]*approx // the pattern's (Pattern.approx)
	marked bool               // emit the definition inside the internal group (to inspect its context)
	strict map[int]bool       // occurrences kept strict
	occ    []*approx
}

func (fe *fastExpansion) expand(s string) (string, error) {
	return scanRefs(s, func(name, _ string, _, _ int) (string, error) {
		ap := fe.approx[name]
		if ap == nil {
			def, ok := fe.l.defs[name]
			if !ok {
				return "", fmt.Errorf("unknown pattern %%{%s}", name)
			}
			return fe.expand(def)
		}
		k := len(fe.occ)
		fe.occ = append(fe.occ, ap)
		// the strict expansion of the pattern cached every name it uses
		def := fe.l.expanded[name]
		switch {
		case fe.strict[k]:
			return def, nil
		case fe.marked:
			return "(?P<" + internalPrefix + strconv.Itoa(k) + ">" + def + ")", nil
		}
		return "(?P<" + internalPrefix + strconv.Itoa(k) + ">" + ap.re + ")", nil
	})
}

// parse expands, translates and parses the pattern.
func (fe *fastExpansion) parse(src string) (tr string, capNames []string, tree *syntax.Regexp, err error) {
	fe.occ = fe.occ[:0]
	text, err := fe.expand(src)
	if err != nil {
		return "", nil, nil, err
	}
	if tr, capNames, err = translate(text); err != nil {
		return "", nil, nil, err
	}
	tree, err = syntax.Parse(tr, syntax.Perl)
	return tr, capNames, tree, err
}

// eachInternal calls fn for every internal group of tree, telling whether
// it sits under a repetition that can match more than once (its submatch
// would then only show the last time).
func eachInternal(tree *syntax.Regexp, capNames []string, fn func(k int, group *syntax.Regexp, repeated bool)) {
	var walk func(re *syntax.Regexp, repeated bool)
	walk = func(re *syntax.Regexp, repeated bool) {
		switch re.Op {
		case syntax.OpStar, syntax.OpPlus:
			repeated = true
		case syntax.OpRepeat:
			repeated = repeated || re.Max != 1
		case syntax.OpCapture:
			if n, err := strconv.Atoi(strings.TrimPrefix(re.Name, "_")); err == nil && n >= 0 && n < len(capNames) {
				if k, ok := internalIndex(capNames[n]); ok {
					fn(k, re, repeated)
				}
			}
		}
		for _, s := range re.Sub {
			walk(s, repeated)
		}
	}
	walk(tree, false)
}

func progSize(tree *syntax.Regexp) int {
	prog, err := syntax.Compile(tree.Simplify())
	if err != nil {
		return 1 << 30
	}
	return len(prog.Inst)
}

// addFast gives p a fast matcher when approximations make its program
// smaller. Caller holds l.mu; p compiled without error.
func (l *Library) addFast(p *Pattern) {
	if strings.Contains(p.expanded, internalPrefix) {
		return
	}
	strict := make(map[int]bool)
	fe := &fastExpansion{l: l, approx: p.approx, marked: true, strict: strict}
	_, capNames, tree, err := fe.parse(p.source)
	if err != nil || len(fe.occ) == 0 {
		return
	}
	eachInternal(tree, capNames, func(k int, g *syntax.Regexp, repeated bool) {
		if repeated || !g.Sub[0].Equal(fe.occ[k].defTree) {
			strict[k] = true
		}
	})
	fe.marked = false
	var tr string
	for stable := false; !stable; {
		// Keeping an occurrence strict does not change how the others
		// read (flags are scoped to the group around each reference), so
		// this ends after a second pass at most.
		stable = true
		if tr, capNames, tree, err = fe.parse(p.source); err != nil {
			return
		}
		eachInternal(tree, capNames, func(k int, g *syntax.Regexp, repeated bool) {
			if repeated || !g.Sub[0].Equal(fe.occ[k].reTree) {
				strict[k] = true
				stable = false
			}
		})
	}
	if len(strict) == len(fe.occ) {
		return
	}
	strictTree, err := syntax.Parse(p.expanded, syntax.Perl)
	if err != nil || progSize(tree) >= progSize(strictTree) {
		return
	}
	names := append([]string(nil), p.names...)
	m, err := compileMatcher(tr, capNames, &names, func(n string) bool { return !strings.HasPrefix(n, internalPrefix) })
	if err != nil || len(names) != len(p.names) {
		return
	}
	m.addWalker(tr)
	f := &fastMatcher{matcher: m}
	for idx, sub := range m.re.SubexpNames() {
		n, err := strconv.Atoi(strings.TrimPrefix(sub, "_"))
		if sub == "" || err != nil {
			continue
		}
		if k, ok := internalIndex(capNames[n]); ok {
			ap := fe.occ[k]
			ap.once.Do(ap.compileVerifiers)
			f.checks = append(f.checks, approxCheck{group: idx, ap: ap})
		}
	}
	p.fast = f
}

// fastMatcher is the approximated expression of a pattern.
type fastMatcher struct {
	matcher
	checks []approxCheck
}

type approxCheck struct {
	group int // submatch index of an internal group
	ap    *approx
}

// find returns the fast match of s and whether every approximated token
// in it is accepted by its definition.
func (f *fastMatcher) find(s string) ([]int, bool) {
	loc := f.matcher.find(s)
	if loc == nil {
		return nil, false
	}
	for _, c := range f.checks {
		if a := loc[2*c.group]; a >= 0 && !c.ap.accepts(s, a, loc[2*c.group+1]) {
			return loc, false
		}
	}
	return loc, true
}
