package lapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func normScopes(v string) []string {
	var out []string
	for _, s := range splitList(v) {
		out = append(out, models.NormalizeScope(s))
	}
	return out
}

func parseBoolParam(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("'%s' is not a boolean: %w", v, err)
	}
	return b, nil
}

// Bounds on the comma-separated filters bouncers send: each value is one
// SQL parameter (a LIKE for the scenario filters) and SQLite refuses
// expressions nested too deep, while real bouncers send a handful.
const (
	maxListValues   = 100
	maxListValueLen = 1024
)

// checkListParams refuses list filters too big to query, before any query
// runs, naming the parameter.
func checkListParams(q url.Values) error {
	for _, name := range []string{"scopes", "scope", "origins", "scenarios_containing", "scenarios_not_containing"} {
		vals := splitList(q.Get(name))
		if len(vals) > maxListValues {
			return fmt.Errorf("%s: %d values, at most %d are allowed", name, len(vals), maxListValues)
		}
		for _, v := range vals {
			if len(v) > maxListValueLen {
				return fmt.Errorf("%s: a value of %d bytes, at most %d are allowed", name, len(v), maxListValueLen)
			}
		}
	}
	return nil
}

// bouncerFilter reads the filters GET /decisions and the stream share;
// unknown parameters are ignored, as upstream does.
func bouncerFilter(q url.Values, stream bool) (store.DecisionFilter, error) {
	var f store.DecisionFilter
	f.Contains = true
	scopes := q.Get("scopes")
	if scopes == "" {
		scopes = q.Get("scope")
	}
	if scopes == "" && stream && !q.Has("scopes") {
		scopes = "ip,range"
	}
	f.Scopes = normScopes(scopes)
	f.Origins = splitList(q.Get("origins"))
	f.ScenariosContaining = splitList(q.Get("scenarios_containing"))
	f.ScenariosNotContaining = splitList(q.Get("scenarios_not_containing"))
	// simulated=true is ignored: decisions of scenarios in simulation
	// never reach a bouncer, whatever it asks (upstream would serve them).
	if stream {
		return f, nil
	}
	f.Value = q.Get("value")
	f.Type = q.Get("type")
	if v := q.Get("contains"); v != "" {
		b, err := parseBoolParam(v)
		if err != nil {
			return f, err
		}
		f.Contains = b
	}
	for _, k := range []string{"ip", "range"} {
		if v := q.Get(k); v != "" {
			r, err := store.ParseRange(v)
			if err != nil {
				return f, fmt.Errorf("unable to convert '%s' to int: %w", v, err)
			}
			f.Range = &r
		}
	}
	for k, dst := range map[string]*int{"limit": &f.Limit, "offset": &f.Offset} {
		if v := q.Get(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return f, fmt.Errorf("invalid %s '%s': %w", k, v, err)
			}
			*dst = n
		}
	}
	if v := q.Get("id_gt"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return f, fmt.Errorf("invalid id_gt '%s': %w", v, err)
		}
		f.IDGt = n
	}
	return f, nil
}

// getDecisions is GET/HEAD /v1/decisions: active decisions, no dedup.
func (s *Server) getDecisions(c echo.Context) error {
	if err := checkListParams(c.QueryParams()); err != nil {
		return jsonError(c, http.StatusBadRequest, err.Error())
	}
	f, err := bouncerFilter(c.QueryParams(), false)
	if err != nil {
		return jsonError(c, http.StatusInternalServerError, err.Error())
	}
	if c.Request().Method == http.MethodHead {
		return c.String(http.StatusOK, "")
	}
	now := s.now()
	rows, err := s.store.QueryDecisions(c.Request().Context(), f, now)
	if err != nil {
		return s.storeError(c, err)
	}
	if rows, err = s.servable(c, rows); err != nil {
		return s.storeError(c, err)
	}
	b := c.Get(ctxBouncer).(*store.Bouncer)
	s.recordPull(b, now)
	s.countAnswer(b.Name, len(rows))
	if len(rows) == 0 {
		return c.JSONBlob(http.StatusOK, []byte("null"))
	}
	buf := make([]byte, 0, 256*len(rows))
	buf = append(buf, '[')
	for i := range rows {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendDecision(buf, &rows[i], now, false)
	}
	buf = append(buf, ']')
	return c.JSONBlob(http.StatusOK, buf)
}

