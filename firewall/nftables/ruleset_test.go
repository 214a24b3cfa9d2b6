package nftables

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/rampart-ips/rampart/firewall"
)

var (
	spaces   = regexp.MustCompile(`\s+`)
	counters = regexp.MustCompile(`packets \d+ bytes \d+`)
)

// shape normalizes `nft list ruleset` output: single spaces, zeroed
// counters.
func shape(s string) string {
	return strings.TrimSpace(counters.ReplaceAllString(spaces.ReplaceAllString(s, " "), "packets 0 bytes 0"))
}

const defaultLayout = `table ip crowdsec {
	set crowdsec_blocklist {
		type ipv4_addr
		flags timeout
	}

	set crowdsec_blocklist_ranges {
		type ipv4_addr
		flags interval,timeout
	}

	chain crowdsec_chain {
		type filter hook input priority filter; policy accept;
		counter packets 0 bytes 0
		ip saddr @crowdsec_blocklist counter packets 0 bytes 0 drop
		ip saddr @crowdsec_blocklist_ranges counter packets 0 bytes 0 drop
	}
}
table ip6 crowdsec6 {
	set crowdsec6_blocklist {
		type ipv6_addr
		flags timeout
	}

	set crowdsec6_blocklist_ranges {
		type ipv6_addr
		flags interval,timeout
	}

	chain crowdsec6_chain {
		type filter hook input priority filter; policy accept;
		counter packets 0 bytes 0
		ip6 saddr @crowdsec6_blocklist counter packets 0 bytes 0 drop
		ip6 saddr @crowdsec6_blocklist_ranges counter packets 0 bytes 0 drop
	}
}`

