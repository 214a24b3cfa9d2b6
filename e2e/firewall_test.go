package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestFirewallBouncer is the seed's story on a real kernel, in both modes:
// cscli bans the attacker and its connection times out within a second.
func TestFirewallBouncer(t *testing.T) {
	for i, mode := range []string{"nftables", "iptables"} {
		t.Run(mode, func(t *testing.T) { firewallStory(t, mode, 70+i) })
	}
}

func firewallStory(t *testing.T, mode string, subnet int) {
	a := newAppliance(t, subnet)
	att4, att6 := a.ns.AttIP4, a.ns.AttIP6
	def4, def6 := a.ns.DefIP4, a.ns.DefIP6
	a.writeBouncerConfig(mode)
	a.startBouncer()
	a.waitSynced(1)
	if !a.reachable(def4) || !a.reachable(def6) {
		t.Fatalf("attacker cannot reach the service before any ban")
	}

	// ban and unban one address
	a.cscli("decisions", "add", "-i", att4.String())
	took := a.waitBlocked(def4, 2*time.Second)
	t.Logf("%s: ban effective %s after cscli returned", mode, took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("ban took %s, want within 1 s", took)
	}
	if a.reachable(def4) {
		t.Fatal("banned attacker connected (1 s timeout)")
	}
	if !a.reachable(def6) {
		t.Error("an IPv4 ban blocked IPv6 too")
	}
	switch mode {
	case "nftables":
		rs := a.ruleset()
		for _, want := range []string{"table ip crowdsec", "set crowdsec_blocklist", "type ipv4_addr",
			"chain crowdsec_chain", "type filter hook input priority filter; policy accept;", "ip saddr @crowdsec_blocklist counter packets",
			"drop", "table ip6 crowdsec6", "set crowdsec6_blocklist", "type ipv6_addr", "chain crowdsec6_chain", "ip6 saddr @crowdsec6_blocklist",
			"set crowdsec_blocklist_ranges", "flags interval,timeout", att4.String()} {
			if !strings.Contains(rs, want) {
				t.Errorf("nft list ruleset lacks %q:\n%s", want, rs)
			}
		}
		// Where an administrator looks for a banned address.
		out, _ := a.ns.Command(context.Background(), a.ns.Defender, "nft", "list", "set", "ip", "crowdsec", "crowdsec_blocklist").CombinedOutput()
		if !strings.Contains(string(out), att4.String()+" timeout") || !strings.Contains(string(out), "flags timeout") {
			t.Errorf("nft list set ip crowdsec crowdsec_blocklist does not show %s:\n%s", att4, out)
		}
	case "iptables":
		r := a.iptablesRules("iptables")
		for _, want := range []string{"-N CROWDSEC_CHAIN", "-A INPUT -j CROWDSEC_CHAIN", "--match-set crowdsec-blacklists src"} {
			if !strings.Contains(r, want) {
				t.Errorf("iptables -S lacks %q:\n%s", want, r)
			}
		}
	}
	a.cscli("decisions", "delete", "-i", att4.String())
	a.waitOpen(def4, 2*time.Second)

	// a range holding the attacker (not the defender)
	a.cscli("decisions", "add", "-r", att4.String()+"/31")
	a.waitBlocked(def4, 2*time.Second)
	if mode == "nftables" {
		r := netip.PrefixFrom(att4, 31).Masked().String()
		out, _ := a.ns.Command(context.Background(), a.ns.Defender, "nft", "list", "set", "ip", "crowdsec", "crowdsec_blocklist_ranges").CombinedOutput()
		if !strings.Contains(string(out), r) {
			t.Errorf("nft list set ip crowdsec crowdsec_blocklist_ranges does not show %s:\n%s", r, out)
		}
	}
	a.cscli("decisions", "delete", "-r", att4.String()+"/31")
	a.waitOpen(def4, 2*time.Second)

	// IPv6
	a.cscli("decisions", "add", "-i", att6.String())
	a.waitBlocked(def6, 2*time.Second)
	if !a.reachable(def4) {
		t.Error("an IPv6 ban blocked IPv4 too")
	}
	a.cscli("decisions", "delete", "-i", att6.String())
	a.waitOpen(def6, 2*time.Second)

	// The defender's own address is never banned: the LAPI refuses it,
	// --bypass-allowlist or not (the bouncer would refuse it too).
	out, err := a.ns.Command(context.Background(), a.ns.Defender, filepath.Join(binDir, "cscli"), "-c", a.cfg, "--error",
		"decisions", "add", "-i", def4.String(), "-B").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "address of this host") {
		t.Errorf("a decision on the host's own address: %v %s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	if strings.Contains(a.ruleset()+a.iptablesRules("iptables"), def4.String()+" ") {
		t.Errorf("the host's own address reached the firewall")
	}

	// Restart without a gap: probes during a restart never get through.
	a.cscli("decisions", "add", "-i", att4.String(), "-d", "1h")
	a.waitBlocked(def4, 2*time.Second)
	leaked := probeDuring(a, def4, func() {
		a.stopBouncer(syscall.SIGTERM)
		a.startBouncer()
		a.waitSynced(2)
	})
	if leaked > 0 {
		t.Errorf("%d probes got through during a restart", leaked)
	}

	// Someone flushes the firewall: the bouncer restores it within 1 s.
	switch mode {
	case "nftables":
		a.ns.Run(t, a.ns.Defender, "nft", "flush", "ruleset")
	case "iptables":
		a.ns.Run(t, a.ns.Defender, "iptables", "-F", "CROWDSEC_CHAIN")
	}
	start := time.Now()
	a.waitBlocked(def4, 3*time.Second)
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("repair took %s, want about 1 s", d)
	}

	// kill -9, then restart: no duplicated rules, still enforced.
	a.killBouncer()
	if a.reachable(def4) {
		t.Error("a killed bouncer opened the firewall")
	}
	a.startBouncer()
	a.waitSynced(3)
	switch mode {
	case "nftables":
		rs := a.ruleset()
		for _, set := range []string{"@crowdsec_blocklist ", "@crowdsec_blocklist_ranges "} {
			if n := strings.Count(rs, set); n != 1 {
				t.Errorf("%d rules on %s after kill -9 and restart, want 1:\n%s", n, set, rs)
			}
		}
	case "iptables":
		if n := strings.Count(a.iptablesRules("iptables"), "-j CROWDSEC_CHAIN"); n != 1 {
			t.Errorf("%d jumps after kill -9 and restart, want 1:\n%s", n, a.iptablesRules("iptables"))
		}
	}

	// LAPI trouble never empties the firewall, and the bouncer catches up.
	for _, trouble := range []string{"hang", "500", "down"} {
		if trouble == "down" {
			a.stopLAPI()
		} else {
			a.proxy.set(trouble)
		}
		time.Sleep(2 * time.Second)
		if a.reachable(def4) {
			t.Errorf("LAPI %s: the ban was lifted", trouble)
		}
		if trouble == "down" {
			a.startLAPI()
		} else {
			a.proxy.set("")
		}
		a.cscli("decisions", "add", "-i", att6.String())
		a.waitBlocked(def6, 40*time.Second)
		a.cscli("decisions", "delete", "-i", att6.String())
		a.waitOpen(def6, 40*time.Second)
	}
}

