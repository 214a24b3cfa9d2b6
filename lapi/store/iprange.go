package store

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/rampart-ips/rampart/internal/netaddr"
)

// Range is an address interval in the numeric form the decisions table
// indexes: IPv4 lives in Start/End with zero suffixes; IPv6 is split into a
// 64-bit prefix (Start/End) and suffix. Unsigned values are shifted into
// signed int64 so that SQL ordering matches address ordering.
type Range struct {
	Size        int // 4 or 16; 0 means "not an address"
	Start, End  int64
	StartSuffix int64
	EndSuffix   int64
}

func shift(u uint64) int64 { return int64(u ^ (1 << 63)) }

// ParseRange reads a bare IP or a CIDR the way internal/netaddr does; the
// error keeps upstream's wording, which LAPI answers carry.
func ParseRange(s string) (Range, error) {
	p, err := netaddr.ParsePrefix(s)
	if err != nil {
		return Range{}, fmt.Errorf("invalid ip address '%s': invalid ip address / range", s)
	}
	return RangeOf(p), nil
}

// RangeOf is the numeric form of a prefix from netaddr.ParsePrefix (IPv4
// unmapped, masked); any other prefix is masked here and an IPv4-mapped one
// is kept as IPv6. The zero Prefix gives the zero Range.
func RangeOf(p netip.Prefix) Range {
	if !p.IsValid() {
		return Range{}
	}
	p = p.Masked()
	addr := p.Addr()
	if addr.Is4() {
		b := p.Addr().As4()
		start := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		var hostMask uint32
		if p.Bits() < 32 {
			hostMask = ^uint32(0) >> uint(p.Bits())
		}
		return Range{Size: 4, Start: int64(start), End: int64(start | hostMask)}
	}
	b := p.Addr().As16()
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	bits := p.Bits()
	endHi, endLo := hi, lo
	switch {
	case bits <= 64:
		if bits < 64 {
			endHi = hi | (^uint64(0) >> uint(bits))
		}
		endLo = ^uint64(0)
	default:
		if bits < 128 {
			endLo = lo | (^uint64(0) >> uint(bits-64))
		}
	}
	return Range{Size: 16, Start: shift(hi), End: shift(endHi), StartSuffix: shift(lo), EndSuffix: shift(endLo)}
}

// Contains reports whether r covers q entirely.
func (r Range) Contains(q Range) bool {
	if r.Size != q.Size || r.Size == 0 {
		return false
	}
	lowOK := r.Start < q.Start || (r.Start == q.Start && r.StartSuffix <= q.StartSuffix)
	highOK := r.End > q.End || (r.End == q.End && r.EndSuffix >= q.EndSuffix)
	return lowOK && highOK
}

// rangeCond returns the SQL condition (and its arguments) matching decisions
// that contain q (contains=true) or lie inside q (contains=false). It
// bounds start_ip on both sides so that it is a seek of decisions_range
// (ip_size, start_ip, end_ip), never a walk of every decision starting
// below (or above) q: a covering decision is a masked CIDR, so its start
// is q's start masked to one of the prefix lengths (candidateStarts: a
// few dozen probes); a decision inside q starts within q.
func rangeCond(q Range, contains bool, prefix string) (string, []any) {
	c := func(col string) string { return prefix + col }
	size := fmt.Sprintf("%s = %d", c("ip_size"), q.Size)
	var start string
	var sargs []any
	if contains {
		starts := candidateStarts(q)
		start = c("start_ip") + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(starts)), ", ") + ")"
		sargs = starts
	} else {
		start = c("start_ip") + " BETWEEN ? AND ?"
		sargs = []any{q.Start, q.End}
	}
	if q.Size == 4 {
		if contains {
			return fmt.Sprintf("(%s AND %s AND %s <= ? AND %s >= ?)", size, start, c("start_ip"), c("end_ip")),
				append(sargs, q.Start, q.End)
		}
		return fmt.Sprintf("(%s AND %s AND %s <= ?)", size, start, c("end_ip")), append(sargs, q.End)
	}
	if contains {
		return fmt.Sprintf("(%[1]s AND %[6]s AND (%[2]s < ? OR (%[2]s = ? AND %[3]s <= ?)) AND (%[4]s > ? OR (%[4]s = ? AND %[5]s >= ?)))",
				size, c("start_ip"), c("start_suffix"), c("end_ip"), c("end_suffix"), start),
			append(sargs, q.Start, q.Start, q.StartSuffix, q.End, q.End, q.EndSuffix)
	}
	return fmt.Sprintf("(%[1]s AND %[6]s AND (%[2]s > ? OR (%[2]s = ? AND %[3]s >= ?)) AND (%[4]s < ? OR (%[4]s = ? AND %[5]s <= ?)))",
			size, c("start_ip"), c("start_suffix"), c("end_ip"), c("end_suffix"), start),
		append(sargs, q.Start, q.Start, q.StartSuffix, q.End, q.End, q.EndSuffix)
}

// IsAddressScope reports whether decisions of this scope carry numeric bounds.
func IsAddressScope(scope string) bool {
	return strings.EqualFold(scope, "ip") || strings.EqualFold(scope, "range")
}
