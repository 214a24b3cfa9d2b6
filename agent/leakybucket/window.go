package leakybucket

import (
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
)

// A conditional bucket with capacity -1 keeps every event poured into it
// for as long as it lives, and ssh-time-based-bf's buckets live for hours
// on a busy host. Most conditions only look at the last few events of some
// kind, though, so the engine may forget older ones. The rule, checked on
// the condition's syntax tree:
//
//   - the condition reads `queue` only as `filter(queue.Queue, P)`, where P
//     depends on nothing but the element `#` (no `queue`, `$env`, `#index`
//     or other closure variables);
//   - each such filtered list (directly, or through a `let` name) is used
//     only as `len(L) >= N`, `len(L) > N` (or the mirrored `N <= len(L)`,
//     `N < len(L)`) with N an integer literal, or as `L[-K:]`.
//
// Then the condition's value depends only on the last W events matching
// each P, W being the largest N (N+1 for >) or K, and an older event can be
// dropped once every P it matches has W newer matches: len(L) >= N gives
// the same answer with W >= N of them, and L[-K:] the same K events. Events
// matching no P are dropped as soon as they are the oldest. The alert then
// lists the events kept, not every event ever poured; events_count, the
// start time and the source do not change. A P that fails on an event
// makes upstream's filter fail for as long as that event is queued, so the
// bucket then stops trimming.

// windowPred is one P: match runs `map(queue.Queue, {P})` over a one-event
// queue to tell whether that event matches; direct, when P compiles to one
// Go closure with `#` read as `evt` (exprhelpers.DirectFrame), tells it
// without the VM.
type windowPred struct {
	match  *vm.Program
	direct directFn
	keep   int
}

// maxWindowPreds bounds the predicates so a bit set per queued event holds
// them.
const maxWindowPreds = 64

// windowVar is the env entry through which the windowed condition (see
// compileWindow) reads the queued events matching each P: a [][]any, one
// list per P, as filter builds them. No hub identifier starts with
// underscores; a condition declaring it keeps the plain condition.
const windowVar = "__rampart_window"

// compileWindow compiles the predicates of a condition following the rule
// above and the windowed condition: the condition with each
// `filter(queue.Queue, P)` replaced by the list of the queued events
// matching P, which the engine keeps as it pours (window.matched), so that
// each P runs once per event rather than once per queued event at every
// pour. cond is nil when the rewrite fails; preds nil when the rule does
// not hold.
func compileWindow(condition string, helpers *exprhelpers.Helpers) (preds []windowPred, cond *vm.Program) {
	found, ok := queueWindow(condition)
	if !ok || len(found) > maxWindowPreds {
		return nil, nil
	}
	out := make([]windowPred, 0, len(found))
	index := make(map[string]int, len(found))
	for i, p := range found {
		prog, err := expr.Compile("map(queue.Queue, {"+p.src+"})", envOptions(helpers, map[string]any{"queue": &Queue{}})...)
		if err != nil {
			return nil, nil
		}
		out = append(out, windowPred{match: prog, direct: directPred(p.src, helpers), keep: p.keep})
		index[p.src] = i
	}
	return out, windowCondition(condition, index, helpers)
}

// directPred compiles P as an expression on `evt` and returns its closure,
// nil when it has none. A P holding a predicate of its own is left to the
// VM: its inner `#` is another element.
func directPred(src string, helpers *exprhelpers.Helpers) directFn {
	if helpers == nil {
		return nil
	}
	tree, err := parser.Parse("map(queue.Queue, {" + src + "})")
	if err != nil {
		return nil
	}
	m, ok := tree.Node.(*ast.BuiltinNode)
	if !ok || len(m.Arguments) != 2 {
		return nil
	}
	pred, ok := m.Arguments[1].(*ast.PredicateNode)
	if !ok {
		return nil
	}
	nested := false
	ast.Walk(&pred.Node, visitor(func(n *ast.Node) {
		switch x := (*n).(type) {
		case *ast.PredicateNode:
			nested = true
		case *ast.PointerNode:
			if x.Name == "" {
				ast.Patch(n, &ast.IdentifierNode{Value: "evt"})
			}
		}
	}))
	if nested {
		return nil
	}
	prog, err := expr.Compile(pred.Node.String(), envOptions(helpers, evtEnv())...)
	if err != nil {
		return nil
	}
	f, ok := exprhelpers.DirectFrame(prog)
	if !ok {
		return nil
	}
	return f
}

