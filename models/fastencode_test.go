package models

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// encodeSamples are alerts covering every field, nil and empty lists,
// strings encoding/json escapes and floats in both of its formats.
func encodeSamples() []*Alert {
	sim, notSim := true, false
	full := &Alert{Capacity: -5, CreatedAt: "c", EventsCount: 2147483647, ID: -9223372036854775808, Kind: "crowdsec",
		Labels: []string{"a", "<b>&\"c\"", ""}, Leakspeed: "10s", MachineID: "m", Message: "Ip 1.2.3.4 performed 'x' é 日本 \u2028 \x7f \xff",
		Meta: []Meta{{Key: "k", Value: "v\n\t\\\x01"}}, Remediation: true, Scenario: "s", ScenarioHash: "h", ScenarioVersion: "0.1",
		Simulated: true, StartAt: "2026-01-05T10:00:00Z", StopAt: "2026-01-05T10:00:01Z", UUID: "u",
		Source: &Source{AsName: "AS", AsNumber: "1", Cn: "FR", IP: "1.2.3.4", Latitude: 48.8566, Longitude: -2.35e-7, Range: "1.2.3.0/24", Scope: "Ip", Value: "1.2.3.4"},
		Decisions: []*Decision{{Duration: "4h", ID: 7, Origin: "crowdsec", Scenario: "s", Scope: "Ip", Simulated: &sim, Type: "ban", Until: "u", UUID: "d", Value: "1.2.3.4"},
			{Duration: "1h", Type: "captcha", Value: "x", Simulated: &notSim}, nil},
		Events: []*Event{{Timestamp: "t", Meta: []Meta{{Key: "http_path", Value: "/a?b=1&c=<2>"}, {Key: "", Value: ""}}}, {Meta: []Meta{}}, {}, nil},
	}
	empty := &Alert{Source: &Source{}, Events: []*Event{}, Decisions: []*Decision{}, Labels: []string{}, Meta: []Meta{}}
	floats := []*Alert{}
	for _, f := range []float32{1e-6, 9.99e-7, 1e21, 9.9e20, -1e-7, 123456789, 0.1, math.MaxFloat32, math.SmallestNonzeroFloat32} {
		floats = append(floats, &Alert{Source: &Source{Latitude: f, Longitude: -f, Scope: "Ip", Value: "v"}})
	}
	return append([]*Alert{{}, full, empty, {Source: &Source{Scope: "Range", Range: "10.0.0.0/8"}}}, floats...)
}

// AppendAlertJSON writes the bytes json.Marshal writes.
func TestAppendAlertJSONMatchesMarshal(t *testing.T) {
	for _, a := range append(encodeSamples(), nil) {
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendAlertJSON([]byte("prefix"), a)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("AppendAlertJSON wrote\n%s\njson.Marshal\n%s", got[6:], want)
		}
	}
}

// What json.Marshal cannot encode, AppendAlertJSON refuses as it does.
func TestAppendAlertJSONRefusesNonFinite(t *testing.T) {
	for _, f := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		a := &Alert{Source: &Source{Latitude: 1, Longitude: f}}
		_, want := json.Marshal(a)
		if _, err := AppendAlertJSON(nil, a); err == nil || want == nil || err.Error() != want.Error() {
			t.Errorf("longitude %v: error %v, json.Marshal's %v", f, err, want)
		}
	}
}

func FuzzAppendAlertJSON(f *testing.F) {
	f.Add("Ip", "1.2.3.4", "ssh-bf", "k", "v<>&\u2028", float32(48.85), int32(5), true)
	f.Add("", "", "", "", "\xff\x00", float32(-1e-9), int32(-1), false)
	f.Fuzz(func(t *testing.T, scope, value, scenario, key, val string, lat float32, capacity int32, sim bool) {
		a := &Alert{Capacity: capacity, Scenario: scenario, Message: val, Simulated: sim, Labels: []string{key},
			Source:    &Source{Scope: scope, Value: value, Latitude: lat, Cn: key},
			Meta:      []Meta{{Key: key, Value: val}},
			Events:    []*Event{{Timestamp: value, Meta: []Meta{{Key: key, Value: val}, {Key: val, Value: key}}}},
			Decisions: []*Decision{{Duration: val, Scope: scope, Value: value, Simulated: &sim}}}
		want, werr := json.Marshal(a)
		got, err := AppendAlertJSON(nil, a)
		if (err == nil) != (werr == nil) {
			t.Fatalf("error %v, json.Marshal's %v", err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("AppendAlertJSON wrote\n%s\njson.Marshal\n%s", got, want)
		}
	})
}

// BenchmarkAppendAlertJSON encodes sshd alerts as an agent queues them.
func BenchmarkAppendAlertJSON(b *testing.B) {
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
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(a); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendAlertJSON", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = AppendAlertJSON(buf[:0], a); err != nil {
				b.Fatal(err)
			}
			_ = append([]byte(nil), buf...)
		}
	})
}
