package bouncer

import (
	"net/netip"
	"time"

	"github.com/rampart-ips/rampart/firewall"
)

// key is a banned prefix in 18 bytes: the address, its length and family.
type key struct {
	addr [16]byte
	bits uint8
	v6   bool
}

func keyOf(p netip.Prefix) key {
	k := key{bits: uint8(p.Bits()), v6: p.Addr().Is6()}
	if k.v6 {
		k.addr = p.Addr().As16()
	} else {
		a := p.Addr().As4()
		copy(k.addr[:], a[:])
	}
	return k
}

func (k key) prefix() netip.Prefix {
	if k.v6 {
		return netip.PrefixFrom(netip.AddrFrom16(k.addr), int(k.bits))
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte(k.addr[:4])), int(k.bits))
}

// entry is what the bouncer knows about one prefix: the decision that lasts
// longest. Other decisions still active for the same prefix (rare) live in
// state.extra, so deleting one of several keeps the prefix banned.
type entry struct {
	id    int64
	until int64 // unix seconds
}

type dec struct{ id, until int64 }

// state is the bouncer's authoritative view: what it asked the kernel to
// hold, never read back from it. Single IPv4 addresses, nearly every ban,
// sit in a map keyed by a uint32 (about 25 bytes per ban at 1M); IPv6 and
// ranges in a map keyed by the full prefix.
type state struct {
	v4     map[uint32]entry
	other  map[key]entry
	extra  map[key][]dec
	n4, n6 int // kept as prefixes come and go: metrics never walk the maps
}

func newState() *state {
	return &state{v4: make(map[uint32]entry), other: make(map[key]entry), extra: make(map[key][]dec)}
}

func v4Host(k key) (uint32, bool) {
	if k.v6 || k.bits != 32 {
		return 0, false
	}
	return uint32(k.addr[0])<<24 | uint32(k.addr[1])<<16 | uint32(k.addr[2])<<8 | uint32(k.addr[3]), true
}

func hostKey(u uint32) key {
	return key{addr: [16]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}, bits: 32}
}

func (s *state) get(k key) (entry, bool) {
	if u, ok := v4Host(k); ok {
		e, ok := s.v4[u]
		return e, ok
	}
	e, ok := s.other[k]
	return e, ok
}

func (s *state) put(k key, e entry) {
	if u, ok := v4Host(k); ok {
		s.v4[u] = e
		return
	}
	s.other[k] = e
}

func (s *state) del(k key) {
	if u, ok := v4Host(k); ok {
		delete(s.v4, u)
	} else {
		delete(s.other, k)
	}
	delete(s.extra, k)
	if k.v6 {
		s.n6--
	} else {
		s.n4--
	}
}

func (s *state) setExtra(k key, l []dec) {
	if len(l) == 0 {
		delete(s.extra, k)
		return
	}
	s.extra[k] = l
}

// add records decision id on p until 'until'; it reports whether the
// kernel element must be (re)written with a longer timeout.
func (s *state) add(p netip.Prefix, id, until int64) bool {
	k := keyOf(p)
	h, ok := s.get(k)
	if !ok {
		s.put(k, entry{id: id, until: until})
		if k.v6 {
			s.n6++
		} else {
			s.n4++
		}
		return true
	}
	if h.id == id {
		if until > h.until {
			h.until = until
			s.put(k, h)
			return true
		}
		return false
	}
	l := s.extra[k]
	for i := range l {
		if l[i].id == id {
			l[i].until = max(l[i].until, until)
			return false
		}
	}
	if until > h.until {
		s.setExtra(k, append(l, dec{h.id, h.until}))
		s.put(k, entry{id: id, until: until})
		return true
	}
	s.setExtra(k, append(l, dec{id, until}))
	return false
}

// remove forgets decision id on p. It returns whether the prefix is gone
// (delete it from the kernel) and, if not, whether its longest decision
// changed (rewrite the element with newUntil).
func (s *state) remove(p netip.Prefix, id int64, now int64) (gone bool, changed bool, newUntil int64) {
	k := keyOf(p)
	h, ok := s.get(k)
	if !ok {
		return false, false, 0
	}
	l := s.extra[k]
	if h.id != id {
		for i := range l {
			if l[i].id == id {
				s.setExtra(k, append(l[:i], l[i+1:]...))
				break
			}
		}
		return false, false, 0
	}
	// promote the longest remaining live decision
	best := -1
	for i, o := range l {
		if o.until > now && (best < 0 || o.until > l[best].until) {
			best = i
		}
	}
	if best < 0 {
		s.del(k)
		return true, false, 0
	}
	o := l[best]
	s.setExtra(k, append(l[:best], l[best+1:]...))
	s.put(k, entry{id: o.id, until: o.until})
	return false, true, o.until
}

// until returns the end of p's longest decision, 0 when p is not held.
func (s *state) until(k key) int64 {
	e, _ := s.get(k)
	return e.until
}

// elements returns every live prefix with its remaining time.
func (s *state) elements(now time.Time) []firewall.Element {
	out := make([]firewall.Element, 0, s.len())
	n := now.Unix()
	for u, e := range s.v4 {
		if e.until > n {
			out = append(out, firewall.Element{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}), 32),
				Timeout: time.Duration(e.until-n) * time.Second})
		}
	}
	for k, e := range s.other {
		if e.until > n {
			out = append(out, firewall.Element{Prefix: k.prefix(), Timeout: time.Duration(e.until-n) * time.Second})
		}
	}
	return out
}

// gc drops prefixes whose decisions all expired; the kernel expired them
// by their own timeouts already (the longest decision is the entry's).
func (s *state) gc(now int64) int {
	n := 0
	for u, e := range s.v4 {
		if e.until <= now {
			s.del(hostKey(u))
			n++
		}
	}
	for k, e := range s.other {
		if e.until <= now {
			s.del(k)
			n++
		}
	}
	return n
}

func (s *state) len() int { return len(s.v4) + len(s.other) }

// untilSlack is how far two end times of one prefix may differ and still be
// the same ban: the stream rounds remaining durations to the second.
const untilSlack = 2

// reconcile lists what turns the kernel from old's view into fresh's: the
// prefixes fresh holds that old lacks or holds with another end time (to
// add, which rewrites the timeout), and the live ones only old holds (to
// delete). A prefix both hold alike is not touched, so it stays enforced.
func reconcile(old, fresh *state, now time.Time) (adds []firewall.Element, dels []netip.Prefix) {
	n := now.Unix()
	check := func(k key, e entry) {
		if e.until <= n {
			return
		}
		if o, ok := old.get(k); ok && o.until > n && abs(o.until-e.until) <= untilSlack {
			return
		}
		adds = append(adds, firewall.Element{Prefix: k.prefix(), Timeout: time.Duration(e.until-n) * time.Second})
	}
	for u, e := range fresh.v4 {
		check(hostKey(u), e)
	}
	for k, e := range fresh.other {
		check(k, e)
	}
	gone := func(k key, e entry) {
		if f, ok := fresh.get(k); e.until > n && (!ok || f.until <= n) {
			dels = append(dels, k.prefix())
		}
	}
	for u, e := range old.v4 {
		gone(hostKey(u), e)
	}
	for k, e := range old.other {
		gone(k, e)
	}
	return adds, dels
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
