package nftables

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/rampart-ips/rampart/firewall"
)

// olderLayout builds, in ns, what versions before the current layout left
// for IPv4: ranges in the interval set crowdsec_blocklist, addresses in the
// hash set crowdsec_blocklist_ips, and their rules with those versions'
// tags, the host rule first.
func olderLayout(t *testing.T, ns *testNS, cfg Config) {
	t.Helper()
	rc, specs, err := cfg.resolve()
	if err != nil {
		t.Fatal(err)
	}
	f := specs[0]
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd))
	if err != nil {
		t.Fatal(err)
	}
	tbl := c.AddTable(&nftables.Table{Name: "crowdsec", Family: nftables.TableFamilyIPv4})
	ranges := &nftables.Set{Table: tbl, Name: "crowdsec_blocklist", KeyType: nftables.TypeIPAddr, Interval: true, HasTimeout: true}
	hosts := &nftables.Set{Table: tbl, Name: "crowdsec_blocklist_ips", KeyType: nftables.TypeIPAddr, HasTimeout: true}
	for _, s := range []*nftables.Set{ranges, hosts} {
		if err := c.AddSet(s, nil); err != nil {
			t.Fatal(err)
		}
	}
	hook, prio, policy := nftables.ChainHookInput, nftables.ChainPriorityFilter, nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "crowdsec_chain", Table: tbl, Type: nftables.ChainTypeFilter, Hooknum: hook, Priority: prio, Policy: &policy})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: processedExprs(), UserData: processedTag(f)})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: ruleExprs(&rc, f, hosts), UserData: ruleTag(&rc, f, hosts.Name, "v1")})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: ruleExprs(&rc, f, ranges), UserData: ruleTag(&rc, f, ranges.Name, "v1")})
	if err := c.Flush(); err != nil {
		t.Fatalf("build the older layout: %v", err)
	}
}

// currentLayout checks that the IPv4 table holds the current layout and
// nothing else: the two sets (in any order: a migrated table created them
// in another order than a fresh one) and the chain's rules.
func currentLayout(t *testing.T, ns *testNS) {
	t.Helper()
	out := ns.nft(t, "-t", "list", "table", "ip", "crowdsec")
	want := shape(defaultLayout[:strings.Index(defaultLayout, "table ip6")])
	var sets []string
	for _, blk := range regexp.MustCompile(`set \S+ \{[^}]*\}`).FindAllString(want, -1) {
		sets = append(sets, blk)
	}
	got := shape(out)
	for _, blk := range sets {
		if !strings.Contains(got, blk) {
			t.Fatalf("missing %q in:\n%s", blk, out)
		}
		got = strings.Replace(got, blk, "", 1)
		want = strings.Replace(want, blk, "", 1)
	}
	if spaces.ReplaceAllString(got, " ") != spaces.ReplaceAllString(want, " ") {
		t.Fatalf("layout:\n%s\nwant:\n%s", out, defaultLayout)
	}
}

