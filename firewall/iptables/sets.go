package iptables

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/rampart-ips/rampart/firewall"
	"golang.org/x/sys/unix"
)

// toKey converts p to the kernel's form: masked, zone dropped, an
// IPv4-mapped IPv6 prefix turned into IPv4.
func toKey(p netip.Prefix) (key, firewall.Family, bool) {
	if !p.IsValid() {
		return key{}, 0, false
	}
	a, n := p.Addr().WithZone(""), p.Bits()
	if a.Is4In6() && n >= 96 {
		a, n = a.Unmap(), n-96
	}
	p, err := a.Prefix(n)
	if err != nil {
		return key{}, 0, false
	}
	if p.Addr().Is4() {
		b := p.Addr().As4()
		return key{lo: uint64(binary.BigEndian.Uint32(b[:])), bits: uint8(n)}, firewall.IPv4, true
	}
	b := p.Addr().As16()
	return key{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), bits: uint8(n)}, firewall.IPv6, true
}

func (k key) prefix(fam firewall.Family) netip.Prefix {
	if fam == firewall.IPv4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(k.lo))
		return netip.PrefixFrom(netip.AddrFrom4(b), int(k.bits))
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.hi)
	binary.BigEndian.PutUint64(b[8:], k.lo)
	return netip.PrefixFrom(netip.AddrFrom16(b), int(k.bits))
}

