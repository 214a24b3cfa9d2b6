package grok

// A walker is a second implementation of regexp's FindStringSubmatchIndex
// for the expressions grok builds, several times cheaper on them than
// regexp's backtracker, which pays per rune and per instruction for its
// visited set (a bit per instruction and input byte, cleared on every
// call), its job stack and its rune decoding through an interface.
//
// Why it returns what regexp returns. Go's regexp promises leftmost-first
// submatches: the match starting earliest, and among those the one a
// backtracking matcher exploring alternatives in priority order finds
// first. The walker is that backtracking matcher, run on the same
// simplified syntax tree regexp compiles (syntax.Parse with syntax.Perl,
// then Simplify), with the priorities of regexp/syntax's compiler: an
// alternation tries its branches in order, x? x* x+ try one more x first
// (the non-greedy forms: one less), a concatenation runs left to right.
// It tries start offsets in increasing order, one per rune as regexp
// does, and decodes runes as regexp does (an invalid byte is U+FFFD, one
// byte wide). Captures are set on the way in and restored on the way
// back, so the first complete match found carries its own submatches.
// A literal rune matches as the compiler has it: itself and, under (?i),
// its SimpleFold orbit; U+FFFD also matches an invalid byte. regexp's
// visited set only prunes states already explored and failed, which
// cannot change the first match found, so the walker does without. What
// the walker does not mirror it refuses at compile time, leaving the
// expression to regexp: repetitions of something that can match empty
// (where the compiler's handling of empty iterations matters).
//
// Shortcuts, none of which changes which match is found first: each
// only skips attempts that would fail without setting anything.
//   - runs: a repetition of a one-rune expression ([^"]*, .*?, \d+) is one
//     step that tries its possible ends in priority order (longest first
//     when greedy, shortest first otherwise);
//   - first bytes: every node knows a superset of the bytes a match can
//     go on with from there (all of them where the rest can match
//     without consuming, assertions counted as holding); a start offset,
//     an alternative, a loop's body or exit, an end of a run whose byte is
//     not in that set is not tried;
//   - follow literals: where what comes after a run or a loop starts with
//     a literal, only ends the literal starts at are tried, found with
//     strings.Index (non-greedy, unbounded runs) or strings.LastIndex
//     (greedy runs of one-byte runes, where every offset is an end);
//   - required literals: text every match contains (literals outside
//     alternatives and optional parts, the two longest); a line without
//     one of them has no match.
//
// Without regexp's visited set, backtracking can take exponential time on
// hostile input; a walk gives up after a budget of steps proportional to
// the input and the caller falls back to regexp.