// TestMigrateOlderLayoutWithoutGap upgrades a running older install: a
// banned address (in the older host set) and a banned range (in the older
// interval set) must stay dropped from the moment the new backend starts
// until the sets have their current names, and afterwards the address is
// listed in crowdsec_blocklist, where an administrator looks.
func TestMigrateOlderLayoutWithoutGap(t *testing.T) {
	ctx := context.Background()
	l := newLab(t)
	const inRange = "10.99.0.130" // a second attacker address, inside the banned /25
	if out, err := exec.Command("ip", "-n", l.att.name, "addr", "add", inRange+"/24", "dev", "rpa0").CombinedOutput(); err != nil {
		t.Fatalf("add address: %v %s", err, out)
	}
	cfg := testConfig(l.def)
	cfg.IPv6.Enabled = false
	olderLayout(t, l.def, cfg)
	l.def.nft(t, "add element ip crowdsec crowdsec_blocklist_ips { "+attV4+" timeout 1h, 192.0.2.9 timeout 1h }")
	l.def.nft(t, "add element ip crowdsec crowdsec_blocklist { 10.99.0.128/25 timeout 1h, 198.51.100.0/24 timeout 1h }")

	// What the other tables see: a ping flood from both addresses, counted
	// after our chain, catches windows of a fraction of a millisecond.
	l.def.nft(t, "add table ip probe")
	l.def.nft(t, "add chain ip probe in { type filter hook input priority 10; policy accept; }")
	l.def.nft(t, "add rule ip probe in ip saddr { "+attV4+", "+inRange+" } icmp type echo-request counter")
	for _, src := range []string{attV4, inRange} {
		flood := exec.Command("ip", "netns", "exec", l.att.name, "ping", "-i", "0.00002", "-q", "-I", src, defV4)
		if err := flood.Start(); err != nil {
			t.Skipf("ping flood: %v", err)
		}
		defer func() { _ = flood.Process.Kill(); _ = flood.Wait() }()
	}
	var through, tries atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			src := []string{attV4, inRange}[i%2]
			tries.Add(1)
			var err error
			l.att.do(t, func() {
				d := net.Dialer{Timeout: 50 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
				var conn net.Conn
				if conn, err = d.Dial("tcp", net.JoinHostPort(defV4, itoa(l.port))); err == nil {
					_ = conn.Close()
				}
			})
			if err == nil {
				through.Add(1)
			}
		}
	}()

	b := newBackend(t, cfg)
	ensure(t, b)
	ensure(t, b)
	if ok, err := b.Intact(ctx); err != nil || !ok {
		t.Fatalf("Intact with the older layout adopted = %v, %v", ok, err)
	}
	if empty, err := b.Empty(ctx); err != nil || empty {
		t.Fatalf("Empty with the older sets = %v, %v; want false (only Replace moves them)", empty, err)
	}
	// A state as the LAPI gives it, with many addresses, so the move takes
	// many transactions.
	want := []firewall.Element{el(attV4+"/32", time.Hour), el("10.99.0.128/25", time.Hour), el("203.0.113.0/24", time.Hour)}
	for i := range 50_000 {
		a := netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)})
		want = append(want, firewall.Element{Prefix: netip.PrefixFrom(a, 32), Timeout: time.Hour})
	}
	b.txnBytes = 64 << 10
	if err := b.Replace(ctx, want); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done
	if through.Load() > 0 || tries.Load() < 2 {
		t.Fatalf("%d of %d probes got through during the migration", through.Load(), tries.Load())
	}
	if out := l.def.nft(t, "list chain ip probe in"); !strings.Contains(out, "counter packets 0 bytes 0") {
		t.Fatalf("pings got through:\n%s", out)
	}

	// The current layout, exactly; stale elements of the older sets gone.
	currentLayout(t, l.def)
	if out := l.def.nft(t, "list set ip crowdsec crowdsec_blocklist"); !strings.Contains(out, attV4+" timeout") || strings.Contains(out, "192.0.2.9") {
		t.Fatalf("crowdsec_blocklist after the migration:\n%s", out)
	}
	if got := names(v4Elements(t, l.def)); strings.Join(got, ",") != "10.99.0.128-10.99.0.255,203.0.113.0-203.0.113.255" {
		t.Fatalf("ranges after the migration: %v", got)
	}
	if ok, err := b.Intact(ctx); err != nil || !ok {
		t.Fatalf("Intact after the migration = %v, %v", ok, err)
	}
	if st := b.Stats(); st.Elements[firewall.IPv4] != len(want) {
		t.Fatalf("elements: %d, want %d", st.Elements[firewall.IPv4], len(want))
	}
	// A restart adopts the current layout as it is.
	b2 := newBackend(t, cfg)
	ensure(t, b2)
	currentLayout(t, l.def)
	for _, src := range []string{attV4, inRange} {
		var err error
		l.att.do(t, func() {
			d := net.Dialer{Timeout: 200 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			_, err = d.Dial("tcp", net.JoinHostPort(defV4, itoa(l.port)))
		})
		if !isTimeout(err) {
			t.Fatalf("connect from %s after the migration: %v, want a timeout", src, err)
		}
	}
	if err := b2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if out := l.def.nft(t, "list ruleset"); strings.Contains(out, "crowdsec") || !strings.Contains(out, "table ip probe") {
		t.Fatalf("Flush left ours or removed another table:\n%s", out)
	}
}

