package stricttoml

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

type target struct {
	Name    string        `toml:"name"`
	Count   int           `toml:"count"`
	Timeout time.Duration `toml:"timeout"`
	Labels  map[string]string
	Sub     struct {
		Deep struct {
			On bool `toml:"on"`
		} `toml:"deep"`
	} `toml:"sub"`
	Source []struct {
		Kind  string            `toml:"kind"`
		Inner struct{ A int }   `toml:"inner"`
		Tags  map[string]string `toml:"tags"`
	} `toml:"source"`
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"syntax", "name = \"x\"\ncount = \n", "f.toml:2: count: expected value but found '\\n' instead"},
		{"syntax no key", "name = \"x\"\n[[[\n", "f.toml:2: "},
		{"wrong type", "name = \"x\"\n\ncount = \"many\"\n", "f.toml:3: count: incompatible types: TOML value has type string; destination has type integer"},
		{"wrong table type", "sub = 1\n", "f.toml:1: sub: type mismatch for struct"},
		{"bad text value", "name = \"x\"\ntimeout = \"often\"\n", "f.toml:2: timeout: invalid duration: \"often\""},
		{"unknown top key", "name = \"x\"\n\nnmae = \"y\"\n", "f.toml:3: nmae: unknown key"},
		{"unknown nested key", "[sub.deep]\non = true\nof = false\n", "f.toml:3: sub.deep.of: unknown key"},
		{"unknown table, children not repeated", "name = \"x\"\n[extra]\na = 1\nb = 2\n", "f.toml:2: extra: unknown key"},
		{"dotted key", "[sub]\ndeep.off = true\n", "f.toml:2: sub.deep.off: unknown key"},
		{"quoted key", "[sub]\n\"deep\".'off' = true\n", "f.toml:2: sub.deep.off: unknown key"},
		{"inline table", "[[source]]\nkind = \"a\"\ninner = { A = 1, B = 2 }\n", "f.toml:3: source.inner.B: unknown key"},
		{"second of an array", "[[source]]\nkind = \"a\"\n[[source]]\nkind = \"b\"\nknd = \"c\"\n", "f.toml:5: source.knd: unknown key"},
		{"same key twice", "[[source]]\nknd = \"a\"\n[[source]]\nknd = \"b\"\n",
			"f.toml:2: source.knd: unknown key\nf.toml:4: source.knd: unknown key"},
		{"several", "nmae = 1\n[sub]\nx = 2\n", "f.toml:1: nmae: unknown key\nf.toml:3: sub.x: unknown key"},
	} {
		var v target
		_, err := Decode([]byte(tc.doc), "f.toml", &v)
		if err == nil {
			t.Errorf("%s: no error, want %q", tc.name, tc.want)
			continue
		}
		if got := err.Error(); len(got) < len(tc.want) || got[:len(tc.want)] != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestDecode(t *testing.T) {
	var v target
	md, err := Decode([]byte("name = \"x\"\ntimeout = \"2s\"\nLabels = { a = \"b\" }\n[[source]]\nkind = \"k\"\ntags = { t = \"u\" }\n"), "f.toml", &v)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "x" || v.Timeout != 2*time.Second || v.Labels["a"] != "b" || len(v.Source) != 1 || v.Source[0].Tags["t"] != "u" {
		t.Errorf("decoded %+v", v)
	}
	if !md.IsDefined("timeout") || md.IsDefined("count") {
		t.Error("metadata lost")
	}
}

func TestNestedInlineKey(t *testing.T) {
	var v target
	_, err := Decode([]byte("name = \"x\"\nsub = { deep = { on = true, x = 1 } }\n"), "f.toml", &v)
	if err == nil || err.Error() != "f.toml:2: sub.deep.x: unknown key" {
		t.Errorf("got %v", err)
	}
}

// A key the scan cannot place (a multi-line array of inline tables) still
// names the file and the key.
func TestUnplacedKey(t *testing.T) {
	var v struct {
		Rules []struct{ A int } `toml:"rules"`
	}
	_, err := Decode([]byte("rules = [\n  { A = 1 },\n  { B = 2 },\n]\n"), "f.toml", &v)
	if err == nil || err.Error() != "f.toml: rules.B: unknown key" {
		t.Errorf("got %v", err)
	}
}

// Past maxUnknown the unknown keys are counted, not each looked for.
func TestManyUnknownKeys(t *testing.T) {
	var b strings.Builder
	for i := range maxUnknown + 5 {
		fmt.Fprintf(&b, "k%d = 1\n", i)
	}
	var v target
	_, err := Decode([]byte(b.String()), "f.toml", &v)
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxUnknown+1 || lines[0] != "f.toml:1: k0: unknown key" || lines[maxUnknown] != "f.toml: 5 more unknown keys" {
		t.Errorf("got %q", err)
	}
}
