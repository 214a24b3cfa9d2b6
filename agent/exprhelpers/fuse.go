package exprhelpers

import (
	"reflect"
	"regexp"
	"strings"

	"github.com/expr-lang/expr/ast"

	"github.com/rampart-ips/rampart/agent/event"
)

// Fusion turns the typical hub filter, e.g.
//
//	evt.Meta.log_type in ['http_access-log', 'http_error-log'] &&
//	Upper(PathUnescape(evt.Meta.http_path)) contains '/FOO'
//
// into a single call of a Go closure tree. expr would run a dozen opcodes,
// fetch each map value through reflect (two allocations) and box every
// intermediate string; the closures read the event's maps directly.
//
// Only subtrees that cannot fail nor have effects are fused: string and
// boolean constants, string fields and map[string]string values of an
// *event.Event, the pure string helpers, string concatenation, ==, !=,
// contains, startsWith, endsWith, in [constant strings], matches
// 'constant', and, or, not, the ternary, and the rewritten any(File(...)) and matches calls. They
// keep expr's evaluation order and short-circuits; the one possible
// failure, a nil event pointer, is a run-time error as in expr.

// fused is a compiled subtree: b for a boolean one, s for a string one.
type fused struct {
	b func(*event.Event) bool
	s func(*event.Event) string
}

var eventPtrType = reflect.TypeOf(&event.Event{})

// Event fields a fused tree may read, by expr path.
var (
	eventMaps = map[string]func(*event.Event) map[string]string{
		"Meta":        func(e *event.Event) map[string]string { return e.Meta },
		"Parsed":      func(e *event.Event) map[string]string { return e.Parsed },
		"Enriched":    func(e *event.Event) map[string]string { return e.Enriched },
		"Line.Labels": func(e *event.Event) map[string]string { return e.Line.Labels },
	}
	eventStrings = map[string]func(*event.Event) string{
		"StrTime":         func(e *event.Event) string { return e.StrTime },
		"StrTimeFormat":   func(e *event.Event) string { return e.StrTimeFormat },
		"MarshaledTime":   func(e *event.Event) string { return e.MarshaledTime },
		"Stage":           func(e *event.Event) string { return e.Stage },
		"WhitelistReason": func(e *event.Event) string { return e.WhitelistReason },
		"Line.Raw":        func(e *event.Event) string { return e.Line.Raw },
		"Line.Src":        func(e *event.Event) string { return e.Line.Src },
		"Line.Module":     func(e *event.Event) string { return e.Line.Module },
	}
)

// fuser compiles one subtree; root is the identifier the event comes
// from, the same for the whole subtree.
type fuser struct {
	r    *rewriter
	root string
}

// fuse replaces n by a fused call when n is fusable and is neither a
// constant nor already fused.
func (r *rewriter) fuse(node *ast.Node) {
	n := *node
	switch n.(type) {
	case *ast.StringNode, *ast.BoolNode, *ast.ConstantNode, *ast.IdentifierNode:
		return
	}
	if g, _ := (&fuser{r: r}).fusedCall(n); g != nil {
		return
	}
	// The call is callee(evt) with a constant func of a signature expr
	// knows (OpCallTyped): no argument slice, no error plumbing, and a
	// stack of two, which a fresh VM holds without growing. A nil event
	// pointer panics, which the VM reports as a run-time error, as it
	// does for its own field accesses.
	var out *fused
	var typ reflect.Type
	var callee any
	f := &fuser{r: r}
	if b := f.boolean(n); b != nil {
		out, typ = &fused{b: b}, boolType
		callee = func(e any) bool {
			ev, _ := e.(*event.Event)
			return b(ev)
		}
	} else {
		f = &fuser{r: r}
		s := f.str(n)
		if s == nil {
			return
		}
		box := f.box(n, s)
		out, typ = &fused{s: s}, stringType
		// The call's type (string, below) is what parents see; returning
		// an interface lets a memo hand over its boxed result.
		callee = func(e any) any {
			ev, _ := e.(*event.Event)
			return box(ev)
		}
	}
	if f.root == "" {
		return // constant: expr's optimizer folds it
	}
	fn := &ast.ConstantNode{Value: callee}
	fn.SetType(reflect.TypeOf(callee))
	root := &ast.IdentifierNode{Value: f.root}
	root.SetType(eventPtrType)
	c := &ast.CallNode{Callee: fn, Arguments: []ast.Node{root}}
	// The checker keeps the type a patch sets on a call.
	c.SetType(typ)
	r.fused.Store(c, out)
	ast.Patch(node, c)
}