import (
	"encoding/binary"
	"errors"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

var errWalkUnsupported = errors.New("not supported by the walker")

type wkind uint8

const (
	wMatch  wkind = iota // the whole expression matched
	wLit                 // the bytes of lit
	wClass               // one rune of cls
	wRun                 // min to max (-1: no limit) runes of cls
	wAlt                 // the first of alts that leads to a match
	wLoop                // body (which ends back here) any number of times, then next
	wCaps                // submatch slots := position (group starts and ends in a row)
	wAssert              // an empty-width assertion
	wFail                // never matches
)

// wnode is one step; next is what follows it. Nodes are shared, and
// never modified once newWalker returns, so a walker is safe for
// concurrent use.
type wnode struct {
	kind   wkind
	greedy bool
	assert syntax.EmptyOp
	min    int
	max    int
	slots  []int
	// lit is a wLit's bytes; for a run or a loop, the literal what
	// follows it starts with ("" when it does not): only ends followed
	// by it can match
	lit  string
	cls  *runeClass
	alts []*wnode
	body *wnode
	next *wnode
	// first is the set of bytes a match can go on with from here (see
	// firstSets): an offset whose byte is not in it cannot go on here
	first *byteSet
}

// byteSet is a set of bytes.
type byteSet [4]uint64

func (b *byteSet) has(c byte) bool { return b[c>>6]&(1<<(c&63)) != 0 }
func (b *byteSet) add(c byte)      { b[c>>6] |= 1 << (c & 63) }
func (b *byteSet) union(o *byteSet) {
	for k := range b {
		b[k] |= o[k]
	}
}
func (b *byteSet) full() bool { return b[0]&b[1]&b[2]&b[3] == ^uint64(0) }

// at reports whether a match can go on at i of s, as far as the byte
// there tells (at the end of s it cannot tell).
func (b *byteSet) at(s string, i int) bool { return i >= len(s) || b.has(s[i]) }

// runeClass is a set of runes: a bitmap for ASCII, sorted pairs above.
type runeClass struct {
	ascii [2]uint64
	high  []rune // lo, hi pairs, sorted by lo
	// but, when not -1, is the only rune (ASCII) not in the class
	// ([^"], . without (?s)): a run of it ends at the next such byte
	but int
	// first is the bytes a rune of the class can start with, worked out
	// once while building the walker (classes are not shared between
	// walkers)
	first *byteSet
}

func newRuneClass(pairs []rune) *runeClass {
	c := &runeClass{but: -1}
	var high [][2]rune
	for k := 0; k+1 < len(pairs); k += 2 {
		lo, hi := pairs[k], pairs[k+1]
		for r := lo; r <= hi && r < utf8.RuneSelf; r++ {
			c.ascii[r>>6] |= 1 << (r & 63)
		}
		if hi >= utf8.RuneSelf {
			high = append(high, [2]rune{max(lo, utf8.RuneSelf), hi})
		}
	}
	// a case-folding orbit comes unsorted
	slices.SortFunc(high, func(a, b [2]rune) int { return int(a[0] - b[0]) })
	for _, h := range high {
		c.high = append(c.high, h[0], h[1])
	}
	if len(high) == 1 && high[0] == [2]rune{utf8.RuneSelf, unicode.MaxRune} {
		missing := -1
		for b := 0; b < utf8.RuneSelf; b++ {
			if !c.has(rune(b)) {
				if missing >= 0 {
					missing = -2
					break
				}
				missing = b
			}
		}
		if missing >= 0 {
			c.but = missing
		}
	}
	return c
}

func (c *runeClass) has(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 0 && c.ascii[r>>6]&(1<<(r&63)) != 0
	}
	for k := 0; k < len(c.high); k += 2 {
		if r < c.high[k] {
			return false
		}
		if r <= c.high[k+1] {
			return true
		}
	}
	return false
}

// hasByte reports whether a rune of c can start with byte b: an ASCII
// rune, or for a byte above, any rune above ASCII (U+FFFD included, which
// an invalid byte decodes to).
func (c *runeClass) hasByte(b byte) bool {
	if b < utf8.RuneSelf {
		return c.has(rune(b))
	}
	return len(c.high) > 0
}

// walker is an expression compiled for walking.
type walker struct {
	start    *wnode
	nsub     int       // submatch slots: 2 * (groups + 1)
	begin    bool      // starts with \A: only offset 0 can match
	required []string  // literals every match contains
	first    *byteSet  // bytes a match can start with (nil: any, or empty matches)
	scratch  sync.Pool // *walkScratch
}

// walkScratch is the room a search needs besides the submatches, kept
// between searches (a pool rather than one allocation per search).
type walkScratch struct {
	cap, trail, ends []int
}

// newWalker compiles a translated grok expression (regexp syntax), or
// fails when the walker would not find what regexp finds.
func newWalker(expr string) (*walker, error) {
	tree, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, err
	}
	// compiled from the tree as parsed: compile simplifies as it
	// goes, keeping counted repetitions of one rune as runs
	w := &walker{nsub: 2 * (tree.MaxCap() + 1)}
	c := &wcompiler{classes: map[string]*runeClass{}}
	if w.start, err = c.compile(tree, &wnode{kind: wMatch}); err != nil {
		return nil, err
	}
	tree = tree.Simplify()
	// longest first: the likeliest to be missing, and the first missing
	// one ends the search
	w.required = requiredLits(tree, nil)
	slices.SortFunc(w.required, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	// each costs a scan of the line: a few are enough
	w.required = slices.Compact(w.required)
	w.required = w.required[:min(len(w.required), 2)]
	w.begin = beginsWithText(tree)
	fs := firstSets{memo: map[*wnode]*byteSet{}}
	fs.fill(w.start)
	if set := fs.of(w.start); !set.full() {
		// every match consumes a first byte from set
		w.first = set
	}
	return w, nil
}

// wcompiler builds the nodes of one walker.
type wcompiler struct {
	classes map[string]*runeClass // one of each
}

