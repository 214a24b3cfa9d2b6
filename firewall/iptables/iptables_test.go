package iptables

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/firewall"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func both() Config { return Config{Mode: ModeIPTables, IPv4: true, IPv6: true} }

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"mode", Config{Mode: "nft", IPv4: true}, "mode"},
		{"no family", Config{Mode: ModeIPTables}, "both IPv4 and IPv6 are disabled"},
		{"action", Config{Mode: ModeIPTables, IPv4: true, DenyAction: "LOG"}, "invalid deny action"},
		{"set name", Config{Mode: ModeIPSet, IPv4: true, SetV4: strings.Repeat("x", 32)}, "at most 31"},
		{"same sets", Config{Mode: ModeIPSet, IPv4: true, IPv6: true, SetV4: "a", SetV6: "a"}, "both named"},
		{"prefix", Config{Mode: ModeIPTables, IPv4: true, DenyLog: true, DenyLogPrefix: strings.Repeat("p", 30)}, "longer than 29"},
		{"chain", Config{Mode: ModeIPTables, IPv4: true, Chains: []string{"CROWDSEC_CHAIN"}}, "invalid chain"},
		{"size", Config{Mode: ModeIPTables, IPv4: true, SetSize: -1}, "set size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%+v) = %v, want error containing %q", tc.cfg, err, tc.want)
			}
		})
	}
	cfg, err := normalize(Config{Mode: "IPTables", IPv4: true, DenyAction: "reject"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != ModeIPTables || cfg.DenyAction != "REJECT" || cfg.SetV4 != DefaultSetV4 || cfg.SetV6 != DefaultSetV6 ||
		cfg.SetSize != DefaultSetSize || cfg.DenyLogPrefix != DefaultLogPrefix || !slices.Equal(cfg.Chains, []string{"INPUT"}) {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestSeconds(t *testing.T) {
	b := &Backend{log: testLogger(t)}
	for _, tc := range []struct {
		d    time.Duration
		want uint32
	}{
		{time.Nanosecond, 1}, {time.Second, 1}, {1500 * time.Millisecond, 2}, {time.Hour, 3600},
		{MaxTimeout, 2147483}, {1000 * time.Hour, 2147483},
	} {
		if got := b.seconds(tc.d); got != tc.want {
			t.Errorf("seconds(%s) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestToKey(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fam  firewall.Family
		want string
	}{
		{"192.0.2.7/32", firewall.IPv4, "192.0.2.7/32"},
		{"192.0.2.7/24", firewall.IPv4, "192.0.2.0/24"},
		{"::ffff:192.0.2.7/128", firewall.IPv4, "192.0.2.7/32"},
		{"::ffff:192.0.2.7/120", firewall.IPv4, "192.0.2.0/24"},
		{"2001:db8::1/48", firewall.IPv6, "2001:db8::/48"},
	} {
		k, fam, ok := toKey(netip.MustParsePrefix(tc.in))
		if !ok || fam != tc.fam || k.prefix(fam).String() != tc.want {
			t.Errorf("toKey(%s) = %v %v %v, want %s", tc.in, k.prefix(fam), fam, ok, tc.want)
		}
	}
	if _, _, ok := toKey(netip.Prefix{}); ok {
		t.Error("zero prefix accepted")
	}
}

func TestParseCounters(t *testing.T) {
	p, b, ok := parseCounters("-A CROWDSEC_CHAIN -m set --match-set crowdsec-blacklists src -c 12 720 -j DROP")
	if !ok || p != 12 || b != 720 {
		t.Fatalf("got %d %d %v", p, b, ok)
	}
	if !isJump("INPUT", "-A INPUT -c 7 420 -j CROWDSEC_CHAIN") || isJump("INPUT", "-A INPUT -s 1.2.3.4/32 -c 7 420 -j CROWDSEC_CHAIN") {
		t.Error("isJump")
	}
	if _, _, ok := parseCounters("-A CROWDSEC_CHAIN -j DROP"); ok {
		t.Fatal("counters found where there are none")
	}
}

func TestLayout(t *testing.T) {
	n := newNS(t)
	b := newBackend(t, n, both())
	ensure(t, b)
	for _, c := range []struct{ bin, set, family string }{
		{"iptables", DefaultSetV4, "inet"}, {"ip6tables", DefaultSetV6, "inet6"},
	} {
		rules := rulesOf(t, n, c.bin)
		want := []string{
			"-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT", "-N CROWDSEC_CHAIN",
			"-A INPUT -j CROWDSEC_CHAIN",
			"-A CROWDSEC_CHAIN -m set --match-set " + c.set + " src -j DROP",
		}
		if !slices.Equal(rules, want) {
			t.Errorf("%s -S:\n%s\nwant:\n%s", c.bin, strings.Join(rules, "\n"), strings.Join(want, "\n"))
		}
		if got := headerField(t, n, c.set, "Type"); got != "hash:net" {
			t.Errorf("%s type %q", c.set, got)
		}
		h := headerField(t, n, c.set, "Header")
		if !strings.Contains(h, "family "+c.family+" ") || !strings.Contains(h, "timeout 300") || !strings.Contains(h, "maxelem 131072") {
			t.Errorf("%s header %q", c.set, h)
		}
		if got := headerField(t, n, c.set, "References"); got != "1" {
			t.Errorf("%s references %s", c.set, got)
		}
	}
	if b.Name() != "iptables" {
		t.Errorf("Name() = %q", b.Name())
	}
	if !intact(t, b) {
		t.Error("not intact after Ensure")
	}
}

// Repeated Ensure, and a new process adopting what a killed one left
// (upstream B9/B10): nothing is duplicated, nothing is recreated.
func TestEnsureIdempotentAndAdopts(t *testing.T) {
	n := newNS(t)
	b := newBackend(t, n, both())
	for range 3 {
		ensure(t, b)
	}
	apply(t, b, []firewall.Element{el("192.0.2.7/32", time.Hour), el("2001:db8::7/128", time.Hour)})

	// A leftover duplicate jump and a foreign rule in our chain.
	run(t, n.name, "iptables", "-A", "INPUT", "-j", "CROWDSEC_CHAIN")
	run(t, n.name, "iptables", "-I", "CROWDSEC_CHAIN", "-j", "ACCEPT")
	if intact(t, b) {
		t.Error("intact with a foreign rule in CROWDSEC_CHAIN")
	}

	b.Close() // the "kill -9": kernel objects stay
	b2 := newBackend(t, n, both())
	ensure(t, b2)
	ensure(t, b2)
	for _, c := range []struct{ bin, set string }{{"iptables", DefaultSetV4}, {"ip6tables", DefaultSetV6}} {
		rules := rulesOf(t, n, c.bin)
		if got := count(rules, "-A INPUT -j CROWDSEC_CHAIN"); got != 1 {
			t.Errorf("%s: %d jumps", c.bin, got)
		}
		if got := count(rules, "-A CROWDSEC_CHAIN -m set --match-set "+c.set+" src -j DROP"); got != 1 || len(ruleLines(rules)) != 2 {
			t.Errorf("%s: rules\n%s", c.bin, strings.Join(rules, "\n"))
		}
	}
	if _, ok := members(t, n, DefaultSetV4)["192.0.2.7"]; !ok {
		t.Error("adopted v4 set lost its element")
	}
	if _, ok := members(t, n, DefaultSetV6)["2001:db8::7"]; !ok {
		t.Error("adopted v6 set lost its element")
	}
	if !intact(t, b2) {
		t.Error("not intact after adopting")
	}
}

func TestPackets(t *testing.T) {
	p := newPair(t)
	cfg := both()
	cfg.SetSize = 1024
	b := newBackend(t, p.def, cfg)
	ensure(t, b)
	ctx := context.Background()

	mustBlock := func(addr, why string) {
		t.Helper()
		start := time.Now()
		err := p.dial(addr)
		var ne interface{ Timeout() bool }
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("%s: dial %s = %v after %s, want a timeout", why, addr, err, time.Since(start))
		}
	}
	mustPass := func(addr, why string) {
		t.Helper()
		if err := p.dial(addr); err != nil {
			t.Fatalf("%s: dial %s: %v", why, addr, err)
		}
	}

	// Processed traffic: every packet that enters CROWDSEC_CHAIN, dropped
	// or not; a TCP connect sends at least the SYN, ACK and FIN.
	_, p0, err := b.TrafficCounters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const connects = 5
	for i := 0; i < connects; i++ {
		mustPass(defV4, "counting processed packets")
	}
	_, p1, err := b.TrafficCounters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := p1[firewall.IPv4].Packets - p0[firewall.IPv4].Packets; d < 3*connects || d > 4*connects ||
		p1[firewall.IPv4].Bytes-p0[firewall.IPv4].Bytes < 3*connects*40 {
		t.Errorf("processed after %d connects: %+v then %+v", connects, p0, p1)
	}

	apply(t, b, []firewall.Element{el(attV4+"/32", time.Hour)})
	mustBlock(defV4, "after banning the attacker's /32")
	mustPass(defV6, "v6 is not banned")
	c, err := b.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c[firewall.IPv4].Packets == 0 || c[firewall.IPv4].Bytes == 0 || c[firewall.IPv6].Packets != 0 {
		t.Errorf("counters after v4 drops: %+v", c)
	}
	if d, p2, err := b.TrafficCounters(ctx); err != nil || d[firewall.IPv4] != c[firewall.IPv4] ||
		p2[firewall.IPv4].Packets-p1[firewall.IPv4].Packets < c[firewall.IPv4].Packets {
		t.Errorf("TrafficCounters after v4 drops = %+v, %+v, %v (dropped %+v)", d, p2, err, c)
	}

	// Growing the set past its maxelem swaps a new set in under the rule:
	// the ban holds throughout and after.
	apply(t, b, addrs(netip.MustParseAddr("10.99.0.0"), 3000))
	if got := headerField(t, p.def, DefaultSetV4, "Number of entries"); got != "3001" {
		t.Fatalf("%s entries after growing", got)
	}
	mustBlock(defV4, "after growing the set")

	apply(t, b, nil, netip.MustParsePrefix(attV4+"/32"))
	mustPass(defV4, "after unbanning")

	apply(t, b, []firewall.Element{el("198.18.0.0/24", time.Hour)})
	mustBlock(defV4, "after banning a /24 containing the attacker")
	apply(t, b, nil, netip.MustParsePrefix("198.18.0.0/24"))
	mustPass(defV4, "after unbanning the /24")

	apply(t, b, []firewall.Element{el(attV6+"/128", time.Hour)})
	mustBlock(defV6, "after banning the attacker's /128")
	mustPass(defV4, "v4 is not banned")
	c2, err := b.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c2[firewall.IPv6].Packets == 0 || c2[firewall.IPv4].Packets < c[firewall.IPv4].Packets {
		t.Errorf("counters after v6 drops: %+v (before %+v)", c2, c)
	}
	apply(t, b, []firewall.Element{el("2001:db8:5::/48", time.Hour)}, netip.MustParsePrefix(attV6+"/128"))
	mustBlock(defV6, "after banning a /48 containing the attacker")
}

func TestReject(t *testing.T) {
	p := newPair(t)
	cfg := both()
	cfg.DenyAction = "reject"
	b := newBackend(t, p.def, cfg)
	ensure(t, b)
	apply(t, b, []firewall.Element{el(attV4+"/32", time.Hour), el(attV6+"/128", time.Hour)})
	// A refusal, not a timeout. Over a veth pair the ICMP error can reach
	// the attacker's socket while connect() still holds it (the kernel
	// counts TcpExtLockDroppedIcmps) and counts only as a soft error; the
	// retransmitted SYN, 1 s later, then fails for good. Across a real
	// network the first one does.
	for _, addr := range []string{defV4, defV6} {
		start := time.Now()
		err := p.dialTimeout(addr, 3*time.Second)
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > 1500*time.Millisecond {
			t.Errorf("dial %s with REJECT: %v after %s, want a refusal", addr, err, time.Since(start))
		}
		t.Logf("dial %s refused after %s", addr, time.Since(start).Round(time.Millisecond))
	}
	if got := count(rulesOf(t, p.def, "ip6tables"), "-A CROWDSEC_CHAIN -m set --match-set crowdsec6-blacklists src -j REJECT --reject-with icmp6-port-unreachable"); got != 1 {
		t.Errorf("ip6tables REJECT rule: %d", got)
	}
}

func TestDenyLog(t *testing.T) {
	n := newNS(t)
	cfg := both()
	cfg.DenyLog = true
	b := newBackend(t, n, cfg)
	ensure(t, b)
	ensure(t, b)
	rules := rulesOf(t, n, "iptables")
	want := []string{
		"-N CROWDSEC_CHAIN", "-N CROWDSEC_LOG",
		"-A INPUT -j CROWDSEC_CHAIN",
		"-A CROWDSEC_CHAIN -m set --match-set crowdsec-blacklists src -j CROWDSEC_LOG",
		`-A CROWDSEC_LOG -j LOG --log-prefix "crowdsec drop: "`,
		"-A CROWDSEC_LOG -j DROP",
	}
	for _, w := range want {
		if count(rules, w) != 1 {
			t.Errorf("missing %q in\n%s", w, strings.Join(rules, "\n"))
		}
	}
	if len(ruleLines(rules)) != 4 {
		t.Errorf("rules:\n%s", strings.Join(rules, "\n"))
	}
	if !intact(t, b) {
		t.Error("not intact")
	}
	// The LOG rule swapped behind the target: not intact, and Ensure fixes the order.
	run(t, n.name, "iptables", "-D", "CROWDSEC_LOG", "1")
	run(t, n.name, "iptables", "-A", "CROWDSEC_LOG", "-j", "LOG", "--log-prefix", "crowdsec drop: ")
	if intact(t, b) {
		t.Error("intact with LOG after DROP")
	}
	ensure(t, b)
	if got := ruleLines(rulesOf(t, n, "iptables")); len(got) != 4 || !strings.Contains(got[2], "-j LOG") {
		t.Errorf("after repair:\n%s", strings.Join(got, "\n"))
	}

	// Turned off again: CROWDSEC_LOG goes away.
	b.Close()
	b2 := newBackend(t, n, both())
	ensure(t, b2)
	rules = rulesOf(t, n, "iptables")
	if slices.ContainsFunc(rules, func(l string) bool { return strings.Contains(l, LogChain) }) ||
		count(rules, "-A CROWDSEC_CHAIN -m set --match-set crowdsec-blacklists src -j DROP") != 1 {
		t.Errorf("after disabling deny_log:\n%s", strings.Join(rules, "\n"))
	}
}

func TestTarpit(t *testing.T) {
	n := newNS(t)
	cfg := both()
	cfg.DenyAction = "TARPIT"
	b := newBackend(t, n, cfg)
	err := b.Ensure(context.Background())
	if err == nil {
		if count(rulesOf(t, n, "iptables"), "-A CROWDSEC_CHAIN -m set --match-set crowdsec-blacklists src -j TARPIT") != 1 {
			t.Fatal("TARPIT available but no rule")
		}
		return
	}
	if !strings.Contains(err.Error(), "TARPIT") || !strings.Contains(err.Error(), "xtables-addons") {
		t.Fatalf("Ensure error does not name the missing target: %v", err)
	}
	t.Logf("as expected here: %v", err)
}

func TestTimeouts(t *testing.T) {
	n := newNS(t)
	b := newBackend(t, n, Config{Mode: ModeIPTables, IPv4: true})
	ensure(t, b)
	check := func(lo, hi int) {
		t.Helper()
		got, ok := members(t, n, DefaultSetV4)["192.0.2.7"]
		if !ok || got < lo || got > hi {
			t.Fatalf("timeout %d (present %v), want %d..%d", got, ok, lo, hi)
		}
	}
	apply(t, b, []firewall.Element{el("192.0.2.7/32", 100*time.Second)})
	check(95, 100)
	apply(t, b, []firewall.Element{el("192.0.2.7/32", 1000*time.Second)})
	check(995, 1000) // refreshed upwards
	apply(t, b, []firewall.Element{el("192.0.2.7/32", 10*time.Second)})
	check(5, 10) // and downwards: the caller's timeout is the truth
	apply(t, b, []firewall.Element{el("192.0.2.7/32", 1000*time.Hour)})
	check(2147478, 2147483) // capped (upstream B14), not refused
	// In both lists: present afterwards, with the new timeout.
	apply(t, b, []firewall.Element{el("192.0.2.7/32", 50*time.Second)}, netip.MustParsePrefix("192.0.2.7/32"))
	check(45, 50)
}

func TestRejectedElements(t *testing.T) {
	n := newNS(t)
	b := newBackend(t, n, both())
	ensure(t, b)
	err := b.Apply(context.Background(), []firewall.Element{
		el("192.0.2.1/32", time.Hour), el("0.0.0.0/0", time.Hour), {}, el("192.0.2.2/32", time.Hour),
	}, []netip.Prefix{netip.MustParsePrefix("192.0.2.99/32")}) // absent: no error
	if err == nil || !strings.Contains(err.Error(), "0.0.0.0/0") || !strings.Contains(err.Error(), "1 invalid") {
		t.Fatalf("Apply error = %v", err)
	}
	m := members(t, n, DefaultSetV4)
	if _, ok := m["192.0.2.1"]; !ok {
		t.Error("element before the refused one missing")
	}
	if _, ok := m["192.0.2.2"]; !ok {
		t.Error("element after the refused one missing")
	}
}

func TestMappedAndDisabledFamily(t *testing.T) {
	n := newNS(t)
	b := newBackend(t, n, Config{Mode: ModeIPTables, IPv4: true})
	ensure(t, b)
	apply(t, b, []firewall.Element{el("::ffff:192.0.2.9/128", time.Hour), el("2001:db8::1/128", time.Hour)})
	if _, ok := members(t, n, DefaultSetV4)["192.0.2.9"]; !ok {
		t.Error("IPv4-mapped address not in the v4 set")
	}
	if out := run(t, n.name, "ipset", "list", "-n"); strings.TrimSpace(out) != DefaultSetV4 {
		t.Errorf("sets with IPv6 disabled: %q", out)
	}
	if rules := rulesOf(t, n, "ip6tables"); slices.ContainsFunc(rules, func(l string) bool { return strings.Contains(l, Chain) }) {
		t.Errorf("ip6tables with IPv6 disabled:\n%s", strings.Join(rules, "\n"))
	}
	c, err := b.Counters(context.Background())
	if _, has6 := c[firewall.IPv6]; err != nil || has6 {
		t.Errorf("Counters = %v, %v", c, err)
	}
}

func addrs(base netip.Addr, n int) []firewall.Element {
	out := make([]firewall.Element, n)
	a := base
	for i := range out {
		out[i] = firewall.Element{Prefix: netip.PrefixFrom(a, a.BitLen()), Timeout: time.Hour}
		a = a.Next()
	}
	return out
}

// A set created small grows by rebuild and swap, never truncating (upstream
// B16), and the rule keeps pointing at it.
func TestGrow(t *testing.T) {
	n := newNS(t)
	cfg := both()
	cfg.SetSize = 1024
	b := newBackend(t, n, cfg)
	ensure(t, b)
	if got := headerField(t, n, DefaultSetV4, "Header"); !strings.Contains(got, "maxelem 1024") {
		t.Fatalf("header %q", got)
	}
	v4 := addrs(netip.MustParseAddr("10.20.0.0"), 5000)
	v6 := addrs(netip.MustParseAddr("2001:db8:1::"), 3000)
	apply(t, b, append(v4[:1000:1000], v6[:1000]...))
	apply(t, b, append(v4[1000:], v6[1000:]...)) // overflows 1024: grows

	nh, err := netlink.NewHandleAt(n.h, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	for _, c := range []struct {
		set  string
		want int
	}{{DefaultSetV4, 5000}, {DefaultSetV6, 3000}} {
		// Read back independently, through vishvananda/netlink (which
		// logs, through the standard logger, every attribute it does not know).
		log.SetOutput(io.Discard)
		res, err := nh.IpsetList(c.set)
		log.SetOutput(os.Stderr)
		if err != nil {
			t.Fatalf("IpsetList %s: %v", c.set, err)
		}
		if len(res.Entries) != c.want || res.MaxElements < uint32(c.want) || res.References != 1 {
			t.Errorf("%s: %d entries, maxelem %d, references %d; want %d entries, referenced", c.set, len(res.Entries), res.MaxElements, res.References, c.want)
		}
	}
	if out := strings.Fields(run(t, n.name, "ipset", "list", "-n")); len(out) != 2 {
		t.Errorf("sets after growing: %v", out)
	}
	if !intact(t, b) {
		t.Error("not intact after growing")
	}

	// Replace beyond maxelem: rebuilt with exactly want.
	want := addrs(netip.MustParseAddr("10.30.0.0"), 40000)
	want = append(want, v4[:10]...)
	if err := b.Replace(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	if got := headerField(t, n, DefaultSetV4, "Number of entries"); got != "40010" {
		t.Errorf("after Replace: %s entries", got)
	}
	if got := headerField(t, n, DefaultSetV6, "Number of entries"); got != "0" {
		t.Errorf("after Replace without v6: %s v6 entries", got)
	}
	m := members(t, n, DefaultSetV4)
	if _, ok := m["10.20.0.5"]; !ok {
		t.Error("kept element missing")
	}
	if _, ok := m["10.20.0.11"]; ok {
		t.Error("stale element kept")
	}
}

func TestReplace(t *testing.T) {
	n := newNS(t)
	b := newBackend(t, n, both())
	ensure(t, b)
	apply(t, b, []firewall.Element{
		el("192.0.2.1/32", time.Hour), el("192.0.2.2/32", time.Hour), el("198.51.100.0/24", time.Hour), el("2001:db8::1/128", time.Hour),
	})
	err := b.Replace(context.Background(), []firewall.Element{
		el("192.0.2.2/32", 2*time.Hour), el("198.51.100.0/24", time.Minute), el("192.0.2.3/32", time.Hour), el("2001:db8::2/128", time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	m4, m6 := members(t, n, DefaultSetV4), members(t, n, DefaultSetV6)
	if len(m4) != 3 || m4["192.0.2.2"] < 7190 || m4["198.51.100.0/24"] > 60 || m4["192.0.2.3"] == 0 {
		t.Errorf("v4 after Replace: %v", m4)
	}
	if len(m6) != 1 || m6["2001:db8::2"] == 0 {
		t.Errorf("v6 after Replace: %v", m6)
	}
	if err := b.Replace(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if m := members(t, n, DefaultSetV4); len(m) != 0 {
		t.Errorf("after Replace(nil): %v", m)
	}
}

// Upstream B8: tampering goes unnoticed. Here Intact sees it and Ensure
// plus Replace restore enforcement.
func TestIntact(t *testing.T) {
	n := newNS(t)
	cfg := both()
	cfg.Chains = []string{"INPUT", "DOCKER-USER"}
	b := newBackend(t, n, cfg)
	ensure(t, b)
	if rules := rulesOf(t, n, "iptables"); slices.ContainsFunc(rules, func(l string) bool { return strings.Contains(l, "DOCKER-USER") }) {
		t.Fatalf("created something in a DOCKER-USER that did not exist:\n%s", strings.Join(rules, "\n"))
	}
	want := []firewall.Element{el("192.0.2.7/32", time.Hour), el("2001:db8::7/128", time.Hour)}
	apply(t, b, want)
	if !intact(t, b) {
		t.Fatal("not intact after Ensure")
	}
	restore := func(why string) {
		t.Helper()
		if intact(t, b) {
			t.Fatalf("intact after %s", why)
		}
		ensure(t, b)
		if err := b.Replace(context.Background(), want); err != nil {
			t.Fatal(err)
		}
		if !intact(t, b) {
			t.Fatalf("not intact after repairing %s", why)
		}
	}
	run(t, n.name, "iptables", "-F", "CROWDSEC_CHAIN")
	restore("iptables -F CROWDSEC_CHAIN")
	run(t, n.name, "ip6tables", "-D", "INPUT", "-j", "CROWDSEC_CHAIN")
	restore("ip6tables -D INPUT -j CROWDSEC_CHAIN")
	run(t, n.name, "iptables", "-F", "CROWDSEC_CHAIN")
	run(t, n.name, "ipset", "destroy", DefaultSetV4)
	restore("ipset destroy")
	if _, ok := members(t, n, DefaultSetV4)["192.0.2.7"]; !ok {
		t.Error("element not back after Replace")
	}
	run(t, n.name, "iptables", "-N", "DOCKER-USER")
	run(t, n.name, "iptables", "-A", "DOCKER-USER", "-j", "RETURN")
	restore("DOCKER-USER appearing")
	rules := rulesOf(t, n, "iptables")
	if i := slices.Index(rules, "-A DOCKER-USER -j CROWDSEC_CHAIN"); i < 0 || rules[i+1] != "-A DOCKER-USER -j RETURN" {
		t.Errorf("DOCKER-USER jump not first:\n%s", strings.Join(rules, "\n"))
	}
	if got := count(rules, "-A INPUT -j CROWDSEC_CHAIN"); got != 1 {
		t.Errorf("%d INPUT jumps", got)
	}
}

// Upstream B17: ipset mode never touches iptables, creates a missing set
// instead of failing, and Flush empties the administrator's set.
func TestIPSetMode(t *testing.T) {
	n := newNS(t)
	run(t, n.name, "ipset", "create", DefaultSetV4, "hash:net", "timeout", "0")
	run(t, n.name, "iptables", "-A", "INPUT", "-m", "set", "--match-set", DefaultSetV4, "src", "-j", "DROP")
	before4, before6 := rulesOf(t, n, "iptables"), rulesOf(t, n, "ip6tables")

	b := newBackend(t, n, Config{Mode: ModeIPSet, IPv4: true, IPv6: true})
	ensure(t, b)
	ensure(t, b)
	apply(t, b, []firewall.Element{el("192.0.2.7/32", time.Hour), el("2001:db8::7/128", time.Hour)})
	if !slices.Equal(rulesOf(t, n, "iptables"), before4) || !slices.Equal(rulesOf(t, n, "ip6tables"), before6) {
		t.Error("ipset mode changed iptables rules")
	}
	if m := members(t, n, DefaultSetV4); m["192.0.2.7"] < 3590 {
		t.Errorf("admin set: %v", m)
	}
	if m := members(t, n, DefaultSetV6); m["2001:db8::7"] < 3590 {
		t.Errorf("created v6 set: %v", m)
	}
	if !intact(t, b) {
		t.Error("not intact")
	}
	if c, err := b.Counters(context.Background()); err != nil || len(c) != 0 {
		t.Errorf("Counters in ipset mode = %v, %v", c, err)
	}
	if b.Name() != "ipset" {
		t.Errorf("Name() = %q", b.Name())
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sets := strings.Fields(run(t, n.name, "ipset", "list", "-n")); !slices.Equal(sets, []string{DefaultSetV4}) {
		t.Errorf("sets after Flush: %v (the admin's set stays, ours goes)", sets)
	}
	if m := members(t, n, DefaultSetV4); len(m) != 0 {
		t.Errorf("admin set not emptied: %v", m)
	}
	if !slices.Equal(rulesOf(t, n, "iptables"), before4) {
		t.Error("Flush changed iptables rules in ipset mode")
	}
}

func TestIPSetModeWrongType(t *testing.T) {
	n := newNS(t)
	run(t, n.name, "ipset", "create", DefaultSetV4, "hash:ip")
	b := newBackend(t, n, Config{Mode: ModeIPSet, IPv4: true})
	if err := b.Ensure(context.Background()); err == nil || !strings.Contains(err.Error(), "hash:ip") {
		t.Fatalf("Ensure with a hash:ip set = %v", err)
	}
}

func TestFlush(t *testing.T) {
	n := newNS(t)
	run(t, n.name, "ipset", "create", "admin", "hash:ip")
	run(t, n.name, "iptables", "-A", "INPUT", "-s", "198.51.100.7/32", "-j", "ACCEPT")
	run(t, n.name, "iptables", "-A", "INPUT", "-m", "set", "--match-set", "admin", "src", "-j", "DROP")
	before4, before6 := rulesOf(t, n, "iptables"), rulesOf(t, n, "ip6tables")

	cfg := both()
	cfg.DenyLog = true
	cfg.Chains = []string{"INPUT", "FORWARD"}
	b := newBackend(t, n, cfg)
	ensure(t, b)
	apply(t, b, []firewall.Element{el("192.0.2.7/32", time.Hour), el("2001:db8::7/128", time.Hour)})
	run(t, n.name, "iptables", "-A", "OUTPUT", "-j", "CROWDSEC_CHAIN") // a jump of ours somewhere else
	for range 2 {
		if err := b.Flush(context.Background()); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	}
	if got := rulesOf(t, n, "iptables"); !slices.Equal(got, before4) {
		t.Errorf("iptables after Flush:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(before4, "\n"))
	}
	if got := rulesOf(t, n, "ip6tables"); !slices.Equal(got, before6) {
		t.Errorf("ip6tables after Flush:\n%s", strings.Join(got, "\n"))
	}
	if sets := strings.Fields(run(t, n.name, "ipset", "list", "-n")); !slices.Equal(sets, []string{"admin"}) {
		t.Errorf("sets after Flush: %v", sets)
	}
	if ok, err := b.Intact(context.Background()); ok || err != nil {
		t.Errorf("Intact after Flush = %v, %v", ok, err)
	}
	// And back.
	ensure(t, b)
	if !intact(t, b) {
		t.Error("not intact after Flush and Ensure")
	}
}

func TestContextAndClose(t *testing.T) {
	n := newNS(t)
	b := newBackend(t, n, both())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Ensure(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Ensure with a cancelled context = %v", err)
	}
	ensure(t, b)
	err := b.Apply(ctx, addrs(netip.MustParseAddr("10.0.0.0"), 10), nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a cancelled context = %v", err)
	}
	b.Close()
	if err := b.Apply(context.Background(), nil, nil); err == nil {
		t.Error("Apply after Close succeeded")
	}
	if _, err := b.Intact(context.Background()); err == nil {
		t.Error("Intact after Close succeeded")
	}
}

func ExampleNew() {
	b, err := New(Config{Mode: ModeIPTables, IPv4: true, IPv6: true, Chains: []string{"INPUT", "FORWARD"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	ctx := context.Background()
	if err := b.Ensure(ctx); err != nil {
		fmt.Println(err)
		return
	}
	ban := firewall.Element{Prefix: netip.MustParsePrefix("192.0.2.7/32"), Timeout: 4 * time.Hour}
	_ = b.Apply(ctx, []firewall.Element{ban}, nil)
}

// A set of ours that someone else's rule references cannot be destroyed:
// Flush empties it and leaves their rule working.
func TestFlushReferencedSet(t *testing.T) {
	n := newNS(t)
	b := newBackend(t, n, Config{Mode: ModeIPTables, IPv4: true})
	ensure(t, b)
	apply(t, b, []firewall.Element{el("192.0.2.7/32", time.Hour)})
	run(t, n.name, "iptables", "-A", "FORWARD", "-m", "set", "--match-set", DefaultSetV4, "src", "-j", "DROP")
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rules := rulesOf(t, n, "iptables")
	if slices.ContainsFunc(rules, func(l string) bool { return strings.Contains(l, Chain) }) ||
		count(rules, "-A FORWARD -m set --match-set "+DefaultSetV4+" src -j DROP") != 1 {
		t.Errorf("rules after Flush:\n%s", strings.Join(rules, "\n"))
	}
	if m := members(t, n, DefaultSetV4); len(m) != 0 {
		t.Errorf("referenced set not emptied: %v", m)
	}
}

// A backend built only to remove iptables mode's leftovers (the nftables
// bouncer does that at start) must not log iptables' deny action: only the
// active backend's first Ensure says it, once, with its own backend field.
func TestDenyActionLoggedByActiveBackendOnly(t *testing.T) {
	n := newNS(t)
	for _, mode := range []string{ModeIPTables, ModeIPSet} {
		l := logrus.New()
		l.Out = io.Discard
		hook := logtest.NewLocal(l)
		b := newBackend(t, n, Config{Mode: mode, IPv4: true, Log: l})
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, "deny action") {
				t.Errorf("%s: New logged %q (backend=%v) before being used", mode, e.Message, e.Data["backend"])
			}
		}
		for range 2 {
			if err := b.Ensure(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		said := 0
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, "deny action") {
				said++
				if e.Data["backend"] != mode {
					t.Errorf("%s: deny action logged with backend=%v", mode, e.Data["backend"])
				}
			}
		}
		want := map[string]int{ModeIPTables: 1, ModeIPSet: 0}[mode]
		if said != want {
			t.Errorf("%s: deny action logged %d times, want %d", mode, said, want)
		}
		if err := b.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
