package cscli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// pushAgentAlert sends an alert the way the agent does (no decisions, the
// profiles decide), with console context and one event.
func pushAgentAlert(t *testing.T, env *lapiEnv, ip string, remediation bool) int64 {
	t.Helper()
	now := time.Now().UTC()
	a := &models.Alert{
		Scenario: "crowdsecurity/ssh-bf", ScenarioHash: "4441", ScenarioVersion: "0.1",
		Message:     fmt.Sprintf("Ip %s performed 'crowdsecurity/ssh-bf' (6 events over 30ms)", ip),
		EventsCount: 6, StartAt: now.Format(time.RFC3339), StopAt: now.Format(time.RFC3339),
		Capacity: 5, Leakspeed: "10s", Remediation: remediation, Kind: "crowdsec",
		Meta:   []models.Meta{{Key: "target_user", Value: `["root","admin"]`}, {Key: "service", Value: `["ssh"]`}},
		Source: &models.Source{Scope: "Ip", Value: ip, IP: ip, AsNumber: "64500", AsName: "EXAMPLE-AS", Cn: "FR"},
		Events: []*models.Event{{Timestamp: now.Format(time.RFC3339), Meta: []models.Meta{
			{Key: "source_ip", Value: ip}, {Key: "log_type", Value: "ssh_failed-auth"}, {Key: "ASN", Value: "64500"}}}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids, err := env.client(t).PushAlerts(ctx, []*models.Alert{a})
	if err != nil || len(ids) != 1 {
		t.Fatalf("pushing alert: %v %v", ids, err)
	}
	var id int64
	fmt.Sscan(ids[0], &id)
	return id
}

func TestAlertsListInspect(t *testing.T) {
	env := startLAPI(t)

	if out := env.mustRun(t, "alerts", "list"); !strings.Contains(out, "No active alerts") {
		t.Fatalf("empty list: %q", out)
	}
	if out := strings.TrimSpace(env.mustRun(t, "alerts", "list", "-o", "json")); out != "[]" {
		t.Fatalf("empty json list: %q", out)
	}

	id := pushAgentAlert(t, env, "192.0.2.50", true)
	env.mustRun(t, "decisions", "add", "-i", "192.0.2.51")

	alerts := env.alertsJSON(t, "alerts", "list")
	if len(alerts) != 2 {
		t.Fatalf("%d alerts, want 2", len(alerts))
	}
	if got := env.alertsJSON(t, "alerts", "list", "--kind", "crowdsec"); len(got) != 1 || got[0].ID != id {
		t.Fatalf("--kind crowdsec: %+v", got)
	}
	if got := env.alertsJSON(t, "alerts", "list", "-i", "192.0.2.51"); len(got) != 1 || got[0].Kind != "cscli" {
		t.Fatalf("-i 192.0.2.51: %+v", got)
	}
	if got := env.alertsJSON(t, "alerts", "list", "-s", "crowdsecurity/ssh-bf", "--type", "ban"); len(got) != 1 || got[0].ID != id {
		t.Fatalf("-s: %+v", got)
	}
	if got := env.alertsJSON(t, "alerts", "list", "-l", "1"); len(got) != 1 {
		t.Fatalf("-l 1: %d alerts", len(got))
	}

	out := env.mustRun(t, "alerts", "list", "-m")
	for _, want := range []string{"ID", "value", "reason", "country", "as", "decisions", "created_at", "kind", "machine",
		"Ip:192.0.2.50", "crowdsecurity/ssh-bf", "FR", "64500 EXAMPLE-AS", "ban:1", "crowdsec", "cscli", testLogin} {
		if !strings.Contains(out, want) {
			t.Errorf("human list lacks %q:\n%s", want, out)
		}
	}
	out = env.mustRun(t, "alerts", "list", "-o", "raw")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "id,scope,value,reason,country,as,decisions,created_at,kind" || len(lines) != 3 {
		t.Fatalf("raw list:\n%s", out)
	}
	if !strings.Contains(out, fmt.Sprintf("%d,Ip,192.0.2.50,crowdsecurity/ssh-bf,FR,64500 EXAMPLE-AS,ban:1,", id)) {
		t.Fatalf("raw row:\n%s", out)
	}

	// inspect, human
	out = env.mustRun(t, "alerts", "inspect", fmt.Sprint(id))
	for _, want := range []string{
		fmt.Sprintf(" - ID           : %d", id), " - Machine      : " + testLogin, " - Simulation   : false",
		" - Remediation  : true", " - Kind         : crowdsec", " - Reason       : crowdsecurity/ssh-bf",
		" - Events Count : 6", " - Scope:Value  : Ip:192.0.2.50", " - Country      : FR", " - AS           : 64500 EXAMPLE-AS",
		" - Begin", " - End", " - UUID", " - Active Decisions  :", "scope:value", "Ip:192.0.2.50", " - Context  :",
		"| target_user | root", "| target_user | admin", "| service     | ssh",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "- Date:") {
		t.Errorf("events shown without -d:\n%s", out)
	}
	out = env.mustRun(t, "alerts", "inspect", "-d", fmt.Sprint(id))
	if !strings.Contains(out, " - Events  :") || !strings.Contains(out, "- Date: ") {
		t.Fatalf("inspect -d:\n%s", out)
	}
	i, j, k := strings.Index(out, "| ASN"), strings.Index(out, "| log_type"), strings.Index(out, "| source_ip")
	if i < 0 || j < i || k < j {
		t.Fatalf("event meta not sorted by key:\n%s", out)
	}

	// inspect, json and raw (YAML)
	var one models.Alert
	if err := json.Unmarshal([]byte(env.mustRun(t, "alerts", "inspect", fmt.Sprint(id), "-o", "json")), &one); err != nil {
		t.Fatal(err)
	}
	if one.ID != id || one.Source.Value != "192.0.2.50" || len(one.Events) != 1 || len(one.Decisions) != 1 {
		t.Fatalf("inspect json: %+v", one)
	}
	out = env.mustRun(t, "alerts", "inspect", fmt.Sprint(id), "-o", "raw")
	for _, want := range []string{fmt.Sprintf("\nid: %d\n", id), "\nscenario: crowdsecurity/ssh-bf\n", "\nsource:\n  as_name: EXAMPLE-AS\n",
		"\ndecisions:\n  - duration: ", "\n    origin: crowdsec\n", "\nevents:\n  - meta:\n      - key: source_ip\n        value: \"192.0.2.50\"\n",
		"\nsimulated: false\n", "\nlabels: null\n"} {
		if !strings.Contains("\n"+out, want) {
			t.Errorf("yaml lacks %q:\n%s", want, out)
		}
	}

	_, _, err := env.run(t, nil, "alerts", "inspect", "999999")
	if err == nil || !strings.Contains(err.Error(), "can't find alert with id 999999") {
		t.Fatalf("inspect unknown id: %v", err)
	}
	_, _, err = env.run(t, nil, "alerts", "inspect", "abc")
	if err == nil || !strings.Contains(err.Error(), "bad alert id") {
		t.Fatalf("inspect bad id: %v", err)
	}
}

func TestAlertsDeleteFlush(t *testing.T) {
	env := startLAPI(t)

	_, _, err := env.run(t, nil, "alerts", "delete")
	if err == nil || !strings.Contains(err.Error(), "at least one filter or --all") {
		t.Fatalf("delete without filter: %v", err)
	}

	a1 := pushAgentAlert(t, env, "192.0.2.60", true)
	pushAgentAlert(t, env, "192.0.2.61", true)
	env.mustRun(t, "decisions", "add", "-i", "192.0.2.62")

	out := env.mustRun(t, "alerts", "delete", "--id", fmt.Sprint(a1))
	if !strings.Contains(out, "1 alert(s) deleted") {
		t.Fatalf("delete --id: %q", out)
	}
	// deleting an alert ends its decisions
	if _, ok := env.activeDecisions(t)["192.0.2.60"]; ok {
		t.Fatal("decision of a deleted alert still active")
	}
	out = env.mustRun(t, "alerts", "delete", "-i", "192.0.2.61")
	if !strings.Contains(out, "1 alert(s) deleted") {
		t.Fatalf("delete -i: %q", out)
	}
	out = env.mustRun(t, "alerts", "delete", "--scope", "ip", "-v", "192.0.2.62")
	if !strings.Contains(out, "1 alert(s) deleted") {
		t.Fatalf("delete --scope -v: %q", out)
	}
	if got := env.alertsJSON(t, "alerts", "list"); len(got) != 0 {
		t.Fatalf("%d alerts left", len(got))
	}

	// flush: alerts without decisions go by count; those with active decisions stay
	for i := range 4 {
		pushAgentAlert(t, env, fmt.Sprintf("192.0.2.%d", 70+i), false)
		time.Sleep(2 * time.Millisecond)
	}
	env.mustRun(t, "decisions", "add", "-i", "192.0.2.80")
	out = env.mustRun(t, "alerts", "flush", "--max-items", "2")
	if !strings.Contains(out, "3 alert(s)") {
		t.Fatalf("flush output: %q", out)
	}
	left := env.alertsJSON(t, "alerts", "list")
	if len(left) != 2 {
		t.Fatalf("%d alerts after flush, want 2", len(left))
	}
	kinds := map[string]bool{}
	for _, a := range left {
		kinds[a.Kind] = true
	}
	if !kinds["cscli"] || !kinds["crowdsec"] {
		t.Fatalf("flush kept the wrong alerts: %+v", left)
	}
	if _, ok := env.activeDecisions(t)["192.0.2.80"]; !ok {
		t.Fatal("flush removed an active decision")
	}
	_, _, err = env.run(t, nil, "alerts", "flush", "--max-age", "soon")
	if err == nil || !strings.Contains(err.Error(), "--max-age") {
		t.Fatalf("flush with a bad --max-age: %v", err)
	}

	out = env.mustRun(t, "alerts", "delete", "--all")
	if !strings.Contains(out, "2 alert(s) deleted") {
		t.Fatalf("delete --all: %q", out)
	}
}

func TestYAMLWriter(t *testing.T) {
	var b strings.Builder
	v := map[string]any{"a": []any{map[string]any{"k": "v", "num": 1}, "x", []any{}}, "b": map[string]any{}, "c": "yes", "d": "it: is", "e": nil}
	if err := writeYAML(&b, v); err != nil {
		t.Fatal(err)
	}
	want := "a:\n  - k: v\n    num: 1\n  - x\n  - []\nb: {}\nc: \"yes\"\nd: \"it: is\"\ne: null\n"
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestRenderTable(t *testing.T) {
	var b strings.Builder
	renderTable(&b, []string{"ID", "value"}, [][]string{{"1", "Ip:192.0.2.1"}, {"22", "\x1b[31m-1s\x1b[0m"}})
	want := "+----+--------------+\n" +
		"| ID | value        |\n" +
		"+----+--------------+\n" +
		"| 1  | Ip:192.0.2.1 |\n" +
		"| 22 | \x1b[31m-1s\x1b[0m          |\n" +
		"+----+--------------+\n"
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
