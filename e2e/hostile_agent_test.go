package e2e

// The hostile suite, agent side: forged log lines, a full disk under the
// alert queue, a log source that cannot start and bouncers sharing a key,
// all against the real crowdsec and bouncer binaries.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/internal/testhub"
	"github.com/rampart-ips/rampart/models"
)

// injectedFailures appends, for each bystander in turn, n failed logins
// from attacker whose user name copies sshd's own text "x from
// <bystander> port 22 ssh2", as a client can make sshd log it.
func (s *story) injectedFailures(attacker string, bystanders []string, n int) {
	s.t.Helper()
	var b strings.Builder
	for i := range n {
		for j, by := range bystanders {
			fmt.Fprintf(&b, "%s defender sshd[%d]: Failed password for invalid user x from %s port 22 ssh2 from %s port %d ssh2\n",
				time.Now().Format(time.Stamp), 7000+i*len(bystanders)+j, by, attacker, 50000+i*len(bystanders)+j)
		}
	}
	f, err := os.OpenFile(s.path("auth"), os.O_APPEND|os.O_WRONLY, 0)
	must(s.t, err)
	defer f.Close()
	_, err = f.WriteString(b.String())
	must(s.t, err)
}

// neverBlamed fails the test if any decision or alert names one of ips.
func (s *story) neverBlamed(ips ...string) {
	s.t.Helper()
	for _, d := range s.decisions() {
		for _, ip := range ips {
			if d.Value == ip {
				s.t.Errorf("bystander %s banned by %s on a line the attacker wrote", ip, d.Scenario)
			}
		}
	}
	for _, ip := range ips {
		out := strings.TrimSpace(s.cscli("alerts", "list", "-o", "json", "--ip", ip))
		var alerts []*models.Alert
		if out == "" {
			continue
		}
		if err := json.Unmarshal([]byte(out), &alerts); err != nil {
			s.t.Fatalf("cscli alerts list -o json: %v\n%s", err, out)
		}
		if len(alerts) > 0 {
			s.t.Errorf("%d alerts name bystander %s:\n%s", len(alerts), ip, out)
		}
	}
}

// hubWithSyslog copies the CrowdSec hub (the reference hub beside the
// repository, found by testhub) and adds the collection e2e/sshd: the hub's
// sshd collection behind the syslog, date and whitelist parsers.
func hubWithSyslog(t *testing.T) string {
	t.Helper()
	src := testhub.Dir(t)
	dst := filepath.Join(t.TempDir(), "hub")
	if out, err := exec.Command("cp", "-r", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copying the hub: %v\n%s", err, out)
	}
	parsers := []string{"crowdsecurity/syslog-logs", "crowdsecurity/dateparse-enrich", "crowdsecurity/whitelists"}
	col := "name: e2e/sshd\nparsers:\n  - " + strings.Join(parsers, "\n  - ") + "\ncollections:\n  - crowdsecurity/sshd\n"
	must(t, os.MkdirAll(filepath.Join(dst, "collections", "e2e"), 0o755))
	must(t, os.WriteFile(filepath.Join(dst, "collections", "e2e", "sshd.yaml"), []byte(col), 0o644))
	b, err := os.ReadFile(filepath.Join(dst, "index.json"))
	must(t, err)
	var idx map[string]map[string]json.RawMessage
	must(t, json.Unmarshal(b, &idx))
	item, err := json.Marshal(map[string]any{"path": "collections/e2e/sshd.yaml", "parsers": parsers, "collections": []string{"crowdsecurity/sshd"}})
	must(t, err)
	idx["collections"]["e2e/sshd"] = item
	b, err = json.Marshal(idx)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dst, "index.json"), b, 0o644))
	return dst
}

