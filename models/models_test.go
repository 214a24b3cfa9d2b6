package models

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

const validAlert = `[{"scenario":"crowdsecurity/ssh-bf","scenario_hash":"4441","scenario_version":"0.1",
  "message":"Ip 192.0.2.7 performed 'crowdsecurity/ssh-bf' (6 events over 30ms)",
  "events_count":6,"start_at":"2026-01-05T10:00:00.02+01:00","stop_at":"2026-01-05T10:00:00.05+01:00",
  "capacity":5,"leakspeed":"10s","simulated":false,"remediation":true,"decisions":null,
  "labels":null,"kind":"crowdsec","meta":[{"key":"service","value":"ssh"}],
  "source":{"scope":"Ip","value":"192.0.2.7","ip":"192.0.2.7","range":"192.0.2.0/24",
            "as_number":"64500","as_name":"EXAMPLE-AS","cn":"FR","latitude":48.8,"longitude":2.3},
  "events":[{"timestamp":"2026-01-05T09:59:59Z","meta":[{"key":"source_ip","value":"192.0.2.7"}]}]}]`

const manualAlertJSON = `[{"scenario":"manual 'ban' from 'h'","scenario_hash":"","scenario_version":"","message":"manual 'ban' from 'h'",
  "events_count":1,"start_at":"2026-01-05T10:00:00Z","stop_at":"2026-01-05T10:00:00Z","capacity":0,"leakspeed":"0",
  "simulated":false,"remediation":true,"kind":"cscli","events":[],
  "source":{"scope":"Ip","value":"192.0.2.7","ip":"192.0.2.7"},
  "decisions":[{"duration":"4h","origin":"cscli","scenario":"manual 'ban' from 'h'","scope":"Ip","type":"ban","value":"192.0.2.7"}]}]`

func TestDecodeAlerts(t *testing.T) {
	as, err := DecodeAlerts([]byte(validAlert))
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].Source == nil || as[0].Source.Value != "192.0.2.7" || as[0].EventsCount != 6 || len(as[0].Events) != 1 {
		t.Errorf("decoded %+v", as[0])
	}
	if _, err := DecodeAlerts([]byte(manualAlertJSON)); err != nil {
		t.Errorf("manual alert: %v", err)
	}

	var ve *ValidationError
	cases := []struct {
		name       string
		body       string
		validation bool   // a *ValidationError (500) rather than a bind error (400)
		msg        string // exact ValidationError text when set
	}{
		{"object", `{}`, false, ""},
		{"empty", ``, false, ""},
		{"number item", `[1]`, false, ""},
		{"wrong type", strings.Replace(validAlert, `"events_count":6`, `"events_count":"6"`, 1), false, ""},
		{"int32 overflow", strings.Replace(validAlert, `"capacity":5`, `"capacity":4294967296`, 1), false, ""},
		{"missing scenario", strings.Replace(validAlert, `"scenario":"crowdsecurity/ssh-bf",`, ``, 1), true,
			"validation failure list:\n0.scenario in body is required"},
		{"null events", strings.Replace(validAlert, `"events":[{"timestamp":"2026-01-05T09:59:59Z","meta":[{"key":"source_ip","value":"192.0.2.7"}]}]`, `"events":null`, 1), true,
			"validation failure list:\n0.events in body is required"},
		{"null source", `[{"scenario":"","scenario_hash":"","scenario_version":"","message":"","events_count":1,"start_at":"","stop_at":"","capacity":0,"leakspeed":"","simulated":false,"events":[],"source":null}]`, true,
			"validation failure list:\n0.source in body is required"},
		{"source shadowed by a case variant", `[{"scenario":"","scenario_hash":"","scenario_version":"","message":"","events_count":1,"start_at":"","stop_at":"","capacity":0,"leakspeed":"","simulated":false,"events":[],"source":{"scope":"Ip","value":"x"},"Source":null}]`, true,
			"validation failure list:\n0.source in body is required"},
		{"source without value", strings.Replace(validAlert, `"value":"192.0.2.7","ip"`, `"ip"`, 1), true,
			"validation failure list:\n0.source.value in body is required"},
		{"null decision", strings.Replace(manualAlertJSON, `"decisions":[{`, `"decisions":[null,{`, 1), true, ""},
		{"null alert", `[null]`, true, ""},
	}
	for _, c := range cases {
		_, err := DecodeAlerts([]byte(c.body))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if isVE := errors.As(err, &ve); isVE != c.validation {
			t.Errorf("%s: validation error = %v, want %v (%v)", c.name, isVE, c.validation, err)
		}
		if c.msg != "" && err.Error() != c.msg {
			t.Errorf("%s: %q, want %q", c.name, err.Error(), c.msg)
		}
	}
}

