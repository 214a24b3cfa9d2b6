// Package firewall keeps the kernel's packet filter in sync with a set of
// banned addresses: nftables through netlink, or ipset and iptables. It
// knows nothing of HTTP, the LAPI or the database; callers hand it
// elements. It never touches objects it did not create, and it never
// leaves a gap: changes to elements that stay banned are atomic.
package firewall

import (
	"context"
	"net/netip"
	"time"
)

// Element is one banned address or range and how long it stays banned.
type Element struct {
	Prefix  netip.Prefix  // masked; a host is /32 or /128
	Timeout time.Duration // remaining lifetime, > 0; the kernel expires it
}

// Family is the address family an operation concerns.
type Family int

// The two families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// Backend is one way of enforcing bans. Methods state the end state they
// ensure and are idempotent, so calling them again after a crash or a
// partial failure is always safe.
type Backend interface {
	// Name is "nftables", "iptables" or "ipset".
	Name() string
	// Ensure makes every object the backend owns (tables, chains, sets,
	// rules, jumps) exist exactly once, adopting what a previous run left
	// and never duplicating a rule. It does not remove set elements.
	Ensure(ctx context.Context) error
	// Apply removes dels, then adds adds; an element already present gets
	// the new timeout. Elements in both lists end up present. The work goes
	// to the kernel in few, large transactions and costs O(len(adds)+len(dels)).
	Apply(ctx context.Context, adds []Element, dels []netip.Prefix) error
	// Replace makes the sets hold exactly want. Elements of want that are
	// already present stay enforced throughout (no gap); others are removed.
	Replace(ctx context.Context, want []Element) error
	// Intact cheaply reports whether every owned object still exists as
	// Ensure left it; false means someone flushed or deleted something and
	// the caller should Ensure and Replace with its full state.
	Intact(ctx context.Context) (bool, error)
	// Counters returns the packets and bytes dropped by the ban rules, per
	// family, read from rule counters (never from a dump of the sets).
	Counters(ctx context.Context) (map[Family]Counter, error)
	// Flush deletes every object the backend created.
	Flush(ctx context.Context) error
	// Close releases the backend's sockets; kernel objects stay.
	Close() error
}

// TrafficCounter is implemented by backends that also count the traffic
// that traversed their chains. TrafficCounters returns, per family, what
// the ban rules dropped (as Backend.Counters) and what was processed,
// read together from rule counters.
type TrafficCounter interface {
	TrafficCounters(ctx context.Context) (dropped, processed map[Family]Counter, err error)
}

// Counter is packets and bytes matched by a rule.
type Counter struct {
	Packets uint64
	Bytes   uint64
}
