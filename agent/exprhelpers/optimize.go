package exprhelpers

import (
	"fmt"
	"reflect"
	"regexp"
	"sync"

	"github.com/expr-lang/expr/ast"
)

// rewriter is the compile-time pass Options adds (expr.Patch). It runs
// after type checking and before expr's own optimizer and operator
// patching, and only rewrites forms whose result cannot differ:
//
//   - calls of pure string helpers on constants become constants:
//     Upper('/foo') is '/FOO';
//   - any(File("f"), {X op #}) and none(...), where X does not use # and
//     cannot fail, and # may be Upper(#), Lower(#) or JsonExtract(#, 'k'),
//     become one call that evaluates X once and asks an index of the file
//     (anyfile.go); with a predicate `X op # && more`, the loop only runs
//     over the lines that pass the test;
//   - X matches 'constant' uses a regexp compiled once, instead of going
//     through the pattern cache on every evaluation;
//   - what is left of the usual filter shapes runs as Go closures (fuse.go).
//
// Anything it does not recognise exactly is left alone, so a rule that
// fails to compile or errors at run time still does.
type rewriter struct {
	h *Helpers
	// fused maps the calls fuse made to their closures, so a parent can
	// take them in (*ast.CallNode -> *fused). It lives as long as the
	// options; a sync.Map, as compiles may share options.
	fused sync.Map
}

var (
	stringType  = reflect.TypeOf("")
	boolType    = reflect.TypeOf(true)
	stringsType = reflect.TypeOf([]string(nil))
)

// foldable are the helpers that are pure functions of one string.
var foldable = map[string]func(string) string{
	"Upper":         Upper,
	"Lower":         Lower,
	"PathUnescape":  PathUnescape,
	"QueryUnescape": QueryUnescape,
	"PathEscape":    PathEscape,
	"QueryEscape":   QueryEscape,
	"TrimSpace":     TrimSpace,
}

// Names of the functions the rewritten nodes call.
const (
	fnAnyFile    = "rampartAnyFile"
	fnFileFilter = "rampartFileFilter"
	fnMatchRe    = "rampartMatchRe"
)

func (r *rewriter) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.CallNode:
		if s, ok := foldCall(n); ok {
			c := &ast.StringNode{Value: s}
			c.SetType(stringType)
			ast.Patch(node, c)
		}
	case *ast.BuiltinNode:
		if c := r.anyFile(n); c != nil {
			ast.Patch(node, c)
		}
	case *ast.BinaryNode:
		if c := matchConst(n); c != nil {
			ast.Patch(node, c)
		}
	}
	r.fuse(node)
}

// helperCall returns the helper name of a one-argument call, "" if it is
// anything else.
func helperCall(n ast.Node) (string, ast.Node) {
	call, ok := n.(*ast.CallNode)
	if !ok || len(call.Arguments) != 1 {
		return "", nil
	}
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok {
		return "", nil
	}
	return id.Value, call.Arguments[0]
}

func constString(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return n.Value, true
	case *ast.ConstantNode:
		s, ok := n.Value.(string)
		return s, ok
	}
	return "", false
}

func foldCall(n *ast.CallNode) (string, bool) {
	name, arg := helperCall(n)
	f, ok := foldable[name]
	if !ok {
		return "", false
	}
	s, ok := constString(arg)
	if !ok {
		return "", false
	}
	return f(s), true
}

// lineSide recognises #, Upper(#), Lower(#) and JsonExtract(#, 'key')
// (# being the current element, a line of the file).
func lineSide(n ast.Node) (lineFold, bool) {
	if p, ok := n.(*ast.PointerNode); ok {
		return lineFold{}, p.Name == ""
	}
	call, ok := n.(*ast.CallNode)
	if !ok || len(call.Arguments) == 0 {
		return lineFold{}, false
	}
	id, ok := call.Callee.(*ast.IdentifierNode)
	if p, isPtr := call.Arguments[0].(*ast.PointerNode); !ok || !isPtr || p.Name != "" {
		return lineFold{}, false
	}
	switch {
	case id.Value == "Upper" && len(call.Arguments) == 1:
		return lineFold{kind: foldUpper}, true
	case id.Value == "Lower" && len(call.Arguments) == 1:
		return lineFold{kind: foldLower}, true
	case id.Value == "JsonExtract" && len(call.Arguments) == 2:
		if k, ok := constString(call.Arguments[1]); ok {
			return lineFold{kind: foldJSON, key: k}, true
		}
	}
	return lineFold{}, false
}

// fileTest recognises a comparison between a line form (lineSide) and an
// expression x that does not use # (safeString): the index key of the
// test, and x.
func (r *rewriter) fileTest(n ast.Node, file string) (indexKey, ast.Node, bool) {
	bin, ok := n.(*ast.BinaryNode)
	if !ok {
		return indexKey{}, nil, false
	}
	if f, ok := lineSide(bin.Right); ok && r.safeString(bin.Left) {
		op := map[string]int{"==": opEqual, "contains": opContains, "startsWith": opStartsWith, "endsWith": opEndsWith, "matches": opMatches}
		if o, ok := op[bin.Operator]; ok {
			return indexKey{file: file, fold: f, op: o}, bin.Left, true
		}
	} else if f, ok := lineSide(bin.Left); ok && r.safeString(bin.Right) {
		op := map[string]int{"==": opEqual, "contains": opLineContains, "startsWith": opLineStartsWith, "endsWith": opLineEndsWith}
		if o, ok := op[bin.Operator]; ok {
			return indexKey{file: file, fold: f, op: o}, bin.Right, true
		}
	}
	return indexKey{}, nil, false
}

