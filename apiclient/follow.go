package apiclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// FollowIdle is how long a follow response may stay silent before the
// client gives it up as dead: Rampart's LAPI writes a line at least every
// 25 s, so a silent one lost its LAPI or a middlebox dropped it.
const FollowIdle = 75 * time.Second

// FollowFirstLine bounds the wait for a follow response's first line,
// which Rampart's LAPI writes at once. A proxy between that buffers
// responses holds it back until the response ends (minutes later): the
// caller gets ErrFollowHeldBack and should long-poll instead.
const FollowFirstLine = 15 * time.Second

// ErrFollowHeldBack: a follow response's first line did not come within
// FollowFirstLine (see there).
var ErrFollowHeldBack = fmt.Errorf("no first line of the follow response within %s: a proxy between may buffer responses", FollowFirstLine)

// StreamFollow opens the decision stream in Rampart's follow mode (see
// models.FollowHeader): one response carrying a chunk per change. extra
// must hold cursor=<seq>. fn receives each decision of a chunk, in body
// order and reused between calls as StreamScan's; chunk then receives the
// chunk's cursor once its line is complete, and is where the caller
// applies what fn gathered and keeps the cursor. It returns the response
// headers and nil when the LAPI ended the response (the caller resumes
// from its cursor), an error when it broke or chunk failed. A LAPI that
// answers with a plain delta instead (follow mode off) is handled as one
// chunk.
func (c *Client) StreamFollow(ctx context.Context, extra url.Values,
	fn func(deleted bool, d *models.Decision) error, chunk func(cursor int64) error) (http.Header, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errIdle := fmt.Errorf("no line from the LAPI for %s", FollowIdle)
	idle := time.AfterFunc(FollowIdle, func() { cancel(errIdle) })
	defer idle.Stop()
	first := time.AfterFunc(FollowFirstLine, func() { cancel(ErrFollowHeldBack) })
	defer first.Stop()
	q := streamQuery(false, extra)
	q.Set("follow", "true")
	resp, u, err := c.send(ctx, request{method: http.MethodGet, path: "v1/decisions/stream", query: q, auth: authBouncer})
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, ErrFollowHeldBack) {
			return nil, fmt.Errorf("follow: %w", cause)
		}
		return nil, err
	}
	defer closeBody(resp)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		s := newScannerSize(resp.Body, deltaBufSize)
		if err := s.stream(fn); err != nil {
			return resp.Header, fmt.Errorf("GET %s: decoding stream: %w", u.EscapedPath(), err)
		}
		cur, err := strconv.ParseInt(resp.Header.Get(models.CursorHeader), 10, 64)
		if err != nil {
			return resp.Header, fmt.Errorf("GET %s: a delta without a valid %s", u.EscapedPath(), models.CursorHeader)
		}
		return resp.Header, chunk(cur)
	}
	lines := 0
	err = ScanFollow(resp.Body, fn, func(cur int64) error {
		lines++
		first.Stop()
		idle.Reset(FollowIdle)
		return chunk(cur)
	})
	if err == nil && lines == 0 {
		err = errors.New("the response ended before its first line")
	}
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errIdle) || errors.Is(cause, ErrFollowHeldBack) {
			err = cause
		}
		return resp.Header, fmt.Errorf("GET %s (follow): %w", u.EscapedPath(), err)
	}
	return resp.Header, nil
}

// ScanFollow reads a follow response body (newline-delimited
// models.FollowChunk lines) until it ends: fn gets each decision as
// StreamScan's does, chunk each line's cursor once the line is complete.
// A body that ends between lines is a clean end (nil); one cut inside a
// line is an error, and that line's decisions must not be applied.
func ScanFollow(r io.Reader, fn func(deleted bool, d *models.Decision) error, chunk func(cursor int64) error) error {
	s := newScannerSize(r, deltaBufSize)
	var d models.Decision
	for n := 0; ; n++ {
		// Between lines, the body's end is the response's.
		for {
			b, err := s.r.ReadByte()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if b != ' ' && b != '\t' && b != '\n' && b != '\r' {
				_ = s.r.UnreadByte()
				break
			}
		}
		cursor := int64(-1)
		err := s.object(func(key []byte) error {
			switch k := string(key); k {
			case "cursor":
				v, err := s.number()
				if err != nil {
					return fmt.Errorf("cursor: %w", err)
				}
				cursor = v
				return nil
			case "new", "deleted":
				return s.list(k, &d, fn)
			default:
				return s.skipValue(0)
			}
		})
		if err != nil {
			return fmt.Errorf("line %d: %w", n+1, err)
		}
		if cursor < 0 {
			return fmt.Errorf("line %d: no cursor", n+1)
		}
		if err := chunk(cursor); err != nil {
			return err
		}
	}
}
