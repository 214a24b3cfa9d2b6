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
	for _, c := range m.roots {
		out = append(out, c.segs...)
	}
	sortSegs(out)
	return out
}

// checkModel compares the segments with a brute force over every address
// of a small space: each address must be covered iff a live logical
// range covers it, with the longest expiry among them.
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

// planRanges plans adds and dels of ranges the way Apply does.
func planRanges(p *plan[ip4], adds []firewall.Element, dels []netip.Prefix) {
	w := &work[ip4]{p: p, nowMs: p.nowMs}
	prepare(w, adds, dels)
}

func TestModelRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := ip4(10 << 24)
	const size = 256
	for round := 0; round < 40; round++ {
		m := newModel[ip4]()
		logical := map[netip.Prefix]uint32{}
		nowMs := uint64(1000_000)
		for step := 0; step < 30; step++ {
			p := newPlan(m, nowMs)
			var adds []firewall.Element
			var dels []netip.Prefix
			for k := 0; k < 1+r.IntN(5); k++ {
				bits := 24 + r.IntN(8) // ranges only: hosts never reach the model
				a := (base + ip4(r.IntN(size))).netip()
				pf := netip.PrefixFrom(a, bits).Masked()
				if r.IntN(3) == 0 {
					dels = append(dels, pf)
				} else {
					adds = append(adds, firewall.Element{Prefix: pf, Timeout: time.Duration(1+r.IntN(5)) * time.Second})
				}
			}
			planRanges(p, adds, dels)
			for _, d := range dels {
				delete(logical, d)
			}
			for _, e := range adds {
				logical[e.Prefix] = p.expiry(uint64(e.Timeout.Milliseconds()))
			}
			checkModel(t, m, logical, base, size, p.now)
			// Every planned op is consistent: no add of an expired segment.
			for _, o := range p.gadds {
				if o.ms == 0 {
					t.Fatal("add without timeout")
				}
			}
			nowMs += uint64(r.IntN(2500))
			if step%10 == 9 {
				m.sweep(uint32(nowMs / 1000))
			}
		}
	}
}

func TestModelOverlapPlan(t *testing.T) {
	m := newModel[ip4]()
	now := uint64(10_000)
	p := newPlan(m, now)
	planRanges(p, []firewall.Element{
		{Prefix: netip.MustParsePrefix("192.0.0.0/16"), Timeout: time.Hour},
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Timeout: 5 * time.Hour},
		{Prefix: netip.MustParsePrefix("192.0.3.0/24"), Timeout: time.Minute},    // inside, shorter: no segment of its own
		{Prefix: netip.MustParsePrefix("192.0.2.55/32"), Timeout: 9 * time.Hour}, // a host: not the model's
	}, nil)
	got := strs(m.segments())
	want := []string{"192.0.0.0-192.0.1.255", "192.0.2.0-192.0.2.255", "192.0.3.0-192.0.255.255"}
	if !slices.Equal(got, want) {
		t.Fatalf("segments %v, want %v", got, want)
	}
	if len(p.gadds) != 3 || m.size() != 3 {
		t.Fatalf("plan: %d group adds, %d ranges", len(p.gadds), m.size())
	}

	// Deleting the inner /24 merges the /16 back: one delete of each old
	// segment's interval, one add, in the same group.
	p = newPlan(m, now)
	planRanges(p, nil, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	if got := strs(m.segments()); !slices.Equal(got, []string{"192.0.0.0-192.0.255.255"}) {
		t.Fatalf("after delete: %v", got)
	}
	if len(p.gdels) != 3 || len(p.gadds) != 1 {
		t.Fatalf("plan: gdels %d gadds %d", len(p.gdels), len(p.gadds))
	}

	// Deleting the root leaves the /24 inside standing on its own.
	p = newPlan(m, now)
	planRanges(p, nil, []netip.Prefix{netip.MustParsePrefix("192.0.0.0/16")})
	if got := strs(m.segments()); !slices.Equal(got, []string{"192.0.3.0-192.0.3.255"}) {
		t.Fatalf("after root delete: %v", got)
	}

	// A host deleted and added in one Apply is just refreshed.
	w := &work[ip4]{p: newPlan(m, now), nowMs: now}
	h := []firewall.Element{{Prefix: netip.MustParsePrefix("192.0.2.66/32"), Timeout: time.Hour}}
	prepare(w, h, []netip.Prefix{netip.MustParsePrefix("192.0.2.66/32")})
	if w.nAdds != 1 || len(w.dels) != 1 || len(w.p.gadds)+len(w.p.gdels) != 0 {
		t.Fatalf("del+add: adds %d dels %v", w.nAdds, w.dels)
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

// TestHostIndexRandom checks the host index against a map, with
// duplicates, deletes, refreshes and expiries, on both sort paths.
func TestHostIndexRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var x hostIndex[ip4]
	want := map[ip4]uint32{}
	now := uint32(100)
	for step := 0; step < 200; step++ {
		n := r.IntN(50)
		if step%20 == 0 {
			n = 3000 // the radix path
		}
		var ch []hostEntry[ip4]
		for i := 0; i < n; i++ {
			k := ip4(r.IntN(4000))
			var exp uint32
			if r.IntN(4) != 0 {
				exp = now + uint32(r.IntN(20))
			}
			ch = append(ch, hostEntry[ip4]{k, exp})
		}
		for _, c := range ch {
			if c.exp == 0 {
				delete(want, c.key)
			} else {
				want[c.key] = c.exp
			}
		}
		if step%7 == 0 {
			now += uint32(r.IntN(5))
		}
		for k, exp := range want {
			if exp <= now {
				delete(want, k)
			}
		}
		sweep := r.IntN(2) == 0
		x.apply(ch, now, sweep)
		// Check order and values; without a sweep, expired hosts may stay
		// (unless a delete compacted the list anyway).
		live := 0
		for i, e := range x.e {
			if i > 0 && x.e[i-1].key >= e.key {
				t.Fatalf("step %d: not sorted at %d", step, i)
			}
			if e.exp > now {
				live++
				if want[e.key] != e.exp {
					t.Fatalf("step %d: %v expires %d, want %d", step, e.key, e.exp, want[e.key])
				}
			}
		}
		if live != len(want) || (sweep && x.len() != len(want)) {
			t.Fatalf("step %d: %d live, %d held, want %d", step, live, x.len(), len(want))
		}
	}
}
