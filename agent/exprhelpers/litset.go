package exprhelpers

import (
	"math/bits"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// litSet finds which of a set of literal strings occur in a text in one
// pass. Literals are indexed by their first two bytes (one byte for
// single-byte literals) behind bitmaps, so positions where no literal can
// start cost a couple of bit tests.
type litSet struct {
	lits     []string
	oneMask  [4]uint64 // first bytes of the single-byte literals
	one      [256][]int32
	pairMask [1 << 10]uint64 // first two bytes of the longer literals
	// pairRank[w] counts the pairs of the words of pairMask before w: a
	// pair's rank indexes pairs, the literals starting with it.
	pairRank [1 << 10]uint16
	pairs    [][]int32
	// pairShort marks the pairs that are a literal; for the others the
	// third byte must pass triMask (a hash of the first three bytes of
	// the longer literals): hundreds of user-agent words share most
	// letter pairs.
	pairShort [1 << 10]uint64
	triMask   [1 << (triBits - 6)]uint64
}

const triBits = 15

func triHash(a, b, c byte) uint32 {
	return (uint32(a)<<16 | uint32(b)<<8 | uint32(c)) * 0x9e3779b1 >> (32 - triBits)
}

// hasPair tells whether some literal starts with the pair k.
func (l *litSet) hasPair(k uint16) bool {
	return l.pairMask[k>>6]&(1<<(k&63)) != 0
}

// candidates returns the literals that may start with the pair k (which
// hasPair) and then c2 (when has2), nil when none can.
func (l *litSet) candidates(k uint16, c2 byte, has2 bool) []int32 {
	w, bit := k>>6, uint64(1)<<(k&63)
	if l.pairShort[w]&bit == 0 {
		if !has2 {
			return nil
		}
		h := triHash(byte(k>>8), byte(k), c2)
		if l.triMask[h>>6]&(1<<(h&63)) == 0 {
			return nil
		}
	}
	return l.pairs[int(l.pairRank[w])+bits.OnesCount64(l.pairMask[w]&(bit-1))]
}

// newLitSet indexes non-empty literals; ids are positions in lits.
func newLitSet(lits []string) *litSet {
	l := &litSet{lits: lits}
	byPair := map[uint16][]int32{}
	for i, s := range lits {
		switch len(s) {
		case 0:
			continue
		case 1:
			b := s[0]
			l.oneMask[b>>6] |= 1 << (b & 63)
			l.one[b] = append(l.one[b], int32(i))
		default:
			k := uint16(s[0])<<8 | uint16(s[1])
			l.pairMask[k>>6] |= 1 << (k & 63)
			byPair[k] = append(byPair[k], int32(i))
			if len(s) == 2 {
				l.pairShort[k>>6] |= 1 << (k & 63)
			} else {
				h := triHash(s[0], s[1], s[2])
				l.triMask[h>>6] |= 1 << (h & 63)
			}
		}
	}
	n := 0
	for w, m := range l.pairMask {
		l.pairRank[w] = uint16(n)
		for m != 0 {
			k := uint16(w<<6 | bits.TrailingZeros64(m))
			l.pairs = append(l.pairs, byPair[k])
			m &= m - 1
			n++
		}
	}
	return l
}

// find calls found with the id and position of each literal occurring in
// s, by increasing position (an id may come more than once), until it
// returns true, and reports whether it did.
func (l *litSet) find(s string, found func(id int32, pos int) bool) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if l.oneMask[b>>6]&(1<<(b&63)) != 0 {
			for _, id := range l.one[b] {
				if found(id, i) {
					return true
				}
			}
		}
		if i+1 == len(s) {
			break
		}
		k := uint16(b)<<8 | uint16(s[i+1])
		if !l.hasPair(k) {
			continue
		}
		var c2 byte
		if i+2 < len(s) {
			c2 = s[i+2]
		}
		for _, id := range l.candidates(k, c2, i+2 < len(s)) {
			if strings.HasPrefix(s[i:], l.lits[id]) && found(id, i) {
				return true
			}
		}
	}
	return false
}

// Byte maps of findFold: ASCII letters to upper or lower case.
var (
	upperASCII = foldTable('a')
	lowerASCII = foldTable('A')
)