// TestHostileLogInjection: an attacker whose sshd user name copies
// "from <address> port 22 ssh2" must not get that address banned: not the
// administrator's machine on the defender's LAN, not a private address.
// With Rampart's rules the attacker's own address is banned and the
// administrator still reaches the host; with the hub's sshd parser, which
// takes the first address, the line is dropped and counted (defect 12 of
// issue 12).
func TestHostileLogInjection(t *testing.T) {
	const admin, private, marker = "198.51.100.10", "10.0.0.1", "203.0.113.99"
	t.Run("rampart rules", func(t *testing.T) {
		ns := nstest.NewPublicPair(t, 92)
		ns.Run(t, ns.Attacker, "ip", "addr", "add", admin+"/24", "dev", ns.AttLink)
		s := newStory(t, ns, "../rules")
		att := ns.AttIP4.String()
		s.injectedFailures(att, []string{admin, private}, 8)
		// A plain brute force written after them: once it is banned, the
		// agent has been through the forged lines.
		s.sshFailures(marker, 10)
		s.waitBan(marker, 15*time.Second)
		s.neverBlamed(admin, private)
		banned := false
		for _, d := range s.decisions() {
			banned = banned || d.Value == att && d.Type == "ban"
		}
		if !banned {
			t.Fatalf("the attacker %s who wrote the lines is not banned", att)
		}
		if !nstest.Eventually(10*time.Second, s.curlTimesOut) {
			t.Fatalf("the attacker's curl still connects\nnft:\n%s", s.ruleset())
		}
		target := net.JoinHostPort(ns.DefIP4.String(), fmt.Sprint(s.port))
		c, err := ns.DialFrom(ns.Attacker, netip.MustParseAddr(admin), target, time.Second)
		if err != nil {
			t.Fatalf("the administrator %s cannot reach the host: %v\nnft:\n%s", admin, err, s.ruleset())
		}
		c.Close()
	})
	t.Run("hub sshd parser", func(t *testing.T) {
		hub := hubWithSyslog(t)
		ns := nstest.NewPublicPair(t, 93)
		s := newStoryWith(t, ns, hub, storyOptions{service: `collections = ["e2e/sshd"]`})
		s.injectedFailures(ns.AttIP4.String(), []string{admin, private}, 8)
		s.sshFailures(marker, 10)
		s.waitBan(marker, 15*time.Second)
		s.neverBlamed(admin, private)
		p := s.scrape("http://127.0.0.1:6060/metrics")
		if n := p.sum("rampart_parser_injection_dropped_total", nil); n < 1 {
			t.Errorf("rampart_parser_injection_dropped_total = %v after 16 forged lines, want > 0", n)
		}
	})
}

// TestHostileQueueDiskFull: the filesystem under the running agent's alert
// queue (a 64 KiB tmpfs) fills up; brute forces from five addresses, more
// alerts than the queue's last page holds, are all still banned while the
// LAPI is up, and the failed writes are counted (defect 5 of issue 12).
func TestHostileQueueDiskFull(t *testing.T) {
	nstest.Require(t, "mount", "umount")
	queue := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", queue).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	// Registered before the story's own cleanup, so it runs after the
	// agent stopped and left the filesystem.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", queue).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", queue, err, out)
		}
	})
	ns := nstest.NewPublicPair(t, 94)
	s := newStoryWith(t, ns, "../rules", storyOptions{service: fmt.Sprintf("alert_queue_dir = %q", queue)})
	fillDisk(t, filepath.Join(queue, "filler"))

	att := ns.AttIP4.String()
	attackers := []string{att, "203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"}
	for _, ip := range attackers {
		s.sshFailures(ip, 10)
	}
	for _, ip := range attackers {
		s.waitBan(ip, 15*time.Second)
	}
	if !nstest.Eventually(10*time.Second, s.curlTimesOut) {
		t.Fatalf("the attacker's curl still connects\nnft:\n%s", s.ruleset())
	}
	p := s.scrape("http://127.0.0.1:6060/metrics")
	if n := p.sum("rampart_delivery_persist_failures_total", nil); n < 1 {
		t.Errorf("rampart_delivery_persist_failures_total = %v with the queue's disk full, want > 0", n)
	}
}

// fillDisk writes path until its filesystem refuses with ENOSPC.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v, want ENOSPC", path, err)
	}
}

