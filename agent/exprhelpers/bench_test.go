package exprhelpers

import (
	"testing"

	"github.com/expr-lang/expr"
)

// BenchmarkFileFilter runs a File()-based hub filter per event: the
// sqli filter scans the whole list with Upper on both sides.
func BenchmarkFileFilter(b *testing.B) {
	h := hubHelpers(b)
	for _, bc := range []struct{ name, src string }{
		{"sensitive-files", filterSensitiveFiles},
		{"sqli", filterSQLi},
		{"cve-probing", filterCVEProbing},
		{"bad-user-agent", filterBadUserAgent},
		{"tech-probing", filterTechProbing},
	} {
		prog := compile(b, h, bc.src, CompileEnv())
		e := httpEvent("/wp-content/plugins/x/readme.txt", "404", map[string]string{
			"request":         "/wp-content/plugins/x/readme.txt",
			"http_args":       "id=12&page=3&q=hello%20world",
			"http_user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		})
		env := Env(e)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := expr.Run(prog, env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
