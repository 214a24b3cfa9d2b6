package netaddr

import (
	"fmt"
	"net"
	"net/netip"
)

// Protected is a prefix no decision may cover, and why.
type Protected struct {
	Prefix netip.Prefix
	Reason string // "loopback", "link-local", "multicast", "address of this host"
}

// BuiltinProtected is the fixed part of the protected set: banning these
// cuts the host off from itself (loopback) or from its link (IPv4
// link-local, IPv6 link-local and multicast carry neighbour discovery and
// router advertisements).
func BuiltinProtected() []Protected {
	return []Protected{
		{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
		{netip.MustParsePrefix("::1/128"), "loopback"},
		{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
		{netip.MustParsePrefix("fe80::/10"), "link-local"},
		{netip.MustParsePrefix("ff00::/8"), "multicast"},
	}
}

// ProtectedSet is BuiltinProtected plus the host's own interface
// addresses, read now (they change with DHCP and VPNs: callers refresh).
// When the interfaces cannot be read the built-in part still comes back,
// with the error.
func ProtectedSet() ([]Protected, error) {
	out := BuiltinProtected()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out, fmt.Errorf("reading this host's addresses: %w", err)
	}
	for _, ia := range addrs {
		ipn, ok := ia.(*net.IPNet)
		if !ok {
			continue
		}
		a, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		p := netip.PrefixFrom(a, a.BitLen())
		if _, dup := Overlapping(out, p); dup {
			continue // loopback and link-local are covered already
		}
		out = append(out, Protected{Prefix: p, Reason: "address of this host"})
	}
	return out, nil
}

// Overlapping returns the first entry of set that p overlaps: a decision
// on a protected address, or on a range holding one, would cut it off.
func Overlapping(set []Protected, p netip.Prefix) (Protected, bool) {
	for _, e := range set {
		if e.Prefix.Overlaps(p) {
			return e, true
		}
	}
	return Protected{}, false
}

// String renders the entry for messages: "127.0.0.0/8 (loopback)".
func (e Protected) String() string { return e.Prefix.String() + " (" + e.Reason + ")" }
