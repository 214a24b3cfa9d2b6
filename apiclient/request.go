package apiclient

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
)

// authMode says which credentials a route takes.
type authMode int

const (
	authNone    authMode = iota // /health, login, registration
	authMachine                 // Authorization: Bearer <jwt>
	authBouncer                 // X-Api-Key
	authEither                  // a bouncer's key or certificate, else a machine's JWT
)

// request is one LAPI call before it is sent.
type request struct {
	method string
	path   string // relative and escaped, e.g. "v1/alerts"
	query  url.Values
	body   any // marshalled as JSON when non-nil
	// raw, when non-nil, is the body already encoded (body is ignored);
	// parts, when non-nil, is it in pieces, sent one after the other.
	raw   []byte
	parts [][]byte
	auth  authMode
}

// do sends r and, on a 2xx answer, decodes the JSON body into out (when out
// is non-nil). An empty body leaves out untouched.
func (c *Client) do(ctx context.Context, r request, out any) error {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()

	resp, u, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer closeBody(resp)
	if out == nil {
		return nil
	}
	if err := decodeJSON(resp, out); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s %s: decoding response: %w", r.method, u.EscapedPath(), err)
	}
	return nil
}

// send performs r and returns the response when its status is 2xx; the
// caller closes the body. Anything else is an *APIError. With machine
// authentication a 401 or 403 drops the token, logs in again and retries
// once, as upstream's JWT transport does. With several LAPI URLs, a LAPI
// that is unreachable or unavailable hands the call to the next one (see
// failover.go).
func (c *Client) send(ctx context.Context, r request) (*http.Response, *url.URL, error) {
	ep := c.currentEndpoint()
	u, err := ep.resolve(r.path, r.query)
	if err != nil {
		return nil, nil, err
	}
	auth := r.auth
	if auth == authEither {
		auth = authMachine
		if c.bouncer {
			auth = authBouncer
		}
	}
	if err := c.checkCredentials(auth); err != nil {
		return nil, u, fmt.Errorf("%s %s: %w", r.method, u.EscapedPath(), err)
	}

	payload, parts := r.raw, r.parts
	gzipped := false
	size := len(payload)
	switch {
	case parts != nil:
		payload, size = nil, 0
		for _, p := range parts {
			size += len(p)
		}
	case r.raw == nil && r.body != nil:
		payload, err = json.Marshal(r.body)
		if err != nil {
			return nil, u, fmt.Errorf("%s %s: encoding body: %w", r.method, u.EscapedPath(), err)
		}
		size = len(payload)
	}
	if (payload != nil || parts != nil) && size > gzipThreshold && !c.plain {
		if parts != nil {
			payload, parts = bytes.Join(parts, nil), nil
		}
		payload, err = gzipBytes(payload)
		if err != nil {
			return nil, u, fmt.Errorf("%s %s: compressing body: %w", r.method, u.EscapedPath(), err)
		}
		gzipped = true
	}
	out := outgoing{request: r, auth: auth, payload: payload, parts: parts, size: size, gzipped: gzipped}
	if len(c.eps) == 1 {
		resp, u, _, err := c.sendTo(ctx, ep, &out)
		return resp, u, err
	}
	return c.sendFailover(ctx, ep, &out)
}

// outgoing is a request with its body encoded, ready to go to any LAPI.
type outgoing struct {
	request
	auth    authMode // authEither resolved
	payload []byte   // nil: no body, or parts
	parts   [][]byte // the body in pieces (request.parts), not gzipped
	size    int      // of parts
	gzipped bool
}

// body returns a reader of o's body from its start, nil for none.
func (o *outgoing) body() io.Reader {
	switch {
	case o.parts != nil:
		// net.Buffers consumes the list it reads: a copy per attempt.
		b := net.Buffers(slices.Clone(o.parts))
		return &b
	case o.payload != nil:
		return bytes.NewReader(o.payload)
	}
	return nil
}

// sendTo performs o against one LAPI. unavailable says the failure is the
// LAPI's being unreachable or unavailable (see failover.go), not an answer
// about the request.
func (c *Client) sendTo(ctx context.Context, ep *endpoint, o *outgoing) (resp *http.Response, u *url.URL, unavailable bool, err error) {
	u, err = ep.resolve(o.path, o.query)
	if err != nil {
		return nil, nil, false, err
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, o.method, u.String(), o.body())
		if err != nil {
			return nil, u, false, fmt.Errorf("%s %s: %w", o.method, u.EscapedPath(), err)
		}
		if o.parts != nil {
			// A reader NewRequest does not know: its length, or the body
			// would go chunked, and how to read it again.
			req.ContentLength = int64(o.size)
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(o.body()), nil }
		}
		req.Header.Set("User-Agent", c.userAgent)
		req.Header.Set("Accept", "application/json")
		if o.payload != nil || o.parts != nil {
			req.Header.Set("Content-Type", "application/json")
			if o.gzipped {
				req.Header.Set("Content-Encoding", "gzip")
			}
		}

		var token string
		switch o.auth {
		case authMachine:
			token, err = c.validToken(ctx)
			if err != nil {
				return nil, u, false, fmt.Errorf("%s %s: %w", o.method, u.EscapedPath(), err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
		case authBouncer:
			if c.apiKey != "" {
				req.Header.Set("X-Api-Key", c.apiKey)
			}
		}

		resp, err := ep.http.Do(req)
		if err != nil {
			// A call its caller cancelled says nothing about the LAPI;
			// one that ran out of time does.
			return nil, u, !errors.Is(ctx.Err(), context.Canceled), fmt.Errorf("%s %s: %w", o.method, u.EscapedPath(), err)
		}
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			return resp, u, false, nil
		}
		if o.auth == authMachine && attempt == 0 &&
			(resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			// Also what a LAPI with another JWT secret says to a token
			// another LAPI of the fleet issued.
			closeBody(resp)
			c.dropToken(token)
			continue
		}
		apiErr := newAPIError(o.method, u.EscapedPath(), resp)
		closeBody(resp)
		return nil, u, unavailableStatus(resp.StatusCode), apiErr
	}
}

// checkCredentials fails early when the route needs credentials the
// Config does not have.
func (c *Client) checkCredentials(auth authMode) error {
	switch auth {
	case authMachine:
		if c.machineID == "" && !c.clientCert {
			return fmt.Errorf("machine authentication needed but no machine_id or client certificate configured")
		}
	case authBouncer:
		if c.apiKey == "" && !c.clientCert {
			return fmt.Errorf("bouncer authentication needed but no API key or client certificate configured")
		}
	}
	return nil
}

// decodeJSON decodes one JSON value from the response body; an empty body
// is io.EOF.
func decodeJSON(resp *http.Response, out any) error {
	return json.NewDecoder(resp.Body).Decode(out)
}

// gzipBytes compresses at the fastest level: the bodies are JSON, which
// that still shrinks several times, and the default level cost the agent
// as much CPU as encoding and sending them.
func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return buf.Bytes(), nil
}

// closeBody drains a little of what is left so the connection can be
// reused, then closes.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}
