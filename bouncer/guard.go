package bouncer

import (
	"net/netip"
	"sync"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/internal/netaddr"
)

// guard refuses bans that would lock the host out, whatever the LAPI says:
// netaddr's protected set (loopback, link-local, IPv6 multicast, the
// host's own addresses) and the configured never_ban prefixes.
type guard struct {
	log *log.Entry

	mu        sync.RWMutex
	protected []netaddr.Protected
	neverBan  []netaddr.Protected
}

func newGuard(neverBan []netip.Prefix, lg *log.Entry) *guard {
	g := &guard{log: lg}
	for _, p := range neverBan {
		g.neverBan = append(g.neverBan, netaddr.Protected{Prefix: p, Reason: "never_ban"})
	}
	g.refresh()
	return g
}

// refresh re-reads the host's addresses (they change with DHCP, VPNs...).
func (g *guard) refresh() {
	p, err := netaddr.ProtectedSet()
	if err != nil {
		g.log.WithError(err).Warn("protecting loopback, link-local and multicast only")
	}
	p = append(p, g.neverBan...)
	g.mu.Lock()
	g.protected = p
	g.mu.Unlock()
}

// blocks returns the protected entry a ban on p would hit, if any. A range
// that merely contains a protected address is refused too.
func (g *guard) blocks(p netip.Prefix) (netaddr.Protected, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return netaddr.Overlapping(g.protected, p)
}
