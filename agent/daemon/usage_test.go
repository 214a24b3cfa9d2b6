package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/runner"
	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/internal/lapitest"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/lapi/usage"
	"github.com/rampart-ips/rampart/models"
)

const (
	testMachine  = "agent-usage-test"
	testPassword = "agent-usage-test-password-0123456789"
	waitLimit    = 15 * time.Second
)

// testLAPI is a real LAPI on loopback over a SQLite file, with the test
// machine registered.
type testLAPI struct {
	*lapitest.LAPI
	t testing.TB
}

// startLAPI serves the database at dbPath on addr ("" = any port).
func startLAPI(t testing.TB, dbPath, addr string) *testLAPI {
	t.Helper()
	l := &testLAPI{LAPI: lapitest.Start(t, dbPath, addr), t: t}
	l.AddMachine(testMachine, testPassword)
	return l
}

// reports returns the machine's stored usage reports and their summary.
func (l *testLAPI) reports() ([]store.UsageReport, *usage.Component) {
	l.t.Helper()
	rs, err := l.Store.UsageReports(context.Background(), "log_processor", testMachine)
	if err != nil {
		l.t.Fatalf("reading usage reports: %v", err)
	}
	comps := usage.Summarize(rs)
	if len(comps) == 0 {
		return rs, nil
	}
	if len(comps) != 1 || comps[0].Name != testMachine {
		l.t.Fatalf("usage reports from other components: %+v", comps)
	}
	return rs, comps[0]
}

// lastItems decodes the metric items of the latest stored report.
func lastItems(t *testing.T, rs []store.UsageReport) []*models.UsageItem {
	t.Helper()
	var item models.LogProcessorUsage
	if err := json.Unmarshal([]byte(rs[len(rs)-1].Payload), &item); err != nil {
		t.Fatal(err)
	}
	if len(item.Metrics) != 1 {
		t.Fatalf("want one window, got %d", len(item.Metrics))
	}
	return item.Metrics[0].Items
}

func testLogger(t testing.TB) *log.Entry {
	l := log.New()
	l.SetOutput(t.Output())
	l.SetLevel(log.DebugLevel)
	return l.WithField("component", "usage-metrics")
}

