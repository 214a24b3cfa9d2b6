package exprhelpers

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/event"
)

func TestStringHelpers(t *testing.T) {
	tests := []struct {
		name string
		fn   func(string) string
		in   string
		want string
	}{
		{"Upper", Upper, "/Admin/ÿ", "/ADMIN/Ÿ"},
		{"Upper empty", Upper, "", ""},
		{"Lower", Lower, "/WP-Login.PHP", "/wp-login.php"},
		{"Lower invalid utf8", Lower, "A\xffB", "a\uFFFDb"},
		{"PathUnescape", PathUnescape, "/etc%2Fpasswd%20x+y", "/etc/passwd x+y"},
		{"PathUnescape malformed returns input", PathUnescape, "/a%zz", "/a%zz"},
		{"PathUnescape truncated", PathUnescape, "%", "%"},
		{"QueryUnescape plus", QueryUnescape, "a+b%3Dc", "a b=c"},
		{"QueryUnescape malformed", QueryUnescape, "a%4", "a%4"},
		{"PathEscape", PathEscape, "a b/c", "a%20b%2Fc"},
		{"QueryEscape", QueryEscape, "a b&c", "a+b%26c"},
		{"TrimSpace", TrimSpace, " \t x \r\n", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.fn(tt.in); got != tt.want {
				t.Errorf("%s(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
			}
		})
	}
}

func TestIPHelpers(t *testing.T) {
	inRange := []struct {
		ip, cidr string
		want     bool
	}{
		{"192.168.1.7", "192.168.0.0/16", true},
		{"192.169.1.7", "192.168.0.0/16", false},
		{"10.1.2.3", "10.1.2.99/24", true}, // non-canonical prefix, as net.ParseCIDR
		{"::ffff:10.0.0.1", "10.0.0.0/8", true},
		{"2001:db8::1", "2001:db8::/32", true},
		{"2001:db9::1", "2001:db8::/32", false},
		{"10.0.0.1", "::/0", false},
		{"10.0.0.1", "0.0.0.0/0", true},
		{"", "10.0.0.0/8", false},
		{"garbage", "10.0.0.0/8", false},
		{"10.0.0.1", "garbage", false},
		{"10.0.0.1", "10.0.0.0/33", false},
		{"10.0.0.1", "10.0.0.1", false}, // not a CIDR
		{"fe80::1%eth0", "fe80::/10", false},
		{"010.0.0.1", "10.0.0.0/8", false},
	}
	for _, tt := range inRange {
		if got := IpInRange(tt.ip, tt.cidr); got != tt.want {
			t.Errorf("IpInRange(%q, %q) = %v, want %v", tt.ip, tt.cidr, got, tt.want)
		}
	}

	kinds := []struct {
		in           string
		ip, ip4, ip6 bool
	}{
		{"1.2.3.4", true, true, false},
		{"::1", true, false, true},
		{"2001:db8::42", true, false, true},
		{"::ffff:1.2.3.4", true, true, false},
		{"1.2.3", false, false, false},
		{"1.2.3.4.5", false, false, false},
		{"", false, false, false},
		{"localhost", false, false, false},
		{"1.2.3.4/24", false, false, false},
	}
	for _, tt := range kinds {
		if IsIP(tt.in) != tt.ip || IsIPV4(tt.in) != tt.ip4 || IsIPV6(tt.in) != tt.ip6 {
			t.Errorf("%q: IsIP=%v IsIPV4=%v IsIPV6=%v, want %v %v %v", tt.in,
				IsIP(tt.in), IsIPV4(tt.in), IsIPV6(tt.in), tt.ip, tt.ip4, tt.ip6)
		}
	}

	ranges := []struct{ ip, cidr, want string }{
		{"1.2.3.4", "24", "1.2.3.0/24"},
		{"1.2.3.4", "/16", "1.2.0.0/16"},
		{"2001:db8::1", "64", "2001:db8::/64"},
		{"1.2.3.4", "33", ""},
		{"1.2.3.4", "x", ""},
		{"nope", "24", ""},
	}
	for _, tt := range ranges {
		if got := IpToRange(tt.ip, tt.cidr); got != tt.want {
			t.Errorf("IpToRange(%q, %q) = %q, want %q", tt.ip, tt.cidr, got, tt.want)
		}
	}
}

