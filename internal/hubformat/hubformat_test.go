package hubformat

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestCheckFormat(t *testing.T) {
	for _, ok := range []any{nil, "", 1, 2.0, 3.0, "1.0", "2.0", "3.0", "v2.1", "3"} {
		if err := CheckFormat(ok); err != nil {
			t.Errorf("CheckFormat(%#v) = %v", ok, err)
		}
	}
	for _, bad := range []any{0.9, 3.1, 4, "4.0", "two", "1.x", "1.2.3.4", true, []any{1}} {
		if err := CheckFormat(bad); err == nil {
			t.Errorf("CheckFormat(%#v) accepted", bad)
		}
	}
}

func TestUnknownKey(t *testing.T) {
	type doc struct {
		Name string `yaml:"name"`
		Sub  struct {
			A string `yaml:"a"`
		} `yaml:"sub"`
	}
	decode := func(src string) error {
		dec := yaml.NewDecoder(strings.NewReader(src))
		dec.KnownFields(true)
		var d doc
		return dec.Decode(&d)
	}
	cases := []struct {
		src, key string
		line     int
		want     string
	}{
		{"name: x\nnmae: y\n", "nmae", 2, "unknown key"},
		{"name: x\nsub:\n  a: 1\n  b: 2\n", "b", 4, "unknown key"},
		{"name: x\nlegacy: 1\n", "legacy", 2, "the legacy thing is not supported by Rampart"},
	}
	for _, c := range cases {
		ke := UnknownKey(decode(c.src), map[string]string{"legacy": "the legacy thing"})
		if ke == nil || ke.Key != c.key || ke.Line != c.line || !strings.Contains(ke.Error(), c.want) {
			t.Errorf("%q: %+v", c.src, ke)
		}
	}
	if ke := UnknownKey(decode("name: [1\n"), nil); ke != nil {
		t.Errorf("syntax error taken for a key: %+v", ke)
	}
	if ke := UnknownKey(decode("sub: 3\n"), nil); ke != nil {
		t.Errorf("type error taken for a key: %+v", ke)
	}
}