func newTestClient(t testing.TB, url string) *apiclient.Client {
	t.Helper()
	c, err := apiclient.New(apiclient.Config{URL: url, MachineID: testMachine, Password: testPassword, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fakeStats is a runner's per-source totals that the test moves by hand.
type fakeStats struct {
	mu sync.Mutex
	s  map[string]*runner.SourceStat
}

func (f *fakeStats) add(src, typ string, parsed, unparsed int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.s == nil {
		f.s = map[string]*runner.SourceStat{}
	}
	st := f.s[src]
	if st == nil {
		st = &runner.SourceStat{Module: "file", Source: src, Type: typ}
		f.s[src] = st
	}
	st.Read += parsed + unparsed
	st.Parsed += parsed
	st.Unparsed += unparsed
}

func (f *fakeStats) get() []runner.SourceStat {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []runner.SourceStat
	for _, st := range f.s {
		out = append(out, *st)
	}
	return out
}

// lines sums a component's line counts of one metric for one source.
func lines(c *usage.Component, name, src string) int64 {
	return int64(c.Total(name, models.UsageUnitLine, map[string]string{"source": src}))
}

// TestUsagePusherDeltas drives the pusher by hand against a real LAPI:
// each report carries only what moved since the last accepted one, and a
// report the LAPI did not take is carried by the next.
func TestUsagePusherDeltas(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "crowdsec.db")
	l := startLAPI(t, dbPath, "")
	var stats fakeStats
	hubItems := map[string][]models.UsageHubItem{"collections": {{Name: "rampart/sshd", Version: "0.1", Status: "official"}},
		"parsers": {}, "scenarios": {}, "postoverflows": {}}
	u, _ := newUsageReporter(newTestClient(t, l.URL()), time.Hour, false, stats.get, map[string]int{"file": 2}, hubItems,
		time.Now(), testLogger(t))
	ctx := context.Background()
	const auth, nginx = "/var/log/auth.log", "/var/log/nginx/access.log"

	stats.add(auth, "syslog", 7, 3)
	stats.add(nginx, "nginx", 5, 0)
	if err := u.Push(ctx, time.Second); err != nil {
		t.Fatalf("first push: %v", err)
	}
	rs, c := l.reports()
	if len(rs) != 1 || c == nil {
		t.Fatalf("want 1 report, got %d", len(rs))
	}
	if r, p, n := lines(c, models.UsageRead, auth), lines(c, models.UsageParsed, auth), lines(c, models.UsageUnparsed, auth); r != 10 || p != 7 || n != 3 {
		t.Errorf("auth.log after one report: read %d parsed %d unparsed %d, want 10 7 3", r, p, n)
	}
	if got := c.Total(models.UsageRead, models.UsageUnitLine, map[string]string{"datasource_type": "file", "source": nginx, "acquis_type": "nginx"}); got != 5 {
		t.Errorf("nginx read = %v, want 5 with its labels", got)
	}
	if c.Datasources["file"] != 2 || len(c.HubItems["collections"]) != 1 || c.HubItems["collections"][0].Status != "official" {
		t.Errorf("static part: datasources %v, hub %v", c.Datasources, c.HubItems)
	}
	if c.Version == "" || c.OS == "" {
		t.Errorf("version %q, os %q", c.Version, c.OS)
	}

	// Only what moved: nginx did not, so it is not in the second report.
	stats.add(auth, "syslog", 2, 1)
	if err := u.Push(ctx, time.Second); err != nil {
		t.Fatalf("second push: %v", err)
	}
	rs, c = l.reports()
	if len(rs) != 2 {
		t.Fatalf("want 2 reports, got %d", len(rs))
	}
	got := map[string]float64{}
	for _, it := range lastItems(t, rs) {
		if it.Unit != models.UsageUnitLine || it.Labels["source"] == "" {
			t.Errorf("item %+v", it)
		}
		got[it.Name+" "+it.Labels["source"]] = it.Value
	}
	want := map[string]float64{"read " + auth: 3, "parsed " + auth: 2, "unparsed " + auth: 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("second report items %v, want %v", got, want)
	}
	if r := lines(c, models.UsageRead, auth); r != 13 {
		t.Errorf("auth.log read sums to %d, want 13", r)
	}

	// LAPI down: the push fails and the baseline stays.
	addr := l.Addr
	l.Stop()
	stats.add(auth, "syslog", 4, 0)
	if err := u.Push(ctx, time.Second); err == nil {
		t.Fatal("push to a stopped LAPI succeeded")
	}
	stats.add(nginx, "nginx", 0, 6)
	l = startLAPI(t, dbPath, addr)
	if err := u.Push(ctx, time.Second); err != nil {
		t.Fatalf("push after the LAPI came back: %v", err)
	}
	rs, c = l.reports()
	if len(rs) != 3 {
		t.Fatalf("want 3 reports, got %d", len(rs))
	}
	if r, p, n := lines(c, models.UsageRead, auth), lines(c, models.UsageParsed, auth), lines(c, models.UsageUnparsed, auth); r != 17 || p != 13 || n != 4 {
		t.Errorf("auth.log after the outage: read %d parsed %d unparsed %d, want 17 13 4", r, p, n)
	}
	if r, n := lines(c, models.UsageRead, nginx), lines(c, models.UsageUnparsed, nginx); r != 11 || n != 6 {
		t.Errorf("nginx after the outage: read %d unparsed %d, want 11 6", r, n)
	}
	var last models.LogProcessorUsage
	if err := json.Unmarshal([]byte(rs[2].Payload), &last); err != nil {
		t.Fatal(err)
	}
	if w := last.Metrics[0].Meta; w.WindowSizeSeconds < 0 || w.UtcNowTimestamp < u.Start.Unix() {
		t.Errorf("window %+v", w)
	}
}

// TestUsagePusherRun runs the pusher's loop: the first report waits for a
// LAPI that is not up yet, then reports come every interval and a last one
// at stop; together they count every line exactly once.
func TestUsagePusherRun(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "crowdsec.db")
	// A LAPI that is not up yet: take an address, then stop listening.
	l := startLAPI(t, dbPath, "")
	addr, url := l.Addr, l.URL()
	l.Stop()
	var stats fakeStats
	stats.add("/var/log/auth.log", "syslog", 1, 1)

	u, _ := newUsageReporter(newTestClient(t, url), 200*time.Millisecond, false, stats.get, map[string]int{"file": 1},
		map[string][]models.UsageHubItem{}, time.Now(), testLogger(t))
	u.RetryMin = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		u.Run(ctx)
	}()
	time.Sleep(120 * time.Millisecond) // a failed attempt or two
	stats.add("/var/log/auth.log", "syslog", 3, 0)
	l = startLAPI(t, dbPath, addr)
	waitFor(t, "the first report", func() bool { rs, _ := l.reports(); return len(rs) >= 1 })
	for i := range 5 {
		stats.add("/var/log/auth.log", "syslog", int64(i), 1)
		time.Sleep(30 * time.Millisecond)
	}
	waitFor(t, "a report at the interval", func() bool { rs, _ := l.reports(); return len(rs) >= 2 })
	stats.add("/var/log/nginx/access.log", "nginx", 9, 0)
	cancel()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("run did not return after cancel")
	}
	_, c := l.reports()
	// parsed, unparsed
	want := map[string][2]int64{"/var/log/auth.log": {1 + 3 + 10, 1 + 5}, "/var/log/nginx/access.log": {9, 0}}
	for src, w := range want {
		parsed, unparsed := lines(c, models.UsageParsed, src), lines(c, models.UsageUnparsed, src)
		if read := lines(c, models.UsageRead, src); read != w[0]+w[1] || parsed != w[0] || unparsed != w[1] {
			t.Errorf("%s: read %d parsed %d unparsed %d, want %d %d %d", src, read, parsed, unparsed, w[0]+w[1], w[0], w[1])
		}
	}
	if u.Failed() == 0 {
		t.Error("no report failed while the LAPI was not up")
	}
}