// windowCondition compiles the condition with each `filter(queue.Queue,
// P)` read from windowVar, the list of P index[P] (see compileWindow). Its
// types are the condition's: the lists are declared []*event.Event, as
// filter's result is, and hold what filter's does at run time ([]any of
// the queued *event.Event).
func windowCondition(condition string, index map[string]int, helpers *exprhelpers.Helpers) *vm.Program {
	env := queueEnv()
	env[windowVar] = [][]*event.Event{}
	queues, patched, failed := 0, 0, false
	patch := visitor(func(n *ast.Node) {
		switch x := (*n).(type) {
		case *ast.IdentifierNode:
			if x.Value == "queue" {
				queues++
			}
		case *ast.VariableDeclaratorNode:
			if x.Name == windowVar {
				failed = true
			}
		case *ast.BuiltinNode:
			if x.Name != "filter" || len(x.Arguments) != 2 || !isQueueQueue(x.Arguments[0]) {
				return
			}
			pred, ok := x.Arguments[1].(*ast.PredicateNode)
			if !ok {
				return
			}
			i, ok := index[pred.Node.String()]
			if !ok {
				failed = true
				return
			}
			ast.Patch(n, &ast.MemberNode{Node: &ast.IdentifierNode{Value: windowVar}, Property: &ast.IntegerNode{Value: i}})
			patched++
		}
	})
	opts := append([]expr.Option{expr.Env(env), expr.Patch(patch)}, envOptions(helpers, env)[1:]...)
	prog, err := expr.Compile(condition, opts...)
	// every read of the queue (each inside a filter, queueWindow checked)
	// must have been replaced
	if err != nil || failed || patched == 0 || patched != queues {
		return nil
	}
	return prog
}

// visitor is an ast.Visitor of a function.
type visitor func(*ast.Node)

func (v visitor) Visit(n *ast.Node) { v(n) }

type predWindow struct {
	src  string
	keep int
}

// queueWindow applies the rule above to a condition's source: the
// predicates with how many of their last matches the condition can read,
// or ok false when the rule does not hold.
func queueWindow(src string) (preds []predWindow, ok bool) {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, false
	}
	parents := map[ast.Node]ast.Node{}
	var nodes []ast.Node
	if !collect(tree.Node, nil, parents, &nodes) {
		return nil, false
	}
	lets := map[string]bool{}
	queueRefs := 0
	for _, n := range nodes {
		switch n := n.(type) {
		case *ast.VariableDeclaratorNode:
			if lets[n.Name] || n.Name == "queue" {
				return nil, false
			}
			lets[n.Name] = true
		case *ast.IdentifierNode:
			switch n.Value {
			case "queue":
				queueRefs++
			case "$env":
				return nil, false
			}
		}
	}
	index := map[string]int{}
	filters := 0
	for _, n := range nodes {
		f, isBuiltin := n.(*ast.BuiltinNode)
		if !isBuiltin || f.Name != "filter" || len(f.Arguments) != 2 || !isQueueQueue(f.Arguments[0]) {
			continue
		}
		pred, isPred := f.Arguments[1].(*ast.PredicateNode)
		if !isPred || !elementOnly(pred.Node, lets) {
			return nil, false
		}
		keep, ok := filteredUse(f, parents, nodes)
		if !ok {
			return nil, false
		}
		filters++
		key := pred.Node.String()
		if i, seen := index[key]; seen {
			preds[i].keep = max(preds[i].keep, keep)
			continue
		}
		index[key] = len(preds)
		preds = append(preds, predWindow{src: key, keep: keep})
	}
	// every read of the queue must be one of those filters
	if filters == 0 || queueRefs != filters {
		return nil, false
	}
	return preds, true
}

