package exprhelpers

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/event"
)

// The pure helpers of upstream CrowdSec's pkg/exprhelpers that hub rules
// call and that funcs.go did not have. They follow upstream's semantics
// (argument types, what bad input gives, which ones report an error to
// the VM) so hub rules written against upstream behave the same here.

// UnmarshalJSON decodes jsonBlob and stores the value in target[key]
// (parsers call it as UnmarshalJSON(evt.Parsed.message, evt.Unmarshaled,
// "caddy") in ["", nil]). As upstream, bad JSON is logged and the error is
// the function's value, not a VM error, so the filter is simply false.
func UnmarshalJSON(jsonBlob string, target map[string]any, key string) error {
	var out any
	if err := json.Unmarshal([]byte(jsonBlob), &out); err != nil {
		log.WithFields(log.Fields{"key": key, "error": err}).Error("UnmarshalJSON: bad JSON")
		return fmt.Errorf("UnmarshalJSON %q: %w", key, err)
	}
	if target == nil {
		// Upstream would panic writing a nil map; say what is wrong instead.
		return fmt.Errorf("UnmarshalJSON %q: target map is nil", key)
	}
	target[key] = out
	return nil
}

// kvPattern is upstream's key=value grammar: a key without '=' or
// spaces, then a double-quoted value (backslash escapes kept as written),
// a bare value, or nothing.
var kvPattern = regexp.MustCompile(`([^=\s]+)=(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^=\s]+)|\s*)`)

// kvTarget returns target[prefix] as a map[string]string, creating it if
// absent; a value of another type there is an error, as upstream.
func kvTarget(fn string, target map[string]any, prefix string) (map[string]string, error) {
	if target == nil {
		return nil, fmt.Errorf("%s %q: target map is nil", fn, prefix)
	}
	v, ok := target[prefix]
	if !ok {
		m := map[string]string{}
		target[prefix] = m
		return m, nil
	}
	m, ok := v.(map[string]string)
	if !ok {
		return nil, fmt.Errorf("%s %q: target is a %T, not a map[string]string", fn, prefix, v)
	}
	return m, nil
}

// ParseKV fills target[prefix] (a map[string]string) with the key=value
// pairs of blob; quoted values lose their quotes. As upstream, a line
// without any pair, or a target of the wrong type, is a VM error.
func ParseKV(blob string, target map[string]any, prefix string) error {
	matches := kvPattern.FindAllStringSubmatch(blob, -1)
	if matches == nil {
		return fmt.Errorf("ParseKV %q: no key=value pair in line", prefix)
	}
	m, err := kvTarget("ParseKV", target, prefix)
	if err != nil {
		return err
	}
	for _, g := range matches {
		v := g[2]
		if v == "" {
			v = g[3]
		}
		m[g[1]] = v
	}
	return nil
}

// ParseKVLax is ParseKV for sloppier lines: values may be single- or
// double-quoted (the backslash escapes inside are undone), a bare value
// runs to the next space and may contain '=', and words without '=' are
// skipped instead of breaking the parse.
func ParseKVLax(blob string, target map[string]any, prefix string) error {
	pairs := map[string]string{}
	i, n := 0, len(blob)
	for i < n {
		for i < n && isSpace(blob[i]) {
			i++
		}
		start := i
		for i < n && blob[i] != '=' && !isSpace(blob[i]) {
			i++
		}
		if i >= n || blob[i] != '=' || i == start {
			// A word that is no key: skip it.
			for i < n && !isSpace(blob[i]) {
				i++
			}
			continue
		}
		key := blob[start:i]
		i++ // '='
		if i < n && (blob[i] == '"' || blob[i] == '\'') {
			q := blob[i]
			i++
			var b strings.Builder
			for i < n && blob[i] != q {
				if blob[i] == '\\' && i+1 < n {
					i++
				}
				b.WriteByte(blob[i])
				i++
			}
			i++ // closing quote (or past the end of an unterminated one)
			pairs[key] = b.String()
			continue
		}
		vs := i
		for i < n && !isSpace(blob[i]) {
			i++
		}
		pairs[key] = blob[vs:i]
	}
	if len(pairs) == 0 {
		return fmt.Errorf("ParseKVLax %q: no key=value pair in line", prefix)
	}
	m, err := kvTarget("ParseKVLax", target, prefix)
	if err != nil {
		return err
	}
	for k, v := range pairs {
		m[k] = v
	}
	return nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// B64Decode decodes standard base64; bad input is a VM error, as upstream.
func B64Decode(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("B64Decode: %w", err)
	}
	return string(b), nil
}

