package nftables

import (
	"encoding/binary"
	"net/netip"
)

// ip4 and ip6 are the two key types of the element model. Keeping IPv4
// keys at 4 bytes halves the memory of the host map compared with a common
// 16-byte key.
type (
	ip4 uint32
	ip6 struct{ hi, lo uint64 }
)

// addr is what the generic element model needs from a key type.
type addr[A any] interface {
	comparable
	cmp(A) int
	next() A // the following address; wraps past the top
	prev() A // the preceding address; wraps below zero
	isMax() bool
	appendKey([]byte) []byte // big-endian, as the kernel wants it
	// within reports whether last-first < n, so a range can be probed
	// address by address.
	within(last A, n uint64) bool
	netip() netip.Addr
}

func (a ip4) cmp(b ip4) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
func (a ip4) next() ip4                      { return a + 1 }
func (a ip4) prev() ip4                      { return a - 1 }
func (a ip4) isMax() bool                    { return a == ^ip4(0) }
func (a ip4) appendKey(b []byte) []byte      { return binary.BigEndian.AppendUint32(b, uint32(a)) }
func (a ip4) within(last ip4, n uint64) bool { return uint64(last-a) < n }
func (a ip4) netip() netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(a))
	return netip.AddrFrom4(b)
}

func (a ip6) cmp(b ip6) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func (a ip6) next() ip6 {
	a.lo++
	if a.lo == 0 {
		a.hi++
	}
	return a
}

func (a ip6) prev() ip6 {
	if a.lo == 0 {
		a.hi--
	}
	a.lo--
	return a
}

func (a ip6) isMax() bool { return a.hi == ^uint64(0) && a.lo == ^uint64(0) }

func (a ip6) appendKey(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, a.hi)
	return binary.BigEndian.AppendUint64(b, a.lo)
}

func (a ip6) within(last ip6, n uint64) bool {
	return last.hi == a.hi && last.lo-a.lo < n
}

func (a ip6) netip() netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return netip.AddrFrom16(b)
}

// bounds returns the first and last address of a masked prefix of A's
// family. ok is false when the prefix belongs to the other family.
func bounds[A addr[A]](p netip.Prefix) (first, last A, ok bool) {
	var zero A
	a := p.Addr()
	switch any(zero).(type) {
	case ip4:
		if !a.Is4() {
			return zero, zero, false
		}
		b := a.As4()
		f := binary.BigEndian.Uint32(b[:])
		var hostMask uint32
		if p.Bits() < 32 {
			hostMask = ^uint32(0) >> p.Bits()
		}
		return any(ip4(f &^ hostMask)).(A), any(ip4(f | hostMask)).(A), true
	case ip6:
		if !a.Is6() || a.Is4In6() {
			return zero, zero, false
		}
		b := a.As16()
		f := ip6{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
		var mhi, mlo uint64 // host bits
		switch bits := p.Bits(); {
		case bits == 0:
			mhi, mlo = ^uint64(0), ^uint64(0)
		case bits < 64:
			mhi, mlo = ^uint64(0)>>bits, ^uint64(0)
		case bits < 128:
			mlo = ^uint64(0) >> (bits - 64)
		}
		first := ip6{f.hi &^ mhi, f.lo &^ mlo}
		last := ip6{f.hi | mhi, f.lo | mlo}
		return any(first).(A), any(last).(A), true
	}
	return zero, zero, false
}
