package nftables

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/firewall"
)

func TestBounds(t *testing.T) {
	for _, tc := range []struct{ p, first, last string }{
		{"192.0.2.0/24", "192.0.2.0", "192.0.2.255"},
		{"192.0.2.7/32", "192.0.2.7", "192.0.2.7"},
		{"0.0.0.0/0", "0.0.0.0", "255.255.255.255"},
		{"2001:db8::/48", "2001:db8::", "2001:db8:0:ffff:ffff:ffff:ffff:ffff"},
		{"2001:db8::/64", "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"},
		{"2001:db8::/96", "2001:db8::", "2001:db8::ffff:ffff"},
		{"::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"2001:db8::1/128", "2001:db8::1", "2001:db8::1"},
	} {
		p := netip.MustParsePrefix(tc.p)
		var f, l netip.Addr
		if p.Addr().Is4() {
			a, b, ok := bounds[ip4](p)
			if !ok {
				t.Fatalf("%s: not ipv4", tc.p)
			}
			f, l = a.netip(), b.netip()
			if _, _, ok := bounds[ip6](p); ok {
				t.Fatalf("%s: taken as ipv6", tc.p)
			}
		} else {
			a, b, ok := bounds[ip6](p)
			if !ok {
				t.Fatalf("%s: not ipv6", tc.p)
			}
			f, l = a.netip(), b.netip()
		}
		if f.String() != tc.first || l.String() != tc.last {
			t.Errorf("%s: %s-%s, want %s-%s", tc.p, f, l, tc.first, tc.last)
		}
	}
	if n, ok := normalize(netip.MustParsePrefix("::ffff:192.0.2.1/128")); !ok || n.String() != "192.0.2.1/32" {
		t.Errorf("4in6: %v %v", n, ok)
	}
}

// segments is what the model says the kernel holds, by address.
func (m *model[A]) segments() []seg[A] {
	var out []seg[A]
	for h, exp := range m.hosts {
		if m.rootOf(h) < 0 {
			out = append(out, seg[A]{h, h, exp})
		}
	}
	for _, c := range m.roots {
		out = append(out, c.segs...)
	}
	sortSegs(out)
	return out
}

// checkModel compares the segments with a brute force over every address
// of a small space: each address must be covered iff a live logical
// element covers it, with the longest expiry among them.
func checkModel(t *testing.T, m *model[ip4], logical map[netip.Prefix]uint32, base ip4, size int, now uint32) {
	t.Helper()
	segs := m.segments()
	for i := 1; i < len(segs); i++ {
		if segs[i].first <= segs[i-1].last {
			t.Fatalf("segments overlap: %v", segs)
		}
	}
	for i := 0; i < size; i++ {
		a := base + ip4(i)
		var want uint32
		for p, exp := range logical {
			if exp > now && p.Contains(a.netip()) {
				want = max(want, exp)
			}
		}
		var got uint32
		for _, s := range segs {
			if s.first <= a && a <= s.last && s.exp > now { // the kernel drops expired segments itself
				got = s.exp
			}
		}
		if got != want {
			t.Fatalf("%s: expiry %d, want %d (segments %v)", a.netip(), got, want, segs)
		}
	}
}

func TestModelRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := ip4(10 << 24)
	const size = 256
	for round := 0; round < 40; round++ {
		m := newModel[ip4](0)
		logical := map[netip.Prefix]uint32{}
		nowMs := uint64(1000_000)
		for step := 0; step < 30; step++ {
			p := newPlan(m, nowMs)
			var adds []firewall.Element
			var dels []netip.Prefix
			for k := 0; k < 1+r.IntN(5); k++ {
				bits := 24 + r.IntN(9)
				a := (base + ip4(r.IntN(size))).netip()
				pf := netip.PrefixFrom(a, bits).Masked()
				if r.IntN(3) == 0 {
					dels = append(dels, pf)
				} else {
					adds = append(adds, firewall.Element{Prefix: pf, Timeout: time.Duration(1+r.IntN(5)) * time.Second})
				}
			}
			fill(p, adds, dels)
			for _, d := range dels {
				delete(logical, d)
			}
			for _, e := range adds {
				logical[e.Prefix] = p.expiry(uint64(e.Timeout.Milliseconds()))
			}
			checkModel(t, m, logical, base, size, p.now)
			// Every planned op is consistent: no add of an expired segment.
			for _, o := range append(p.gadds, p.adds...) {
				if o.ms == 0 {
					t.Fatal("add without timeout")
				}
			}
			nowMs += uint64(r.IntN(2500))
		}
	}
}

func TestModelOverlapPlan(t *testing.T) {
	m := newModel[ip4](0)
	now := uint64(10_000)
	p := newPlan(m, now)
	fill(p, []firewall.Element{
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Timeout: time.Hour},
		{Prefix: netip.MustParsePrefix("192.0.2.55/32"), Timeout: 5 * time.Hour},
		{Prefix: netip.MustParsePrefix("192.0.2.66/32"), Timeout: time.Minute}, // inside, shorter: no segment of its own
	}, nil)
	got := strs(m.segments())
	want := []string{"192.0.2.0-192.0.2.54", "192.0.2.55", "192.0.2.56-192.0.2.255"}
	if !slices.Equal(got, want) {
		t.Fatalf("segments %v, want %v", got, want)
	}
	if len(p.adds) != 0 || len(p.gadds) != 3 {
		t.Fatalf("plan: %d standalone adds, %d group adds", len(p.adds), len(p.gadds))
	}

	// Deleting the /32 merges the /24 back: one delete of each old
	// segment's interval, one add, in the same group.
	p = newPlan(m, now)
	fill(p, nil, []netip.Prefix{netip.MustParsePrefix("192.0.2.55/32")})
	if got := strs(m.segments()); !slices.Equal(got, []string{"192.0.2.0-192.0.2.255"}) {
		t.Fatalf("after delete: %v", got)
	}
	if len(p.gdels) != 3 || len(p.gadds) != 1 || len(p.dels) != 0 {
		t.Fatalf("plan: gdels %d gadds %d dels %d", len(p.gdels), len(p.gadds), len(p.dels))
	}

	// Deleting the root leaves the /32 inside standing on its own.
	p = newPlan(m, now)
	fill(p, nil, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	if got := strs(m.segments()); !slices.Equal(got, []string{"192.0.2.66"}) {
		t.Fatalf("after root delete: %v", got)
	}

	// A host deleted and added in one Apply is just refreshed.
	p = newPlan(m, now)
	fill(p, []firewall.Element{{Prefix: netip.MustParsePrefix("192.0.2.66/32"), Timeout: time.Hour}}, []netip.Prefix{netip.MustParsePrefix("192.0.2.66/32")})
	if len(p.adds) != 1 || p.dels[0].ms != cancelled {
		t.Fatalf("del+add: adds %v dels %v", p.adds, p.dels)
	}
}

func strs(segs []seg[ip4]) []string {
	var out []string
	for _, s := range segs {
		if s.first == s.last {
			out = append(out, s.first.netip().String())
		} else {
			out = append(out, s.first.netip().String()+"-"+s.last.netip().String())
		}
	}
	return out
}

func TestRadixSortStable(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ops := make([]op[ip4], 5000)
	for i := range ops {
		ops[i] = op[ip4]{first: ip4(r.Uint32() % 3000), ms: uint64(i)}
	}
	want := slices.Clone(ops)
	slices.SortStableFunc(want, func(a, b op[ip4]) int { return int(int64(a.first) - int64(b.first)) })
	sortOps(ops)
	if !slices.Equal(ops, want) {
		t.Fatal("radix sort differs from a stable sort")
	}
}