// ParseUnix turns Unix-epoch seconds ("1672239773", or "1672239773.359"
// whose fraction is ignored, as upstream) into RFC 3339 in UTC; "" when
// the seconds are not a positive integer.
func ParseUnix(s string) string {
	sec, _, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || n <= 0 {
		return ""
	}
	return time.Unix(n, 0).UTC().Format(time.RFC3339)
}

// ParseQuery parses a URL query string as upstream does: pairs are split
// on '&' only (a ';' stays in the value), '+' is a space, and a '%'
// escape that is not two hex digits is kept as written. It never fails:
// net/url's parser gives up on such input, which would hide an attack
// payload from the rule that looks at it.
func ParseQuery(q string) url.Values {
	v := url.Values{}
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if pair == "" {
			continue
		}
		k, val, _ := strings.Cut(pair, "=")
		k = unescapeLenient(k)
		v[k] = append(v[k], unescapeLenient(val))
	}
	return v
}

// unescapeLenient undoes query escapes ('+' and valid %XX), keeping
// anything else as is.
func unescapeLenient(s string) string {
	if !strings.ContainsAny(s, "+%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// FloatApproxEqual reports whether a and b differ by less than 1e-6.
func FloatApproxEqual(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// Hostname is the machine's host name.
func Hostname() (string, error) { return os.Hostname() }

// TimeNow is the current UTC time in RFC 3339.
func TimeNow() string { return time.Now().UTC().Format(time.RFC3339) }

// KeyExists reports whether m has key.
func KeyExists(key string, m map[string]any) bool {
	_, ok := m[key]
	return ok
}

// Get returns arr[i], or "" when i is out of range.
func Get(arr []string, i int) string {
	if i < 0 || i >= len(arr) {
		return ""
	}
	return arr[i]
}

// Flatten flattens nested slices and arrays into one []any.
func Flatten(items ...any) []any {
	var out []any
	for _, it := range items {
		out = flattenInto(out, it)
	}
	return out
}

func flattenInto(out []any, v any) []any {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return append(out, v)
	}
	for i := range rv.Len() {
		out = flattenInto(out, rv.Index(i).Interface())
	}
	return out
}

// Distinct returns the elements of a slice without repeats, in first-seen
// order; nil for a non-slice. Elements that cannot be map keys (maps,
// slices) are compared by their printed form.
func Distinct(items any) []any {
	rv := reflect.ValueOf(items)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil
	}
	seen := map[any]struct{}{}
	out := make([]any, 0, rv.Len())
	for i := range rv.Len() {
		v := rv.Index(i).Interface()
		k := v
		if v != nil && !reflect.TypeOf(v).Comparable() {
			k = fmt.Sprintf("%T:%v", v, v)
		}
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, v)
	}
	return out
}

// FlattenDistinct is Distinct(Flatten(items...)).
func FlattenDistinct(items ...any) []any { return Distinct(Flatten(items...)) }

// ToJsonString marshals v to JSON; "" when it cannot be.
func ToJsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		log.WithError(err).Error("ToJsonString: cannot marshal")
		return ""
	}
	return string(b)
}

// LogInfo logs a formatted message at info level and returns true, so a
// rule can call it inside a filter.
func LogInfo(format string, a ...any) bool {
	log.Infof(format, a...)
	return true
}