// servable drops the rows no bouncer may get (see allowSnapshot.servable).
func (s *Server) servable(c echo.Context, rows []store.DecisionRow) ([]store.DecisionRow, error) {
	snap, err := s.allow.snapshot(c.Request().Context())
	if err != nil {
		return nil, err
	}
	kept := rows[:0]
	for i := range rows {
		if snap.servable(&rows[i]) {
			kept = append(kept, rows[i])
		}
	}
	return kept, nil
}

func (s *Server) headStream(c echo.Context) error {
	return c.String(http.StatusOK, "")
}

// streamDecisions is GET /v1/decisions/stream. The body is streamed from
// one database snapshot; the bouncer's cursor moves only once the whole body
// was written. Rampart's opt-in long-poll: wait=<duration> on a delta holds
// the request until a decision change concerns this bouncer. Rampart's
// opt-in client-kept cursor: cursor=<seq> (see streamCursor). Rampart's
// opt-in follow mode: follow=true with cursor=<seq> (see followStream).
func (s *Server) streamDecisions(c echo.Context) error {
	ctx := c.Request().Context()
	q := c.QueryParams()
	b := c.Get(ctxBouncer).(*store.Bouncer)
	if err := checkListParams(q); err != nil {
		return jsonError(c, http.StatusBadRequest, err.Error())
	}
	f, _ := bouncerFilter(q, true)
	sq := store.StreamQuery{Filter: f, Startup: q.Get("startup") == "true", NoDedup: q.Get("dedup") == "false"}
	ua := streamClient(c)
	if err := s.streamCursor(c, b, ua, &sq); err != nil {
		return err
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" && !sq.Startup {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return jsonError(c, http.StatusBadRequest, fmt.Sprintf("invalid wait '%s': a Go duration such as 30s", v))
		}
		wait = min(d, s.cfg.API.Server.LongPollMax.Duration)
	}
	// follow=true is honoured with a client-kept cursor on a delta; a LAPI
	// with the mode off answers as a pull, without the header that offers it.
	follow := false
	if v := q.Get("follow"); v != "" && !sq.Startup {
		f, err := parseBoolParam(v)
		if err != nil {
			return jsonError(c, http.StatusBadRequest, "invalid follow: "+err.Error())
		}
		if f && !sq.ClientCursor {
			return jsonError(c, http.StatusBadRequest, "follow=true needs cursor=<seq>: the cursor of the previous response")
		}
		follow = f && s.followOn()
	}
	// Expired decisions go out as deletions in this very answer. The
	// requests of a herd share one sweep (or one look finding none due).
	if s.store.SweepDue(s.now()) {
		if _, err := s.sweeps.get(ctx, struct{}{}); err != nil {
			s.log.WithError(err).Warn("expiring decisions before stream")
		}
	}

	if follow {
		return s.followStream(c, b, q, sq)
	}
	if wait > 0 {
		deadline := time.NewTimer(wait)
		defer deadline.Stop()
		s.longPolls.Add(1)
		defer s.longPolls.Add(-1)
		// Bouncers keeping their own cursor share one rendering of each
		// delta (see sharedDeltas): a change wakes them all at once.
		var allowSnap *allowSnapshot
		if sq.ClientCursor {
			var err error
			// The allowlists' version was read with an API key, just now
			// (a certificate's bouncer has not read it).
			if counts, ok := c.Get(ctxCounts).(changeCounts); ok {
				allowSnap, err = s.allow.snapshotAt(ctx, counts.allowlists)
			} else {
				allowSnap, err = s.allow.snapshot(ctx)
			}
			if err != nil {
				return s.storeError(c, err)
			}
		}
	poll:
		for {
			changed := s.store.Changed()
			if seq := s.store.Seq(); seq > sq.Cursor {
				if allowSnap != nil {
					cur := sq
					d, err := s.deltas.delta(deltaKey(q, sq.Cursor, allowSnap), seq, s.now(), func() (*renderedDelta, error) {
						return s.renderDelta(context.WithoutCancel(ctx), cur, allowSnap)
					})
					if err != nil {
						return s.streamError(c, err)
					}
					if d.rows > 0 {
						return s.sendDelta(c, b, d)
					}
					sq.Cursor = d.seq // nothing for this bouncer up to seq
				} else {
					n, seq, err := s.countDelta(c, sq)
					if err != nil {
						return s.streamError(c, err)
					}
					if n > 0 {
						break poll
					}
					sq.Cursor = seq
				}
			}
			select {
			case <-changed:
			case <-deadline.C:
				break poll
			case <-s.stopping:
				// Shutting down: answer now with what there is (usually
				// an empty delta and the same cursor), as a wait that
				// timed out would, so the client records no failure; it
				// reconnects when the LAPI is back.
				c.Response().Header().Set(echo.HeaderConnection, "close")
				break poll
			case <-ctx.Done():
				return nil
			}
		}
	}
	return s.writeStream(c, b, ua, sq)
}

