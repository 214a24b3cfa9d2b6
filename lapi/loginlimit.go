package lapi

import (
	"crypto/sha256"
	"net/netip"
	"sync"
	"time"

	"github.com/rampart-ips/rampart/csconfig"
)

// loginLimiter throttles password logins that fail: each costs a bcrypt
// comparison, and each is a guess. A login reserves one attempt from the
// bucket of its client network and of the machine name it claims, and
// gives them back when it succeeds, so legitimate logins cost nothing.
type loginLimiter struct {
	sources *failureBuckets[netip.Prefix]
	names   *failureBuckets[[sha256.Size]byte]
}

// newLoginLimiter returns nil (no limit) when the configuration turns it off.
func newLoginLimiter(c csconfig.LoginLimit) *loginLimiter {
	if !csconfig.Bool(c.Enabled, true) {
		return nil
	}
	return &loginLimiter{
		sources: newFailureBuckets[netip.Prefix](c.SourceBurst, c.SourceRefill.Duration, c.MaxTracked),
		names:   newFailureBuckets[[sha256.Size]byte](c.MachineBurst, c.MachineRefill.Duration, c.MaxTracked),
	}
}

// loginAttempt holds the attempts a login reserved.
type loginAttempt struct{ source, name *bucket }

// sourceKey groups an IPv6 client by its /64, what one host usually holds.
func sourceKey(a netip.Addr) netip.Prefix {
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits) // the zero Prefix for an invalid address (unix socket clients share it)
	return p
}

// reserve takes one attempt for the client and one for the machine name,
// or says how long to wait before trying again. known says the client
// is at the address the machine last logged in from: failures others cause
// on the name (or a crowd of newcomers) do not hold it back.
func (l *loginLimiter) reserve(addr netip.Addr, name string, known bool, now time.Time) (loginAttempt, time.Duration) {
	if l == nil {
		return loginAttempt{}, 0
	}
	src, wait := l.sources.reserve(sourceKey(addr), !known, now)
	if wait > 0 {
		return loginAttempt{}, wait
	}
	if known {
		return loginAttempt{source: src}, 0
	}
	nm, wait := l.names.reserve(sha256.Sum256([]byte(name)), true, now)
	if wait > 0 {
		l.sources.refund(src)
		return loginAttempt{}, wait
	}
	return loginAttempt{source: src, name: nm}, 0
}

// registration takes one attempt from the client's bucket for good:
// registering costs a bcrypt hash and leaves a row, and a host registers
// once, so a flood of registrations is held back like failed logins.
func (l *loginLimiter) registration(addr netip.Addr, now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	_, wait := l.sources.reserve(sourceKey(addr), true, now)
	return wait
}

// succeeded gives a successful login's attempts back.
func (l *loginLimiter) succeeded(a loginAttempt) {
	if l == nil {
		return
	}
	l.sources.refund(a.source)
	l.names.refund(a.name)
}

// failureBuckets is a token bucket per key, at most max of them: a key
// seen while the table is full shares one overflow bucket, so an attacker
// with many addresses or names can neither grow the table nor push out the
// buckets it has already emptied. Full buckets carry no information and
// are dropped when room is needed.
type failureBuckets[K comparable] struct {
	burst  float64
	refill time.Duration // time to regain one attempt
	max    int

	mu       sync.Mutex
	m        map[K]*bucket
	overflow *bucket
	swept    time.Time
}

// bucket holds tokens attempts as of at.
type bucket struct {
	tokens float64
	at     time.Time
}

func newFailureBuckets[K comparable](burst int, refill time.Duration, max int) *failureBuckets[K] {
	return &failureBuckets[K]{burst: float64(burst), refill: refill, max: max, m: map[K]*bucket{},
		overflow: &bucket{tokens: float64(burst)}}
}

// level brings b up to now and returns its tokens.
func (f *failureBuckets[K]) level(b *bucket, now time.Time) float64 {
	if b.at.IsZero() {
		b.tokens, b.at = f.burst, now
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(f.burst, b.tokens+float64(d)/float64(f.refill))
		b.at = now
	}
	return b.tokens
}

// reserve takes one attempt from k's bucket and returns it (nil when none
// was taken), or the time until one is available. shared says whether a
// key that finds the table full goes to the overflow bucket; otherwise it
// is let through untracked.
func (f *failureBuckets[K]) reserve(k K, shared bool, now time.Time) (*bucket, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.m[k]
	if b == nil {
		if len(f.m) >= f.max && now.Sub(f.swept) >= time.Second {
			f.sweep(now)
		}
		switch {
		case len(f.m) < f.max:
			b = &bucket{tokens: f.burst, at: now}
			f.m[k] = b
		case !shared:
			return nil, 0
		default:
			b = f.overflow
		}
	}
	if lvl := f.level(b, now); lvl < 1 {
		wait := time.Duration((1 - lvl) * float64(f.refill))
		return nil, max(wait, time.Nanosecond)
	}
	b.tokens--
	return b, 0
}

// refund returns an attempt reserve took.
func (f *failureBuckets[K]) refund(b *bucket) {
	if b == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b.tokens = min(f.burst, b.tokens+1)
}

// sweep drops the buckets that have refilled. The caller holds f.mu; it
// runs at most once a second, so a flood that finds the table full costs
// one pass a second, not one per request.
func (f *failureBuckets[K]) sweep(now time.Time) {
	f.swept = now
	for k, b := range f.m {
		if f.level(b, now) >= f.burst {
			delete(f.m, k)
		}
	}
}

// tracked is how many keys have a bucket of their own.
func (f *failureBuckets[K]) tracked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}