// probeDuring connects from the attacker in a loop while fn runs and
// returns how many connections succeeded.
func probeDuring(a *appliance, ip fmt.Stringer, fn func()) int {
	var leaked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if a.ns.Dial(a.ns.Attacker, a.target(ip), 100*time.Millisecond) == nil {
				leaked.Add(1)
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	return int(leaked.Load())
}

// TestModeSwitch changes mode in the TOML and restarts: the other mode's
// objects go away and enforcement continues.
func TestModeSwitch(t *testing.T) {
	a := newAppliance(t, 72)
	a.writeBouncerConfig("nftables")
	a.startBouncer()
	a.waitSynced(1)
	a.cscli("decisions", "add", "-i", a.ns.AttIP4.String())
	a.waitBlocked(a.ns.DefIP4, 2*time.Second)

	a.stopBouncer(syscall.SIGTERM)
	a.writeBouncerConfig("iptables")
	a.startBouncer()
	a.waitSynced(2)
	if strings.Contains(a.ruleset(), "table ip crowdsec") {
		t.Errorf("nftables tables left after switching to iptables:\n%s", a.ruleset())
	}
	if !strings.Contains(a.iptablesRules("iptables"), "CROWDSEC_CHAIN") {
		t.Errorf("no iptables chain after switching:\n%s", a.iptablesRules("iptables"))
	}
	a.waitBlocked(a.ns.DefIP4, 2*time.Second)

	a.stopBouncer(syscall.SIGTERM)
	a.writeBouncerConfig("nftables")
	a.startBouncer()
	a.waitSynced(3)
	if strings.Contains(a.iptablesRules("iptables"), "CROWDSEC_CHAIN") {
		t.Errorf("iptables chain left after switching back:\n%s", a.iptablesRules("iptables"))
	}
	a.waitBlocked(a.ns.DefIP4, 2*time.Second)

	// ipset mode: only the sets, filled; none of our rules anywhere.
	a.stopBouncer(syscall.SIGTERM)
	a.writeBouncerConfig("ipset")
	a.startBouncer()
	a.waitSynced(4)
	if strings.Contains(a.ruleset(), "table ip crowdsec") || strings.Contains(a.iptablesRules("iptables"), "CROWDSEC_CHAIN") {
		t.Errorf("ipset mode left rules:\n%s\n%s", a.ruleset(), a.iptablesRules("iptables"))
	}
	if out := a.ns.Run(t, a.ns.Defender, "ipset", "list", "crowdsec-blacklists"); !strings.Contains(out, a.ns.AttIP4.String()) {
		t.Errorf("ipset mode did not fill the set:\n%s", out)
	}

	a.stopBouncer(syscall.SIGTERM)
	a.writeBouncerConfig("nftables")

	// -flush removes everything Rampart created; -t never touches the firewall.
	a.stopBouncer(syscall.SIGTERM)
	stable := regexp.MustCompile(`expires \S+`)
	before := stable.ReplaceAllString(a.ruleset(), "")
	a.ns.Run(t, a.ns.Defender, binDir+"/crowdsec-firewall-bouncer", "-c", a.bouncerConfigPath(), "-t")
	if after := stable.ReplaceAllString(a.ruleset(), ""); after != before {
		t.Errorf("-t changed the firewall:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	a.ns.Run(t, a.ns.Defender, binDir+"/crowdsec-firewall-bouncer", "-c", a.bouncerConfigPath(), "-flush")
	if strings.Contains(a.ruleset(), "crowdsec") || strings.Contains(a.iptablesRules("iptables"), "CROWDSEC") {
		t.Errorf("-flush left objects:\n%s\n%s", a.ruleset(), a.iptablesRules("iptables"))
	}
	if out, _ := a.ns.Command(context.Background(), a.ns.Defender, "ipset", "list", "-n").CombinedOutput(); strings.Contains(string(out), "crowdsec") {
		t.Errorf("-flush left ipsets: %s", out)
	}
	a.waitOpen(a.ns.DefIP4, 2*time.Second)
}

// TestReadyAfterFirstSync checks sd_notify READY=1 is sent only once the
// first sync is in the kernel.
func TestReadyAfterFirstSync(t *testing.T) {
	a := newAppliance(t, 73)
	a.cscli("decisions", "add", "-i", a.ns.AttIP4.String())
	sock := filepath.Join(t.TempDir(), "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a.writeBouncerConfig("nftables")
	a.bouncerEnv = []string{"NOTIFY_SOCKET=" + sock}
	a.startBouncer()
	buf := make([]byte, 256)
	_ = ln.SetReadDeadline(time.Now().Add(15 * time.Second))
	n, _, err := ln.ReadFromUnix(buf)
	if err != nil {
		t.Fatalf("no sd_notify message: %v\n%s", err, a.readLog("bouncer"))
	}
	if !strings.Contains(string(buf[:n]), "READY=1") {
		t.Fatalf("unexpected notify message %q", buf[:n])
	}
	if rs := a.ruleset(); !strings.Contains(rs, a.ns.AttIP4.String()) {
		t.Errorf("READY=1 sent before the ban was in the kernel:\n%s", rs)
	}
}