// class returns the class equal to cls the walker already has, if any.
func (c *wcompiler) class(cls *runeClass) *runeClass {
	if cls == nil {
		return nil
	}
	key := make([]byte, 0, 16+4*len(cls.high))
	key = binary.LittleEndian.AppendUint64(key, cls.ascii[0])
	key = binary.LittleEndian.AppendUint64(key, cls.ascii[1])
	for _, r := range cls.high {
		key = binary.LittleEndian.AppendUint32(key, uint32(r))
	}
	if have := c.classes[string(key)]; have != nil {
		return have
	}
	c.classes[string(key)] = cls
	return cls
}

// compile returns the entry of re followed by next, matching as
// re.Simplify() compiled by regexp/syntax does. Simplify only rewrites
// repetitions: x{n,m} into n copies of x and m-n nested x? (x{n,} into
// n-1 copies and x+), and x** x++ x?? (same greediness) or a repeated
// empty match into the inner expression. Nested x? over one rune try
// the longest run first (non-greedy: the shortest), as a run does, so a
// counted repetition of one rune becomes a run; the others are compiled
// simplified, and star, plus and quest mirror Simplify's rewrites.
func (c *wcompiler) compile(re *syntax.Regexp, next *wnode) (*wnode, error) {
	switch re.Op {
	case syntax.OpNoMatch:
		return &wnode{kind: wFail}, nil
	case syntax.OpEmptyMatch:
		return next, nil
	case syntax.OpLiteral:
		// runes matching their bytes only make literals, the others
		// (case variants under (?i), U+FFFD) classes
		for k := len(re.Rune); k > 0; {
			j := k
			for j > 0 && plainRune(re.Rune[j-1], re.Flags) {
				j--
			}
			if j < k {
				next = &wnode{kind: wLit, lit: string(re.Rune[j:k]), next: next}
				k = j
				continue
			}
			next = &wnode{kind: wClass, cls: c.class(runeOrbit(re.Rune[k-1], re.Flags)), next: next}
			k--
		}
		return next, nil
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return &wnode{kind: wClass, cls: c.class(oneRune(re)), next: next}, nil
	case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return &wnode{kind: wAssert, assert: emptyOp(re.Op), next: next}, nil
	case syntax.OpCapture:
		closer := capsNode(2*re.Cap+1, next)
		body, err := c.compile(re.Sub[0], closer)
		if err != nil {
			return nil, err
		}
		return capsNode(2*re.Cap, body), nil
	case syntax.OpConcat:
		var err error
		for k := len(re.Sub) - 1; k >= 0; k-- {
			if next, err = c.compile(re.Sub[k], next); err != nil {
				return nil, err
			}
		}
		return next, nil
	case syntax.OpAlternate:
		n := &wnode{kind: wAlt}
		for _, sub := range re.Sub {
			a, err := c.compile(sub, next)
			if err != nil {
				return nil, err
			}
			n.alts = append(n.alts, a)
		}
		return n, nil
	case syntax.OpRepeat:
		if re.Min == 0 && re.Max == 0 {
			return next, nil
		}
		if cls := c.class(oneRune(re.Sub[0])); cls != nil && (re.Max < 0 || re.Max >= re.Min) {
			return &wnode{kind: wRun, cls: cls, greedy: re.Flags&syntax.NonGreedy == 0,
				min: re.Min, max: re.Max, next: next, lit: followLit(next)}, nil
		}
		return c.compile(re.Simplify(), next)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		greedy := re.Flags&syntax.NonGreedy == 0
		sub := re.Sub[0]
		if cls := c.class(oneRune(sub)); cls != nil {
			n := &wnode{kind: wRun, cls: cls, greedy: greedy, max: -1, next: next, lit: followLit(next)}
			switch re.Op {
			case syntax.OpPlus:
				n.min = 1
			case syntax.OpQuest:
				n.max = 1
			}
			return n, nil
		}
		// Simplify's simplify1
		switch ss := sub.Simplify(); {
		case ss.Op == syntax.OpEmptyMatch:
			return next, nil
		case ss.Op == re.Op && ss.Flags&syntax.NonGreedy == re.Flags&syntax.NonGreedy:
			return c.compile(sub, next)
		}
		if re.Op == syntax.OpQuest {
			// regexp compiles x? as a choice between x and skipping
			// it, x first unless non-greedy
			body, err := c.compile(sub, next)
			if err != nil {
				return nil, err
			}
			alts := []*wnode{body, next}
			if !greedy {
				alts[0], alts[1] = next, body
			}
			return &wnode{kind: wAlt, alts: alts}, nil
		}
		if minLen(sub) == 0 {
			// an iteration could match empty: regexp's compiler
			// handles those specially, don't guess
			return nil, errWalkUnsupported
		}
		loop := &wnode{kind: wLoop, greedy: greedy, next: next, lit: followLit(next)}
		body, err := c.compile(sub, loop)
		if err != nil {
			return nil, err
		}
		loop.body = body
		if re.Op == syntax.OpPlus {
			// x+ is x then x*, sharing x's code
			return body, nil
		}
		return loop, nil
	}
	return nil, errWalkUnsupported
}

