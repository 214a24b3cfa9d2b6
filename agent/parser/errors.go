package parser

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadError says where a parser file is wrong: the file, the hub item, the
// YAML document, the node within it, the offending key and its line.
// Expression errors keep expr's "(line:column)" within the expression.
type LoadError struct {
	File string
	Item string // the hub item (Item.Name)
	Name string // the document's name, when it differs from Item
	Doc  int    // 1-based YAML document, 0 for the whole file
	Node string // sub-node path, e.g. "node 1" or "node 1/node 0"; "" for the document
	Key  string // e.g. filter, grok.pattern, statics[2].expression
	Line int    // YAML line of Key (or of the document), 0 when unknown
	Err  error
}

func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Doc > 0 {
		fmt.Fprintf(&b, ": document %d", e.Doc)
	}
	switch {
	case e.Item != "" && e.Name != "":
		fmt.Fprintf(&b, " (%s, %s)", e.Item, e.Name)
	case e.Item != "":
		fmt.Fprintf(&b, " (%s)", e.Item)
	case e.Name != "":
		fmt.Fprintf(&b, " (%s)", e.Name)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ", line %d", e.Line)
	}
	if e.Node != "" {
		fmt.Fprintf(&b, ": %s", e.Node)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *LoadError) Unwrap() error { return e.Err }

// locate unwraps compile's error chain (sub-nodes, then the key) into the
// LoadError's Node, Key, Line and Err.
func (e *LoadError) locate(err error) {
	var path []string
	for {
		var ne *nodeError
		if !errors.As(err, &ne) {
			break
		}
		path = append(path, fmt.Sprintf("node %d", ne.index))
		err = ne.err
	}
	e.Node = strings.Join(path, "/")
	e.Err = err
	var ke *keyError
	if errors.As(err, &ke) {
		e.Key, e.Err = ke.key, ke.err
		if ke.line > 0 {
			e.Line = ke.line
		}
	}
}

// keyError is a compile failure tied to one key of a node.
type keyError struct {
	key  string
	line int
	err  error
}

func (e *keyError) Error() string { return e.key + ": " + e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

func keyErr(key string, line int, err error) error { return &keyError{key: key, line: line, err: err} }

// nodeError is a compile failure inside sub-node index of a node.
type nodeError struct {
	index int
	err   error
}

func (e *nodeError) Error() string { return fmt.Sprintf("node %d: %v", e.index, e.err) }
func (e *nodeError) Unwrap() error { return e.err }

// mappingOf returns n's mapping (unwrapping a document), or nil.
func mappingOf(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	return n
}

// entry returns the key and value nodes of key in mapping m.
func entry(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// keyLine is the line of key in mapping m, 0 when absent.
func keyLine(m *yaml.Node, key string) int {
	if k, _ := entry(m, key); k != nil {
		return k.Line
	}
	return 0
}

// childMap is the mapping under key in m, or nil.
func childMap(m *yaml.Node, key string) *yaml.Node {
	_, v := entry(m, key)
	return mappingOf(v)
}

// seqItem is item i of the sequence under key in m, or nil.
func seqItem(m *yaml.Node, key string, i int) *yaml.Node {
	_, v := entry(m, key)
	if v == nil || v.Kind != yaml.SequenceNode || i < 0 || i >= len(v.Content) {
		return nil
	}
	return v.Content[i]
}

// itemLine is the line of item i of the sequence under key (the key's line
// when the value is not a sequence), 0 when absent.
func itemLine(m *yaml.Node, key string, i int) int {
	if it := seqItem(m, key, i); it != nil {
		return it.Line
	}
	return keyLine(m, key)
}

// yamlLine finds the "line N:" yaml.v3 puts in its syntax and type errors.
var yamlLine = regexp.MustCompile(`line (\d+):`)

// yamlErrLine is the first line an error from yaml.v3 names, or def.
func yamlErrLine(err error, def int) int {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			return n
		}
	}
	return def
}
