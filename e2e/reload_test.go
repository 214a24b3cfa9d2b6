package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/models"
)

// reloadHub is a small hub folder: a parser for lines "<action> <ip>"
// (type e2e), a leaky scenario that overflows at its 5th event, one more
// collection with a trigger scenario, and one whose scenario is broken.
func reloadHub(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"parsers/s01-parse/e2e/lines.yaml": `name: e2e/lines
description: "test lines: <action> <ip>"
filter: "evt.Line.Labels.type == 'e2e'"
onsuccess: next_stage
grok:
  pattern: '^%{WORD:action} %{IP:source_ip}$'
  apply_on: Line.Raw
statics:
  - meta: log_type
    expression: "'e2e_' + evt.Parsed.action"
  - meta: source_ip
    expression: evt.Parsed.source_ip
`,
		"scenarios/e2e/slow.yaml": `type: leaky
name: e2e/slow
description: "5 events from one address"
filter: "evt.Meta.log_type == 'e2e_slow'"
groupby: evt.Meta.source_ip
capacity: 4
leakspeed: 1h
labels:
  remediation: true
`,
		"scenarios/e2e/new.yaml": `type: trigger
name: e2e/new
description: "one event"
filter: "evt.Meta.log_type == 'e2e_new'"
groupby: evt.Meta.source_ip
labels:
  remediation: true
`,
		"scenarios/e2e/broken.yaml": `type: trigger
name: e2e/broken
description: "does not compile"
filter: "evt.Meta.log_type == ("
`,
		"collections/e2e/base.yaml":   "name: e2e/base\nparsers:\n  - e2e/lines\nscenarios:\n  - e2e/slow\n",
		"collections/e2e/extra.yaml":  "name: e2e/extra\nscenarios:\n  - e2e/new\n",
		"collections/e2e/broken.yaml": "name: e2e/broken\nscenarios:\n  - e2e/broken\n",
	}
	for name, body := range files {
		must(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	item := func(path string, extra map[string]any) map[string]any {
		m := map[string]any{"path": path, "version": "0.1"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	idx := map[string]map[string]any{
		"parsers": {"e2e/lines": item("parsers/s01-parse/e2e/lines.yaml", map[string]any{"stage": "s01-parse"})},
		"scenarios": {
			"e2e/slow":   item("scenarios/e2e/slow.yaml", nil),
			"e2e/new":    item("scenarios/e2e/new.yaml", nil),
			"e2e/broken": item("scenarios/e2e/broken.yaml", nil),
		},
		"postoverflows": {},
		"collections": {
			"e2e/base":   item("collections/e2e/base.yaml", map[string]any{"parsers": []string{"e2e/lines"}, "scenarios": []string{"e2e/slow"}}),
			"e2e/extra":  item("collections/e2e/extra.yaml", map[string]any{"scenarios": []string{"e2e/new"}}),
			"e2e/broken": item("collections/e2e/broken.yaml", map[string]any{"scenarios": []string{"e2e/broken"}}),
		},
	}
	b, err := json.Marshal(idx)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644))
	return dir
}

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// reloadDaemon is a real crowdsec (agent and LAPI) on loopback, reading
// one file, with the hub above.
type reloadDaemon struct {
	t        *testing.T
	dir, cfg string
	hub      string
	lapi     string // http://127.0.0.1:port
	metrics  string
	log      *os.File
	logPath  string
	cmd      *exec.Cmd
	done     chan struct{}
	notify   *notifications // what it tells systemd
}

func startReloadDaemon(t *testing.T) *reloadDaemon {
	t.Helper()
	return startReloadDaemonReading(t, "a")
}

// startReloadDaemonReading starts crowdsec with acquis.d reading the
// files named (none: no log source at all).
func startReloadDaemonReading(t *testing.T, sources ...string) *reloadDaemon {
	t.Helper()
	d := &reloadDaemon{t: t, dir: t.TempDir(), hub: reloadHub(t)}
	for _, sub := range []string{"acquis.d", "data"} {
		must(t, os.MkdirAll(filepath.Join(d.dir, sub), 0o755))
	}
	lapiPort, promPort := freePort(t), freePort(t)
	d.lapi = fmt.Sprintf("http://127.0.0.1:%d", lapiPort)
	d.metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort)
	d.cfg = filepath.Join(d.dir, "config.toml")
	conf := fmt.Sprintf(`[common]
log_level = "info"
[config_paths]
config_dir = %[1]q
data_dir = %[2]q
hub_dir = %[3]q
[crowdsec_service]
acquisition_dir = %[4]q
collections = ["e2e/base"]
[db_config]
db_path = %[5]q
[api.client]
credentials_path = %[6]q
[api.server]
listen_uri = "127.0.0.1:%[8]d"
profiles_path = %[7]q
[prometheus]
listen_addr = "127.0.0.1"
listen_port = %[9]d
`, d.dir, filepath.Join(d.dir, "data"), d.hub, filepath.Join(d.dir, "acquis.d"), filepath.Join(d.dir, "crowdsec.db"),
		filepath.Join(d.dir, "creds.toml"), filepath.Join(d.dir, "profiles.toml"), lapiPort, promPort)
	must(t, os.WriteFile(d.cfg, []byte(conf), 0o600))
	prof, err := os.ReadFile("../config/profiles.toml")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(d.dir, "profiles.toml"), prof, 0o600))
	d.writeSources(sources...)
	d.cscli("machines", "add", "reload", "--auto", "--force")
	d.logPath = filepath.Join(d.dir, "crowdsec.out")
	d.log, err = os.Create(d.logPath)
	must(t, err)
	d.cmd = exec.Command(filepath.Join(binDir, "crowdsec"), "-c", d.cfg)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.notify = newNotifications(t)
	d.cmd.Env = append(os.Environ(), d.notify.env)
	must(t, d.cmd.Start())
	d.done = make(chan struct{})
	go func() {
		_ = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		<-d.done
		d.log.Close()
		if t.Failed() {
			t.Logf("crowdsec log:\n%s", d.readLog())
		}
	})
	if !nstest.Eventually(20*time.Second, func() bool {
		return d.alive() && strings.Contains(d.readLog(), "local API listening") && d.scrape() != nil
	}) {
		t.Fatalf("crowdsec did not start:\n%s", d.readLog())
	}
	if m := d.notify.next(); !strings.Contains(m, "READY=1") {
		t.Fatalf("first notification %q, want READY=1", m)
	}
	return d
}