// capsNode sets slot then goes on with next, in one step with next when
// next sets slots too.
func capsNode(slot int, next *wnode) *wnode {
	if next.kind == wCaps {
		return &wnode{kind: wCaps, slots: append([]int{slot}, next.slots...), next: next.next}
	}
	return &wnode{kind: wCaps, slots: []int{slot}, next: next}
}

// plainRune reports whether a literal rune r matches exactly its UTF-8
// bytes: no case folding that changes anything and not U+FFFD (which an
// invalid byte matches too).
func plainRune(r rune, flags syntax.Flags) bool {
	if r == utf8.RuneError || !utf8.ValidRune(r) {
		return false
	}
	return flags&syntax.FoldCase == 0 || unicode.SimpleFold(r) == r
}

// runeOrbit is the class a literal rune matches: regexp's compiler
// matches the rune and, under FoldCase, every rune of its SimpleFold
// orbit.
func runeOrbit(r rune, flags syntax.Flags) *runeClass {
	pairs := []rune{r, r}
	if flags&syntax.FoldCase != 0 {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			pairs = append(pairs, f, f)
		}
	}
	return newRuneClass(pairs)
}

// oneRune returns the runes re matches when it matches exactly one rune,
// or nil.
func oneRune(re *syntax.Regexp) *runeClass {
	switch re.Op {
	case syntax.OpCharClass:
		// regexp ignores FoldCase on a class: the parser has put the
		// folded runes in it
		return newRuneClass(re.Rune)
	case syntax.OpAnyChar:
		return newRuneClass([]rune{0, unicode.MaxRune})
	case syntax.OpAnyCharNotNL:
		return newRuneClass([]rune{0, '\n' - 1, '\n' + 1, unicode.MaxRune})
	case syntax.OpLiteral:
		if len(re.Rune) == 1 {
			return runeOrbit(re.Rune[0], re.Flags)
		}
	}
	return nil
}

func emptyOp(op syntax.Op) syntax.EmptyOp {
	switch op {
	case syntax.OpBeginLine:
		return syntax.EmptyBeginLine
	case syntax.OpEndLine:
		return syntax.EmptyEndLine
	case syntax.OpBeginText:
		return syntax.EmptyBeginText
	case syntax.OpEndText:
		return syntax.EmptyEndText
	case syntax.OpWordBoundary:
		return syntax.EmptyWordBoundary
	}
	return syntax.EmptyNoWordBoundary
}

// followLit is the literal that n starts with, looking through the
// group boundaries (which consume nothing).
func followLit(n *wnode) string {
	for n.kind == wCaps {
		n = n.next
	}
	if n.kind == wLit {
		return n.lit
	}
	return ""
}

// minLen is a lower bound of the length of re's matches (0 when unsure).
func minLen(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune)
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1
	case syntax.OpCapture, syntax.OpPlus:
		return minLen(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min * minLen(re.Sub[0])
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			n += minLen(s)
		}
		return n
	case syntax.OpAlternate:
		n := -1
		for _, s := range re.Sub {
			if m := minLen(s); n < 0 || m < n {
				n = m
			}
		}
		return max(n, 0)
	}
	return 0
}

// requiredLits appends the literals every match of re contains: those
// of the parts that must match once at least (not under an alternation,
// ? or *).
func requiredLits(re *syntax.Regexp, out []string) []string {
	switch re.Op {
	case syntax.OpLiteral:
		// each run of plain runes matches as is
		for k := 0; k < len(re.Rune); {
			j := k
			for j < len(re.Rune) && plainRune(re.Rune[j], re.Flags) {
				j++
			}
			if j > k {
				out = append(out, string(re.Rune[k:j]))
			}
			k = j + 1
		}
	case syntax.OpCapture, syntax.OpPlus:
		out = requiredLits(re.Sub[0], out)
	case syntax.OpRepeat:
		if re.Min > 0 {
			out = requiredLits(re.Sub[0], out)
		}
	case syntax.OpConcat:
		for _, s := range re.Sub {
			out = requiredLits(s, out)
		}
	}
	return out
}

