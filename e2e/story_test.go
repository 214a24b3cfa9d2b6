package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/models"
)

// story is the seed's story on real processes: in the defender namespace
// the crowdsec daemon (agent + LAPI, Rampart's own rules), the firewall
// bouncer and a small web server writing an nginx access log; the agent
// also tails an auth log the test appends sshd lines to. The attacker sits
// in the other namespace.
type story struct {
	t        testing.TB
	ns       *nstest.Pair
	dir      string
	cfg      string
	crowdsec *exec.Cmd
	bouncer  *exec.Cmd
	access   *os.File
	accessMu sync.Mutex
	port     int
}

// storyOptions add to the story's configuration.
type storyOptions struct {
	service string // lines appended to [crowdsec_service]
	acquis  string // sources appended to the acquisition file
	// simulation, when set, is written to config_dir/simulation.toml
	// before the daemon starts
	simulation string
}

// newStory starts everything; rulesDir is the hub folder the agent loads.
func newStory(t testing.TB, ns *nstest.Pair, rulesDir string) *story {
	t.Helper()
	return newStoryWith(t, ns, rulesDir, storyOptions{})
}

func newStoryWith(t testing.TB, ns *nstest.Pair, rulesDir string, o storyOptions) *story {
	t.Helper()
	nstest.Require(t, "nft", "curl")
	s := &story{t: t, ns: ns, dir: t.TempDir(), port: 8000}
	abs, err := filepath.Abs(rulesDir)
	must(t, err)
	for _, d := range []string{"acquis.d", "data"} {
		must(t, os.MkdirAll(filepath.Join(s.dir, d), 0o755))
	}
	s.cfg = filepath.Join(s.dir, "config.toml")
	conf := fmt.Sprintf(`[common]
log_level = "info"
[config_paths]
config_dir = %[1]q
data_dir = %[2]q
hub_dir = %[3]q
[crowdsec_service]
acquisition_dir = %[4]q
%[8]s
[db_config]
db_path = %[5]q
[api.client]
credentials_path = %[6]q
[api.server]
listen_uri = "127.0.0.1:8080"
profiles_path = %[7]q
`, s.dir, filepath.Join(s.dir, "data"), abs, filepath.Join(s.dir, "acquis.d"), filepath.Join(s.dir, "crowdsec.db"),
		filepath.Join(s.dir, "creds.toml"), filepath.Join(s.dir, "profiles.toml"), o.service)
	must(t, os.WriteFile(s.cfg, []byte(conf), 0o600))
	prof, err := os.ReadFile("../config/profiles.toml")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(s.dir, "profiles.toml"), prof, 0o600))
	acq := fmt.Sprintf(`[[source]]
source = "file"
filenames = [%q]
labels = { type = "nginx" }
idle_warning = "0"

[[source]]
source = "file"
filenames = [%q]
labels = { type = "syslog" }
idle_warning = "0"
`, s.path("access"), s.path("auth")) + o.acquis
	must(t, os.WriteFile(filepath.Join(s.dir, "acquis.d", "story.toml"), []byte(acq), 0o600))
	// The logs exist before the agent starts: it reads them from their end.
	for _, l := range []string{"access", "auth"} {
		must(t, os.WriteFile(s.path(l), nil, 0o600))
	}
	s.access, err = os.OpenFile(s.path("access"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	t.Cleanup(func() { s.access.Close() })

	if o.simulation != "" {
		must(t, os.WriteFile(filepath.Join(s.dir, "simulation.toml"), []byte(o.simulation), 0o600))
	}
	s.cscli("machines", "add", "story", "--auto", "--force")
	s.crowdsec = s.start("crowdsec", filepath.Join(binDir, "crowdsec"), "-c", s.cfg)
	if !nstest.Eventually(20*time.Second, func() bool {
		return ns.Dial(ns.Defender, "127.0.0.1:8080", 200*time.Millisecond) == nil && strings.Contains(s.readLog("crowdsec"), "rules loaded")
	}) {
		t.Fatalf("crowdsec did not start:\n%s", s.readLog("crowdsec"))
	}
	key := strings.TrimSpace(s.cscli("bouncers", "add", "fw", "-o", "raw"))
	bconf := fmt.Sprintf("mode = \"nftables\"\napi_url = \"http://127.0.0.1:8080/\"\napi_key = %q\nupdate_frequency = \"1s\"\nlog_level = \"debug\"\n"+
		"[prometheus]\nenabled = true\nlisten_addr = \"127.0.0.1\"\nlisten_port = 60601\n", key)
	must(t, os.WriteFile(filepath.Join(s.dir, "bouncer.toml"), []byte(bconf), 0o600))
	s.bouncer = s.start("bouncer", filepath.Join(binDir, "crowdsec-firewall-bouncer"), "-c", filepath.Join(s.dir, "bouncer.toml"))
	if !nstest.Eventually(15*time.Second, func() bool { return strings.Contains(s.readLog("bouncer"), "first sync in the kernel") }) {
		t.Fatalf("bouncer never synced:\n%s", s.readLog("bouncer"))
	}
	s.serveHTTP()
	t.Cleanup(func() {
		s.stop(s.bouncer)
		s.stop(s.crowdsec)
		_ = ns.Command(context.Background(), ns.Defender, filepath.Join(binDir, "crowdsec-firewall-bouncer"), "-c", filepath.Join(s.dir, "bouncer.toml"), "-flush").Run()
		if t.Failed() {
			t.Logf("crowdsec log:\n%s", s.readLog("crowdsec"))
		}
	})
	return s
}

func (s *story) path(name string) string { return filepath.Join(s.dir, name+".log") }

func (s *story) readLog(name string) string {
	b, _ := os.ReadFile(filepath.Join(s.dir, name+".out"))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

func (s *story) start(name string, args ...string) *exec.Cmd {
	s.t.Helper()
	cmd := s.ns.Command(context.Background(), s.ns.Defender, args...)
	f, err := os.Create(filepath.Join(s.dir, name+".out"))
	must(s.t, err)
	s.t.Cleanup(func() { f.Close() })
	cmd.Stdout, cmd.Stderr = f, f
	must(s.t, cmd.Start())
	return cmd
}

func (s *story) stop(cmd *exec.Cmd) {
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
}

func (s *story) cscli(args ...string) string {
	s.t.Helper()
	cmd := s.ns.Command(context.Background(), s.ns.Defender, append([]string{filepath.Join(binDir, "cscli"), "-c", s.cfg, "--error"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		s.t.Fatalf("cscli %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// serveHTTP runs the web server inside the defender namespace; each
// request becomes an nginx "combined" access-log line.
func (s *story) serveHTTP() {
	ln := s.ns.ListenRaw(s.t, s.ns.Defender, fmt.Sprintf("[::]:%d", s.port))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := http.StatusNotFound
		if r.URL.Path == "/" {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		line := fmt.Sprintf("%s - - [%s] \"%s %s HTTP/1.1\" %d 0 \"-\" %q\n", host, time.Now().Format("02/Jan/2006:15:04:05 -0700"),
			r.Method, r.URL.RequestURI(), status, r.UserAgent())
		s.accessMu.Lock()
		defer s.accessMu.Unlock()
		_, _ = s.access.WriteString(line)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s.t.Cleanup(func() { srv.Close() })
}

// get makes one request from the attacker namespace.
func (s *story) get(path, ua string) (int, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		return s.ns.DialConn(s.ns.Attacker, addr, time.Second)
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest("GET", fmt.Sprintf("http://%s%s", net.JoinHostPort(s.ns.DefIP4.String(), fmt.Sprint(s.port)), path), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", ua)
	resp, err := (&http.Client{Transport: tr, Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// curlTimesOut is the seed's check, run as the attacker would.
func (s *story) curlTimesOut() bool {
	url := fmt.Sprintf("http://%s/", net.JoinHostPort(s.ns.DefIP4.String(), fmt.Sprint(s.port)))
	err := s.ns.Command(context.Background(), s.ns.Attacker, "curl", "-s", "-o", "/dev/null", "--connect-timeout", "1", url).Run()
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == 28 // curl: operation timed out
}

// sshFailures appends failed logins for ip to the auth log, as sshd would.
func (s *story) sshFailures(ip string, n int) {
	s.t.Helper()
	f, err := os.OpenFile(s.path("auth"), os.O_APPEND|os.O_WRONLY, 0)
	must(s.t, err)
	defer f.Close()
	for i := range n {
		_, err := fmt.Fprintf(f, "%s defender sshd[%d]: Failed password for root from %s port %d ssh2\n",
			time.Now().Format(time.Stamp), 4000+i, ip, 50000+i)
		must(s.t, err)
	}
}

func (s *story) decisions() []*models.Decision {
	s.t.Helper()
	out := strings.TrimSpace(s.cscli("decisions", "list", "-o", "json"))
	var alerts []*models.Alert
	if out == "" || out == "null" {
		return nil
	}
	if err := json.Unmarshal([]byte(out), &alerts); err != nil {
		s.t.Fatalf("cscli decisions list -o json: %v\n%s", err, out)
	}
	var ds []*models.Decision
	for _, a := range alerts {
		ds = append(ds, a.Decisions...)
	}
	return ds
}

// waitBan waits for a ban on ip and returns its scenario.
func (s *story) waitBan(ip string, within time.Duration) string {
	s.t.Helper()
	var scenario string
	if !nstest.Eventually(within, func() bool {
		for _, d := range s.decisions() {
			if d.Value == ip && d.Type == "ban" {
				scenario = d.Scenario
				return true
			}
		}
		return false
	}) {
		s.t.Fatalf("no ban on %s after %s\ncrowdsec log:\n%s", ip, within, s.readLog("crowdsec"))
	}
	return scenario
}

func (s *story) hasAlert(ip, scenarioPrefix string) bool {
	return strings.Contains(s.cscli("alerts", "list", "-o", "raw", "--ip", ip), scenarioPrefix)
}

// The seed's story: an ssh brute force in the auth log, then a web scan,
// each ends with the attacker's packets dropped by the kernel.
func TestSeedStory(t *testing.T) {
	ns := nstest.NewPublicPair(t, 40)
	s := newStory(t, ns, "../rules")
	att := ns.AttIP4.String()
	if code, err := s.get("/", "Mozilla/5.0"); err != nil || code != 200 {
		t.Fatalf("attacker cannot reach the web server before any attack: %d %v", code, err)
	}

	// ssh brute force, appended to the log the agent tails
	start := time.Now()
	s.sshFailures(att, 10)
	scenario := s.waitBan(att, 10*time.Second)
	banned := time.Since(start)
	if !strings.HasPrefix(scenario, "rampart/ssh") {
		t.Errorf("ban from scenario %q, want one of Rampart's ssh scenarios", scenario)
	}
	if !s.hasAlert(att, "rampart/ssh") {
		t.Errorf("cscli alerts list shows no ssh alert for %s", att)
	}
	if !nstest.Eventually(10*time.Second, s.curlTimesOut) {
		t.Fatalf("attacker's curl still connects after the ban\nnft:\n%s", s.ruleset())
	}
	t.Logf("ssh brute force: decision %s after the last line, curl --connect-timeout 1 times out", banned.Round(time.Millisecond))
	if !strings.Contains(s.ruleset(), att) {
		t.Errorf("nft list ruleset does not show %s:\n%s", att, s.ruleset())
	}

	// unban, then the web scan
	s.cscli("decisions", "delete", "--ip", att)
	if !nstest.Eventually(10*time.Second, func() bool { _, err := s.get("/", "Mozilla/5.0"); return err == nil }) {
		t.Fatal("attacker still blocked after the decision was deleted")
	}
	start = time.Now()
	for i := 0; i < 60; i++ {
		paths := []string{fmt.Sprintf("/admin%d.php", i), "/.env", "/.git/config", fmt.Sprintf("/backup/db%d.sql", i)}
		if _, err := s.get(paths[i%len(paths)], "Mozilla/5.0 (scanner)"); err != nil {
			break // already blocked: the ban landed mid-scan
		}
	}
	scenario = s.waitBan(att, 10*time.Second)
	if !strings.HasPrefix(scenario, "rampart/http") {
		t.Errorf("ban from scenario %q, want one of Rampart's http scenarios", scenario)
	}
	if !nstest.Eventually(10*time.Second, s.curlTimesOut) {
		t.Fatalf("attacker's curl still connects after the web-scan ban\nnft:\n%s", s.ruleset())
	}
	t.Logf("web scan: ban by %s %s after the scan started", scenario, time.Since(start).Round(time.Millisecond))

	// what happened, in the daemon's metrics
	out, err := ns.Command(context.Background(), ns.Defender, "curl", "-s", "http://127.0.0.1:6060/metrics").Output()
	must(t, err)
	metric := func(name string) float64 {
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				var f float64
				fmt.Sscan(v, &f)
				return f
			}
		}
		t.Errorf("metrics lack %s", name)
		return -1
	}
	raised, delivered := metric("rampart_agent_alerts_total"), metric(`rampart_delivery_alerts_total{result="delivered"}`)
	if raised < 2 || delivered != raised {
		t.Errorf("metrics: %v alerts raised, %v delivered; want both alike and at least 2", raised, delivered)
	}
	if !strings.Contains(string(out), "cs_filesource_hits_total") {
		t.Error("metrics lack the file source's line counts")
	}
	// cscli metrics reads the same endpoint: its alert counts per scenario
	// match the alerts the story raised
	var sections map[string]map[string]any
	raw := s.cscli("metrics", "-o", "json")
	must(t, json.Unmarshal([]byte(raw), &sections))
	if n, _ := sections["alerts"]["rampart/ssh-bf"].(float64); n != 1 {
		t.Errorf("cscli metrics: %v rampart/ssh-bf alerts, want 1\n%s", sections["alerts"]["rampart/ssh-bf"], raw)
	}
	if _, ok := sections["scenarios"]["rampart/ssh-bf"]; !ok {
		t.Errorf("cscli metrics shows no rampart/ssh-bf scenario:\n%s", raw)
	}
}

// An attacker in a private range is whitelisted by Rampart's rules; with
// the whitelist taken out of the rules it is banned like any other.
func TestSeedStoryPrivateRange(t *testing.T) {
	ns := nstest.NewPair(t, 41)
	att := ns.AttIP4.String()

	s := newStory(t, ns, "../rules")
	s.sshFailures(att, 10)
	// A public brute force written after it shows when the agent has read
	// the private one.
	s.sshFailures("203.0.113.99", 10)
	s.waitBan("203.0.113.99", 10*time.Second)
	for _, d := range s.decisions() {
		if d.Value == att {
			t.Fatalf("private-range attacker %s banned: %+v", att, d)
		}
	}
	if _, err := s.get("/", "Mozilla/5.0"); err != nil {
		t.Fatalf("private-range attacker blocked: %v", err)
	}
	s.stop(s.bouncer)
	s.stop(s.crowdsec)

	// the same rules without the private-range whitelist
	noWL := copyRulesWithoutWhitelist(t, "../rules")
	s2 := newStory(t, nstest.NewPair(t, 42), noWL)
	att2 := s2.ns.AttIP4.String()
	s2.sshFailures(att2, 10)
	s2.waitBan(att2, 10*time.Second)
	if !nstest.Eventually(10*time.Second, s2.curlTimesOut) {
		t.Fatal("private-range attacker not blocked once the whitelist is off")
	}
}

func (s *story) ruleset() string {
	out, _ := s.ns.Command(context.Background(), s.ns.Defender, "nft", "list", "ruleset").CombinedOutput()
	return string(out)
}

// copyRulesWithoutWhitelist copies the rules folder and drops the
// whitelist parser from every collection that lists it.
func copyRulesWithoutWhitelist(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if rel == "index.json" {
			if b, err = dropFromCollections(b); err != nil {
				return err
			}
		}
		if strings.HasPrefix(rel, "collections"+string(filepath.Separator)) {
			var kept []string
			for _, l := range strings.Split(string(b), "\n") {
				if !strings.Contains(l, "whitelists") {
					kept = append(kept, l)
				}
			}
			b = []byte(strings.Join(kept, "\n"))
		}
		return os.WriteFile(target, b, 0o644)
	})
	must(t, err)
	return dst
}

// dropFromCollections removes whitelist parsers from the collections'
// dependency lists of a hub index.
func dropFromCollections(index []byte) ([]byte, error) {
	var idx map[string]map[string]map[string]any
	if err := json.Unmarshal(index, &idx); err != nil {
		return nil, err
	}
	for _, item := range idx["collections"] {
		deps, _ := item["parsers"].([]any)
		var kept []any
		for _, d := range deps {
			if name, _ := d.(string); !strings.Contains(name, "whitelists") {
				kept = append(kept, d)
			}
		}
		item["parsers"] = kept
	}
	return json.Marshal(idx)
}

// BenchmarkTimeToBlock: from the write of the log line that overflows a
// scenario (ten failed ssh logins written at once for a fresh source) to
// the first packet from that source the kernel drops, over 100 attacks
// from 100 addresses. A probe connects from the attacking address every
// millisecond or so; the first probe that cannot connect within 20 ms
// marks the block (veth round trips take well under a millisecond).
func BenchmarkTimeToBlock(b *testing.B) {
	ns := nstest.NewPublicPair(b, 43)
	s := newStory(b, ns, "../rules")
	const attacks = 100
	var addrs []netip.Addr
	for i := range attacks {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)})
		ns.Run(b, ns.Attacker, "ip", "addr", "add", a.String()+"/24", "dev", ns.AttLink)
		addrs = append(addrs, a)
	}
	target := net.JoinHostPort(ns.DefIP4.String(), fmt.Sprint(s.port))
	for b.Loop() {
		var took []time.Duration
		for _, a := range addrs {
			if c, err := ns.DialFrom(ns.Attacker, a, target, time.Second); err != nil {
				b.Fatalf("%s cannot connect before its attack: %v", a, err)
			} else {
				c.Close()
			}
			var lines strings.Builder
			for i := range 10 {
				fmt.Fprintf(&lines, "%s defender sshd[%d]: Failed password for root from %s port %d ssh2\n", time.Now().Format(time.Stamp), 5000+i, a, 40000+i)
			}
			f, err := os.OpenFile(s.path("auth"), os.O_APPEND|os.O_WRONLY, 0)
			must(b, err)
			start := time.Now()
			_, err = f.WriteString(lines.String())
			f.Close()
			must(b, err)
			for {
				probe := time.Now()
				c, err := ns.DialFrom(ns.Attacker, a, target, 20*time.Millisecond)
				if err != nil {
					took = append(took, probe.Sub(start))
					// a ban, not a hiccup: it stays blocked
					if c, err := ns.DialFrom(ns.Attacker, a, target, 200*time.Millisecond); err == nil {
						c.Close()
						b.Fatalf("%s: one probe failed but the next connected", a)
					}
					break
				}
				c.Close()
				if time.Since(start) > 10*time.Second {
					b.Fatalf("%s still connects 10 s after its attack", a)
				}
				time.Sleep(time.Millisecond)
			}
		}
		slices.Sort(took)
		p50, p99 := took[len(took)/2], took[len(took)*99/100]
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
		b.Logf("time to block over %d attacks: p50 %s, p99 %s, min %s, max %s", len(took), p50, p99, took[0], took[len(took)-1])
	}
	// The daemons' own view of the same attacks: log line to decision
	// (agent + LAPI) and the bouncer's firewall updates.
	mean := func(p promSamples, name string) float64 {
		for _, m := range p[name].GetMetric() {
			if h := m.GetHistogram(); h.GetSampleCount() > 0 {
				return h.GetSampleSum() / float64(h.GetSampleCount()) * 1000
			}
		}
		return 0
	}
	b.ReportMetric(mean(s.scrape("http://127.0.0.1:6060/metrics"), "rampart_time_to_decision_seconds"), "decision-mean-ms")
	b.ReportMetric(mean(s.scrape("http://127.0.0.1:60601/metrics"), "fw_bouncer_apply_seconds"), "apply-mean-ms")
}

// A one-shot replay: `crowdsec -dsn file://... -type syslog -no-api` with
// the service's own configuration, while the service runs and holds its
// alert queue, reads the file in time-machine mode, delivers its alerts to
// the running LAPI and exits 0; the service's queue is left as it was.
func TestReplayDSN(t *testing.T) {
	ns := nstest.NewPublicPair(t, 44)
	s := newStory(t, ns, "../rules")
	// A brute force from yesterday: time-machine mode takes the lines'
	// own timestamps, not the clock.
	var b strings.Builder
	at := time.Now().Add(-24 * time.Hour)
	for i := range 8 {
		fmt.Fprintf(&b, "%s host sshd[%d]: Failed password for invalid user u%d from 192.0.2.200 port %d ssh2\n",
			at.Add(time.Duration(i)*time.Second).Format(time.Stamp), 700+i, i, 41000+i)
	}
	old := filepath.Join(s.dir, "old-auth.log")
	must(t, os.WriteFile(old, []byte(b.String()), 0o600))
	queue := filepath.Join(s.dir, "data", "alert-queue")
	before := dirState(t, queue)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tmp := t.TempDir()
	replay := ns.Command(ctx, ns.Defender, filepath.Join(binDir, "crowdsec"), "-c", s.cfg,
		"-dsn", "file://"+old, "-type", "syslog", "-no-api")
	replay.Env = append(os.Environ(), "TMPDIR="+tmp)
	out, err := replay.CombinedOutput()
	if err != nil {
		t.Fatalf("replay beside the running service: %v\n%s", err, out)
	}
	if !s.hasAlert("192.0.2.200", "rampart/ssh") {
		t.Fatalf("replayed brute force left no alert\n%s", out)
	}
	if !strings.Contains(string(out), "lines=8") || !strings.Contains(string(out), "every alert delivered") {
		t.Errorf("replay did not report its 8 lines and its delivery:\n%s", out)
	}
	if after := dirState(t, queue); after != before {
		t.Errorf("the replay changed the service's queue:\nbefore %s\nafter  %s", before, after)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the replay left its queue behind: %v", left)
	}

	// With the LAPI unreachable the replay fails, says what happened to
	// its alerts, and still leaves the service's queue alone.
	creds, err := os.ReadFile(filepath.Join(s.dir, "creds.toml"))
	must(t, err)
	deadCreds := filepath.Join(s.dir, "dead-creds.toml")
	must(t, os.WriteFile(deadCreds, []byte(strings.Replace(string(creds), "127.0.0.1:8080", "127.0.0.1:9", 1)), 0o600))
	conf, err := os.ReadFile(s.cfg)
	must(t, err)
	deadCfg := filepath.Join(s.dir, "dead.toml")
	must(t, os.WriteFile(deadCfg, []byte(strings.Replace(string(conf), filepath.Join(s.dir, "creds.toml"), deadCreds, 1)), 0o600))
	replay = ns.Command(ctx, ns.Defender, filepath.Join(binDir, "crowdsec"), "-c", deadCfg,
		"-dsn", "file://"+old, "-type", "syslog", "-no-api", "-replay-wait", "1s")
	replay.Env = append(os.Environ(), "TMPDIR="+tmp)
	out, err = replay.CombinedOutput()
	if err == nil {
		t.Fatalf("a replay whose alerts never reached the LAPI exited 0:\n%s", out)
	}
	if !strings.Contains(string(out), "2 of 2 alerts not delivered") || !strings.Contains(string(out), "run the replay again") {
		t.Errorf("the failed replay does not say what happened to its alerts:\n%s", out)
	}
	if after := dirState(t, queue); after != before {
		t.Errorf("the failed replay changed the service's queue:\nbefore %s\nafter  %s", before, after)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the failed replay left its queue behind: %v", left)
	}
}

// dirState lists a directory's files with their sizes and modification
// times: a change to any shows.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	var b strings.Builder
	for _, e := range ents {
		fi, err := e.Info()
		must(t, err)
		fmt.Fprintf(&b, "%s:%d:%d ", e.Name(), fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}
