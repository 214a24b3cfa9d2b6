package lapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/singleflight"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// sharedDeltas renders a delta once for every long-polling bouncer that
// waits at the same cursor with the same filters: a change wakes them all
// at once, and a thousand bouncers would otherwise run a thousand identical
// queries and renderings. Only client-kept cursors (Rampart's bouncer) are
// shared: any delta from a cursor to a snapshot is a correct answer, and
// the answer's cursor header says which snapshot it is.
type sharedDeltas struct {
	flight  singleflight.Group
	renders atomic.Int64 // renderings made (tests, and how much is shared)
	mu      sync.Mutex
	recent  map[string]*renderedDelta // answers under maxAge, for late wakers
}

// renderedDelta is a whole stream body and the snapshot it reaches, and
// the same as one line of a follow response (see followStream).
type renderedDelta struct {
	seq  int64
	rows int
	body []byte
	at   time.Time

	// line is body as a follow line, built on first use: most renderings
	// go to pulls only, and a 100k-address one would be held twice.
	lineOnce sync.Once
	line     []byte
}

// followLine is the rendering as one line of a follow response:
// {"cursor":N,"new":[...],"deleted":[...]} and a newline.
func (d *renderedDelta) followLine() []byte {
	d.lineOnce.Do(func() {
		line := make([]byte, 0, len(d.body)+32)
		line = append(strconv.AppendInt(append(line, `{"cursor":`...), d.seq, 10), ',')
		d.line = append(append(line, d.body[1:]...), '\n')
	})
	return d.line
}

// deltaBlock is the size of the blocks a delta is rendered in before they
// are joined. One buffer grown by append copied itself into about 5 times
// its final size (Go grows large slices by a quarter): a 100k-address
// community pull rendered 18 MB for its bouncers and allocated 95 MB
// doing it. The joined body goes out in one write per bouncer: sent block
// by block, it cost 50 bouncers 14 times the write calls.
const deltaBlock = 64 << 10

// sharedDeltaMaxAge bounds how old a shared body may be: its durations are
// relative to when it was rendered.
const sharedDeltaMaxAge = time.Second

// deltaKey names a delta: the cursor, every query parameter that selects
// decisions (not wait, follow or cursor), and the allowlist snapshot
// applied: long-polls and followers share renderings.
func deltaKey(q url.Values, cursor int64, allow *allowSnapshot) string {
	return deltaKeyOf(deltaSelection(q), cursor, allow)
}

// deltaSelection is the part of a delta's key its query makes (a follower
// computes it once).
func deltaSelection(q url.Values) string {
	sel := url.Values{}
	for k, v := range q {
		if k != "wait" && k != "cursor" && k != "follow" {
			sel[k] = v
		}
	}
	return sel.Encode()
}

func deltaKeyOf(sel string, cursor int64, allow *allowSnapshot) string {
	return strconv.FormatInt(cursor, 10) + "|" + sel + "|" + strconv.FormatUint(allow.gen, 10)
}

// delta returns the rendered delta for key reaching at least sequence want
// (the store's, read by the caller: a rendering taken before that change
// would leave the caller waiting for the next one), computing it at most
// once for all the callers that ask at the same time.
func (d *sharedDeltas) delta(key string, want int64, now time.Time, render func() (*renderedDelta, error)) (*renderedDelta, error) {
	d.mu.Lock()
	if r, ok := d.recent[key]; ok && now.Sub(r.at) < sharedDeltaMaxAge && r.seq >= want {
		d.mu.Unlock()
		return r, nil
	}
	d.mu.Unlock()
	for try := 0; ; try++ {
		v, err, _ := d.flight.Do(key, func() (any, error) {
			d.renders.Add(1)
			r, err := render()
			if err != nil {
				return nil, err
			}
			d.mu.Lock()
			if d.recent == nil {
				d.recent = map[string]*renderedDelta{}
			}
			for k, old := range d.recent {
				if r.at.Sub(old.at) >= sharedDeltaMaxAge {
					delete(d.recent, k)
				}
			}
			d.recent[key] = r
			d.mu.Unlock()
			return r, nil
		})
		if err != nil {
			return nil, err
		}
		// A rendering in flight when the caller came may predate want:
		// one more, begun after it, does not.
		if r := v.(*renderedDelta); r.seq >= want || try == 1 {
			return r, nil
		}
	}
}

// renderDelta renders the delta from sq.Cursor as writeStream would send
// it: new decisions the allowlist snapshot lets through, every deletion.
// ctx is the server's, not a request's: one bouncer leaving must not fail
// the answer others wait for.
func (s *Server) renderDelta(ctx context.Context, sq store.StreamQuery, allow *allowSnapshot) (*renderedDelta, error) {
	now := s.now()
	var blocks [][]byte
	size := 0
	buf := make([]byte, 0, 4096) // most deltas are a few decisions
	// next moves on to a new block once buf is nearly full (a decision is
	// a few hundred bytes), so that buf does not grow by copying.
	next := func() {
		if cap(buf)-len(buf) >= 1024 {
			return
		}
		blocks = append(blocks, buf)
		size += len(buf)
		buf = make([]byte, 0, deltaBlock)
	}
	buf = append(buf, `{"new": [`...)
	rows, first := 0, true
	emit := func(deleted bool) func(*store.DecisionRow) error {
		return func(d *store.DecisionRow) error {
			if !deleted && !allow.servable(d) {
				return nil
			}
			next()
			if !first {
				buf = append(buf, ',')
			}
			first = false
			rows++
			buf = appendDecision(buf, d, now, true)
			return nil
		}
	}
	var deleted []store.DecisionRow
	// Deletions come after every new row; they are kept aside so the
	// rows counted are what the bouncer receives.
	seq, err := s.store.Stream(ctx, sq, now, emit(false), func(d *store.DecisionRow) error {
		deleted = append(deleted, *d)
		return nil
	})
	if err != nil {
		return nil, err
	}
	next()
	buf = append(buf, `], "deleted": [`...)
	first = true
	del := emit(true)
	for i := range deleted {
		_ = del(&deleted[i])
	}
	buf = append(buf, `]}`...)
	body := buf
	if len(blocks) > 0 {
		body = make([]byte, 0, size+len(buf))
		for _, b := range blocks {
			body = append(body, b...)
		}
		body = append(body, buf...)
	}
	return &renderedDelta{seq: seq, rows: rows, body: body, at: now}, nil
}

// sendDelta answers with a shared rendering, as writeStream would for a
// client-kept cursor.
func (s *Server) sendDelta(c echo.Context, b *store.Bouncer, d *renderedDelta) error {
	resp := c.Response()
	resp.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	s.advertise(resp.Header())
	resp.Header().Set(models.CursorHeader, strconv.FormatInt(d.seq, 10))
	resp.Header().Set(echo.HeaderContentLength, strconv.Itoa(len(d.body)))
	resp.WriteHeader(http.StatusOK)
	if _, err := resp.Write(d.body); err != nil {
		// The client keeps its cursor: it will ask again from the old one.
		return nil
	}
	s.countAnswer(b.Name, d.rows)
	s.recordPull(b, s.now())
	return nil
}
