package cscli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// pushAgentUsage stores one agent report as the LAPI does after POST
// /v1/usage-metrics.
func pushAgentUsage(t *testing.T, st *store.Store, machine string, now int64, hub map[string][]models.UsageHubItem, items ...*models.UsageItem) {
	t.Helper()
	item := models.LogProcessorUsage{
		BaseUsage: models.BaseUsage{Version: "v9.8.7", OS: &models.UsageOS{Name: "Debian GNU/Linux", Version: "12"}, FeatureFlags: []string{},
			UtcStartupTimestamp: 1, Metrics: []*models.UsageWindow{{Meta: models.UsageWindowMeta{WindowSizeSeconds: 1800, UtcNowTimestamp: now}, Items: items}}},
		HubItems: hub, Datasources: map[string]int{"file": 2, "journalctl": 1},
	}
	raw, err := json.Marshal(item)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.SetComponentOS(ctx, false, machine, item.OS.Name, item.OS.Version, ""); err != nil {
		t.Fatal(err)
	}
	if err := st.StoreUsageMetrics(ctx, "log_processor", machine, string(raw)); err != nil {
		t.Fatal(err)
	}
}

func lineItem(name, typ, src, acquis string, v float64, extra ...string) *models.UsageItem {
	labels := map[string]string{"datasource_type": typ, "source": src}
	if acquis != "" {
		labels["acquis_type"] = acquis
	}
	for i := 0; i+1 < len(extra); i += 2 {
		labels[extra[i]] = extra[i+1]
	}
	return &models.UsageItem{Name: name, Unit: models.UsageUnitLine, Value: v, Labels: labels}
}

// tableRow finds the table line whose first cell is first and returns its
// cells.
func tableRow(out, first string) []string {
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "|") {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(l, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		if len(cells) > 0 && cells[0] == first {
			return cells
		}
	}
	return nil
}

func TestMachinesInspectUsage(t *testing.T) {
	e := newOpsEnv(t, "127.0.0.1:8080")
	st := e.store()
	e.mustRun("machines", "add", "agent1", "-p", "pw1", "-f", "-")
	e.mustRun("machines", "add", "quiet", "-p", "pw2", "-f", "-")
	const t0 = 1_780_000_000
	const auth, nginx = "/var/log/auth.log", "/var/log/nginx/access.log"
	hub := map[string][]models.UsageHubItem{
		"collections":   {{Name: "rampart/sshd", Version: "0.1", Status: "official"}},
		"parsers":       {{Name: "rampart/sshd-logs", Version: "0.2", Status: "official"}, {Name: "me/local", Status: "custom"}},
		"scenarios":     {{Name: "rampart/ssh-bf", Version: "0.3", Status: "official"}},
		"postoverflows": {},
	}
	// Two windows of deltas, as Rampart's agent sends them.
	pushAgentUsage(t, st, "agent1", t0, hub,
		lineItem("read", "file", auth, "syslog", 10), lineItem("parsed", "file", auth, "syslog", 7),
		lineItem("unparsed", "file", auth, "syslog", 3), lineItem("whitelisted", "file", auth, "syslog", 1),
		lineItem("read", "file", nginx, "nginx", 4), lineItem("parsed", "file", nginx, "nginx", 4))
	pushAgentUsage(t, st, "agent1", t0+1800, hub,
		lineItem("read", "file", auth, "syslog", 5), lineItem("parsed", "file", auth, "syslog", 1),
		lineItem("unparsed", "file", auth, "syslog", 4))

	out, _ := e.mustRun("machines", "inspect", "agent1")
	for first, want := range map[string]string{
		"file:" + auth + " (syslog)": "15 8 7",
		"file:" + nginx + " (nginx)": "4 4 0",
		"Source":                     "Read Parsed Unparsed",
		"OS":                         "Debian GNU/Linux/12",
	} {
		if got := tableRow(out, first); len(got) < 2 || strings.Join(got[1:], " ") != want {
			t.Errorf("row %q = %q, want %q in\n%s", first, got, want, out)
		}
	}
	for _, want := range []string{"Machine: agent1", "Acquisition Metrics since 2026-05-28T19:56:40Z:", "file: 2", "journalctl: 1", "rampart/sshd"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Parser Metrics") {
		t.Errorf("no per-parser counts were reported, yet:\n%s", out)
	}

	js, _ := e.mustRun("machines", "inspect", "agent1", "-o", "json")
	var info struct {
		MachineID    string         `json:"machineId"`
		OS           string         `json:"os"`
		Datasources  map[string]int `json:"datasources"`
		UsageMetrics struct {
			Acquisition []sourceUsage `json:"acquisition"`
		} `json:"usage_metrics"`
	}
	if err := json.Unmarshal([]byte(js), &info); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	acq := info.UsageMetrics.Acquisition
	if info.MachineID != "agent1" || info.Datasources["file"] != 2 || len(acq) != 2 ||
		acq[0] != (sourceUsage{DatasourceType: "file", Source: auth, AcquisType: "syslog", Read: 15, Parsed: 8, Unparsed: 7}) {
		t.Errorf("json inspect: %+v\n%s", info, js)
	}
	raw, _ := e.mustRun("machines", "inspect", "agent1", "-o", "raw")
	if lines := strings.Split(strings.TrimSpace(raw), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], "agent1,") {
		t.Errorf("raw inspect:\n%s", raw)
	}

	// --hub: the items of the latest report.
	out, _ = e.mustRun("machines", "inspect", "agent1", "--hub")
	for first, want := range map[string]string{
		"Type":        "Name Version Status",
		"collections": "rampart/sshd 0.1 official",
		"scenarios":   "rampart/ssh-bf 0.3 official",
	} {
		if got := tableRow(out, first); len(got) < 2 || strings.Join(got[1:], " ") != want {
			t.Errorf("hub row %q = %q, want %q in\n%s", first, got, want, out)
		}
	}
	if !strings.Contains(out, "| parsers     | me/local") {
		t.Errorf("custom parser missing:\n%s", out)
	}
	js, _ = e.mustRun("machines", "inspect", "agent1", "-H", "-o", "json")
	var hubJSON map[string][]models.UsageHubItem
	if err := json.Unmarshal([]byte(js), &hubJSON); err != nil || len(hubJSON["parsers"]) != 2 || hubJSON["postoverflows"] == nil {
		t.Errorf("hub json: %v\n%s", err, js)
	}
	raw, _ = e.mustRun("machines", "inspect", "agent1", "-H", "-o", "raw")
	if lines := strings.Split(strings.TrimSpace(raw), "\n"); lines[0] != "type,name,status,version" ||
		lines[1] != "collections,rampart/sshd,official,0.1" || len(lines) != 5 {
		t.Errorf("hub raw:\n%s", raw)
	}

	// A machine that never reported: the old output, and no hub items.
	out, _ = e.mustRun("machines", "inspect", "quiet")
	if strings.Contains(out, "Acquisition Metrics") || !strings.Contains(out, "Machine: quiet") {
		t.Errorf("quiet machine:\n%s", out)
	}
	if out, _ = e.mustRun("machines", "inspect", "quiet", "-H"); !strings.Contains(out, "No hub items found for this machine") {
		t.Errorf("quiet machine hub:\n%s", out)
	}
}