// Match reports whether name matches the glob pattern, where '*' is any
// run of characters and '?' any one character (case-sensitive).
func Match(pattern, name string) bool {
	p, s := []rune(pattern), []rune(name)
	// Iterative glob with one backtrack point: linear in practice, no
	// exponential blow-up on patterns like "*a*a*a*b".
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// toTimes extracts the times of items, accepting what MedianInterval
// accepts; ok is false for anything else.
func toTimes(items any) ([]time.Time, bool) {
	var ts []time.Time
	add := func(x any) bool {
		switch t := x.(type) {
		case time.Time:
			ts = append(ts, t)
		case *time.Time:
			if t == nil {
				return false
			}
			ts = append(ts, *t)
		case event.Event:
			ts = append(ts, t.Time)
		case *event.Event:
			if t == nil {
				return false
			}
			ts = append(ts, t.Time)
		default:
			return false
		}
		return true
	}
	rv := reflect.ValueOf(items)
	if rv.Kind() != reflect.Slice {
		return nil, false
	}
	for i := range rv.Len() {
		if !add(rv.Index(i).Interface()) {
			return nil, false
		}
	}
	return ts, true
}

// AverageInterval is the mean interval between consecutive times, in the
// order given (as upstream); 0 for fewer than 2 times or bad input.
func AverageInterval(items any) time.Duration {
	ts, ok := toTimes(items)
	if !ok || len(ts) < 2 {
		return 0
	}
	var total time.Duration
	for i := 1; i < len(ts); i++ {
		total += ts[i].Sub(ts[i-1])
	}
	return total / time.Duration(len(ts)-1)
}

// Argument accessors for the adapters below (see str in options.go).
func strMap(p []any, i int) map[string]any {
	if i >= len(p) {
		return nil
	}
	m, _ := p[i].(map[string]any)
	return m
}

func intArg(p []any, i int) int {
	if i >= len(p) {
		return 0
	}
	switch v := p[i].(type) {
	case int:
		return v
	case int64:
		return int(v)
	case float64:
		return int(v)
	}
	return 0
}

func floatArg(p []any, i int) float64 {
	if i >= len(p) {
		return 0
	}
	switch v := p[i].(type) {
	case float64:
		return v
	case int:
		return float64(v)
	}
	return 0
}

func strSlice(p []any, i int) []string {
	if i >= len(p) {
		return nil
	}
	switch v := p[i].(type) {
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

func arg0(p []any) any {
	if len(p) == 0 {
		return nil
	}
	return p[0]
}

// kvFn adapts UnmarshalJSON-style helpers (blob, target, key).
func kvFn(f func(string, map[string]any, string) error) func(...any) (any, error) {
	return func(p ...any) (any, error) {
		if err := f(str(p, 0), strMap(p, 1), str(p, 2)); err != nil {
			return nil, err
		}
		return nil, nil
	}
}

func str2Fn(f func(string, string) string) func(...any) (any, error) {
	return func(p ...any) (any, error) { return f(str(p, 0), str(p, 1)), nil }
}

func str2SliceFn(f func(string, string) []string) func(...any) (any, error) {
	return func(p ...any) (any, error) { return f(str(p, 0), str(p, 1)), nil }
}

func strSliceIntFn(f func(string, string, int) []string) func(...any) (any, error) {
	return func(p ...any) (any, error) { return f(str(p, 0), str(p, 1), intArg(p, 2)), nil }
}

var sigTimes = []any{
	new(func([]any) time.Duration),
	new(func([]time.Time) time.Duration),
	new(func([]event.Event) time.Duration),
	new(func([]*event.Event) time.Duration),
}

// upstreamOptions registers the helpers of this file.
func upstreamOptions() []expr.Option {
	return []expr.Option{
		expr.Function("UnmarshalJSON", func(p ...any) (any, error) {
			// The error is the value (nil on success), not a VM error.
			if err := UnmarshalJSON(str(p, 0), strMap(p, 1), str(p, 2)); err != nil {
				return err, nil
			}
			return nil, nil
		}, new(func(string, map[string]any, string) error)),
		expr.Function("ParseKV", kvFn(ParseKV), new(func(string, map[string]any, string) any)),
		expr.Function("ParseKVLax", kvFn(ParseKVLax), new(func(string, map[string]any, string) any)),

		expr.Function("TrimPrefix", str2Fn(strings.TrimPrefix), sigStr2Str),
		expr.Function("TrimSuffix", str2Fn(strings.TrimSuffix), sigStr2Str),
		expr.Function("Trim", str2Fn(strings.Trim), sigStr2Str),
		expr.Function("TrimLeft", str2Fn(strings.TrimLeft), sigStr2Str),
		expr.Function("TrimRight", str2Fn(strings.TrimRight), sigStr2Str),
		expr.Function("Fields", func(p ...any) (any, error) {
			return strings.Fields(str(p, 0)), nil
		}, new(func(string) []string)),
		expr.Function("Index", func(p ...any) (any, error) {
			return strings.Index(str(p, 0), str(p, 1)), nil
		}, new(func(string, string) int)),
		expr.Function("IndexAny", func(p ...any) (any, error) {
			return strings.IndexAny(str(p, 0), str(p, 1)), nil
		}, new(func(string, string) int)),
		expr.Function("Join", func(p ...any) (any, error) {
			return strings.Join(strSlice(p, 0), str(p, 1)), nil
		}, new(func([]string, string) string), new(func([]any, string) string)),
		expr.Function("SplitN", strSliceIntFn(strings.SplitN), new(func(string, string, int) []string)),
		expr.Function("SplitAfter", str2SliceFn(strings.SplitAfter), sigStr2Slice),
		expr.Function("SplitAfterN", strSliceIntFn(strings.SplitAfterN), new(func(string, string, int) []string)),
		expr.Function("Replace", func(p ...any) (any, error) {
			return strings.Replace(str(p, 0), str(p, 1), str(p, 2), intArg(p, 3)), nil
		}, new(func(string, string, string, int) string)),
		expr.Function("ReplaceAll", func(p ...any) (any, error) {
			return strings.ReplaceAll(str(p, 0), str(p, 1), str(p, 2)), nil
		}, new(func(string, string, string) string)),
		expr.Function("B64Decode", func(p ...any) (any, error) {
			return B64Decode(str(p, 0))
		}, sigStr),
		expr.Function("ParseUnix", fn1(ParseUnix), sigStr),
		expr.Function("ParseQuery", func(p ...any) (any, error) {
			return ParseQuery(str(p, 0)), nil
		}, new(func(string) url.Values)),
		expr.Function("FloatApproxEqual", func(p ...any) (any, error) {
			return FloatApproxEqual(floatArg(p, 0), floatArg(p, 1)), nil
		}, new(func(float64, float64) bool)),
		expr.Function("Hostname", func(...any) (any, error) {
			return Hostname()
		}, new(func() string)),
		expr.Function("TimeNow", func(...any) (any, error) {
			return TimeNow(), nil
		}, new(func() string)),
		expr.Function("KeyExists", func(p ...any) (any, error) {
			return KeyExists(str(p, 0), strMap(p, 1)), nil
		}, new(func(string, map[string]any) bool)),
		expr.Function("Get", func(p ...any) (any, error) {
			return Get(strSlice(p, 0), intArg(p, 1)), nil
		}, new(func([]string, int) string), new(func([]any, int) string)),
		expr.Function("Flatten", func(p ...any) (any, error) {
			return Flatten(p...), nil
		}),
		expr.Function("FlattenDistinct", func(p ...any) (any, error) {
			return FlattenDistinct(p...), nil
		}),
		expr.Function("Distinct", func(p ...any) (any, error) {
			return Distinct(arg0(p)), nil
		}),
		expr.Function("ToJsonString", func(p ...any) (any, error) {
			return ToJsonString(arg0(p)), nil
		}, new(func(any) string)),
		expr.Function("LogInfo", func(p ...any) (any, error) {
			if len(p) == 0 {
				return true, nil
			}
			return LogInfo(str(p, 0), p[1:]...), nil
		}, new(func(string, ...any) bool)),
		expr.Function("Match", func(p ...any) (any, error) {
			return Match(str(p, 0), str(p, 1)), nil
		}, sigStr2Bool),
		expr.Function("AverageInterval", func(p ...any) (any, error) {
			return AverageInterval(arg0(p)), nil
		}, sigTimes...),
	}
}
