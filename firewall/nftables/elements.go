package nftables

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rampart-ips/rampart/firewall"
)

// Apply removes dels, then adds adds, in both families, and costs
// O(len(adds)+len(dels)): it never reads the set back.
//
//   - An element already present gets the new timeout: the kernel updates
//     the timeout of an element added again, with no gap.
//   - A prefix listed twice in adds ends with the later entry's timeout.
//   - Elements of a disabled family, invalid prefixes and timeouts that are
//     not positive are skipped and counted in Stats.
//   - Deleting an element that is not there is not an error.
//   - Overlapping elements (a /24 and a /32 inside it) are both kept: the
//     kernel gets disjoint segments, each timing out with the longest ban
//     covering it, and deleting one element leaves the others enforced.
//
// Apply knows the set's content from Ensure (a set it created is empty)
// and from its own work since; after a restart, call Replace first, or an
// element left by the previous run may collide with a new range (the
// transaction then fails and Intact reports false).
//
// Large lists go to the kernel in a few large transactions, and changes
// that reshape a range (delete and add of segments) share one transaction,
// so no address that stays banned is ever unbanned in between. When a
// transaction fails, the error says which, and Intact reports false until
// Replace has rewritten the sets.
func (b *Backend) Apply(ctx context.Context, adds []firewall.Element, dels []netip.Prefix) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	b.count(adds, dels)
	var errs []error
	if b.v4 != nil {
		if err := applyFamily(ctx, b, b.v4, adds, dels); err != nil {
			errs = append(errs, err)
		}
	}
	if b.v6 != nil {
		if err := applyFamily(ctx, b, b.v6, adds, dels); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Replace makes the sets hold exactly want. The backend keeps no memory
// across restarts and reading a set back is quadratic in the kernel (a
// million elements would take minutes), so it does not diff: if the set is
// empty it loads want in large transactions; otherwise it flushes the set
// and loads want in one single transaction. The kernel commits a
// transaction atomically, so an element of want that was present stays
// enforced throughout, and every other one is gone afterwards.
func (b *Backend) Replace(ctx context.Context, want []firewall.Element) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	b.count(want, nil)
	var errs []error
	if b.v4 != nil {
		if err := replaceFamily(ctx, b, b.v4, want); err != nil {
			errs = append(errs, err)
		}
	}
	if b.v6 != nil {
		if err := replaceFamily(ctx, b, b.v6, want); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// normalize masks p and maps an IPv4-mapped IPv6 prefix to IPv4.
func normalize(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() {
		return p, false
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return p, false
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

func timeoutMs(d time.Duration) (uint64, bool) {
	if d <= 0 {
		return 0, false
	}
	d = min(d, maxTimeout)
	return uint64(max(d.Milliseconds(), 1)), true
}

func (b *Backend) count(adds []firewall.Element, dels []netip.Prefix) {
	enabled := func(p netip.Prefix) bool {
		if p.Addr().Is4() {
			return b.v4 != nil
		}
		return b.v6 != nil
	}
	for _, e := range adds {
		p, ok := normalize(e.Prefix)
		_, tok := timeoutMs(e.Timeout)
		switch {
		case !ok || !tok:
			b.ignoredInvalid++
		case !enabled(p):
			b.ignoredDisabled++
		}
	}
	for _, d := range dels {
		p, ok := normalize(d)
		switch {
		case !ok:
			b.ignoredInvalid++
		case !enabled(p):
			b.ignoredDisabled++
		}
	}
}

func (b *Backend) nowMs() uint64 {
	return uint64(max(b.now().Sub(b.epoch).Milliseconds(), 0))
}

// legacyTxnBytes bounds transactions on kernels without destroy.
const legacyTxnBytes = 1 << 20

// sweepEvery is how often Apply forgets expired standalone hosts.
const sweepEvery = 300 // seconds

// plan records the adds (ranges first: hosts must find their cluster) and
// dels of one family in p.
func fill[A addr[A]](p *plan[A], adds []firewall.Element, dels []netip.Prefix) {
	for _, d := range dels {
		np, ok := normalize(d)
		if !ok {
			continue
		}
		first, last, ok := bounds[A](np)
		if !ok {
			continue
		}
		if first == last {
			p.delHost(first)
		} else {
			p.delRange(rng[A]{first, last})
		}
	}
	for pass := 0; pass < 2; pass++ {
		for _, e := range adds {
			np, ok := normalize(e.Prefix)
			ms, tok := timeoutMs(e.Timeout)
			if !ok || !tok {
				continue
			}
			first, last, ok := bounds[A](np)
			if !ok {
				continue
			}
			switch {
			case pass == 0 && first != last:
				p.addRange(rng[A]{first, last}, ms)
			case pass == 1 && first == last:
				p.addHost(first, ms)
			}
		}
		if pass == 0 {
			p.rangesDone()
		}
	}
	p.recompute()
}

func applyFamily[A addr[A]](ctx context.Context, b *Backend, e *elems[A], adds []firewall.Element, dels []netip.Prefix) error {
	if e.m == nil {
		return fmt.Errorf("nftables: apply %s: the set does not exist: call Ensure", e.spec)
	}
	now := b.nowMs()
	if sec := uint32(now / 1000); sec-e.lastSweep >= sweepEvery {
		e.m.sweep(sec)
		e.lastSweep = sec
	}
	if n := countFamily[A](adds); n > 1024 {
		// A large load: size the host map and the op list once instead of
		// growing them (growth keeps old and new tables alive at once).
		if len(e.m.hosts) == 0 {
			e.m.hosts = make(map[A]uint32, n)
		}
	}
	p := newPlan(e.m, now)
	p.adds = make([]op[A], 0, countFamily[A](adds))
	fill(p, adds, dels)
	if err := send(ctx, b, e, p, false); err != nil {
		e.tainted = true
		return fmt.Errorf("nftables: apply %s: %w", e.spec, err)
	}
	return nil
}

func replaceFamily[A addr[A]](ctx context.Context, b *Backend, e *elems[A], want []firewall.Element) error {
	if e.m == nil {
		return fmt.Errorf("nftables: replace %s: the set does not exist: call Ensure", e.spec)
	}
	hint := countFamily[A](want)
	now := b.nowMs()
	m := newModel[A](hint)
	p := newPlan(m, now)
	p.adds = make([]op[A], 0, hint)
	fill(p, want, nil)
	isEmpty, err := empty(ctx, b.cfg.NetNS, e.spec.ref())
	if err != nil {
		return fmt.Errorf("nftables: replace %s: %w", e.spec, err)
	}
	if err := send(ctx, b, e, p, !isEmpty); err != nil {
		e.tainted = true
		return fmt.Errorf("nftables: replace %s: %w", e.spec, err)
	}
	e.m, e.tainted, e.lastSweep = m, false, uint32(now/1000)
	return nil
}

// countFamily counts the elements of A's family in els.
func countFamily[A addr[A]](els []firewall.Element) int {
	n := 0
	for _, e := range els {
		if a := e.Prefix.Addr(); a.Is4() || a.Is4In6() {
			if _, ok := any(*new(A)).(ip4); ok {
				n++
			}
		} else if _, ok := any(*new(A)).(ip6); ok {
			n++
		}
	}
	return n
}

// delMode returns the message type for deletes and whether each deleted
// element needs a message of its own (kernels without destroy).
func (b *Backend) delMode(ctx context.Context, s *setRef) (uint16, bool, error) {
	if !b.delProbed {
		ok, err := b.el.destroySupported(ctx, s.table, s.family)
		if err != nil {
			return 0, false, err
		}
		b.delProbed, b.legacyDel = true, !ok
	}
	if b.legacyDel {
		return msgDelSetElem, true, nil
	}
	return msgDestroySetElm, false, nil
}

// send writes the plan to the kernel. With flush, everything goes in one
// transaction that first empties the set; otherwise cluster changes go
// first and the rest follows in transactions of about b.txnBytes.
func send[A addr[A]](ctx context.Context, b *Backend, e *elems[A], p *plan[A], flush bool) error {
	s := e.spec.ref()
	delType, own, err := b.delMode(ctx, s)
	if err != nil {
		return err
	}
	sortOps(p.adds)
	limit := b.txnBytes
	switch {
	case flush:
		limit = math.MaxInt
	case own:
		// One message per deleted element: keep the possible error
		// reports well inside the receive buffer.
		limit = min(limit, legacyTxnBytes)
	}
	var t txn
	t.flush = flush
	if est := estimateBytes(s, len(p.gadds)+len(p.adds)); limit < math.MaxInt {
		t.adds.b = make([]byte, 0, min(est, limit+maxListBytes))
	} else {
		t.adds.b = make([]byte, 0, est)
	}
	n, done := 0, 0
	total := len(p.gdels) + len(p.gadds) + len(p.dels) + len(p.adds)
	commit := func() error {
		n++
		pts := t.points()
		err := b.commit(ctx, s, &t, own)
		t.reset()
		if err != nil {
			return fmt.Errorf("transaction %d (%d elements, %d of %d changes sent before): %w", n, pts, done, total, err)
		}
		return nil
	}
	for _, o := range p.gdels {
		putDel(&t.dels, b.el, delType, s, o, own)
	}
	for _, o := range p.gadds {
		putAdd(&t.adds, b.el, s, o)
	}
	done += len(p.gdels) + len(p.gadds)
	for _, o := range p.dels {
		done++
		if o.ms == cancelled {
			continue
		}
		putDel(&t.dels, b.el, delType, s, o, own)
		if t.size() >= limit {
			if err := commit(); err != nil {
				return err
			}
		}
	}
	for _, o := range p.adds {
		done++
		putAdd(&t.adds, b.el, s, o)
		if t.size() >= limit {
			if err := commit(); err != nil {
				return err
			}
		}
	}
	if t.size() == 0 && !t.flush {
		return nil
	}
	return commit()
}

// estimateBytes is the encoded size of n interval adds, with room for
// message headers.
func estimateBytes(s *setRef, n int) int {
	per := 2*(4+8+s.keyLen) + 12 + 8 // start and end elements, timeout, flags
	return n*per + n*per/maxListBytes*96 + 4096
}

// commit sends one transaction. Without destroy, deleting an absent
// element fails the whole transaction; each delete then has a message of
// its own, the kernel reports every failed message, and the transaction is
// sent again without the deletes it found absent.
func (b *Backend) commit(ctx context.Context, s *setRef, t *txn, own bool) error {
	err := b.el.commit(ctx, s, t)
	if err == nil || !own {
		return err
	}
	var te *txnError
	if !errors.As(err, &te) {
		return err
	}
	dels := make(map[uint32]bool, len(t.dels.spans))
	for _, sp := range t.dels.spans {
		dels[sp.seq] = true
	}
	drop := map[uint32]bool{}
	for _, me := range te.errs {
		if me.errno != unix.ENOENT || !dels[me.seq] {
			return err
		}
		drop[me.seq] = true
	}
	t.dels = t.dels.without(drop)
	return b.el.commit(ctx, s, t)
}