// advertise sets the headers that offer Rampart's bouncer its long-poll
// (the longest wait= honoured) and, when on, its follow mode.
func (s *Server) advertise(h http.Header) {
	h.Set(models.LongPollHeader, s.cfg.API.Server.LongPollMax.Duration.String())
	if s.followOn() {
		h.Set(models.FollowHeader, s.follow.max.String())
	}
}

// streamClient names the client a server-kept cursor belongs to within its
// bouncer row: its User-Agent, so that two different bouncers sharing a key
// on one address (a firewall and a web server bouncer) each get every
// change. The length is bounded: it is stored.
func streamClient(c echo.Context) string {
	ua := c.Request().UserAgent()
	if len(ua) > 256 {
		ua = ua[:256]
	}
	return ua
}

// streamCursor fills in where a delta starts. A client that sends cursor=
// keeps its own cursor (empty on startup, then the models.CursorHeader of
// its last complete response): any number of its processes can share a
// key and address, and the server-kept cursors are left alone. Other
// clients (upstream's) get the cursor kept for their row and User-Agent;
// two of them on one key, address and User-Agent share it, which is
// logged because each then misses what the other pulled.
func (s *Server) streamCursor(c echo.Context, b *store.Bouncer, ua string, sq *store.StreamQuery) error {
	q := c.QueryParams()
	if q.Has("cursor") {
		sq.ClientCursor = true
		if sq.Startup {
			return nil
		}
		v := q.Get("cursor")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return jsonError(c, http.StatusBadRequest, fmt.Sprintf("invalid cursor '%s': send the %s of the previous response, or pull startup=true", v, models.CursorHeader))
		}
		sq.Cursor = n
		return nil
	}
	cur, err := s.store.StreamCursor(c.Request().Context(), b.ID, ua)
	if err != nil {
		return s.storeError(c, err)
	}
	if cur == nil {
		sq.Startup = true
	} else {
		sq.Cursor = *cur
	}
	if s.streams.shared(b.ID, ua, s.directPeer(c), s.now()) {
		s.log.WithFields(log.Fields{"bouncer": b.Name, "ip": b.IPAddress, "user_agent": ua}).Warn(
			"two processes are pulling the decision stream with one API key from one address and the same User-Agent: " +
				"they share one stream cursor, so each misses the decisions the other pulled; " +
				"give each its own key (cscli bouncers add) or use Rampart's bouncer, which keeps its own cursor")
	}
	return nil
}

