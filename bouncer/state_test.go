package bouncer

import (
	"net/netip"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"
)

func TestStateKeepsLongestAndSurvivesPartialDeletes(t *testing.T) {
	s := newState()
	p := netip.MustParsePrefix("192.0.2.7/32")
	now := time.Now().Unix()
	if !s.add(p, 1, now+3600) {
		t.Fatal("first decision must be written")
	}
	if !s.add(p, 2, now+5*3600) {
		t.Fatal("a longer decision must rewrite the element")
	}
	if s.add(p, 3, now+1800) {
		t.Fatal("a shorter decision must not rewrite the element")
	}
	// deleting a shorter one changes nothing
	if gone, changed, _ := s.remove(p, 3, now); gone || changed {
		t.Fatalf("removing a shorter decision: gone=%v changed=%v", gone, changed)
	}
	// deleting the longest falls back to the next one
	gone, changed, until := s.remove(p, 2, now)
	if gone || !changed || until != now+3600 {
		t.Fatalf("removing the longest: gone=%v changed=%v until=%d", gone, changed, until-now)
	}
	if gone, _, _ := s.remove(p, 1, now); !gone {
		t.Fatal("removing the last decision must remove the prefix")
	}
	if s.len() != 0 || s.n4 != 0 || len(s.extra) != 0 {
		t.Fatalf("state not empty: %d entries, n4=%d", s.len(), s.n4)
	}
}

func TestStateIgnoresExpiredFallback(t *testing.T) {
	s := newState()
	p := netip.MustParsePrefix("2001:db8::/64")
	now := time.Now().Unix()
	s.add(p, 1, now-10) // already expired
	s.add(p, 2, now+60)
	if gone, _, _ := s.remove(p, 2, now); !gone {
		t.Fatal("an expired fallback must not keep the prefix")
	}
	if s.n6 != 0 {
		t.Fatalf("n6 = %d", s.n6)
	}
}

func TestStateElementsAndGC(t *testing.T) {
	s := newState()
	now := time.Now()
	s.add(netip.MustParsePrefix("192.0.2.1/32"), 1, now.Unix()+100)
	s.add(netip.MustParsePrefix("192.0.2.2/32"), 2, now.Unix()-1)
	s.add(netip.MustParsePrefix("10.0.0.0/8"), 3, now.Unix()+50)
	els := s.elements(now)
	if len(els) != 2 {
		t.Fatalf("elements = %v, want the 2 live ones", els)
	}
	for _, e := range els {
		if e.Timeout <= 0 || e.Timeout > 100*time.Second {
			t.Errorf("timeout %s out of range", e.Timeout)
		}
	}
	if n := s.gc(now.Unix()); n != 1 || s.len() != 2 || s.n4 != 2 {
		t.Fatalf("gc removed %d, left %d (n4=%d)", n, s.len(), s.n4)
	}
}

func TestKeyRoundTrip(t *testing.T) {
	for _, v := range []string{"192.0.2.7/32", "10.0.0.0/8", "2001:db8::/48", "::/0", "0.0.0.0/0"} {
		p := netip.MustParsePrefix(v)
		if got := keyOf(p).prefix(); got != p {
			t.Errorf("%s -> %s", p, got)
		}
	}
}

func TestGuardRefusesProtected(t *testing.T) {
	g := newGuard([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, log.WithField("test", t.Name()))
	for _, c := range []struct {
		v       string
		blocked bool
	}{
		{"127.0.0.1/32", true},
		{"::1/128", true},
		{"203.0.113.9/32", true},
		{"203.0.0.0/16", true}, // contains a protected range
		{"fe80::/10", true},
		{"fe80::1/128", true},
		{"169.254.7.7/32", true},
		{"ff02::1:ff00:1/128", true},
		{"::/0", true},
		{"198.51.100.1/32", false},
		{"2001:db8::1/128", false},
	} {
		if _, hit := g.blocks(netip.MustParsePrefix(c.v)); hit != c.blocked {
			t.Errorf("%s: blocked=%v, want %v", c.v, hit, c.blocked)
		}
	}
}

func BenchmarkStateAdd1M(b *testing.B) {
	for i := 0; i < b.N; i++ {
		s := newState()
		now := time.Now().Unix()
		for j := 0; j < 1_000_000; j++ {
			a := netip.AddrFrom4([4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)})
			s.add(netip.PrefixFrom(a, 32), int64(j), now+3600)
		}
	}
}

// TestReconcile: only what differs between the held and the fresh state
// goes to the kernel; a ban both hold alike (within the stream's rounding)
// is left alone, and expired entries are nobody's business.
func TestReconcile(t *testing.T) {
	now := time.Now()
	n := now.Unix()
	pf := netip.MustParsePrefix
	old, fresh := newState(), newState()
	old.add(pf("192.0.2.1/32"), 1, n+3600)      // same in both
	fresh.add(pf("192.0.2.1/32"), 1, n+3601)    // (rounding)
	old.add(pf("192.0.2.2/32"), 2, n+3600)      // gone from the LAPI
	fresh.add(pf("192.0.2.3/32"), 3, n+3600)    // missed addition
	old.add(pf("2001:db8::/64"), 4, n+3600)     // shortened: rewritten
	fresh.add(pf("2001:db8::/64"), 4, n+600)    //
	old.add(pf("192.0.2.5/32"), 5, n-1)         // expired in both views
	fresh.add(pf("198.51.100.0/24"), 6, n+7200) // missed range
	adds, dels := reconcile(old, fresh, now)
	got := map[string]time.Duration{}
	for _, e := range adds {
		got[e.Prefix.String()] = e.Timeout
	}
	want := map[string]time.Duration{"192.0.2.3/32": time.Hour, "2001:db8::/64": 10 * time.Minute, "198.51.100.0/24": 2 * time.Hour}
	if len(got) != len(want) {
		t.Errorf("adds = %v, want %v", got, want)
	}
	for p, d := range want {
		if got[p] != d {
			t.Errorf("add %s timeout %s, want %s", p, got[p], d)
		}
	}
	if len(dels) != 1 || dels[0] != pf("192.0.2.2/32") {
		t.Errorf("dels = %v, want [192.0.2.2/32]", dels)
	}
}