// TestMigrationStoppedHalfWay: a crash after the new host set was created
// but before the older host set went leaves both; a restart adopts that,
// keeps enforcing through the older set, and Replace finishes.
func TestMigrationStoppedHalfWay(t *testing.T) {
	ctx := context.Background()
	ns := newNS(t)
	cfg := testConfig(ns)
	cfg.IPv6.Enabled = false
	olderLayout(t, ns, cfg)
	ns.nft(t, "add element ip crowdsec crowdsec_blocklist_ips { 192.0.2.7 timeout 1h }")
	b := newBackend(t, cfg)
	ensure(t, b)
	// Stop migrate after its first transaction: the same steps by hand.
	f := b.specs[0]
	f.lay = layout{hosts: f.cfg.Set, ranges: f.rangeSet(), oldRanges: true, oldHosts: true}
	ns.nft(t, "flush chain ip crowdsec crowdsec_chain")
	ns.nft(t, "delete set ip crowdsec crowdsec_blocklist")
	ns.nft(t, "add set ip crowdsec crowdsec_blocklist { type ipv4_addr; flags timeout; }")
	b2 := newBackend(t, cfg)
	ensure(t, b2)
	out := ns.nft(t, "list chain ip crowdsec crowdsec_chain")
	if !strings.Contains(out, "@crowdsec_blocklist_ips") || !strings.Contains(out, "@crowdsec_blocklist ") || !strings.Contains(out, "@crowdsec_blocklist_ranges") {
		t.Fatalf("half-way layout not adopted with its three rules:\n%s", out)
	}
	if err := b2.Replace(ctx, []firewall.Element{el("192.0.2.7/32", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	currentLayout(t, ns)
	if got := names(v4Hosts(t, ns)); strings.Join(got, ",") != "192.0.2.7" {
		t.Fatalf("hosts: %v", got)
	}
}

// TestSetOnlyKeepsOlderLayout: in set-only mode the administrator's rules
// name the sets, so an older layout (ranges in crowdsec_blocklist, an
// interval set, addresses in crowdsec_blocklist_ips) is filled as it is,
// and no set is added, deleted or retyped.
func TestSetOnlyKeepsOlderLayout(t *testing.T) {
	ctx := context.Background()
	ns := newNS(t)
	ns.nft(t, "add table ip admin")
	ns.nft(t, "add set ip admin crowdsec_blocklist { type ipv4_addr; flags interval,timeout; }")
	ns.nft(t, "add set ip admin crowdsec_blocklist_ips { type ipv4_addr; flags timeout; }")
	ns.nft(t, "add chain ip admin input { type filter hook input priority 0; policy accept; }")
	ns.nft(t, "add rule ip admin input ip saddr @crowdsec_blocklist_ips drop")
	ns.nft(t, "add rule ip admin input ip saddr @crowdsec_blocklist drop")
	b := newBackend(t, Config{IPv4: Family{Enabled: true, SetOnly: true, Table: "admin"}, NetNS: ns.fd})
	ensure(t, b)
	if err := b.Replace(ctx, []firewall.Element{el("192.0.2.7/32", time.Hour), el("198.51.100.0/24", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Intact(ctx); err != nil || !ok {
		t.Fatalf("Intact = %v, %v", ok, err)
	}
	out := ns.nft(t, "-t", "list", "table", "ip", "admin")
	if strings.Count(out, "set ") != 2 || strings.Contains(out, "_ranges") {
		t.Fatalf("set-only changed the administrator's sets:\n%s", out)
	}
	if got := names(kernelHosts(t, ns, nftables.TableFamilyIPv4, "admin", "crowdsec_blocklist_ips")); strings.Join(got, ",") != "192.0.2.7" {
		t.Fatalf("hosts: %v", got)
	}
	if got := names(kernelElements(t, ns, nftables.TableFamilyIPv4, "admin", "crowdsec_blocklist")); strings.Join(got, ",") != "198.51.100.0-198.51.100.255" {
		t.Fatalf("ranges: %v", got)
	}
}
