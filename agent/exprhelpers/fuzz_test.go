package exprhelpers

import (
	"testing"
)

// FuzzHelpers feeds hostile input to the helpers that parse it. Seed
// corpus: testdata/fuzz/FuzzHelpers plus the f.Add calls.
func FuzzHelpers(f *testing.F) {
	f.Add(`{"a":{"b":[{"c":"x"}]}}`, "a.b[0].c")
	f.Add(`{"cve":"CVE-2024-3400","uri":"/global-protect/login.esp"}`, "uri")
	f.Add("192.168.1.1", "192.168.0.0/16")
	f.Add("::ffff:10.0.0.1", "10.0.0.0/8")
	f.Add("/a%2Fb%zz", "%")
	f.Add("Mozilla/5.00 (Nikto/2.1.6)", "[")
	f.Add(`[[[[[[[[[[`, "[0][0][0]")
	f.Add(`{"a":"\ud800"}`, "a")

	h := New("testdata")
	if err := h.Load([]DataFile{
		{DestFile: "fuzz_regexps.txt", Type: "regexp", Strategy: "LRU", Size: 8, TTL: "1m"},
		{DestFile: "fuzz_map.json", Type: "map"},
	}); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, a, b string) {
		_ = JsonExtract(a, b)
		_ = JsonExtractUnescape(a, b)
		_ = JsonExtractSlice(a, b)
		_ = JsonExtractObject(a, b)
		if IpInRange(a, b) && !IsIP(a) {
			t.Errorf("IpInRange(%q, %q) true but %q is not an IP", a, b, a)
		}
		if IsIPV4(a) && IsIPV6(a) {
			t.Errorf("%q is both IPv4 and IPv6", a)
		}
		if got := PathUnescape(PathEscape(a)); got != a {
			t.Errorf("PathUnescape(PathEscape(%q)) = %q", a, got)
		}
		if got := QueryUnescape(QueryEscape(a)); got != a {
			t.Errorf("QueryUnescape(QueryEscape(%q)) = %q", a, got)
		}
		_ = PathUnescape(a)
		r1 := h.RegexpInFile(a, "fuzz_regexps.txt")
		if r2 := h.RegexpInFile(a, "fuzz_regexps.txt"); r1 != r2 {
			t.Errorf("RegexpInFile(%q) cached %v, computed %v", a, r2, r1)
		}
		_ = h.LookupFile(a, "fuzz_map.json")
		_ = IpToRange(a, b)
		_ = ParseUri(a)
		_ = Atof(a)
	})
}
