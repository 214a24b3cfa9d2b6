package uibrowser

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/internal/lapitest"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/models"
)

const (
	// chromiumPath is Debian's chromium package, which CI installs.
	chromiumPath = "/usr/bin/chromium"
	// uiHours is the dashboard chart's number of hourly bars.
	uiHours = 24

	machineID       = "testmachine"
	machinePassword = "test-password"
)

// browserErrors collects what a person would see as red in the DevTools
// console, plus failed loads that Chromium does not always log.
type browserErrors struct {
	mu   sync.Mutex
	list []string
}

func (b *browserErrors) add(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.list = append(b.list, fmt.Sprintf(format, args...))
}

func (b *browserErrors) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.list)
}

// listen runs on chromedp's reader goroutine, so it only records.
func (b *browserErrors) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
			}
			b.add("console.%s: %s", ev.Type, strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		desc := ""
		if d.Exception != nil {
			desc = d.Exception.Description
		}
		b.add("exception at %s:%d: %s %s", d.URL, d.LineNumber+1, d.Text, desc)
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			b.add("log (%s) %s: %s", ev.Entry.Source, ev.Entry.URL, ev.Entry.Text)
		}
	case *network.EventResponseReceived:
		if ev.Response.Status >= 400 {
			b.add("HTTP %d for %s", ev.Response.Status, ev.Response.URL)
		}
	case *network.EventLoadingFailed:
		if !ev.Canceled {
			b.add("loading %s failed: %s %s", ev.Type, ev.ErrorText, ev.BlockedReason)
		}
	}
}

// artifactDir is where CI picks up files for people to look at:
// $RAMPART_ARTIFACTS, else build/artifacts at the repository's root.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RAMPART_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "build", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("creating artifact directory: %v", err)
	}
	return dir
}

// uiPage is what the test reads back from the rendered page.
type uiPage struct {
	Decisions, Scenarios, Sources, Bouncers, Agents, Notifications [][]string
	Origins, Deliveries                                            [][]string
	Filters                                                        []string // the origin filter's choices
	Bars, Filled                                                   int
	ChartHeight                                                    float64
	CellMarkup                                                     int
	Banner, Updated                                                string
}

const readPage = `(() => {
	const rows = (id) => Array.from(document.querySelectorAll("#" + id + " tbody tr"),
		(tr) => Array.from(tr.cells, (td) => td.textContent));
	const rects = Array.from(document.querySelectorAll("#chart svg rect"));
	const banner = document.getElementById("error");
	return {
		Decisions: rows("decisions"), Scenarios: rows("scenarios"), Sources: rows("sources"),
		Bouncers: rows("bouncers"), Agents: rows("agents"), Notifications: rows("notifications"),
		Origins: rows("origins"), Deliveries: rows("deliveries"),
		Filters: Array.from(document.querySelectorAll("#dfilter option"), (o) => o.textContent),
		Bars: rects.length,
		Filled: rects.filter((r) => parseFloat(r.getAttribute("height")) > 0).length,
		ChartHeight: document.getElementById("chart").getBoundingClientRect().height,
		CellMarkup: document.querySelectorAll("main td *").length,
		Banner: banner.hidden ? "" : banner.textContent,
		Updated: document.getElementById("updated").textContent,
	};
})()`