// directPeer is the TCP peer (address and port) when the client connects
// directly; "" behind a proxy or on a unix socket, where connections say
// nothing about the processes behind them.
func (s *Server) directPeer(c echo.Context) string {
	ra := c.Request().RemoteAddr
	host, _, err := net.SplitHostPort(ra)
	if err != nil {
		return ""
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Unmap() != s.clientAddr(c) {
		return ""
	}
	return ra
}

// streamError answers a failure that happened before the body started.
func (s *Server) streamError(c echo.Context, err error) error {
	if errors.Is(err, store.ErrCursorGone) {
		return jsonError(c, http.StatusGone, err.Error())
	}
	return s.storeError(c, err)
}

// countDelta tells whether a delta would carry anything, without writing.
func (s *Server) countDelta(c echo.Context, sq store.StreamQuery) (int, int64, error) {
	n := 0
	count := func(*store.DecisionRow) error { n++; return nil }
	seq, err := s.store.Stream(c.Request().Context(), sq, s.now(), count, count)
	return n, seq, err
}

// streamBatch carries rows from the database reader to the HTTP writer.
type streamBatch struct {
	rows    []store.DecisionRow
	deleted bool
}

const streamBatchRows = 1024

// streamWriteSize is the least a stream body writes at once.
const streamWriteSize = 64 << 10

func (s *Server) writeStream(c echo.Context, b *store.Bouncer, ua string, sq store.StreamQuery) error {
	allowSnap, serr := s.allow.snapshot(c.Request().Context())
	if serr != nil {
		return s.storeError(c, serr)
	}
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	now := s.now()

	// Reading SQLite and rendering JSON each take about one core at 1M
	// rows, so they run in two goroutines; the channel bounds memory.
	batches := make(chan streamBatch, 4)
	var seq int64
	var readErr error
	// The reader sends the snapshot's sequence before any row, or -1 when
	// it failed before opening one: the status and the cursor header are
	// only known then.
	snap := make(chan int64, 1)
	opened := false
	sq.OnSnapshot = func(seq int64) { opened = true; snap <- seq }
	go func() {
		defer close(batches)
		defer func() {
			if !opened {
				snap <- -1
			}
		}()
		// Batches start small and reach streamBatchRows only in a large
		// stream: a long-poll's delta brings a row or two, and a decision
		// wakes every bouncer of a fleet at once.
		cur := streamBatch{rows: make([]store.DecisionRow, 0, 16)}
		flush := func() error {
			if len(cur.rows) == 0 {
				return nil
			}
			next := 16
			if len(cur.rows) == streamBatchRows {
				next = streamBatchRows
			}
			select {
			case batches <- cur:
			case <-ctx.Done():
				return ctx.Err()
			}
			cur = streamBatch{rows: make([]store.DecisionRow, 0, next), deleted: cur.deleted}
			return nil
		}
		add := func(deleted bool) func(*store.DecisionRow) error {
			return func(d *store.DecisionRow) error {
				// Deletions always go: a bouncer may hold the decision
				// from an older version.
				if !deleted && !allowSnap.servable(d) {
					return nil
				}
				if cur.deleted != deleted {
					if err := flush(); err != nil {
						return err
					}
					cur.deleted = deleted
				}
				cur.rows = append(cur.rows, *d)
				if len(cur.rows) == streamBatchRows {
					return flush()
				}
				return nil
			}
		}
		seq, readErr = s.store.Stream(ctx, sq, now, add(false), add(true))
		if readErr == nil {
			readErr = flush()
		}
	}()

	at := <-snap
	if at < 0 {
		// The reader failed before its snapshot: nothing was sent yet.
		for range batches {
		}
		return s.streamError(c, readErr)
	}
	resp := c.Response()
	resp.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	// Tells Rampart's bouncer it may long-poll or follow, and the cursor
	// this body brings it to; upstream clients ignore both.
	s.advertise(resp.Header())
	resp.Header().Set(models.CursorHeader, strconv.FormatInt(at, 10))
	resp.WriteHeader(http.StatusOK)
	// The body is rendered into buf, written out in pieces of at least
	// streamWriteSize: buf grows with what a stream brings rather than
	// being sized for the largest (a delta is a few hundred bytes).
	buf := append(make([]byte, 0, 1024), `{"new": [`...)
	var werr error
	inDeleted, first := false, true
	sent := 0
	for bt := range batches {
		if werr != nil {
			continue // drain so the reader ends
		}
		sent += len(bt.rows)
		if bt.deleted && !inDeleted {
			buf = append(buf, `], "deleted": [`...)
			inDeleted, first = true, true
		}
		for i := range bt.rows {
			if !first {
				buf = append(buf, ',')
			}
			first = false
			buf = appendDecision(buf, &bt.rows[i], now, true)
		}
		if len(buf) >= streamWriteSize {
			if _, werr = resp.Write(buf); werr != nil {
				cancel()
			}
			buf = buf[:0]
		}
	}
	err := werr
	if err == nil {
		err = readErr
	}
	if err == nil {
		if !inDeleted {
			buf = append(buf, `], "deleted": [`...)
		}
		_, err = resp.Write(append(buf, `]}`...))
	}
	if err != nil {
		if c.Request().Context().Err() == nil {
			s.log.WithError(err).WithField("bouncer", b.Name).Warn("decision stream failed mid-body; cursor not moved")
		}
		// Abort the connection so the client sees a broken body, never a
		// truncated one that parses.
		panic(http.ErrAbortHandler)
	}
	s.countAnswer(b.Name, sent)
	if sq.ClientCursor {
		// The client keeps its cursor: only the pull time is shown.
		s.recordPull(b, now)
	} else if err := s.store.SetStreamCursor(c.Request().Context(), b.ID, ua, seq, now); err != nil {
		s.log.WithError(err).WithField("bouncer", b.Name).Warn("storing stream cursor")
	}
	if s.log.Logger.IsLevelEnabled(log.DebugLevel) {
		s.log.WithFields(log.Fields{"bouncer": b.Name, "startup": sq.Startup, "cursor": seq}).Debug("stream sent")
	}
	return nil
}

// appendDecision renders a decision in upstream's key order.
func appendDecision(buf []byte, d *store.DecisionRow, now time.Time, withUUID bool) []byte {
	buf = append(buf, `{"duration":`...)
	buf = appendJSONString(buf, models.FormatRemaining(d.Until, now))
	buf = append(buf, `,"id":`...)
	buf = strconv.AppendInt(buf, d.ID, 10)
	buf = append(buf, `,"origin":`...)
	buf = appendJSONString(buf, d.Origin)
	buf = append(buf, `,"scenario":`...)
	buf = appendJSONString(buf, d.Scenario)
	buf = append(buf, `,"scope":`...)
	buf = appendJSONString(buf, d.Scope)
	buf = append(buf, `,"type":`...)
	buf = appendJSONString(buf, d.Type)
	if withUUID && d.UUID != "" {
		buf = append(buf, `,"uuid":`...)
		buf = appendJSONString(buf, d.UUID)
	}
	buf = append(buf, `,"value":`...)
	buf = appendJSONString(buf, d.Value)
	return append(buf, '}')
}

const hexDigits = "0123456789abcdef"

func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// deleteFilterKeys are the parameters DELETE /v1/decisions accepts.
var deleteFilterKeys = map[string]bool{"ip": true, "range": true, "contains": true, "scopes": true, "value": true,
	"type": true, "origin": true, "scenario": true, "uuid": true}

// deleteDecisions is DELETE /v1/decisions: expire by filter (none = all).
func (s *Server) deleteDecisions(c echo.Context) error {
	q := c.QueryParams()
	var f store.DecisionFilter
	f.Contains = true
	for k, vs := range q {
		if !deleteFilterKeys[k] {
			return jsonError(c, http.StatusInternalServerError, fmt.Sprintf("'%s' doesn't exist: invalid filter", k))
		}
		v := vs[0]
		switch k {
		case "ip", "range":
			r, err := store.ParseRange(v)
			if err != nil {
				return jsonError(c, http.StatusInternalServerError, fmt.Sprintf("unable to convert '%s' to int: %s", v, err))
			}
			f.Range = &r
		case "contains":
			b, err := parseBoolParam(v)
			if err != nil {
				return jsonError(c, http.StatusInternalServerError, err.Error())
			}
			f.Contains = b
		case "scopes":
			f.Scopes = []string{strings.Split(v, ",")[0]}
		case "value":
			f.Value = v
		case "type":
			f.Type = v
		case "origin":
			f.Origins = []string{v}
		case "scenario":
			f.Scenario = v
		case "uuid":
			f.UUIDs = vs
		}
	}
	del := s.store.DeleteDecisions
	if s.shareDel.Load() {
		del = s.store.DeleteDecisionsShared
	}
	n, err := del(c.Request().Context(), f)
	if err != nil {
		return s.storeError(c, err)
	}
	s.log.WithFields(log.Fields{"machine": c.Get(ctxMachine), "count": n, "filter": q.Encode()}).Info("decisions deleted")
	return c.JSON(http.StatusOK, models.DeleteResponse{NbDeleted: strconv.FormatInt(n, 10)})
}

// deleteDecision is DELETE /v1/decisions/{id}.
func (s *Server) deleteDecision(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("decision_id"), 10, 64)
	if err != nil {
		return jsonError(c, http.StatusBadRequest, "decision_id must be valid integer")
	}
	del := s.store.DeleteDecision
	if s.shareDel.Load() {
		del = s.store.DeleteDecisionShared
	}
	if err := del(c.Request().Context(), id); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return s.storeError(c, err)
		}
		// upstream answers an unknown id with 500, not 404
		return jsonError(c, http.StatusInternalServerError, strings.TrimSuffix(err.Error(), ": "+store.ErrNotFound.Error()))
	}
	return c.JSON(http.StatusOK, models.DeleteResponse{NbDeleted: "1"})
}

