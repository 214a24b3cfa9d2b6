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

// holder is what the bouncer knows about one prefix, stored by value (24
// bytes): the decision that lasts longest, and the others still active for
// it (rare), so deleting one of several decisions keeps the prefix banned.
type holder struct {
	id     int64
	until  int64 // unix seconds
	others *[]dec
}

type dec struct{ id, until int64 }

// state is the bouncer's authoritative view: what it asked the kernel to
// hold, compact (about 60 bytes per prefix) and never read back from it.
type state struct {
	m      map[key]holder
	n4, n6 int // kept as prefixes come and go: metrics never walk m
}

func newState() *state { return &state{m: make(map[key]holder)} }

func (s *state) count(k key, d int) {
	if k.v6 {
		s.n6 += d
	} else {
		s.n4 += d
	}
}

func (h *holder) list() []dec {
	if h.others == nil {
		return nil
	}
	return *h.others
}

func (h *holder) setList(l []dec) {
	if len(l) == 0 {
		h.others = nil
		return
	}
	h.others = &l
}

// add records decision id on p until 'until'; it reports whether the
// kernel element must be (re)written with a longer timeout.
func (s *state) add(p netip.Prefix, id, until int64) bool {
	k := keyOf(p)
	h, ok := s.m[k]
	if !ok {
		s.m[k] = holder{id: id, until: until}
		s.count(k, 1)
		return true
	}
	if h.id == id {
		if until > h.until {
			h.until = until
			s.m[k] = h
			return true
		}
		return false
	}
	l := h.list()
	for i := range l {
		if l[i].id == id {
			l[i].until = max(l[i].until, until)
			return false
		}
	}
	if until > h.until {
		h.setList(append(l, dec{h.id, h.until}))
		h.id, h.until = id, until
		s.m[k] = h
		return true
	}
	h.setList(append(l, dec{id, until}))
	s.m[k] = h
	return false
}

// remove forgets decision id on p. It returns whether the prefix is gone
// (delete it from the kernel) and, if not, whether its longest decision
// changed (rewrite the element with newUntil).
func (s *state) remove(p netip.Prefix, id int64, now int64) (gone bool, changed bool, newUntil int64) {
	k := keyOf(p)
	h, ok := s.m[k]
	if !ok {
		return false, false, 0
	}
	l := h.list()
	if h.id != id {
		for i := range l {
			if l[i].id == id {
				h.setList(append(l[:i], l[i+1:]...))
				s.m[k] = h
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
		delete(s.m, k)
		s.count(k, -1)
		return true, false, 0
	}
	o := l[best]
	h.setList(append(l[:best], l[best+1:]...))
	h.id, h.until = o.id, o.until
	s.m[k] = h
	return false, true, o.until
}

// until returns the end of p's longest decision, 0 when p is not held.
func (s *state) until(k key) int64 {
	if h, ok := s.m[k]; ok {
		return h.until
	}
	return 0
}

// elements returns every live prefix with its remaining time.
func (s *state) elements(now time.Time) []firewall.Element {
	out := make([]firewall.Element, 0, len(s.m))
	n := now.Unix()
	for k, h := range s.m {
		if h.until <= n {
			continue
		}
		out = append(out, firewall.Element{Prefix: k.prefix(), Timeout: time.Duration(h.until-n) * time.Second})
	}
	return out
}

// gc drops prefixes whose decisions all expired; the kernel expired them
// by their own timeouts already (the longest decision is h.until).
func (s *state) gc(now int64) int {
	n := 0
	for k, h := range s.m {
		if h.until <= now {
			delete(s.m, k)
			s.count(k, -1)
			n++
		}
	}
	return n
}

func (s *state) len() int { return len(s.m) }