// writeSources makes acquis.d read the files named (NAME.log), each its
// own source.
func (d *reloadDaemon) writeSources(names ...string) {
	var b strings.Builder
	for _, n := range names {
		p := d.path(n)
		if _, err := os.Stat(p); err != nil {
			must(d.t, os.WriteFile(p, nil, 0o600))
		}
		fmt.Fprintf(&b, "[[source]]\nsource = \"file\"\nfilenames = [%q]\nlabels = { type = \"e2e\" }\nidle_warning = \"0\"\n\n", p)
	}
	must(d.t, os.WriteFile(filepath.Join(d.dir, "acquis.d", "e2e.toml"), []byte(b.String()), 0o600))
}

func (d *reloadDaemon) path(name string) string { return filepath.Join(d.dir, name+".log") }

// waitTailing waits until the daemon tails NAME.log. A source added by a
// reload opens its file just after the reload reports done, at the end
// of the file as upstream's does: a line written before that is not
// read, so the test writes after it.
func (d *reloadDaemon) waitTailing(name string) {
	d.t.Helper()
	want := "file=" + d.path(name) + " offset="
	if !nstest.Eventually(20*time.Second, func() bool {
		for _, l := range strings.Split(d.readLog(), "\n") {
			if strings.Contains(l, "tailing file") && strings.Contains(l, want) {
				return true
			}
		}
		return false
	}) {
		d.t.Fatalf("%s.log is not tailed:\n%s", name, d.readLog())
	}
}