// beginsWithText reports whether every match of re starts at offset 0.
func beginsWithText(re *syntax.Regexp) bool {
	for {
		switch re.Op {
		case syntax.OpBeginText:
			return true
		case syntax.OpCapture:
			re = re.Sub[0]
		case syntax.OpConcat:
			if len(re.Sub) == 0 {
				return false
			}
			re = re.Sub[0]
		default:
			return false
		}
	}
}

// firstSets computes, node by node, the bytes a match can go on with
// from there: a superset of the first bytes of every way the rest of
// the expression can match, all bytes when it can match without
// consuming (it reaches the end, or an assertion, which is passed over
// as if it held).
type firstSets struct {
	memo   map[*wnode]*byteSet
	done   map[*wnode]bool
	shared map[byteSet]*byteSet
}

func (fs *firstSets) of(n *wnode) *byteSet {
	if set, ok := fs.memo[n]; ok {
		if set == nil {
			// a cycle that consumes nothing: cannot be (loop bodies
			// consume) but stay safe
			var all byteSet
			for k := range all {
				all[k] = ^uint64(0)
			}
			return &all
		}
		return set
	}
	fs.memo[n] = nil
	set := new(byteSet)
	addClass := func(c *runeClass) {
		if c.first == nil {
			c.first = new(byteSet)
			for b := 0; b < 256; b++ {
				if c.hasByte(byte(b)) {
					c.first.add(byte(b))
				}
			}
		}
		set.union(c.first)
	}
	switch n.kind {
	case wMatch:
		for k := range set {
			set[k] = ^uint64(0)
		}
	case wFail:
	case wLit:
		set.add(n.lit[0])
	case wClass:
		addClass(n.cls)
	case wRun:
		addClass(n.cls)
		if n.min == 0 {
			set.union(fs.of(n.next))
		}
	case wAlt:
		for _, a := range n.alts {
			set.union(fs.of(a))
		}
	case wLoop:
		set.union(fs.of(n.body))
		set.union(fs.of(n.next))
	case wCaps, wAssert:
		set.union(fs.of(n.next))
	}
	fs.memo[n] = set
	return set
}

// fill sets first on every node reachable from n, one set shared by
// the nodes that have the same.
func (fs *firstSets) fill(n *wnode) {
	if fs.done == nil {
		fs.done = map[*wnode]bool{}
		fs.shared = map[byteSet]*byteSet{}
	}
	for n != nil && !fs.done[n] {
		fs.done[n] = true
		set := *fs.of(n)
		if fs.shared[set] == nil {
			fs.shared[set] = &set
		}
		n.first = fs.shared[set]
		for _, a := range n.alts {
			fs.fill(a)
		}
		if n.body != nil {
			fs.fill(n.body)
		}
		n = n.next
	}
}

// walk is the state of one search.
type walk struct {
	s     string
	cap   []int
	trail []int // slot, previous value: the captures set since the start
	ends  []int // rune offsets of greedy runs of wide runes
	steps int   // left before giving up
	over  bool  // gave up
}

// find returns regexp's FindStringSubmatchIndex(s), and false when it gave
// up (the caller must then ask regexp).
func (w *walker) find(s string) ([]int, bool) {
	if w.lacks(s) {
		return nil, true
	}
	sc, _ := w.scratch.Get().(*walkScratch)
	if sc == nil {
		sc = &walkScratch{cap: make([]int, w.nsub)}
	}
	matched, ok := w.search(s, sc.cap, sc)
	var loc []int
	if matched {
		// the submatches are the caller's to keep; a search that
		// finds nothing (most, for a parser trying its patterns in
		// turn) allocates nothing
		loc = slices.Clone(sc.cap)
	}
	w.scratch.Put(sc)
	return loc, ok
}

// matches is regexp's MatchString(s) for an expression without groups,
// and false when it gave up.
func (w *walker) matches(s string) (matched, ok bool) {
	if w.nsub != 2 {
		panic("grok: walker.matches on an expression with groups")
	}
	if w.lacks(s) {
		return false, true
	}
	return w.search(s, nil, nil)
}

// lacks reports whether s lacks a literal every match contains.
func (w *walker) lacks(s string) bool {
	for _, lit := range w.required {
		if !strings.Contains(s, lit) {
			return true
		}
	}
	return false
}