func isQueueQueue(n ast.Node) bool {
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Optional || m.Method {
		return false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	prop, ok2 := m.Property.(*ast.StringNode)
	return ok && ok2 && id.Value == "queue" && prop.Value == "Queue"
}

// elementOnly reports whether a predicate reads nothing but its element.
func elementOnly(n ast.Node, lets map[string]bool) bool {
	var nodes []ast.Node
	if !collect(n, nil, map[ast.Node]ast.Node{}, &nodes) {
		return false
	}
	for _, c := range nodes {
		switch c := c.(type) {
		case *ast.IdentifierNode:
			if c.Value == "queue" || c.Value == "$env" || lets[c.Value] {
				return false
			}
		case *ast.PointerNode:
			if c.Name != "" {
				return false
			}
		case *ast.VariableDeclaratorNode:
			return false
		}
	}
	return true
}

// filteredUse returns how many trailing elements the uses of a filtered
// list read, or ok false for a use outside the rule.
func filteredUse(f ast.Node, parents map[ast.Node]ast.Node, nodes []ast.Node) (int, bool) {
	v, isLet := parents[f].(*ast.VariableDeclaratorNode)
	if !isLet || v.Value != f {
		return useWindow(f, parents)
	}
	keep := 1
	for _, n := range nodes {
		id, ok := n.(*ast.IdentifierNode)
		if !ok || id.Value != v.Name {
			continue
		}
		k, ok := useWindow(id, parents)
		if !ok {
			return 0, false
		}
		keep = max(keep, k)
	}
	return keep, true
}

func useWindow(n ast.Node, parents map[ast.Node]ast.Node) (int, bool) {
	switch p := parents[n].(type) {
	case *ast.BuiltinNode:
		if p.Name != "len" || len(p.Arguments) != 1 {
			return 0, false
		}
		cmp, ok := parents[p].(*ast.BinaryNode)
		if !ok {
			return 0, false
		}
		switch {
		case cmp.Left == p:
			if k, ok := intLit(cmp.Right); ok && k >= 0 {
				switch cmp.Operator {
				case ">=":
					return max(k, 1), true
				case ">":
					return k + 1, true
				}
			}
		case cmp.Right == p:
			if k, ok := intLit(cmp.Left); ok && k >= 0 {
				switch cmp.Operator {
				case "<=":
					return max(k, 1), true
				case "<":
					return k + 1, true
				}
			}
		}
	case *ast.SliceNode:
		if p.Node == n && p.To == nil && p.From != nil {
			if k, ok := intLit(p.From); ok && k < 0 {
				return -k, true
			}
		}
	}
	return 0, false
}

func intLit(n ast.Node) (int, bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return n.Value, true
	case *ast.UnaryNode:
		if i, ok := n.Node.(*ast.IntegerNode); ok && n.Operator == "-" {
			return -i.Value, true
		}
	}
	return 0, false
}

// collect lists a tree's nodes (parents first) and records each node's
// parent. It reports false on a node kind it does not know, so a newer expr
// with new node kinds turns trimming off instead of misjudging a condition.
func collect(n, parent ast.Node, parents map[ast.Node]ast.Node, out *[]ast.Node) bool {
	if n == nil {
		return true
	}
	parents[n] = parent
	*out = append(*out, n)
	var kids []ast.Node
	switch n := n.(type) {
	case *ast.NilNode, *ast.IdentifierNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode,
		*ast.StringNode, *ast.BytesNode, *ast.ConstantNode, *ast.PointerNode:
	case *ast.UnaryNode:
		kids = []ast.Node{n.Node}
	case *ast.BinaryNode:
		kids = []ast.Node{n.Left, n.Right}
	case *ast.ChainNode:
		kids = []ast.Node{n.Node}
	case *ast.MemberNode:
		kids = []ast.Node{n.Node, n.Property}
	case *ast.SliceNode:
		kids = []ast.Node{n.Node, n.From, n.To}
	case *ast.CallNode:
		kids = append([]ast.Node{n.Callee}, n.Arguments...)
	case *ast.BuiltinNode:
		kids = n.Arguments
	case *ast.PredicateNode:
		kids = []ast.Node{n.Node}
	case *ast.VariableDeclaratorNode:
		kids = []ast.Node{n.Value, n.Expr}
	case *ast.SequenceNode:
		kids = n.Nodes
	case *ast.ConditionalNode:
		kids = []ast.Node{n.Cond, n.Exp1, n.Exp2}
	case *ast.ArrayNode:
		kids = n.Nodes
	case *ast.MapNode:
		for _, p := range n.Pairs {
			kids = append(kids, p)
		}
	case *ast.PairNode:
		kids = []ast.Node{n.Key, n.Value}
	default:
		return false
	}
	for _, k := range kids {
		if !collect(k, n, parents, out) {
			return false
		}
	}
	return true
}