// TestDecodeAlertsKeyCases pins how odd-cased, escaped and duplicate keys
// and a batch with one bad alert are judged: the required-key check matches
// keys exactly (the last duplicate counting) while the decode itself
// matches them case-insensitively.
func TestDecodeAlertsKeyCases(t *testing.T) {
	one := strings.TrimSuffix(strings.TrimPrefix(validAlert, "["), "]")
	cases := []struct {
		name string
		body string
		msg  string // "" = accepted
	}{
		{"upper-cased key", strings.Replace(validAlert, `"scenario":`, `"SCENARIO":`, 1),
			"validation failure list:\n0.scenario in body is required"},
		{"escaped key", strings.Replace(validAlert, `"scenario":`, `"sc\u0065nario":`, 1), ""},
		{"duplicate key, null last", strings.Replace(validAlert, `"scenario":"crowdsecurity/ssh-bf",`, `"scenario":"crowdsecurity/ssh-bf","scenario":null,`, 1),
			"validation failure list:\n0.scenario in body is required"},
		{"duplicate key, null first", strings.Replace(validAlert, `"scenario":"crowdsecurity/ssh-bf",`, `"scenario":null,"scenario":"crowdsecurity/ssh-bf",`, 1), ""},
		{"case variant after the key", strings.Replace(validAlert, `"scenario":"crowdsecurity/ssh-bf",`, `"scenario":"crowdsecurity/ssh-bf","Scenario":null,`, 1), ""},
		{"upper-cased source scope", strings.Replace(validAlert, `"scope":"Ip"`, `"Scope":"Ip"`, 1),
			"validation failure list:\n0.source.scope in body is required"},
		{"upper-cased source key", strings.Replace(validAlert, `"source":{`, `"SOURCE":{`, 1), ""},
		{"source twice, the last without value", strings.Replace(validAlert, `"source":{`, `"source":{"scope":"Ip"},"source":{`, 1), ""},
		{"source twice, the first without value", strings.Replace(validAlert, `"events":[`, `"source":{"scope":"Ip"},"events":[`, 1),
			"validation failure list:\n0.source.value in body is required"},
		{"second of three invalid", "[" + one + "," + strings.Replace(one, `"message":`, `"Message":`, 1) + "," + strings.Replace(one, `"capacity":5,`, ``, 1) + "]",
			"validation failure list:\n1.message in body is required\n2.capacity in body is required"},
		{"three valid", "[" + one + ",\n" + one + " , " + one + "]", ""},
		{"null", `null`, ""},
		{"empty list", ` [ ] `, ""},
	}
	for _, c := range cases {
		as, err := DecodeAlerts([]byte(c.body))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != c.msg {
			t.Errorf("%s: error %q, want %q", c.name, got, c.msg)
		}
		if err == nil && as == nil {
			t.Errorf("%s: nil list", c.name)
		}
	}
}