// A recent upstream agent sends parsed/unparsed per parser node and
// global_parsed/global_unparsed per source: the source table uses the
// latter, the parser table the former.
func TestMachinesInspectUpstreamAgent(t *testing.T) {
	e := newOpsEnv(t, "127.0.0.1:8080")
	st := e.store()
	e.mustRun("machines", "add", "up", "-p", "pw", "-f", "-")
	const auth = "/var/log/auth.log"
	pushAgentUsage(t, st, "up", 1_780_000_000, nil,
		lineItem("read", "file", auth, "syslog", 20),
		lineItem("global_parsed", "file", auth, "syslog", 12), lineItem("global_unparsed", "file", auth, "syslog", 8),
		lineItem("parsed", "file", auth, "syslog", 20, "parser_name", "crowdsecurity/syslog-logs", "parser_stage", "s00-raw"),
		lineItem("parsed", "file", auth, "syslog", 12, "parser_name", "crowdsecurity/sshd-logs", "parser_stage", "s01-parse"),
		lineItem("unparsed", "file", auth, "syslog", 8, "parser_name", "crowdsecurity/sshd-logs", "parser_stage", "s01-parse"),
		lineItem("parsed", "", "", "", 2, "parser_name", "crowdsecurity/cdn-whitelist", "parser_stage", "s01-whitelist"))
	out, _ := e.mustRun("machines", "inspect", "up")
	if got := tableRow(out, "file:"+auth+" (syslog)"); strings.Join(got, " ") != "file:"+auth+" (syslog) 20 12 8" {
		t.Errorf("source row %q in\n%s", got, out)
	}
	var parserRows []string
	for _, l := range strings.Split(out[strings.Index(out, "Parser Metrics"):], "\n") {
		if strings.HasPrefix(l, "| ") {
			parserRows = append(parserRows, strings.Join(strings.Fields(strings.ReplaceAll(l, "|", " ")), " "))
		}
	}
	want := []string{
		"Source Parser Parsed Unparsed",
		"file:" + auth + " (syslog) s00-raw/crowdsecurity/syslog-logs 20 0",
		"file:" + auth + " (syslog) s01-parse/crowdsecurity/sshd-logs 12 8",
		"Postoverflows s01-whitelist/crowdsecurity/cdn-whitelist 2 0",
	}
	if strings.Join(parserRows, "\n") != strings.Join(want, "\n") {
		t.Errorf("parser table:\n%s\nwant:\n%s", strings.Join(parserRows, "\n"), strings.Join(want, "\n"))
	}
}
