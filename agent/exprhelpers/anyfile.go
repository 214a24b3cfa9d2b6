package exprhelpers

import (
	"regexp"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/rampart-ips/rampart/agent/event"
)

// This file serves the rewritten form of hub predicates such as
//
//	any(File("log4j2_cve_2021_44228.txt"), {Upper(evt.Meta.http_path) contains Upper(#)})
//
// which expr runs as a loop over the file calling the predicate per line.
// The rewrite (see optimize.go) evaluates the #-free side once and asks an
// index built per (file, line folding, operator) from the loaded lines.

// Operators of a rewritten predicate. The "line" variants have the file
// line on the left: `# contains X` is opLineContains.
const (
	opEqual = iota
	opContains
	opStartsWith
	opEndsWith
	opMatches
	opLineContains
	opLineStartsWith
	opLineEndsWith
)

// lineFold is what the predicate compares of each line: # itself,
// Upper(#), Lower(#) or JsonExtract(#, key).
type lineFold struct {
	kind int
	key  string // foldJSON's target
}

const (
	foldNone = iota
	foldUpper
	foldLower
	foldJSON
)

func (f lineFold) apply(l string) string {
	switch f.kind {
	case foldUpper:
		return Upper(l)
	case foldLower:
		return Lower(l)
	case foldJSON:
		return JsonExtract(l, f.key)
	}
	return l
}

// fileSite is one rewritten any()/none() call in a compiled program. It
// remembers the index it last used, tagged with the snapshot it was built
// from: a Load swaps the snapshot, so the next call rebuilds.
type fileSite struct {
	h      *Helpers
	key    indexKey
	negate bool // none() rather than any()
	cur    atomic.Pointer[siteIndex]
}

type siteIndex struct {
	snap *snapshot
	idx  *lineIndex
}

// indexKey names a line index within a snapshot.
type indexKey struct {
	file string
	fold lineFold
	op   int
}

// lineIndex answers "does some line satisfy op against x" for one file.
type lineIndex struct {
	op    int
	raw   []string            // the file's lines
	lines []string            // folded lines, file order
	set   map[string]struct{} // opEqual
	empty bool                // some line is "" (contained in everything)
	// opStartsWith, opEndsWith: the distinct non-empty lines by their
	// first (last) byte, which x must start (end) with too; a
	// sensitive-files list has lines of a score of lengths, each a map
	// lookup otherwise.
	byEdge *[256][]string
	// opContains: the lines as a literal set, to scan x once.
	lits *litSet
	// opMatches: compiled lines; invalid patterns are dropped, as the
	// matches operator treats them as never matching.
	res []*regexp.Regexp
}

// match evaluates the rewritten predicate for x.
func (s *fileSite) match(x string) bool {
	return s.index().has(x) != s.negate
}

func (s *fileSite) index() *lineIndex {
	snap := s.h.state.Load()
	if c := s.cur.Load(); c != nil && c.snap == snap {
		return c.idx
	}
	idx := snap.lineIndex(s.key)
	s.cur.Store(&siteIndex{snap: snap, idx: idx})
	return idx
}

// lineIndex returns the snapshot's index for k, building it on first use.
// Sites of several programs on the same file share it.
func (s *snapshot) lineIndex(k indexKey) *lineIndex {
	if v, ok := s.indexes.Load(k); ok {
		return v.(*lineIndex)
	}
	v, _ := s.indexes.LoadOrStore(k, buildLineIndex(s.strings[k.file], k.fold, k.op))
	return v.(*lineIndex)
}

func buildLineIndex(raw []string, fold lineFold, op int) *lineIndex {
	idx := &lineIndex{op: op, raw: raw, lines: make([]string, len(raw))}
	for i, l := range raw {
		idx.lines[i] = fold.apply(l)
	}
	switch op {
	case opEqual:
		idx.set = make(map[string]struct{}, len(idx.lines))
		for _, l := range idx.lines {
			idx.set[l] = struct{}{}
		}
	case opStartsWith, opEndsWith:
		idx.byEdge = new([256][]string)
		for _, l := range idx.lines {
			if l == "" {
				idx.empty = true
				continue
			}
			b := l[0]
			if op == opEndsWith {
				b = l[len(l)-1]
			}
			if !slices.Contains(idx.byEdge[b], l) {
				idx.byEdge[b] = append(idx.byEdge[b], l)
			}
		}
	case opContains:
		idx.empty = slices.Contains(idx.lines, "")
		idx.lits = newLitSet(idx.lines)
	case opMatches:
		for _, l := range idx.lines {
			if re, err := regexp.Compile(l); err == nil {
				idx.res = append(idx.res, re)
			}
		}
	}
	return idx
}