// TestUIBrowser loads the dashboard in headless Chromium against a LAPI
// holding alerts, decisions and usage reports pushed through the API, checks
// what the page shows and that it logs no error, and saves a screenshot.
func TestUIBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("RAMPART_REQUIRE_CHROMIUM") == "1" {
			t.Fatalf("RAMPART_REQUIRE_CHROMIUM=1 but %s is missing: %v", chromiumPath, err)
		}
		t.Skipf("%s is missing (apt-get install chromium): %v", chromiumPath, err)
	}
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Two notifications of every ban: a webhook that takes them, and one
	// whose endpoint refuses them (the page shows why).
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer ok.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
	defer down.Close()
	dir := t.TempDir()
	writeTest(t, filepath.Join(dir, "notifications", "hooks.toml"), `
[[notification]]
type = "http"
name = "webhook"
format = "{{len .}}"
url = "`+ok.URL+`"

[[notification]]
type = "http"
name = "pager"
format = "{{len .}}"
url = "`+down.URL+`"
group_wait = "1s"
max_retry = 1
`)
	writeTest(t, filepath.Join(dir, "profiles.toml"), `
[[profile]]
name = "default_ip_remediation"
filters = ["Alert.Remediation == true && Alert.GetScope() == 'Ip'"]
decisions = [{type = "ban", duration = "4h"}]
notifications = ["webhook", "pager"]
on_success = "break"
`)
	prof, err := profiles.Load(filepath.Join(dir, "profiles.toml"))
	if err != nil {
		t.Fatal(err)
	}
	l := lapitest.StartNotifying(t, filepath.Join(dir, "crowdsec.db"), prof, filepath.Join(dir, "notifications"))
	l.AddMachine(machineID, machinePassword)
	agent, err := apiclient.New(apiclient.Config{URL: l.URL(), MachineID: machineID, Password: machinePassword, UserAgent: "crowdsec/v1.7.8"})
	if err != nil {
		t.Fatal(err)
	}
	push := func(alerts ...*models.Alert) {
		t.Helper()
		if _, err := agent.PushAlerts(ctx, alerts); err != nil {
			t.Fatalf("pushing alerts: %v", err)
		}
	}
	push(manualAlert("192.0.2.10", "Ip", "4h", "cscli"))
	// Two decisions of a blocklist, as a feed stores them (no remediation
	// asked: no profile, no notification).
	feedAlert := manualAlert("203.0.113.1", "Ip", "4h", "lists")
	feedAlert.Remediation, feedAlert.Scenario = false, "lists:drop"
	feedAlert.Decisions = append(feedAlert.Decisions, &models.Decision{Duration: "4h", Origin: "lists", Scope: "Range", Type: "ban", Value: "203.0.113.64/26"})
	for _, d := range feedAlert.Decisions {
		d.Scenario = "lists:drop"
	}
	push(feedAlert)
	push(agentAlert("198.51.100.20", "crowdsecurity/ssh-bf"), agentAlert("198.51.100.20", "crowdsecurity/ssh-bf"),
		agentAlert("198.51.100.21", "crowdsecurity/ssh-bf"), agentAlert("198.51.100.22", "crowdsecurity/http-probing"))
	fw, err := apiclient.New(apiclient.Config{URL: l.URL(), APIKey: l.AddBouncer("fw"), UserAgent: "crowdsec-firewall-bouncer/v0.0.30"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Stream(ctx, true, nil); err != nil {
		t.Fatalf("bouncer stream: %v", err)
	}
	if err := fw.UsageMetrics(ctx, bouncerUsage(usageWindow(dropped(1200, 90000, map[string]string{"origin": "crowdsec"})...),
		usageWindow(dropped(34, 8765, map[string]string{"origin": "cscli"})...))); err != nil {
		t.Fatalf("bouncer usage metrics: %v", err)
	}
	l.AddBouncer("spare")
	// The second source's name is markup: the page must show it as text.
	if err := agent.UsageMetrics(ctx, agentUsage(usageWindow(append(lines("file", "/var/log/auth.log", 1500, 1200, 300),
		lines("file", "/var/log/<b>x</b>.log", 10, 10, 0)...)...))); err != nil {
		t.Fatalf("agent usage metrics: %v", err)
	}
	wantDecisions := []string{"198.51.100.22", "198.51.100.21", "198.51.100.20", "198.51.100.20", "203.0.113.64/26", "203.0.113.1", "192.0.2.10"}
	// The page reads what the broker did: wait for it to be done.
	for {
		st := l.Server.Notifications().Stats()
		if st[0].Sent == 5 && st[1].Failed >= 1 && st[1].Queued == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("notifications never done: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var out syncBuffer
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// Nothing but the page under test may touch the network.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), // containers have a tiny /dev/shm
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Env("HOME="+t.TempDir()), // keep ~/.config and ~/.cache out of it
		chromedp.CombinedOutput(&out),
	)
	// Deferred so the browser is gone before t.TempDir is removed.
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	defer func() {
		if o := out.String(); t.Failed() && o != "" {
			t.Logf("chromium output:\n%s", o)
		}
	}()

	var errs browserErrors
	if err := chromedp.Listen(bctx, errs.listen); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(l.URL()+"ui")); err != nil {
		t.Fatalf("loading /ui: %v", err)
	}
	// Rendering is asynchronous (fetch then fill), so wait for the rows.
	_, err = chromedp.Run(bctx, chromedp.PollFunction[bool](`(want) => {
		const got = Array.from(document.querySelectorAll("#decisions tbody tr td:first-child"), (td) => td.textContent);
		return want.every((ip) => got.includes(ip)) && document.querySelectorAll("#agents tbody tr").length > 0;
	}`, chromedp.WithPollingArgs(wantDecisions), chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		page, _ := chromedp.Run(bctx, chromedp.OuterHTML(chromedp.CSS("main")))
		t.Fatalf("decisions never shown: %v\nerrors: %q\n%s", err, errs.all(), page)
	}
	page, err := chromedp.Run(bctx, chromedp.Evaluate[uiPage](readPage))
	if err != nil {
		t.Fatalf("reading the page: %v", err)
	}

	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	file := filepath.Join(artifactDir(t), "dashboard.png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		t.Fatalf("saving screenshot: %v", err)
	}
	t.Logf("screenshot: %s", file)

	var gotDecisions []string
	for _, r := range page.Decisions {
		gotDecisions = append(gotDecisions, r[0])
	}
	if !slices.Equal(gotDecisions, wantDecisions) {
		t.Errorf("decision rows %q, want %q", gotDecisions, wantDecisions)
	}
	for _, r := range page.Decisions {
		want := []string{"3h59m", "4h0m"} // default profile: 4 h bans
		if len(r) != 6 || (r[1] != "Ip" && r[0] != "203.0.113.64/26") || r[2] != "ban" || !slices.Contains(want, r[5]) {
			t.Errorf("decision row %q: want Ip ban expiring in %q", r, want)
		}
	}
	if r := page.Decisions[0]; r[3] != "crowdsecurity/http-probing" || r[4] != "crowdsec (local detection)" {
		t.Errorf("agent decision row %q", r)
	}
	if r := page.Decisions[5]; r[3] != "lists:drop" || r[4] != "lists" {
		t.Errorf("list decision row %q", r)
	}
	if r := page.Decisions[6]; r[3] != "manual 'ban' from 'test'" || r[4] != "cscli (manual)" {
		t.Errorf("manual decision row %q", r)
	}
	wantOrigins := [][]string{
		{"crowdsec (local detection)", "4", "ban 4", "Ip 4"},
		{"lists", "2", "ban 2", "Ip 1, Range 1"},
		{"lists:drop", "2", "ban 2", "Ip 1, Range 1"},
		{"cscli (manual)", "1", "ban 1", "Ip 1"},
	}
	if !slices.EqualFunc(page.Origins, wantOrigins, slices.Equal) {
		t.Errorf("origin rows %q, want %q", page.Origins, wantOrigins)
	}
	wantFilters := []string{"all origins", "crowdsec (local detection): 4", "lists: 2", "\u2003lists:drop: 2", "cscli (manual): 1"}
	if !slices.Equal(page.Filters, wantFilters) {
		t.Errorf("filter choices %q, want %q", page.Filters, wantFilters)
	}
	if len(page.Scenarios) != 3 || !slices.Equal(page.Scenarios[0], []string{"crowdsecurity/ssh-bf", "3"}) {
		t.Errorf("top scenarios %q", page.Scenarios)
	}
	if len(page.Sources) == 0 || !slices.Equal(page.Sources[0], []string{"198.51.100.20", "2"}) {
		t.Errorf("top sources %q", page.Sources)
	}
	if len(page.Bouncers) != 2 {
		t.Fatalf("bouncer rows %q", page.Bouncers)
	}
	if b := page.Bouncers[0]; b[0] != "fw" || b[4] == "never" || b[5] != "1,234" || b[6] != "96.5 KiB" {
		t.Errorf("bouncer row %q: want fw, a last pull, 1,234 packets, 96.5 KiB", b)
	}
	if b := page.Bouncers[1]; b[0] != "spare" || b[4] != "never" || b[5] != "\u2013" || b[6] != "\u2013" {
		t.Errorf("unreported bouncer row %q: want dashes", b)
	}
	if len(page.Agents) != 2 {
		t.Fatalf("agent rows %q", page.Agents)
	}
	// Sources sort by name, and '<' sorts before letters.
	if a := page.Agents[1]; a[0] != machineID+" (v1.7.8)" || a[1] != "file:/var/log/auth.log" ||
		a[2] != "1,500" || a[3] != "1,200" || a[4] != "300" || a[5] == "" || a[5] == "never" {
		t.Errorf("agent row %q: want file:/var/log/auth.log read 1,500, parsed 1,200, unparsed 300", a)
	}
	if a := page.Agents[0]; a[1] != "file:/var/log/<b>x</b>.log" {
		t.Errorf("agent row %q: want the source name shown as text", a)
	}
	if len(page.Notifications) != 2 {
		t.Fatalf("notification rows %q", page.Notifications)
	}
	if n := page.Notifications[0]; !slices.Equal(n[:7], []string{"webhook", "http", "5", "0", "0", "0", "0"}) || n[7] == "never" || n[8] != "none" {
		t.Errorf("notification row %q: want webhook, 5 sent, a last delivery, no error", n)
	}
	if n := page.Notifications[1]; n[0] != "pager" || n[2] != "0" || n[3] == "0" || n[7] != "never" || !strings.Contains(n[8], "HTTP status 503") {
		t.Errorf("notification row %q: want pager failing with its status", n)
	}
	// Every message's outcome: the webhook's five, and the pager's
	// failures with their attempts (max_retry = 1: two each).
	sent, failed := 0, 0
	for _, d := range page.Deliveries {
		switch {
		case len(d) == 5 && d[1] == "webhook" && d[2] == "1" && d[3] == "1" && d[4] == "sent":
			sent++
		case len(d) == 5 && d[1] == "pager" && d[3] == "2" && strings.HasPrefix(d[4], "failed: ") && strings.Contains(d[4], "HTTP status 503"):
			failed++
		default:
			t.Errorf("delivery row %q", d)
		}
	}
	if sent != 5 || failed == 0 || sent+failed != len(page.Deliveries) {
		t.Errorf("delivery rows %q: want 5 sent by webhook, and the pager's failures", page.Deliveries)
	}
	if page.CellMarkup != 0 {
		t.Errorf("%d elements inside table cells: values must be text", page.CellMarkup)
	}
	if page.Bars != uiHours || page.Filled == 0 || page.ChartHeight < 100 {
		t.Errorf("chart: %d bars, %d non-empty, %.0f px high", page.Bars, page.Filled, page.ChartHeight)
	}
	if page.Banner != "" || !strings.HasPrefix(page.Updated, "updated ") {
		t.Errorf("banner %q, updated %q", page.Banner, page.Updated)
	}

	// Choosing an origin, then a list, lists their decisions only.
	for _, f := range []struct {
		choice string
		want   []string
	}{
		{`["cscli",""]`, []string{"192.0.2.10"}},
		{`["lists","lists:drop"]`, []string{"203.0.113.64/26", "203.0.113.1"}},
		{`["",""]`, wantDecisions},
	} {
		choose := `(() => {
			const s = document.getElementById("dfilter");
			s.value = ` + strconv.Quote(f.choice) + `;
			s.dispatchEvent(new Event("change"));
		})()`
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[chromedp.Void](choose)); err != nil {
			t.Fatalf("choosing %s: %v", f.choice, err)
		}
		_, err := chromedp.Run(bctx, chromedp.PollFunction[bool](`(want) => {
			const got = Array.from(document.querySelectorAll("#decisions tbody tr td:first-child"), (td) => td.textContent);
			return JSON.stringify(got) === JSON.stringify(want);
		}`, chromedp.WithPollingArgs(f.want), chromedp.WithPollingTimeout(20*time.Second)))
		if err != nil {
			page, _ := chromedp.Run(bctx, chromedp.OuterHTML(chromedp.CSS("main")))
			t.Fatalf("filter %s never showed %q: %v\n%s", f.choice, f.want, err, page)
		}
	}

	// A console error of our own proves the listener works, and it comes
	// after everything the page did so far.
	if err := chromedp.Do(bctx, chromedp.Evaluate[chromedp.Void](`console.error("rampart-probe")`)); err != nil {
		t.Fatalf("probe: %v", err)
	}
	for !slices.ContainsFunc(errs.all(), func(e string) bool { return strings.Contains(e, "rampart-probe") }) {
		if ctx.Err() != nil {
			t.Fatalf("the console probe never arrived: %v", ctx.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, e := range errs.all() {
		if !strings.Contains(e, "rampart-probe") {
			t.Errorf("browser error: %s", e)
		}
	}
	if err := ctx.Err(); errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("test ran out of time: %v", err)
	}
	t.Logf("browser test took %v", time.Since(begin).Round(time.Millisecond))
}

// syncBuffer lets the browser's output goroutine and the test share a buffer.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// manualAlert is the alert `cscli decisions add` sends.
func manualAlert(value, scope, duration, origin string) *models.Alert {
	now := time.Now().UTC().Format(time.RFC3339)
	reason := "manual 'ban' from 'test'"
	return &models.Alert{
		Scenario: reason, Message: reason, EventsCount: 1, StartAt: now, StopAt: now, Capacity: 0, Leakspeed: "0",
		Remediation: true, Kind: "cscli", Events: []*models.Event{},
		Source:    &models.Source{Scope: scope, Value: value},
		Decisions: []*models.Decision{{Duration: duration, Origin: origin, Scenario: reason, Scope: scope, Type: "ban", Value: value}},
	}
}

// agentAlert is an overflow as the agent pushes it: no decisions.
func agentAlert(ip, scenario string) *models.Alert {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	return &models.Alert{
		Scenario: scenario, ScenarioHash: "abc", ScenarioVersion: "0.1", Message: "Ip " + ip + " performed " + scenario,
		EventsCount: 6, StartAt: now, StopAt: now, Capacity: 5, Leakspeed: "10s", Remediation: true, Kind: "crowdsec",
		Source: &models.Source{Scope: "Ip", Value: ip, IP: ip},
		Events: []*models.Event{{Timestamp: now, Meta: []models.Meta{{Key: "source_ip", Value: ip}}}},
		Meta:   []models.Meta{{Key: "service", Value: "ssh"}},
	}
}

// usageWindow is one window of usage items, ending now.
func usageWindow(items ...*models.UsageItem) *models.UsageWindow {
	return &models.UsageWindow{Meta: models.UsageWindowMeta{WindowSizeSeconds: 1800, UtcNowTimestamp: time.Now().Unix()}, Items: items}
}

func dropped(packets, bytes float64, labels map[string]string) []*models.UsageItem {
	return []*models.UsageItem{
		{Name: models.UsageDropped, Unit: models.UsageUnitPacket, Value: packets, Labels: labels},
		{Name: models.UsageDropped, Unit: models.UsageUnitByte, Value: bytes, Labels: labels},
	}
}

// lines is what an agent reports for one source.
func lines(typ, source string, read, parsed, unparsed float64) []*models.UsageItem {
	l := map[string]string{"datasource_type": typ, "source": source}
	return []*models.UsageItem{
		{Name: models.UsageRead, Unit: models.UsageUnitLine, Value: read, Labels: l},
		{Name: models.UsageParsed, Unit: models.UsageUnitLine, Value: parsed, Labels: l},
		{Name: models.UsageUnparsed, Unit: models.UsageUnitLine, Value: unparsed, Labels: l},
	}
}

func bouncerUsage(windows ...*models.UsageWindow) *models.UsageMetrics {
	return &models.UsageMetrics{RemediationComponents: []*models.RemediationComponentUsage{{
		Type: "crowdsec-firewall-bouncer",
		BaseUsage: models.BaseUsage{Version: "v0.0.30", UtcStartupTimestamp: time.Now().Unix(), FeatureFlags: []string{},
			OS: &models.UsageOS{Name: "debian", Version: "12"}, Metrics: windows},
	}}}
}

func agentUsage(windows ...*models.UsageWindow) *models.UsageMetrics {
	return &models.UsageMetrics{LogProcessors: []*models.LogProcessorUsage{{
		BaseUsage: models.BaseUsage{Version: "v1.7.8", UtcStartupTimestamp: time.Now().Unix(), FeatureFlags: []string{},
			OS: &models.UsageOS{Name: "debian", Version: "12"}, Metrics: windows},
		HubItems: map[string][]models.UsageHubItem{}, Datasources: map[string]int{"file": 1},
	}}}
}

func writeTest(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
