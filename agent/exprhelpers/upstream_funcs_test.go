package exprhelpers

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"

	"github.com/rampart-ips/rampart/agent/event"
)

// evalUp compiles src against the typed env with every helper and runs it
// on evt, as the parser does.
func evalUp(t *testing.T, src string, evt *event.Event) (any, error) {
	t.Helper()
	h := New(t.TempDir())
	prog, err := expr.Compile(src, append(h.Options(), expr.Env(CompileEnv()))...)
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return expr.Run(prog, Env(evt))
}

func TestUnmarshalJSONExpr(t *testing.T) {
	evt := &event.Event{Unmarshaled: map[string]any{}, Parsed: map[string]string{
		"message": `{"level":"info","ts":1693840791.7565,"request":{"remote_ip":"1.2.3.4","headers":{"User-Agent":["curl"]}},"status":404}`,
		"bad":     `{"level":`,
	}}
	out, err := evalUp(t, `UnmarshalJSON(evt.Parsed.message, evt.Unmarshaled, "caddy") in ["", nil]`, evt)
	if err != nil || out != true {
		t.Fatalf("good JSON: %v, %v", out, err)
	}
	out, err = evalUp(t, `evt.Unmarshaled.caddy.request.remote_ip + " " + string(evt.Unmarshaled.caddy.status) + " " + evt.Unmarshaled.caddy.request.headers["User-Agent"][0]`, evt)
	if err != nil || out != "1.2.3.4 404 curl" {
		t.Fatalf("decoded fields: %v, %v", out, err)
	}
	// Bad JSON: the error is the value (logged), the filter is false, the
	// VM does not fail, and nothing is stored.
	out, err = evalUp(t, `UnmarshalJSON(evt.Parsed.bad, evt.Unmarshaled, "bad") in ["", nil]`, evt)
	if err != nil || out != false {
		t.Fatalf("bad JSON: %v, %v", out, err)
	}
	if _, ok := evt.Unmarshaled["bad"]; ok {
		t.Fatal("bad JSON stored a value")
	}
	// A nil target gives an error value, not a panic.
	if err := UnmarshalJSON(`{}`, nil, "k"); err == nil {
		t.Fatal("nil target: no error")
	}
	// Non-object JSON is stored as is.
	m := map[string]any{}
	if err := UnmarshalJSON(`[1,"a"]`, m, "k"); err != nil || !reflect.DeepEqual(m["k"], []any{1.0, "a"}) {
		t.Fatalf("array: %v %v", m, err)
	}
}

