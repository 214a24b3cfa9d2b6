package apiclient

// Failover between several LAPIs (Config.URLs), one implementation for the
// agent, cscli and the bouncer.
//
// Every call goes to the current LAPI, the first URL at start. When it is
// unreachable (connection refused or reset, DNS or TLS failure, no answer
// before the call's deadline) or unavailable (502, 503 or 504: it, or the
// proxy in front of it, is down or overloaded), the client moves to the
// next URL in the list (wrapping around), logs the move with from, to and
// error, counts it (Failovers), and sends the call again there if the
// call's context has time left, each URL at most once per call. When every
// URL failed the call returns an *UnavailableError naming each. A call its
// caller cancelled moves nothing.
//
// Any other answer is the LAPI's word on the request and is returned as
// is, a 500 included: another LAPI on the same database would say the
// same, and the agent's delivery reads a 500 to tell an alert the LAPI
// cannot take.
//
// The client sticks to the LAPI that works. Once it has been on a later
// URL for Config.Failback (DefaultFailback), the next call starts a probe,
// in the background so that no call waits for it, of the earlier URLs in
// order (GET /health); the first that answers becomes current again: the
// list is in order of preference, such as the site's own LAPI first.
//
// All the URLs must be LAPIs of one database (a fleet): a machine's token
// or login, a bouncer's key and a bouncer's stream cursor are the
// database's, so a move needs neither a new login (a LAPI with another JWT
// secret answers 401, which logs in again there as with one URL) nor a full
// stream. Sending a call again is safe for every call the clients make:
// the LAPI recognises a pushed alert by its UUID, and the others are reads,
// a login or idempotent changes (a usage report sent twice after a LAPI
// failed mid-request counts twice).

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	log "github.com/sirupsen/logrus"
)

const (
	// DefaultFailback is how long the client stays on a later LAPI before
	// it checks whether an earlier one works again.
	DefaultFailback = 5 * time.Minute

	// probeTimeout bounds one GET /health of a failback probe.
	probeTimeout = 5 * time.Second
)

// UnavailableError is a call that failed on every LAPI URL it tried.
type UnavailableError struct {
	URLs []string // the LAPIs tried, in order
	Errs []error  // what each said
}

func (e *UnavailableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no LAPI available (%d tried)", len(e.URLs))
	for i, u := range e.URLs {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s: %v", sep, u, e.Errs[i])
	}
	return b.String()
}

// Unwrap lets errors.As find what each LAPI answered (an *APIError).
func (e *UnavailableError) Unwrap() []error { return e.Errs }

// unavailableStatus tells the answers that say the LAPI (or the proxy in
// front of it) cannot serve now, rather than anything about the request.
func unavailableStatus(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// URLs returns every LAPI base URL, in order of preference.
func (c *Client) URLs() []string {
	out := make([]string, len(c.eps))
	for i, ep := range c.eps {
		out[i] = ep.base.String()
	}
	return out
}

// Failovers counts the moves from one LAPI to another (failures and
// returns to a preferred LAPI), for the daemons' metrics.
func (c *Client) Failovers() uint64 { return c.failovers.Load() }

// currentEndpoint returns the LAPI calls go to now, and starts a failback
// probe when one is due.
func (c *Client) currentEndpoint() *endpoint {
	if len(c.eps) == 1 {
		return c.eps[0]
	}
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if c.cur > 0 && c.failback > 0 && !c.probing && time.Since(c.since) >= c.failback {
		c.probing, c.since = true, time.Now()
		go c.probe(c.cur)
	}
	return c.eps[c.cur]
}

// sendFailover sends o to ep and, while the LAPIs fail as unavailable and
// the context has time left, to the next ones.
func (c *Client) sendFailover(ctx context.Context, ep *endpoint, o *outgoing) (*http.Response, *url.URL, error) {
	tried := make([]bool, len(c.eps))
	var failed UnavailableError
	for {
		tried[c.index(ep)] = true
		resp, u, unavailable, err := c.sendTo(ctx, ep, o)
		if err == nil {
			ep.failing.Store(false)
			return resp, u, nil
		}
		if !unavailable {
			return nil, u, err
		}
		failed.URLs, failed.Errs = append(failed.URLs, ep.raw), append(failed.Errs, err)
		next := c.moveOn(ep, err)
		if ctx.Err() != nil || tried[c.index(next)] {
			if len(failed.Errs) == 1 {
				return nil, u, err
			}
			return nil, u, &failed
		}
		ep = next
	}
}

func (c *Client) index(ep *endpoint) int {
	for i, e := range c.eps {
		if e == ep {
			return i
		}
	}
	return 0
}

// moveOn records that ep failed with err and returns the LAPI to use
// next: the one after ep, or whichever a concurrent call already moved to.
// A LAPI's first failure since it last worked is logged as a warning, the
// following ones (every LAPI down) at debug level: the callers report the
// outage themselves.
func (c *Client) moveOn(ep *endpoint, err error) *endpoint {
	c.fmu.Lock()
	if c.eps[c.cur] != ep {
		next := c.eps[c.cur]
		c.fmu.Unlock()
		return next
	}
	c.cur = (c.index(ep) + 1) % len(c.eps)
	c.since = time.Now()
	next := c.eps[c.cur]
	c.fmu.Unlock()
	c.failovers.Add(1)
	lg := c.log.WithFields(log.Fields{"from": ep.raw, "to": next.raw}).WithError(err)
	if ep.failing.Swap(true) {
		lg.Debug("LAPI still failing; trying the next one")
	} else {
		lg.Warn("LAPI failed; moving to the next one")
	}
	return next
}

// probe checks, in order of preference, the LAPIs before eps[from] and
// makes the first that answers current, if the client is still on from.
func (c *Client) probe(from int) {
	defer func() {
		c.fmu.Lock()
		c.probing = false
		c.fmu.Unlock()
	}()
	for i := range from {
		ep := c.eps[i]
		err := c.health(ep)
		if err != nil {
			c.log.WithFields(log.Fields{"lapi": ep.raw, "current": c.eps[from].raw}).WithError(err).Debug("preferred LAPI still unavailable")
			continue
		}
		c.fmu.Lock()
		moved := c.cur == from
		if moved {
			c.cur, c.since = i, time.Now()
		}
		c.fmu.Unlock()
		if moved {
			ep.failing.Store(false)
			c.failovers.Add(1)
			c.log.WithFields(log.Fields{"from": c.eps[from].raw, "to": ep.raw}).Info("preferred LAPI answers again; moving back to it")
		}
		return
	}
}

// health asks one LAPI for GET /health. Any answer but an unavailable one
// counts as up: an upstream LAPI without the route answers 404.
func (c *Client) health(ep *endpoint) error {
	ctx, cancel := context.WithTimeout(context.Background(), min(c.timeout, probeTimeout))
	defer cancel()
	resp, _, unavailable, err := c.sendTo(ctx, ep, &outgoing{request: request{method: http.MethodGet, path: "health"}, auth: authNone})
	if err == nil {
		closeBody(resp)
		return nil
	}
	if !unavailable {
		return nil
	}
	return err
}
