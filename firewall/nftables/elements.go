package nftables

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/google/nftables"
	log "github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/rampart-ips/rampart/firewall"
)

// Apply removes dels, then adds adds, in both families, and costs
// O(len(adds)+len(dels)): it never reads the sets back.
//
//   - Single addresses (/32, /128) go to the host set, ranges to the
//     interval set; the two never interact in the kernel.
//   - An element already present gets the new timeout: the kernel updates
//     the timeout of an element added again, with no gap.
//   - A prefix listed twice in adds ends with the later entry's timeout.
//   - Elements of a disabled family, invalid prefixes and timeouts that are
//     not positive are skipped and counted in Stats.
//   - Deleting an element that is not there is not an error.
//   - Overlapping ranges (a /16 and a /24 inside it) are both kept: the
//     interval set gets disjoint segments, each timing out with the
//     longest range covering it, and deleting one range leaves the others
//     enforced. A host inside a banned range is in the host set as well:
//     deleting either leaves the other enforced.
//
// Apply knows the interval set's content from Ensure (a set it created is
// empty) and from its own work since; after a restart, call Replace first,
// or a range left by the previous run may collide with a new one (the
// transaction then fails and Intact reports false).
//
// Changes go to the kernel in transactions of about Backend.txnBytes: host
// adds first, then all range changes in a transaction of their own
// (deletes and adds of segments of a reshaped range must share one), then
// host deletes. So an address whose ban moves from a range to a host or
// back is never unbanned in between, and a host deleted and added in one
// call is only refreshed. When a transaction fails, the error says which, and Intact
// reports false until Replace has rewritten the sets.
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
// million elements would take minutes), so it does not diff: an empty set
// is loaded like Apply does; a set that holds anything is flushed and
// reloaded in one single transaction, which the kernel commits
// atomically. The host set is handled before and after the interval set
// (see send), so an element of want that was present stays enforced
// throughout, even when its ban moves between a range and a host, and
// every other one is gone afterwards.
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

// sweepEvery is how often Apply forgets expired hosts and ranges.
const sweepEvery = 300 // seconds

// cancelled marks a planned host delete that a later add of the same host
// made unnecessary.
const cancelled = math.MaxUint64

// work is one family's changes to send: range operations (planned by the
// model) and host deletes up front; host adds are encoded straight from
// the caller's list while it is sent, never copied.
type work[A addr[A]] struct {
	p     *plan[A]
	ch    []hostEntry[A] // host changes, in the order sent
	nowMs uint64
	dels  []op[A] // host deletes; ms == cancelled when a later add wins
	delAt map[A]int
	adds  []firewall.Element
	nAdds int // host adds of the family in adds
	// For Replace: whether the sets held anything. Apply leaves both
	// false.
	replace, hostsFull, rangesFull bool
}

// element maps a prefix to A's family: its bounds, or ok false.
func element[A addr[A]](p netip.Prefix) (first, last A, ok bool) {
	np, ok := normalize(p)
	if !ok {
		return first, last, false
	}
	return bounds[A](np)
}

// prepare plans the range changes and collects the host deletes.
func prepare[A addr[A]](w *work[A], adds []firewall.Element, dels []netip.Prefix) {
	p := w.p
	w.delAt = map[A]int{}
	for _, d := range dels {
		first, last, ok := element[A](d)
		if !ok {
			continue
		}
		if first != last {
			p.delRange(rng[A]{first, last})
			continue
		}
		if _, dup := w.delAt[first]; !dup {
			// Also when not known: the kernel may hold it from a
			// previous run, and deleting an absent element is harmless.
			w.delAt[first] = len(w.dels)
			w.dels = append(w.dels, op[A]{first: first, last: first})
		}
	}
	w.adds = adds
	for _, e := range adds {
		ms, tok := timeoutMs(e.Timeout)
		if !tok {
			continue
		}
		first, last, ok := element[A](e.Prefix)
		switch {
		case !ok:
		case first != last:
			p.addRange(rng[A]{first, last}, ms)
		default:
			w.nAdds++
		}
	}
	p.recompute()
	w.ch = make([]hostEntry[A], 0, len(w.dels)+w.nAdds)
	for _, d := range w.dels {
		w.ch = append(w.ch, hostEntry[A]{key: d.first})
	}
}