func (idx *lineIndex) has(x string) bool {
	return idx.test(x, -1)
}

// hasOf is has(x), x evaluated on e: for Upper(y) or Lower(y) and a
// contains index, an ASCII y is scanned folding, unless the frame holds
// x already (the user agent and referer are only upper-cased for
// apache_log4j2's sites).
func (idx *lineIndex) hasOf(x strVal, e *event.Event, fr *Frame) bool {
	if idx.op != opContains || x.fold == nil || idx.empty {
		return idx.has(x.fn(e, fr))
	}
	if s, ok := x.peek(fr); ok {
		return idx.has(s)
	}
	y := x.arg(e, fr)
	if !isASCII(y) {
		return idx.has(x.fn(e, fr))
	}
	return idx.lits.findFold(y, x.fold, func(int32, int) bool { return true })
}

// test reports whether line i satisfies op against x, or with i < 0
// whether some line does.
func (idx *lineIndex) test(x string, i int) bool {
	if i >= 0 {
		l := idx.lines[i]
		switch idx.op {
		case opEqual:
			return x == l
		case opContains:
			return strings.Contains(x, l)
		case opStartsWith:
			return strings.HasPrefix(x, l)
		case opEndsWith:
			return strings.HasSuffix(x, l)
		case opLineContains:
			return strings.Contains(l, x)
		case opLineStartsWith:
			return strings.HasPrefix(l, x)
		case opLineEndsWith:
			return strings.HasSuffix(l, x)
		}
		panic("exprhelpers: line test of an unsupported operator")
	}
	switch idx.op {
	case opEqual:
		_, ok := idx.set[x]
		return ok
	case opStartsWith:
		if idx.empty {
			return true
		}
		if x != "" {
			for _, l := range idx.byEdge[x[0]] {
				if strings.HasPrefix(x, l) {
					return true
				}
			}
		}
	case opEndsWith:
		if idx.empty {
			return true
		}
		if x != "" {
			for _, l := range idx.byEdge[x[len(x)-1]] {
				if strings.HasSuffix(x, l) {
					return true
				}
			}
		}
	case opContains:
		return idx.empty || idx.lits.find(x, func(int32, int) bool { return true })
	case opMatches:
		for _, re := range idx.res {
			if re.MatchString(x) {
				return true
			}
		}
	case opLineContains:
		for _, l := range idx.lines {
			if strings.Contains(l, x) {
				return true
			}
		}
	case opLineStartsWith:
		for _, l := range idx.lines {
			if strings.HasPrefix(l, x) {
				return true
			}
		}
	case opLineEndsWith:
		for _, l := range idx.lines {
			if strings.HasSuffix(l, x) {
				return true
			}
		}
	}
	return false
}

// filter returns the lines (raw, in file order) that satisfy op against
// x; nil if none, which is the usual answer.
func (idx *lineIndex) filter(x string) []string {
	if idx.op == opContains {
		// The literal scan finds the candidates; it may report a line
		// twice, so collect, then walk the lines in order.
		var hit []bool
		idx.lits.find(x, func(id int32, _ int) bool {
			if hit == nil {
				hit = make([]bool, len(idx.lines))
			}
			hit[id] = true
			return false
		})
		if hit == nil && !idx.empty {
			return nil
		}
		var out []string
		for i, l := range idx.lines {
			if l == "" || (hit != nil && hit[i]) {
				out = append(out, idx.raw[i])
			}
		}
		return out
	}
	var out []string
	for i := range idx.lines {
		if idx.test(x, i) {
			out = append(out, idx.raw[i])
		}
	}
	return out
}

// candidates serves the rewritten File() of an any() whose predicate can
// only hold for lines passing the site's test (see anyFilter).
func (s *fileSite) candidates(x string) []string {
	return s.index().filter(x)
}
