package lapi

import (
	"context"
	"sync"
	"time"

	"github.com/rampart-ips/rampart/lapi/store"
)

// pullTimes gathers the bouncers' pull times (bouncers.last_pull, shown by
// cscli and read by the auto-deletion of stale bouncers) and writes them in
// one transaction each second, instead of one write per pull: a fleet of
// long-polling bouncers all pull at once, once a minute each (see
// pullRecordAge). Only the time waits: stream cursors are written before
// the pull counts as done.
type pullTimes struct {
	mu      sync.Mutex
	pending map[int64]time.Time
}

// pullRecordAge is how old a bouncer's recorded pull must be before a new
// pull is recorded.
const pullRecordAge = time.Minute

// record notes a pull by bouncer id at.
func (p *pullTimes) record(id int64, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending == nil {
		p.pending = map[int64]time.Time{}
	}
	if at.After(p.pending[id]) {
		p.pending[id] = at
	}
}

// take returns the pulls gathered and forgets them.
func (p *pullTimes) take() map[int64]time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.pending
	p.pending = nil
	return m
}

// recordPull notes that bouncer b pulled at now, if its last pull (as read
// at authentication, or recorded since through b, the request's own copy:
// a follow response pulls for minutes) is older than pullRecordAge.
func (s *Server) recordPull(b *store.Bouncer, now time.Time) {
	if b.LastPull == nil || now.Sub(*b.LastPull) >= pullRecordAge {
		s.pulls.record(b.ID, now)
		s.keyRows.pulled(b.APIKeyHash, b.ID, now)
		b.LastPull = &now
	}
}

// flushPulls writes the pull times gathered. On failure they are kept for
// the next flush, unless a newer pull replaced them.
func (s *Server) flushPulls(ctx context.Context) error {
	m := s.pulls.take()
	if len(m) == 0 {
		return nil
	}
	err := s.store.SetBouncersPulled(ctx, m)
	if err != nil {
		for id, at := range m {
			s.pulls.record(id, at)
		}
	}
	return err
}
