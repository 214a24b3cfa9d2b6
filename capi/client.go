package capi

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/internal/backoff"
	"github.com/rampart-ips/rampart/internal/version"
)

const (
	// gzipThreshold: bodies above it are gzipped, as upstream's client.
	gzipThreshold = 5 << 10
	// refreshMargin: the token is renewed this long before it expires.
	refreshMargin = time.Minute
	// authRetries and busyRetries are upstream's per-request retries on
	// 401/403 (after logging in again) and on 429/503/504.
	authRetries = 2
	busyRetries = 5
	// TokenKey is the store setting the token is kept in across
	// restarts (upstream's config item); tokenLoginKey the login it is
	// for, so that new credentials (cscli capi register) are not served
	// the previous machine's token.
	TokenKey      = "apic_token"
	tokenLoginKey = "apic_token_login"
)

// TokenStore keeps the token across restarts (the LAPI's store; nil keeps
// it in memory only).
type TokenStore interface {
	GetKV(ctx context.Context, name string) (string, error)
	PutKV(ctx context.Context, name, value string) error
}

// ClientConfig describes how to reach and log in to the Central API.
type ClientConfig struct {
	URL             string // ends in "/"
	Login, Password string
	TLS             *tls.Config
	// Scenarios are sent at login: the union of the LAPI's machines'.
	Scenarios func(context.Context) ([]string, error)
	Tokens    TokenStore
	// BusyWait is the first wait after a 429/503/504 (doubling, capped at
	// 8 times it); 0 means 7 s, upstream's first wait.
	BusyWait time.Duration
	Timeout  time.Duration // per request; 0 means 30 s
	Log      *log.Entry
}

// Client talks to the Central API. Safe for concurrent use.
type Client struct {
	cfg   ClientConfig
	base  *url.URL
	http  *http.Client
	lists *http.Client // list links: no token, no User-Agent of ours
	ua    string
	log   *log.Entry

	loginMu sync.Mutex // one login at a time (upstream: concurrent logins overload CAPI)
	mu      sync.Mutex
	token   string
	expire  time.Time
	claims  map[string]any
	loaded  bool // the stored token was looked at
}

// APIError is a non-2xx answer.
type APIError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// StatusOf is the HTTP status of an *APIError in err, or 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// NewClient builds a client; nothing is sent yet.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("CAPI url %q: want an http(s) URL", cfg.URL)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	if cfg.BusyWait <= 0 {
		cfg.BusyWait = 7 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	lg := cfg.Log
	if lg == nil {
		lg = log.WithField("component", "capi")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg.TLS
	return &Client{cfg: cfg, base: u, http: &http.Client{Transport: tr}, lists: &http.Client{Transport: tr},
		ua: version.UserAgent("crowdsec"), log: lg}, nil
}

// URL is the Central API base URL.
func (c *Client) URL() string { return c.base.String() }

// Claims are the current token's claims (nil before a login).
func (c *Client) Claims() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.claims
}

// Register creates the machine on the Central API (cscli capi register).
func (c *Client) Register(ctx context.Context, machineID, password string) error {
	_, err := c.send(ctx, http.MethodPost, "v3/watchers", nil, RegisterRequest{MachineID: machineID, Password: password}, nil, "")
	return err
}

// Enroll asks the console to attach this instance (cscli console enroll).
// already is CAPI's 200: the instance was enrolled before and nothing
// changed; any other success means the request waits in the console. The
// answer is read for an automatic enrollment only (its link).
func (c *Client) Enroll(ctx context.Context, req EnrollRequest) (already bool, resp EnrollResponse, err error) {
	if req.Tags == nil {
		req.Tags = []string{}
	}
	var out any
	if req.AutoEnroll {
		out = &resp
	}
	status, err := c.do(ctx, http.MethodPost, "v3/watchers/enroll", nil, req, out)
	if err != nil {
		return false, resp, err
	}
	return status == http.StatusOK, resp, nil
}

