package capi

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Decisions ended here are told to the console (POST /v3/decisions/delete,
// a JSON array of UUIDs), as upstream does for enrolled instances sharing
// manual decisions or managed from the console.
const (
	// deletedQueueMax bounds the UUIDs waiting while CAPI is away.
	deletedQueueMax = 10000
	// deleteBatch and deleteTimeout are upstream's per request.
	deleteBatch   = 50
	deleteTimeout = 5 * time.Second
)

// deletions are the UUIDs waiting to be sent. Kept in memory (a restart
// loses them, as upstream's; a reload hands them to the new service), but
// a failed request keeps them for the next try rather than dropping them.
type deletions struct {
	mu      sync.Mutex
	uuids   []string
	dropped int64
}

// QueueDeleted queues the UUIDs of decisions that ended (the LAPI's
// ReportDeletions); it never blocks. Beyond the bound the oldest go.
func (s *Service) QueueDeleted(uuids []string) {
	if len(uuids) == 0 {
		return
	}
	d := &s.deleted
	d.mu.Lock()
	defer d.mu.Unlock()
	d.uuids = append(d.uuids, uuids...)
	if over := len(d.uuids) - deletedQueueMax; over > 0 {
		d.uuids = append(d.uuids[:0], d.uuids[over:]...)
		d.dropped += int64(over)
		s.log.WithField("dropped", d.dropped).Warn("too many decision deletions wait for the Central API: the oldest were dropped")
	}
}

// takeDeleted empties the queue and returns what it held.
func (s *Service) takeDeleted() []string {
	s.deleted.mu.Lock()
	defer s.deleted.mu.Unlock()
	u := s.deleted.uuids
	s.deleted.uuids = nil
	return u
}

// PushDeletions sends the queued UUIDs, 50 per request. An instance that
// is not enrolled tells the console nothing: the queue is emptied.
func (s *Service) PushDeletions(ctx context.Context) error {
	d := &s.deleted
	pending := s.takeDeleted()
	if len(pending) == 0 {
		return nil
	}
	requeue := func(rest []string) {
		d.mu.Lock()
		d.uuids = append(rest, d.uuids...)
		d.mu.Unlock()
	}
	_, claims, err := s.o.Client.Token(ctx)
	if err != nil {
		requeue(pending)
		return err
	}
	if _, ok := claims["organization_id"]; !ok {
		s.log.WithField("deletions", len(pending)).Debug("not enrolled in the console: decision deletions not sent")
		return nil
	}
	for len(pending) > 0 {
		n := min(deleteBatch, len(pending))
		rctx, cancel := context.WithTimeout(ctx, deleteTimeout)
		status, err := s.o.Client.do(rctx, http.MethodPost, "v3/decisions/delete", nil, pending[:n], nil)
		cancel()
		if err != nil {
			if status == http.StatusBadRequest || status == http.StatusUnprocessableEntity {
				s.log.WithError(err).WithField("deletions", n).Error("the Central API refused decision deletions as invalid: dropped")
			} else {
				requeue(pending)
				return err
			}
		}
		pending = pending[n:]
	}
	return nil
}

// deleteLoop sends the queued deletions every push interval (upstream:
// every 10 s).
func (s *Service) deleteLoop(ctx context.Context) {
	s.sendLoop(ctx, s.o.PushInterval, "decision deletions", s.PushDeletions)
}