// invalidPrefixes reports prefixes that are no address at all; they are
// skipped, everything else is applied.
func invalidPrefixes(adds []firewall.Element, dels []netip.Prefix) error {
	n := 0
	for _, e := range adds {
		if !e.Prefix.IsValid() {
			n++
		}
	}
	for _, p := range dels {
		if !p.IsValid() {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("iptables backend: skipped %d invalid prefixes", n)
}

// seconds converts a ban's remaining lifetime to an ipset timeout: rounded
// up, at least 1 (0 would mean "forever"), at most the kernel's cap.
func (b *Backend) seconds(d time.Duration) uint32 {
	if d > MaxTimeout {
		if !b.capped.Swap(true) {
			b.log.Warnf("ban duration %s exceeds the kernel's ipset timeout limit; capping such bans at %d s (%s); this is logged once", d, int64(MaxTimeout/time.Second), MaxTimeout)
		}
		return uint32(MaxTimeout / time.Second)
	}
	s := (d + time.Second - 1) / time.Second
	if s < 1 {
		s = 1
	}
	return uint32(s)
}

// tmpName is the name a set is rebuilt under before being swapped in.
func tmpName(set string) string {
	const suffix = "-grow"
	if len(set)+len(suffix) > ipsetMaxNameLen {
		set = set[:ipsetMaxNameLen-len(suffix)]
	}
	return set + suffix
}

func (b *Backend) revision(f *family) (uint8, error) {
	if f.rev == 0 {
		rev, err := b.nl.typeRevision(setType, f.af)
		if err != nil {
			return 0, err
		}
		f.rev = rev
	}
	return f.rev, nil
}

// ensureSet adopts the family's set if it exists and suits us, and creates
// it otherwise. It also removes the temporary set of a rebuild that a
// crash interrupted.
func (b *Backend) ensureSet(ctx context.Context, f *family) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h, err := b.nl.header(f.set)
	switch {
	case err == nil:
		if h.typename != setType {
			return fmt.Errorf("set %s exists with type %s; it must be %s (destroy it or configure another name)", f.set, h.typename, setType)
		}
		if h.family != f.af {
			return fmt.Errorf("set %s exists for the other address family; it must be family %s", f.set, familyName(f.af))
		}
		f.timeouts = h.timeout != nil
		if !f.timeouts {
			b.log.Warnf("set %s has no timeout support: bans stay until deleted (recreate it with `timeout 0` to fix)", f.set)
		}
		f.maxelem, f.bound = h.maxelem, int(h.elements)
		if !f.adopted {
			f.adopted = true
			b.log.Infof("adopting existing set %s (%d elements, maxelem %d)", f.set, h.elements, h.maxelem)
		}
	case isNotExist(err):
		rev, err := b.revision(f)
		if err != nil {
			return err
		}
		t := uint32(defaultSetTimeout)
		err = b.nl.create(f.set, createOpts{typename: setType, revision: rev, family: f.af, maxelem: uint32(b.cfg.SetSize), timeout: &t})
		if err != nil && !errors.Is(err, syscall.EEXIST) {
			return err
		}
		f.created, f.timeouts, f.adopted = err == nil, true, true
		f.maxelem, f.bound = uint32(b.cfg.SetSize), 0
		if err != nil { // lost a race with another creator: ask
			f.bound = int(^uint(0) >> 2)
		}
		if b.cfg.Mode == ModeIPSet {
			b.log.Warnf("created set %s (ipset mode): nothing drops its members until your own rules reference it", f.set)
		} else {
			b.log.Infof("created set %s (%s %s maxelem %d)", f.set, setType, familyName(f.af), b.cfg.SetSize)
		}
	default:
		return err
	}
	tmp := tmpName(f.set)
	if ok, _ := b.nl.exists(tmp); ok {
		if err := b.nl.destroy(tmp); err != nil {
			b.log.Warnf("leftover set %s of an interrupted rebuild: %v", tmp, err)
		} else {
			b.log.Infof("destroyed set %s left by an interrupted rebuild", tmp)
		}
	}
	return nil
}

func familyName(af uint8) string {
	if af == unix.AF_INET6 {
		return "inet6"
	}
	return "inet"
}

// rejected turns kernel refusals into one error naming a few of them.
func rejected(verb, set string, rej []rejection, prefixAt func(int) netip.Prefix) error {
	if len(rej) == 0 {
		return nil
	}
	const show = 3
	var s string
	for i, r := range rej[:min(show, len(rej))] {
		if i > 0 {
			s += "; "
		}
		s += fmt.Sprintf("%s: %v", prefixAt(r.index), r.err)
	}
	if len(rej) > show {
		s += fmt.Sprintf("; and %d more", len(rej)-show)
	}
	return fmt.Errorf("ipset %s %s: kernel refused %d elements: %s", verb, set, len(rej), s)
}

func (b *Backend) applyFamily(ctx context.Context, f *family, adds []firewall.Element, dels []netip.Prefix) error {
	var errs []error
	if len(dels) > 0 {
		// Deletes of elements that are also added are dropped: the add
		// refreshes them, and deleting first would open a gap.
		cancel := map[key]bool{}
		for _, p := range dels {
			if k, fam, ok := toKey(p); ok && fam == f.fam {
				cancel[k] = false
			}
		}
		if len(cancel) > 0 {
			for _, e := range adds {
				if k, fam, ok := toKey(e.Prefix); ok && fam == f.fam {
					if _, hit := cancel[k]; hit {
						cancel[k] = true
					}
				}
			}
			src := func(i int) (key, uint32, bool) {
				k, fam, ok := toKey(dels[i])
				return k, 0, ok && fam == f.fam && !cancel[k]
			}
			rej, err := b.nl.adt(ctx, ipsetCmdDel, f.set, f.af, false, 0, len(dels), src)
			if err != nil {
				return fmt.Errorf("ipset del from %s: %w", f.set, err)
			}
			errs = append(errs, rejected("del from", f.set, rej, func(i int) netip.Prefix { return dels[i] }))
		}
	}

	n := 0
	for _, e := range adds {
		if _, fam, ok := toKey(e.Prefix); ok && fam == f.fam {
			n++
		}
	}
	if n == 0 {
		return errors.Join(errs...)
	}
	src := func(i int) (key, uint32, bool) {
		k, fam, ok := toKey(adds[i].Prefix)
		if !ok || fam != f.fam {
			return k, 0, false
		}
		return k, b.seconds(adds[i].Timeout), true
	}
	if f.bound+n > int(f.maxelem) {
		h, err := b.nl.header(f.set)
		if err != nil {
			return err
		}
		f.maxelem, f.bound = h.maxelem, int(h.elements)
		if need := int(h.elements) + n; need > int(h.maxelem) {
			if err := b.grow(ctx, f, h, need, b.copyLive(ctx, f)); err != nil {
				return err
			}
		}
	}
	defer func() { f.bound += n }()
	var all []rejection
	for start, tries := 0, 0; ; tries++ {
		rej, err := b.nl.adt(ctx, ipsetCmdAdd, f.set, f.af, f.timeouts, start, len(adds), src)
		all = append(all, rej...)
		var full *errSetFull
		if errors.As(err, &full) && tries < 3 {
			// Someone else filled the set meanwhile: grow and go on.
			h, herr := b.nl.header(f.set)
			if herr != nil {
				return herr
			}
			if gerr := b.grow(ctx, f, h, int(h.elements)+len(adds)-full.at, b.copyLive(ctx, f)); gerr != nil {
				return gerr
			}
			start = full.at
			continue
		}
		if err != nil {
			return fmt.Errorf("ipset add to %s: %w", f.set, err)
		}
		break
	}
	errs = append(errs, rejected("add to", f.set, all, func(i int) netip.Prefix { return adds[i].Prefix }))
	return errors.Join(errs...)
}

// copyLive returns a fill function that copies the live set's members, with
// their remaining timeouts, into the new one.
func (b *Backend) copyLive(ctx context.Context, f *family) func(string) error {
	return func(tmp string) error {
		var h header
		var ms []member
		collect := func(m member) {
			if ms == nil {
				ms = make([]member, 0, h.elements) // the header precedes the members
			}
			ms = append(ms, m)
		}
		if err := b.nl.list(f.set, false, &h, collect); err != nil {
			return err
		}
		src := func(i int) (key, uint32, bool) { return ms[i].k, ms[i].timeout, true }
		rej, err := b.nl.adt(ctx, ipsetCmdAdd, tmp, f.af, f.timeouts, 0, len(ms), src)
		if err != nil {
			return fmt.Errorf("ipset copy %s to %s: %w", f.set, tmp, err)
		}
		return rejected("copy to", tmp, rej, func(i int) netip.Prefix { return ms[i].k.prefix(f.fam) })
	}
}

// grow builds a set like the live one (type, revision, family, default
// timeout, extensions) with room for 2*need elements, fills it, swaps it
// with the live set in one atomic kernel operation (rules keep pointing at
// the name, so nothing stops being enforced) and destroys the old one.
func (b *Backend) grow(ctx context.Context, f *family, h header, need int, fill func(tmp string) error) error {
	maxelem := uint32(min(maxMaxelem, 1<<bits.Len(uint(max(2*need-1, 1)))))
	maxelem = max(maxelem, h.maxelem)
	if need > int(maxelem) {
		return fmt.Errorf("set %s: %d elements exceed the largest set this backend builds (%d)", f.set, need, maxMaxelem)
	}
	tmp := tmpName(f.set)
	if err := b.nl.destroy(tmp); err != nil && !isNotExist(err) {
		return fmt.Errorf("rebuild %s: %w", f.set, err)
	}
	start := time.Now()
	opts := createOpts{
		typename: h.typename, revision: h.revision, family: h.family,
		maxelem: maxelem, hashsize: hashsizeFor(need), timeout: h.timeout, cadtFlags: h.cadtFlags,
	}
	if err := b.nl.create(tmp, opts); err != nil {
		return fmt.Errorf("rebuild %s: %w", f.set, err)
	}
	if err := fill(tmp); err != nil {
		if derr := b.nl.destroy(tmp); derr != nil {
			err = errors.Join(err, derr)
		}
		return fmt.Errorf("rebuild %s: %w", f.set, err)
	}
	if err := b.nl.swap(f.set, tmp); err != nil {
		if derr := b.nl.destroy(tmp); derr != nil {
			err = errors.Join(err, derr)
		}
		return fmt.Errorf("rebuild %s: %w", f.set, err)
	}
	if err := b.nl.destroy(tmp); err != nil {
		return fmt.Errorf("rebuild %s: old set: %w", f.set, err)
	}
	f.maxelem, f.bound = maxelem, need
	b.log.Infof("set %s rebuilt for %d elements: maxelem %d -> %d in %s", f.set, need, h.maxelem, maxelem, time.Since(start).Round(time.Millisecond))
	return nil
}

// hashsizeFor sizes the initial hash table of a set rebuilt for need
// elements, so that the kernel does not rehash it over and over while it
// fills; 0 leaves the kernel's default.
func hashsizeFor(need int) uint32 {
	if need <= 4096 {
		return 0
	}
	return uint32(min(1<<24, 1<<bits.Len(uint(need/4))))
}

func (b *Backend) replaceFamily(ctx context.Context, f *family, want []firewall.Element) error {
	var h header
	var cur []key
	collect := func(m member) {
		if cur == nil {
			cur = make([]key, 0, h.elements) // the header precedes the members
		}
		cur = append(cur, m.k)
	}
	if err := b.nl.list(f.set, false, &h, collect); err != nil {
		return err
	}
	slices.SortFunc(cur, key.cmp)
	keep := make([]bool, len(cur))
	fresh, n := 0, 0
	for _, e := range want {
		k, fam, ok := toKey(e.Prefix)
		if !ok || fam != f.fam {
			continue
		}
		n++
		if i, found := slices.BinarySearchFunc(cur, k, key.cmp); found {
			keep[i] = true
		} else {
			fresh++
		}
	}
	src := func(i int) (key, uint32, bool) {
		k, fam, ok := toKey(want[i].Prefix)
		if !ok || fam != f.fam {
			return k, 0, false
		}
		return k, b.seconds(want[i].Timeout), true
	}
	fillWant := func(tmp string) error {
		rej, err := b.nl.adt(ctx, ipsetCmdAdd, tmp, f.af, f.timeouts, 0, len(want), src)
		if err != nil {
			return fmt.Errorf("ipset add to %s: %w", tmp, err)
		}
		return rejected("add to", tmp, rej, func(i int) netip.Prefix { return want[i].Prefix })
	}
	if len(cur)+fresh > int(h.maxelem) {
		// Adding before deleting would overflow: build the wanted set
		// aside and swap it in; wanted elements never leave the kernel.
		return b.grow(ctx, f, h, n, fillWant)
	}
	rej, err := b.nl.adt(ctx, ipsetCmdAdd, f.set, f.af, f.timeouts, 0, len(want), src)
	var full *errSetFull
	if errors.As(err, &full) {
		return b.grow(ctx, f, h, n, fillWant)
	}
	if err != nil {
		return fmt.Errorf("ipset add to %s: %w", f.set, err)
	}
	errs := []error{rejected("add to", f.set, rej, func(i int) netip.Prefix { return want[i].Prefix })}
	stale := func(i int) (key, uint32, bool) { return cur[i], 0, !keep[i] }
	rej, err = b.nl.adt(ctx, ipsetCmdDel, f.set, f.af, false, 0, len(cur), stale)
	if err != nil {
		return fmt.Errorf("ipset del from %s: %w", f.set, err)
	}
	errs = append(errs, rejected("del from", f.set, rej, func(i int) netip.Prefix { return cur[i].prefix(f.fam) }))
	f.maxelem, f.bound = h.maxelem, n
	return errors.Join(errs...)
}

// flushSet destroys the family's set, or empties it where destroying is not
// ours to do (ipset mode, a set we did not create) or not possible (still
// referenced by someone else's rule).
func (b *Backend) flushSet(f *family) error {
	if ok, _ := b.nl.exists(tmpName(f.set)); ok {
		if err := b.nl.destroy(tmpName(f.set)); err != nil {
			b.log.Warnf("flush: %v", err)
		}
	}
	if b.cfg.Mode == ModeIPSet && !f.created {
		err := b.nl.flush(f.set)
		if isNotExist(err) {
			return nil
		}
		return err
	}
	err := b.nl.destroy(f.set)
	switch {
	case err == nil, isNotExist(err):
		f.created = false
		return nil
	case isInUse(err):
		b.log.Warnf("set %s is referenced by a rule that is not ours: emptied it instead of destroying it", f.set)
		return b.nl.flush(f.set)
	default:
		return err
	}
}