func TestMiscHelpers(t *testing.T) {
	atof := []struct {
		in   string
		want float64
	}{{"1.5", 1.5}, {" 2 ", 2}, {"-3e2", -300}, {"", 0}, {"abc", 0}, {"1,5", 0}}
	for _, tt := range atof {
		if got := Atof(tt.in); got != tt.want {
			t.Errorf("Atof(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := Sprintf("%s-%d", "a", 3); got != "a-3" {
		t.Errorf("Sprintf = %q", got)
	}
	if got := Split("a,b,,c", ","); !reflect.DeepEqual(got, []string{"a", "b", "", "c"}) {
		t.Errorf("Split = %q", got)
	}
	if ToString("x") != "x" || ToString(3) != "" || ToString(nil) != "" {
		t.Error("ToString")
	}
	// Paris - London is about 344 km.
	if d := Distance("48.8566", "2.3522", "51.5074", "-0.1278"); math.Abs(d-343.5) > 2 {
		t.Errorf("Distance Paris-London = %v", d)
	}
	for _, bad := range [][4]string{{"x", "1", "2", "3"}, {"0", "0", "51", "0"}, {"NaN", "1", "2", "3"}, {"", "", "", ""}} {
		if d := Distance(bad[0], bad[1], bad[2], bad[3]); d != 0 {
			t.Errorf("Distance(%q) = %v, want 0", bad, d)
		}
	}
	if got := ParseUri("/x?a=1&a=2&b=%zz"); len(got) != 0 {
		t.Errorf("ParseUri with a bad escape = %v, want empty (as upstream)", got)
	}
	if got := ParseUri("/x?a=1&a=2&b=3"); !reflect.DeepEqual(got, map[string][]string{"a": {"1", "2"}, "b": {"3"}}) {
		t.Errorf("ParseUri = %v", got)
	}
	if got := ParseUri("%"); len(got) != 0 {
		t.Errorf("ParseUri garbage = %v", got)
	}
	if got := ExtractQueryParam("/x?id=1&id=2", "id"); !reflect.DeepEqual(got, []string{"1", "2"}) {
		t.Errorf("ExtractQueryParam = %v", got)
	}
	if got := ExtractQueryParam("/x?id=1", "nope"); got == nil || len(got) != 0 {
		t.Errorf("ExtractQueryParam missing = %v", got)
	}
}

func TestMedianInterval(t *testing.T) {
	base := time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)
	at := func(mins ...int) []time.Time {
		out := make([]time.Time, len(mins))
		for i, m := range mins {
			out[i] = base.Add(time.Duration(m) * time.Minute)
		}
		return out
	}
	asAny := func(ts []time.Time) []any {
		out := make([]any, len(ts))
		for i, x := range ts {
			out[i] = x
		}
		return out
	}
	evs := func(ts []time.Time) []event.Event {
		out := make([]event.Event, len(ts))
		for i, x := range ts {
			out[i].Time = x
		}
		return out
	}
	tests := []struct {
		name string
		in   any
		want time.Duration
	}{
		{"4 times, 3 intervals", asAny(at(0, 11, 30, 42)), 12 * time.Minute},
		{"unsorted", asAny(at(42, 0, 30, 11)), 12 * time.Minute},
		{"even intervals: mean of middle two", at(0, 1, 4, 10, 20), 4*time.Minute + 30*time.Second},
		{"two times", at(0, 5), 5 * time.Minute},
		{"one time", at(0), 0},
		{"empty", []any{}, 0},
		{"nil", nil, 0},
		{"events", evs(at(0, 20, 40, 60)), 20 * time.Minute},
		{"event pointers in []any", []any{&event.Event{Time: base}, &event.Event{Time: base.Add(time.Hour)}}, time.Hour},
		{"nil event pointer", []any{(*event.Event)(nil), &event.Event{Time: base}}, 0},
		{"wrong element", []any{base, "x"}, 0},
		{"wrong type", "nope", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MedianInterval(tt.in); got != tt.want {
				t.Errorf("MedianInterval = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestJsonExtract(t *testing.T) {
	blob := `{"a": {"b": [{"c": "x\"y"}, {"c": 2}], "n": null, "t": true}, "uri": "/a\/b", "dup": 1, "dup": 2, "u": "caf\u00e9"}`
	tests := []struct {
		target string
		want   string
	}{
		{"a.b[0].c", `x\"y`},
		{"a.b[1].c", "2"},
		{"a.b[2].c", ""},
		{"a.b[-1]", ""},
		{"a.b[x]", ""},
		{"a.n", "null"},
		{"a.t", "true"},
		{"a.b[1]", `{"c": 2}`},
		{"uri", `/a\/b`},
		{"dup", "1"},
		{"missing", ""},
		{"a.missing.deeper", ""},
		{"uri.x", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := JsonExtract(blob, tt.target); got != tt.want {
			t.Errorf("JsonExtract(%q) = %q, want %q", tt.target, got, tt.want)
		}
	}
	if got := JsonExtract(`[{"a":1}]`, "[0].a"); got != "1" {
		t.Errorf("JsonExtract top-level array = %q", got)
	}
	for _, bad := range []string{"", "{", "not json", `{"a":`, `{"a": tru}`, `{"a" 1}`, `"str"`, `{"a":[1,}`} {
		if got := JsonExtract(bad, "a"); got != "" {
			t.Errorf("JsonExtract(%q) = %q, want empty", bad, got)
		}
	}
	if got := JsonExtractUnescape(blob, "uri"); got != "/a/b" {
		t.Errorf("JsonExtractUnescape = %q", got)
	}
	if got := JsonExtractUnescape(blob, "u"); got != "café" {
		t.Errorf("JsonExtractUnescape unicode = %q", got)
	}
	if got := JsonExtractUnescape(blob, "a", "t"); got != "" {
		t.Errorf("JsonExtractUnescape of a bool = %q", got)
	}
	if got := JsonExtractLib(blob, "a", "b", "[0]", "c"); got != `x\"y` {
		t.Errorf("JsonExtractLib = %q", got)
	}
	if got := JsonExtractSlice(blob, "a.b"); !reflect.DeepEqual(got, []any{map[string]any{"c": `x"y`}, map[string]any{"c": 2.0}}) {
		t.Errorf("JsonExtractSlice = %#v", got)
	}
	if got := JsonExtractSlice(blob, "a"); got != nil {
		t.Errorf("JsonExtractSlice on an object = %#v", got)
	}
	if got := JsonExtractObject(blob, "a.b[1]"); !reflect.DeepEqual(got, map[string]any{"c": 2.0}) {
		t.Errorf("JsonExtractObject = %#v", got)
	}
	if got := JsonExtractObject(blob, "uri"); got != nil {
		t.Errorf("JsonExtractObject on a string = %#v", got)
	}
}

// Upper and Lower give strings.ToUpper and ToLower, converting ASCII
// themselves.
func TestUpperLowerASCII(t *testing.T) {
	in := []string{"", "a", "Z", "/index.PHP?x=1", "ALREADY UPPER 123", "already lower", "@[`{", "ÉtÉ", "a\xffb", "mixed ß ǅ", "\x00\x7f"}
	for c := 0; c < 256; c++ {
		in = append(in, string([]byte{byte(c)}), "x"+string([]byte{byte(c)})+"Y")
	}
	for _, s := range in {
		if got, want := Upper(s), strings.ToUpper(s); got != want {
			t.Errorf("Upper(%q) = %q, want %q", s, got, want)
		}
		if got, want := Lower(s), strings.ToLower(s); got != want {
			t.Errorf("Lower(%q) = %q, want %q", s, got, want)
		}
	}
}