func applyFamily[A addr[A]](ctx context.Context, b *Backend, e *elems[A], adds []firewall.Element, dels []netip.Prefix) error {
	if e.m == nil {
		return fmt.Errorf("nftables: apply %s: the sets do not exist: call Ensure", e.spec)
	}
	now := b.nowMs()
	sec := uint32(now / 1000)
	sweep := sec-e.lastSweep >= sweepEvery
	if sweep {
		e.m.sweep(sec)
		e.lastSweep = sec
	}
	w := &work[A]{p: newPlan(e.m, now), nowMs: now}
	prepare(w, adds, dels)
	err := send(ctx, b, e, w)
	e.hosts.apply(w.ch, sec, sweep) // also after a failure: what was meant
	if err != nil {
		e.tainted = true
		return fmt.Errorf("nftables: apply %s: %w", e.spec, err)
	}
	return nil
}

func replaceFamily[A addr[A]](ctx context.Context, b *Backend, e *elems[A], want []firewall.Element) error {
	if e.m == nil {
		return fmt.Errorf("nftables: replace %s: the sets do not exist: call Ensure", e.spec)
	}
	now := b.nowMs()
	m := newModel[A]()
	w := &work[A]{p: newPlan(m, now), nowMs: now}
	prepare(w, want, nil)
	w.replace = true
	for _, full := range []struct {
		ref *setRef
		b   *bool
	}{{e.spec.hostRef(), &w.hostsFull}, {e.spec.ref(), &w.rangesFull}} {
		isEmpty, err := empty(ctx, b.cfg.NetNS, full.ref)
		if err != nil {
			return fmt.Errorf("nftables: replace %s: %w", e.spec, err)
		}
		*full.b = !isEmpty
	}
	// Let the old index go before building the new one.
	e.hosts = &hostIndex[A]{}
	err := send(ctx, b, e, w)
	e.hosts.apply(w.ch, uint32(now/1000), true)
	e.m, e.lastSweep = m, uint32(now/1000)
	if err == nil && e.spec.lay.migrating() {
		err = migrate(ctx, b, e, want)
	}
	if err != nil {
		e.tainted = true
		return fmt.Errorf("nftables: replace %s: %w", e.spec, err)
	}
	e.tainted = false
	return nil
}

