package store

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

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

// The events column reads back as the events written, through its own
// reader or, for what it leaves (escapes, UTF-8), through encoding/json.
func TestEventsColumn(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	long := strings.Repeat("x", maxMetaValue+5)
	for _, events := range [][]*models.Event{
		nil,
		{nil},
		{{Timestamp: "2024-01-02T03:04:05.5+02:00", Meta: []models.Meta{{Key: "a", Value: "b"}, {Key: "", Value: ""}}}, {Timestamp: "x"}},
		{{Meta: []models.Meta{{Key: "a", Value: "b"}, {Key: "c", Value: long}}}, nil, {Meta: []models.Meta{{Key: "a", Value: "b"}, {Key: "c", Value: long}, {Key: "d", Value: "b"}}},
			{Meta: []models.Meta{{Key: "c", Value: "b"}}}, {Meta: []models.Meta{{Key: "c", Value: "b"}, {Key: "a", Value: "b"}}}},
		{{Meta: []models.Meta{{Key: "q", Value: `say "hi" <b> & é ` + "\x00\xff"}}}, {Timestamp: "2024-01-02T03:04:05Z", Meta: []models.Meta{{Key: "q", Value: `say "hi" <b> & é ` + "\x00\xff"}}}},
	} {
		var want []storedEvent
		for _, e := range events {
			if e == nil {
				continue
			}
			se := storedEvent{TS: models.TimeOrNow(e.Timestamp, now).UTC().Format(time.RFC3339Nano), Meta: []models.Meta{}}
			for _, m := range e.Meta {
				se.Meta = append(se.Meta, models.Meta{Key: truncate(m.Key, maxMetaKey), Value: strings.ToValidUTF8(truncate(m.Value, maxMetaValue), "\uFFFD")})
			}
			want = append(want, se)
		}
		blob := string(appendEventsJSON(nil, events, now))
		if got := decodeEvents(blob); len(got)+len(want) > 0 && !reflect.DeepEqual(got, want) {
			t.Errorf("%s: encoding/json read %#v, want %#v", blob, got, want)
		}
		got, ok := parseStoredEvents(blob)
		if !ok {
			if !strings.ContainsAny(blob, "\\\xc3") {
				t.Errorf("%s: left to encoding/json", blob)
			}
			continue
		}
		if len(got)+len(want) > 0 && !reflect.DeepEqual(got, want) {
			t.Errorf("%s: read %#v, want %#v", blob, got, want)
		}
	}
	for _, bad := range []string{``, `[`, `{"e":[`, `{"e":[["a",[]]]`, `{"e":[["a",[0,"b"]]]}`, `{"e":[["a",["k"]]]}`, `{"e":[["a",["k","v"]],["b",[0,0,0]]]}`,
		`{"e":[]} `, `[{"ts":"a","meta":[]}`, `[{"ts":"a","meta":[]}]x`, `[{"ts":"a","meta":null}]`, `[{"meta":[],"ts":"a"}]`} {
		if _, ok := parseStoredEvents(bad); ok {
			t.Errorf("%q read as events", bad)
		}
	}
	for blob, want := range map[string]string{
		`{"e":[["a",["k","\u003c"]],["b",[0,0]]]}`: "<",
	} {
		if got := readEvents(blob); len(got) == 0 || got[len(got)-1].Meta[0].Value != want {
			t.Errorf("%s read as %#v", blob, got)
		}
	}
}