func (d *reloadDaemon) readLog() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

func (d *reloadDaemon) alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

func (d *reloadDaemon) cscli(args ...string) string {
	d.t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "cscli"), append([]string{"-c", d.cfg, "--error"}, args...)...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("cscli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// write appends lines to NAME.log.
func (d *reloadDaemon) write(name string, lines ...string) {
	d.t.Helper()
	f, err := os.OpenFile(d.path(name), os.O_APPEND|os.O_WRONLY, 0)
	must(d.t, err)
	defer f.Close()
	for _, l := range lines {
		_, err := f.WriteString(l + "\n")
		must(d.t, err)
	}
}

func (d *reloadDaemon) scrape() promSamples {
	resp, err := http.Get(d.metrics)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	return fams
}

// parsed is how many lines the agent parsed so far.
func (d *reloadDaemon) parsed() float64 {
	return d.scrape().sum("rampart_agent_lines_total", map[string]string{"result": "parsed"})
}

// waitParsed waits until the agent parsed n lines in all.
func (d *reloadDaemon) waitParsed(n float64) {
	d.t.Helper()
	if !nstest.Eventually(20*time.Second, func() bool { return d.parsed() >= n }) {
		d.t.Fatalf("the agent parsed %v lines, want %v", d.parsed(), n)
	}
}

// alerted says whether an alert of scenario names ip.
func (d *reloadDaemon) alerted(ip, scenario string) bool {
	out := strings.TrimSpace(d.cscli("alerts", "list", "-o", "json", "--ip", ip))
	var alerts []*models.Alert
	if out != "" && out != "null" {
		if err := json.Unmarshal([]byte(out), &alerts); err != nil {
			d.t.Fatalf("cscli alerts list: %v\n%s", err, out)
		}
	}
	for _, a := range alerts {
		if a.GetScenario() == scenario {
			return true
		}
	}
	return false
}

func (d *reloadDaemon) waitAlert(ip, scenario string) {
	d.t.Helper()
	if !nstest.Eventually(20*time.Second, func() bool { return d.alerted(ip, scenario) }) {
		d.t.Fatalf("no %s alert for %s", scenario, ip)
	}
}

// reload sends SIGHUP, waits for the daemon to log the outcome and says
// whether the reload succeeded.
func (d *reloadDaemon) reload() (ok bool) {
	d.t.Helper()
	count := func(log, what string) int { return strings.Count(log, what) }
	log := d.readLog()
	okBefore, failBefore := count(log, "configuration reloaded"), count(log, "reload failed")
	must(d.t, d.cmd.Process.Signal(syscall.SIGHUP))
	if !nstest.Eventually(30*time.Second, func() bool {
		log = d.readLog()
		return !d.alive() || count(log, "configuration reloaded") > okBefore || count(log, "reload failed") > failBefore
	}) {
		d.t.Fatalf("the reload never finished:\n%s", log)
	}
	if !d.alive() {
		d.t.Fatalf("crowdsec exited on SIGHUP:\n%s", log)
	}
	// systemd sees the reload start and end, whatever its outcome.
	if m := d.notify.next(); !strings.Contains(m, "RELOADING=1") {
		d.t.Errorf("notification after SIGHUP %q, want RELOADING=1", m)
	}
	if m := d.notify.next(); !strings.Contains(m, "READY=1") {
		d.t.Errorf("notification after the reload %q, want READY=1", m)
	}
	return count(log, "configuration reloaded") > okBefore
}

// TestReloadRules: SIGHUP makes a running daemon load a newly installed
// collection, keeps the bucket of an unchanged scenario (4 events before
// the reload, the 5th after it overflows), keeps the old rules when the
// new ones are broken, follows acquis.d (a new file is read, a removed
// one is not), and the LAPI answers every request meanwhile.
func TestReloadRules(t *testing.T) {
	d := startReloadDaemon(t)
	// Hammer the LAPI throughout the reloads.
	var fails, reqs atomic.Int64
	var lastErr atomic.Value
	hctx, stopHammer := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		client := &http.Client{Timeout: 5 * time.Second}
		for hctx.Err() == nil {
			resp, err := client.Get(d.lapi + "/health")
			reqs.Add(1)
			if err != nil {
				fails.Add(1)
				lastErr.Store(err.Error())
				continue
			}
			if resp.StatusCode != http.StatusOK {
				fails.Add(1)
				lastErr.Store(resp.Status)
			}
			resp.Body.Close()
		}
	})

	// 4 of the 5 events e2e/slow needs, before the reload.
	d.write("a", "slow 192.0.2.10", "slow 192.0.2.10", "slow 192.0.2.10", "slow 192.0.2.10")
	d.waitParsed(4)
	if d.alerted("192.0.2.10", "e2e/slow") {
		t.Fatal("e2e/slow overflowed at its 4th event")
	}
	// A scenario installed while the daemon runs, as an administrator does.
	out := d.cscli("collections", "install", "e2e/extra", "--hub", d.hub)
	if !strings.Contains(out, "systemctl reload crowdsec") {
		t.Errorf("cscli collections install does not say to reload:\n%s", out)
	}
	if !d.reload() {
		t.Fatalf("the reload failed:\n%s", d.readLog())
	}
	d.write("a", "new 192.0.2.20")
	d.waitAlert("192.0.2.20", "e2e/new")
	// The unchanged scenario kept its bucket: one more event overflows it.
	d.write("a", "slow 192.0.2.10")
	d.waitAlert("192.0.2.10", "e2e/slow")

	// A broken scenario: the reload fails, says why, and the old rules go on.
	d.cscli("collections", "install", "e2e/broken", "--hub", d.hub)
	if d.reload() {
		t.Fatalf("a reload with a broken scenario succeeded:\n%s", d.readLog())
	}
	if log := d.readLog(); !strings.Contains(log, "broken.yaml") {
		t.Errorf("the failed reload does not name the broken file:\n%s", log)
	}
	d.write("a", "new 192.0.2.21")
	d.waitAlert("192.0.2.21", "e2e/new")
	d.write("a", "slow 192.0.2.11", "slow 192.0.2.11", "slow 192.0.2.11", "slow 192.0.2.11", "slow 192.0.2.11")
	d.waitAlert("192.0.2.11", "e2e/slow")

	// Sources: b.log added, a.log removed, with the broken item gone.
	d.cscli("collections", "remove", "e2e/broken")
	d.writeSources("b")
	if !d.reload() {
		t.Fatalf("the reload failed:\n%s", d.readLog())
	}
	d.waitTailing("b")
	before := d.parsed()
	d.write("a", "new 192.0.2.30")
	d.write("b", "new 192.0.2.31")
	d.waitAlert("192.0.2.31", "e2e/new")
	d.waitParsed(before + 1)
	if d.alerted("192.0.2.30", "e2e/new") {
		t.Error("a.log, removed from acquis.d, is still read")
	}

	stopHammer()
	wg.Wait()
	if n := fails.Load(); n > 0 {
		t.Errorf("%d of %d LAPI requests failed during the reloads; last: %v", n, reqs.Load(), lastErr.Load())
	}
	if reqs.Load() == 0 {
		t.Error("no LAPI request was made")
	}
}