// TestHostileSourceRetry: the syslog port is held by another process when
// the agent starts. The agent keeps running, reports the source down, and
// once the port is free reads what an attacker's relay sends there. A
// configuration that can never work (two sources on one port) stops the
// daemon with an error naming the port (defect 8 of issue 12).
func TestHostileSourceRetry(t *testing.T) {
	const port = 5514
	ns := nstest.NewPublicPair(t, 95)
	var busy net.PacketConn
	must(t, nstest.In(ns.Defender, func() (err error) {
		busy, err = net.ListenPacket("udp", fmt.Sprintf("0.0.0.0:%d", port))
		return err
	}))
	defer busy.Close()
	syslogSource := "\n[[source]]\nsource = \"syslog\"\nlisten_addr = \"0.0.0.0\"\nlisten_port = %d\nlabels = { type = \"syslog\" }\n"
	s := newStoryWith(t, ns, "../rules", storyOptions{acquis: fmt.Sprintf(syslogSource, port)})

	t.Run("port taken at start", func(t *testing.T) {
		src := map[string]string{"source": fmt.Sprintf("syslog:udp/0.0.0.0:%d", port), "type": "syslog"}
		// up is the source's rampart_acquisition_source_up and retries.
		up := func() (float64, float64) {
			p := s.scrape("http://127.0.0.1:6060/metrics")
			return p.sum("rampart_acquisition_source_up", src), p.sum("rampart_acquisition_source_retries_total", src)
		}
		if !nstest.Eventually(10*time.Second, func() bool { v, retries := up(); return v == 0 && retries >= 1 }) {
			t.Errorf("the syslog source is not reported down and retried while its port is taken:\n%s", s.readLog("crowdsec"))
		}
		if err := s.crowdsec.Process.Signal(syscall.Signal(0)); err != nil {
			t.Fatalf("crowdsec exited with its syslog port taken: %v\n%s", err, s.readLog("crowdsec"))
		}
		busy.Close()
		// The retries back off up to a minute, the longer the start took.
		if !nstest.Eventually(70*time.Second, func() bool { v, _ := up(); return v == 1 }) {
			t.Errorf("the syslog source is not up 70 s after its port was freed")
		}
		// A relay on the attacker's side sends its sshd lines.
		att := ns.AttIP4.String()
		err := nstest.In(ns.Attacker, func() error {
			c, err := net.Dial("udp", net.JoinHostPort(ns.DefIP4.String(), fmt.Sprint(port)))
			if err != nil {
				return err
			}
			defer c.Close()
			for i := range 10 {
				if _, err := fmt.Fprintf(c, "<38>%s relay sshd[%d]: Failed password for root from %s port %d ssh2",
					time.Now().Format(time.Stamp), 8000+i, att, 51000+i); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("sending syslog lines to port %d once it was freed: %v", port, err)
		}
		s.waitBan(att, 15*time.Second)
	})

	t.Run("two sources on one port", func(t *testing.T) {
		bad := filepath.Join(s.dir, "bad.d")
		must(t, os.MkdirAll(bad, 0o755))
		must(t, os.WriteFile(filepath.Join(bad, "bad.toml"), []byte(fmt.Sprintf(syslogSource, 5600)+fmt.Sprintf(syslogSource, 5600)), 0o600))
		conf, err := os.ReadFile(s.cfg)
		must(t, err)
		// the story's agent holds the default queue and metrics port
		badCfg := filepath.Join(s.dir, "bad-config.toml")
		must(t, os.WriteFile(badCfg, []byte(strings.Replace(string(conf), fmt.Sprintf("acquisition_dir = %q\n", filepath.Join(s.dir, "acquis.d")),
			fmt.Sprintf("acquisition_dir = %q\nalert_queue_dir = %q\n", bad, filepath.Join(s.dir, "bad-queue")), 1)+"[prometheus]\nenabled = false\n"), 0o600))
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		out, err := ns.Command(ctx, ns.Defender, filepath.Join(binDir, "crowdsec"), "-c", badCfg, "-no-api").CombinedOutput()
		var ee *exec.ExitError
		switch {
		case ctx.Err() != nil:
			t.Fatalf("crowdsec still ran after 15 s with two syslog sources on port 5600:\n%s", out)
		case !errors.As(err, &ee) || ee.ExitCode() == 0:
			t.Fatalf("crowdsec with two syslog sources on port 5600: %v, want a non-zero exit\n%s", err, out)
		case !strings.Contains(string(out), "5600") || !strings.Contains(string(out), "bad.toml"):
			t.Errorf("crowdsec's error does not name the port and the file:\n%s", out)
		}
		t.Logf("crowdsec refused to start:\n%s", out)
	})
}

var benchNet = regexp.MustCompile(`198\.18\.\d+\.\d+`)

// bannedIn counts the 198.18.0.0/15 addresses in namespace ns's ruleset.
func bannedIn(ns *nstest.Pair, name string) int {
	out, _ := ns.Command(context.Background(), name, "nft", "list", "ruleset").CombinedOutput()
	seen := map[string]bool{}
	for _, m := range benchNet.FindAllString(string(out), -1) {
		seen[m] = true
	}
	return len(seen)
}

// TestHostileSharedBouncerKey: two polling bouncer processes on two hosts
// share one API key and reach the LAPI from the same address with the same
// User-Agent; while 400 decisions arrive in 20 cscli imports, each must
// end up enforcing all 400 (defect 9 of issue 12: they shared one stream
// cursor and stole each other's deltas).
func TestHostileSharedBouncerKey(t *testing.T) {
	a := newAppliance(t, 96)
	// Polling: each pull starts from the cursor the other's last pull left.
	a.writeBouncerConfig("nftables", "long_poll = false")
	a.startBouncer()
	a.waitSynced(1)

	// The second host: its own namespaces and firewall; a proxy on its
	// loopback reaches the LAPI as the first bouncer does, from 127.0.0.1.
	other := nstest.NewPair(t, 97)
	proxy := newLAPIProxyIn(t, a.ns, other.Defender, "127.0.0.1:8080")
	conf, err := os.ReadFile(a.bouncerConfigPath())
	must(t, err)
	conf2 := filepath.Join(a.dir, "bouncer2.toml")
	must(t, os.WriteFile(conf2, []byte(strings.Replace(string(conf), a.proxy.addr, proxy.addr, 1)), 0o600))
	log2 := a.logFile("bouncer2")
	b2 := other.Command(context.Background(), other.Defender, filepath.Join(binDir, "crowdsec-firewall-bouncer"), "-c", conf2)
	b2.Stdout, b2.Stderr = log2, log2
	must(t, b2.Start())
	t.Cleanup(func() {
		_ = b2.Process.Signal(syscall.SIGTERM)
		_ = b2.Wait()
	})
	if !nstest.Eventually(15*time.Second, func() bool { return strings.Contains(a.readLogAll("bouncer2"), "first sync in the kernel") }) {
		t.Fatalf("the second bouncer never synced:\n%s", a.readLog("bouncer2"))
	}

	const batches, per = 20, 20
	for i := range batches {
		var vs strings.Builder
		for j := range per {
			fmt.Fprintf(&vs, "198.18.%d.%d\n", i, j+1)
		}
		path := filepath.Join(a.dir, fmt.Sprintf("batch%d.txt", i))
		must(t, os.WriteFile(path, []byte(vs.String()), 0o600))
		a.cscli("decisions", "import", "-i", path, "-d", "1h")
	}
	want := batches * per
	for _, h := range []struct {
		name string
		ns   *nstest.Pair
		log  string
	}{{"first", a.ns, "bouncer"}, {"second", other, "bouncer2"}} {
		if !nstest.Eventually(15*time.Second, func() bool { return bannedIn(h.ns, h.ns.Defender) == want }) {
			t.Errorf("the %s bouncer's firewall holds %d of the %d decisions\n%s", h.name, bannedIn(h.ns, h.ns.Defender), want, a.readLog(h.log))
		}
	}
}