func foldTable(from byte) *[256]byte {
	var t [256]byte
	for i := range t {
		c := byte(i)
		if c-from < 26 {
			c ^= 0x20
		}
		t[i] = c
	}
	return &t
}

// findFold is find on s with each byte mapped by fold: for an ASCII s and
// upperASCII (lowerASCII), find(Upper(s)) (Lower), without making it.
func (l *litSet) findFold(s string, fold *[256]byte, found func(id int32, pos int) bool) bool {
	for i := 0; i < len(s); i++ {
		b := fold[s[i]]
		if l.oneMask[b>>6]&(1<<(b&63)) != 0 {
			for _, id := range l.one[b] {
				if found(id, i) {
					return true
				}
			}
		}
		if i+1 == len(s) {
			break
		}
		k := uint16(b)<<8 | uint16(fold[s[i+1]])
		if !l.hasPair(k) {
			continue
		}
		var c2 byte
		if i+2 < len(s) {
			c2 = fold[s[i+2]]
		}
		for _, id := range l.candidates(k, c2, i+2 < len(s)) {
			if hasPrefixFold(s[i:], l.lits[id], fold) && found(id, i) {
				return true
			}
		}
	}
	return false
}

// hasPrefixFold tells whether s, mapped by fold, starts with p.
func hasPrefixFold(s, p string, fold *[256]byte) bool {
	if len(s) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if fold[s[i]] != p[i] {
			return false
		}
	}
	return true
}

// isASCII tells whether s is all ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// regexpSet is a regexp data file prepared for RegexpInFile: most hub
// patterns (\bNikto\b...) contain a literal that every match contains,
// so only the patterns whose literal occurs in the input are run, plus
// those without such a literal. The result is the same as trying every
// pattern, hundreds of times faster on a bad-user-agent list.
type regexpSet struct {
	all    []*regexp.Regexp // file order
	lits   *litSet
	byLit  [][]int32 // literal id -> indexes in all
	always []int32   // patterns without a required literal
}

func newRegexpSet(res []*regexp.Regexp) *regexpSet {
	rs := &regexpSet{all: res}
	ids := map[string]int32{}
	var lits []string
	for i, re := range res {
		lit := ""
		if t, err := syntax.Parse(re.String(), syntax.Perl); err == nil {
			lit = requiredLiteral(t)
		}
		if lit == "" {
			rs.always = append(rs.always, int32(i))
			continue
		}
		id, ok := ids[lit]
		if !ok {
			id = int32(len(lits))
			ids[lit] = id
			lits = append(lits, lit)
			rs.byLit = append(rs.byLit, nil)
		}
		rs.byLit[id] = append(rs.byLit[id], int32(i))
	}
	rs.lits = newLitSet(lits)
	return rs
}

// requiredLiteral returns a string that every match of t contains, "" if
// it finds none. Case-folded literals do not count, nor literals holding
// U+FFFD, which the matcher also sees for invalid UTF-8 bytes.
func requiredLiteral(t *syntax.Regexp) string {
	switch t.Op {
	case syntax.OpLiteral:
		if t.Flags&syntax.FoldCase != 0 {
			return ""
		}
		s := string(t.Rune)
		if strings.ContainsRune(s, utf8.RuneError) {
			return ""
		}
		return s
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiteral(t.Sub[0])
	case syntax.OpRepeat:
		if t.Min >= 1 {
			return requiredLiteral(t.Sub[0])
		}
	case syntax.OpConcat:
		best := ""
		for _, sub := range t.Sub {
			if l := requiredLiteral(sub); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}

// match reports whether some pattern matches s.
func (rs *regexpSet) match(s string) bool {
	for _, i := range rs.always {
		if rs.all[i].MatchString(s) {
			return true
		}
	}
	// A literal may occur many times: run its patterns once.
	var small [16]uint64
	tried := small[:]
	if n := (len(rs.byLit) + 63) / 64; n > len(small) {
		tried = make([]uint64, n)
	}
	return rs.lits.find(s, func(id int32, _ int) bool {
		if tried[id>>6]&(1<<(id&63)) != 0 {
			return false
		}
		tried[id>>6] |= 1 << (id & 63)
		for _, i := range rs.byLit[id] {
			if rs.all[i].MatchString(s) {
				return true
			}
		}
		return false
	})
}
