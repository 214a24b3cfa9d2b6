package lapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// The follow mode of the decision stream (follow=true, with a client-kept
// cursor): one response that stays open and carries, as one line of
// newline-delimited JSON each (models.FollowChunk), the delta since the
// cursor and then every change that concerns the bouncer. A long-poll
// costs a whole request per change and bouncer; a follower costs one
// write of bytes rendered once for every follower at the same cursor with
// the same filters (sharedDeltas). The cursor semantics are the
// long-poll's exactly: each line is the delta from the previous line's
// cursor, so a follower whose response ends or breaks resumes from the
// cursor of its last complete line, gap-free across LAPIs.
//
// A follower that stops reading is dropped when a write has waited
// followWriteTimeout (the kernel's socket buffer is its bounded buffer);
// it resumes with its cursor and loses nothing. Every followCheck the
// followers authenticate again together (shared reads; a deleted key ends
// its responses) and take the allowlists' current snapshot; a line every
// followHeartbeat keeps proxies from closing an idle response; and a
// response ends after followMax, or at once when the LAPI shuts down.
type followTiming struct {
	max          time.Duration
	check        time.Duration
	heartbeat    time.Duration
	writeTimeout time.Duration
}

func defaultFollowTiming() followTiming {
	return followTiming{max: 10 * time.Minute, check: 5 * time.Second, heartbeat: 25 * time.Second, writeTimeout: 10 * time.Second}
}

// beat is a broadcast fired at an interval: every follower waits on the
// same channel, so their checks run together and share their reads.
type beat struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *beat) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *beat) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
	}
	b.ch = make(chan struct{})
}

// runBeat fires s.followBeat every followCheck until ctx ends.
func (s *Server) runBeat(ctx context.Context) {
	t := time.NewTicker(s.follow.check)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.followBeat.fire()
		}
	}
}

// followOn says whether this LAPI offers the follow mode.
func (s *Server) followOn() bool {
	return csconfig.Bool(s.cfg.API.Server.Follow, true)
}

// followStream answers a follow request (see followTiming); sq has the
// client's cursor. Errors before the first line are answered as a pull's.
func (s *Server) followStream(c echo.Context, b *store.Bouncer, q url.Values, sq store.StreamQuery) error {
	ctx := c.Request().Context()
	allowSnap, err := s.followAllow(c)
	if err != nil {
		return s.storeError(c, err)
	}
	s.follows.Add(1)
	defer s.follows.Add(-1)
	resp := c.Response()
	rc := http.NewResponseController(resp.Writer)
	write := func(line []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(s.follow.writeTimeout))
		if _, err := resp.Write(line); err != nil {
			return err
		}
		return rc.Flush()
	}
	fail := func(err error, what string) error {
		if ctx.Err() == nil {
			s.log.WithError(err).WithField("bouncer", b.Name).Info(what + "; the bouncer resumes from its cursor")
		}
		// Cut the connection: a body that ends cleanly would look like a
		// response the server chose to end.
		panic(http.ErrAbortHandler)
	}
	sel := deltaSelection(q)
	// The bouncers' version the key was checked at (API keys); a
	// certificate's bouncer is checked at every beat.
	counts, authed := c.Get(ctxCounts).(changeCounts)
	bouncers := counts.bouncers
	end := time.NewTimer(s.follow.max)
	defer end.Stop()
	cursor, sent := sq.Cursor, int64(-1) // sent: the cursor of the last line written
	lastWrite := time.Now()
	for first := true; ; first = false {
		changed := s.store.Changed()
		if seq := s.store.Seq(); first || seq > cursor {
			cur := sq
			cur.Cursor = cursor
			d, err := s.deltas.delta(deltaKeyOf(sel, cursor, allowSnap), seq, s.now(), func() (*renderedDelta, error) {
				return s.renderDelta(context.WithoutCancel(ctx), cur, allowSnap)
			})
			if err != nil {
				if first {
					return s.streamError(c, err)
				}
				fail(err, "follow: reading the next delta failed")
			}
			if first {
				h := resp.Header()
				h.Set(echo.HeaderContentType, "application/x-ndjson")
				h.Set(echo.HeaderCacheControl, "no-cache")
				h.Set("X-Accel-Buffering", "no") // nginx: pass each line on at once
				h.Set(models.LongPollHeader, s.cfg.API.Server.LongPollMax.Duration.String())
				h.Set(models.FollowHeader, s.follow.max.String())
				resp.WriteHeader(http.StatusOK)
			}
			// The first line always goes: it tells the client the
			// response is open.
			if first || d.rows > 0 {
				if err := write(d.followLine()); err != nil {
					fail(err, "follow: writing a change failed (a slow or gone reader)")
				}
				sent, lastWrite = d.seq, time.Now()
				s.countAnswer(b.Name, d.rows)
				s.recordPull(b, s.now())
			}
			cursor = d.seq
		}
		select {
		case <-changed:
		case <-s.followBeat.wait():
			// The change counters, one read shared by every follower; the
			// key is looked up again only when a bouncer row changed.
			counts, err := s.counts.get(ctx, struct{}{})
			if err != nil {
				fail(err, "follow: reading the change counters failed")
			}
			if !authed || counts.bouncers != bouncers {
				again, err := s.authBouncer(c)
				if err != nil || again == nil || again.ID != b.ID {
					// Key deleted, or its row replaced: the client finds
					// out with a new request. A database failure ends it
					// too; the client's retry tells it the LAPI's state.
					s.log.WithError(err).WithField("bouncer", b.Name).Info("follow: the bouncer's key is no longer valid here; response ended")
					return nil
				}
				bouncers = counts.bouncers
			}
			if allowSnap, err = s.allow.snapshotAt(ctx, counts.allowlists); err != nil {
				fail(err, "follow: reading the allowlists failed")
			}
			if time.Since(lastWrite) >= s.follow.heartbeat {
				if err := write(cursorLine(cursor)); err != nil {
					fail(err, "follow: writing a heartbeat failed")
				}
				sent, lastWrite = cursor, time.Now()
			}
		case <-end.C:
			return s.followEnd(write, cursor, sent)
		case <-s.stopping:
			return s.followEnd(write, cursor, sent)
		case <-ctx.Done():
			return nil
		}
	}
}

// followEnd ends a follow response cleanly, with the cursor reached when
// the last lines sent stopped short of it (deltas with nothing for this
// bouncer).
func (s *Server) followEnd(write func([]byte) error, cursor, sent int64) error {
	if cursor != sent {
		_ = write(cursorLine(cursor))
	}
	return nil
}

// followAllow is the allowlists' snapshot at the version just read (by the
// authentication of an API key) or read now.
func (s *Server) followAllow(c echo.Context) (*allowSnapshot, error) {
	if counts, ok := c.Get(ctxCounts).(changeCounts); ok {
		return s.allow.snapshotAt(c.Request().Context(), counts.allowlists)
	}
	return s.allow.snapshot(c.Request().Context())
}

// cursorLine is a follow line that moves the cursor only.
func cursorLine(cursor int64) []byte {
	return append(strconv.AppendInt([]byte(`{"cursor":`), cursor, 10), "}\n"...)
}

// Follows is the number of follow responses open now.
func (s *Server) Follows() int64 { return s.follows.Load() }
