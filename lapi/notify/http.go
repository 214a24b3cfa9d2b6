package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rampart-ips/rampart/apiclient"
)

// checkHTTP validates an http notification and applies its defaults.
func (c *Config) checkHTTP() error {
	if err := checkURL(c.URL); err != nil {
		return err
	}
	// Upstream sends a GET when method is unset, a body and all; its
	// sample says POST, which is what a webhook expects.
	if c.Method == "" {
		c.Method = http.MethodPost
	}
	c.Method = strings.ToUpper(c.Method)
	if _, err := c.httpClient(); err != nil {
		return err
	}
	return nil
}

// checkURL checks the url key of the types posting to one.
func checkURL(u string) error {
	if u == "" {
		return errors.New("missing url")
	}
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return fmt.Errorf("url %q: scheme must be http or https", u)
	}
	return nil
}

// httpClient builds the client of an http or slack notification. TLS goes
// through the one builder LAPI clients use: a CA file adds to the system
// roots. Proxies come from the environment, as upstream.
func (c *Config) httpClient() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tc, err := apiclient.TLSConfig(apiclient.TLSOptions{CACertPath: c.CACertPath, CertPath: c.CertPath,
		KeyPath: c.KeyPath, InsecureSkipVerify: c.SkipTLSVerification})
	if err != nil {
		return nil, err
	}
	if tc != nil {
		tr.TLSClientConfig = tc
	}
	if c.UnixSocket != "" {
		sock := c.UnixSocket
		tr.Proxy = nil
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	}
	// No client timeout: each attempt's context bounds it (timeout).
	return &http.Client{Transport: tr}, nil
}

// httpSender posts the rendered text to a URL (http), wraps it in
// Slack's incoming-webhook JSON (slack) or in a Splunk HEC event
// (splunk), or posts it signed to Azure Log Analytics (sentinel).
type httpSender struct {
	cfg    *Config
	client *http.Client
}

func newHTTPSender(c *Config) (*httpSender, error) {
	cl, err := c.httpClient()
	if err != nil {
		return nil, err
	}
	return &httpSender{cfg: c, client: cl}, nil
}

// slackMessage is an incoming webhook's payload.
type slackMessage struct {
	Text      string `json:"text"`
	Channel   string `json:"channel,omitempty"`
	Username  string `json:"username,omitempty"`
	IconEmoji string `json:"icon_emoji,omitempty"`
	IconURL   string `json:"icon_url,omitempty"`
}

func (h *httpSender) send(ctx context.Context, text string) error {
	req, err := h.cfg.request(ctx, text, time.Now())
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		// The error is shown on the dashboard and by cscli: it must not
		// carry the URL, which can hold a credential (a Slack webhook's
		// path, a token in a query).
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("%s %s: %w", ue.Op, h.where(), ue.Err)
		}
		return err
	}
	defer resp.Body.Close()
	// Read a little of the answer for the log, and drain the rest (up to
	// a bound) so the connection is reused.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(snippet))}
	}
	return nil
}

// where names the endpoint without its secrets: a Slack webhook's URL is
// its credential, and an http URL's query may hold one.
func (h *httpSender) where() string {
	if h.cfg.Type == TypeSlack {
		return "the Slack webhook"
	}
	target := h.cfg.URL
	if h.cfg.Type == TypeSentinel {
		target = h.cfg.sentinelURL()
	}
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return "the endpoint"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// request builds the HTTP request carrying text for c's type; now dates
// a sentinel request's signature.
func (c *Config) request(ctx context.Context, text string, now time.Time) (*http.Request, error) {
	method, target, body := c.Method, c.URL, []byte(text)
	header := http.Header{}
	switch c.Type {
	case TypeSlack:
		var err error
		body, err = json.Marshal(slackMessage{Text: text, Channel: c.Channel, Username: c.Username,
			IconEmoji: c.IconEmoji, IconURL: c.IconURL})
		if err != nil {
			return nil, err
		}
		method, target = http.MethodPost, c.Webhook
		header.Set("Content-Type", "application/json")
	case TypeSplunk:
		var err error
		if body, err = json.Marshal(splunkEvent{Event: text}); err != nil {
			return nil, err
		}
		method = http.MethodPost
		header.Set("Content-Type", "application/json")
		header.Set("Authorization", "Splunk "+c.Token)
	case TypeSentinel:
		method, target = http.MethodPost, c.sentinelURL()
		if err := c.signSentinel(header, len(body), now); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	for k, v := range c.Headers {
		// Host is not a header to Go's client: set it where it is read.
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return req, nil
}

func (h *httpSender) close() error {
	h.client.CloseIdleConnections()
	return nil
}

// statusError is an HTTP answer outside 2xx: a failed attempt (upstream's
// http plugin logs it and counts the message as sent).
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string {
	if e.body == "" {
		return fmt.Sprintf("HTTP status %d", e.code)
	}
	return fmt.Sprintf("HTTP status %d: %s", e.code, e.body)
}
