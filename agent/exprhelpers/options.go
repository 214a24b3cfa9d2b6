package exprhelpers

import (
	"regexp"
	"time"

	"github.com/expr-lang/expr"

	"github.com/rampart-ips/rampart/agent/event"
)

// Typed argument accessors for the expr adapters: the checker enforces the
// declared signatures when the environment is typed, but with an untyped
// env (map[string]any values of unknown type) anything can reach us at run
// time, so a wrong type becomes the zero value instead of a panic.
func str(p []any, i int) string {
	if i >= len(p) {
		return ""
	}
	s, _ := p[i].(string)
	return s
}

func strs(p []any, from int) []string {
	if from >= len(p) {
		return nil
	}
	out := make([]string, 0, len(p)-from)
	for _, v := range p[from:] {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func fn1(f func(string) string) func(...any) (any, error) {
	return func(p ...any) (any, error) { return f(str(p, 0)), nil }
}

func pred1(f func(string) bool) func(...any) (any, error) {
	return func(p ...any) (any, error) { return f(str(p, 0)), nil }
}

var (
	sigStr       = new(func(string) string)
	sigStrBool   = new(func(string) bool)
	sigStr2Bool  = new(func(string, string) bool)
	sigStr2Str   = new(func(string, string) string)
	sigStr2Slice = new(func(string, string) []string)
	sigVarStr    = new(func(string, ...string) string)
)

// Options returns the expr options registering every helper, with typed
// signatures so expressions are type-checked at compile time. Compile each
// expression once:
//
//	prog, err := expr.Compile(src, append(h.Options(), expr.Env(CompileEnv()))...)
//
// The options close over h; programs compiled with them read the data
// loaded into h at run time (loading more data later is fine).
//
// Options also rewrites the costly forms of hub rules at compile time and
// memoizes the string helpers (see optimize.go); results are unchanged.
func (h *Helpers) Options() []expr.Option {
	return append(h.baseOptions(true),
		expr.Function(fnAnyFile, func(p ...any) (any, error) {
			site, _ := p[0].(*fileSite)
			return site.match(str(p, 1)), nil
		}, new(func(*fileSite, string) bool)),
		expr.Function(fnFileFilter, func(p ...any) (any, error) {
			site, _ := p[0].(*fileSite)
			return site.candidates(str(p, 1)), nil
		}, new(func(*fileSite, string) []string)),
		expr.Function(fnMatchRe, func(p ...any) (any, error) {
			re, _ := p[1].(*regexp.Regexp)
			return re.MatchString(str(p, 0)), nil
		}, new(func(string, *regexp.Regexp) bool)),
		expr.Patch(&rewriter{h: h}),
	)
}

// OptionsUnoptimized returns the helpers without the compile-time
// rewrites and memoization of Options: same results, slower programs
// (tests compare the two; benchmarks show the difference).
func (h *Helpers) OptionsUnoptimized() []expr.Option {
	return h.baseOptions(false)
}

// strFn is f for expr, memoized when memo is set.
func strFn(f func(string) string, m *strMemo, memo bool) func(...any) (any, error) {
	if memo {
		return memoFn(m)
	}
	return fn1(f)
}

func (h *Helpers) baseOptions(memo bool) []expr.Option {
	opts := []expr.Option{
		expr.Function("rampartMatches", func(p ...any) (any, error) {
			return h.Matches(str(p, 0), str(p, 1)), nil
		}, new(func(string, string) bool)),
		expr.Operator("matches", "rampartMatches"),
		// Data-file helpers.
		expr.Function("File", func(p ...any) (any, error) {
			return h.File(str(p, 0)), nil
		}, new(func(string) []string)),
		expr.Function("RegexpInFile", func(p ...any) (any, error) {
			return h.RegexpInFile(str(p, 0), str(p, 1)), nil
		}, sigStr2Bool),
		expr.Function("LookupFile", func(p ...any) (any, error) {
			return h.LookupFile(str(p, 0), str(p, 1)), nil
		}, sigStr2Str),
		expr.Function("FileMap", func(p ...any) (any, error) {
			return h.FileMap(str(p, 0)), nil
		}, new(func(string) []map[string]any)),

		// Strings and URLs.
		expr.Function("Upper", strFn(Upper, h.memo["Upper"], memo), sigStr),
		expr.Function("Lower", strFn(Lower, h.memo["Lower"], memo), sigStr),
		expr.Function("PathUnescape", strFn(PathUnescape, h.memo["PathUnescape"], memo), sigStr),
		expr.Function("PathEscape", fn1(PathEscape), sigStr),
		expr.Function("QueryUnescape", strFn(QueryUnescape, h.memo["QueryUnescape"], memo), sigStr),
		expr.Function("QueryEscape", fn1(QueryEscape), sigStr),
		expr.Function("TrimSpace", fn1(TrimSpace), sigStr),
		expr.Function("Split", func(p ...any) (any, error) {
			return Split(str(p, 0), str(p, 1)), nil
		}, sigStr2Slice),
		expr.Function("ToString", func(p ...any) (any, error) {
			if len(p) == 0 {
				return "", nil
			}
			return ToString(p[0]), nil
		}, new(func(any) string)),
		expr.Function("Sprintf", func(p ...any) (any, error) {
			if len(p) == 0 {
				return "", nil
			}
			return Sprintf(str(p, 0), p[1:]...), nil
		}, new(func(string, ...any) string)),
		expr.Function("Atof", func(p ...any) (any, error) {
			return Atof(str(p, 0)), nil
		}, new(func(string) float64)),
		expr.Function("ParseUri", func(p ...any) (any, error) {
			return ParseUri(str(p, 0)), nil
		}, new(func(string) map[string][]string)),
		expr.Function("ExtractQueryParam", func(p ...any) (any, error) {
			return ExtractQueryParam(str(p, 0), str(p, 1)), nil
		}, sigStr2Slice),

		// IP addresses.
		expr.Function("IpInRange", func(p ...any) (any, error) {
			return IpInRange(str(p, 0), str(p, 1)), nil
		}, sigStr2Bool),
		expr.Function("IsIPV4", pred1(IsIPV4), sigStrBool),
		expr.Function("IsIPV6", pred1(IsIPV6), sigStrBool),
		expr.Function("IsIP", pred1(IsIP), sigStrBool),
		expr.Function("IpToRange", func(p ...any) (any, error) {
			return IpToRange(str(p, 0), str(p, 1)), nil
		}, sigStr2Str),
		expr.Function("Distance", func(p ...any) (any, error) {
			return Distance(str(p, 0), str(p, 1), str(p, 2), str(p, 3)), nil
		}, new(func(string, string, string, string) float64)),

		// JSON.
		expr.Function("JsonExtract", func(p ...any) (any, error) {
			return h.JsonExtract(str(p, 0), str(p, 1)), nil
		}, sigStr2Str),
		expr.Function("JsonExtractLib", func(p ...any) (any, error) {
			return JsonExtractLib(str(p, 0), strs(p, 1)...), nil
		}, sigVarStr),
		expr.Function("JsonExtractUnescape", func(p ...any) (any, error) {
			return JsonExtractUnescape(str(p, 0), strs(p, 1)...), nil
		}, sigVarStr),
		expr.Function("JsonExtractSlice", func(p ...any) (any, error) {
			return JsonExtractSlice(str(p, 0), str(p, 1)), nil
		}, new(func(string, string) []any)),
		expr.Function("JsonExtractObject", func(p ...any) (any, error) {
			return JsonExtractObject(str(p, 0), str(p, 1)), nil
		}, new(func(string, string) map[string]any)),

		// Time.
		expr.Function("MedianInterval", func(p ...any) (any, error) {
			if len(p) == 0 {
				return time.Duration(0), nil
			}
			return MedianInterval(p[0]), nil
		},
			new(func([]any) time.Duration),
			new(func([]time.Time) time.Duration),
			new(func([]event.Event) time.Duration),
			new(func([]*event.Event) time.Duration),
		),
	}
	opts = append(opts, upstreamOptions()...)
	opts = append(opts, h.geoOptions()...)
	opts = append(opts, libinjectionOptions()...)
	opts = append(opts, ja4hOptions()...)
	opts = append(opts, h.botOptions()...)
	return append(opts, h.extOptions()...)
}

// Env returns the run-time environment of a parser or scenario-filter
// expression: {"evt": evt}. Pass the pointer so evt.SetMeta works.
func Env(evt *event.Event) map[string]any {
	return map[string]any{"evt": evt}
}

// CompileEnv returns a typed environment to compile expressions against
// (expr.Env(CompileEnv())), so field names and helper argument types are
// checked at load time. The scenario engine adds its own variables (e.g.
// "queue") to the map it compiles conditions with.
func CompileEnv() map[string]any {
	return map[string]any{"evt": &event.Event{}}
}