// TestReloadAddsFirstSource: a daemon started with no log source (a
// fresh install on a host where nothing was detected) runs its LAPI, and
// a reload after a source is added to acquis.d starts reading it: the
// administrator's path after installing a service and running cscli
// setup.
func TestReloadAddsFirstSource(t *testing.T) {
	d := startReloadDaemonReading(t)
	if !strings.Contains(d.readLog(), "no log source") {
		t.Errorf("crowdsec does not say it has no log source:\n%s", d.readLog())
	}
	d.writeSources("b")
	if !d.reload() {
		t.Fatalf("the reload failed:\n%s", d.readLog())
	}
	d.waitTailing("b")
	d.write("b", "new 192.0.2.40")
	d.write("b", "slow 192.0.2.41", "slow 192.0.2.41", "slow 192.0.2.41", "slow 192.0.2.41", "slow 192.0.2.41")
	d.waitAlert("192.0.2.41", "e2e/slow")
}

// TestReloadNotifications: SIGHUP makes a running daemon read its
// notification folder again with the profiles: an upstream YAML file
// added then is used by the next alert and listed by cscli; a broken file
// fails the reload, naming it, and the running notifications go on.
func TestReloadNotifications(t *testing.T) {
	d := startReloadDaemon(t)
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	received := func(ip string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bodies {
			if strings.Contains(b, ip) {
				return true
			}
		}
		return false
	}
	waitReceived := func(ip string) {
		t.Helper()
		if !nstest.Eventually(20*time.Second, func() bool { return received(ip) }) {
			t.Fatalf("the webhook never received %s", ip)
		}
	}
	dir := filepath.Join(d.dir, "notifications")
	must(t, os.MkdirAll(dir, 0o755))
	// As a user switching from CrowdSec has it: the package's TOML
	// examples (commented out) beside upstream's http.yaml, edited.
	shipped, err := filepath.Glob("../config/notifications/*.toml")
	must(t, err)
	if len(shipped) == 0 {
		t.Fatal("no shipped notification example")
	}
	for _, p := range shipped {
		b, err := os.ReadFile(p)
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644))
	}
	must(t, os.WriteFile(filepath.Join(dir, "http.yaml"), []byte(`type: http
name: http_default
log_level: info
format: |
  {{range .}}{{.Scenario}} {{.Source.IP}}{{end}}
url: `+srv.URL+`
method: POST
headers:
  Content-Type: text/plain
---
# type: http
# name: http_second_notification
`), 0o644))
	must(t, os.WriteFile(filepath.Join(d.dir, "profiles.toml"), []byte(`[[profile]]
name = "default_ip_remediation"
filters = ["Alert.Remediation == true && Alert.GetScope() == 'Ip'"]
decisions = [{type = "ban", duration = "4h"}]
notifications = ["http_default"]
on_success = "break"
`), 0o600))
	if !d.reload() {
		t.Fatalf("the reload failed:\n%s", d.readLog())
	}
	if out := d.cscli("notifications", "list", "-o", "raw"); !strings.Contains(out, "http_default,http,default_ip_remediation") {
		t.Errorf("cscli notifications list after the reload:\n%s", out)
	}
	slow := func(ip string) {
		d.write("a", "slow "+ip, "slow "+ip, "slow "+ip, "slow "+ip, "slow "+ip)
	}
	slow("192.0.2.50")
	waitReceived("192.0.2.50")

	// A typo in a new file: the reload fails and says where.
	bad := filepath.Join(dir, "slack.yaml")
	must(t, os.WriteFile(bad, []byte("type: slack\nname: slack_default\nformat: x\nwebhok: https://hooks.slack.test/x\n"), 0o644))
	if d.reload() {
		t.Fatalf("a reload with a broken notification file succeeded:\n%s", d.readLog())
	}
	if log := d.readLog(); !strings.Contains(log, bad+":4: webhok: unknown key") {
		t.Errorf("the failed reload does not name the file and line:\n%s", log)
	}
	slow("192.0.2.51")
	waitReceived("192.0.2.51")

	// The http.toml example uncommented beside http.yaml: a name defined
	// twice, which the reload refuses naming both files.
	must(t, os.Remove(bad))
	must(t, os.WriteFile(filepath.Join(dir, "http.toml"), []byte("type = \"http\"\nname = \"http_default\"\nformat = \"x\"\nurl = \"http://127.0.0.1:1/\"\n"), 0o644))
	if d.reload() {
		t.Fatalf("a reload with a notification defined twice succeeded:\n%s", d.readLog())
	}
	if log := d.readLog(); !strings.Contains(log, `notification \"http_default\" is defined twice: in `+filepath.Join(dir, "http.toml")+" and in "+filepath.Join(dir, "http.yaml")) {
		t.Errorf("the failed reload does not name the notification and both files:\n%s", log)
	}
	slow("192.0.2.52")
	waitReceived("192.0.2.52")
}