// search looks for the leftmost-first match of s, its submatches into loc
// (w.nsub long, or nil for an expression without groups), with sc's room
// (nil: none yet, for an expression without groups).
func (w *walker) search(s string, loc []int, sc *walkScratch) (matched, ok bool) {
	st := walk{s: s, cap: loc, steps: 64*len(s) + 1024}
	if sc != nil {
		st.trail, st.ends = sc.trail[:0], sc.ends[:0]
	}
	matched, ok = st.search(w, s)
	if sc != nil {
		// keep what the slices grew to
		sc.trail, sc.ends = st.trail[:0], st.ends[:0]
	}
	return matched, ok
}

func (st *walk) search(w *walker, s string) (matched, ok bool) {
	for k := range st.cap {
		st.cap[k] = -1
	}
	for i := 0; i <= len(s); {
		if w.first == nil || i < len(s) && w.first.has(s[i]) {
			if st.cap != nil {
				st.cap[0] = i
			}
			if st.m(w.start, i) {
				return true, true
			}
			if st.over {
				return false, false
			}
			st.undo(0)
		}
		if w.begin || i == len(s) {
			break
		}
		i += runeWidth(s, i)
	}
	return false, true
}

// hasWide reports whether s has a byte above ASCII, 8 bytes at a time.
func hasWide(s string) bool {
	for ; len(s) >= 8; s = s[8:] {
		v := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		if v&0x8080808080808080 != 0 {
			return true
		}
	}
	for k := 0; k < len(s); k++ {
		if s[k] >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

func runeWidth(s string, i int) int {
	if s[i] < utf8.RuneSelf {
		return 1
	}
	_, n := utf8.DecodeRuneInString(s[i:])
	return n
}

// step returns the width of the rune at i when c has it, else 0.
func (c *runeClass) step(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	if b := s[i]; b < utf8.RuneSelf {
		if c.ascii[b>>6]&(1<<(b&63)) != 0 {
			return 1
		}
		return 0
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if c.has(r) {
		return w
	}
	return 0
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// holds evaluates an assertion at i as regexp does: it looks at the rune
// on each side, and only ASCII runes can be word characters or '\n', so
// the bytes on each side tell.
func (st *walk) holds(op syntax.EmptyOp, i int) bool {
	s := st.s
	switch op {
	case syntax.EmptyBeginText:
		return i == 0
	case syntax.EmptyEndText:
		return i == len(s)
	case syntax.EmptyBeginLine:
		return i == 0 || s[i-1] == '\n'
	case syntax.EmptyEndLine:
		return i == len(s) || s[i] == '\n'
	}
	before := i > 0 && isWordByte(s[i-1])
	after := i < len(s) && isWordByte(s[i])
	if op == syntax.EmptyWordBoundary {
		return before != after
	}
	return before == after
}

// undo restores the captures set since the trail was mark long.
func (st *walk) undo(mark int) {
	for k := len(st.trail) - 2; k >= mark; k -= 2 {
		st.cap[st.trail[k]] = st.trail[k+1]
	}
	st.trail = st.trail[:mark]
}

// m matches n and what follows it at i. On failure the caller restores
// the captures (undo): every choice point does before its next choice.
func (st *walk) m(n *wnode, i int) bool {
	s := st.s
	for {
		if st.steps--; st.steps < 0 {
			st.over = true
			return false
		}
		switch n.kind {
		case wMatch:
			if st.cap != nil {
				st.cap[1] = i
			}
			return true
		case wFail:
			return false
		case wLit:
			if len(s)-i < len(n.lit) || s[i:i+len(n.lit)] != n.lit {
				return false
			}
			i += len(n.lit)
		case wClass:
			w := n.cls.step(s, i)
			if w == 0 {
				return false
			}
			i += w
		case wAssert:
			if !st.holds(n.assert, i) {
				return false
			}
		case wCaps:
			for _, slot := range n.slots {
				st.trail = append(st.trail, slot, st.cap[slot])
				st.cap[slot] = i
			}
		case wAlt:
			mark, last := len(st.trail), len(n.alts)-1
			for _, a := range n.alts[:last] {
				if !a.first.at(s, i) {
					continue
				}
				if st.m(a, i) {
					return true
				}
				if st.over {
					return false
				}
				st.undo(mark)
			}
			if !n.alts[last].first.at(s, i) {
				return false
			}
			n = n.alts[last]
			continue
		case wLoop:
			// the body consumes: no endless loop
			first, second := n.body, n.next
			firstOK, secondOK := n.body.first.at(s, i), st.follows(n, i)
			if !n.greedy {
				first, second = second, first
				firstOK, secondOK = secondOK, firstOK
			}
			if firstOK {
				mark := len(st.trail)
				if st.m(first, i) {
					return true
				}
				if st.over {
					return false
				}
				st.undo(mark)
			}
			if !secondOK {
				return false
			}
			n = second
			continue
		case wRun:
			return st.run(n, i)
		}
		n = n.next
	}
}

// follows reports whether what follows run or loop n can match at i as
// far as its first byte and first literal tell.
func (st *walk) follows(n *wnode, i int) bool {
	return n.next.first.at(st.s, i) && (n.lit == "" || strings.HasPrefix(st.s[i:], n.lit))
}

// end tries what follows run n from e; false also when over.
func (st *walk) end(n *wnode, e, mark int) bool {
	if !st.follows(n, e) {
		return false
	}
	if st.m(n.next, e) {
		return true
	}
	st.undo(mark)
	return false
}

// run tries the ends of a run in priority order.
func (st *walk) run(n *wnode, i int) bool {
	s, cls, mark := st.s, n.cls, len(st.trail)
	if !n.greedy {
		for count, e := 0, i; ; {
			if count >= n.min && st.end(n, e, mark) {
				return true
			}
			if st.over || count == n.max {
				return false
			}
			w := cls.step(s, e)
			if w == 0 {
				return false
			}
			e += w
			count++
			if count < n.min || n.max >= 0 || n.lit == "" {
				continue
			}
			// the count no longer matters and only an end the follow
			// literal starts at can match: go to the next one, as long
			// as the run reaches it
			k := strings.Index(s[e:], n.lit)
			if k < 0 {
				return false
			}
			stop := e + k
			if cls.but >= 0 {
				// the literal starts with ASCII or a leading byte,
				// so stop is where a rune starts
				if strings.IndexByte(s[e:stop], byte(cls.but)) >= 0 {
					return false
				}
				e = stop
			}
			for e < stop {
				w := cls.step(s, e)
				if w == 0 {
					return false
				}
				e += w
			}
		}
	}
	// greedy: find the longest run; while every rune is one byte wide,
	// its ends are every offset down to i+min
	e, count, wide := i, 0, false
	if cls.but >= 0 && n.max < 0 {
		// every rune but one byte: the run ends there
		if k := strings.IndexByte(s[i:], byte(cls.but)); k >= 0 {
			e = i + k
		} else {
			e = len(s)
		}
		count = e - i
		if hasWide(s[i:e]) {
			wide = true
			count = utf8.RuneCountInString(s[i:e])
		}
	} else {
		for n.max < 0 || count < n.max {
			if e < len(s) && s[e] < utf8.RuneSelf {
				// ASCII, inline
				if b := s[e]; cls.ascii[b>>6]&(1<<(b&63)) == 0 {
					break
				}
				e++
				count++
				continue
			}
			w := cls.step(s, e)
			if w == 0 {
				break
			}
			wide = wide || w > 1
			e += w
			count++
		}
	}
	if count < n.min {
		return false
	}
	if !wide {
		// every offset from i+min to e is an end
		lo := i + n.min
		for ; e >= lo; e-- {
			if n.lit != "" {
				// only an end the follow literal starts at can match
				k := strings.LastIndex(s[lo:min(e+len(n.lit), len(s))], n.lit)
				if k < 0 {
					return false
				}
				e = lo + k
			}
			if st.end(n, e, mark) {
				return true
			}
			if st.over {
				return false
			}
		}
		return false
	}
	// the longest first; then the others, which need where each rune
	// starts: ends[base+k] for rune k
	if st.end(n, e, mark) {
		return true
	}
	if st.over || count == n.min {
		return false
	}
	base := len(st.ends)
	for k, j := 0, i; k < count; k++ {
		st.ends = append(st.ends, j)
		j += cls.step(s, j)
	}
	found := false
	for k := count - 1; k >= n.min; k-- {
		end := e
		if k < count {
			end = st.ends[base+k]
		}
		if st.end(n, end, mark) {
			found = true
			break
		}
		if st.over {
			break
		}
	}
	st.ends = st.ends[:base]
	return found
}
