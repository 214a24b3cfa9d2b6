package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Packages of the booted Debian 12 root. openssh-server and nginx are only
// downloaded (into apt's cache): the first phase has no service to detect,
// later phases install them offline, as the container has no route out.
var (
	nspawnInclude  = []string{"systemd", "systemd-sysv", "dbus", "nftables", "iptables", "ipset", "iproute2"}
	nspawnDownload = []string{"openssh-server", "nginx"}
)

// Addresses inside the two namespaces this test creates (TEST-NET-2).
const (
	boxIP   = "198.51.100.1"
	sshAtk  = "198.51.100.2" // brute-forces sshd
	httpAtk = "198.51.100.3" // scans nginx
)

// TestBootedDebian12 installs both packages with apt into a Debian 12 root
// booted under systemd (systemd-nspawn -b) and checks, with the real units
// and their hardening: both services run after install with no service
// detected and with sshd; an ssh brute force logged only to journald and
// an nginx scan read from its files end in bans that drop the attacker's
// packets; restarts let no banned packet through; the iptables mode
// switch; an upgrade keeps bans, keys and edits; remove and purge leave
// nothing. The container has its own network namespace, joined by a veth
// to an attacker namespace: the host's firewall is never touched.
func TestBootedDebian12(t *testing.T) {
	needDpkgDeb(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root (debootstrap, systemd-nspawn, network namespaces)")
	}
	for _, tool := range []string{"debootstrap", "systemd-nspawn", "nsenter", "ip", "tar", "ssh", "curl", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (CI installs it: .ci/run)", tool)
		}
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("the Debian root is amd64")
	}
	start := time.Now()
	bin := binaries(t)
	var debs [2][2]string // version, then crowdsec and the bouncer
	for i, v := range []string{"0.1.0", "0.1.1"} {
		paths, err := Build(Options{Root: repoRoot, UnitDir: unitDir(t), BinDir: bin, OutDir: t.TempDir(), Version: v,
			Arch: runtime.GOARCH, MTime: time.Unix(1764107165, 0)})
		must(t, err)
		debs[i] = [2]string{paths[0], paths[1]}
	}
	root := debianRoot(t)
	t.Logf("root ready after %s", time.Since(start).Round(time.Second))
	// A timeout panics without cleanup, leaving the container running:
	// better to stop here (the root is cached for the next run).
	if dl, ok := t.Deadline(); ok && time.Until(dl) < 6*time.Minute {
		t.Skipf("only %s left before the test timeout: the booted install needs about 4 minutes", time.Until(dl).Round(time.Second))
	}
	for i, v := range []string{"0.1.0", "0.1.1"} {
		must(t, os.MkdirAll(filepath.Join(root, "root/debs", v), 0o755))
		for _, p := range debs[i] {
			data, err := os.ReadFile(p)
			must(t, err)
			must(t, os.WriteFile(filepath.Join(root, "root/debs", v, filepath.Base(p)), data, 0o644))
		}
	}

	b := bootContainer(t, root)
	t.Logf("booted after %s", time.Since(start).Round(time.Second))
	path := func(p string) string { return filepath.Join(root, p) }

	// 1. No service to detect: both run anyway (the LAPI serves the
	// bouncer without local logs).
	out := b.must("sh", "-c", "cd /root/debs/0.1.0 && apt-get install -y -q --no-install-recommends ./crowdsec_*.deb ./crowdsec-firewall-bouncer_*.deb")
	if !strings.Contains(out, "No supported service detected") || !strings.Contains(out, "no log source") {
		t.Errorf("install on a host without services did not say what it found:\n%s", out)
	}
	b.active("after install with no service detected", "crowdsec", "crowdsec-firewall-bouncer")
	if j := b.must("journalctl", "-u", "crowdsec", "--no-pager"); !strings.Contains(j, "no log source") {
		t.Errorf("crowdsec did not say it reads nothing:\n%s", tail([]byte(j)))
	}
	if tables := b.must("nft", "list", "tables"); !strings.Contains(tables, "table ip crowdsec") {
		t.Errorf("bouncer tables after install: %q", tables)
	}
	b.must("cscli", "decisions", "add", "-i", "203.0.113.50", "-d", "4h", "-R", "manual")
	b.waitFor("a manual decision in the kernel", func() bool {
		return strings.Contains(b.out("nft", "list", "set", "ip", "crowdsec", "crowdsec_blocklist")+b.out("nft", "list", "ruleset"), "203.0.113.50")
	})

	// 2. sshd, which on Debian 12 logs only to journald.
	b.must("apt-get", "install", "-y", "-q", "--no-install-recommends", "--no-download", "openssh-server")
	if _, err := os.Stat(path("var/log/auth.log")); err == nil {
		t.Fatal("the root has /var/log/auth.log: sshd would not be journald-only")
	}
	if out := b.must("cscli", "setup"); !strings.Contains(out, "journal") {
		t.Errorf("cscli setup did not choose the journal for sshd:\n%s", out)
	}
	b.must("systemctl", "restart", "crowdsec")
	b.active("with sshd detected", "crowdsec", "crowdsec-firewall-bouncer")
	for i := range 10 {
		// An invalid user with no password offered: sshd logs "Invalid
		// user" and closes.
		_ = b.atk(sshAtk, "timeout", "5", "ssh", "-b", sshAtk, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=0",
			fmt.Sprintf("nobody%d@%s", i, boxIP), "true").Run()
	}
	b.waitFor("a ban of the ssh attacker", func() bool { return b.banned(sshAtk) })
	b.waitFor("the ssh attacker's packets dropped", func() bool { return !b.reach(sshAtk, 22) })

	// 3. nginx, read from its files, after a collection install and a
	// reload.
	b.must("apt-get", "install", "-y", "-q", "--no-install-recommends", "--no-download", "nginx")
	if out := b.must("cscli", "setup"); !strings.Contains(out, "/var/log/nginx") {
		t.Errorf("cscli setup did not find nginx's files:\n%s", out)
	}
	b.must("cscli", "collections", "install", "rampart/nginx")
	// A reload, not a restart: the same process loads the new set. The
	// ExecReload returns once the configuration is checked and the signal
	// sent; the unit shows "reloading" until the daemon's READY=1.
	pid := b.out("systemctl", "show", "-p", "MainPID", "--value", "crowdsec")
	b.must("systemctl", "reload", "crowdsec")
	b.waitFor("crowdsec to finish its reload", func() bool {
		return b.out("systemctl", "is-active", "crowdsec") == "active" &&
			strings.Contains(b.out("journalctl", "-u", "crowdsec", "--no-pager"), "configuration reloaded")
	})
	if now := b.out("systemctl", "show", "-p", "MainPID", "--value", "crowdsec"); now != pid {
		t.Errorf("crowdsec's main PID went from %s to %s on reload: restarted, not reloaded", pid, now)
	}
	b.active("after the nginx collection", "crowdsec")
	b.waitFor("nginx answering the scanner", func() bool { return b.reach(httpAtk, 80) })
	for i := 0; i < 60 && (i%10 != 9 || !b.banned(httpAtk)); i++ {
		_ = b.atk(httpAtk, "curl", "-s", "-o", "/dev/null", "--max-time", "3", "--interface", httpAtk,
			fmt.Sprintf("http://%s/.scan-%d/admin.php", boxIP, i)).Run()
	}
	b.waitFor("a ban of the web scanner", func() bool { return b.banned(httpAtk) })
	b.waitFor("the web scanner's packets dropped", func() bool { return !b.reach(httpAtk, 80) })

	// 4. Restarts: a banned source probes all along; nothing gets through.
	for _, unit := range []string{"crowdsec-firewall-bouncer", "crowdsec"} {
		if n := b.probeDuring(sshAtk, 22, func() { b.must("systemctl", "restart", unit) }); n != 0 {
			t.Errorf("%d connections from a banned source got through during systemctl restart %s", n, unit)
		}
		b.active("after restart of "+unit, unit)
	}

	// 5. Mode switch to iptables and back, bans enforced in each mode.
	btoml := "/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.toml"
	setMode := func(mode string) {
		t.Helper()
		data, err := os.ReadFile(path(btoml))
		must(t, err)
		var lines []string
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "mode = ") {
				l = `mode = "` + mode + `"`
			}
			lines = append(lines, l)
		}
		must(t, os.WriteFile(path(btoml), []byte(strings.Join(lines, "\n")), 0o600))
		b.must("systemctl", "restart", "crowdsec-firewall-bouncer")
		b.active("in mode "+mode, "crowdsec-firewall-bouncer")
	}
	setMode("iptables")
	b.waitFor("iptables rules of the bouncer", func() bool { return strings.Contains(b.out("iptables-save"), "crowdsec") })
	if b.reach(sshAtk, 22) {
		t.Error("banned source reaches sshd in iptables mode")
	}
	setMode("nftables")
	if b.reach(sshAtk, 22) {
		t.Error("banned source reaches sshd back in nftables mode")
	}

	// 6. Upgrade: bans, keys and the administrator's edits kept.
	key := bouncerAPIKey(t, path(btoml))
	f, err := os.OpenFile(path("/etc/crowdsec/config.toml"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString("# edited by the administrator\n")
	must(t, err)
	f.Close()
	b.must("sh", "-c", "cd /root/debs/0.1.1 && apt-get install -y -q -o Dpkg::Options::=--force-confold ./crowdsec_*.deb ./crowdsec-firewall-bouncer_*.deb")
	if v := b.out("dpkg-query", "-W", "-f", "${Version}", "crowdsec"); v != "0.1.1" {
		t.Errorf("version after upgrade %q", v)
	}
	b.active("after upgrade", "crowdsec", "crowdsec-firewall-bouncer")
	if data, _ := os.ReadFile(path("/etc/crowdsec/config.toml")); !strings.Contains(string(data), "# edited by the administrator") {
		t.Error("upgrade lost the administrator's edit")
	}
	if bouncerAPIKey(t, path(btoml)) != key {
		t.Error("upgrade changed the bouncer key")
	}
	for _, ip := range []string{sshAtk, httpAtk, "203.0.113.50"} {
		if !b.banned(ip) {
			t.Errorf("upgrade lost the ban of %s", ip)
		}
	}
	if b.reach(sshAtk, 22) {
		t.Error("banned source reaches sshd after the upgrade")
	}

	// 7. Remove keeps the configuration and flushes the firewall; purge
	// leaves nothing.
	b.must("apt-get", "remove", "-y", "-q", "crowdsec-firewall-bouncer", "crowdsec")
	if _, err := os.Stat(path("/etc/crowdsec/config.toml")); err != nil {
		t.Errorf("remove deleted the configuration: %v", err)
	}
	b.must("apt-get", "purge", "-y", "-q", "crowdsec-firewall-bouncer", "crowdsec")
	for _, p := range []string{"/etc/crowdsec", "/var/lib/crowdsec", "/usr/bin/crowdsec", "/lib/systemd/system/crowdsec.service",
		"/etc/systemd/system/multi-user.target.wants/crowdsec.service", "/var/log/crowdsec.log"} {
		if _, err := os.Stat(path(p)); err == nil {
			t.Errorf("%s left after purge", p)
		}
	}
	// iptables-nft's own "ip filter" table (made by the iptables mode,
	// empty now) is the host's, not the bouncer's: it is left in place.
	if s := b.out("nft", "list", "ruleset"); strings.Contains(strings.ToLower(s), "crowdsec") {
		t.Errorf("nftables objects left after purge:\n%s", s)
	}
	if s := b.out("iptables-save"); strings.Contains(strings.ToLower(s), "crowdsec") {
		t.Errorf("iptables rules left after purge:\n%s", s)
	}
	if s := strings.TrimSpace(b.out("ipset", "list", "-n")); s != "" {
		t.Errorf("ipsets left after purge: %s", s)
	}
	if !b.reach(sshAtk, 22) {
		t.Error("the former attacker is still blocked after purge")
	}
	t.Logf("done after %s", time.Since(start).Round(time.Second))
}

// debianRoot unpacks a Debian 12 root with nspawnInclude installed and
// nspawnDownload in apt's cache. The first run makes it with debootstrap
// and keeps it as a tarball under build/, named by its package list.
func debianRoot(t *testing.T) string {
	t.Helper()
	sum := sha256.Sum256([]byte(strings.Join(nspawnInclude, ",") + "|" + strings.Join(nspawnDownload, ",")))
	cache := filepath.Join(repoRoot, "build", "nspawn", "bookworm-"+hex.EncodeToString(sum[:6])+".tar")
	root := filepath.Join(t.TempDir(), "bookworm")
	must(t, os.MkdirAll(root, 0o755))
	if _, err := os.Stat(cache); err != nil {
		made := time.Now()
		stage := filepath.Join(t.TempDir(), "stage")
		if out, err := exec.Command("debootstrap", "--variant=minbase", "--include="+strings.Join(nspawnInclude, ","),
			"bookworm", stage, "http://deb.debian.org/debian").CombinedOutput(); err != nil {
			t.Skipf("debootstrap (needs the Debian mirror): %v\n%s", err, tail(out))
		}
		resolv, _ := os.ReadFile("/etc/resolv.conf")
		must(t, os.WriteFile(filepath.Join(stage, "etc/resolv.conf"), resolv, 0o644))
		// debootstrap's own downloads are installed already: only the
		// packages the test installs later stay in apt's cache.
		_ = exec.Command("chroot", stage, "apt-get", "clean").Run()
		aptArgs := append([]string{stage, "apt-get", "install", "-y", "-qq", "--download-only", "--no-install-recommends"}, nspawnDownload...)
		if out, err := exec.Command("chroot", aptArgs...).CombinedOutput(); err != nil {
			t.Skipf("apt-get --download-only in the root (needs the Debian mirror): %v\n%s", err, tail(out))
		}
		must(t, os.MkdirAll(filepath.Dir(cache), 0o755))
		if out, err := exec.Command("tar", "-C", stage, "-cf", cache+".part", ".").CombinedOutput(); err != nil {
			t.Fatalf("tar: %v\n%s", err, out)
		}
		must(t, os.Rename(cache+".part", cache))
		t.Logf("made the Debian 12 root in %s (kept in %s)", time.Since(made).Round(time.Second), cache)
	}
	if out, err := exec.Command("tar", "-C", root, "-xf", cache).CombinedOutput(); err != nil {
		t.Fatalf("tar -x %s: %v\n%s", cache, err, out)
	}
	return root
}

// booted is a Debian root running under systemd-nspawn -b.
type booted struct {
	t        *testing.T
	pid1     int    // the container's systemd, seen from here
	attacker string // network namespace of both attackers
}

// bootContainer boots root in a network namespace of its own, with a veth
// to an attacker namespace, and stops both at the end of the test. This
// host's PID 1 need not be systemd: --register=no and --keep-unit keep
// nspawn away from machined and the host's systemd.
func bootContainer(t *testing.T, root string) *booted {
	t.Helper()
	sweepStale()
	id := strconv.Itoa(os.Getpid())
	box, atk := "rnsb"+id, "rnsa"+id
	for _, ns := range []string{box, atk} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v\n%s", ns, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	for _, args := range [][]string{
		{"link", "add", "veth-" + id, "netns", atk, "type", "veth", "peer", "name", "eth0", "netns", box},
		{"-n", box, "addr", "add", boxIP + "/24", "dev", "eth0"},
		{"-n", atk, "addr", "add", sshAtk + "/24", "dev", "veth-" + id},
		{"-n", atk, "addr", "add", httpAtk + "/24", "dev", "veth-" + id},
		{"-n", box, "link", "set", "eth0", "up"},
		{"-n", atk, "link", "set", "veth-" + id, "up"},
		{"-n", atk, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The container brings its own lo up; CAP_NET_ADMIN is not granted by
	// --network-namespace-path alone, and the bouncer needs it there.
	logPath := filepath.Join(t.TempDir(), "console.log")
	logf, err := os.Create(logPath)
	must(t, err)
	cmd := exec.Command("systemd-nspawn", "-D", root, "-b", "--register=no", "--keep-unit", "-M", "rampart-"+id,
		"--network-namespace-path=/run/netns/"+box, "--capability=CAP_NET_ADMIN")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Skipf("systemd-nspawn: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		// SIGTERM asks the container to power off; SIGKILL if it hangs.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("container console:\n%s", tail(data))
		}
	})
	b := &booted{t: t, attacker: atk}
	deadline := time.Now().Add(90 * time.Second)
	for b.pid1 == 0 {
		select {
		case <-exited:
			data, _ := os.ReadFile(logPath)
			t.Skipf("systemd-nspawn -b cannot boot here:\n%s", tail(data))
		default:
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(logPath)
			t.Fatalf("no systemd in the container after 90s:\n%s", tail(data))
		}
		b.pid1 = containerInit(cmd.Process.Pid)
		time.Sleep(100 * time.Millisecond)
	}
	// Until the new systemd listens on its socket, systemctl cannot
	// connect; then --wait returns once the boot is done.
	for {
		out, err := b.in("systemctl", "is-system-running", "--wait").CombinedOutput()
		state := strings.TrimSpace(string(out))
		if err == nil || state == "degraded" {
			if state != "running" {
				t.Logf("container state %q: %s", state, b.out("systemctl", "--failed", "--no-pager"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container not booted after 90s: %v %s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return b
}

// sweepStale stops the containers and deletes the namespaces that a run
// killed by its timeout (a panic runs no Cleanup) left: those named after
// a test process that no longer exists.
func sweepStale() {
	gone := func(id string) bool {
		_, err := os.Stat("/proc/" + id)
		return err != nil
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, _ := os.ReadFile(p)
		args := strings.Split(string(data), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "systemd-nspawn" {
			continue
		}
		for _, a := range args {
			if id, ok := strings.CutPrefix(a, "--network-namespace-path=/run/netns/rnsb"); ok && gone(id) {
				if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
					_ = syscall.Kill(pid, syscall.SIGTERM) // the container powers off
				}
			}
		}
	}
	nss, _ := filepath.Glob("/run/netns/rns[ab]*")
	for _, ns := range nss {
		if gone(filepath.Base(ns)[4:]) {
			_ = exec.Command("ip", "netns", "del", filepath.Base(ns)).Run()
		}
	}
}

// containerInit is the pid of the process named systemd below nspawn.
func containerInit(nspawn int) int {
	children := func(pid int) []int {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		var pids []int
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return pids
	}
	queue := children(nspawn)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "systemd" {
			return pid
		}
		queue = append(queue, children(pid)...)
	}
	return 0
}

// in is a command in the container's namespaces (mount, pid, network...),
// as root of the container.
func (b *booted) in(args ...string) *exec.Cmd {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(b.pid1), "-a", "--"}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LANG=C", "HOME=/root"}
	return cmd
}

func (b *booted) out(args ...string) string {
	out, _ := b.in(args...).Output()
	return strings.TrimSpace(string(out))
}

func (b *booted) must(args ...string) string {
	b.t.Helper()
	out, err := b.in(args...).CombinedOutput()
	if err != nil {
		b.t.Fatalf("in the container: %s: %v\n%s", strings.Join(args, " "), err, tail(out))
	}
	return string(out)
}

// atk is a command in the attacker namespace.
func (b *booted) atk(src string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", b.attacker}, args...)...)
}

// active fails the test unless every unit is active, with its journal.
func (b *booted) active(when string, units ...string) {
	b.t.Helper()
	for _, u := range units {
		if s := b.out("systemctl", "is-active", u); s != "active" {
			b.t.Errorf("%s: %s is %q\n%s", when, u, s, b.out("journalctl", "-u", u, "-n", "30", "--no-pager"))
		}
	}
}

// banned says whether the LAPI holds an active decision on ip.
func (b *booted) banned(ip string) bool {
	var alerts []struct {
		Decisions []struct {
			Value string `json:"value"`
		} `json:"decisions"`
	}
	if err := json.Unmarshal([]byte(b.out("cscli", "decisions", "list", "-o", "json")), &alerts); err != nil {
		return false
	}
	for _, a := range alerts {
		for _, d := range a.Decisions {
			if d.Value == ip {
				return true
			}
		}
	}
	return false
}

// reach says whether a TCP connection from src to the container's port
// opens (a dropped SYN times out after a second).
func (b *booted) reach(src string, port int) bool {
	script := fmt.Sprintf(`exec python3 -c 'import socket,sys
s=socket.socket(); s.settimeout(1); s.bind(("%s",0))
try: s.connect(("%s",%d))
except OSError: sys.exit(1)'`, src, boxIP, port)
	return b.atk(src, "sh", "-c", script).Run() == nil
}

// probeDuring connects from src to port again and again while fn runs and
// returns how many connections opened.
func (b *booted) probeDuring(src string, port int, fn func()) int {
	var opened atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if b.reach(src, port) {
				opened.Add(1)
			}
		}
	})
	fn()
	close(stop)
	wg.Wait()
	return int(opened.Load())
}

// waitFor polls cond for up to two minutes (a state, not a duration, is
// what the test asserts).
func (b *booted) waitFor(what string, cond func() bool) {
	b.t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.t.Fatalf("still waiting for %s after 2 minutes\ncrowdsec:\n%s\nbouncer:\n%s", what,
				b.out("journalctl", "-u", "crowdsec", "-n", "40", "--no-pager"),
				b.out("journalctl", "-u", "crowdsec-firewall-bouncer", "-n", "20", "--no-pager"))
		}
	}
}

func bouncerAPIKey(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "api_key = "); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}
