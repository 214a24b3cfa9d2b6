// Package backoff spaces out retries: a delay that doubles from a minimum
// up to a cap, with ±20% jitter so that many clients retrying the same
// thing (agents and a recovering LAPI) do not do so in lockstep.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the delay between attempts. The zero value of its state
// starts at Min; it is not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the jittered delay before the next attempt and doubles
// the one after it, up to Max.
func (b *Backoff) Next() time.Duration {
	d := max(b.cur, b.Min)
	b.cur = min(2*d, b.Max)
	return Jitter(d)
}

// Reset starts over from Min, after a success.
func (b *Backoff) Reset() { b.cur = 0 }

// Jitter spreads d by ±20%.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d - d/5 + rand.N(2*d/5+1)
}

// Sleep waits d; false when ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
