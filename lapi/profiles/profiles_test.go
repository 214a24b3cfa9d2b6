package profiles

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/rampart-ips/rampart/models"
)

// TestMain keeps the expected warnings out of the test output unless -v.
func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Verbose() {
		logrus.SetOutput(io.Discard)
	}
	os.Exit(m.Run())
}

// record is one fake stored decision.
type record struct {
	value   string
	created time.Time
	until   time.Time
}

// fakeCounter answers the Counter interface from a slice of records.
type fakeCounter struct {
	now     time.Time
	records []record
	err     error
	calls   int
}

func (f *fakeCounter) DecisionsCount(_ context.Context, value string) (int, error) {
	f.calls++
	if f.err != nil {
		return 0, f.err
	}
	n := 0
	for _, r := range f.records {
		if r.value == value {
			n++
		}
	}
	return n, nil
}

func (f *fakeCounter) DecisionsSinceCount(_ context.Context, value string, since time.Time) (int, error) {
	f.calls++
	if f.err != nil {
		return 0, f.err
	}
	n := 0
	for _, r := range f.records {
		if r.value == value && r.created.After(since) {
			n++
		}
	}
	return n, nil
}

func (f *fakeCounter) ActiveDecisionsCount(_ context.Context, value string) (int, error) {
	f.calls++
	if f.err != nil {
		return 0, f.err
	}
	n := 0
	for _, r := range f.records {
		if r.value == value && r.until.After(f.now) {
			n++
		}
	}
	return n, nil
}

func (f *fakeCounter) ActiveDecisionsTimeLeft(_ context.Context, value string) (time.Duration, error) {
	f.calls++
	if f.err != nil {
		return 0, f.err
	}
	var left time.Duration
	for _, r := range f.records {
		if r.value == value && r.until.Sub(f.now) > left {
			left = r.until.Sub(f.now)
		}
	}
	return left, nil
}

var testNow = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// past returns n expired records for value, created one day apart.
func past(value string, n int) []record {
	out := make([]record, n)
	for i := range out {
		created := testNow.Add(-time.Duration(i+1) * 24 * time.Hour)
		out[i] = record{value: value, created: created, until: created.Add(4 * time.Hour)}
	}
	return out
}

func alert(scope, value string, remediation bool) *models.Alert {
	return &models.Alert{
		Scenario:    "crowdsecurity/ssh-bf",
		Remediation: remediation,
		EventsCount: 6,
		Source:      &models.Source{Scope: scope, Value: value, IP: value},
		Meta:        []models.Meta{{Key: "service", Value: "ssh"}},
	}
}

func ban(scope, value, duration string) *models.Decision {
	return &models.Decision{Type: "ban", Scope: scope, Value: value, Duration: duration,
		Origin: "crowdsec", Scenario: "crowdsecurity/ssh-bf"}
}

// mustSet parses and compiles a TOML document and pins the clock.
func mustSet(t *testing.T, doc string) *Set {
	t.Helper()
	ps, err := Parse([]byte(doc), "test.toml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	s, err := NewSet(ps)
	if err != nil {
		t.Fatalf("NewSet: %v", err)
	}
	s.now = func() time.Time { return testNow }
	return s
}

func assertDecisions(t *testing.T, got, want []*models.Decision) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decisions:\n got  %s\n want %s", dump(got), dump(want))
	}
}

func dump(ds []*models.Decision) string {
	if ds == nil {
		return "nil"
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%+v", *d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func TestDefault(t *testing.T) {
	s := Default()
	s.now = func() time.Time { return testNow }
	if got, want := s.Names(), []string{"default_ip_remediation", "default_range_remediation"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("enabled default profiles = %v, want %v", got, want)
	}
	tests := []struct {
		name    string
		alert   *models.Alert
		records []record
		want    []*models.Decision
	}{
		{"ip", alert("Ip", "192.0.2.7", true), nil, []*models.Decision{ban("Ip", "192.0.2.7", "4h")}},
		{"ipv6", alert("Ip", "2001:db8::1", true), nil, []*models.Decision{ban("Ip", "2001:db8::1", "4h")}},
		{"range", alert("Range", "192.0.2.0/24", true), nil, []*models.Decision{ban("Range", "192.0.2.0/24", "4h")}},
		{"escalation off by default", alert("Ip", "192.0.2.7", true), past("192.0.2.7", 5), []*models.Decision{ban("Ip", "192.0.2.7", "4h")}},
		{"remediation false", alert("Ip", "192.0.2.7", false), nil, nil},
		{"other scope", alert("Country", "FR", true), nil, nil},
		{"username scope", alert("username", "root", true), nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeCounter{now: testNow, records: tc.records}
			got, err := s.Evaluate(context.Background(), tc.alert, c)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			assertDecisions(t, got, tc.want)
			if tc.alert.Decisions != nil {
				t.Fatalf("Evaluate modified the alert: %v", dump(tc.alert.Decisions))
			}
		})
	}
}

