package leakybucket

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/models"
)

// MaxContextValueLen bounds one context entry of an alert (the JSON array
// of its values), upstream's default: the LAPI stores meta values in a
// column of that size.
const MaxContextValueLen = 4000

// contextKey is one compiled alert context entry.
type contextKey struct {
	key   string
	exprs []*vm.Program
	// fns holds, per expression, its closure when it compiled to one
	// (exprhelpers.DirectFrame), else nil: it then runs in the VM.
	fns   []directFn
	reads fieldMask
}

// SetContexts sets the alert context (upstream's "console context"): for
// each key, expressions over `evt` whose values, gathered from the queued
// events of an overflowing bucket, go into the alert's meta. It must be
// called before pouring starts.
func (e *Engine) SetContexts(contexts map[string][]string, helpers *exprhelpers.Helpers) error {
	keys := make([]string, 0, len(contexts))
	for k := range contexts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	compiled := make([]contextKey, 0, len(keys))
	for _, k := range keys {
		c := contextKey{key: k}
		for _, src := range contexts[k] {
			p, err := expr.Compile(src, envOptions(helpers, evtEnv())...)
			if err != nil {
				return fmt.Errorf("context %s: %q: %w", k, src, err)
			}
			c.exprs = append(c.exprs, p)
			var fn directFn
			if f, ok := exprhelpers.DirectFrame(p); ok {
				fn = f
			}
			c.fns = append(c.fns, fn)
			c.reads |= fieldsIn(src)
		}
		if len(c.exprs) > 0 {
			compiled = append(compiled, c)
		}
	}
	e.contexts = compiled
	e.computeReads()
	return nil
}

// contextFile is upstream's context file format.
type contextFile struct {
	Context map[string][]string `yaml:"context"`
}

// LoadContexts reads context files (`context: {key: [expr, ...]}`, as the
// hub's contexts/) and merges them: a key's expressions are those of every
// file, in order, without repeats.
func LoadContexts(paths ...string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading context: %w", err)
		}
		if err := MergeContexts(out, data); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return out, nil
}

// MergeContexts parses one context file's content and adds its keys to
// dst, skipping expressions dst already has for the key.
func MergeContexts(dst map[string][]string, data []byte) error {
	var f contextFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return err
	}
	keys := make([]string, 0, len(f.Context))
	for k := range f.Context {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, x := range f.Context[k] {
			if x != "" && !slices.Contains(dst[k], x) {
				dst[k] = append(dst[k], x)
			}
		}
	}
	return nil
}

// alertContext evaluates the contexts over the queued events: for each key
// (sorted), its distinct non-empty values in queue order, as a JSON array
// string of at most MaxContextValueLen bytes.
func (e *Engine) alertContext(queue []*event.Event) []models.Meta {
	if len(e.contexts) == 0 {
		return nil
	}
	var out []models.Meta
	var vals []string
	for _, c := range e.contexts {
		vals = vals[:0]
		for _, qe := range queue {
			e.evtEnv["evt"] = qe
			for i, p := range c.exprs {
				var res any
				var err error
				if f := c.fns[i]; f != nil {
					res, err = f(qe, nil)
				} else {
					res, err = e.vm.Run(p, e.evtEnv)
				}
				if err != nil {
					continue
				}
				for _, v := range contextStrings(res) {
					if v != "" && !slices.Contains(vals, v) {
						vals = append(vals, v)
					}
				}
			}
		}
		e.evtEnv["evt"] = nil
		if len(vals) > 0 {
			out = append(out, models.Meta{Key: c.key, Value: contextValue(vals, MaxContextValueLen)})
		}
	}
	return out
}

// contextStrings turns an expression's value into context values: strings
// and numbers, or lists of them.
func contextStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case int:
		return []string{strconv.Itoa(v)}
	case int64:
		return []string{strconv.FormatInt(v, 10)}
	case float64:
		return []string{strconv.FormatFloat(v, 'f', -1, 64)}
	case []string:
		return v
	case []any:
		var out []string
		for _, x := range v {
			if _, nested := x.([]any); !nested {
				out = append(out, contextStrings(x)...)
			}
		}
		return out
	}
	return nil
}

// contextValue encodes values as a JSON array of at most max bytes: the
// last values are left out first, and a lone value too long is cut (on a
// rune boundary) and marked with "...".
func contextValue(vals []string, max int) string {
	vals = slices.Clone(vals)
	for len(vals) > 1 {
		if b, _ := json.Marshal(vals); len(b) <= max {
			return string(b)
		}
		vals = vals[:len(vals)-1]
	}
	if b, _ := json.Marshal(vals); len(b) <= max {
		return string(b)
	}
	// The encoded length grows with the prefix kept, so the longest prefix
	// that fits is found by bisection; escaping makes it hard to compute.
	v := vals[0]
	encode := func(cut int) []byte {
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		b, _ := json.Marshal([]string{v[:cut] + "..."})
		return b
	}
	lo, hi := 0, len(v) // encode(lo) fits, encode(hi) does not
	if len(encode(0)) > max {
		return "[]"
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if len(encode(mid)) <= max {
			lo = mid
		} else {
			hi = mid
		}
	}
	return string(encode(lo))
}
