package grok

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// translate rewrites a fully expanded PCRE-flavoured expression into RE2
// syntax and renames every named group to (?P<_N>), returning the original
// names indexed by N (names may repeat and need not be valid RE2 names).
//
// Translations (safe: RE2 has no backtracking, so atomicity and
// possessiveness only ever rejected matches that the RE2 version accepts):
//   - (?>x)        -> (?:x)            atomic group
//   - x*+ x++ x?+ x{n}+ -> greedy x* x+ x? x{n}
//   - \Z           -> \z
//   - (?<n>x), (?'n'x), (?P<n>x) -> named capture
//   - (?#...)      -> removed (comment)
//
// Rejected with an error: lookahead/lookbehind, backreferences, recursion,
// branch reset, conditionals.
func translate(src string) (string, []string, error) {
	var b strings.Builder
	b.Grow(len(src) + 16)
	var names []string
	lastQuant := false // previous token was a quantifier
	n := len(src)
	for i := 0; i < n; {
		c := src[i]
		switch c {
		case '\\':
			j, out, err := escape(src, i)
			if err != nil {
				return "", nil, err
			}
			b.WriteString(out)
			i = j
			lastQuant = false
		case '[':
			j, err := charClass(src, i)
			if err != nil {
				return "", nil, err
			}
			b.WriteString(src[i:j])
			i = j
			lastQuant = false
		case '(':
			lastQuant = false
			if i+1 >= n || src[i+1] != '?' {
				b.WriteByte('(')
				i++
				continue
			}
			rest := src[i+2:]
			switch {
			case strings.HasPrefix(rest, "#"):
				k := strings.IndexByte(rest, ')')
				if k < 0 {
					return "", nil, posErrorf(i, "unterminated comment (?#")
				}
				i += 2 + k + 1
			case strings.HasPrefix(rest, ">"):
				b.WriteString("(?:")
				i += 3
			case strings.HasPrefix(rest, "="), strings.HasPrefix(rest, "!"),
				strings.HasPrefix(rest, "<="), strings.HasPrefix(rest, "<!"):
				return "", nil, posErrorf(i, "lookaround %q is not supported by RE2", snippet(src, i))
			case strings.HasPrefix(rest, "P<"), strings.HasPrefix(rest, "<"), strings.HasPrefix(rest, "'"):
				start := i + 2
				if rest[0] == 'P' {
					start++
				}
				closer := byte('>')
				if src[start] == '\'' {
					closer = '\''
				}
				k := strings.IndexByte(src[start+1:], closer)
				if k <= 0 {
					return "", nil, posErrorf(i, "bad named group %q", snippet(src, i))
				}
				names = append(names, src[start+1:start+1+k])
				b.WriteString("(?P<_")
				b.WriteString(strconv.Itoa(len(names) - 1))
				b.WriteByte('>')
				i = start + 1 + k + 1
			case strings.HasPrefix(rest, "P="), strings.HasPrefix(rest, "P>"), strings.HasPrefix(rest, "&"),
				strings.HasPrefix(rest, "R"), len(rest) > 0 && (rest[0] >= '0' && rest[0] <= '9' || rest[0] == '+' || rest[0] == '-' && len(rest) > 1 && rest[1] >= '0' && rest[1] <= '9'):
				return "", nil, posErrorf(i, "backreference/recursion %q is not supported by RE2", snippet(src, i))
			case strings.HasPrefix(rest, "|"):
				return "", nil, posErrorf(i, "branch reset %q is not supported by RE2", snippet(src, i))
			case strings.HasPrefix(rest, "("):
				return "", nil, posErrorf(i, "conditional %q is not supported by RE2", snippet(src, i))
			default: // flags: (?i) (?i:...) ...
				b.WriteString("(?")
				i += 2
			}
		case '*', '+', '?':
			if lastQuant {
				lastQuant = false
				if c == '+' { // possessive -> greedy
					i++
					continue
				}
				b.WriteByte(c) // '?' lazy (or an error RE2 will report)
				i++
				continue
			}
			b.WriteByte(c)
			i++
			lastQuant = true
		case '{':
			if j := repetition(src, i); j > 0 {
				b.WriteString(src[i:j])
				i = j
				lastQuant = true
				continue
			}
			b.WriteByte(c)
			i++
			lastQuant = false
		default:
			b.WriteByte(c)
			i++
			lastQuant = false
		}
	}
	return b.String(), names, nil
}

func snippet(s string, i int) string {
	j := i + 12
	if j > len(s) {
		j = len(s)
	}
	return s[i:j]
}

// repetition returns the end of a counted repetition {n}, {n,}, {n,m}
// starting at i, or 0 when src[i:] is a literal '{'.
func repetition(src string, i int) int {
	j := i + 1
	digits := 0
	for j < len(src) && src[j] >= '0' && src[j] <= '9' {
		j++
		digits++
	}
	if digits == 0 {
		return 0
	}
	if j < len(src) && src[j] == ',' {
		j++
		for j < len(src) && src[j] >= '0' && src[j] <= '9' {
			j++
		}
	}
	if j < len(src) && src[j] == '}' {
		return j + 1
	}
	return 0
}

// escape handles a backslash sequence at i and returns its end and its
// RE2 rendering.
func escape(src string, i int) (int, string, error) {
	if i+1 >= len(src) {
		return 0, "", posErrorf(i, "trailing backslash")
	}
	c := src[i+1]
	switch c {
	case 'Z':
		return i + 2, `\z`, nil
	case 'Q':
		k := strings.Index(src[i+2:], `\E`)
		if k < 0 {
			return len(src), src[i:], nil
		}
		return i + 2 + k + 2, src[i : i+2+k+2], nil
	case 'x', 'p', 'P':
		if i+2 < len(src) && src[i+2] == '{' {
			k := strings.IndexByte(src[i+2:], '}')
			if k < 0 {
				return 0, "", posErrorf(i, "unterminated %q", snippet(src, i))
			}
			return i + 2 + k + 1, src[i : i+2+k+1], nil
		}
	case 'k', 'g':
		return 0, "", posErrorf(i, "backreference %q is not supported by RE2", snippet(src, i))
	}
	if c >= '1' && c <= '9' {
		return 0, "", posErrorf(i, "backreference %q is not supported by RE2", snippet(src, i))
	}
	_, size := utf8.DecodeRuneInString(src[i+1:])
	return i + 1 + size, src[i : i+1+size], nil
}

// charClass returns the end of the bracket expression starting at i.
func charClass(src string, i int) (int, error) {
	j := i + 1
	if j < len(src) && src[j] == '^' {
		j++
	}
	if j < len(src) && src[j] == ']' { // leading ']' is literal
		j++
	}
	for j < len(src) {
		switch src[j] {
		case '\\':
			if j+1 >= len(src) {
				return 0, posErrorf(j, "trailing backslash in character class")
			}
			_, size := utf8.DecodeRuneInString(src[j+1:])
			j += 1 + size
			if src[j-size] == 'x' || src[j-size] == 'p' || src[j-size] == 'P' {
				if j < len(src) && src[j] == '{' {
					if k := strings.IndexByte(src[j:], '}'); k >= 0 {
						j += k + 1
					}
				}
			}
		case '[':
			if j+1 < len(src) && src[j+1] == ':' {
				if k := strings.Index(src[j+2:], ":]"); k >= 0 {
					j += 2 + k + 2
					continue
				}
			}
			j++
		case ']':
			return j + 1, nil
		default:
			j++
		}
	}
	return 0, posErrorf(i, "missing closing ] in %q", snippet(src, i))
}
