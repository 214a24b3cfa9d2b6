package nftables

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/firewall"
)

func near(got, want time.Duration) bool {
	d := got - want
	return d > -5*time.Second && d < 5*time.Second
}

func TestApplyOverlappingRanges(t *testing.T) {
	ctx := context.Background()
	ns := newNS(t)
	b := newBackend(t, testConfig(ns))
	ensure(t, b)
	// step applies a change and checks both sets: the intervals of the
	// range set, then the host set.
	step := func(adds []firewall.Element, dels []netip.Prefix, ranges []string, hosts ...string) {
		t.Helper()
		if err := b.Apply(ctx, adds, dels); err != nil {
			t.Fatal(err)
		}
		if got := names(v4Elements(t, ns)); !slices.Equal(got, ranges) {
			t.Fatalf("range set holds %v, want %v", got, ranges)
		}
		if got := names(v4Hosts(t, ns)); !slices.Equal(got, hosts) {
			t.Fatalf("host set holds %v, want %v", got, hosts)
		}
	}
	r := func(s ...string) []string { return s }
	// A host inside a range goes to the host set, the range stays whole.
	step([]firewall.Element{el("192.0.2.0/24", time.Hour), el("192.0.2.55/32", 5*time.Hour)}, nil,
		r("192.0.2.0-192.0.2.255"), "192.0.2.55")
	if h := v4Hosts(t, ns); !near(h[0].timeout, 5*time.Hour) {
		t.Fatalf("host timeout %v", h[0].timeout)
	}
	if g := v4Elements(t, ns); !near(g[0].timeout, time.Hour) {
		t.Fatalf("range timeout %v", g[0].timeout)
	}
	step(nil, pfx("192.0.2.55/32"), r("192.0.2.0-192.0.2.255"))
	// Nested ranges are cut into segments, each with the longest timeout;
	// segments with the same expiry merge.
	step([]firewall.Element{el("192.0.2.55/32", 5*time.Hour), el("192.0.0.0/16", 2*time.Hour)}, nil,
		r("192.0.0.0-192.0.255.255"), "192.0.2.55")
	if els := v4Elements(t, ns); !near(els[0].timeout, 2*time.Hour) {
		t.Fatalf("segment timeout %v", els[0].timeout)
	}
	step([]firewall.Element{el("192.0.2.0/24", 3*time.Hour)}, nil,
		r("192.0.0.0-192.0.1.255", "192.0.2.0-192.0.2.255", "192.0.3.0-192.0.255.255"), "192.0.2.55")
	if els := v4Elements(t, ns); !near(els[1].timeout, 3*time.Hour) {
		t.Fatalf("inner segment timeout %v", els[1].timeout)
	}
	step(nil, pfx("192.0.0.0/16"), r("192.0.2.0-192.0.2.255"), "192.0.2.55")
	step(nil, pfx("192.0.2.0/24"), nil, "192.0.2.55")
	// Adjacent hosts, in one Apply and across Applies.
	step([]firewall.Element{el("10.0.0.2/32", time.Hour), el("10.0.0.1/32", time.Hour)}, nil,
		nil, "10.0.0.1", "10.0.0.2", "192.0.2.55")
	step([]firewall.Element{el("10.0.0.3/32", time.Hour), el("10.0.0.0/32", time.Hour)}, nil,
		nil, "10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3", "192.0.2.55")
	// A range over existing hosts leaves them alone, both ways.
	step([]firewall.Element{el("10.0.0.0/30", 10*time.Minute)}, nil, r("10.0.0.0-10.0.0.3"), "10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3", "192.0.2.55")
	step(nil, pfx("10.0.0.0/30"), nil, "10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3", "192.0.2.55")
	// Top of the address space: no end element.
	step([]firewall.Element{el("255.255.255.0/24", time.Hour), el("255.255.255.255/32", 2*time.Hour), el("255.255.255.128/25", 2*time.Hour)},
		pfx("10.0.0.0/32", "10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"),
		r("255.255.255.0-255.255.255.127", "255.255.255.128-255.255.255.255"), "192.0.2.55", "255.255.255.255")
	step(nil, pfx("255.255.255.255/32", "255.255.255.128/25"), r("255.255.255.0-255.255.255.255"), "192.0.2.55")
	step(nil, pfx("255.255.255.0/24", "192.0.2.55/32"), nil)
	if st := b.Stats(); st.Elements[firewall.IPv4] != 0 {
		t.Fatalf("stats: %+v", st)
	}

	// IPv6 the same way.
	if err := b.Apply(ctx, []firewall.Element{el("2001:db8::/48", time.Hour), el("2001:db8::/64", 2*time.Hour), el("2001:db8::1/128", 2*time.Hour), el("ffff::/16", time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"2001:db8::-2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::-2001:db8:0:ffff:ffff:ffff:ffff:ffff", "ffff::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}
	if got := names(v6Elements(t, ns)); !slices.Equal(got, want) {
		t.Fatalf("v6: %v, want %v", got, want)
	}
	if got := names(v6Hosts(t, ns)); !slices.Equal(got, []string{"2001:db8::1"}) {
		t.Fatalf("v6 hosts: %v", got)
	}
	if st := b.Stats(); st.Elements[firewall.IPv6] != 4 {
		t.Fatalf("stats: %+v", st)
	}
	if err := b.Apply(ctx, nil, pfx("2001:db8::1/128", "ffff::/16", "2001:db8::/64")); err != nil {
		t.Fatal(err)
	}
	if got := names(v6Elements(t, ns)); !slices.Equal(got, []string{"2001:db8::-2001:db8:0:ffff:ffff:ffff:ffff:ffff"}) {
		t.Fatalf("v6: %v", got)
	}
	if got := v6Hosts(t, ns); len(got) != 0 {
		t.Fatalf("v6 hosts: %v", names(got))
	}
}

func TestApplyRefreshesTimeout(t *testing.T) {
	ctx := context.Background()
	ns := newNS(t)
	b := newBackend(t, testConfig(ns))
	ensure(t, b)
	for _, d := range []time.Duration{time.Hour, 5 * time.Hour, 10 * time.Minute, 1000 * time.Hour} {
		if err := b.Apply(ctx, []firewall.Element{el("10.0.0.1/32", d), el("198.51.100.0/24", d), el("2001:db8::1/128", d)}, nil); err != nil {
			t.Fatal(err)
		}
		all := append(append(v4Elements(t, ns), v6Elements(t, ns)...), append(v4Hosts(t, ns), v6Hosts(t, ns)...)...)
		for _, k := range all {
			if !near(k.timeout, d) || !near(k.expires, d) {
				t.Fatalf("after Apply with %v: %s has timeout %v, expires in %v", d, k, k.timeout, k.expires)
			}
		}
		if n, m := len(v4Elements(t, ns)), len(v4Hosts(t, ns)); n != 1 || m != 1 || len(all) != 3 {
			t.Fatalf("%d v4 ranges, %d v4 hosts, %d in all", n, m, len(all))
		}
		if st := b.Stats(); st.Elements[firewall.IPv4] != 2 || st.Elements[firewall.IPv6] != 1 {
			t.Fatalf("stats: %+v", st)
		}
	}
	// Within one list, the later entry wins.
	if err := b.Apply(ctx, []firewall.Element{el("10.0.0.1/32", 3*time.Hour), el("10.0.0.1/32", 2*time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	if k := v4Hosts(t, ns)[0]; !near(k.timeout, 2*time.Hour) {
		t.Fatalf("duplicate: timeout %v", k.timeout)
	}
	// Deleted and added in one call: refreshed, still there.
	if err := b.Apply(ctx, []firewall.Element{el("10.0.0.1/32", 4*time.Hour)}, pfx("10.0.0.1/32")); err != nil {
		t.Fatal(err)
	}
	if k := v4Hosts(t, ns); len(k) != 1 || !near(k[0].timeout, 4*time.Hour) {
		t.Fatalf("del+add: %v", k)
	}
}

func TestApplyDeleteAbsent(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		name := "destroy"
		if legacy {
			name = "delete and retry"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ns := newNS(t)
			b := newBackend(t, testConfig(ns))
			ensure(t, b)
			if legacy {
				b.delProbed, b.legacyDel = true, true
			} else if _, _, err := b.delMode(ctx, b.v4.spec.ref()); err != nil || b.legacyDel {
				t.Fatalf("destroy not detected on this kernel: legacy=%v err=%v", b.legacyDel, err)
			}
			if err := b.Apply(ctx, []firewall.Element{el("10.0.0.1/32", time.Hour), el("10.0.0.2/32", time.Hour)}, nil); err != nil {
				t.Fatal(err)
			}
			// Absent hosts (never added) among present ones, and an
			// element the kernel has expired behind our back.
			ns.nft(t, "delete", "element", "ip", "crowdsec", "crowdsec_blocklist", "{ 10.0.0.2 }")
			err := b.Apply(ctx, []firewall.Element{el("10.0.0.9/32", time.Hour)},
				pfx("10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32", "203.0.113.0/24", "2001:db8::5/128"))
			if err != nil {
				t.Fatal(err)
			}
			if got := names(v4Hosts(t, ns)); !slices.Equal(got, []string{"10.0.0.9"}) {
				t.Fatalf("kernel holds %v", got)
			}
			if ok, err := b.Intact(ctx); err != nil || !ok {
				t.Fatalf("Intact = %v, %v", ok, err)
			}
		})
	}
}

func TestApplyFailureTaints(t *testing.T) {
	ctx := context.Background()
	ns := newNS(t)
	b := newBackend(t, testConfig(ns))
	ensure(t, b)
	// Someone else puts an element where our range goes.
	ns.nft(t, "add", "element", "ip", "crowdsec", "crowdsec_blocklist_ranges", "{ 192.0.2.7 timeout 1h }")
	err := b.Apply(ctx, []firewall.Element{el("192.0.2.0/24", time.Hour)}, nil)
	if err == nil || !strings.Contains(err.Error(), "apply ipv4: transaction 1") {
		t.Fatalf("Apply over a foreign element: %v", err)
	}
	if ok, _ := b.Intact(ctx); ok {
		t.Fatal("Intact after a failed Apply")
	}
	if err := b.Replace(ctx, []firewall.Element{el("192.0.2.0/24", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Intact(ctx); err != nil || !ok {
		t.Fatalf("Intact after Replace = %v, %v", ok, err)
	}
	if got := names(v4Elements(t, ns)); !slices.Equal(got, []string{"192.0.2.0-192.0.2.255"}) {
		t.Fatalf("kernel holds %v", got)
	}
}

func TestReplace(t *testing.T) {
	ctx := context.Background()
	ns := newNS(t)
	b := newBackend(t, testConfig(ns))
	ensure(t, b)
	// Into an empty set: plain adds.
	if err := b.Replace(ctx, []firewall.Element{el("10.0.0.1/32", time.Hour), el("10.0.0.2/32", time.Hour), el("192.0.2.0/24", time.Hour), el("2001:db8::1/128", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// A new process replaces with another list: stale ones go, kept ones
	// get their new timeout, and overlaps are cut into segments.
	b2 := newBackend(t, testConfig(ns))
	ensure(t, b2)
	want := []firewall.Element{el("10.0.0.2/32", 3*time.Hour), el("10.0.0.3/32", time.Hour), el("10.0.0.3/32", time.Hour),
		el("192.0.2.0/24", time.Hour), el("192.0.2.128/25", 2*time.Hour), el("192.0.2.9/32", 2*time.Hour)}
	if err := b2.Replace(ctx, want); err != nil {
		t.Fatal(err)
	}
	hosts := v4Hosts(t, ns)
	if n := names(hosts); !slices.Equal(n, []string{"10.0.0.2", "10.0.0.3", "192.0.2.9"}) {
		t.Fatalf("hosts after Replace: %v", n)
	}
	if !near(hosts[0].timeout, 3*time.Hour) || !near(hosts[2].timeout, 2*time.Hour) {
		t.Fatalf("timeouts: %v %v", hosts[0].timeout, hosts[2].timeout)
	}
	if n := names(v4Elements(t, ns)); !slices.Equal(n, []string{"192.0.2.0-192.0.2.127", "192.0.2.128-192.0.2.255"}) {
		t.Fatalf("ranges after Replace: %v", n)
	}
	if n := append(v6Elements(t, ns), v6Hosts(t, ns)...); len(n) != 0 {
		t.Fatalf("v6 not emptied: %v", names(n))
	}
	if st := b2.Stats(); st.Elements[firewall.IPv4] != 5 || st.Elements[firewall.IPv6] != 0 {
		t.Fatalf("stats: %+v", st)
	}
	// The model is exact after Replace: a later delete reshapes correctly.
	if err := b2.Apply(ctx, nil, pfx("192.0.2.9/32", "192.0.2.128/25")); err != nil {
		t.Fatal(err)
	}
	if n := names(v4Elements(t, ns)); !slices.Equal(n, []string{"192.0.2.0-192.0.2.255"}) {
		t.Fatalf("after delete: %v", n)
	}
	if n := names(v4Hosts(t, ns)); !slices.Equal(n, []string{"10.0.0.2", "10.0.0.3"}) {
		t.Fatalf("after delete: %v", n)
	}
	// Replace with nothing empties the sets.
	if err := b2.Replace(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := append(v4Elements(t, ns), v4Hosts(t, ns)...); len(n) != 0 {
		t.Fatalf("not emptied: %v", names(n))
	}
	if st := b2.Stats(); st.Elements[firewall.IPv4] != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestApplyRandomAgainstKernel applies random overlapping bans and checks
// the kernel's intervals against a brute force over the address space.
func TestApplyRandomAgainstKernel(t *testing.T) {
	ctx := context.Background()
	ns := newNS(t)
	cfg := testConfig(ns)
	cfg.IPv6.Enabled = false
	b := newBackend(t, cfg)
	ensure(t, b)
	r := rand.New(rand.NewPCG(7, 8))
	base := netip.MustParseAddr("10.7.0.0").As4()
	logical := map[netip.Prefix]time.Duration{}
	for step := 0; step < 25; step++ {
		var adds []firewall.Element
		var dels []netip.Prefix
		for k := 0; k < 1+r.IntN(6); k++ {
			a := base
			a[3] = byte(r.IntN(256))
			p := netip.PrefixFrom(netip.AddrFrom4(a), 24+r.IntN(9)).Masked()
			if r.IntN(3) == 0 {
				dels = append(dels, p)
			} else {
				adds = append(adds, firewall.Element{Prefix: p, Timeout: time.Duration(1+r.IntN(9)) * time.Hour})
			}
		}
		if err := b.Apply(ctx, adds, dels); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		for _, d := range dels {
			delete(logical, d)
		}
		for _, e := range adds {
			logical[e.Prefix] = e.Timeout
		}
		ks := v4Elements(t, ns)
		hs := v4Hosts(t, ns)
		for i := 0; i < 256; i++ {
			a := base
			a[3] = byte(i)
			addr := netip.AddrFrom4(a)
			var want time.Duration
			for p, d := range logical {
				if p.Contains(addr) {
					want = max(want, d)
				}
			}
			var got time.Duration
			for _, k := range ks {
				if k.first.Compare(addr) <= 0 && addr.Compare(k.last) <= 0 {
					got = k.timeout
				}
			}
			for _, k := range hs {
				if k.first == addr {
					got = max(got, k.timeout)
				}
			}
			if (want == 0) != (got == 0) || (want != 0 && !near(got, want)) {
				t.Fatalf("step %d: %s timeout %v, want %v; kernel %v", step, addr, got, want, names(ks))
			}
		}
	}
}
