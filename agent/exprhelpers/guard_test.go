package exprhelpers

import (
	"reflect"
	"testing"

	"github.com/expr-lang/expr"

	"github.com/rampart-ips/rampart/agent/event"
)

// LeadingGuards takes only the opening conjuncts that are plain tests of
// an event map value against constants.
func TestLeadingGuards(t *testing.T) {
	lt := Guard{Map: "Meta", Key: "log_type", Values: []string{"http_access-log", "http_error-log"}}
	svc := Guard{Map: "Meta", Key: "service", Values: []string{"http"}}
	for _, tt := range []struct {
		src  string
		want []Guard
	}{
		{`evt.Meta.service == 'http' and evt.Meta.log_type in ['http_access-log', 'http_error-log'] and Upper(evt.Meta.http_path) contains 'X'`, []Guard{svc, lt}},
		{`'http' == evt.Meta["service"] && evt.Meta.log_type in ["http_access-log", "http_error-log"]`, []Guard{svc, lt}},
		{`evt.Parsed.verb in ['GET']`, []Guard{{Map: "Parsed", Key: "verb", Values: []string{"GET"}}}},
		// stops at the first conjunct that is not a guard
		{`Upper(evt.Meta.http_path) contains 'X' && evt.Meta.service == 'http'`, nil},
		{`evt.Meta.service == 'http' && evt.SetMeta('a', 'b') && evt.Meta.log_type == 'x'`, []Guard{svc}},
		// an or at the top, a let, a negation, a non-constant side: none
		{`evt.Meta.service == 'http' || evt.Meta.log_type == 'x'`, nil},
		{`let x = 1; evt.Meta.service == 'http'`, nil},
		{`evt.Meta.service != 'http'`, nil},
		{`evt.Meta.service not in ['http']`, nil},
		{`evt.Meta.service == evt.Meta.x`, nil},
		{`evt.Meta.service in ['http', 1]`, nil},
		{`evt.Meta?.service == 'http'`, nil},
		{`evt.Enriched.service == 'http'`, nil},
		{`x.Meta.service == 'http'`, nil},
		{`evt.Meta.service ==`, nil},
		// a let of a pure value, an if whose else is false
		{`let r = Lower(evt.Parsed.request); evt.Meta.service == 'http' && r contains 'x'`, []Guard{svc}},
		{`let r = Lower(Upper('a')); let q = 'b'; evt.Meta.service == 'http'`, []Guard{svc}},
		{`let r = evt.SetMeta('service', 'http'); evt.Meta.service == 'http'`, nil},
		{`let r = len(evt.Meta.x); evt.Meta.service == 'http'`, nil},
		{`let evt = 'x'; evt.Meta.service == 'http'`, nil},
		{`if (evt.Meta.service == 'http' and Lower(evt.Meta.x) == 'y') { true } else { false }`, []Guard{svc}},
		{`if evt.Meta.service == 'http' { true } else { true }`, nil},
		{`evt.Meta.service == 'http' ? true : false`, []Guard{svc}},
	} {
		if got := LeadingGuards(tt.src); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.src, got, tt.want)
		}
	}
}

// A guard gives what expr gives for its conjunct, a missing key or map
// included.
func TestGuardTestMatchesExpr(t *testing.T) {
	srcs := []string{
		`evt.Meta.p == 'foo'`, `evt.Meta.p in ['/x', 'ß', 'foo']`, `evt.Parsed.q == 'FOO'`,
		`evt.Meta.missing == ''`, `evt.Meta.missing in ['', 'a']`,
	}
	evts := rewriteEvents()
	for _, src := range srcs {
		gs := LeadingGuards(src)
		if len(gs) != 1 {
			t.Fatalf("%s: %d guards", src, len(gs))
		}
		p, err := expr.Compile(src, expr.Env(CompileEnv()))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range append(evts, &event.Event{}) {
			want, err := expr.Run(p, Env(e))
			if err != nil {
				t.Fatal(err)
			}
			if got := gs[0].Test(e); got != want {
				t.Errorf("%s on %q: guard %v, expr %v", src, e.Meta["p"], got, want)
			}
		}
	}
}