func TestParseKV(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{`foo=bar`, map[string]string{"foo": "bar"}},
		{`foo=bar baz=qux`, map[string]string{"foo": "bar", "baz": "qux"}},
		{`foo="bar baz" x=1`, map[string]string{"foo": "bar baz", "x": "1"}},
		{`foo="a \"q\" b"`, map[string]string{"foo": `a \"q\" b`}}, // escapes kept, as upstream
		{`foo= bar=baz`, map[string]string{"foo": "", "bar": "baz"}},
		{`foo=""`, map[string]string{"foo": ""}},
		{`IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 PROTO=TCP SPT=1234 DPT=22 SYN`,
			map[string]string{"IN": "eth0", "OUT": "", "SRC": "1.2.3.4", "DST": "5.6.7.8", "LEN": "40", "PROTO": "TCP", "SPT": "1234", "DPT": "22"}},
	}
	for _, tt := range tests {
		target := map[string]any{}
		if err := ParseKV(tt.in, target, "kv"); err != nil {
			t.Errorf("ParseKV(%q): %v", tt.in, err)
			continue
		}
		if got := target["kv"]; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseKV(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
	// No pair at all, and a prefix holding something else, are errors.
	if err := ParseKV("no pairs here", map[string]any{}, "kv"); err == nil {
		t.Error("no pair: no error")
	}
	if err := ParseKV("a=b", map[string]any{"kv": "x"}, "kv"); err == nil {
		t.Error("wrong target type: no error")
	}
	if err := ParseKV("a=b", nil, "kv"); err == nil {
		t.Error("nil target: no error")
	}
	// A second call adds to the same map.
	target := map[string]any{}
	_ = ParseKV("a=1", target, "kv")
	_ = ParseKV("b=2", target, "kv")
	if !reflect.DeepEqual(target["kv"], map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("two calls: %#v", target["kv"])
	}
	// Through expr: the error is a VM error (upstream's behaviour), the
	// success value is nil.
	evt := &event.Event{Unmarshaled: map[string]any{}, Parsed: map[string]string{"m": `user=bob status="login failed"`}}
	out, err := evalUp(t, `ParseKV(evt.Parsed.m, evt.Unmarshaled, "app") in ["", nil] && evt.Unmarshaled.app.status == "login failed"`, evt)
	if err != nil || out != true {
		t.Fatalf("expr ParseKV: %v, %v", out, err)
	}
	if _, err := evalUp(t, `ParseKV("nothing", evt.Unmarshaled, "x")`, evt); err == nil {
		t.Fatal("expr ParseKV without pairs: no error")
	}
}

func TestParseKVLax(t *testing.T) {
	target := map[string]any{}
	err := ParseKVLax(`msg='it\'s ok' url=/a?b=c word k="x y" empty=`, target, "kv")
	want := map[string]string{"msg": "it's ok", "url": "/a?b=c", "k": "x y", "empty": ""}
	if err != nil || !reflect.DeepEqual(target["kv"], want) {
		t.Fatalf("ParseKVLax = %#v, %v; want %#v", target["kv"], err, want)
	}
	if err := ParseKVLax("nothing here", map[string]any{}, "kv"); err == nil {
		t.Error("no pair: no error")
	}
	// An unterminated quote takes the rest of the line, no panic.
	target = map[string]any{}
	if err := ParseKVLax(`a="open b=c`, target, "kv"); err != nil || target["kv"].(map[string]string)["a"] != "open b=c" {
		t.Errorf("unterminated: %#v %v", target["kv"], err)
	}
}

func TestUpstreamStringHelpersExpr(t *testing.T) {
	evt := &event.Event{Parsed: map[string]string{"addr": "[2001:db8::1]:443"}}
	tests := []struct {
		src  string
		want any
	}{
		{`TrimPrefix(TrimSuffix(evt.Parsed.addr, ":443"), "[")`, "2001:db8::1]"},
		{`TrimPrefix("abc", "x")`, "abc"},
		{`TrimSuffix("a.log", ".log")`, "a"},
		{`Trim("xxaxx", "x")`, "a"},
		{`TrimLeft("xxaxx", "x")`, "axx"},
		{`TrimRight("xxaxx", "x")`, "xxa"},
		{`Fields(" a  b\tc ")`, []string{"a", "b", "c"}},
		{`Index("chicken", "ken")`, 4},
		{`Index("chicken", "dmr")`, -1},
		{`IndexAny("golang", "xyn")`, 4},
		{`Join(["a", "b"], "-")`, "a-b"},
		{`Join(Split("a,b", ","), "+")`, "a+b"},
		{`SplitN("a,b,c", ",", 2)`, []string{"a", "b,c"}},
		{`SplitAfter("a,b", ",")`, []string{"a,", "b"}},
		{`SplitAfterN("a,b,c", ",", 2)`, []string{"a,", "b,c"}},
		{`Replace("oink oink oink", "k", "ky", 2)`, "oinky oinky oink"},
		{`ReplaceAll("oink oink", "o", "0")`, "0ink 0ink"},
		{`B64Decode("aGVsbG8=")`, "hello"},
		{`ParseUnix("1672239773.3590894")`, "2022-12-28T15:02:53Z"},
		{`ParseUnix("1672239773")`, "2022-12-28T15:02:53Z"},
		{`ParseUnix("foo")`, ""},
		{`ParseUnix("0")`, ""},
		{`ParseUnix("-5")`, ""},
		{`ParseUnix("1672239773.x")`, "2022-12-28T15:02:53Z"},
		{`ParseQuery("a=1&a=2&b=x")["a"]`, []string{"1", "2"}},
		{`FloatApproxEqual(1.0000001, 1.0)`, true},
		{`FloatApproxEqual(1.01, 1.0)`, false},
		{`KeyExists("a", {"a": 1})`, true},
		{`KeyExists("b", {"a": 1})`, false},
		{`Get(["a", "b"], 1)`, "b"},
		{`Get(["a", "b"], 2)`, ""},
		{`Get(["a", "b"], -1)`, ""},
		{`Flatten([1, [2, [3]], 4])`, []any{1, 2, 3, 4}},
		{`Flatten(1, [2])`, []any{1, 2}},
		{`Distinct([1, 2, 1, "a", "a"])`, []any{1, 2, "a"}},
		{`Distinct("x")`, []any(nil)},
		{`FlattenDistinct([1, [1, 2]], [2, 3])`, []any{1, 2, 3}},
		{`ToJsonString({"a": [1, "b"]})`, `{"a":[1,"b"]}`},
		{`LogInfo("seen %s", "x")`, true},
		{`Match("*.example.com", "www.example.com")`, true},
		{`Match("a?c", "abc")`, true},
		{`Match("a?c", "abbc")`, false},
		{`Match("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaac")`, false},
		{`Match("", "")`, true},
		{`Match("", "x")`, false},
		{`Match("a*", "a")`, true},
	}
	for _, tt := range tests {
		got, err := evalUp(t, tt.src, evt)
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		if v, ok := got.(url.Values); ok {
			got = []string(v["a"])
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.src, got, tt.want)
		}
	}
	// B64Decode of garbage is a VM error, as upstream.
	if _, err := evalUp(t, `B64Decode("!!")`, evt); err == nil {
		t.Error("B64Decode garbage: no error")
	}
	got, err := evalUp(t, `TimeNow()`, evt)
	if s, _ := got.(string); err != nil || !strings.HasSuffix(s, "Z") {
		t.Errorf("TimeNow = %v, %v", got, err)
	} else if _, err := time.Parse(time.RFC3339, s); err != nil {
		t.Errorf("TimeNow not RFC 3339: %v", err)
	}
	if got, err := evalUp(t, `Hostname() != ""`, evt); err != nil || got != true {
		t.Errorf("Hostname: %v %v", got, err)
	}
}

func TestAverageInterval(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ts := []any{t0, t0.Add(10 * time.Second), t0.Add(30 * time.Second)}
	if got := AverageInterval(ts); got != 15*time.Second {
		t.Errorf("AverageInterval = %v, want 15s", got)
	}
	if got := AverageInterval([]any{t0}); got != 0 {
		t.Errorf("one time = %v, want 0", got)
	}
	if got := AverageInterval([]any{t0, "x"}); got != 0 {
		t.Errorf("bad element = %v, want 0", got)
	}
	if got := AverageInterval(nil); got != 0 {
		t.Errorf("nil = %v", got)
	}
	evs := []event.Event{{Time: t0}, {Time: t0.Add(4 * time.Second)}}
	if got := AverageInterval(evs); got != 4*time.Second {
		t.Errorf("events = %v", got)
	}
}
