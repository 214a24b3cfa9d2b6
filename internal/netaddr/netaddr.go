// Package netaddr is Rampart's one reader of IP addresses and prefixes, so
// that the LAPI, the bouncer, cscli and the agent agree on what a value
// means, and its one definition of the addresses no decision may cover
// (protected.go). It imports only the standard library.
//
// The rules: surrounding spaces are trimmed; IPv6 zones are refused (a
// decision or a list entry cannot name an interface); an IPv4-mapped IPv6
// address (::ffff:a.b.c.d) is the IPv4 address, and an IPv4-mapped prefix
// of /96 or longer is the IPv4 prefix, while a shorter one, which would
// straddle IPv4 and IPv6, is an error; prefixes come back masked.
package netaddr

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Reasons a value is refused besides plain bad syntax, for callers that
// need to tell them apart.
var (
	ErrZone         = errors.New("IPv6 zones are not accepted")
	ErrMappedPrefix = errors.New("an IPv4-mapped prefix must be /96 or longer (::ffff:0:0/96 is all of IPv4): write the IPv4 prefix instead")
)

// parseError is a refused value. Its text is built only when read: the
// agent's expression helpers probe log fields that are often not
// addresses.
type parseError struct {
	input string
	what  string // "an IP address", "an IP address or prefix"
	err   error  // ErrZone, ErrMappedPrefix, or nil for bad syntax
}

func (e *parseError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%q: %v", e.input, e.err)
	}
	return fmt.Sprintf("%q is not %s", e.input, e.what)
}

func (e *parseError) Unwrap() error { return e.err }

// ParseAddr reads a bare IP address.
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, &parseError{input: s, what: "an IP address"}
	}
	if a.Zone() != "" {
		return netip.Addr{}, &parseError{input: s, err: ErrZone}
	}
	return a.Unmap(), nil
}

// ParsePrefix reads a bare IP address (a one-address prefix) or a CIDR.
func ParsePrefix(s string) (netip.Prefix, error) {
	v := strings.TrimSpace(s)
	if !strings.Contains(v, "/") {
		a, err := ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		if strings.Contains(v, "%") {
			return netip.Prefix{}, &parseError{input: s, err: ErrZone}
		}
		return netip.Prefix{}, &parseError{input: s, what: "an IP address or prefix"}
	}
	if a := p.Addr(); a.Is4In6() {
		// Checked before masking: ::ffff:10.0.0.1/64 masks to ::/64, which
		// no longer looks mapped but was meant as IPv4.
		if p.Bits() < 96 {
			return netip.Prefix{}, &parseError{input: s, err: ErrMappedPrefix}
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// ParsePrefixes reads a list of ParsePrefix values; the error names the
// first bad entry.
func ParsePrefixes(vals []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(vals))
	for i, v := range vals {
		p, err := ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
		out = append(out, p)
	}
	return out, nil
}
