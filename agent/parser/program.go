package parser

import (
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
	// field is set when the expression only reads a string field or a
	// string map entry of the event ("evt.Parsed.remote_addr"): a static
	// then copies it, without running the program or boxing the value.
	// It gives what the program gives, "" for an entry that is missing.
	field func(*event.Event) string
}

// fieldRead returns the reader of an expression that is a plain read of
// one of the event's string fields or string map entries, nil otherwise.
func fieldRead(src string) func(*event.Event) string {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	var path []string
	n := tree.Node
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