// waitFor polls cond until it holds or waitLimit passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitOpen waits until this process has path open: the file source then
// reads what is appended from now on (it starts at the end of a file).
func waitOpen(t *testing.T, path string) {
	t.Helper()
	waitFor(t, "the agent to open "+path, func() bool {
		fds, _ := os.ReadDir("/proc/self/fd")
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == path {
				return true
			}
		}
		return false
	})
	// Opening and seeking to the end are two calls: let the seek happen.
	time.Sleep(50 * time.Millisecond)
}

// TestAgentUsageMetrics runs the real agent with Rampart's rules on a log
// file, against a real LAPI: the reports it pushes (at start, at the
// interval, at stop) sum to exactly the lines written, per outcome.
func TestAgentUsageMetrics(t *testing.T) {
	dir := t.TempDir()
	rulesDir, err := filepath.Abs("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	l := startLAPI(t, filepath.Join(dir, "crowdsec.db"), "")
	logPath := filepath.Join(dir, "log", "auth.log")
	for _, d := range []string{"acquis.d", "log", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(logPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	acquis := "[[source]]\nsource = \"file\"\nfilenames = [" + strconv.Quote(logPath) + "]\nlabels = { type = \"syslog\" }\nidle_warning = \"0s\"\n"
	if err := os.WriteFile(filepath.Join(dir, "acquis.d", "test.toml"), []byte(acquis), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := agentConfig(t, dir, rulesDir, l.URL())
	cfg.Crowdsec.ParserRoutines = 2
	ag, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ag.Close()
	ag.usage.Interval = 300 * time.Millisecond // below the configurable minimum, to see one in a test
	ag.usage.Log = testLogger(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	waitOpen(t, logPath)
	waitFor(t, "the report at start", func() bool { rs, _ := l.reports(); return len(rs) >= 1 })

	// sshd failures from public addresses parse; from a private one they
	// parse and are whitelisted; a cron line and garbage do not parse.
	const parsedPublic, parsedPrivate, unparsed = 12, 3, 5
	var b strings.Builder
	for i := range parsedPublic {
		fmt.Fprintf(&b, "Feb 12 14:10:%02d host sshd[1]: Invalid user bob%d from 203.0.113.%d port 5\n", i, i, i%3+1)
	}
	for i := range parsedPrivate {
		fmt.Fprintf(&b, "Feb 12 14:11:%02d host sshd[1]: Invalid user eve from 10.0.0.%d port 5\n", i, i+1)
	}
	for i := range unparsed {
		if i%2 == 0 {
			fmt.Fprintf(&b, "Feb 12 14:12:%02d host CRON[7]: (root) CMD (true)\n", i)
		} else {
			fmt.Fprintf(&b, "not a syslog line %d\n", i)
		}
	}
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	all := b.String()
	half := strings.Index(all, "Feb 12 14:11:00")
	if _, err := f.WriteString(all[:half]); err != nil {
		t.Fatal(err)
	}
	total := int64(parsedPublic + parsedPrivate + unparsed)
	waitFor(t, "the first lines", func() bool { return ag.Stats().Lines.Load() == parsedPublic })
	waitFor(t, "a report with them", func() bool {
		_, c := l.reports()
		return c != nil && lines(c, models.UsageRead, logPath) == parsedPublic
	})
	if _, err := f.WriteString(all[half:]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitFor(t, "every line", func() bool { return ag.Stats().Lines.Load() == total })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return")
	}

	rs, c := l.reports()
	if len(rs) < 3 {
		t.Errorf("want reports at start, at the interval and at stop, got %d", len(rs))
	}
	labels := map[string]string{"datasource_type": "file", "source": logPath, "acquis_type": "syslog"}
	for name, want := range map[string]int64{models.UsageRead: total, models.UsageParsed: parsedPublic + parsedPrivate,
		models.UsageUnparsed: unparsed, models.UsageWhitelisted: parsedPrivate} {
		if got := int64(c.Total(name, models.UsageUnitLine, labels)); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
		if got := int64(c.Total(name, models.UsageUnitLine, nil)); got != want {
			t.Errorf("%s over all sources = %d, want %d", name, got, want)
		}
	}
	if fmt.Sprint(c.Datasources) != "map[file:1]" {
		t.Errorf("datasources %v", c.Datasources)
	}
	hubNames := map[string][]string{}
	for kind, items := range c.HubItems {
		for _, it := range items {
			if it.Status != "official" || it.Version == "" {
				t.Errorf("%s %+v: want official with a version", kind, it)
			}
			hubNames[kind] = append(hubNames[kind], it.Name)
		}
	}
	for kind, want := range map[string]string{"collections": "rampart/sshd", "parsers": "rampart/sshd-logs", "scenarios": "rampart/ssh-bf"} {
		if !strings.Contains(strings.Join(hubNames[kind], " "), want) {
			t.Errorf("hub %s %v lack %s", kind, hubNames[kind], want)
		}
	}
	if _, ok := c.HubItems["postoverflows"]; !ok {
		t.Error("hub items lack the postoverflows key")
	}
	if c.Version == "" || c.OS == "" {
		t.Errorf("version %q os %q", c.Version, c.OS)
	}
	m, err := l.Store.GetMachine(context.Background(), testMachine)
	if err != nil || m.OSName == "" {
		t.Errorf("the LAPI did not record the machine's OS: %+v %v", m, err)
	}
}

// TestAgentUsageMetricsReplay checks a one-shot replay: one report, at the
// end, with every line.
func TestAgentUsageMetricsReplay(t *testing.T) {
	dir := t.TempDir()
	rulesDir, _ := filepath.Abs("../../rules")
	l := startLAPI(t, filepath.Join(dir, "crowdsec.db"), "")
	logPath := filepath.Join(dir, "auth.log")
	var b strings.Builder
	for i := range 20 {
		fmt.Fprintf(&b, "Feb 12 14:10:%02d host sshd[1]: Invalid user bob from 198.51.100.%d port 5\n", i, i+1)
	}
	b.WriteString("garbage\n")
	if err := os.WriteFile(logPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := agentConfig(t, dir, rulesDir, l.URL())
	ag, err := New(cfg, Options{DSN: "file://" + logPath, Labels: map[string]string{"type": "syslog"}, DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ag.Close()
	if err := ag.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	rs, c := l.reports()
	if len(rs) != 1 {
		t.Fatalf("a replay should report once, at its end: got %d reports", len(rs))
	}
	if r, p, n := lines(c, models.UsageRead, logPath), lines(c, models.UsageParsed, logPath), lines(c, models.UsageUnparsed, logPath); r != 21 || p != 20 || n != 1 {
		t.Errorf("read %d parsed %d unparsed %d, want 21 20 1", r, p, n)
	}
	if fmt.Sprint(c.Datasources) != "map[file:1]" {
		t.Errorf("datasources %v", c.Datasources)
	}
}
