package models

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// fastSamples are bodies as clients write them (json.Marshal's output),
// which the fast decoder must take itself.
func fastSamples(t testing.TB) [][]byte {
	sim := true
	full := &Alert{Capacity: -5, CreatedAt: "c", EventsCount: 2147483647, ID: -9223372036854775808, Kind: "crowdsec",
		Labels: []string{"a", "<b>&\"c\"", ""}, Leakspeed: "10s", MachineID: "m", Message: "Ip 1.2.3.4 performed 'x' é 日本 \u2028 \x7f",
		Meta: []Meta{{Key: "k", Value: "v\n\t\\"}}, Remediation: true, Scenario: "s", ScenarioHash: "h", ScenarioVersion: "0.1",
		Simulated: true, StartAt: "2026-01-05T10:00:00Z", StopAt: "2026-01-05T10:00:01Z", UUID: "u",
		Source: &Source{AsName: "AS", AsNumber: "1", Cn: "FR", IP: "1.2.3.4", Latitude: 48.8566, Longitude: -2.35e-7, Range: "1.2.3.0/24", Scope: "Ip", Value: "1.2.3.4"},
		Decisions: []*Decision{{Duration: "4h", ID: 7, Origin: "crowdsec", Scenario: "s", Scope: "Ip", Simulated: &sim, Type: "ban", Until: "u", UUID: "d", Value: "1.2.3.4"},
			{Duration: "1h", Type: "captcha", Value: "x"}},
		Events: []*Event{{Timestamp: "t", Meta: []Meta{{Key: "http_path", Value: "/a?b=1&c=<2>"}, {Key: "", Value: ""}}}, {Meta: []Meta{}}, {}},
	}
	empty := &Alert{Source: &Source{}, Events: []*Event{}, Decisions: []*Decision{}, Labels: []string{}, Meta: []Meta{}}
	var out [][]byte
	for _, as := range [][]*Alert{{}, {full}, {empty}, {full, empty, full}} {
		b, err := json.Marshal(as)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
		ind, _ := json.MarshalIndent(as, " ", "\t")
		out = append(out, ind)
	}
	return append(out, []byte(validAlert), []byte(manualAlertJSON))
}

// The fast decoder takes what clients write and decodes it as encoding/json.
func TestFastDecodeAlertsMatchesUnmarshal(t *testing.T) {
	for _, body := range fastSamples(t) {
		got, ok := fastDecodeAlerts(body)
		if !ok {
			t.Errorf("fast path refused %s", body)
			continue
		}
		var want []*Alert
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = []*Alert{}
		}
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			t.Errorf("fast path decoded\n%s\nencoding/json\n%s", gj, wj)
		}
	}
}

// What the fast decoder is unsure of goes to encoding/json, whose errors
// (and the validation list) the client gets.
func TestFastDecodeAlertsRefuses(t *testing.T) {
	one := strings.TrimSuffix(strings.TrimPrefix(validAlert, "["), "]")
	for name, body := range map[string]string{
		"null body":         `null`,
		"odd-cased key":     strings.Replace(validAlert, `"message":`, `"Message":`, 1),
		"unknown key":       strings.Replace(validAlert, `"message":`, `"extra":{"a":[1,2]},"message":`, 1),
		"escaped key":       strings.Replace(validAlert, `"scenario":`, `"sc\u0065nario":`, 1),
		"duplicate key":     strings.Replace(validAlert, `"kind":"crowdsec"`, `"kind":"a","kind":"b"`, 1),
		"missing required":  strings.Replace(validAlert, `"capacity":5,`, ``, 1),
		"null required":     strings.Replace(validAlert, `"capacity":5`, `"capacity":null`, 1),
		"null source":       strings.Replace(validAlert, `"source":{`, `"source":null,"x":{`, 1),
		"source no value":   strings.Replace(validAlert, `"value":"192.0.2.7","ip"`, `"ip"`, 1),
		"float count":       strings.Replace(validAlert, `"events_count":6`, `"events_count":6.0`, 1),
		"int32 overflow":    strings.Replace(validAlert, `"capacity":5`, `"capacity":2147483648`, 1),
		"leading zero":      strings.Replace(validAlert, `"capacity":5`, `"capacity":05`, 1),
		"string count":      strings.Replace(validAlert, `"events_count":6`, `"events_count":"6"`, 1),
		"float32 overflow":  strings.Replace(validAlert, `"latitude":48.8`, `"latitude":1e39`, 1),
		"null event":        strings.Replace(validAlert, `"events":[{`, `"events":[null,{`, 1),
		"control character": strings.Replace(validAlert, `"kind":"crowdsec"`, "\"kind\":\"crowd\x01sec\"", 1),
		"bad escape":        strings.Replace(validAlert, `"kind":"crowdsec"`, `"kind":"crowd\qsec"`, 1),
		"trailing garbage":  validAlert + `x`,
		"two lists":         validAlert + validAlert,
		"missing comma":     "[" + one + one + "]",
		"trailing comma":    "[" + one + ",]",
		"truncated":         validAlert[:len(validAlert)-3],
		"null alert":        `[null]`,
		"bool as string":    strings.Replace(validAlert, `"simulated":false`, `"simulated":"false"`, 1),
	} {
		if _, ok := fastDecodeAlerts([]byte(body)); ok {
			t.Errorf("%s: fast path accepted %s", name, body)
		}
	}
}