// anyFile rewrites any/none(File("name"), {pred}) or returns nil:
//
//   - when pred is a test fileTest knows, into one call of the site;
//   - when pred is `test && ...` or `test ? ... : false`, File("name")
//     becomes the list of the lines that pass the test (usually none),
//     since the predicate is false, and has no effect, on the others.
//     http-cve-probing runs JsonExtract twice per line of its file for
//     every 404.
func (r *rewriter) anyFile(n *ast.BuiltinNode) ast.Node {
	if (n.Name != "any" && n.Name != "none") || len(n.Arguments) != 2 {
		return nil
	}
	name, arg := helperCall(n.Arguments[0])
	if name != "File" {
		return nil
	}
	file, ok := arg.(*ast.StringNode)
	if !ok {
		return nil
	}
	pred, ok := n.Arguments[1].(*ast.PredicateNode)
	if !ok {
		return nil
	}
	if key, x, ok := r.fileTest(pred.Node, file.Value); ok {
		site := &fileSite{h: r.h, key: key, negate: n.Name == "none"}
		c := &ast.CallNode{
			Callee:    &ast.IdentifierNode{Value: fnAnyFile},
			Arguments: []ast.Node{&ast.ConstantNode{Value: site}, x},
		}
		c.SetType(boolType)
		return c
	}
	var test ast.Node
	switch p := pred.Node.(type) {
	case *ast.BinaryNode:
		if p.Operator == "&&" || p.Operator == "and" {
			test = p.Left
		}
	case *ast.ConditionalNode:
		if b, ok := p.Exp2.(*ast.BoolNode); ok && !b.Value {
			test = p.Cond
		}
	}
	if test == nil {
		return nil
	}
	key, x, ok := r.fileTest(test, file.Value)
	if !ok || key.op == opMatches {
		return nil
	}
	c := &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: fnFileFilter},
		Arguments: []ast.Node{&ast.ConstantNode{Value: &fileSite{h: r.h, key: key}}, cloneSafe(x)},
	}
	c.SetType(stringsType)
	n.Arguments[0] = c
	return nil
}

// cloneSafe copies a tree safeString accepted, so it can appear twice.
func cloneSafe(n ast.Node) ast.Node {
	var c ast.Node
	switch n := n.(type) {
	case *ast.StringNode:
		c = &ast.StringNode{Value: n.Value}
	case *ast.ConstantNode:
		c = &ast.ConstantNode{Value: n.Value}
	case *ast.IdentifierNode:
		c = &ast.IdentifierNode{Value: n.Value}
	case *ast.MemberNode:
		c = &ast.MemberNode{Node: cloneSafe(n.Node), Property: cloneSafe(n.Property), Optional: n.Optional, Method: n.Method}
	case *ast.CallNode:
		args := make([]ast.Node, len(n.Arguments))
		for i, a := range n.Arguments {
			args[i] = cloneSafe(a)
		}
		c = &ast.CallNode{Callee: cloneSafe(n.Callee), Arguments: args}
	default:
		panic(fmt.Sprintf("exprhelpers: cloneSafe(%T)", n))
	}
	c.SetNature(*n.Nature())
	c.SetLocation(n.Location())
	return c
}

// safeString reports whether n is a string expression that cannot fail
// nor have effects, so evaluating it once, outside the loop (and even when
// the file is empty), changes nothing: constants, variables, field and
// map-key accesses on typed structs and maps, and pure helpers of those.
// One failure is left: a nil root pointer (evt), which the engines never
// pass; expr reports it too, unless the file is empty.
func (r *rewriter) safeString(n ast.Node) bool {
	return n.Type() == stringType && r.safe(n)
}

func (r *rewriter) safe(n ast.Node) bool {
	if f, _ := (&fuser{r: r}).fusedCall(n); f != nil {
		return f.s.fn != nil
	}
	switch n := n.(type) {
	case *ast.StringNode:
		return true
	case *ast.ConstantNode:
		_, ok := n.Value.(string)
		return ok
	case *ast.IdentifierNode:
		return true
	case *ast.MemberNode:
		if n.Optional {
			return false
		}
		if _, ok := n.Property.(*ast.StringNode); !ok {
			return false
		}
		// Only the root may be a pointer: fetching through a nil one
		// fails, and expr would not evaluate x for an empty file.
		t := n.Node.Type()
		if _, root := n.Node.(*ast.IdentifierNode); root && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case t.Kind() == reflect.Map && t.Key() == stringType:
		case t.Kind() == reflect.Struct:
		default:
			return false
		}
		return r.safe(n.Node)
	case *ast.CallNode:
		name, arg := helperCall(n)
		if _, ok := foldable[name]; !ok || arg == nil {
			return false
		}
		return r.safeString(arg)
	}
	return false
}

// matchConst rewrites `X matches 'pattern'` (X a string) into a call with
// the compiled pattern. An invalid pattern is left to the matches
// operator, which treats it as never matching.
func matchConst(n *ast.BinaryNode) ast.Node {
	if n.Operator != "matches" || n.Left.Type() != stringType {
		return nil
	}
	pat, ok := constString(n.Right)
	if !ok {
		return nil
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil
	}
	c := &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: fnMatchRe},
		Arguments: []ast.Node{n.Left, &ast.ConstantNode{Value: re}},
	}
	c.SetType(boolType)
	return c
}
