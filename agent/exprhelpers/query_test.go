package exprhelpers

import (
	"net/url"
	"reflect"
	"testing"
)

// Upstream's query parsing splits on '&' only and undoes the escapes it
// can, keeping the rest as written; net/url's refuses a ';' or a bad
// escape and would give nothing, so a payload with either would pass a
// rule's ExtractQueryParam/ParseQuery check unseen.
func TestQueryParsingIsLenientAsUpstream(t *testing.T) {
	pq := []struct {
		in   string
		want url.Values
	}{
		{"a=1&a=2&b=x", url.Values{"a": {"1", "2"}, "b": {"x"}}},
		{"q=1' or 1=1;--&x=ok", url.Values{"q": {"1' or 1=1;--"}, "x": {"ok"}}},
		{"q=%27%20or%201%3D1", url.Values{"q": {"' or 1=1"}}},
		{"q=100%&r=%zz%4", url.Values{"q": {"100%"}, "r": {"%zz%4"}}},
		{"a+b=c+d&&flag&=v", url.Values{"a b": {"c d"}, "flag": {""}, "": {"v"}}},
		{"", url.Values{}},
	}
	for _, c := range pq {
		if got := ParseQuery(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseQuery(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	eq := []struct {
		uri, param string
		want       []string
	}{
		{"/x?id=1&id=2", "id", []string{"1", "2"}},
		{"/search?q=<script>alert(1)</script>;&p=2", "q", []string{"<script>alert(1)</script>;"}},
		{"/search?q=%3Cscript%3E%zz", "q", []string{"<script>%zz"}},
		{"/a b?q=1", "q", []string{"1"}}, // url.Parse refuses the space
		{"/x?a=1?b=2", "a", []string{"1?b=2"}},
		{"/x?id=1", "nope", []string{}},
		{"/x", "id", []string{}},
	}
	for _, c := range eq {
		if got := ExtractQueryParam(c.uri, c.param); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ExtractQueryParam(%q, %q) = %#v, want %#v", c.uri, c.param, got, c.want)
		}
	}
	// as hub rules use it: the injection is seen despite the ';'
	h := New(t.TempDir())
	if got := runExpr(t, h, `any(ExtractQueryParam("/p?id=1' OR '1'='1';--", "id"), {LibInjectionIsSQLI(#)})`, CompileEnv()); got != true {
		t.Errorf("injection behind a ';' not seen: %v", got)
	}
}
