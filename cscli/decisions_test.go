package cscli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/lapitest"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

const (
	testLogin    = "testmachine"
	testPassword = "correct-horse-battery-staple"
)

// lapiEnv is a real LAPI on loopback over a real SQLite file, with a
// validated machine and the config and credentials files cscli reads.
type lapiEnv struct {
	dir     string
	cfgPath string
	url     string
	st      *store.Store
	lapi    *lapitest.LAPI
}

func startLAPI(t testing.TB) *lapiEnv {
	t.Helper()
	dir := t.TempDir()
	return newLAPIEnv(t, dir, lapitest.Start(t, filepath.Join(dir, "crowdsec.db"), ""))
}

// newLAPIEnv is cscli's configuration in dir for the running LAPI l.
func newLAPIEnv(t testing.TB, dir string, l *lapitest.LAPI) *lapiEnv {
	t.Helper()
	l.AddMachine(testLogin, testPassword)
	st := l.Store
	env := &lapiEnv{dir: dir, url: l.URL(), st: st, lapi: l}
	credPath := filepath.Join(dir, "local_api_credentials.toml")
	if err := csconfig.WriteCredentials(credPath, &csconfig.Credentials{URL: env.url, Login: testLogin, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	env.cfgPath = filepath.Join(dir, "config.toml")
	// cscli's own database is the LAPI's, on whichever engine the tests run.
	conf := dbConfigTOML(l.Config) + fmt.Sprintf("\n[api.client]\ncredentials_path = %q\n\n[api.server]\nlisten_uri = %q\n",
		credPath, l.Addr)
	if err := os.WriteFile(env.cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return env
}

// run executes cscli with args and returns its stdout and stderr.
func (e *lapiEnv) run(t testing.TB, stdin io.Reader, args ...string) (string, string, error) {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out, errb bytes.Buffer
	root := newRootCommandWith(&out, &errb, stdin)
	root.SetArgs(append([]string{"-c", e.cfgPath, "--color", "no"}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

// mustRun fails the test when the command fails.
func (e *lapiEnv) mustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := e.run(t, nil, args...)
	if err != nil {
		t.Fatalf("cscli %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// alertsJSON runs a listing with -o json and decodes it.
func (e *lapiEnv) alertsJSON(t testing.TB, args ...string) []*models.Alert {
	t.Helper()
	out := e.mustRun(t, append(args, "-o", "json")...)
	var alerts []*models.Alert
	if err := json.Unmarshal([]byte(out), &alerts); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
	return alerts
}

// activeDecisions lists decisions (all origins, no limit) by value.
func (e *lapiEnv) activeDecisions(t testing.TB) map[string]*models.Decision {
	t.Helper()
	byValue := map[string]*models.Decision{}
	for _, a := range e.alertsJSON(t, "decisions", "list", "-l", "0") {
		for _, d := range a.Decisions {
			byValue[d.Value] = d
		}
	}
	return byValue
}

func (e *lapiEnv) client(t testing.TB) *apiclient.Client {
	t.Helper()
	c, err := apiclient.New(apiclient.Config{URL: e.url, MachineID: testLogin, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *lapiEnv) allowlist(t testing.TB, values ...string) {
	t.Helper()
	ctx := context.Background()
	if err := e.st.CreateAllowlist(ctx, "office", "test allowlist"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.AddAllowlistItems(ctx, "office", values, "office network", nil); err != nil {
		t.Fatal(err)
	}
}

func TestDecisionsAddListDelete(t *testing.T) {
	env := startLAPI(t)

	if out := env.mustRun(t, "decisions", "list"); !strings.Contains(out, "No active decisions") {
		t.Fatalf("empty list: %q", out)
	}
	if out := strings.TrimSpace(env.mustRun(t, "decisions", "list", "-o", "json")); out != "[]" {
		t.Fatalf("empty json list: %q", out)
	}

	out := env.mustRun(t, "decisions", "add", "-i", "192.0.2.7")
	if !strings.Contains(out, "Decision successfully added") {
		t.Fatalf("add output: %q", out)
	}
	alerts := env.alertsJSON(t, "decisions", "list")
	if len(alerts) != 1 || len(alerts[0].Decisions) != 1 {
		t.Fatalf("want one alert with one decision, got %+v", alerts)
	}
	a, d := alerts[0], alerts[0].Decisions[0]
	wantReason := "manual 'ban' from '" + testLogin + "'"
	if d.Origin != "cscli" || d.Type != "ban" || d.Scope != "Ip" || d.Value != "192.0.2.7" || d.Scenario != wantReason {
		t.Fatalf("decision: %+v", d)
	}
	left, err := time.ParseDuration(d.Duration)
	if err != nil || left < 3*time.Hour+58*time.Minute || left > 4*time.Hour {
		t.Fatalf("duration %q: want about 4h", d.Duration)
	}
	if a.Kind != "cscli" || a.Scenario != wantReason || a.Message != wantReason || a.Source.Value != "192.0.2.7" ||
		a.Source.Scope != "Ip" || a.Source.IP != "192.0.2.7" || a.MachineID != testLogin || !a.Remediation || a.EventsCount != 1 {
		t.Fatalf("alert: %+v source %+v", a, a.Source)
	}

	// human and raw renderings
	out = env.mustRun(t, "decisions", "list", "-m")
	for _, want := range []string{"ID", "Source", "Scope:Value", "Reason", "Action", "Country", "AS", "Events", "expiration", "Alert ID", "Machine",
		"Ip:192.0.2.7", wantReason, "cscli", testLogin} {
		if !strings.Contains(out, want) {
			t.Errorf("human list lacks %q:\n%s", want, out)
		}
	}
	out = env.mustRun(t, "decisions", "list", "-o", "raw")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "id,source,ip,reason,action,country,as,events_count,expiration,simulated,alert_id" || len(lines) != 2 ||
		!strings.Contains(lines[1], ",cscli,Ip:192.0.2.7,") || !strings.Contains(lines[1], ",false,") {
		t.Fatalf("raw list:\n%s", out)
	}

	// a second decision on the same value is shown once
	env.mustRun(t, "decisions", "add", "-i", "192.0.2.7", "-d", "1h")
	out = env.mustRun(t, "decisions", "list")
	if !strings.Contains(out, "1 duplicated entries skipped") {
		t.Fatalf("dedup footer missing:\n%s", out)
	}

	// filters reach the LAPI
	if got := env.alertsJSON(t, "decisions", "list", "-i", "192.0.2.8"); len(got) != 0 {
		t.Fatalf("filter on another ip returned %d alerts", len(got))
	}
	if got := env.alertsJSON(t, "decisions", "list", "--origin", "cscli", "--since", "1d", "-t", "ban"); len(got) != 2 {
		t.Fatalf("origin filter: %d alerts", len(got))
	}

	// range and custom scopes, other types
	env.mustRun(t, "decisions", "add", "-r", "198.51.100.0/24", "-t", "captcha", "-d", "1d", "-R", "my reason")
	env.mustRun(t, "decisions", "add", "--scope", "username", "-v", "mallory")
	ds := env.activeDecisions(t)
	if r := ds["198.51.100.0/24"]; r == nil || r.Scope != "Range" || r.Type != "captcha" || r.Scenario != "my reason" {
		t.Fatalf("range decision: %+v", r)
	} else if left, _ := time.ParseDuration(r.Duration); left < 23*time.Hour {
		t.Fatalf("1d decision lasts %s", r.Duration)
	}
	if u := ds["mallory"]; u == nil || u.Scope != "username" {
		t.Fatalf("username decision: %+v", u)
	}

	out = env.mustRun(t, "decisions", "delete", "-i", "192.0.2.7")
	if !strings.Contains(out, "2 decision(s) deleted") {
		t.Fatalf("delete output: %q", out)
	}
	if _, ok := env.activeDecisions(t)["192.0.2.7"]; ok {
		t.Fatal("192.0.2.7 still listed after delete")
	}

	// delete by id
	id := env.activeDecisions(t)["mallory"].ID
	out = env.mustRun(t, "decisions", "delete", "--id", fmt.Sprint(id))
	if !strings.Contains(out, "1 decision(s) deleted") {
		t.Fatalf("delete --id output: %q", out)
	}
	if _, ok := env.activeDecisions(t)["mallory"]; ok {
		t.Fatal("mallory still listed after delete --id")
	}

	out = env.mustRun(t, "decisions", "delete", "--all")
	if !strings.Contains(out, "1 decision(s) deleted") {
		t.Fatalf("delete --all output: %q", out)
	}
	if out := env.mustRun(t, "decisions", "list"); !strings.Contains(out, "No active decisions") {
		t.Fatalf("list after delete --all: %q", out)
	}
}

func TestDecisionsAddRejectsBadInput(t *testing.T) {
	env := startLAPI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-i", "999.1.1.1"}, "not a valid ip"},
		{[]string{"-i", "192.0.2.0/24"}, "not a valid ip"},
		{[]string{"-r", "198.51.100.0/33"}, "not a valid range"},
		{[]string{"-r", "nonsense"}, "not a valid range"},
		{[]string{"-i", "192.0.2.9", "-d", "forever"}, "invalid --duration"},
		{[]string{"-i", "192.0.2.9", "-d", "-1h"}, "invalid --duration"},
		// expiries past 2262 would wrap into the past: a ban never applied
		{[]string{"-i", "203.0.113.99", "-d", "100000d"}, `invalid --duration "100000d": it would end at 2`},
		{[]string{"-i", "203.0.113.99", "-d", "106751d"}, "times must lie between 1677-09-21 and 2262-04-11"},
		{[]string{"-i", "203.0.113.99", "-d", "3000000h"}, "longer than 106751d"},
		{[]string{"--scope", "ip", "-v", "1.2.3.0/24"}, "is a range"},
		{[]string{}, "a value is required"},
	} {
		_, _, err := env.run(t, nil, append([]string{"decisions", "add"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("add %v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if got := env.alertsJSON(t, "alerts", "list"); len(got) != 0 {
		t.Fatalf("rejected input reached the LAPI: %d alerts", len(got))
	}

	_, _, err := env.run(t, nil, "decisions", "delete")
	if err == nil || !strings.Contains(err.Error(), "at least one filter or --all") {
		t.Fatalf("delete without filter: %v", err)
	}
	_, _, err = env.run(t, nil, "decisions", "delete", "-i", "not-an-ip")
	if err == nil || !strings.Contains(err.Error(), "not a valid ip") {
		t.Fatalf("delete with a bad ip: %v", err)
	}
	_, _, err = env.run(t, nil, "decisions", "list", "--since", "yesterday")
	if err == nil || !strings.Contains(err.Error(), "--since") {
		t.Fatalf("list with a bad --since: %v", err)
	}
}

func TestDecisionsAddAllowlisted(t *testing.T) {
	env := startLAPI(t)
	env.allowlist(t, "203.0.113.0/24")

	_, _, err := env.run(t, nil, "decisions", "add", "-i", "203.0.113.5")
	if err == nil || !strings.Contains(err.Error(), "allowlisted") || !strings.Contains(err.Error(), "--bypass-allowlist") {
		t.Fatalf("allowlisted add: %v", err)
	}
	// a range overlapping the allowlist is refused too
	_, _, err = env.run(t, nil, "decisions", "add", "-r", "203.0.0.0/16")
	if err == nil || !strings.Contains(err.Error(), "allowlisted") {
		t.Fatalf("overlapping range add: %v", err)
	}
	if len(env.activeDecisions(t)) != 0 {
		t.Fatal("refused decision was stored")
	}

	env.mustRun(t, "decisions", "add", "-i", "203.0.113.5", "-B")
	if d := env.activeDecisions(t)["203.0.113.5"]; d == nil || d.Origin != "cscli" {
		t.Fatalf("bypassed decision: %+v", d)
	}
}

func TestDecisionsImportValues(t *testing.T) {
	env := startLAPI(t)
	env.allowlist(t, "203.0.113.0/24")

	var b strings.Builder
	b.WriteString("# generated blocklist\n\n")
	line := 2
	badLines := map[int]string{}
	for i := range 10000 {
		fmt.Fprintf(&b, "11.%d.%d.%d\n", i/65536, (i/256)%256, i%256)
		line++
		switch i {
		case 10:
			b.WriteString("not-an-ip\n")
			line++
			badLines[line] = "not-an-ip"
		case 500:
			b.WriteString("  999.1.1.1  \n")
			line++
			badLines[line] = "999.1.1.1"
		case 7000:
			b.WriteString("11.99.0.0/16\n\n# comment\n")
			line++
			badLines[line] = "11.99.0.0/16"
			line += 2
		}
	}
	b.WriteString("203.0.113.9\n")
	path := filepath.Join(env.dir, "blocklist.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	out, errOut, err := env.run(t, nil, "decisions", "import", "-i", path, "--batch", "3000", "-d", "12h", "-R", "blocklist")
	if err != nil {
		t.Fatalf("import: %v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(out, "Imported 10000 decisions") || !strings.Contains(out, "3 invalid entries skipped") ||
		!strings.Contains(out, "1 allowlisted values skipped") {
		t.Fatalf("import summary:\n%s", out)
	}
	for n, v := range badLines {
		if want := fmt.Sprintf("line %d: %s", n, v); !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(errOut, "203.0.113.9 is allowlisted") {
		t.Errorf("allowlisted value not reported:\n%s", errOut)
	}

	alerts := env.alertsJSON(t, "decisions", "list", "-l", "0")
	if len(alerts) != 4 {
		t.Errorf("--batch 3000 over 10000 values: %d alerts, want 4", len(alerts))
	}
	n := 0
	for _, a := range alerts {
		if a.Kind != "cscli" || a.Scenario != "blocklist" {
			t.Fatalf("import alert: kind %q scenario %q", a.Kind, a.Scenario)
		}
		for _, d := range a.Decisions {
			n++
			left, _ := time.ParseDuration(d.Duration)
			if d.Origin != "cscli-import" || d.Scope != "Ip" || d.Type != "ban" || d.Scenario != "blocklist" || left < 11*time.Hour {
				t.Fatalf("imported decision: %+v", d)
			}
			if !strings.HasPrefix(d.Value, "11.") || d.Value == "11.99.0.0/16" {
				t.Fatalf("unexpected value %q", d.Value)
			}
		}
	}
	if n != 10000 {
		t.Fatalf("listed %d imported decisions, want 10000", n)
	}

	out = env.mustRun(t, "alerts", "list")
	if !strings.Contains(out, "Ip (3000 ips)") || !strings.Contains(out, "ban:3000") {
		t.Fatalf("alerts list of an import:\n%s", out)
	}
}

func TestDecisionsImportFormats(t *testing.T) {
	env := startLAPI(t)

	csvPath := filepath.Join(env.dir, "d.csv")
	csvData := "value,duration,scope,type,reason\n" +
		"192.0.2.10,1h,ip,ban,csv-reason\n" +
		"198.51.100.0/24,,range,captcha,\n" +
		"alice,2h,username,,\n" +
		"192.0.2.300,1h,ip,ban,x\n" +
		"192.0.2.11,soon,ip,ban,x\n"
	if err := os.WriteFile(csvPath, []byte(csvData), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := env.run(t, nil, "decisions", "import", "-i", csvPath)
	if err != nil || !strings.Contains(out, "Imported 3 decisions") {
		t.Fatalf("csv import: %v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(errOut, "line 5: 192.0.2.300 is not a valid ip") || !strings.Contains(errOut, `line 6: invalid duration "soon"`) {
		t.Fatalf("csv bad lines:\n%s", errOut)
	}

	jsonPath := filepath.Join(env.dir, "d.json")
	jsonData := `[{"value":"192.0.2.20","duration":"3h","type":"throttle"},{"value":"2001:db8::/64","scope":"range"},{"value":42},{"scope":"ip"}]`
	if err := os.WriteFile(jsonPath, []byte(jsonData), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = env.run(t, nil, "decisions", "import", "-i", jsonPath, "-R", "json-reason")
	if err != nil || !strings.Contains(out, "Imported 2 decisions") || !strings.Contains(out, "2 invalid entries skipped") {
		t.Fatalf("json import: %v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(errOut, "item 3:") || !strings.Contains(errOut, "item 4: missing value") {
		t.Fatalf("json bad items:\n%s", errOut)
	}

	// stdin needs --format
	_, _, err = env.run(t, strings.NewReader("192.0.2.30\n"), "decisions", "import", "-i", "-")
	if err == nil || !strings.Contains(err.Error(), "--format") {
		t.Fatalf("stdin without --format: %v", err)
	}
	out, errOut, err = env.run(t, strings.NewReader("192.0.2.30\r\n192.0.2.31\n"), "decisions", "import", "-i", "-", "--format", "values", "-t", "captcha")
	if err != nil || !strings.Contains(out, "Imported 2 decisions") {
		t.Fatalf("stdin import: %v\n%s\n%s", err, out, errOut)
	}
	_, _, err = env.run(t, strings.NewReader("# nothing\n"), "decisions", "import", "-i", "-", "--format", "values")
	if err == nil || !strings.Contains(err.Error(), "no decisions found") {
		t.Fatalf("empty import: %v", err)
	}

	ds := env.activeDecisions(t)
	check := func(value, scope, typ, scenario string, minLeft time.Duration) {
		t.Helper()
		d := ds[value]
		if d == nil {
			t.Errorf("%s not imported", value)
			return
		}
		left, _ := time.ParseDuration(d.Duration)
		if d.Scope != scope || d.Type != typ || d.Scenario != scenario || d.Origin != "cscli-import" || left < minLeft {
			t.Errorf("%s: %+v", value, d)
		}
	}
	check("192.0.2.10", "Ip", "ban", "csv-reason", 50*time.Minute)
	check("198.51.100.0/24", "Range", "captcha", "manual", 3*time.Hour)
	check("alice", "username", "ban", "manual", 90*time.Minute)
	check("192.0.2.20", "Ip", "throttle", "json-reason", 2*time.Hour)
	check("2001:db8::/64", "Range", "ban", "json-reason", 3*time.Hour)
	check("192.0.2.31", "Ip", "captcha", "manual", 3*time.Hour)
	if len(ds) != 7 {
		t.Errorf("%d active decisions, want 7", len(ds))
	}
}

// TestDecisionsImportTimeRange: an import whose default duration, or an
// entry whose duration, would end past 2262 is refused (the entry skipped
// as invalid) instead of being stored as already expired.
func TestDecisionsImportTimeRange(t *testing.T) {
	env := startLAPI(t)
	path := filepath.Join(env.dir, "values.txt")
	if err := os.WriteFile(path, []byte("192.0.2.40\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := env.run(t, nil, "decisions", "import", "-i", path, "-d", "100000d")
	if err == nil || !strings.Contains(err.Error(), `invalid --duration "100000d": it would end at 2`) {
		t.Fatalf("import with -d 100000d: %v", err)
	}

	jsonPath := filepath.Join(env.dir, "d.json")
	jsonData := `[{"value":"192.0.2.41","duration":"100000d"},{"value":"192.0.2.42","duration":"106751d"},{"value":"192.0.2.43","duration":"36500d"}]`
	if err := os.WriteFile(jsonPath, []byte(jsonData), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := env.run(t, nil, "decisions", "import", "-i", jsonPath)
	if err != nil || !strings.Contains(out, "Imported 1 decisions") || !strings.Contains(out, "2 invalid entries skipped") {
		t.Fatalf("json import: %v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(errOut, `item 1: invalid duration "100000d": it would end at 2`) || !strings.Contains(errOut, `item 2: invalid duration "106751d"`) {
		t.Fatalf("json bad items:\n%s", errOut)
	}
	ds := env.activeDecisions(t)
	if len(ds) != 1 || ds["192.0.2.43"] == nil {
		t.Fatalf("active decisions %v, want only 192.0.2.43", ds)
	}
	if left, err := time.ParseDuration(ds["192.0.2.43"].Duration); err != nil || left < 36499*24*time.Hour {
		t.Fatalf("36500d decision has %s left (%v)", ds["192.0.2.43"].Duration, err)
	}
}

func TestImportFormatGuess(t *testing.T) {
	for _, tc := range []struct{ input, format, want string }{
		{"a.json", "", "json"},
		{"a.CSV", "", "csv"},
		{"a.txt", "", "values"},
		{"list", "", "values"},
		{"a.json", "values", "values"},
		{"-", "csv", "csv"},
	} {
		got, err := importFormat(tc.input, tc.format)
		if err != nil || got != tc.want {
			t.Errorf("importFormat(%q, %q) = %q, %v; want %q", tc.input, tc.format, got, err, tc.want)
		}
	}
	if _, err := importFormat("-", ""); err == nil {
		t.Error("stdin without a format was accepted")
	}
	if _, err := importFormat("a.txt", "xml"); err == nil {
		t.Error("unknown format was accepted")
	}
}
