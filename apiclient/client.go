// Package apiclient is Rampart's client for the LAPI /v1 protocol, shared by
// cscli, the agent and the firewall bouncer: it speaks HTTP to a Local API
// (Rampart's or upstream CrowdSec's) with machine (password + JWT) or bouncer
// (X-Api-Key) authentication, or a client certificate in place of either
// (TLSConfig builds every client's TLS), and it never touches the database.
//
// A Client may be given several LAPI URLs (Config.URLs): it then fails
// over between them, see failover.go.
//
// Every call takes a context. When that context has no deadline the call is
// bounded by Config.Timeout (30s by default); the underlying http.Client has
// no global timeout, so a long-poll on the decision stream is bounded only by
// the context its caller passes.
package apiclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/internal/netaddr"
)

const (
	// DefaultUserAgent is sent when Config.UserAgent is empty. It has the
	// "crowdsec/<version>" shape upstream's LAPI requires at machine login
	// (exactly one "/").
	DefaultUserAgent = "crowdsec/v1.7.8-rampart-linux"

	// DefaultTimeout bounds a call whose context carries no deadline.
	DefaultTimeout = 30 * time.Second

	// gzipThreshold is the body size above which requests are gzipped, as
	// upstream's client does since v1.7.0.
	gzipThreshold = 5 << 10

	// reloginMargin: the token is renewed when less than this is left
	// before its expiry.
	reloginMargin = time.Minute
)

// Config describes how to reach and authenticate to a LAPI.
type Config struct {
	// URL is the LAPI base URL, e.g. "http://127.0.0.1:8080/". A path
	// prefix is kept: "https://h/lapi" gives "https://h/lapi/v1/...". A URL
	// starting with "/" is the path of a unix socket.
	URL string
	// URLs are several LAPIs of one database (a fleet), in order of
	// preference, in place of URL: the client fails over between them
	// (see failover.go). Setting both is an error.
	URLs []string
	// Failback is how long the client stays on a LAPI later in URLs before
	// it checks (GET /health) whether an earlier one works again and goes
	// back to it; 0 means DefaultFailback, negative never.
	Failback time.Duration
	// Log receives the failover messages; nil logs with the standard
	// logger, component=apiclient.
	Log *log.Entry
	// UserAgent defaults to DefaultUserAgent.
	UserAgent string
	// MachineID and Password are the machine credentials (agent, cscli).
	MachineID, Password string
	// APIKey is the bouncer key, sent as X-Api-Key.
	APIKey string
	// Bouncer marks a bouncer's client: without APIKey its client
	// certificate authenticates it, on every call, and it never logs in as
	// a machine (a client certificate alone is a machine's by default).
	Bouncer bool
	// TLS configures HTTPS, including an optional client certificate
	// (which may stand in for MachineID/Password or APIKey).
	TLS *tls.Config
	// Timeout bounds each call whose context has no deadline; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Scenarios are sent at login; the agent sends its installed ones.
	Scenarios []string
	// Uncompressed sends every body plain, large ones too: for a LAPI on
	// the same host (see Local), gzip costs both ends CPU and saves
	// nothing.
	Uncompressed bool
}

// Client talks to a LAPI, or fails over between several. It is safe for
// concurrent use.
type Client struct {
	eps        []*endpoint // one per URL, in order of preference
	userAgent  string
	machineID  string
	password   string
	apiKey     string
	bouncer    bool
	clientCert bool
	timeout    time.Duration
	scenarios  []string
	plain      bool // Config.Uncompressed

	// loginSem serialises logins (buffered, capacity 1) while still
	// letting a waiting caller give up when its context ends.
	loginSem chan struct{}

	mu     sync.Mutex // guards token and expire
	token  string
	expire time.Time

	// Failover state (failover.go); unused with one URL.
	log       *log.Entry
	failback  time.Duration
	failovers atomic.Uint64
	fmu       sync.Mutex // guards cur, since and probing
	cur       int        // index in eps of the LAPI calls go to
	since     time.Time  // when cur last changed, or a failback probe last started
	probing   bool
}

// endpoint is one LAPI URL with its own transport (a unix socket's dials
// differ from a TCP one's).
type endpoint struct {
	raw     string // as configured, for logs
	base    *url.URL
	http    *http.Client
	failing atomic.Bool // its last call failed over; cleared by a success
}

// CheckURL validates a LAPI URL as Config.URL takes it (http or https with
// a host, or the absolute path of a unix socket), so that a configuration
// can refuse a bad one when it is loaded.
func CheckURL(raw string) error {
	_, err := parseBase(raw)
	return err
}

