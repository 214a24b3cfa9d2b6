package exprhelpers

import (
	"github.com/corazawaf/libinjection-go"
	"github.com/expr-lang/expr"
)

// LibInjectionIsSQLI reports whether s looks like an SQL injection to
// libinjection (the same Go port upstream links); the fingerprint it also
// computes is not exposed, as upstream.
func LibInjectionIsSQLI(s string) bool {
	ok, _ := libinjection.IsSQLi(s)
	return ok
}

// LibInjectionIsXSS reports whether s looks like cross-site scripting to
// libinjection.
func LibInjectionIsXSS(s string) bool { return libinjection.IsXSS(s) }

func libinjectionOptions() []expr.Option {
	return []expr.Option{
		expr.Function("LibInjectionIsSQLI", pred1(LibInjectionIsSQLI), sigStrBool),
		expr.Function("LibInjectionIsXSS", pred1(LibInjectionIsXSS), sigStrBool),
	}
}
