package exprhelpers

import (
	"reflect"
	"regexp"
	"strconv"
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

// fused is a compiled subtree: b for a boolean one, s for a string one
// (box gives it as an interface, for a program returning it).
type fused struct {
	slots *slotTable // of the Helpers compiling it
	b     fusedBool
	reqs  []requirement // of b (see Gate)
	s     strVal
	box   func(*event.Event, *Frame) any
}

// fusedProbe asks a fused call's callee for its closures (see Direct):
// passed instead of the event, it gets the callee's *fused.
type fusedProbe struct{ out *fused }

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
// from, the same for the whole subtree. vars are the let variables in
// scope (pure strings, see boolean).
type fuser struct {
	r    *rewriter
	root string
	vars map[string]strVal
}

// strVal is a compiled string subtree. key, when not empty, is its
// canonical text, when it is a pure function of the event (a map read, a
// helper call on one...): equal keys mean equal values, so a Frame holds
// one value per key.
type strVal struct {
	fn  fusedStr
	key string
	// slot is 1 + the frame slot holding the value, 0 for none.
	slot int
	// For Upper(x) and Lower(x): x, and the map of an ASCII x's bytes
	// that gives the value (upperASCII, lowerASCII), for the scans that
	// fold as they go instead of making the string (litSet.findFold).
	arg  fusedStr
	fold *[256]byte
}

// peek returns the value of v held in fr, if it is there.
func (v strVal) peek(fr *Frame) (string, bool) {
	if fr == nil || v.slot == 0 || v.slot > len(fr.strs) {
		return "", false
	}
	sl := &fr.strs[v.slot-1]
	return sl.s, sl.epoch == fr.epoch
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
		out, typ = &fused{slots: &r.h.slots, b: b, reqs: (&fuser{r: r}).reqsOf(n)}, boolType
		callee = func(e any) bool {
			if p, ok := e.(*fusedProbe); ok {
				p.out = out
				return false
			}
			ev, _ := e.(*event.Event)
			return b(ev, nil)
		}
	} else {
		f = &fuser{r: r}
		s := f.str(n)
		if s.fn == nil {
			return
		}
		box := f.box(n, s)
		out, typ = &fused{slots: &r.h.slots, s: s, box: box}, stringType
		// The call's type (string, below) is what parents see; returning
		// an interface lets a memo hand over its boxed result.
		callee = func(e any) any {
			if p, ok := e.(*fusedProbe); ok {
				p.out = out
				return nil
			}
			ev, _ := e.(*event.Event)
			return box(ev, nil)
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

// box returns s boxed: from its frame slot when it has one, else taking
// the memo's interface when n is a memoized helper, so the result is not
// allocated again.
func (f *fuser) box(n ast.Node, s strVal) func(*event.Event, *Frame) any {
	plain := func(e *event.Event, fr *Frame) any { return s.fn(e, fr) }
	name, arg := helperCall(n)
	if m := f.r.h.memo[name]; m != nil && arg != nil {
		if x := f.str(arg); x.fn != nil {
			plain = func(e *event.Event, fr *Frame) any {
				if fr != nil {
					return s.fn(e, fr)
				}
				_, b := m.get(x.fn(e, nil))
				return b
			}
		}
	}
	if s.slot != 0 {
		slot := boxedSlot(s.slot-1, s.fn)
		return func(e *event.Event, fr *Frame) any {
			if fr != nil {
				return slot(e, fr)
			}
			return plain(e, nil)
		}
	}
	return plain
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

// cache makes x read its value from a frame slot for key: computed once
// per event when run with a frame.
func (f *fuser) cache(x fusedStr, key string) strVal {
	if key == "" {
		return strVal{fn: x}
	}
	id := f.r.h.slots.id(false, key)
	return strVal{fn: cachedStr(id, x), key: key, slot: id + 1}
}

// str compiles a string-valued subtree, or returns a nil fn.
func (f *fuser) str(n ast.Node) strVal {
	if s, ok := constString(n); ok {
		return strVal{fn: func(*event.Event, *Frame) string { return s }, key: strconv.Quote(s)}
	}
	if g, root := f.fusedCall(n); g != nil {
		if g.s.fn == nil || !f.useRoot(root) {
			return strVal{}
		}
		return g.s
	}
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return f.vars[n.Value]
	case *ast.MemberNode:
		return f.member(n)
	case *ast.CallNode:
		name, arg := helperCall(n)
		fn, ok := foldable[name]
		if !ok || arg == nil {
			return strVal{}
		}
		x := f.str(arg)
		if x.fn == nil {
			return strVal{}
		}
		key := ""
		if x.key != "" {
			key = name + "(" + x.key + ")"
		}
		if m := f.r.h.memo[name]; m != nil {
			// Without a frame, the memo spares the allocation when the
			// filters of an event call it again; with one, the slot does.
			v := f.cache(func(e *event.Event, fr *Frame) string {
				if fr == nil {
					s, _ := m.get(x.fn(e, nil))
					return s
				}
				return fn(x.fn(e, fr))
			}, key)
			switch name {
			case "Upper":
				v.arg, v.fold = x.fn, upperASCII
			case "Lower":
				v.arg, v.fold = x.fn, lowerASCII
			}
			return v
		}
		return f.cache(func(e *event.Event, fr *Frame) string { return fn(x.fn(e, fr)) }, key)
	case *ast.BinaryNode:
		// Concatenation, as in the groupby evt.Meta.source_ip + '/' +
		// evt.Parsed.target_fqdn: fused, the whole key runs without the
		// VM (Direct). Both sides are strings, so + cannot mean anything
		// else.
		if n.Operator != "+" {
			return strVal{}
		}
		a, b := f.str(n.Left), f.str(n.Right)
		if a.fn == nil || b.fn == nil {
			return strVal{}
		}
		key := ""
		if a.key != "" && b.key != "" {
			key = "(" + a.key + "+" + b.key + ")"
		}
		return f.cache(func(e *event.Event, fr *Frame) string { return a.fn(e, fr) + b.fn(e, fr) }, key)
	case *ast.ConditionalNode:
		c, a, b := f.boolean(n.Cond), f.str(n.Exp1), f.str(n.Exp2)
		if c == nil || a.fn == nil || b.fn == nil {
			return strVal{}
		}
		return strVal{fn: func(e *event.Event, fr *Frame) string {
			if c(e, fr) {
				return a.fn(e, fr)
			}
			return b.fn(e, fr)
		}}
	}
	return strVal{}
}

// member compiles evt.Map.key and evt.Field reads.
func (f *fuser) member(n *ast.MemberNode) strVal {
	var path []string
	cur := ast.Node(n)
	for {
		m, ok := cur.(*ast.MemberNode)
		if !ok {
			break
		}
		p, ok := m.Property.(*ast.StringNode)
		if !ok || m.Optional {
			return strVal{}
		}
		path = append([]string{p.Value}, path...)
		cur = m.Node
	}
	id, ok := cur.(*ast.IdentifierNode)
	if !ok || id.Type() != eventPtrType || f.vars[id.Value].fn != nil || !f.useRoot(id.Value) {
		return strVal{}
	}
	if get, ok := eventStrings[strings.Join(path, ".")]; ok {
		return strVal{fn: func(e *event.Event, _ *Frame) string { return get(e) }}
	}
	if len(path) < 2 {
		return strVal{}
	}
	get, ok := eventMaps[strings.Join(path[:len(path)-1], ".")]
	if !ok {
		return strVal{}
	}
	return f.mapRead(id.Value, strings.Join(path[:len(path)-1], "."), get, path[len(path)-1])
}

// mapRead compiles root.m.key, get returning the map m.
func (f *fuser) mapRead(root, m string, get func(*event.Event) map[string]string, key string) strVal {
	return f.cache(func(e *event.Event, _ *Frame) string { return get(e)[key] },
		root+"."+m+"["+strconv.Quote(key)+"]")
}

// boolean compiles a bool-valued subtree, or returns nil.
func (f *fuser) boolean(n ast.Node) fusedBool {
	if g, root := f.fusedCall(n); g != nil {
		if g.b == nil || !f.useRoot(root) {
			return nil
		}
		return g.b
	}
	switch n := n.(type) {
	case *ast.BoolNode:
		v := n.Value
		return func(*event.Event, *Frame) bool { return v }
	case *ast.UnaryNode:
		if n.Operator != "not" && n.Operator != "!" {
			return nil
		}
		x := f.boolean(n.Node)
		if x == nil {
			return nil
		}
		return func(e *event.Event, fr *Frame) bool { return !x(e, fr) }
	case *ast.BinaryNode:
		return f.binary(n)
	case *ast.CallNode:
		return f.call(n)
	case *ast.ConditionalNode:
		c, a, b := f.boolean(n.Cond), f.boolean(n.Exp1), f.boolean(n.Exp2)
		if c == nil || a == nil || b == nil {
			return nil
		}
		return func(e *event.Event, fr *Frame) bool {
			if c(e, fr) {
				return a(e, fr)
			}
			return b(e, fr)
		}
	case *ast.VariableDeclaratorNode:
		// let name = value; body, value a pure string (it cannot fail
		// nor have effects): the body reads value wherever it names
		// it, which gives what evaluating it once first would.
		var body fusedBool
		if !f.let(n, func() { body = f.boolean(n.Expr) }) {
			return nil
		}
		if body == nil || f.root == "" || f.root == n.Name {
			return nil
		}
		return body
	}
	return nil
}

// let runs fn with n's name bound to its value, a pure string, and the
// outer binding back after; false (fn not run) when the value is not one
// or the name would hide the event or the root.
func (f *fuser) let(n *ast.VariableDeclaratorNode, fn func()) bool {
	if n.Name == f.root || n.Name == "evt" {
		return false
	}
	v := f.str(n.Value)
	if v.fn == nil {
		return false
	}
	outer, had := f.vars[n.Name]
	if f.vars == nil {
		f.vars = map[string]strVal{}
	}
	f.vars[n.Name] = v
	fn()
	if had {
		f.vars[n.Name] = outer
	} else {
		delete(f.vars, n.Name)
	}
	return true
}

func (f *fuser) binary(n *ast.BinaryNode) fusedBool {
	switch n.Operator {
	case "and", "&&", "or", "||":
		a, b := f.boolean(n.Left), f.boolean(n.Right)
		if a == nil || b == nil {
			return nil
		}
		if n.Operator == "and" || n.Operator == "&&" {
			return func(e *event.Event, fr *Frame) bool { return a(e, fr) && b(e, fr) }
		}
		return func(e *event.Event, fr *Frame) bool { return a(e, fr) || b(e, fr) }
	case "in":
		return f.in(n)
	}
	// A string is never nil: X == nil is false, X != nil true (X is still
	// evaluated, for the error a nil event gives).
	if _, ok := n.Right.(*ast.NilNode); ok && (n.Operator == "==" || n.Operator == "!=") {
		a := f.str(n.Left)
		if a.fn == nil {
			return nil
		}
		want := n.Operator == "!="
		return func(e *event.Event, fr *Frame) bool {
			a.fn(e, fr)
			return want
		}
	}
	a := f.str(n.Left)
	if a.fn == nil {
		return nil
	}
	// A constant right side is by far the common case: test it without
	// the indirect call.
	if k, ok := constString(n.Right); ok {
		switch n.Operator {
		case "==":
			return f.oneOf(a, []string{k})
		case "!=":
			eq := f.oneOf(a, []string{k})
			return func(e *event.Event, fr *Frame) bool { return !eq(e, fr) }
		case "contains":
			return func(e *event.Event, fr *Frame) bool { return strings.Contains(a.fn(e, fr), k) }
		case "startsWith":
			return func(e *event.Event, fr *Frame) bool { return strings.HasPrefix(a.fn(e, fr), k) }
		case "endsWith":
			return func(e *event.Event, fr *Frame) bool { return strings.HasSuffix(a.fn(e, fr), k) }
		}
		return nil
	}
	b := f.str(n.Right)
	if b.fn == nil {
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
	return func(e *event.Event, fr *Frame) bool { return op(a.fn(e, fr), b.fn(e, fr)) }
}

// in compiles `x in ['a', 'b']`.
func (f *fuser) in(n *ast.BinaryNode) fusedBool {
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
	if x.fn == nil {
		return nil
	}
	return f.oneOf(x, set)
}

// oneOf tests that x is one of set. The scenarios of a hub open with the
// same few tests (evt.Meta.log_type in [...]): with a frame, each is
// made once per event.
func (f *fuser) oneOf(x strVal, set []string) fusedBool {
	var test fusedBool
	// Hub lists are short: comparing beats hashing.
	if len(set) <= 8 {
		test = func(e *event.Event, fr *Frame) bool {
			s := x.fn(e, fr)
			for _, v := range set {
				if s == v {
					return true
				}
			}
			return false
		}
	} else {
		m := make(map[string]struct{}, len(set))
		for _, v := range set {
			m[v] = struct{}{}
		}
		test = func(e *event.Event, fr *Frame) bool {
			_, ok := m[x.fn(e, fr)]
			return ok
		}
	}
	if x.key == "" {
		return test
	}
	key := x.key + " in ["
	for i, v := range set {
		if i > 0 {
			key += ","
		}
		key += strconv.Quote(v)
	}
	return cachedBool(f.r.h.slots.id(true, key+"]"), test)
}

// call compiles the boolean helpers and rewritten calls.
func (f *fuser) call(n *ast.CallNode) fusedBool {
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
		if re == nil || x.fn == nil {
			return nil
		}
		return func(e *event.Event, fr *Frame) bool { return re.MatchString(x.fn(e, fr)) }
	case id.Value == fnAnyFile && len(args) == 2:
		k, _ := args[0].(*ast.ConstantNode)
		if k == nil {
			return nil
		}
		site, _ := k.Value.(*fileSite)
		x := f.str(args[1])
		if site == nil || x.fn == nil {
			return nil
		}
		// An empty or unknown file: expr would not evaluate x at all.
		return func(e *event.Event, fr *Frame) bool {
			idx := site.index()
			if len(idx.lines) == 0 {
				return site.negate
			}
			return idx.hasOf(x, e, fr) != site.negate
		}
	case id.Value == "RegexpInFile" && len(args) == 2:
		name, ok := constString(args[1])
		x := f.str(args[0])
		if !ok || x.fn == nil {
			return nil
		}
		h := f.r.h
		return func(e *event.Event, fr *Frame) bool { return h.RegexpInFile(x.fn(e, fr), name) }
	case id.Value == "IpInRange" && len(args) == 2:
		a, b := f.str(args[0]), f.str(args[1])
		if a.fn == nil || b.fn == nil {
			return nil
		}
		return func(e *event.Event, fr *Frame) bool { return IpInRange(a.fn(e, fr), b.fn(e, fr)) }
	case (id.Value == "IsIPV4" || id.Value == "IsIPV6" || id.Value == "IsIP") && len(args) == 1:
		x := f.str(args[0])
		if x.fn == nil {
			return nil
		}
		pred := map[string]func(string) bool{"IsIPV4": IsIPV4, "IsIPV6": IsIPV6, "IsIP": IsIP}[id.Value]
		return func(e *event.Event, fr *Frame) bool { return pred(x.fn(e, fr)) }
	}
	return nil
}