func FuzzDecodeAlerts(f *testing.F) {
	f.Add([]byte(validAlert))
	f.Add([]byte(manualAlertJSON))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[null]`))
	f.Add([]byte(`[{"source":{"scope":"Ip","value":"x"},"SOURCE":null}]`))
	f.Add([]byte(strings.Replace(validAlert, `"scenario":"crowdsecurity/ssh-bf",`, `"scenario":"x","sc\u0065nario":null,"Scenario":"y",`, 1)))
	f.Fuzz(func(t *testing.T, body []byte) {
		as, err := DecodeAlerts(body)
		// The fast path must judge and decode exactly as the full check.
		want, werr := decodeAlertsChecked(body)
		if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
			t.Fatalf("fast path error %v, full check %v: %q", err, werr, body)
		}
		if err == nil && !reflect.DeepEqual(as, want) {
			t.Fatalf("fast path decoded %+v, full check %+v: %q", as, want, body)
		}
		if err != nil {
			return
		}
		for i, a := range as {
			if a == nil {
				t.Fatalf("alert %d is nil", i)
			}
			if a.Source == nil {
				t.Fatalf("alert %d accepted with a nil source: %q", i, body)
			}
			for j, d := range a.Decisions {
				if d == nil {
					t.Fatalf("alert %d decision %d is nil", i, j)
				}
			}
			for j, e := range a.Events {
				if e == nil {
					t.Fatalf("alert %d event %d is nil", i, j)
				}
			}
			_ = a.GetScope() + a.GetValue() + a.GetMeta("x")
		}
	})
}

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"4h", 4 * time.Hour, true},
		{"45s", 45 * time.Second, true},
		{"1h30m", 90 * time.Minute, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"1d", 24 * time.Hour, true},
		{"0d", 0, true},
		{"1d12h", 36 * time.Hour, true},
		{"2d3h4m5s", 51*time.Hour + 4*time.Minute + 5*time.Second, true},
		{"-1d", -24 * time.Hour, true},
		{"-4h", -4 * time.Hour, true},
		{"0", 0, true},
		{"106751d", 106751 * 24 * time.Hour, true},
		{"", 0, false},
		{"-", 0, false},
		{"d", 0, false},
		{"-d", 0, false},
		{"4", 0, false},
		{"4x", 0, false},
		{"1.5d", 0, false},
		{"1d1d", 0, false},
		{"dd", 0, false},
		{"forever", 0, false},
		{" 4h", 0, false},
		{"106752d", 0, false},
		{"106751d24h", 0, false}, // would overflow time.Duration
		{"99999999999999999999d", 0, false},
	}
	for _, c := range cases {
		got, err := ParseDuration(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseDuration(%q) error = %v, want ok=%v", c.in, err, c.ok)
			continue
		}
		if c.ok && got != c.want {
			t.Errorf("ParseDuration(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

// TestTimeRange: durations past time.Duration's range and instants past
// 2262-04-11 are errors wrapping ErrTimeRange, never values that wrap
// around; the extremes that fit are accepted.
func TestTimeRange(t *testing.T) {
	for _, s := range []string{"106752d", "2562048h", "3000000h", "9999999999999999999ns", "99999999999999999999d", "106751d24h", "-106752d"} {
		if d, err := ParseDuration(s); !errors.Is(err, ErrTimeRange) || !strings.Contains(err.Error(), "longer than 106751d") {
			t.Errorf("ParseDuration(%q) = %s, %v; want an error saying it is too long", s, d, err)
		}
	}
	for _, s := range []string{"4x", "1e3h", "forever"} {
		if _, err := ParseDuration(s); err == nil || errors.Is(err, ErrTimeRange) {
			t.Errorf("ParseDuration(%q): %v, want a syntax error", s, err)
		}
	}
	if d, err := ParseDuration("2562047h"); err != nil || d != 2562047*time.Hour {
		t.Errorf(`ParseDuration("2562047h") = %s, %v`, d, err)
	}

	start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	latest := time.Unix(0, math.MaxInt64)
	for _, c := range []struct {
		start time.Time
		d     string
		err   string // "" when it fits
	}{
		{start, "100000d", "it would end at 2300-09-21T12:00:00Z: times must lie between 1677-09-21 and 2262-04-11T23:47:16Z"},
		{start, "106751d", "it would end at 2319-"},
		{start, "-106751d", ""},
		{start, "36500d", ""},
		{latest.Add(-time.Hour), "1h", ""},
		{latest.Add(-time.Hour), "1h1ns", "it would end at 2262-04-11T23:47:16Z"},
		{time.Unix(0, math.MinInt64).Add(time.Hour), "-1h1ns", "it would end at 1677-09-21T00:12:43Z"},
	} {
		d, err := ParseDuration(c.d)
		if err != nil {
			t.Fatal(err)
		}
		end, err := Expiry(c.start, d)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("Expiry(%s, %s): %v", c.start, c.d, err)
		case c.err == "" && (!end.Equal(c.start.Add(d)) || end.UnixNano() != c.start.UnixNano()+int64(d)):
			t.Errorf("Expiry(%s, %s) = %s, which does not survive int64 nanoseconds", c.start, c.d, end)
		case c.err != "" && (!errors.Is(err, ErrTimeRange) || !strings.HasPrefix(err.Error(), c.err)):
			t.Errorf("Expiry(%s, %s) = %s, %v; want an error starting %q", c.start, c.d, end, err, c.err)
		}
	}

	for _, c := range []struct {
		t  time.Time
		ok bool
	}{
		{time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), false},
		{time.Time{}, false},
		{latest, true},
		{latest.Add(time.Nanosecond), false},
		{time.Unix(0, math.MinInt64), true},
		{start, true},
	} {
		if err := CheckTime(c.t); (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrTimeRange)) {
			t.Errorf("CheckTime(%s) = %v, want ok=%v", c.t, err, c.ok)
		}
	}
}

func TestFormatRemaining(t *testing.T) {
	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		until time.Time
		want  string
	}{
		{now.Add(4*time.Hour - 2*time.Second), "3h59m58s"},
		{now.Add(4*time.Hour - 1641708614*time.Nanosecond), "3h59m58s"},
		{now.Add(4*time.Hour - 1400*time.Millisecond), "3h59m59s"},
		{now.Add(45 * time.Second), "45s"},
		{now, "0s"},
		{now.Add(300 * time.Millisecond), "0s"},
		{now.Add(7*24*time.Hour - time.Second), "167h59m59s"},
		{now.Add(-(time.Hour + 2*time.Minute + 3*time.Second)), "-1h2m3s"},
		{now.Add(-1500 * time.Millisecond), "-2s"},
	}
	for _, c := range cases {
		got := FormatRemaining(c.until, now)
		if got != c.want {
			t.Errorf("FormatRemaining(%s) = %q, want %q", c.until.Sub(now), got, c.want)
		}
		if _, err := time.ParseDuration(got); err != nil {
			t.Errorf("FormatRemaining output %q does not parse: %v", got, err)
		}
		if strings.Contains(got, "d") || strings.Contains(got, ".") {
			t.Errorf("FormatRemaining output %q has days or fractions", got)
		}
	}
}

func TestNormalizeScope(t *testing.T) {
	for in, want := range map[string]string{
		"ip": "Ip", "IP": "Ip", "Ip": "Ip", "iP": "Ip",
		"range": "Range", "RANGE": "Range", "Range": "Range",
		"as": "AS", "As": "AS", "AS": "AS",
		"country": "Country", "COUNTRY": "Country",
		"username": "username", "UserName": "UserName", "": "", "ip ": "ip ", "lists:foo": "lists:foo",
		"crowdsecurity/community-blocklist": "crowdsecurity/community-blocklist",
	} {
		if got := NormalizeScope(in); got != want {
			t.Errorf("NormalizeScope(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTimeOrNow(t *testing.T) {
	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-01-05T10:00:00.02+01:00": time.Date(2026, 1, 5, 9, 0, 0, 20e6, time.UTC),
		"2020-10-02T17:09:08Z":         time.Date(2020, 10, 2, 17, 9, 8, 0, time.UTC),
		"":                             now,
		"garbage":                      now,
		"2020-10-02 17:09:08":          now,
	} {
		if got := TimeOrNow(in, now); !got.Equal(want) {
			t.Errorf("TimeOrNow(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestDecisionKeyOrder pins the marshalled key order to upstream's struct.
func TestDecisionKeyOrder(t *testing.T) {
	f := false
	b, _ := json.Marshal(&Decision{Duration: "1h", ID: 3, Origin: "cscli", Scenario: "s", Scope: "Ip", Simulated: &f, Type: "ban", UUID: "u", Value: "v"})
	want := `{"duration":"1h","id":3,"origin":"cscli","scenario":"s","scope":"Ip","simulated":false,"type":"ban","uuid":"u","value":"v"}`
	if string(b) != want {
		t.Errorf("decision JSON %s, want %s", b, want)
	}
	b, _ = json.Marshal(DeleteResponse{NbDeleted: "3"})
	if string(b) != `{"nbDeleted":"3"}` {
		t.Errorf("delete response %s", b)
	}
	b, _ = json.Marshal(CheckAllowlistResponse{})
	if string(b) != `{}` {
		t.Errorf("empty allowlist check %s, want {}", b)
	}
}
