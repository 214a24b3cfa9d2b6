// Package apiclient is Rampart's client for the LAPI /v1 protocol, shared by
// cscli, the agent and the firewall bouncer: it speaks HTTP to a Local API
// (Rampart's or upstream CrowdSec's) with machine (password + JWT) or bouncer
// (X-Api-Key) authentication, or a client certificate in place of either
// (TLSConfig builds every client's TLS), and it never touches the database.
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
	"time"

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

// Client talks to one LAPI. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	http       *http.Client
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
}

// New validates cfg and returns a Client. It does not contact the LAPI: a
// machine logs in on its first authenticated call (or through Login).
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("apiclient: empty LAPI URL")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("apiclient: negative timeout %s", cfg.Timeout)
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	var base *url.URL
	if strings.HasPrefix(cfg.URL, "/") {
		socket := strings.TrimSuffix(cfg.URL, "/")
		dialer := &net.Dialer{}
		transport.Proxy = nil
		transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", socket)
		}
		base = &url.URL{Scheme: "http", Host: "unix", Path: "/"}
	} else {
		u, err := url.Parse(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("apiclient: parsing LAPI URL: %w", err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("apiclient: LAPI URL %q: scheme must be http or https", cfg.URL)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("apiclient: LAPI URL %q has no host", cfg.URL)
		}
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
			if u.RawPath != "" {
				u.RawPath += "/"
			}
		}
		u.RawQuery, u.Fragment = "", ""
		base = u
	}
	if cfg.TLS != nil {
		transport.TLSClientConfig = cfg.TLS.Clone()
	}

	c := &Client{
		base:      base,
		http:      &http.Client{Transport: transport}, // no Timeout: deadlines come from contexts
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
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	return c, nil
}

// URL returns the base URL requests are resolved against (always ending
// in "/").
// CloseIdleConnections closes the kept-alive connections. A component
// calls it when it stops, so the LAPI's graceful shutdown is not left
// waiting for a connection that will never carry a request.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

func (c *Client) URL() string { return c.base.String() }

// resolve turns a relative reference such as "v1/alerts" into an absolute
// URL under the base, keeping any path prefix. ref must already be escaped.
func (c *Client) resolve(ref string, query url.Values) (*url.URL, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("building URL for %q: %w", ref, err)
	}
	u := c.base.ResolveReference(r)
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
