package netaddr

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestParsePrefix(t *testing.T) {
	cases := []struct{ in, want string }{
		{"1.2.3.4", "1.2.3.4/32"},
		{" 1.2.3.4\t", "1.2.3.4/32"},
		{"1.2.3.77/24", "1.2.3.0/24"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:DB8::abcd/64", "2001:db8::/64"},
		{"::/0", "::/0"},
		{"::1", "::1/128"},
		{"fe80::/10", "fe80::/10"},
		// IPv4-mapped: the IPv4 address or prefix
		{"::ffff:1.2.3.4", "1.2.3.4/32"},
		{"::ffff:1.2.3.4/128", "1.2.3.4/32"},
		{"::ffff:1.2.3.4/120", "1.2.3.0/24"},
		{"::ffff:0:0/96", "0.0.0.0/0"},
		{"0:0:0:0:0:ffff:a63:1/112", "10.99.0.0/16"},
		// not mapped: ::fffe: and :: are plain IPv6
		{"::fffe:0:0/80", "::/80"},
		{"::/64", "::/64"},
	}
	for _, c := range cases {
		p, err := ParsePrefix(c.in)
		if err != nil {
			t.Errorf("ParsePrefix(%q): %v", c.in, err)
			continue
		}
		if p.String() != c.want {
			t.Errorf("ParsePrefix(%q) = %s, want %s", c.in, p, c.want)
		}
	}
	bad := []struct {
		in      string
		want    error  // nil: plain syntax error
		message string // part of the error text
	}{
		{"", nil, `"" is not an IP address`},
		{" ", nil, "is not an IP address"},
		{"1.2.3", nil, "is not an IP address"},
		{"256.0.0.1", nil, "is not an IP address"},
		{"01.2.3.4", nil, "is not an IP address"},
		{"1.2.3.4/33", nil, "is not an IP address or prefix"},
		{"1.2.3.4/", nil, "is not an IP address or prefix"},
		{"/24", nil, "is not an IP address or prefix"},
		{"1.2.3.4/24/8", nil, "is not an IP address or prefix"},
		{"2001:db8::/129", nil, "is not an IP address or prefix"},
		{"FR", nil, "is not an IP address"},
		{"1.2.3.4\x00", nil, "is not an IP address"},
		{"fe80::1%eth0", ErrZone, "zones"},
		{"fe80::1%eth0/64", ErrZone, "zones"},
		{"::ffff:10.99.0.1/64", ErrMappedPrefix, "/96 or longer"},
		{"::ffff:0.0.0.0/90", ErrMappedPrefix, "/96 or longer"},
		{"::ffff:0:0/64", ErrMappedPrefix, "/96 or longer"},
		{"::ffff:0:0/95", ErrMappedPrefix, "/96 or longer"},
	}
	for _, c := range bad {
		p, err := ParsePrefix(c.in)
		if err == nil {
			t.Errorf("ParsePrefix(%q) = %s, want an error", c.in, p)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("ParsePrefix(%q): %v, want %v", c.in, err, c.want)
		}
		if !strings.Contains(err.Error(), c.message) {
			t.Errorf("ParsePrefix(%q): %q does not say %q", c.in, err, c.message)
		}
	}
}

func TestParseAddr(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.3.4": "1.2.3.4", " ::ffff:1.2.3.4 ": "1.2.3.4", "2001:db8::1": "2001:db8::1", "fe80::1": "fe80::1",
	} {
		a, err := ParseAddr(in)
		if err != nil || a.String() != want {
			t.Errorf("ParseAddr(%q) = %s, %v; want %s", in, a, err, want)
		}
	}
	for _, in := range []string{"", "1.2.3.0/24", "fe80::1%eth0", "1.2.3", "host"} {
		if a, err := ParseAddr(in); err == nil {
			t.Errorf("ParseAddr(%q) = %s, want an error", in, a)
		}
	}
	if _, err := ParseAddr("fe80::1%eth0"); !errors.Is(err, ErrZone) {
		t.Errorf("a zone is refused as such: %v", err)
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes([]string{"10.0.0.1", "::ffff:10.0.0.0/104"})
	if err != nil || len(got) != 2 || got[0].String() != "10.0.0.1/32" || got[1].String() != "10.0.0.0/8" {
		t.Errorf("ParsePrefixes = %v, %v", got, err)
	}
	_, err = ParsePrefixes([]string{"10.0.0.1", "::ffff:0:0/64"})
	if err == nil || !strings.Contains(err.Error(), "entry 2") || !errors.Is(err, ErrMappedPrefix) {
		t.Errorf("a mapped /64 is refused naming the entry: %v", err)
	}
}

func TestProtected(t *testing.T) {
	set, err := ProtectedSet()
	if err != nil {
		t.Fatal(err)
	}
	hit := func(v string) string {
		t.Helper()
		p, err := ParsePrefix(v)
		if err != nil {
			t.Fatal(err)
		}
		e, ok := Overlapping(set, p)
		if !ok {
			return ""
		}
		return e.Reason
	}
	for v, want := range map[string]string{
		"127.0.0.1": "loopback", "127.9.9.9": "loopback", "0.0.0.0/0": "loopback", "::1": "loopback", "::/0": "loopback",
		"::ffff:127.0.0.1": "loopback", "::ffff:0:0/96": "loopback",
		"169.254.1.1": "link-local", "fe80::1": "link-local", "fe80::/10": "link-local", "fe80::/16": "link-local",
		"ff02::1:ff00:1": "multicast", "ff00::/8": "multicast",
		"192.0.2.1": "", "2001:db8::/32": "", "198.51.100.0/24": "",
	} {
		if got := hit(v); got != want {
			t.Errorf("%s: protected as %q, want %q", v, got, want)
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, ia := range addrs {
		if ipn, ok := ia.(*net.IPNet); ok && hit(ipn.IP.String()) == "" {
			t.Errorf("this host's address %s is not protected", ipn.IP)
		}
	}
	for _, e := range set {
		if e.Prefix != e.Prefix.Masked() || e.Prefix.Addr().Is4In6() {
			t.Errorf("entry %s is not canonical", e)
		}
	}
	if s := (Protected{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Reason: "loopback"}).String(); s != "127.0.0.0/8 (loopback)" {
		t.Errorf("String = %q", s)
	}
}

// FuzzParsePrefix checks that no input panics and that what parses is
// canonical: valid, masked, never IPv4-mapped, without zone, and reads back
// the same from its own rendering; an address that parses is the
// one-address prefix.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "1.2.3.0/24", "::ffff:10.99.0.1/64", "::ffff:1.2.3.4/120", "fe80::1%eth0", "::/0", " 2001:db8::/32 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err == nil {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("ParsePrefix(%q) = %s: not canonical", s, p)
			}
			back, err := ParsePrefix(p.String())
			if err != nil || back != p {
				t.Fatalf("ParsePrefix(%q) = %s reads back as %s, %v", s, p, back, err)
			}
		}
		a, aerr := ParseAddr(s)
		if aerr == nil {
			if err != nil || p != netip.PrefixFrom(a, a.BitLen()) {
				t.Fatalf("ParseAddr(%q) = %s but ParsePrefix = %s, %v", s, a, p, err)
			}
			if a.Is4In6() || a.Zone() != "" {
				t.Fatalf("ParseAddr(%q) = %s: not canonical", s, a)
			}
		}
	})
}
