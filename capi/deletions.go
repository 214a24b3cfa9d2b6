package capi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	log "github.com/sirupsen/logrus"
)

// Decisions ended here are told to the console (POST /v3/decisions/delete,
// a JSON array of UUIDs), as upstream does for enrolled instances sharing
// manual decisions or managed from the console. The LAPI queues their
// UUIDs in the database in the transaction that ends them
// (store.DeleteDecisionsShared): unlike upstream's, which keeps them in
// memory, a CAPI outage, a restart or a crash loses none.
const (
	// deletedQueueMax bounds the queued deletions while CAPI is away.
	deletedQueueMax = 10000
	// deleteBatch and deleteTimeout are upstream's per request.
	deleteBatch   = 50
	deleteTimeout = 5 * time.Second
	// deleteLock keeps the LAPIs of one database from sending the same
	// queued deletions (the signals have their own lock: the two loops
	// of one service must not release each other's).
	deleteLock = "pushDeletions"
)

// PushDeletions bounds the queue, then sends the queued deletions 50 per
// request until none is left; each batch leaves the queue only once CAPI
// took it. An instance that is not enrolled tells the console nothing: the
// queue is emptied.
func (s *Service) PushDeletions(ctx context.Context) error {
	// An idle queue costs one read every push tick, no write.
	queued, err := s.o.Store.DeletionQueueLen(ctx)
	if err != nil || queued == 0 {
		return err
	}
	ok, release, err := s.pushLock(ctx, deleteLock)
	if err != nil || !ok {
		return err // another LAPI of the database sends them
	}
	defer release()
	if queued > deletedQueueMax {
		n, err := s.o.Store.TrimDeletions(ctx, deletedQueueMax)
		if err != nil {
			return err
		}
		if n > 0 {
			s.Stats.DeletionsDropped.Add(n)
			s.log.WithFields(log.Fields{"dropped": n, "total_dropped": s.Stats.DeletionsDropped.Load(), "bound": deletedQueueMax}).
				Warn("too many decision deletions wait for the Central API: the oldest were dropped")
		}
	}
	_, claims, err := s.o.Client.Token(ctx)
	if err != nil {
		return err
	}
	_, enrolled := claims["organization_id"]
	for first := true; ; first = false {
		if !first { // refreshed per batch: a long drain keeps its lock
			if ok, _, err := s.pushLock(ctx, deleteLock); err != nil || !ok {
				return err
			}
		}
		batch, err := s.o.Store.PendingDeletions(ctx, deleteBatch)
		if err != nil || len(batch) == 0 {
			return err
		}
		ids := make([]int64, len(batch))
		uuids := make([]string, len(batch))
		for i, q := range batch {
			ids[i], uuids[i] = q.ID, q.UUID
		}
		if !enrolled {
			s.log.WithField("deletions", len(batch)).Debug("not enrolled in the console: decision deletions not sent")
		} else if err := s.sendDeletions(ctx, uuids); err != nil {
			return err
		}
		// Taken: removed even if ctx ends now, or they would go twice.
		if err := s.o.Store.AckDeletions(context.WithoutCancel(ctx), ids); err != nil {
			return fmt.Errorf("removing sent decision deletions from the queue: %w", err)
		}
	}
}

// sendDeletions makes one request; a batch CAPI refuses as invalid (400,
// 422) can never be taken: it is dropped (nil), counted and logged.
func (s *Service) sendDeletions(ctx context.Context, uuids []string) error {
	rctx, cancel := context.WithTimeout(ctx, deleteTimeout)
	defer cancel()
	status, err := s.o.Client.do(rctx, http.MethodPost, "v3/decisions/delete", nil, uuids, nil)
	switch {
	case err == nil:
		s.Stats.DeletionsSent.Add(int64(len(uuids)))
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		s.Stats.DeletionsRejected.Add(int64(len(uuids)))
		s.log.WithError(err).WithField("deletions", len(uuids)).Error("the Central API refused decision deletions as invalid: dropped")
	default:
		return err
	}
	return nil
}

// deleteLoop sends the queued deletions every push interval (upstream:
// every 10 s).
func (s *Service) deleteLoop(ctx context.Context) {
	s.sendLoop(ctx, s.o.PushInterval, "decision deletions", s.PushDeletions)
}