func TestEnsureLayoutAndIdempotence(t *testing.T) {
	ns := newNS(t)
	b := newBackend(t, testConfig(ns))
	ensure(t, b)
	if got := shape(ns.nft(t, "list", "ruleset")); got != shape(defaultLayout) {
		t.Fatalf("layout:\n%s\nwant:\n%s", ns.nft(t, "list", "ruleset"), defaultLayout)
	}
	ensure(t, b)
	if got := shape(ns.nft(t, "list", "ruleset")); got != shape(defaultLayout) {
		t.Fatalf("after a second Ensure:\n%s", ns.nft(t, "list", "ruleset"))
	}

	// A new process (as after kill -9) adopts everything, elements too.
	if err := b.Apply(context.Background(), []firewall.Element{el("192.0.2.1/32", time.Hour), el("198.51.100.0/24", time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	b2 := newBackend(t, testConfig(ns))
	ensure(t, b2)
	ensure(t, b2)
	out := ns.nft(t, "list", "ruleset")
	if n := strings.Count(out, "counter packets"); n != 6 {
		t.Fatalf("want 6 rules after restart, got %d:\n%s", n, out)
	}
	// What the end-to-end test counts after a restart.
	if n, m := strings.Count(out, "@crowdsec_blocklist_ranges "), strings.Count(out, "@crowdsec_blocklist "); n != 1 || m != 1 {
		t.Fatalf("rule references: %d range, %d host:\n%s", n, m, out)
	}
	if got := names(v4Hosts(t, ns)); len(got) != 1 || got[0] != "192.0.2.1" {
		t.Fatalf("hosts after restart: %v", got)
	}
	if got := names(v4Elements(t, ns)); len(got) != 1 || got[0] != "198.51.100.0-198.51.100.255" {
		t.Fatalf("ranges after restart: %v", got)
	}
	if ok, err := b2.Intact(context.Background()); err != nil || !ok {
		t.Fatalf("Intact after adoption = %v, %v", ok, err)
	}
}

func TestEnsureRemovesDuplicatesAndUpdatesRule(t *testing.T) {
	ns := newNS(t)
	b := newBackend(t, testConfig(ns))
	ensure(t, b)

	// Append two copies of our rule, as upstream does after each crash.
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd))
	if err != nil {
		t.Fatal(err)
	}
	tbl := &nftables.Table{Name: "crowdsec", Family: nftables.TableFamilyIPv4}
	ch := &nftables.Chain{Name: "crowdsec_chain", Table: tbl}
	rules, err := c.GetRules(tbl, ch)
	if err != nil || len(rules) != 3 {
		t.Fatalf("rules: %v %v", rules, err)
	}
	for i := 0; i < 2; i++ {
		for _, r := range rules {
			c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: r.Exprs, UserData: r.UserData})
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.Intact(context.Background()); ok {
		t.Fatal("Intact with three copies of the rules")
	}
	ensure(t, b)
	if got := shape(ns.nft(t, "list", "ruleset")); got != shape(defaultLayout) {
		t.Fatalf("duplicates not removed:\n%s", ns.nft(t, "list", "ruleset"))
	}

	// Rules in the wrong order, only the range rule, or the host and
	// range rules without the counter rule (as the layouts of older
	// versions left them), are rebuilt in place, between foreign rules
	// that stay where they are.
	for _, keep := range [][]int{{2, 1, 0}, {2, 1}, {2}, {1}, {1, 2}} {
		ns.nft(t, "flush", "chain", "ip", "crowdsec", "crowdsec_chain")
		ns.nft(t, "add", "rule", "ip", "crowdsec", "crowdsec_chain", "tcp", "dport", "22", "accept")
		for _, i := range keep {
			c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: rules[i].Exprs, UserData: rules[i].UserData})
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		ns.nft(t, "add", "rule", "ip", "crowdsec", "crowdsec_chain", "udp", "dport", "53", "accept")
		if ok, _ := b.Intact(context.Background()); ok {
			t.Fatalf("Intact with our rules %v", keep)
		}
		ensure(t, b)
		got := shape(ns.nft(t, "list", "chain", "ip", "crowdsec", "crowdsec_chain"))
		want := "tcp dport 22 accept counter packets 0 bytes 0 ip saddr @crowdsec_blocklist counter packets 0 bytes 0 drop ip saddr @crowdsec_blocklist_ranges counter packets 0 bytes 0 drop udp dport 53 accept }"
		if !strings.Contains(got, want) {
			t.Fatalf("rules %v not rebuilt in place:\n%s", keep, got)
		}
		if ok, err := b.Intact(context.Background()); err != nil || !ok {
			t.Fatalf("Intact after rebuilding %v = %v, %v", keep, ok, err)
		}
	}
	ns.nft(t, "flush", "chain", "ip", "crowdsec", "crowdsec_chain")
	ensure(t, b)

	// A changed configuration replaces the rule in place, on restart.
	cfg := testConfig(ns)
	cfg.DenyAction = "reject"
	cfg.DenyLog = true
	b2 := newBackend(t, cfg)
	ensure(t, b2)
	out := ns.nft(t, "list", "ruleset")
	for _, want := range []string{
		`ip saddr @crowdsec_blocklist counter packets 0 bytes 0 log prefix "crowdsec drop: " reject with icmp admin-prohibited ip saddr @crowdsec_blocklist_ranges counter packets 0 bytes 0 log prefix "crowdsec drop: " reject with icmp admin-prohibited`,
		`ip6 saddr @crowdsec6_blocklist counter packets 0 bytes 0 log prefix "crowdsec drop: " reject with icmpv6 admin-prohibited ip6 saddr @crowdsec6_blocklist_ranges counter packets 0 bytes 0 log prefix "crowdsec drop: " reject with icmpv6 admin-prohibited`,
	} {
		if !strings.Contains(shape(out), want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "counter packets"); n != 6 {
		t.Fatalf("want 6 rules, got %d:\n%s", n, out)
	}
}

func TestEnsureForwardHookAndPriority(t *testing.T) {
	ns := newNS(t)
	cfg := testConfig(ns)
	cfg.Hooks = []string{"input", "forward"}
	cfg.IPv6.Enabled = false
	cfg.IPv4.Priority = -10
	b := newBackend(t, cfg)
	ensure(t, b)
	ensure(t, b)
	want := `table ip crowdsec {
	set crowdsec_blocklist {
		type ipv4_addr
		flags timeout
	}

	set crowdsec_blocklist_ranges {
		type ipv4_addr
		flags interval,timeout
	}

	chain crowdsec_chain {
		type filter hook input priority filter - 10; policy accept;
		counter packets 0 bytes 0
		ip saddr @crowdsec_blocklist counter packets 0 bytes 0 drop
		ip saddr @crowdsec_blocklist_ranges counter packets 0 bytes 0 drop
	}

	chain crowdsec_chain_forward {
		type filter hook forward priority filter - 10; policy accept;
		counter packets 0 bytes 0
		ip saddr @crowdsec_blocklist counter packets 0 bytes 0 drop
		ip saddr @crowdsec_blocklist_ranges counter packets 0 bytes 0 drop
	}
}`
	if got := shape(ns.nft(t, "list", "ruleset")); got != shape(want) {
		t.Fatalf("layout:\n%s\nwant:\n%s", ns.nft(t, "list", "ruleset"), want)
	}

	// Another priority on restart: the chains are recreated, the set and
	// its elements stay.
	if err := b.Apply(context.Background(), []firewall.Element{el("192.0.2.0/24", time.Hour), el("192.0.2.9/32", time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	cfg.IPv4.Priority = 0
	b2 := newBackend(t, cfg)
	ensure(t, b2)
	out := ns.nft(t, "list", "ruleset")
	if strings.Count(out, "priority filter;") != 2 || strings.Count(out, "counter packets") != 6 {
		t.Fatalf("chains not recreated with priority 0:\n%s", out)
	}
	if got := names(v4Elements(t, ns)); len(got) != 1 || got[0] != "192.0.2.0-192.0.2.255" {
		t.Fatalf("elements: %v", got)
	}
	if got := names(v4Hosts(t, ns)); len(got) != 1 || got[0] != "192.0.2.9" {
		t.Fatalf("hosts: %v", got)
	}
}

func TestSetOnly(t *testing.T) {
	ns := newNS(t)
	ns.nft(t, "add", "table", "ip", "admin")
	ns.nft(t, "add", "chain", "ip", "admin", "input", "{ type filter hook input priority 0; policy accept; }")
	ns.nft(t, "add", "rule", "ip", "admin", "input", "tcp", "dport", "22", "accept")
	before := ns.nft(t, "list", "ruleset")

	cfg := Config{IPv4: Family{Enabled: true, SetOnly: true, Table: "admin"}, NetNS: ns.fd}
	b := newBackend(t, cfg)
	ensure(t, b)
	ensure(t, b)
	out := ns.nft(t, "list", "ruleset")
	if strings.Count(out, "chain ") != 1 || strings.Count(out, "table ") != 1 || strings.Count(out, "set ") != 2 ||
		!strings.Contains(out, "set crowdsec_blocklist {") || !strings.Contains(out, "set crowdsec_blocklist_ranges {") {
		t.Fatalf("set-only created more than the sets:\n%s", out)
	}
	if err := b.Apply(context.Background(), []firewall.Element{el("192.0.2.7/32", time.Hour), el("198.51.100.0/24", time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Intact(context.Background()); err != nil || !ok {
		t.Fatalf("Intact = %v, %v", ok, err)
	}
	if c, err := b.Counters(context.Background()); err != nil || len(c) != 0 {
		t.Fatalf("Counters in set-only mode = %v, %v", c, err)
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ns.nft(t, "list", "ruleset"); shape(got) != shape(before) {
		t.Fatalf("Flush changed the admin's table:\n%s\nwant:\n%s", got, before)
	}

	// When the admin's rules use a set, Flush empties it instead; the
	// set nothing uses goes.
	ensure(t, b)
	ns.nft(t, "add", "rule", "ip", "admin", "input", "ip", "saddr", "@crowdsec_blocklist", "drop")
	if err := b.Apply(context.Background(), []firewall.Element{el("192.0.2.7/32", time.Hour), el("198.51.100.0/24", time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := kernelHosts(t, ns, nftables.TableFamilyIPv4, "admin", "crowdsec_blocklist"); len(got) != 0 {
		t.Fatalf("set not emptied: %v", names(got))
	}
	if out := ns.nft(t, "list", "ruleset"); strings.Contains(out, "set crowdsec_blocklist_ranges {") {
		t.Fatalf("unused set kept:\n%s", out)
	}
	if !strings.Contains(ns.nft(t, "list", "ruleset"), "tcp dport 22 accept") {
		t.Fatal("admin rule gone")
	}

	// Without the admin's table, set-only refuses to start.
	b2 := newBackend(t, Config{IPv4: Family{Enabled: true, SetOnly: true, Table: "missing"}, NetNS: ns.fd})
	if err := b2.Ensure(context.Background()); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Ensure without table: %v", err)
	}
}

func TestFlushKeepsForeignObjects(t *testing.T) {
	ns := newNS(t)
	b := newBackend(t, testConfig(ns))
	ensure(t, b)
	// Someone else's chain in our IPv4 table keeps the table alive.
	ns.nft(t, "add", "chain", "ip", "crowdsec", "theirs")
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "table ip crowdsec { chain theirs { } }"
	if got := shape(ns.nft(t, "list", "ruleset")); got != want {
		t.Fatalf("after Flush: %q, want %q", got, want)
	}
	if err := b.Apply(context.Background(), []firewall.Element{el("192.0.2.7/32", time.Hour)}, nil); err == nil {
		t.Fatal("Apply after Flush succeeded")
	}
}

func TestIntact(t *testing.T) {
	ctx := context.Background()
	ns := newNS(t)
	cfg := testConfig(ns)
	cfg.Hooks = []string{"input", "forward"}
	b := newBackend(t, cfg)
	ensure(t, b)
	want := []firewall.Element{el("192.0.2.1/32", time.Hour), el("192.0.2.0/24", time.Hour), el("2001:db8::/48", time.Hour)}
	if err := b.Replace(ctx, want); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		break_ []string
	}{
		{"flush ruleset", []string{"flush", "ruleset"}},
		{"delete table", []string{"delete", "table", "ip", "crowdsec"}},
		{"delete ipv6 table", []string{"delete", "table", "ip6", "crowdsec6"}},
		{"flush chain", []string{"flush", "chain", "ip", "crowdsec", "crowdsec_chain"}},
		{"flush forward chain", []string{"flush", "chain", "ip6", "crowdsec6", "crowdsec6_chain_forward"}},
		{"delete host set", []string{"flush chain ip6 crowdsec6 crowdsec6_chain; flush chain ip6 crowdsec6 crowdsec6_chain_forward; delete set ip6 crowdsec6 crowdsec6_blocklist"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ok, err := b.Intact(ctx); err != nil || !ok {
				t.Fatalf("Intact before = %v, %v", ok, err)
			}
			ns.nft(t, tc.break_...)
			if ok, err := b.Intact(ctx); err != nil || ok {
				t.Fatalf("Intact after %s = %v, %v", tc.name, ok, err)
			}
			ensure(t, b)
			if err := b.Replace(ctx, want); err != nil {
				t.Fatal(err)
			}
			if ok, err := b.Intact(ctx); err != nil || !ok {
				t.Fatalf("Intact after repair = %v, %v", ok, err)
			}
			if got := names(v4Hosts(t, ns)); len(got) != 1 || got[0] != "192.0.2.1" {
				t.Fatalf("v4 hosts after repair: %v", got)
			}
			if got := names(v4Elements(t, ns)); len(got) != 1 || got[0] != "192.0.2.0-192.0.2.255" {
				t.Fatalf("v4 ranges after repair: %v", got)
			}
			if got := names(v6Elements(t, ns)); len(got) != 1 || got[0] != "2001:db8::-2001:db8:0:ffff:ffff:ffff:ffff:ffff" {
				t.Fatalf("v6 elements after repair: %v", got)
			}
		})
	}
}

func TestDisabledFamily(t *testing.T) {
	ns := newNS(t)
	cfg := testConfig(ns)
	cfg.IPv6.Enabled = false
	b := newBackend(t, cfg)
	ensure(t, b)
	if out := ns.nft(t, "list", "ruleset"); strings.Contains(out, "ip6") {
		t.Fatalf("IPv6 objects created:\n%s", out)
	}
	err := b.Apply(context.Background(), []firewall.Element{
		el("192.0.2.1/32", time.Hour), el("2001:db8::1/128", time.Hour), el("192.0.2.9/32", 0),
	}, pfx("2001:db8::2/128"))
	if err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.IgnoredDisabled != 2 || st.IgnoredInvalid != 1 || st.Elements[firewall.IPv4] != 1 {
		t.Fatalf("stats: %+v", st)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New with both families disabled succeeded")
	}
}