// ForgetToken drops the token kept for the LAPI, so that its next start
// or reload logs in again: after an enrollment only a new token carries
// the organization that turns the console features on.
func ForgetToken(ctx context.Context, tokens TokenStore) error {
	if err := tokens.PutKV(ctx, TokenKey, ""); err != nil {
		return fmt.Errorf("forgetting the CAPI token: %w", err)
	}
	return nil
}

// Login logs in now, with the scenarios, and keeps the token.
func (c *Client) Login(ctx context.Context) error {
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	return c.loginLocked(ctx)
}

func (c *Client) loginLocked(ctx context.Context) error {
	var scenarios []string
	if c.cfg.Scenarios != nil {
		var err error
		if scenarios, err = c.cfg.Scenarios(ctx); err != nil {
			return fmt.Errorf("reading scenarios for the CAPI login: %w", err)
		}
	}
	var resp LoginResponse
	req := LoginRequest{MachineID: c.cfg.Login, Password: c.cfg.Password, Scenarios: scenarios}
	if scenarios == nil {
		req.Scenarios = []string{}
	}
	b := backoff.Backoff{Min: c.cfg.BusyWait, Max: 8 * c.cfg.BusyWait}
	for attempt := 0; ; attempt++ {
		_, err := c.send(ctx, http.MethodPost, "v3/watchers/login", nil, req, &resp, "")
		if err == nil {
			break
		}
		if !busyStatus(StatusOf(err)) || attempt >= busyRetries {
			return fmt.Errorf("authenticate watcher (%s): %w", c.cfg.Login, err)
		}
		if !backoff.Sleep(ctx, b.Next()) {
			return ctx.Err()
		}
	}
	if resp.Token == "" {
		return fmt.Errorf("authenticate watcher (%s): the answer holds no token", c.cfg.Login)
	}
	exp, claims := tokenExpiry(resp.Token)
	if t, err := time.Parse(time.RFC3339, resp.Expire); err == nil && (exp.IsZero() || t.Before(exp)) {
		exp = t
	}
	if exp.IsZero() {
		// No expiry anywhere: kept an hour (a 401 renews it sooner), not
		// renewed before every request.
		exp = time.Now().Add(time.Hour)
	}
	c.mu.Lock()
	c.token, c.expire, c.claims, c.loaded = resp.Token, exp, claims, true
	c.mu.Unlock()
	if c.cfg.Tokens != nil {
		err := c.cfg.Tokens.PutKV(ctx, tokenLoginKey, c.cfg.Login)
		if err == nil {
			err = c.cfg.Tokens.PutKV(ctx, TokenKey, resp.Token)
		}
		if err != nil {
			c.log.WithError(err).Warn("saving the CAPI token (it is used anyway)")
		}
	}
	return nil
}

// tokenExpiry reads a JWT's exp without checking its signature (only CAPI
// can; the client needs to know when to renew). The payload is decoded by
// hand: cscli links this package and stays free of the JWT library.
func tokenExpiry(tok string) (time.Time, map[string]any) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, nil
	}
	claims := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return time.Time{}, nil
	}
	n, ok := claims["exp"].(json.Number)
	if !ok {
		return time.Time{}, claims
	}
	exp, err := n.Float64()
	if err != nil || exp <= 0 {
		return time.Time{}, claims
	}
	sec, frac := math.Modf(exp)
	return time.Unix(int64(sec), int64(frac*1e9)), claims
}

// validToken returns a token that is not about to expire, logging in if
// needed; the stored token is tried first, once.
func (c *Client) validToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	if !c.loaded && c.cfg.Tokens != nil {
		c.loaded = true
		login, _ := c.cfg.Tokens.GetKV(ctx, tokenLoginKey)
		if tok, err := c.cfg.Tokens.GetKV(ctx, TokenKey); err == nil && tok != "" && login == c.cfg.Login {
			if exp, claims := tokenExpiry(tok); !exp.IsZero() {
				c.token, c.expire, c.claims = tok, exp, claims
			}
		}
	}
	tok, exp := c.token, c.expire
	c.mu.Unlock()
	if tok != "" && time.Until(exp) > refreshMargin {
		return tok, nil
	}
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	c.mu.Lock()
	tok, exp = c.token, c.expire
	c.mu.Unlock()
	if tok != "" && time.Until(exp) > refreshMargin {
		return tok, nil // another caller logged in meanwhile
	}
	if err := c.loginLocked(ctx); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token, nil
}

