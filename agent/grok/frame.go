package grok

import (
	"regexp/syntax"
	"strings"
	"unicode"
)

// maxFrame bounds a frame's text: the literal nearest the capture is what
// tells one place of a line from another.
const maxFrame = 32

// Frame is the literal text a pattern requires right before (Before) and
// right after (After) a capture, as far as a fixed string goes: for
// "from %{IP:ip} port %{INT}" the frame of ip is "from " and " port ".
// Text the expression does not fix (a repetition, an alternative, an
// optional group, the start of an unanchored pattern) ends it, so either
// side may be empty. At most maxFrame bytes are kept on each side, those
// nearest the capture.
type Frame struct {
	Before, After string
}

// Frame returns the frame of capture i (an index into Names). A name
// captured at several places has a frame only when all of them agree.
func (p *Pattern) Frame(i int) Frame {
	if i < 0 || i >= len(p.frames) {
		return Frame{}
	}
	return p.frames[i]
}

// computeFrames fills p.frames from the strict expression's tree.
func (p *Pattern) computeFrames(tree *syntax.Regexp) {
	p.frames = make([]Frame, len(p.names))
	byCap := map[int]Frame{}
	var walk func(re *syntax.Regexp, path []*syntax.Regexp)
	walk = func(re *syntax.Regexp, path []*syntax.Regexp) {
		if re.Op == syntax.OpCapture {
			byCap[re.Cap] = captureFrame(re, path)
		}
		path = append(path, re)
		for _, s := range re.Sub {
			walk(s, path)
		}
	}
	walk(tree, nil)
	for i, groups := range p.groups {
		for k, g := range groups {
			f := byCap[g]
			if k > 0 && f != p.frames[i] {
				p.frames[i] = Frame{}
				break
			}
			p.frames[i] = f
		}
	}
}

// captureFrame walks up from capture c (path holds its ancestors, root
// first) collecting the fixed text on each side.
func captureFrame(c *syntax.Regexp, path []*syntax.Regexp) Frame {
	var before, after string
	beforeDone, afterDone := false, false
	cur := c
	for i := len(path) - 1; i >= 0 && !(beforeDone && afterDone); i-- {
		parent := path[i]
		switch parent.Op {
		case syntax.OpCapture:
			// an enclosing capture adds no text
		case syntax.OpConcat:
			k := 0
			for k < len(parent.Sub) && parent.Sub[k] != cur {
				k++
			}
			for j := k - 1; j >= 0 && !beforeDone; j-- {
				s, full := literalEdge(parent.Sub[j], false)
				before = s + before
				beforeDone = !full
			}
			for j := k + 1; j < len(parent.Sub) && !afterDone; j++ {
				s, full := literalEdge(parent.Sub[j], true)
				after += s
				afterDone = !full
			}
		default:
			// an alternative or a repetition: what lies beyond varies
			beforeDone, afterDone = true, true
		}
		cur = parent
	}
	if len(before) > maxFrame {
		before = before[len(before)-maxFrame:]
	}
	if len(after) > maxFrame {
		after = after[:maxFrame]
	}
	return Frame{Before: before, After: after}
}

// literalEdge returns the fixed text re starts with (prefix) or ends with
// (!prefix), and whether that text is all of re.
func literalEdge(re *syntax.Regexp, prefix bool) (string, bool) {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return "", true
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 && hasFoldable(re.Rune) {
			return "", false
		}
		return string(re.Rune), true
	case syntax.OpCapture:
		return literalEdge(re.Sub[0], prefix)
	case syntax.OpConcat:
		var b strings.Builder
		var parts []string
		subs := re.Sub
		for k := range subs {
			j := k
			if !prefix {
				j = len(subs) - 1 - k
			}
			s, full := literalEdge(subs[j], prefix)
			parts = append(parts, s)
			if !full {
				return joinEdge(&b, parts, prefix), false
			}
		}
		return joinEdge(&b, parts, prefix), true
	}
	return "", false
}

// joinEdge joins the parts literalEdge collected, in text order.
func joinEdge(b *strings.Builder, parts []string, prefix bool) string {
	for k := range parts {
		j := k
		if !prefix {
			j = len(parts) - 1 - k
		}
		b.WriteString(parts[j])
	}
	return b.String()
}

// hasFoldable reports whether case folding changes what runes match.
func hasFoldable(rs []rune) bool {
	for _, r := range rs {
		if unicode.SimpleFold(r) != r {
			return true
		}
	}
	return false
}