// notifications reads sd_notify messages sent to a socket of its own.
type notifications struct {
	t    *testing.T
	conn *net.UnixConn
	env  string
}

func newNotifications(t *testing.T) *notifications {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	must(t, err)
	t.Cleanup(func() { conn.Close() })
	return &notifications{t: t, conn: conn, env: "NOTIFY_SOCKET=" + sock}
}

// next returns the next message (within 30 s).
func (n *notifications) next() string {
	n.t.Helper()
	buf := make([]byte, 4096)
	must(n.t, n.conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	k, _, err := n.conn.ReadFromUnix(buf)
	if err != nil {
		n.t.Fatalf("no sd_notify message: %v", err) // the caller logs what it waited for
	}
	return string(buf[:k])
}

// TestBouncerReload: SIGHUP makes the firewall bouncer start over with its
// edited file (telling systemd RELOADING=1, then READY=1 after the sync),
// or keep the old one when the file is broken; it never exits on it, and
// decisions keep reaching the kernel.
func TestBouncerReload(t *testing.T) {
	a := newAppliance(t, 63)
	n := newNotifications(t)
	a.writeBouncerConfig("nftables")
	a.bouncerEnv = []string{n.env}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bouncer log:\n%s", a.readLog("bouncer"))
		}
	})
	a.startBouncer()
	if m := n.next(); !strings.Contains(m, "READY=1") {
		t.Fatalf("first notification %q, want READY=1", m)
	}
	alive := func() {
		t.Helper()
		if err := a.bouncer.Process.Signal(syscall.Signal(0)); err != nil {
			t.Fatalf("the bouncer exited: %v\n%s", err, a.readLog("bouncer"))
		}
	}
	a.writeBouncerConfig("nftables", `resync_interval = "5m"`)
	must(t, a.bouncer.Process.Signal(syscall.SIGHUP))
	if m := n.next(); !strings.Contains(m, "RELOADING=1") {
		t.Fatalf("notification after SIGHUP %q, want RELOADING=1", m)
	}
	if m := n.next(); !strings.Contains(m, "READY=1") {
		t.Fatalf("notification after the reload %q, want READY=1", m)
	}
	alive()
	// Open before the ban, so the check below proves the ban.
	a.waitOpen(a.ns.DefIP4, 15*time.Second)
	if !strings.Contains(a.readLogAll("bouncer"), "configuration reloaded") {
		t.Errorf("the reload is not logged:\n%s", a.readLog("bouncer"))
	}
	a.cscli("decisions", "add", "-i", a.ns.AttIP4.String())
	a.waitBlocked(a.ns.DefIP4, 15*time.Second)

	// A broken file: logged, the running configuration goes on.
	must(t, os.WriteFile(a.bouncerConfigPath(), []byte("mode = \"bogus\"\n"), 0o600))
	must(t, a.bouncer.Process.Signal(syscall.SIGHUP))
	if !nstest.Eventually(15*time.Second, func() bool { return strings.Contains(a.readLogAll("bouncer"), "reload failed") }) {
		t.Fatalf("a broken file on SIGHUP is not reported:\n%s", a.readLog("bouncer"))
	}
	alive()
	a.cscli("decisions", "delete", "-i", a.ns.AttIP4.String())
	a.waitOpen(a.ns.DefIP4, 15*time.Second)
}
