package store

import (
	"math"
	"net/netip"
	"testing"
)

func TestParseRange(t *testing.T) {
	u := func(v uint64) int64 { return shift(v) }
	const max64 = math.MaxUint64
	cases := []struct {
		in   string
		want Range
	}{
		{"1.2.3.4", Range{Size: 4, Start: 0x01020304, End: 0x01020304}},
		{" 1.2.3.4 ", Range{Size: 4, Start: 0x01020304, End: 0x01020304}},
		{"1.2.3.4/32", Range{Size: 4, Start: 0x01020304, End: 0x01020304}},
		{"1.2.3.0/24", Range{Size: 4, Start: 0x01020300, End: 0x010203ff}},
		{"1.2.3.77/24", Range{Size: 4, Start: 0x01020300, End: 0x010203ff}}, // host bits masked
		{"0.0.0.0/0", Range{Size: 4, Start: 0, End: 0xffffffff}},
		{"255.255.255.255", Range{Size: 4, Start: 0xffffffff, End: 0xffffffff}},
		{"128.0.0.0/1", Range{Size: 4, Start: 0x80000000, End: 0xffffffff}},
		{"2001:db8::1", Range{Size: 16, Start: u(0x20010db800000000), End: u(0x20010db800000000), StartSuffix: u(1), EndSuffix: u(1)}},
		{"2001:db8::/64", Range{Size: 16, Start: u(0x20010db800000000), End: u(0x20010db800000000), StartSuffix: u(0), EndSuffix: u(max64)}},
		{"2001:db8::/32", Range{Size: 16, Start: u(0x20010db800000000), End: u(0x20010db8ffffffff), StartSuffix: u(0), EndSuffix: u(max64)}},
		{"2001:db8:0:ff00::/56", Range{Size: 16, Start: u(0x20010db80000ff00), End: u(0x20010db80000ffff), StartSuffix: u(0), EndSuffix: u(max64)}},
		{"2001:db8::1:0:0/96", Range{Size: 16, Start: u(0x20010db800000000), End: u(0x20010db800000000), StartSuffix: u(0x0000000100000000), EndSuffix: u(0x00000001ffffffff)}},
		{"2001:db8::abcd/65", Range{Size: 16, Start: u(0x20010db800000000), End: u(0x20010db800000000), StartSuffix: u(0), EndSuffix: u(0x7fffffffffffffff)}},
		{"2001:db8::8000:0:0:0/65", Range{Size: 16, Start: u(0x20010db800000000), End: u(0x20010db800000000), StartSuffix: u(0x8000000000000000), EndSuffix: u(max64)}},
		{"2001:db8::/63", Range{Size: 16, Start: u(0x20010db800000000), End: u(0x20010db800000001), StartSuffix: u(0), EndSuffix: u(max64)}},
		{"2001:db8::/128", Range{Size: 16, Start: u(0x20010db800000000), End: u(0x20010db800000000), StartSuffix: u(0), EndSuffix: u(0)}},
		{"::ffff:1.2.3.4", Range{Size: 4, Start: 0x01020304, End: 0x01020304}},
		{"::ffff:1.2.3.77/120", Range{Size: 4, Start: 0x01020300, End: 0x010203ff}},
		{"::/0", Range{Size: 16, Start: u(0), End: u(max64), StartSuffix: u(0), EndSuffix: u(max64)}},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Range{Size: 16, Start: u(max64), End: u(max64), StartSuffix: u(max64), EndSuffix: u(max64)}},
	}
	for _, c := range cases {
		got, err := ParseRange(c.in)
		if err != nil {
			t.Errorf("ParseRange(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseRange(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"", " ", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.4/33", "1.2.3.4/", "/24", "1.2.3.4/-1", "abc",
		"2001:db8::/129", "2001:db8:::1", "fe80::1%eth0", "fe80::1%eth0/64", "1.2.3.4\x00", "FR", "1.2.3.4/24/8", "01.2.3.4",
		"::ffff:10.99.0.1/64", "::ffff:0:0/95"} {
		if r, err := ParseRange(bad); err == nil {
			t.Errorf("ParseRange(%q) = %+v, want an error", bad, r)
		}
	}
	if r := RangeOf(netip.Prefix{}); r != (Range{}) {
		t.Errorf("RangeOf(zero) = %+v", r)
	}
	// signed shifting keeps address order
	lo, _ := ParseRange("7fff:ffff:ffff:ffff::")
	hi, _ := ParseRange("8000::")
	if !(lo.Start < hi.Start) {
		t.Errorf("IPv6 order broken across the sign bit: %d >= %d", lo.Start, hi.Start)
	}
	lo, _ = ParseRange("2001:db8::7fff:ffff:ffff:ffff")
	hi, _ = ParseRange("2001:db8::8000:0:0:0")
	if !(lo.StartSuffix < hi.StartSuffix) {
		t.Errorf("IPv6 suffix order broken across the sign bit")
	}
}

func TestRangeContains(t *testing.T) {
	p := func(s string) Range {
		t.Helper()
		r, err := ParseRange(s)
		if err != nil {
			t.Fatalf("ParseRange(%q): %v", s, err)
		}
		return r
	}
	cases := []struct {
		outer, inner string
		want         bool
	}{
		{"1.2.3.0/24", "1.2.3.4", true},
		{"1.2.3.0/24", "1.2.3.0/24", true},
		{"1.2.3.0/24", "1.2.3.0/25", true},
		{"1.2.3.0/24", "1.2.3.128/25", true},
		{"1.2.3.0/24", "1.2.2.255", false},
		{"1.2.3.0/24", "1.2.4.0", false},
		{"1.2.3.0/24", "1.2.0.0/16", false},
		{"1.2.3.4", "1.2.3.4", true},
		{"1.2.3.4", "1.2.3.0/24", false},
		{"0.0.0.0/0", "255.255.255.255", true},
		{"0.0.0.0/0", "::1", false}, // families never mix
		{"::/0", "1.2.3.4", false},  // families never mix
		{"2001:db8::/64", "2001:db8::1", true},
		{"2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff", true},
		{"2001:db8::/64", "2001:db8:0:1::", false},
		{"2001:db8::/64", "2001:db8::/65", true},
		{"2001:db8::/64", "2001:db8::/63", false},
		{"2001:db8::/56", "2001:db8:0:ff::1", true},
		{"2001:db8::/56", "2001:db8:0:100::1", false},
		{"2001:db8::/96", "2001:db8::1:2", true},
		{"2001:db8::/96", "2001:db8::1:0:0", false},
		{"2001:db8::/65", "2001:db8::8000:0:0:0", false},
		{"2001:db8::8000:0:0:0/65", "2001:db8::ffff:0:0:1", true},
		{"2001:db8::8000:0:0:0/65", "2001:db8::7fff:ffff:ffff:ffff", false},
		{"::/1", "7fff::1", true},
		{"::/1", "8000::1", false},
		{"8000::/1", "ffff::1", true},
		{"::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
	}
	for _, c := range cases {
		if got := p(c.outer).Contains(p(c.inner)); got != c.want {
			t.Errorf("%s contains %s = %v, want %v", c.outer, c.inner, got, c.want)
		}
	}
	var zero Range
	if zero.Contains(zero) {
		t.Errorf("a non-address range contains itself")
	}
	if p("1.2.3.4").Contains(zero) || zero.Contains(p("1.2.3.4")) {
		t.Errorf("a non-address range matched an address")
	}
}

func TestIsAddressScope(t *testing.T) {
	for s, want := range map[string]bool{"Ip": true, "ip": true, "IP": true, "Range": true, "range": true, "Country": false, "AS": false, "username": false, "": false} {
		if got := IsAddressScope(s); got != want {
			t.Errorf("IsAddressScope(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestParseRangeMappedIPv4(t *testing.T) {
	a, err := ParseRange("::ffff:192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ParseRange("192.0.2.7")
	if a != b {
		t.Errorf("mapped address = %+v, want the IPv4 form %+v", a, b)
	}
	r, err := ParseRange("::ffff:192.0.2.0/120")
	if err != nil || r.Size != 4 || !r.Contains(b) {
		t.Errorf("mapped /120 = %+v %v, want an IPv4 /24 holding 192.0.2.7", r, err)
	}
	if _, err := ParseRange("::ffff:0:0/90"); err == nil {
		t.Error("a mapped prefix shorter than /96 was accepted")
	}
}
