package parser

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/rampart-ips/rampart/agent/event"
)

// program is a compiled expression with what runs it cheapest, found once
// at load rather than looked up per run.
type program struct {
	vm *vm.Program
	// direct is the program fused into one Go closure by exprhelpers,
	// run without the VM; nil when it cannot be.
	direct func(*event.Event) (any, error)
	// text is set when the expression only reads a string field or a
	// string map entry of the event ("evt.Parsed.remote_addr"), or takes
	// the length of one: a static then gets its value without running
	// the program or boxing the result. It gives the text applyStatics
	// makes of the program's result ("" for a missing entry).
	text func(*event.Event) string
}

// staticText returns the text of a program's result that a static
// assigns: "" for nil (nothing to assign).
func staticText(out any) string {
	switch o := out.(type) {
	case string:
		return o
	case int:
		return strconv.Itoa(o)
	case float64:
		return strconv.FormatFloat(o, 'f', 6, 64)
	case bool:
		return strconv.FormatBool(o)
	case nil:
		return ""
	default:
		return fmt.Sprint(o)
	}
}

// textOf is program.text for the expression src: a plain read, or len()
// of one (expr's len counts a string's runes).
func textOf(src string) func(*event.Event) string {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	if c, ok := tree.Node.(*ast.BuiltinNode); ok && c.Name == "len" && len(c.Arguments) == 1 {
		if f := fieldRead(c.Arguments[0]); f != nil {
			return func(e *event.Event) string { return strconv.Itoa(utf8.RuneCountInString(f(e))) }
		}
		return nil
	}
	return fieldRead(tree.Node)
}

// fieldRead returns the reader of an expression that is a plain read of
// one of the event's string fields or string map entries, nil otherwise.
func fieldRead(n ast.Node) func(*event.Event) string {
	var path []string
	for {
		switch m := n.(type) {
		case *ast.MemberNode:
			if m.Optional || m.Method {
				return nil
			}
			s, ok := m.Property.(*ast.StringNode)
			if !ok {
				return nil
			}
			path = append(path, s.Value)
			n = m.Node
			continue
		case *ast.IdentifierNode:
			if m.Value != "evt" {
				return nil
			}
		default:
			return nil
		}
		break
	}
	// path is innermost last: reverse it into reading order
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	switch len(path) {
	case 1:
		switch path[0] {
		case "StrTime":
			return func(e *event.Event) string { return e.StrTime }
		case "StrTimeFormat":
			return func(e *event.Event) string { return e.StrTimeFormat }
		case "MarshaledTime":
			return func(e *event.Event) string { return e.MarshaledTime }
		case "WhitelistReason":
			return func(e *event.Event) string { return e.WhitelistReason }
		case "Stage":
			return func(e *event.Event) string { return e.Stage }
		}
	case 2:
		k := path[1]
		switch path[0] {
		case "Parsed":
			return func(e *event.Event) string { return e.Parsed[k] }
		case "Meta":
			return func(e *event.Event) string { return e.Meta[k] }
		case "Enriched":
			return func(e *event.Event) string { return e.Enriched[k] }
		case "Line":
			switch k {
			case "Raw":
				return func(e *event.Event) string { return e.Line.Raw }
			case "Src":
				return func(e *event.Event) string { return e.Line.Src }
			case "Module":
				return func(e *event.Event) string { return e.Line.Module }
			}
		}
	case 3:
		if path[0] == "Line" && path[1] == "Labels" {
			k := path[2]
			return func(e *event.Event) string { return e.Line.Labels[k] }
		}
	}
	return nil
}