// countDecisions is GET /v1/decisions/count?value=V[&since=D], a Rampart
// addition for machines: how many decisions cover V (an IP or a range),
// how many of them are active, how many were created within D, and the
// longest time left, which upstream's agent reads from the database for
// its GetDecisionsCount family of expression helpers.
func (s *Server) countDecisions(c echo.Context) error {
	q := c.QueryParams()
	for k := range q {
		if k != "value" && k != "since" {
			return jsonError(c, http.StatusBadRequest, fmt.Sprintf("unknown parameter '%s' (value and since are accepted)", k))
		}
	}
	value := q.Get("value")
	if value == "" {
		return jsonError(c, http.StatusBadRequest, "value is required: an IP address or range")
	}
	now := time.Now()
	var since time.Time
	if raw, ok := q["since"]; ok {
		d, err := models.ParseDuration(raw[0])
		if err != nil || d < 0 {
			return jsonError(c, http.StatusBadRequest, fmt.Sprintf("since: '%s' is not a duration", raw[0]))
		}
		since = now.Add(-d)
	}
	counts, err := s.store.CountDecisions(c.Request().Context(), value, since, now)
	if errors.Is(err, store.ErrNotAddress) {
		return jsonError(c, http.StatusBadRequest, fmt.Sprintf("value '%s' is not an IP address or range", value))
	}
	if err != nil {
		return s.storeError(c, err)
	}
	resp := models.DecisionCountsResponse{Value: value, Count: counts.Total, ActiveCount: counts.Active, TimeLeft: "0s"}
	if !since.IsZero() {
		resp.SinceCount = &counts.Since
	}
	if !counts.Until.IsZero() {
		resp.TimeLeft = counts.Until.Sub(now).String()
	}
	return c.JSON(http.StatusOK, resp)
}