// migrate moves a family from the older layout to the current one once
// Replace has loaded the whole state (want) into the older host set and
// the new range set, never leaving a gap. The older interval set goes,
// with its rule, in the transaction that creates the new host set under
// its name and the rule matching it; ranges are enforced by the range set
// and addresses by the older host set meanwhile. Then the addresses are
// loaded into the new host set, and only then the older host set and its
// rule go. A failure leaves a layout Ensure adopts and the next Replace
// finishes.
func migrate[A addr[A]](ctx context.Context, b *Backend, e *elems[A], want []firewall.Element) error {
	f := e.spec
	c := b.nft
	t := f.table()
	chains, err := b.chainsOf(f)
	if err != nil {
		return err
	}
	// rulesOf lists our chains' rules, ready for DelRule.
	rulesOf := func() (map[string][]*nftables.Rule, error) {
		out := map[string][]*nftables.Rule{}
		for _, cs := range f.chains {
			ex := findChain(chains, cs.name)
			if ex == nil {
				return nil, fmt.Errorf("chain %s is missing", cs.name)
			}
			rules, err := c.GetRules(t, ex)
			if err != nil {
				return nil, fmt.Errorf("list rules of chain %s: %w", cs.name, err)
			}
			for _, r := range rules {
				r.Table, r.Chain = t, ex
			}
			out[cs.name] = rules
		}
		return out, nil
	}
	if f.lay.oldRanges {
		sets, _, err := b.findSets(f)
		if err != nil {
			return err
		}
		rules, err := rulesOf()
		if err != nil {
			return err
		}
		oldTag := ruleTag(&b.cfg, f, f.cfg.Set, "v1")
		rangeTag := ruleTag(&b.cfg, f, f.rangeSet(), "v2")
		next := layout{hosts: f.cfg.Set, ranges: f.rangeSet(), oldHosts: true}
		hosts := &nftables.Set{Table: t, Name: f.cfg.Set, KeyType: f.keyType, HasTimeout: true}
		for _, cs := range f.chains {
			if r := findTagged(rules[cs.name], oldTag); r != nil {
				if err := c.DelRule(r); err != nil {
					return fmt.Errorf("delete the older range rule in chain %s: %w", cs.name, err)
				}
			}
		}
		if old := sets[f.cfg.Set]; old != nil {
			c.DelSet(old)
		}
		if err := c.AddSet(hosts, nil); err != nil {
			return fmt.Errorf("add set %s: %w", hosts.Name, err)
		}
		for _, cs := range f.chains {
			ch := findChain(chains, cs.name)
			r := &nftables.Rule{Table: t, Chain: ch, Exprs: ruleExprs(&b.cfg, f, hosts), UserData: ruleTag(&b.cfg, f, hosts.Name, "v2")}
			if rr := findTagged(rules[cs.name], rangeTag); rr != nil {
				r.Position = rr.Handle
				c.InsertRule(r) // just before the range rule
			} else {
				c.AddRule(r)
			}
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("replace the older interval set %s by a host set: %w", f.cfg.Set, err)
		}
		f.lay = next
		// The addresses again, into the new host set; the range plan of
		// this second pass is thrown away (the ranges are in place).
		w := &work[A]{p: newPlan(newModel[A](), b.nowMs()), nowMs: b.nowMs()}
		prepare(w, want, nil)
		w.p.gadds, w.p.gdels = nil, nil
		if err := send(ctx, b, e, w); err != nil {
			return fmt.Errorf("load addresses into %s: %w", f.cfg.Set, err)
		}
	}
	if f.lay.oldHosts {
		sets, _, err := b.findSets(f)
		if err != nil {
			return err
		}
		rules, err := rulesOf()
		if err != nil {
			return err
		}
		oldTag := ruleTag(&b.cfg, f, f.oldHostSet(), "v1")
		for _, cs := range f.chains {
			if r := findTagged(rules[cs.name], oldTag); r != nil {
				if err := c.DelRule(r); err != nil {
					return fmt.Errorf("delete the older host rule in chain %s: %w", cs.name, err)
				}
			}
		}
		if old := sets[f.oldHostSet()]; old != nil {
			c.DelSet(old)
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("delete the older host set %s: %w", f.oldHostSet(), err)
		}
		f.lay.oldHosts = false
		log.WithFields(log.Fields{"backend": "nftables", "table": t.Name}).Infof("%s moved to the current set layout: addresses in %s, ranges in %s",
			f, f.cfg.Set, f.rangeSet())
	}
	return nil
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

// send writes the work to the kernel.
//
// The kernel commits a transaction atomically within each set, but not
// across sets: on Linux 6.18 the interval set publishes its new lookup
// structure only after the generation switch that already hides the host
// set's deleted elements (a probe was seen to pass in between, while a ban
// moved from a host to a range in one transaction). So a change that
// moves coverage between the sets never shares a transaction: host adds
// are committed first, then the range changes, then host deletes.
//
// For Apply: host adds in transactions of about b.txnBytes, the range
// changes in one transaction of their own, then host deletes likewise
// (host adds and deletes share transactions when there is no range
// change). For Replace: the hosts are added first (only if the host set is
// empty, when this is the whole load, or if old ranges might go); then the
// interval set is flushed (if not empty) and reloaded in one transaction;
// then, if the host set held anything, it is flushed and reloaded in one
// transaction. Each set's own flush and reload is atomic, so nothing that
// stays banned is unbanned in between.
func send[A addr[A]](ctx context.Context, b *Backend, e *elems[A], w *work[A]) error {
	rs, hs := e.spec.ref(), e.spec.hostRef()
	delType, own, err := b.delMode(ctx, rs)
	if err != nil {
		return err
	}
	p := w.p
	sortOps(p.gadds)
	limit := b.txnBytes
	if own {
		// One message per deleted element: keep the possible error
		// reports well inside the receive buffer.
		limit = min(limit, legacyTxnBytes)
	}
	var t txn
	n, done := 0, 0
	total := w.nAdds + len(p.gdels) + len(p.gadds) + len(w.dels)
	commit := func() error {
		if t.size() == 0 && len(t.flush) == 0 {
			return nil
		}
		n++
		pts := t.points()
		err := b.commit(ctx, &t, own)
		t.reset()
		if err != nil {
			return fmt.Errorf("transaction %d (%d elements, %d of %d changes sent before): %w", n, pts, done, total, err)
		}
		done += pts
		return nil
	}
	// hostAdds writes the host adds, committing at limit; record notes
	// them in w.ch.
	hostAdds := func(limit int, record bool) error {
		est := estimateHostBytes(hs, w.nAdds)
		if limit < math.MaxInt-maxListBytes {
			est = min(est, limit+maxListBytes)
		}
		if cap(t.adds.b) < est {
			t.adds.b = make([]byte, 0, est)
		}
		for i := range w.adds {
			ms, tok := timeoutMs(w.adds[i].Timeout)
			if !tok {
				continue
			}
			h, last, ok := element[A](w.adds[i].Prefix)
			if !ok || h != last {
				continue
			}
			if record {
				w.ch = append(w.ch, hostEntry[A]{key: h, exp: expiry(w.nowMs, ms)})
				if j, ok := w.delAt[h]; ok {
					w.dels[j].ms = cancelled
					delete(w.delAt, h)
				}
			}
			putHost(&t.adds, b.el, msgNewSetElem, hs, h, ms, false)
			if t.size() >= limit {
				if err := commit(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	ranges := func() error {
		for _, o := range p.gdels {
			putDel(&t.dels, b.el, delType, rs, o, own)
		}
		for _, o := range p.gadds {
			putAdd(&t.adds, b.el, rs, o)
		}
		return commit()
	}

	if w.replace {
		if !w.hostsFull || w.rangesFull {
			if err := hostAdds(limit, !w.hostsFull); err != nil {
				return err
			}
			if err := commit(); err != nil {
				return err
			}
		}
		if w.rangesFull {
			t.flush = append(t.flush, rs)
		}
		if err := ranges(); err != nil {
			return err
		}
		if w.hostsFull {
			t.flush = append(t.flush, hs)
			if err := hostAdds(math.MaxInt, true); err != nil {
				return err
			}
		}
		return commit()
	}

	if err := hostAdds(limit, true); err != nil {
		return err
	}
	if len(p.gdels)+len(p.gadds) > 0 {
		if err := commit(); err != nil {
			return err
		}
		if err := ranges(); err != nil {
			return err
		}
	}
	for _, o := range w.dels {
		if t.size() >= limit {
			if err := commit(); err != nil {
				return err
			}
		}
		if o.ms != cancelled {
			putHost(&t.dels, b.el, delType, hs, o.first, 0, own)
		}
	}
	return commit()
}

// estimateBytes is the encoded size of n interval adds, with room for
// message headers.
func estimateBytes(s *setRef, n int) int {
	per := 2*(4+8+s.keyLen) + 12 + 8 // start and end elements, timeout, flags
	return n*per + n*per/maxListBytes*96 + 4096
}

// estimateHostBytes is the encoded size of n host adds.
func estimateHostBytes(s *setRef, n int) int {
	per := 4 + 8 + s.keyLen + 12 // element, key, timeout
	return n*per + n*per/maxListBytes*96 + 4096
}

// commit sends one transaction. Without destroy, deleting an absent
// element fails the whole transaction; each delete then has a message of
// its own, the kernel reports every failed message, and the transaction is
// sent again without the deletes it found absent.
func (b *Backend) commit(ctx context.Context, t *txn, own bool) error {
	err := b.el.commit(ctx, t)
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
	return b.el.commit(ctx, t)
}

// Empty reports whether every set of ours holds no element, reading only
// the start of a dump per set. A caller that finds them empty may load its
// first state with Apply as it arrives instead of one Replace at the end.
func (b *Backend) Empty(ctx context.Context) (bool, error) {
	for _, check := range []func() (bool, error){
		func() (bool, error) { return famEmpty(ctx, b, b.v4) },
		func() (bool, error) { return famEmpty(ctx, b, b.v6) },
	} {
		ok, err := check()
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func famEmpty[A addr[A]](ctx context.Context, b *Backend, e *elems[A]) (bool, error) {
	if e == nil {
		return true, nil
	}
	if e.m == nil {
		return false, fmt.Errorf("nftables: %s: the sets do not exist: call Ensure", e.spec)
	}
	if e.spec.lay.migrating() {
		return false, nil // the older sets may hold anything: only Replace moves them
	}
	for _, ref := range []*setRef{e.spec.hostRef(), e.spec.ref()} {
		ok, err := empty(ctx, b.cfg.NetNS, ref)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}
