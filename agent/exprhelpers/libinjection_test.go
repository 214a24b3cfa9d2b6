package exprhelpers

import "testing"

func TestLibInjection(t *testing.T) {
	h := New(t.TempDir())
	cases := []struct {
		src  string
		want bool
	}{
		{`LibInjectionIsSQLI("1' OR '1'='1")`, true},
		{`LibInjectionIsSQLI("-1 UNION SELECT password FROM users--")`, true},
		{`LibInjectionIsSQLI("1; DROP TABLE users")`, true},
		{`LibInjectionIsSQLI("hello world")`, false},
		{`LibInjectionIsSQLI("john.doe@example.com")`, false},
		{`LibInjectionIsSQLI("")`, false},
		{`LibInjectionIsXSS("<script>alert(1)</script>")`, true},
		{`LibInjectionIsXSS("<img src=x onerror=alert(1)>")`, true},
		{`LibInjectionIsXSS("<a href=\"javascript:alert(1)\">x</a>")`, true},
		{`LibInjectionIsXSS("a < b and c > d")`, false},
		{`LibInjectionIsXSS("plain text")`, false},
		{`LibInjectionIsXSS("")`, false},
		// as hub rules call it, on a decoded query parameter
		{`any(ExtractQueryParam("/search?q=1%27%20or%20%271%27%3D%271&x=ok", "q"), {LibInjectionIsSQLI(#)})`, true},
	}
	for _, c := range cases {
		if got := runExpr(t, h, c.src, CompileEnv()); got != c.want {
			t.Errorf("%s = %v, want %v", c.src, got, c.want)
		}
	}
}