// box returns s boxed, taking the memo's interface when n is a memoized
// helper so the result is not allocated again.
func (f *fuser) box(n ast.Node, s func(*event.Event) string) func(*event.Event) any {
	name, arg := helperCall(n)
	if m := f.r.h.memo[name]; m != nil && arg != nil {
		if x := f.str(arg); x != nil {
			return func(e *event.Event) any {
				_, b := m.get(x(e))
				return b
			}
		}
	}
	return func(e *event.Event) any { return s(e) }
}

// fusedCall returns the closures of a call made by fuse, with its root.
func (f *fuser) fusedCall(n ast.Node) (*fused, string) {
	c, ok := n.(*ast.CallNode)
	if !ok || len(c.Arguments) != 1 {
		return nil, ""
	}
	v, ok := f.r.fused.Load(c)
	if !ok {
		return nil, ""
	}
	return v.(*fused), c.Arguments[0].(*ast.IdentifierNode).Value
}

func (f *fuser) useRoot(name string) bool {
	if f.root == "" {
		f.root = name
	}
	return f.root == name
}

// str compiles a string-valued subtree, or returns nil.
func (f *fuser) str(n ast.Node) func(*event.Event) string {
	if s, ok := constString(n); ok {
		return func(*event.Event) string { return s }
	}
	if g, root := f.fusedCall(n); g != nil {
		if g.s == nil || !f.useRoot(root) {
			return nil
		}
		return g.s
	}
	switch n := n.(type) {
	case *ast.MemberNode:
		return f.member(n)
	case *ast.CallNode:
		name, arg := helperCall(n)
		fn, ok := foldable[name]
		if !ok || arg == nil {
			return nil
		}
		x := f.str(arg)
		if x == nil {
			return nil
		}
		if m := f.r.h.memo[name]; m != nil {
			return func(e *event.Event) string {
				s, _ := m.get(x(e))
				return s
			}
		}
		return func(e *event.Event) string { return fn(x(e)) }
	case *ast.BinaryNode:
		// Concatenation, as in the groupby evt.Meta.source_ip + '/' +
		// evt.Parsed.target_fqdn: fused, the whole key runs without the
		// VM (Direct). Both sides are strings, so + cannot mean anything
		// else.
		if n.Operator != "+" {
			return nil
		}
		a, b := f.str(n.Left), f.str(n.Right)
		if a == nil || b == nil {
			return nil
		}
		return func(e *event.Event) string { return a(e) + b(e) }
	case *ast.ConditionalNode:
		c, a, b := f.boolean(n.Cond), f.str(n.Exp1), f.str(n.Exp2)
		if c == nil || a == nil || b == nil {
			return nil
		}
		return func(e *event.Event) string {
			if c(e) {
				return a(e)
			}
			return b(e)
		}
	}
	return nil
}

// member compiles evt.Map.key and evt.Field reads.
func (f *fuser) member(n *ast.MemberNode) func(*event.Event) string {
	var path []string
	cur := ast.Node(n)
	for {
		m, ok := cur.(*ast.MemberNode)
		if !ok {
			break
		}
		p, ok := m.Property.(*ast.StringNode)
		if !ok || m.Optional {
			return nil
		}
		path = append([]string{p.Value}, path...)
		cur = m.Node
	}
	id, ok := cur.(*ast.IdentifierNode)
	if !ok || id.Type() != eventPtrType || !f.useRoot(id.Value) {
		return nil
	}
	if get, ok := eventStrings[strings.Join(path, ".")]; ok {
		return get
	}
	if len(path) < 2 {
		return nil
	}
	get, ok := eventMaps[strings.Join(path[:len(path)-1], ".")]
	if !ok {
		return nil
	}
	key := path[len(path)-1]
	return func(e *event.Event) string { return get(e)[key] }
}

// boolean compiles a bool-valued subtree, or returns nil.
func (f *fuser) boolean(n ast.Node) func(*event.Event) bool {
	if g, root := f.fusedCall(n); g != nil {
		if g.b == nil || !f.useRoot(root) {
			return nil
		}
		return g.b
	}
	switch n := n.(type) {
	case *ast.BoolNode:
		v := n.Value
		return func(*event.Event) bool { return v }
	case *ast.UnaryNode:
		if n.Operator != "not" && n.Operator != "!" {
			return nil
		}
		x := f.boolean(n.Node)
		if x == nil {
			return nil
		}
		return func(e *event.Event) bool { return !x(e) }
	case *ast.BinaryNode:
		return f.binary(n)
	case *ast.CallNode:
		return f.call(n)
	case *ast.ConditionalNode:
		c, a, b := f.boolean(n.Cond), f.boolean(n.Exp1), f.boolean(n.Exp2)
		if c == nil || a == nil || b == nil {
			return nil
		}
		return func(e *event.Event) bool {
			if c(e) {
				return a(e)
			}
			return b(e)
		}
	}
	return nil
}