func TestEscalation(t *testing.T) {
	ps, err := Parse(DefaultTOML, "default_profiles.toml")
	if err != nil {
		t.Fatal(err)
	}
	if ps[0].Name != "escalating_ip_remediation" || ps[0].IsEnabled() {
		t.Fatalf("first default profile = %q enabled=%v, want disabled escalating_ip_remediation", ps[0].Name, ps[0].IsEnabled())
	}
	on := true
	ps[0].Enabled = &on
	s, err := NewSet(ps)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		previous int
		want     string
	}{
		{0, "4h"}, {1, "8h"}, {2, "12h"}, {3, "16h"}, {10, "44h"},
		{40, "164h"}, {41, "168h"}, {42, "168h"}, {100, "168h"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.previous), func(t *testing.T) {
			// Decisions for another address must not count.
			records := append(past("192.0.2.7", tc.previous), past("198.51.100.1", 7)...)
			c := &fakeCounter{now: testNow, records: records}
			got, err := s.Evaluate(context.Background(), alert("Ip", "192.0.2.7", true), c)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			assertDecisions(t, got, []*models.Decision{ban("Ip", "192.0.2.7", tc.want)})
		})
	}
	// Ranges still go to the fixed profile.
	got, err := s.Evaluate(context.Background(), alert("Range", "192.0.2.0/24", true), &fakeCounter{records: past("192.0.2.0/24", 3)})
	if err != nil {
		t.Fatal(err)
	}
	assertDecisions(t, got, []*models.Decision{ban("Range", "192.0.2.0/24", "4h")})
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // substrings of the error
	}{
		{"unknown top-level table", `
[[profiles]]
name = "x"
filters = ["true"]`, []string{"test.toml:2: profiles: unknown key"}},
		{"unknown profile key", `
[[profile]]
name = "x"
filter = ["true"]
filters = ["true"]`, []string{"test.toml:4: profile.filter: unknown key"}},
		{"unknown decision key", `
[[profile]]
name = "x"
filters = ["true"]
  [[profile.decisions]]
  type = "ban"
  duration = "4h"
  value = "1.2.3.4"`, []string{"test.toml:8: profile.decisions.value: unknown key"}},
		{"wrong type", `
[[profile]]
name = "x"
enabled = "yes"
filters = ["true"]`, []string{"test.toml:4: profile.enabled: "}},
		{"syntax", `[[profile]
name = "x"`, []string{"test.toml:2: "}},
		{"missing duration", `
[[profile]]
name = "x"
filters = ["true"]
  [[profile.decisions]]
  type = "ban"`, []string{`profile "x"`, "decision #1", "missing duration"}},
		{"bad duration", `
[[profile]]
name = "x"
filters = ["true"]
  [[profile.decisions]]
  type = "ban"
  duration = "4 hours"`, []string{`profile "x"`, "4 hours"}},
		{"zero duration", `
[[profile]]
name = "x"
filters = ["true"]
  [[profile.decisions]]
  type = "ban"
  duration = "0s"`, []string{"positive"}},
		{"duration ending past 2262", `
[[profile]]
name = "x"
filters = ["true"]
  [[profile.decisions]]
  type = "ban"
  duration = "100000d"`, []string{`profile "x"`, "decision #1", `duration "100000d": it would end at 2`, "2262-04-11"}},
		{"duration past time.Duration", `
[[profile]]
name = "x"
filters = ["true"]
  [[profile.decisions]]
  type = "ban"
  duration = "3000000h"`, []string{`profile "x"`, "decision #1", "longer than 106751d"}},
		{"missing type", `
[[profile]]
name = "x"
filters = ["true"]
  [[profile.decisions]]
  duration = "4h"`, []string{"missing type"}},
		{"missing name", `
[[profile]]
filters = ["true"]`, []string{"profile #1", "missing name"}},
		{"no filters", `
[[profile]]
name = "x"`, []string{"no filters"}},
		{"bad on_success", `
[[profile]]
name = "x"
filters = ["true"]
on_success = "stop"`, []string{"on_success", "stop"}},
		{"bad on_failure", `
[[profile]]
name = "x"
filters = ["true"]
on_failure = "explode"`, []string{"on_failure", "explode"}},
		{"bad on_error", `
[[profile]]
name = "x"
filters = ["true"]
on_error = "report"`, []string{"on_error", "report"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "test.toml")
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"filter syntax", `
[[profile]]
name = "x"
filters = ["Alert.Remediation == "]`, []string{`profile "x"`, "filter #1"}},
		{"filter not bool", `
[[profile]]
name = "x"
filters = ["Alert.GetValue()"]`, []string{`profile "x"`, "filter #1", "bool"}},
		{"unknown function", `
[[profile]]
name = "x"
filters = ["true", "NoSuchHelper(Alert.GetValue())"]`, []string{"filter #2", "NoSuchHelper"}},
		{"unknown field", `
[[profile]]
name = "x"
filters = ["Alert.Remedy == true"]`, []string{"Remedy"}},
		{"helper argument type", `
[[profile]]
name = "x"
filters = ["GetDecisionsCount(42) > 0"]`, []string{"filter #1"}},
		{"duration_expr syntax", `
[[profile]]
name = "x"
filters = ["true"]
duration_expr = "Sprintf('%dh',"
  [[profile.decisions]]
  type = "ban"
  duration = "4h"`, []string{"duration_expr"}},
		{"disabled profile is still checked", `
[[profile]]
name = "x"
enabled = false
filters = ["Alert.Remediation =="]`, []string{`profile "x"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := Parse([]byte(tc.doc), "test.toml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			_, err = NewSet(ps)
			if err == nil {
				t.Fatal("NewSet succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestOnError(t *testing.T) {
	errDB := errors.New("database is locked")
	// The first profile's filter calls the counter, which fails; the second
	// would ban for 1h.
	doc := func(onError, onSuccess string) string {
		var extra string
		if onError != "" {
			extra += fmt.Sprintf("on_error = %q\n", onError)
		}
		if onSuccess != "" {
			extra += fmt.Sprintf("on_success = %q\n", onSuccess)
		}
		return `
[[profile]]
name = "history"
filters = ["Alert.Remediation && GetDecisionsCount(Alert.GetValue()) > 2"]
` + extra + `
  [[profile.decisions]]
  type = "ban"
  duration = "24h"

[[profile]]
name = "fallback"
filters = ["Alert.Remediation"]
on_success = "break"
  [[profile.decisions]]
  type = "ban"
  duration = "1h"
`
	}
	fallback := []*models.Decision{ban("Ip", "192.0.2.7", "1h")}
	tests := []struct {
		name      string
		onError   string
		onSuccess string
		counter   Counter
		want      []*models.Decision
		wantErr   error
	}{
		{"unset fails the request", "", "", &fakeCounter{err: errDB}, nil, errDB},
		{"unset without counter fails", "", "", nil, nil, errNoCounter},
		{"continue", "continue", "break", &fakeCounter{err: errDB}, fallback, nil},
		{"ignore", "ignore", "break", &fakeCounter{err: errDB}, fallback, nil},
		{"break acts like continue", "break", "break", &fakeCounter{err: errDB}, fallback, nil},
		{"apply matches without decisions then breaks", "apply", "break", &fakeCounter{err: errDB}, nil, nil},
		{"apply then continue lets the next profile decide", "apply", "continue", &fakeCounter{err: errDB}, fallback, nil},
		{"no error: history profile wins", "", "break", &fakeCounter{records: past("192.0.2.7", 3)}, []*models.Decision{ban("Ip", "192.0.2.7", "24h")}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSet(t, doc(tc.onError, tc.onSuccess))
			got, err := s.Evaluate(context.Background(), alert("Ip", "192.0.2.7", true), tc.counter)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error = %v, want %v", err, tc.wantErr)
				}
				var ee *EvalError
				if !errors.As(err, &ee) || ee.Profile != "history" {
					t.Fatalf("error %v is not an *EvalError for profile history", err)
				}
				if got != nil {
					t.Fatalf("decisions on error: %s", dump(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			assertDecisions(t, got, tc.want)
		})
	}
}

func TestLoadLocalOrdering(t *testing.T) {
	base := `
[[profile]]
name = "base_ban"
filters = ["Alert.Remediation"]
on_success = "break"
  [[profile.decisions]]
  type = "ban"
  duration = "4h"
`
	captcha := func(onSuccess string) string {
		return `
[[profile]]
name = "local_captcha"
filters = ["Alert.GetScope() == 'Ip'"]
on_success = "` + onSuccess + `"
  [[profile.decisions]]
  type = "captcha"
  duration = "1h"
`
	}
	captchaDecision := &models.Decision{Type: "captcha", Scope: "Ip", Value: "192.0.2.7",
		Duration: "1h", Origin: "crowdsec", Scenario: "crowdsecurity/ssh-bf"}
	tests := []struct {
		name      string
		local     *string
		wantNames []string
		want      []*models.Decision
		wantErr   string
	}{
		{"base only", nil, []string{"base_ban"}, []*models.Decision{ban("Ip", "192.0.2.7", "4h")}, ""},
		{"local first, break", ptr(captcha("break")), []string{"local_captcha", "base_ban"}, []*models.Decision{captchaDecision}, ""},
		// The base profile matches too but may not add decisions.
		{"local first, continue", ptr(captcha("continue")), []string{"local_captcha", "base_ban"}, []*models.Decision{captchaDecision}, ""},
		{"empty local", ptr(""), []string{"base_ban"}, []*models.Decision{ban("Ip", "192.0.2.7", "4h")}, ""},
		{"broken local names its file", ptr("[[profile]]\nname = \"x\"\nfilters = [\"true\"]\nbogus = 1\n"), nil, nil, "profiles.toml.local:4: profile.bogus: unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "profiles.toml")
			if err := os.WriteFile(path, []byte(base), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.local != nil {
				if err := os.WriteFile(path+".local", []byte(*tc.local), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s, err := Load(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := s.Names(); !reflect.DeepEqual(got, tc.wantNames) {
				t.Fatalf("names = %v, want %v", got, tc.wantNames)
			}
			got, err := s.Evaluate(context.Background(), alert("Ip", "192.0.2.7", true), &fakeCounter{})
			if err != nil {
				t.Fatal(err)
			}
			assertDecisions(t, got, tc.want)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
	empty := filepath.Join(dir, "empty.toml")
	if err := os.WriteFile(empty, []byte("# nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(empty); err == nil || !strings.Contains(err.Error(), "no [[profile]]") {
		t.Fatalf("Load of an empty file: %v", err)
	}
	def := filepath.Join(dir, "profiles.toml")
	if err := os.WriteFile(def, DefaultTOML, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Load(def)
	if err != nil {
		t.Fatalf("Load of the default file: %v", err)
	}
	if got := s.Names(); !reflect.DeepEqual(got, Default().Names()) {
		t.Fatalf("names = %v", got)
	}
}

func ptr(s string) *string { return &s }

func TestDurationExpr(t *testing.T) {
	doc := func(durationExpr string) string {
		return `
[[profile]]
name = "x"
filters = ["Alert.Remediation"]
duration_expr = ` + fmt.Sprintf("%q", durationExpr) + `
  [[profile.decisions]]
  type = "ban"
  duration = "4h"
`
	}
	tests := []struct {
		name    string
		expr    string
		counter Counter
		want    string
	}{
		{"string", "'6h'", nil, "6h"},
		{"days", "'2d'", nil, "2d"},
		{"computed", "Sprintf('%dh', (GetDecisionsCount(Alert.GetValue()) + 1) * 4)", &fakeCounter{records: past("192.0.2.7", 2)}, "12h"},
		{"time.Duration", "duration('90m')", nil, "1h30m0s"},
		{"garbage string", "'forever'", nil, "4h"},
		{"empty string", "''", nil, "4h"},
		{"number", "42", nil, "4h"},
		{"negative", "'-1h'", nil, "4h"},
		{"zero", "'0s'", nil, "4h"},
		{"ending past 2262", "'100000d'", nil, "4h"},
		{"past time.Duration", "'3000000h'", nil, "4h"},
		{"nil", "nil", nil, "4h"},
		{"runtime error", "Sprintf('%dh', GetDecisionsCount(Alert.GetValue()))", &fakeCounter{err: errors.New("boom")}, "4h"},
		{"no counter", "Sprintf('%dh', GetDecisionsCount(Alert.GetValue()))", nil, "4h"},
	}
	hook := logtest.NewLocal(logrus.StandardLogger())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSet(t, doc(tc.expr))
			hook.Reset()
			got, err := s.Evaluate(context.Background(), alert("Ip", "192.0.2.7", true), tc.counter)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			assertDecisions(t, got, []*models.Decision{ban("Ip", "192.0.2.7", tc.want)})
			// A fallback must be logged as a warning; a success must not.
			warned := false
			for _, e := range hook.AllEntries() {
				if e.Level == logrus.WarnLevel && strings.Contains(e.Message, "duration_expr") {
					warned = true
				}
			}
			if fellBack := tc.want == "4h"; warned != fellBack {
				t.Fatalf("warning logged = %v, want %v", warned, fellBack)
			}
		})
	}
}

func TestMatching(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		alert *models.Alert
		want  []*models.Decision
	}{
		{"two true filters give one copy", `
[[profile]]
name = "x"
filters = ["Alert.Remediation", "Alert.GetScope() == 'Ip'", "true"]
  [[profile.decisions]]
  type = "ban"
  duration = "4h"
`, alert("Ip", "192.0.2.7", true), []*models.Decision{ban("Ip", "192.0.2.7", "4h")}},
		{"later filter true", `
[[profile]]
name = "x"
filters = ["false", "Alert.GetScenario() == 'crowdsecurity/ssh-bf'"]
  [[profile.decisions]]
  type = "ban"
  duration = "4h"
`, alert("Ip", "192.0.2.7", false), []*models.Decision{ban("Ip", "192.0.2.7", "4h")}},
		{"filters stop at the first true one", `
[[profile]]
name = "x"
filters = ["true", "GetDecisionsCount(Alert.GetValue()) > 0"]
  [[profile.decisions]]
  type = "ban"
  duration = "4h"
`, alert("Ip", "192.0.2.7", false), []*models.Decision{ban("Ip", "192.0.2.7", "4h")}},
		{"several templates, scope and origin", `
[[profile]]
name = "x"
filters = ["true"]
  [[profile.decisions]]
  type = "ban"
  duration = "1d"
  [[profile.decisions]]
  type = "captcha"
  duration = "30m"
  scope = "range"
  origin = "profiles"
`, alert("Ip", "192.0.2.7", true), []*models.Decision{
			ban("Ip", "192.0.2.7", "1d"),
			{Type: "captcha", Scope: "Range", Value: "192.0.2.7", Duration: "30m",
				Origin: "crowdsec/profiles", Scenario: "crowdsecurity/ssh-bf"},
		}},
		{"first matching profile with decisions wins", `
[[profile]]
name = "notify_only"
filters = ["true"]
[[profile]]
name = "first"
filters = ["true"]
  [[profile.decisions]]
  type = "captcha"
  duration = "1h"
[[profile]]
name = "second"
filters = ["true"]
  [[profile.decisions]]
  type = "ban"
  duration = "4h"
`, alert("Ip", "192.0.2.7", true), []*models.Decision{{Type: "captcha", Scope: "Ip", Value: "192.0.2.7",
			Duration: "1h", Origin: "crowdsec", Scenario: "crowdsecurity/ssh-bf"}}},
		{"break on a profile without decisions stops", `
[[profile]]
name = "whitelist_like"
filters = ["Alert.GetValue() == '192.0.2.7'"]
on_success = "break"
[[profile]]
name = "ban"
filters = ["true"]
  [[profile.decisions]]
  type = "ban"
  duration = "4h"
`, alert("Ip", "192.0.2.7", true), nil},
		{"disabled profile is skipped", `
[[profile]]
name = "off"
enabled = false
filters = ["true"]
on_success = "break"
  [[profile.decisions]]
  type = "captcha"
  duration = "1h"
[[profile]]
name = "on"
enabled = true
filters = ["true"]
  [[profile.decisions]]
  type = "ban"
  duration = "4h"
`, alert("Ip", "192.0.2.7", true), []*models.Decision{ban("Ip", "192.0.2.7", "4h")}},
		{"accepted but inert keys", `
[[profile]]
name = "x"
debug = true
filters = ["true"]
on_failure = "break"
notifications = ["slack_default"]
  [[profile.decisions]]
  type = "ban"
  duration = "4h"
`, alert("Ip", "192.0.2.7", true), []*models.Decision{ban("Ip", "192.0.2.7", "4h")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSet(t, tc.doc)
			got, err := s.Evaluate(context.Background(), tc.alert, &fakeCounter{err: errors.New("must not be called")})
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			assertDecisions(t, got, tc.want)
		})
	}
}

func TestHelpers(t *testing.T) {
	active := []record{
		{value: "192.0.2.7", created: testNow.Add(-30 * time.Minute), until: testNow.Add(3*time.Hour + 30*time.Minute)},
		{value: "192.0.2.7", created: testNow.Add(-3 * time.Hour), until: testNow.Add(time.Hour)},
	}
	records := append(past("192.0.2.7", 3), active...)
	tests := []struct {
		filter string
		want   bool
	}{
		{"GetDecisionsCount(Alert.GetValue()) == 5", true},
		{"GetDecisionsCount('198.51.100.1') == 0", true},
		{"GetDecisionsSinceCount(Alert.GetValue(), '1h') == 1", true},
		{"GetDecisionsSinceCount(Alert.GetValue(), '4h') == 2", true},
		{"GetDecisionsSinceCount(Alert.GetValue(), '2d1h') == 4", true},
		{"GetActiveDecisionsCount(Alert.GetValue()) == 2", true},
		{"GetActiveDecisionsTimeLeft(Alert.GetValue()) > duration('3h')", true},
		{"GetActiveDecisionsTimeLeft(Alert.GetValue()) > duration('4h')", false},
		{"GetActiveDecisionsTimeLeft('198.51.100.1') == duration('0s')", true},
		{"Sprintf('%s/%d', Alert.GetScenario(), Alert.GetEventsCount()) == 'crowdsecurity/ssh-bf/6'", true},
		{"Atof('1.5') + Atof('oops') == 1.5", true},
		{"Lower('SSH') == Alert.GetMeta('service') && Upper(Alert.GetMeta('service')) == 'SSH'", true},
		{"IpInRange(Alert.GetValue(), '192.0.2.0/24')", true},
		{"IpInRange(Alert.GetValue(), '198.51.100.0/24')", false},
		{"IpInRange('not an ip', '192.0.2.0/24') || IpInRange(Alert.GetValue(), 'bad')", false},
		{"Alert.Source.AsName == '' && Alert.EventsCount > 5", true},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			s := mustSet(t, `
[[profile]]
name = "x"
filters = [`+fmt.Sprintf("%q", tc.filter)+`]
  [[profile.decisions]]
  type = "ban"
  duration = "4h"
`)
			got, err := s.Evaluate(context.Background(), alert("Ip", "192.0.2.7", true), &fakeCounter{now: testNow, records: records})
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if matched := len(got) == 1; matched != tc.want {
				t.Fatalf("matched = %v, want %v", matched, tc.want)
			}
		})
	}
	t.Run("bad since duration", func(t *testing.T) {
		s := mustSet(t, `
[[profile]]
name = "x"
filters = ["GetDecisionsSinceCount(Alert.GetValue(), 'yesterday') > 0"]
`)
		_, err := s.Evaluate(context.Background(), alert("Ip", "192.0.2.7", true), &fakeCounter{})
		if err == nil || !strings.Contains(err.Error(), "yesterday") {
			t.Fatalf("error = %v", err)
		}
	})
}

func TestEvaluateInputs(t *testing.T) {
	s := Default()
	if _, err := s.Evaluate(context.Background(), nil, nil); err == nil {
		t.Fatal("nil alert accepted")
	}
	if _, err := s.Evaluate(context.Background(), &models.Alert{Remediation: true}, nil); err == nil {
		t.Fatal("alert without source accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Evaluate(ctx, alert("Ip", "192.0.2.7", true), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	empty, err := NewSet(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := empty.Evaluate(context.Background(), alert("Ip", "192.0.2.7", true), nil)
	if err != nil || got != nil {
		t.Fatalf("empty set: %v, %v", dump(got), err)
	}
}

func TestNewSetDoesNotModifyProfiles(t *testing.T) {
	ps, err := Parse(DefaultTOML, "x")
	if err != nil {
		t.Fatal(err)
	}
	before := fmt.Sprintf("%+v", *ps[1])
	if _, err := NewSet(ps); err != nil {
		t.Fatal(err)
	}
	if after := fmt.Sprintf("%+v", *ps[1]); after != before {
		t.Fatalf("profile changed:\n%s\n%s", before, after)
	}
}

func TestConcurrentEvaluate(t *testing.T) {
	ps, err := Parse(DefaultTOML, "x")
	if err != nil {
		t.Fatal(err)
	}
	on := true
	ps[0].Enabled = &on
	s, err := NewSet(ps)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			value := fmt.Sprintf("192.0.2.%d", i)
			c := &fakeCounter{records: past(value, i)}
			for range 50 {
				got, err := s.Evaluate(context.Background(), alert("Ip", value, true), c)
				if err != nil {
					errs <- err
					return
				}
				if want := fmt.Sprintf("%dh", 4*(i+1)); len(got) != 1 || got[0].Duration != want || got[0].Value != value {
					errs <- fmt.Errorf("goroutine %d: got %s, want %s", i, dump(got), want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// As upstream's, the counting helpers answer 0 for a value that is not an
// address without asking the store, and the Active ones fail.
func TestHelpersOnNonAddress(t *testing.T) {
	for filter, wantErr := range map[string]bool{
		"GetDecisionsCount(Alert.GetValue()) == 0":                       false,
		"GetDecisionsSinceCount(Alert.GetValue(), '1h') == 0":            false,
		"GetActiveDecisionsCount(Alert.GetValue()) == 0":                 true,
		"GetActiveDecisionsTimeLeft(Alert.GetValue()) == duration('0s')": true,
	} {
		s := mustSet(t, `
[[profile]]
name = "x"
filters = [`+fmt.Sprintf("%q", filter)+`]
  [[profile.decisions]]
  type = "ban"
  duration = "4h"
`)
		got, err := s.Evaluate(context.Background(), alert("Username", "alice", true), &fakeCounter{err: errors.New("not an IP address or range")})
		if wantErr {
			if err == nil {
				t.Errorf("%s: no error", filter)
			}
			continue
		}
		if err != nil || len(got) != 1 {
			t.Errorf("%s: %d decisions, %v; want the profile to match", filter, len(got), err)
		}
	}
}

func TestNotifications(t *testing.T) {
	s := mustSet(t, `
[[profile]]
name = "ssh"
filters = ["Alert.Scenario == 'ssh-bf'"]
decisions = [{type = "ban", duration = "4h"}]
notifications = ["mail", "hook"]

[[profile]]
name = "all"
filters = ["true"]
notifications = ["hook", "file"]
on_success = "break"

[[profile]]
name = "never"
filters = ["true"]
notifications = ["late"]

[[profile]]
name = "off"
enabled = false
filters = ["true"]
notifications = ["disabled"]
`)
	refs := s.Notifications()
	want := map[string][]string{"mail": {"ssh"}, "hook": {"ssh", "all"}, "file": {"all"}, "late": {"never"}, "disabled": {"off"}}
	if fmt.Sprint(refs) != fmt.Sprint(want) {
		t.Errorf("Notifications() = %v, want %v", refs, want)
	}
	delete(want, "disabled")
	if got := s.EnabledNotifications(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("EnabledNotifications() = %v, want %v", got, want)
	}
	a := alert("Ip", "192.0.2.7", true)
	a.Scenario = "ssh-bf"
	o, err := s.Apply(context.Background(), a, &fakeCounter{})
	if err != nil {
		t.Fatal(err)
	}
	// Every matching profile up to the break, each name once, in order.
	if fmt.Sprint(o.Notify) != "[mail hook file]" || len(o.Decisions) != 1 {
		t.Errorf("Apply: notify %v, %d decisions", o.Notify, len(o.Decisions))
	}
	a.Scenario = "other"
	a.Decisions = []*models.Decision{ban("Ip", "192.0.2.7", "1h")}
	names, err := s.Notify(context.Background(), a, &fakeCounter{})
	if err != nil || fmt.Sprint(names) != "[hook file]" {
		t.Errorf("Notify: %v %v", names, err)
	}
	if names, _ := Default().Notify(context.Background(), a, nil); names != nil {
		t.Errorf("no profile with notifications: %v", names)
	}
	if _, err := Parse([]byte("[[profile]]\nname = \"p\"\nfilters = [\"true\"]\nnotifications = [\"\"]"), "p.toml"); err == nil ||
		!strings.Contains(err.Error(), "notification #1 is empty") {
		t.Errorf("empty name: %v", err)
	}
}
