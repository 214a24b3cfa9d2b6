package store

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/models"
)

// The stored event meta must stay byte for byte what json.Marshal wrote
// before: cscli and GET /v1/alerts read it back, older builds too.
func TestAppendMetaJSONMatchesMarshal(t *testing.T) {
	cases := [][]models.Meta{
		nil,
		{},
		{{Key: "source_ip", Value: "192.0.2.1"}},
		{{Key: "a\"b\\c", Value: "<script>&amp;</script>"}, {Key: "", Value: ""}},
		{{Key: "ctl\x00\x01\b\f\n\r\t\x1f\x7f", Value: "é ü 日本 \u2028 \u2029"}},
		{{Key: "bad\xff\xfe utf8", Value: "half \xe6\x97"}},
		{{Key: strings.Repeat("k", maxMetaKey+10), Value: strings.Repeat("v", maxMetaValue+10)}},
		{{Key: strings.Repeat("é", maxMetaKey), Value: "cut inside a rune"}},
	}
	for _, meta := range cases {
		want := []models.Meta{}
		for _, m := range meta {
			want = append(want, models.Meta{Key: truncate(m.Key, maxMetaKey), Value: truncate(m.Value, maxMetaValue)})
		}
		exp, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendMetaJSON(nil, meta); string(got) != string(exp) {
			t.Errorf("appendMetaJSON(%q)\n got %s\nwant %s", meta, got, exp)
		}
	}
}

func FuzzAppendMetaJSON(f *testing.F) {
	f.Add("key", "value")
	f.Add("<&>", "\x00\xff\u2028")
	f.Fuzz(func(t *testing.T, k, v string) {
		meta := []models.Meta{{Key: k, Value: v}, {Key: v, Value: k}}
		want := []models.Meta{}
		for _, m := range meta {
			want = append(want, models.Meta{Key: truncate(m.Key, maxMetaKey), Value: truncate(m.Value, maxMetaValue)})
		}
		exp, _ := json.Marshal(want)
		if got := appendMetaJSON(nil, meta); string(got) != string(exp) {
			t.Errorf("got %s want %s", got, exp)
		}
	})
}
