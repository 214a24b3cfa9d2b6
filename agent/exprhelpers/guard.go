package exprhelpers

import (
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"

	"github.com/rampart-ips/rampart/agent/event"
)

// Guard is a test of one event map value against constant strings, as in
// evt.Meta.log_type in ['http_access-log', 'http_error-log']. Most hub
// scenario filters open with a few of them, the same for dozens of
// scenarios: a scenario set can test each distinct guard once per event
// and skip the scenarios whose guard fails without running their filter.
type Guard struct {
	Map    string // "Meta" or "Parsed"
	Key    string
	Values []string // in source order; the test holds when the value is one of them
}

// Test tells whether e passes the guard. A missing key reads as "", as
// expr reads a map[string]string.
func (g *Guard) Test(e *event.Event) bool {
	var v string
	switch g.Map {
	case "Meta":
		v = e.Meta[g.Key]
	case "Parsed":
		v = e.Parsed[g.Key]
	}
	for _, w := range g.Values {
		if v == w {
			return true
		}
	}
	return false
}

// GuardFunc returns g's test sharing a Frame with the programs compiled
// with h's options: the value it reads and its result are those of the
// same test in a filter (evt.Meta.log_type in [...]), made once per event.
func (h *Helpers) GuardFunc(g Guard) func(*event.Event, *Frame) bool {
	get, ok := eventMaps[g.Map]
	if !ok {
		return func(e *event.Event, _ *Frame) bool { return g.Test(e) }
	}
	f := &fuser{r: &rewriter{h: h}}
	test := f.oneOf(f.mapRead("evt", g.Map, get, g.Key), g.Values)
	t := &h.slots
	return func(e *event.Event, fr *Frame) bool { return test(e, fr.of(t)) }
}

// LeadingGuards returns the guards a boolean expression starts with: the
// conjuncts of its top-level `and` chain, from the left, up to the first
// one that is not a guard. When one of them fails the expression is false
// with nothing else evaluated: && short-circuits left to right and a guard
// cannot fail nor have effects. The chain may follow lets of pure string
// values (let r = Lower(evt.Parsed.request); ...) and be the condition of
// an if whose else is false. Anything else (an or at the top, a source
// that does not parse) gives none.
func LeadingGuards(src string) []Guard {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	return leadingGuards(tree.Node)
}

func leadingGuards(n ast.Node) []Guard {
	switch n := n.(type) {
	case *ast.VariableDeclaratorNode:
		// The value is evaluated first: it must not fail nor have effects,
		// and must not hide the event.
		if n.Name == "evt" || !pureString(n.Value) {
			return nil
		}
		return leadingGuards(n.Expr)
	case *ast.ConditionalNode:
		if b, ok := n.Exp2.(*ast.BoolNode); !ok || b.Value {
			return nil
		}
		return leadingGuards(n.Cond)
	}
	var out []Guard
	for _, c := range conjuncts(n) {
		g, ok := guardOf(c)
		if !ok {
			break
		}
		out = append(out, g)
	}
	return out
}

// pureString tells that n is a string constant, an event map value or a
// pure string helper of one: it cannot fail on an event nor change it.
func pureString(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.StringNode:
		return true
	case *ast.MemberNode:
		_, _, ok := eventMapKey(n)
		return ok
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || len(n.Arguments) != 1 {
			return false
		}
		if _, ok := foldable[id.Value]; !ok {
			return false
		}
		return pureString(n.Arguments[0])
	}
	return false
}

// conjuncts flattens a && b && c (parsed ((a && b) && c)) in order.
func conjuncts(n ast.Node) []ast.Node {
	if b, ok := n.(*ast.BinaryNode); ok && (b.Operator == "&&" || b.Operator == "and") {
		return append(conjuncts(b.Left), conjuncts(b.Right)...)
	}
	return []ast.Node{n}
}

func guardOf(n ast.Node) (Guard, bool) {
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return Guard{}, false
	}
	switch b.Operator {
	case "==":
		l, r := b.Left, b.Right
		if _, ok := l.(*ast.StringNode); ok {
			l, r = r, l
		}
		k, ok := r.(*ast.StringNode)
		if !ok {
			return Guard{}, false
		}
		m, key, ok := eventMapKey(l)
		if !ok {
			return Guard{}, false
		}
		return Guard{Map: m, Key: key, Values: []string{k.Value}}, true
	case "in":
		arr, ok := b.Right.(*ast.ArrayNode)
		if !ok {
			return Guard{}, false
		}
		m, key, ok := eventMapKey(b.Left)
		if !ok {
			return Guard{}, false
		}
		g := Guard{Map: m, Key: key}
		for _, v := range arr.Nodes {
			s, ok := v.(*ast.StringNode)
			if !ok {
				return Guard{}, false
			}
			g.Values = append(g.Values, s.Value)
		}
		return g, true
	}
	return Guard{}, false
}

// eventMapKey recognises evt.Meta.key and evt.Parsed.key (or ["key"]).
func eventMapKey(n ast.Node) (m, key string, ok bool) {
	outer, ok := n.(*ast.MemberNode)
	if !ok || outer.Optional {
		return "", "", false
	}
	k, ok := outer.Property.(*ast.StringNode)
	if !ok {
		return "", "", false
	}
	inner, ok := outer.Node.(*ast.MemberNode)
	if !ok || inner.Optional {
		return "", "", false
	}
	mp, ok := inner.Property.(*ast.StringNode)
	if !ok || (mp.Value != "Meta" && mp.Value != "Parsed") {
		return "", "", false
	}
	id, ok := inner.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "evt" {
		return "", "", false
	}
	return mp.Value, k.Value, true
}