// parseBase turns a LAPI URL into the base requests are resolved
// against, always ending in "/"; nil for a unix socket.
func parseBase(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("empty LAPI URL")
	}
	if strings.HasPrefix(raw, "/") {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing LAPI URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("LAPI URL %q: scheme must be http or https (or the path of a unix socket)", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("LAPI URL %q has no host", raw)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
	}
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

func newEndpoint(raw string, tc *tls.Config) (*endpoint, error) {
	base, err := parseBase(raw)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if base == nil {
		socket := strings.TrimSuffix(raw, "/")
		dialer := &net.Dialer{}
		transport.Proxy = nil
		transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", socket)
		}
		base = &url.URL{Scheme: "http", Host: "unix", Path: "/"}
	}
	if tc != nil {
		transport.TLSClientConfig = tc.Clone()
	}
	// no Timeout: deadlines come from contexts
	return &endpoint{raw: raw, base: base, http: &http.Client{Transport: transport}}, nil
}

// New validates cfg and returns a Client. It does not contact the LAPI: a
// machine logs in on its first authenticated call (or through Login).
func New(cfg Config) (*Client, error) {
	urls := cfg.URLs
	switch {
	case cfg.URL != "" && len(urls) > 0:
		return nil, fmt.Errorf("apiclient: both URL and URLs set")
	case cfg.URL != "":
		urls = []string{cfg.URL}
	case len(urls) == 0:
		return nil, fmt.Errorf("apiclient: empty LAPI URL")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("apiclient: negative timeout %s", cfg.Timeout)
	}
	var eps []*endpoint
	seen := map[string]bool{}
	for _, raw := range urls {
		ep, err := newEndpoint(raw, cfg.TLS)
		if err != nil {
			return nil, fmt.Errorf("apiclient: %w", err)
		}
		key := ep.base.String()
		if strings.HasPrefix(raw, "/") {
			key = strings.TrimSuffix(raw, "/")
		}
		if seen[key] {
			return nil, fmt.Errorf("apiclient: LAPI URL %q listed twice", raw)
		}
		seen[key] = true
		eps = append(eps, ep)
	}

	c := &Client{
		eps:       eps,
		userAgent: cfg.UserAgent,
		machineID: cfg.MachineID,
		password:  cfg.Password,
		apiKey:    cfg.APIKey,
		bouncer:   cfg.Bouncer || cfg.APIKey != "",
		clientCert: cfg.TLS != nil &&
			(len(cfg.TLS.Certificates) > 0 || cfg.TLS.GetClientCertificate != nil),
		timeout:   cfg.Timeout,
		scenarios: append([]string(nil), cfg.Scenarios...),
		plain:     cfg.Uncompressed,
		loginSem:  make(chan struct{}, 1),
		log:       cfg.Log,
		failback:  cfg.Failback,
		since:     time.Now(),
	}
	if c.log == nil {
		c.log = log.WithField("component", "apiclient")
	}
	if c.failback == 0 {
		c.failback = DefaultFailback
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	return c, nil
}

// CloseIdleConnections closes the kept-alive connections. A component
// calls it when it stops, so the LAPI's graceful shutdown is not left
// waiting for a connection that will never carry a request.
func (c *Client) CloseIdleConnections() {
	for _, ep := range c.eps {
		ep.http.CloseIdleConnections()
	}
}

// URL returns the base URL requests are resolved against (always ending
// in "/"): with several URLs, the current one's.
func (c *Client) URL() string { return c.currentEndpoint().base.String() }

// resolve turns a relative reference such as "v1/alerts" into an absolute
// URL under the current base, keeping any path prefix. ref must already be
// escaped.
func (c *Client) resolve(ref string, query url.Values) (*url.URL, error) {
	return c.currentEndpoint().resolve(ref, query)
}

func (ep *endpoint) resolve(ref string, query url.Values) (*url.URL, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("building URL for %q: %w", ref, err)
	}
	u := ep.base.ResolveReference(r)
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	return u, nil
}

// route names a call in error messages, e.g. "DELETE /lapi/v1/alerts/3".
func (c *Client) route(method, ref string) string {
	if u, err := c.resolve(ref, nil); err == nil {
		return method + " " + u.EscapedPath()
	}
	return method + " " + ref
}

// withDeadline gives ctx the default per-call deadline when it has none.
func (c *Client) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// Health checks GET /health (outside /v1, no authentication).
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodGet, path: "health", auth: authNone}, nil)
}

// UsageMetrics posts a usage-metrics report (POST /v1/usage-metrics; the
// LAPI answers 201). body is marshalled as is: {"remediation_components":
// [...]} for a bouncer, {"log_processors":[...]} for an agent. A bouncer's
// client sends its key or certificate, any other a machine's token.
func (c *Client) UsageMetrics(ctx context.Context, body any) error {
	return c.do(ctx, request{method: http.MethodPost, path: "v1/usage-metrics", body: body, auth: authEither}, nil)
}

// LocalAll tells whether every one of urls is on this host (see Local).
func LocalAll(urls []string) bool {
	for _, u := range urls {
		if !Local(u) {
			return false
		}
	}
	return len(urls) > 0
}

// Local tells whether a LAPI URL (as Config.URL) is on this host: a unix
// socket, localhost or a loopback address.
func Local(lapiURL string) bool {
	if strings.HasPrefix(lapiURL, "/") {
		return true
	}
	u, err := url.Parse(lapiURL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip, err := netaddr.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
