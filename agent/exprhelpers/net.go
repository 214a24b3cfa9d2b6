package exprhelpers

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	log "github.com/sirupsen/logrus"
	"golang.org/x/sync/singleflight"
)

// Helpers that reach the network (HTTP*, LookupHost, CrowdsecCTI; the
// decision counts, which ask the LAPI, are in decisions.go). A rule runs
// them on the event path, so each is bounded: a short timeout, at most
// netMaxInFlight lookups at once (beyond that the zero value at once),
// identical calls coalesced and their results, failures included, cached
// for a while. Failures give the zero value and a warning at most once a
// minute per helper.

const (
	netTimeout     = 2 * time.Second
	netMaxInFlight = 4
	netCacheSize   = 1024
	netOKTTL       = 5 * time.Minute
	netFailTTL     = 30 * time.Second
	netMaxBody     = 1 << 20
	netWarnEvery   = time.Minute
)

// errCTIDisabled is CrowdsecCTI's error when no CTI key is configured, as
// upstream's (the expression then fails and its node does not match).
var errCTIDisabled = errors.New("crowdsec CTI API is disabled: no API key configured")

type netResult struct {
	val     any
	expires time.Time
}

type netState struct {
	now      func() time.Time
	client   *http.Client
	resolver *net.Resolver // LookupHost and MatchKnownBot's FCrDNS
	sf       singleflight.Group
	sem      chan struct{}

	mu     sync.Mutex
	cache  map[string]netResult
	warned map[string]time.Time
	once   map[string]bool
}

func (n *netState) init(now func() time.Time) {
	n.now = now
	n.client = &http.Client{Timeout: netTimeout}
	n.resolver = net.DefaultResolver
	n.sem = make(chan struct{}, netMaxInFlight)
	n.cache = map[string]netResult{}
	n.warned = map[string]time.Time{}
	n.once = map[string]bool{}
}

// warn logs msg for helper at most once per netWarnEvery.
func (n *netState) warn(helper string, err error) {
	n.mu.Lock()
	last, ok := n.warned[helper]
	now := n.now()
	if ok && now.Sub(last) < netWarnEvery {
		n.mu.Unlock()
		return
	}
	n.warned[helper] = now
	n.mu.Unlock()
	log.WithField("helper", helper).WithError(err).Warn("expr helper failed; it gives its zero value (warning repeated at most once a minute)")
}

// warnOnce logs msg once per helper for the life of the rule set.
func (n *netState) warnOnce(helper, msg string) {
	n.mu.Lock()
	seen := n.once[helper]
	n.once[helper] = true
	n.mu.Unlock()
	if !seen {
		log.WithField("helper", helper).Warn(msg)
	}
}

// cached returns the cached result of key or runs fetch once for all
// concurrent callers, caching its result; zero when too many lookups are
// in flight or fetch fails.
func (n *netState) cached(helper, key string, zero any, fetch func(context.Context) (any, error)) any {
	n.mu.Lock()
	if r, ok := n.cache[key]; ok && n.now().Before(r.expires) {
		n.mu.Unlock()
		return r.val
	}
	n.mu.Unlock()
	v, _, _ := n.sf.Do(key, func() (any, error) {
		select {
		case n.sem <- struct{}{}:
		default:
			n.warn(helper, errors.New("too many lookups in flight"))
			return zero, nil // not cached: the next event may try again
		}
		defer func() { <-n.sem }()
		ctx, cancel := context.WithTimeout(context.Background(), netTimeout)
		defer cancel()
		val, err := fetch(ctx)
		ttl := netOKTTL
		if err != nil {
			n.warn(helper, err)
			val, ttl = zero, netFailTTL
		}
		n.mu.Lock()
		if len(n.cache) >= netCacheSize {
			now := n.now()
			for k, r := range n.cache {
				if !now.Before(r.expires) {
					delete(n.cache, k)
				}
			}
			if len(n.cache) >= netCacheSize {
				clear(n.cache) // all fresh: start over rather than grow
			}
		}
		n.cache[key] = netResult{val: val, expires: n.now().Add(ttl)}
		n.mu.Unlock()
		return val, nil
	})
	return v
}

// httpDo sends one request and returns the status and (bounded) body.
func (n *netState) httpDo(ctx context.Context, method, rawURL, body string) (int, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return 0, "", errors.New("not an http(s) URL: " + rawURL)
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return 0, "", err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, netMaxBody))
	if err != nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, string(b), nil
}

// HTTPRequest sends method to rawURL with body and returns the response
// body ("" on failure), cached per (method, URL, body).
func (h *Helpers) HTTPRequest(method, rawURL, body string) string {
	n := &h.ext().net
	method = strings.ToUpper(method)
	v := n.cached("HTTPRequest", "http\x00"+method+"\x00"+rawURL+"\x00"+body, "", func(ctx context.Context) (any, error) {
		_, b, err := n.httpDo(ctx, method, rawURL, body)
		return b, err
	})
	s, _ := v.(string)
	return s
}

// HTTPGet returns the body of a GET of rawURL; "" on failure.
func (h *Helpers) HTTPGet(rawURL string) string { return h.HTTPRequest(http.MethodGet, rawURL, "") }

// HTTPPost POSTs body to rawURL and returns the response body; "" on
// failure.
func (h *Helpers) HTTPPost(rawURL, body string) string {
	return h.HTTPRequest(http.MethodPost, rawURL, body)
}

// HTTPHead returns the status code of a HEAD of rawURL; 0 on failure.
func (h *Helpers) HTTPHead(rawURL string) int {
	n := &h.ext().net
	v := n.cached("HTTPHead", "head\x00"+rawURL, 0, func(ctx context.Context) (any, error) {
		code, _, err := n.httpDo(ctx, http.MethodHead, rawURL, "")
		return code, err
	})
	c, _ := v.(int)
	return c
}

// LookupHost resolves host to its addresses, as net.LookupHost; an empty
// list on failure (upstream's value).
func (h *Helpers) LookupHost(host string) []string {
	n := &h.ext().net
	v := n.cached("LookupHost", "dns\x00"+host, []string{}, func(ctx context.Context) (any, error) {
		return n.resolver.LookupHost(ctx, host)
	})
	s, _ := v.([]string)
	if s == nil {
		s = []string{}
	}
	return s
}

// CrowdsecCTI would query the CTI API about ip; Rampart has no CTI key
// setting, so it gives upstream's disabled answer: nil and an error.
func (h *Helpers) CrowdsecCTI(ip string) (any, error) {
	h.ext().net.warnOnce("CrowdsecCTI", "CrowdsecCTI: no CTI API key configured; the helper returns an error")
	return nil, errCTIDisabled
}
