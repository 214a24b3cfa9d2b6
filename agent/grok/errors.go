package grok

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// CompileError is returned by Compile and Expand. It names the grok
// expression, the definition the problem lies in and the byte offset in
// that text, so a hub author can find it. Its text carries no "grok:"
// prefix: callers already say which grok node failed.
type CompileError struct {
	Pattern string // the expression given to Compile
	Name    string // definition holding the error; "" for Pattern itself
	Offset  int    // byte offset in that text; -1 when unknown
	Err     error
}

func (e *CompileError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pattern %q: ", e.Pattern)
	switch {
	case e.Name != "" && e.Offset >= 0:
		fmt.Fprintf(&b, "in %%{%s} at offset %d: ", e.Name, e.Offset)
	case e.Name != "":
		fmt.Fprintf(&b, "in %%{%s}: ", e.Name)
	case e.Offset >= 0:
		fmt.Fprintf(&b, "at offset %d: ", e.Offset)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *CompileError) Unwrap() error { return e.Err }

// posError is a translation error at a byte offset of the translated text.
type posError struct {
	off int
	msg string
}

func (e *posError) Error() string { return e.msg }

func posErrorf(off int, format string, args ...any) error {
	return &posError{off: off, msg: fmt.Sprintf(format, args...)}
}

// checkRegex compiles an expanded (not yet translated) expression the way
// newPattern does and returns the error with the offset it points at in
// exp, or -1.
func checkRegex(exp string) (error, int) {
	tr, _, err := translate(exp)
	if err != nil {
		var pe *posError
		if errors.As(err, &pe) {
			return err, pe.off
		}
		return err, -1
	}
	if _, err := regexp.Compile(tr); err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			// The fragment is in translated text; translation keeps most
			// text as is, so look for it in exp.
			return fmt.Errorf("%s: `%s`", se.Code, se.Expr), strings.Index(exp, se.Expr)
		}
		return err, -1
	}
	return nil, -1
}

// locate finds which definition makes the expansion of pattern fail to
// compile: the first one, depth first, whose references compile but
// which does not. Caller holds l.mu; pattern expanded without error.
func (l *Library) locate(pattern, expanded string, whole error) *CompileError {
	seen := make(map[string]bool)
	var visit func(name, raw, exp string) *CompileError
	visit = func(name, raw, exp string) *CompileError {
		var found *CompileError
		scanRefs(raw, func(ref, _ string, _, _ int) (string, error) {
			if found == nil && !seen[ref] {
				seen[ref] = true
				found = visit(ref, l.defs[ref], l.expanded[ref])
			}
			return "", nil
		})
		if found != nil {
			return found
		}
		err, off := checkRegex(exp)
		if err == nil {
			return nil
		}
		return &CompileError{Pattern: pattern, Name: name, Offset: l.rawOffset(raw, off), Err: err}
	}
	if e := visit("", pattern, expanded); e != nil {
		return e
	}
	return &CompileError{Pattern: pattern, Offset: -1, Err: whole}
}

// rawOffset maps an offset in the one-level expansion of raw back to raw:
// an offset inside a reference's expansion maps to the reference.
func (l *Library) rawOffset(raw string, off int) int {
	if off < 0 {
		return -1
	}
	shift := 0 // len(expansion so far) - len(raw so far)
	result := -1
	scanRefs(raw, func(name, capture string, at, end int) (string, error) {
		if result >= 0 {
			return "", nil
		}
		n := len(refText(capture, l.expanded[name]))
		switch {
		case off < at+shift:
			result = off - shift
		case off < at+shift+n:
			result = at
		}
		shift += n - (end - at)
		return "", nil
	})
	if result >= 0 {
		return result
	}
	return off - shift
}