// Whatever the fast decoder accepts, encoding/json decodes the same and the
// key checks pass.
func FuzzFastDecodeAlerts(f *testing.F) {
	for _, b := range fastSamples(f) {
		f.Add(b)
	}
	f.Add([]byte(`[{"source":{"scope":"Ip","value":"x"},"SOURCE":null}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := fastDecodeAlerts(body)
		if !ok {
			return
		}
		var want []*Alert
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, body)
		}
		if !alertsValid(body, want) {
			t.Fatalf("fast path accepted what the key check refuses: %q", body)
		}
		if want == nil {
			want = []*Alert{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fast path decoded %+v, encoding/json %+v: %q", got, want, body)
		}
	})
}

// BenchmarkDecodeAlerts decodes a push of 50 sshd alerts as an agent
// sends them: 6 events of 8 meta each.
func BenchmarkDecodeAlerts(b *testing.B) {
	body, err := json.Marshal(sshdAlerts())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeAlerts(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeAlert decodes one of those alerts as the agent's queue
// reads it back (DecodeAlert), and as it did before (json.Unmarshal).
func BenchmarkDecodeAlert(b *testing.B) {
	body, err := json.Marshal(sshdAlerts()[0])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("DecodeAlert", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeAlert(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var a Alert
			if err := json.Unmarshal(body, &a); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// sshdAlerts are 50 sshd alerts as an agent pushes them: 6 events of 8
// meta each.
func sshdAlerts() []*Alert {
	var as []*Alert
	for i := range 50 {
		a := &Alert{Scenario: "crowdsecurity/ssh-bf", ScenarioHash: "4441", ScenarioVersion: "0.1", Message: "Ip 192.0.2.7 performed 'crowdsecurity/ssh-bf' (6 events over 30ms)",
			EventsCount: 6, StartAt: "2026-01-05T10:00:00.02Z", StopAt: "2026-01-05T10:00:00.05Z", Capacity: 5, Leakspeed: "10s", Remediation: true,
			Kind: "crowdsec", UUID: "6f1c3e2a-0000-4000-8000-000000000000", Source: &Source{Scope: "Ip", Value: "192.0.2.7", IP: "192.0.2.7", Cn: "FR", AsNumber: "64500", AsName: "EXAMPLE"}}
		for range 6 {
			a.Events = append(a.Events, &Event{Timestamp: a.StartAt, Meta: []Meta{
				{Key: "datasource_path", Value: "/var/log/auth.log"}, {Key: "datasource_type", Value: "file"},
				{Key: "log_type", Value: "ssh_failed-auth"}, {Key: "machine", Value: "host"}, {Key: "service", Value: "ssh"},
				{Key: "source_ip", Value: "192.0.2.7"}, {Key: "target_user", Value: "root"}, {Key: "timestamp", Value: a.StartAt},
			}})
		}
		a.Message += string(rune('a' + i%26))
		as = append(as, a)
	}
	return as
}

// DecodeAlert decodes one alert as json.Unmarshal does, through the fast
// decoder or, for what it refuses, through encoding/json; bad JSON fails.
func TestDecodeAlert(t *testing.T) {
	one := strings.TrimSuffix(strings.TrimPrefix(validAlert, "["), "]")
	bodies := []string{one, " " + one + "\n", strings.Replace(one, `"message":`, `"extra":1,"message":`, 1)}
	for _, body := range fastSamples(t) {
		var as []*Alert
		if err := json.Unmarshal(body, &as); err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			b, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			bodies = append(bodies, string(b))
		}
	}
	for _, body := range bodies {
		got, err := DecodeAlert([]byte(body))
		if err != nil {
			t.Errorf("DecodeAlert(%s): %v", body, err)
			continue
		}
		want := &Alert{}
		if err := json.Unmarshal([]byte(body), want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			t.Errorf("DecodeAlert decoded\n%s\nencoding/json\n%s", gj, wj)
		}
	}
	for _, bad := range []string{"", "{", one + "}", "[" + one + "]"} {
		if _, err := DecodeAlert([]byte(bad)); err == nil {
			t.Errorf("DecodeAlert(%q): no error", bad)
		}
	}
}
