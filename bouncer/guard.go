package bouncer

import (
	"net"
	"net/netip"
	"sync"
)

// guard refuses bans that would lock the host out: loopback, the host's own
// addresses and the configured never_ban prefixes, whatever the LAPI says.
type guard struct {
	mu        sync.RWMutex
	protected []netip.Prefix
	static    []netip.Prefix
}

func newGuard(neverBan []netip.Prefix) *guard {
	g := &guard{static: append([]netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
	}, neverBan...)}
	g.refresh()
	return g
}

// refresh re-reads the host's addresses (they change with DHCP, VPNs...).
func (g *guard) refresh() {
	p := append([]netip.Prefix{}, g.static...)
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ad, ok := netip.AddrFromSlice(ipn.IP)
			if !ok || ad.IsLinkLocalUnicast() {
				continue
			}
			ad = ad.Unmap()
			p = append(p, netip.PrefixFrom(ad, ad.BitLen()))
		}
	}
	g.mu.Lock()
	g.protected = p
	g.mu.Unlock()
}

// blocks returns the protected prefix a ban on p would hit, if any. A range
// that merely contains a protected address is refused too.
func (g *guard) blocks(p netip.Prefix) (netip.Prefix, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, q := range g.protected {
		if q.Overlaps(p) {
			return q, true
		}
	}
	return netip.Prefix{}, false
}