// ResetToken forgets the token: the next request logs in again (PAPI's
// reauth order, after the console changed what the token should say).
func (c *Client) ResetToken() {
	c.mu.Lock()
	c.token = ""
	c.mu.Unlock()
}

// Token returns a token that is not about to expire, logging in if
// needed, with its claims.
func (c *Client) Token(ctx context.Context) (string, map[string]any, error) {
	tok, err := c.validToken(ctx)
	if err != nil {
		return "", nil, err
	}
	return tok, c.Claims(), nil
}

// get GETs u (a full URL: PAPI is not under the CAPI base) with tok; the
// server may hold the request up to wait (a long poll). The caller reads
// and closes the body, whatever the status.
func (c *Client) get(ctx context.Context, u, tok string, wait time.Duration) (*http.Response, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+c.cfg.Timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("building GET %s: %w", u, err)
	}
	req.Header.Set("User-Agent", c.ua)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return resp, cancel, nil
}

// dropToken forgets tok after CAPI refused it.
func (c *Client) dropToken(tok string) {
	c.mu.Lock()
	if c.token == tok {
		c.token = ""
	}
	c.mu.Unlock()
}

func busyStatus(s int) bool {
	return s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable || s == http.StatusGatewayTimeout
}

// do sends an authenticated request: on 401/403 it logs in again and
// retries (twice), on 429/503/504 it waits and retries (5 times), waking
// when ctx ends.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) (int, error) {
	b := backoff.Backoff{Min: c.cfg.BusyWait, Max: 8 * c.cfg.BusyWait}
	auths, busy := 0, 0
	for {
		tok, err := c.validToken(ctx)
		if err != nil {
			return 0, err
		}
		status, err := c.send(ctx, method, path, query, body, out, tok)
		switch {
		case err == nil:
			return status, nil
		case (status == http.StatusUnauthorized || status == http.StatusForbidden) && auths < authRetries:
			auths++
			c.dropToken(tok)
			c.log.WithField("status", status).Info("CAPI refused the token: logging in again")
		case busyStatus(status) && busy < busyRetries:
			busy++
			if !backoff.Sleep(ctx, b.Next()) {
				return status, ctx.Err()
			}
		default:
			return status, err
		}
	}
}

// bodyReader is an answer that reads itself from the body as it arrives
// (a community list of 100k addresses), instead of being decoded whole.
type bodyReader interface{ readBody(io.Reader) error }

// send makes one request: JSON body (gzipped over 5 KiB), JSON answer
// into out; tok "" sends no Authorization.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body, out any, tok string) (int, error) {
	ref := &url.URL{Path: path}
	if len(query) > 0 {
		ref.RawQuery = query.Encode()
	}
	u := c.base.ResolveReference(ref)
	var rd io.Reader
	var gz bool
	if body != nil {
		raw, ok := body.([]byte)
		if !ok {
			raw = marshal(body)
		}
		if len(raw) > gzipThreshold {
			var zb bytes.Buffer
			zw := gzip.NewWriter(&zb)
			_, _ = zw.Write(raw)
			_ = zw.Close()
			raw, gz = zb.Bytes(), true
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, fmt.Errorf("building %s %s: %w", method, path, err)
	}
	req.Header.Set("User-Agent", c.ua)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotModified {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var msg struct {
			Message string `json:"message"`
		}
		text := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &msg) == nil && msg.Message != "" {
			text = msg.Message
		}
		return resp.StatusCode, &APIError{Method: method, Path: path, Status: resp.StatusCode, Message: text}
	}
	if br, ok := out.(bodyReader); ok && resp.StatusCode != http.StatusNotModified {
		if err := br.readBody(resp.Body); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	} else if out != nil && resp.StatusCode != http.StatusNotModified {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	} else {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	}
	return resp.StatusCode, nil
}
