package nftables

import "slices"

// hostIndex is what the backend knows of a host set: its addresses, sorted,
// each with its expiry. It only serves Stats, whose count stays exact
// across refreshes, deletes and kernel expiries, at 8 bytes per IPv4
// address (a Go map took 20 MB for a million). The kernel never needs it.
type hostIndex[A addr[A]] struct {
	e []hostEntry[A]
}

// hostEntry is a host and its expiry in seconds since the backend's epoch;
// in a list of changes, exp 0 deletes the host.
type hostEntry[A addr[A]] struct {
	key A
	exp uint32
}

func (x *hostIndex[A]) len() int { return len(x.e) }

// apply records changes, given in the order the kernel got them (the
// later change of a host wins). It forgets hosts expired at now when it
// deletes some anyway or when sweep is set. It may reuse ch's memory.
func (x *hostIndex[A]) apply(ch []hostEntry[A], now uint32, sweep bool) {
	sortEntries(ch)
	// Keep the last change of each host.
	w := 0
	for i := range ch {
		if i+1 < len(ch) && ch[i+1].key == ch[i].key {
			continue
		}
		ch[w] = ch[i]
		w++
	}
	ch = ch[:w]
	live := func(e hostEntry[A]) bool { return e.exp > now }
	if len(x.e) == 0 {
		x.e = slices.DeleteFunc(ch, func(e hostEntry[A]) bool { return !live(e) })
		if cap(x.e) > 2*len(x.e)+1024 {
			x.e = slices.Clip(slices.Clone(x.e))
		}
		return
	}
	old := x.e
	// Updates and deletes of known hosts in place; new hosts stay in ch.
	n, dead := 0, false
	for _, c := range ch {
		if j, found := slices.BinarySearchFunc(old, c.key, func(e hostEntry[A], k A) int { return e.key.cmp(k) }); found {
			old[j].exp = c.exp
			dead = dead || !live(c)
		} else if live(c) {
			ch[n] = c
			n++
		}
	}
	ch = ch[:n]
	if dead || sweep {
		w := 0
		for _, e := range old {
			if e.exp > now {
				old[w] = e
				w++
			}
		}
		old = old[:w]
	}
	// Merge the new hosts in from the back, moving blocks of old ones.
	end := len(old)
	old = slices.Grow(old, len(ch))[:len(old)+len(ch)]
	for k := len(ch) - 1; k >= 0; k-- {
		at, _ := slices.BinarySearchFunc(old[:end], ch[k].key, func(e hostEntry[A], key A) int { return e.key.cmp(key) })
		copy(old[at+k+1:], old[at:end])
		old[at+k] = ch[k]
		end = at
	}
	x.e = old
}

// sortEntries sorts by address, keeping the order of equal ones.
func sortEntries[A addr[A]](s []hostEntry[A]) {
	if e4, ok := any(s).([]hostEntry[ip4]); ok && len(e4) >= 256 {
		radixEntries4(e4)
		return
	}
	slices.SortStableFunc(s, func(a, b hostEntry[A]) int { return a.key.cmp(b.key) })
}

// radixEntries4 is a stable LSD radix sort on the address, 16 bits per
// pass.
func radixEntries4(s []hostEntry[ip4]) {
	tmp := make([]hostEntry[ip4], len(s))
	src, dst := s, tmp
	var count [1 << 16]int
	for shift := uint(0); shift < 32; shift += 16 {
		clear(count[:])
		for _, e := range src {
			count[(uint32(e.key)>>shift)&0xffff]++
		}
		sum := 0
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, e := range src {
			k := (uint32(e.key) >> shift) & 0xffff
			dst[count[k]] = e
			count[k]++
		}
		src, dst = dst, src
	}
	// Two passes: the result is back in s.
}