func (f *fuser) binary(n *ast.BinaryNode) func(*event.Event) bool {
	switch n.Operator {
	case "and", "&&", "or", "||":
		a, b := f.boolean(n.Left), f.boolean(n.Right)
		if a == nil || b == nil {
			return nil
		}
		if n.Operator == "and" || n.Operator == "&&" {
			return func(e *event.Event) bool { return a(e) && b(e) }
		}
		return func(e *event.Event) bool { return a(e) || b(e) }
	case "in":
		return f.in(n)
	}
	a := f.str(n.Left)
	if a == nil {
		return nil
	}
	// A constant right side is by far the common case: test it without
	// the indirect call.
	if k, ok := constString(n.Right); ok {
		switch n.Operator {
		case "==":
			return func(e *event.Event) bool { return a(e) == k }
		case "!=":
			return func(e *event.Event) bool { return a(e) != k }
		case "contains":
			return func(e *event.Event) bool { return strings.Contains(a(e), k) }
		case "startsWith":
			return func(e *event.Event) bool { return strings.HasPrefix(a(e), k) }
		case "endsWith":
			return func(e *event.Event) bool { return strings.HasSuffix(a(e), k) }
		}
		return nil
	}
	b := f.str(n.Right)
	if b == nil {
		return nil
	}
	var op func(string, string) bool
	switch n.Operator {
	case "==":
		op = func(x, y string) bool { return x == y }
	case "!=":
		op = func(x, y string) bool { return x != y }
	case "contains":
		op = strings.Contains
	case "startsWith":
		op = strings.HasPrefix
	case "endsWith":
		op = strings.HasSuffix
	default:
		return nil
	}
	return func(e *event.Event) bool { return op(a(e), b(e)) }
}

// in compiles `x in ['a', 'b']`.
func (f *fuser) in(n *ast.BinaryNode) func(*event.Event) bool {
	arr, ok := n.Right.(*ast.ArrayNode)
	if !ok {
		return nil
	}
	set := make([]string, 0, len(arr.Nodes))
	for _, v := range arr.Nodes {
		s, ok := constString(v)
		if !ok {
			return nil
		}
		set = append(set, s)
	}
	x := f.str(n.Left)
	if x == nil {
		return nil
	}
	// Hub lists are short: comparing beats hashing.
	if len(set) <= 8 {
		return func(e *event.Event) bool {
			s := x(e)
			for _, v := range set {
				if s == v {
					return true
				}
			}
			return false
		}
	}
	m := make(map[string]struct{}, len(set))
	for _, v := range set {
		m[v] = struct{}{}
	}
	return func(e *event.Event) bool {
		_, ok := m[x(e)]
		return ok
	}
}

// call compiles the boolean helpers and rewritten calls.
func (f *fuser) call(n *ast.CallNode) func(*event.Event) bool {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		return nil
	}
	args := n.Arguments
	switch {
	case id.Value == fnMatchRe && len(args) == 2:
		k, _ := args[1].(*ast.ConstantNode)
		if k == nil {
			return nil
		}
		re, _ := k.Value.(*regexp.Regexp)
		x := f.str(args[0])
		if re == nil || x == nil {
			return nil
		}
		return func(e *event.Event) bool { return re.MatchString(x(e)) }
	case id.Value == fnAnyFile && len(args) == 2:
		k, _ := args[0].(*ast.ConstantNode)
		if k == nil {
			return nil
		}
		site, _ := k.Value.(*fileSite)
		x := f.str(args[1])
		if site == nil || x == nil {
			return nil
		}
		// An empty or unknown file: expr would not evaluate x at all.
		return func(e *event.Event) bool {
			idx := site.index()
			if len(idx.lines) == 0 {
				return site.negate
			}
			return idx.has(x(e)) != site.negate
		}
	case id.Value == "RegexpInFile" && len(args) == 2:
		name, ok := constString(args[1])
		x := f.str(args[0])
		if !ok || x == nil {
			return nil
		}
		h := f.r.h
		return func(e *event.Event) bool { return h.RegexpInFile(x(e), name) }
	case id.Value == "IpInRange" && len(args) == 2:
		a, b := f.str(args[0]), f.str(args[1])
		if a == nil || b == nil {
			return nil
		}
		return func(e *event.Event) bool { return IpInRange(a(e), b(e)) }
	case (id.Value == "IsIPV4" || id.Value == "IsIPV6" || id.Value == "IsIP") && len(args) == 1:
		x := f.str(args[0])
		if x == nil {
			return nil
		}
		pred := map[string]func(string) bool{"IsIPV4": IsIPV4, "IsIPV6": IsIPV6, "IsIP": IsIP}[id.Value]
		return func(e *event.Event) bool { return pred(x(e)) }
	}
	return nil
}
