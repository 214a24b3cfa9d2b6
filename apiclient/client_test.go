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
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// fakeLAPI is a small LAPI on a real loopback listener: it issues tokens,
// checks Bearer tokens and API keys, and records what it received.
type fakeLAPI struct {
	t      *testing.T
	srv    *httptest.Server
	mux    *http.ServeMux
	apiKey string

	mu          sync.Mutex
	ttl         time.Duration // token lifetime announced in "expire"
	logins      int
	loginBodies []models.WatcherAuthRequest
	token       string   // the one token currently accepted
	requests    []string // "METHOD RequestURI" in arrival order
	userAgents  []string
}

const (
	testMachine  = "machine1"
	testPassword = "s3cret"
	testAPIKey   = "k3y+with/slash"
)

// newFakeLAPI starts a fake LAPI whose routes live under prefix ("" or
// e.g. "/lapi").
func newFakeLAPI(t *testing.T, prefix string) *fakeLAPI {
	t.Helper()
	f := &fakeLAPI{t: t, mux: http.NewServeMux(), apiKey: testAPIKey, ttl: time.Hour}
	f.mux.HandleFunc("POST /v1/watchers/login", f.login)
	var h http.Handler = f.mux
	if prefix != "" {
		h = http.StripPrefix(prefix, f.mux)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.RequestURI)
		f.userAgents = append(f.userAgents, r.UserAgent())
		f.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeLAPI) login(w http.ResponseWriter, r *http.Request) {
	if parts := strings.Split(r.UserAgent(), "/"); len(parts) != 2 {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 401, "message": "incorrect Username or Password"})
		return
	}
	var body models.WatcherAuthRequest
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 401, "message": "missing: " + err.Error()})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loginBodies = append(f.loginBodies, body)
	if body.MachineID == nil || body.Password == nil || *body.MachineID != testMachine || *body.Password != testPassword {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 401, "message": "incorrect Username or Password"})
		return
	}
	f.logins++
	f.token = fmt.Sprintf("tok-%d", f.logins)
	writeJSON(w, http.StatusOK, models.WatcherAuthResponse{
		Code:   200,
		Expire: time.Now().Add(f.ttl).Format(time.RFC3339),
		Token:  f.token,
	})
}

// machine registers a JWT-protected route.
func (f *fakeLAPI) machine(pattern string, h http.HandlerFunc) {
	f.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		ok := f.token != "" && r.Header.Get("Authorization") == "Bearer "+f.token
		f.mu.Unlock()
		if !ok {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 401, "message": "token is expired"})
			return
		}
		h(w, r)
	})
}

// bouncer registers an API-key-protected route.
func (f *fakeLAPI) bouncer(pattern string, h http.HandlerFunc) {
	f.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != f.apiKey {
			writeJSON(w, http.StatusForbidden, map[string]any{"message": "access forbidden"})
			return
		}
		h(w, r)
	})
}

// restart invalidates every issued token, as a LAPI restart does.
func (f *fakeLAPI) restart() {
	f.mu.Lock()
	f.token = ""
	f.mu.Unlock()
}

func (f *fakeLAPI) loginCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logins
}

func (f *fakeLAPI) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func (f *fakeLAPI) client(t *testing.T, mutate func(*Config)) *Client {
	t.Helper()
	cfg := Config{URL: f.srv.URL, MachineID: testMachine, Password: testPassword}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func TestNewURL(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080/"},
		{in: "http://127.0.0.1:8080/", want: "http://127.0.0.1:8080/"},
		{in: "https://lapi.example/crowdsec", want: "https://lapi.example/crowdsec/"},
		{in: "https://lapi.example/crowdsec/?x=1", want: "https://lapi.example/crowdsec/"},
		{in: "/run/rampart/lapi.sock", want: "http://unix/"},
		{in: "", wantErr: true},
		{in: "ftp://lapi.example/", wantErr: true},
		{in: "http://", wantErr: true},
		{in: "127.0.0.1:8080", wantErr: true},
	}
	for _, tc := range tests {
		c, err := New(Config{URL: tc.in})
		if tc.wantErr {
			if err == nil {
				t.Errorf("New(%q): want an error, got URL %q", tc.in, c.URL())
			}
			continue
		}
		if err != nil {
			t.Errorf("New(%q): %v", tc.in, err)
			continue
		}
		if got := c.URL(); got != tc.want {
			t.Errorf("New(%q).URL() = %q, want %q", tc.in, got, tc.want)
		}
	}
	if _, err := New(Config{URL: "http://h/", Timeout: -time.Second}); err == nil {
		t.Error("negative timeout accepted")
	}
}

func TestPathPrefixKept(t *testing.T) {
	f := newFakeLAPI(t, "/lapi")
	f.mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "up"})
	})
	f.machine("GET /v1/heartbeat", func(w http.ResponseWriter, r *http.Request) {})
	f.bouncer("GET /v1/decisions", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "null")
	})

	// No trailing slash: the client must add it and keep "/lapi".
	c := f.client(t, func(cfg *Config) { cfg.URL = f.srv.URL + "/lapi"; cfg.APIKey = testAPIKey })
	ctx := context.Background()
	if err := c.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	if err := c.Heartbeat(ctx); err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	if _, err := c.GetDecisions(ctx, url.Values{"ip": {"192.0.2.7"}}); err != nil {
		t.Fatalf("GetDecisions: %v", err)
	}
	want := []string{
		"GET /lapi/health",
		"POST /lapi/v1/watchers/login",
		"GET /lapi/v1/heartbeat",
		"GET /lapi/v1/decisions?ip=192.0.2.7",
	}
	if got := f.seen(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoginAndRetryOn401(t *testing.T) {
	f := newFakeLAPI(t, "")
	var authz []string
	var mu sync.Mutex
	f.machine("GET /v1/heartbeat", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		authz = append(authz, r.Header.Get("Authorization"))
		mu.Unlock()
	})
	c := f.client(t, func(cfg *Config) { cfg.Scenarios = []string{"crowdsecurity/ssh-bf", "crowdsecurity/http-probing"} })
	ctx := context.Background()

	if err := c.Heartbeat(ctx); err != nil {
		t.Fatalf("first Heartbeat: %v", err)
	}
	if err := c.Heartbeat(ctx); err != nil {
		t.Fatalf("second Heartbeat: %v", err)
	}
	if n := f.loginCount(); n != 1 {
		t.Fatalf("logins after two heartbeats with a fresh token = %d, want 1", n)
	}

	f.restart() // the token the client holds is now refused with 401
	if err := c.Heartbeat(ctx); err != nil {
		t.Fatalf("Heartbeat after LAPI restart: %v", err)
	}
	if n := f.loginCount(); n != 2 {
		t.Errorf("logins after a 401 = %d, want 2", n)
	}
	wantAuthz := []string{"Bearer tok-1", "Bearer tok-1", "Bearer tok-2"}
	if strings.Join(authz, ",") != strings.Join(wantAuthz, ",") {
		t.Errorf("accepted Authorization headers = %v, want %v", authz, wantAuthz)
	}
	wantReqs := []string{
		"POST /v1/watchers/login", "GET /v1/heartbeat", "GET /v1/heartbeat",
		"GET /v1/heartbeat", // refused with 401
		"POST /v1/watchers/login", "GET /v1/heartbeat",
	}
	if got := f.seen(); strings.Join(got, ",") != strings.Join(wantReqs, ",") {
		t.Errorf("requests = %v, want %v", got, wantReqs)
	}

	f.mu.Lock()
	body := f.loginBodies[0]
	uas := append([]string(nil), f.userAgents...)
	f.mu.Unlock()
	if strings.Join(body.Scenarios, ",") != "crowdsecurity/ssh-bf,crowdsecurity/http-probing" {
		t.Errorf("login scenarios = %v", body.Scenarios)
	}
	for _, ua := range uas {
		if ua != DefaultUserAgent {
			t.Errorf("User-Agent = %q, want %q", ua, DefaultUserAgent)
		}
	}
}

func TestRetryOnlyOnce(t *testing.T) {
	f := newFakeLAPI(t, "")
	f.mux.HandleFunc("DELETE /v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "access forbidden from this IP (10.0.0.1)"})
	})
	c := f.client(t, nil)
	_, err := c.DeleteAlerts(context.Background(), url.Values{"ip": {"192.0.2.7"}})
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("DeleteAlerts error = %v, want an *APIError", err)
	}
	if apiErr.Status != http.StatusForbidden || apiErr.Message != "access forbidden from this IP (10.0.0.1)" {
		t.Errorf("APIError = %+v", apiErr)
	}
	if n := f.loginCount(); n != 2 {
		t.Errorf("logins = %d, want 2 (initial + one retry)", n)
	}
	deletes := 0
	for _, r := range f.seen() {
		if strings.HasPrefix(r, "DELETE ") {
			deletes++
		}
	}
	if deletes != 2 {
		t.Errorf("DELETE attempts = %d, want 2", deletes)
	}
}

func TestReloginBeforeExpiry(t *testing.T) {
	f := newFakeLAPI(t, "")
	f.machine("GET /v1/heartbeat", func(w http.ResponseWriter, r *http.Request) {})
	f.mu.Lock()
	f.ttl = 30 * time.Second // less than the one-minute margin
	f.mu.Unlock()
	c := f.client(t, nil)
	for i := 0; i < 3; i++ {
		if err := c.Heartbeat(context.Background()); err != nil {
			t.Fatalf("Heartbeat %d: %v", i, err)
		}
	}
	if n := f.loginCount(); n != 3 {
		t.Errorf("logins with a 30s token = %d, want one per call (3)", n)
	}
}

func TestLoginFailure(t *testing.T) {
	f := newFakeLAPI(t, "")
	c := f.client(t, func(cfg *Config) { cfg.Password = "wrong" })
	err := c.Login(context.Background())
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("Login error = %v, want an *APIError", err)
	}
	if apiErr.Status != http.StatusUnauthorized || apiErr.Message != "incorrect Username or Password" {
		t.Errorf("APIError = %+v", apiErr)
	}
	if !strings.Contains(err.Error(), "POST /v1/watchers/login") {
		t.Errorf("error %q does not name the route", err)
	}

	// A User-Agent without exactly one "/" is refused by the LAPI.
	c = f.client(t, func(cfg *Config) { cfg.UserAgent = "rampart" })
	if err := c.Login(context.Background()); err == nil {
		t.Error("login with a bad User-Agent succeeded")
	}

	// No machine credentials at all: fail before any request.
	before := len(f.seen())
	c = f.client(t, func(cfg *Config) { cfg.MachineID = "" })
	if err := c.Heartbeat(context.Background()); err == nil || !strings.Contains(err.Error(), "machine") {
		t.Errorf("Heartbeat without credentials: err = %v", err)
	}
	if after := len(f.seen()); after != before {
		t.Errorf("%d requests sent without credentials", after-before)
	}
}

func TestConcurrentCallsLogInOnce(t *testing.T) {
	f := newFakeLAPI(t, "")
	f.machine("GET /v1/heartbeat", func(w http.ResponseWriter, r *http.Request) {})
	c := f.client(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.Heartbeat(context.Background())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Heartbeat: %v", err)
		}
	}
	if n := f.loginCount(); n != 1 {
		t.Errorf("logins for 20 concurrent calls = %d, want 1", n)
	}
}

func TestGzipLargeBodies(t *testing.T) {
	tests := []struct {
		name         string
		msgLen       int
		uncompressed bool // Config.Uncompressed
		encoded      bool // sent with PushAlertsEncoded
		wantGzip     bool
	}{
		{name: "small body sent plain", msgLen: 100, wantGzip: false},
		{name: "body over 5KiB gzipped", msgLen: 20 << 10, wantGzip: true},
		{name: "uncompressed client sends large bodies plain", msgLen: 20 << 10, uncompressed: true, wantGzip: false},
		{name: "encoded alerts sent as they are", msgLen: 100, encoded: true, wantGzip: false},
		{name: "encoded alerts over 5KiB gzipped", msgLen: 20 << 10, encoded: true, wantGzip: true},
		{name: "encoded alerts over 5KiB sent plain by an uncompressed client", msgLen: 20 << 10, encoded: true, uncompressed: true, wantGzip: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLAPI(t, "")
			var gotEncoding string
			var gotAlerts []*models.Alert
			var wireLen int
			var length int64
			var chunked []string
			f.machine("POST /v1/alerts", func(w http.ResponseWriter, r *http.Request) {
				gotEncoding = r.Header.Get("Content-Encoding")
				length, chunked = r.ContentLength, r.TransferEncoding
				raw, err := io.ReadAll(r.Body)
				if err != nil {
					t.Errorf("reading body: %v", err)
				}
				wireLen = len(raw)
				if gotEncoding == "gzip" {
					zr, err := gzip.NewReader(bytes.NewReader(raw))
					if err != nil {
						writeJSON(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
						return
					}
					if raw, err = io.ReadAll(zr); err != nil {
						writeJSON(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
						return
					}
				}
				gotAlerts, err = models.DecodeAlerts(raw)
				if err != nil {
					writeJSON(w, http.StatusInternalServerError, map[string]string{"message": err.Error()})
					return
				}
				ids := make([]string, len(gotAlerts))
				for i := range gotAlerts {
					ids[i] = fmt.Sprint(41 + i)
				}
				writeJSON(w, http.StatusCreated, ids)
			})
			c := f.client(t, func(cfg *Config) { cfg.Uncompressed = tc.uncompressed })
			msg := strings.Repeat("x", tc.msgLen)
			alerts := []*models.Alert{testAlert("192.0.2.7", msg), testAlert("192.0.2.8", "short")}
			var ids []string
			var err error
			if tc.encoded {
				var encoded [][]byte
				for _, a := range alerts {
					b, merr := json.Marshal(a)
					if merr != nil {
						t.Fatal(merr)
					}
					encoded = append(encoded, b)
				}
				ids, err = c.PushAlertsEncoded(context.Background(), encoded)
			} else {
				ids, err = c.PushAlerts(context.Background(), alerts)
			}
			if err != nil {
				t.Fatalf("PushAlerts: %v", err)
			}
			if strings.Join(ids, ",") != "41,42" {
				t.Errorf("ids = %v, want [41 42]", ids)
			}
			if (gotEncoding == "gzip") != tc.wantGzip {
				t.Errorf("Content-Encoding = %q, want gzip=%v", gotEncoding, tc.wantGzip)
			}
			// sent with its length, as a server expects a body
			if length != int64(wireLen) || len(chunked) > 0 {
				t.Errorf("Content-Length %d, transfer encoding %v, for a body of %d bytes", length, chunked, wireLen)
			}
			if tc.wantGzip && wireLen >= tc.msgLen {
				t.Errorf("gzipped body is %d bytes for a %d-byte message", wireLen, tc.msgLen)
			}
			if len(gotAlerts) != 2 || gotAlerts[0].Message != msg || gotAlerts[1].Source.Value != "192.0.2.8" {
				t.Errorf("server decoded %d alerts, first message %d bytes", len(gotAlerts), len(gotAlerts[0].Message))
			}
		})
	}
}

func TestLocal(t *testing.T) {
	for url, want := range map[string]bool{
		"http://127.0.0.1:8080/":     true,
		"http://127.3.2.1:8080":      true,
		"http://localhost:8080/":     true,
		"https://[::1]:8080/":        true,
		"http://[::ffff:127.0.0.1]/": true,
		"/run/crowdsec/lapi.sock":    true,
		"http://192.0.2.1:8080/":     false,
		"https://lapi.example.com/":  false,
		"http://[2001:db8::1]:8080/": false,
		"http://localhost.example/":  false,
		"://bad":                     false,
	} {
		if got := Local(url); got != want {
			t.Errorf("Local(%q) = %v, want %v", url, got, want)
		}
	}
}

func testAlert(ip, msg string) *models.Alert {
	return &models.Alert{
		Scenario: "crowdsecurity/ssh-bf", ScenarioHash: "h", ScenarioVersion: "0.1",
		Message: msg, EventsCount: 6, StartAt: "2026-01-05T10:00:00Z", StopAt: "2026-01-05T10:00:01Z",
		Capacity: 5, Leakspeed: "10s", Remediation: true, Events: []*models.Event{},
		Source: &models.Source{Scope: "Ip", Value: ip, IP: ip},
	}
}

func TestBouncerKeyHeader(t *testing.T) {
	f := newFakeLAPI(t, "")
	var sawAuthorization []string
	f.bouncer("GET /v1/decisions", func(w http.ResponseWriter, r *http.Request) {
		sawAuthorization = append(sawAuthorization, r.Header.Get("Authorization"))
		if r.URL.Query().Get("ip") == "192.0.2.7" {
			_, _ = io.WriteString(w, `[{"duration":"3h12m5s","id":7,"origin":"crowdsec","scenario":"crowdsecurity/ssh-bf","scope":"Ip","type":"ban","value":"192.0.2.7"}]`)
			return
		}
		_, _ = io.WriteString(w, "null")
	})
	ctx := context.Background()
	c := f.client(t, func(cfg *Config) { cfg.MachineID, cfg.Password, cfg.APIKey = "", "", testAPIKey })

	got, err := c.GetDecisions(ctx, url.Values{"ip": {"192.0.2.7"}})
	if err != nil {
		t.Fatalf("GetDecisions: %v", err)
	}
	if len(got) != 1 || got[0].ID != 7 || got[0].Value != "192.0.2.7" || got[0].Duration != "3h12m5s" {
		t.Errorf("decisions = %+v", got)
	}
	none, err := c.GetDecisions(ctx, url.Values{"ip": {"198.51.100.1"}})
	if err != nil {
		t.Fatalf("GetDecisions (no match): %v", err)
	}
	if none == nil || len(none) != 0 {
		t.Errorf("null body gave %#v, want an empty non-nil slice", none)
	}
	for _, a := range sawAuthorization {
		if a != "" {
			t.Errorf("bouncer request carried Authorization %q", a)
		}
	}
	if n := f.loginCount(); n != 0 {
		t.Errorf("bouncer calls logged in %d times", n)
	}

	bad := f.client(t, func(cfg *Config) { cfg.APIKey = "wrong" })
	_, err = bad.GetDecisions(ctx, nil)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden || apiErr.Message != "access forbidden" {
		t.Fatalf("wrong key: err = %v", err)
	}
	if n := f.loginCount(); n != 0 {
		t.Errorf("a bouncer 403 triggered %d logins", n)
	}
}

func TestUsageMetricsAuth(t *testing.T) {
	f := newFakeLAPI(t, "")
	var got []string
	f.mux.HandleFunc("POST /v1/usage-metrics", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		section := "?"
		for k := range body {
			section = k
		}
		got = append(got, fmt.Sprintf("key=%q authz=%q section=%s", r.Header.Get("X-Api-Key"), r.Header.Get("Authorization"), section))
		w.WriteHeader(http.StatusCreated)
	})
	ctx := context.Background()
	b := f.client(t, func(cfg *Config) { cfg.MachineID, cfg.APIKey = "", testAPIKey })
	if err := b.UsageMetrics(ctx, map[string]any{"remediation_components": []any{map[string]any{"version": "v1"}}}); err != nil {
		t.Fatalf("bouncer UsageMetrics: %v", err)
	}
	m := f.client(t, nil)
	if err := m.UsageMetrics(ctx, map[string]any{"log_processors": []any{map[string]any{"version": "v1"}}}); err != nil {
		t.Fatalf("machine UsageMetrics: %v", err)
	}
	want := []string{
		fmt.Sprintf("key=%q authz=\"\" section=remediation_components", testAPIKey),
		`key="" authz="Bearer tok-1" section=log_processors`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("usage-metrics requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestErrorMessageExtraction(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		wantMsg     string
	}{
		{"message field", 500, "application/json", `{"message":"'x' doesn't exist: invalid filter"}`, "'x' doesn't exist: invalid filter"},
		{"message and errors", 422, "application/json", `{"message":"validation failure list","errors":"machine_id in body is required"}`, "validation failure list (machine_id in body is required)"},
		{"errors only", 400, "application/json", `{"errors":"bad things"}`, "bad things"},
		{"raw text body", 502, "text/plain", "upstream connect error\n", "upstream connect error"},
		{"json without message", 500, "application/json", `{"status":"down"}`, `{"status":"down"}`},
		{"empty body", 404, "", "", "Not Found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLAPI(t, "")
			f.machine("DELETE /v1/decisions", func(w http.ResponseWriter, r *http.Request) {
				if tc.contentType != "" {
					w.Header().Set("Content-Type", tc.contentType)
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			c := f.client(t, nil)
			_, err := c.DeleteDecisions(context.Background(), url.Values{"x": {"1"}})
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want an *APIError", err)
			}
			if apiErr.Status != tc.status || apiErr.Message != tc.wantMsg {
				t.Errorf("APIError{Status:%d Message:%q}, want {%d %q}", apiErr.Status, apiErr.Message, tc.status, tc.wantMsg)
			}
			if !strings.HasPrefix(err.Error(), "DELETE /v1/decisions: ") {
				t.Errorf("Error() = %q does not start with the method and path", err.Error())
			}
		})
	}
}

func TestDeletions(t *testing.T) {
	f := newFakeLAPI(t, "")
	var queries []string
	f.machine("DELETE /v1/decisions", func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		writeJSON(w, http.StatusOK, models.DeleteResponse{NbDeleted: "3"})
	})
	f.machine("DELETE /v1/decisions/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "100" {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "decision with id '" + r.PathValue("id") + "' doesn't exist: unable to delete"})
			return
		}
		writeJSON(w, http.StatusOK, models.DeleteResponse{NbDeleted: "1"})
	})
	f.machine("DELETE /v1/alerts/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"nbDeleted":1}`) // a number: tolerated
	})
	f.machine("DELETE /v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"nbDeleted":"many"}`)
	})
	c := f.client(t, nil)
	ctx := context.Background()

	n, err := c.DeleteDecisions(ctx, url.Values{"ip": {"1.2.3.4"}, "type": {"ban"}})
	if err != nil || n != 3 {
		t.Errorf("DeleteDecisions = %d, %v; want 3", n, err)
	}
	if n, err = c.DeleteDecisions(ctx, nil); err != nil || n != 3 {
		t.Errorf("DeleteDecisions(all) = %d, %v; want 3", n, err)
	}
	if strings.Join(queries, "|") != "ip=1.2.3.4&type=ban|" {
		t.Errorf("queries = %q", queries)
	}
	if n, err = c.DeleteDecision(ctx, 100); err != nil || n != 1 {
		t.Errorf("DeleteDecision(100) = %d, %v; want 1", n, err)
	}
	var apiErr *APIError
	if _, err = c.DeleteDecision(ctx, 7); !errors.As(err, &apiErr) || apiErr.Status != 500 ||
		apiErr.Message != "decision with id '7' doesn't exist: unable to delete" {
		t.Errorf("DeleteDecision(7): %v", err)
	}
	if n, err = c.DeleteAlert(ctx, 9); err != nil || n != 1 {
		t.Errorf("DeleteAlert = %d, %v; want 1", n, err)
	}
	if _, err = c.DeleteAlerts(ctx, nil); err == nil || !strings.Contains(err.Error(), "nbDeleted") {
		t.Errorf("DeleteAlerts with a non-numeric nbDeleted: err = %v", err)
	}
}

func TestAlertsRoundTrip(t *testing.T) {
	f := newFakeLAPI(t, "")
	f.machine("GET /v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("has_active_decision") != "true" {
			_, _ = io.WriteString(w, "null")
			return
		}
		a := testAlert("192.0.2.7", "m")
		a.ID = 12
		a.Decisions = []*models.Decision{{ID: 3, Duration: "3h59m58s", Origin: "cscli", Scope: "Ip", Type: "ban", Value: "192.0.2.7"}}
		writeJSON(w, http.StatusOK, []*models.Alert{a})
	})
	f.machine("GET /v1/alerts/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "12" {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "object not found"})
			return
		}
		a := testAlert("192.0.2.7", "m")
		a.ID = 12
		writeJSON(w, http.StatusOK, a)
	})
	c := f.client(t, nil)
	ctx := context.Background()

	list, err := c.ListAlerts(ctx, url.Values{"has_active_decision": {"true"}, "limit": {"100"}})
	if err != nil {
		t.Fatalf("ListAlerts: %v", err)
	}
	if len(list) != 1 || list[0].ID != 12 || len(list[0].Decisions) != 1 || list[0].Decisions[0].ID != 3 {
		t.Errorf("ListAlerts = %+v", list)
	}
	empty, err := c.ListAlerts(ctx, nil)
	if err != nil || empty == nil || len(empty) != 0 {
		t.Errorf("ListAlerts on null = %#v, %v; want empty", empty, err)
	}
	a, err := c.GetAlert(ctx, 12)
	if err != nil || a.ID != 12 || a.GetValue() != "192.0.2.7" {
		t.Errorf("GetAlert(12) = %+v, %v", a, err)
	}
	var apiErr *APIError
	if _, err := c.GetAlert(ctx, 13); !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Message != "object not found" {
		t.Errorf("GetAlert(13): %v", err)
	}
}

func TestAllowlists(t *testing.T) {
	f := newFakeLAPI(t, "")
	var checkedURI string
	f.machine("GET /v1/allowlists/check/{value}", func(w http.ResponseWriter, r *http.Request) {
		checkedURI = r.RequestURI
		if r.PathValue("value") == "10.0.0.0/8" {
			writeJSON(w, http.StatusOK, models.CheckAllowlistResponse{Allowlisted: true, Reason: "internal"})
			return
		}
		_, _ = io.WriteString(w, "{}")
	})
	f.machine("POST /v1/allowlists/check", func(w http.ResponseWriter, r *http.Request) {
		var req models.BulkCheckAllowlistRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Targets) == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "empty targets"})
			return
		}
		resp := models.BulkCheckAllowlistResponse{Results: []models.BulkCheckAllowlistResult{}}
		for _, tg := range req.Targets {
			if strings.HasPrefix(tg, "10.") {
				resp.Results = append(resp.Results, models.BulkCheckAllowlistResult{Target: tg, Allowlists: []string{"internal"}})
			}
		}
		writeJSON(w, http.StatusOK, resp)
	})
	f.machine("GET /v1/allowlists", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("with_content") != "true" {
			_, _ = io.WriteString(w, "[]")
			return
		}
		writeJSON(w, http.StatusOK, []*models.Allowlist{{Name: "internal", Items: []*models.AllowlistItem{{Value: "10.0.0.0/8"}}}})
	})
	c := f.client(t, nil)
	ctx := context.Background()

	res, err := c.CheckAllowlist(ctx, "10.0.0.0/8")
	if err != nil || !res.Allowlisted || res.Reason != "internal" {
		t.Errorf("CheckAllowlist(10.0.0.0/8) = %+v, %v", res, err)
	}
	if checkedURI != "/v1/allowlists/check/10.0.0.0%2F8" {
		t.Errorf("request URI = %q, want the slash escaped", checkedURI)
	}
	res, err = c.CheckAllowlist(ctx, "2001:db8::1")
	if err != nil || res.Allowlisted {
		t.Errorf("CheckAllowlist(2001:db8::1) = %+v, %v", res, err)
	}
	bulk, err := c.BulkCheckAllowlist(ctx, []string{"10.1.2.3", "192.0.2.7"})
	if err != nil || len(bulk.Results) != 1 || bulk.Results[0].Target != "10.1.2.3" {
		t.Errorf("BulkCheckAllowlist = %+v, %v", bulk, err)
	}
	lists, err := c.ListAllowlists(ctx)
	if err != nil || len(lists) != 1 || lists[0].Name != "internal" || len(lists[0].Items) != 1 {
		t.Errorf("ListAllowlists = %+v, %v", lists, err)
	}
}

func TestWatchers(t *testing.T) {
	f := newFakeLAPI(t, "")
	var registered []models.WatcherRegistrationRequest
	f.mux.HandleFunc("POST /v1/watchers", func(w http.ResponseWriter, r *http.Request) {
		var req models.WatcherRegistrationRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		registered = append(registered, req)
		switch {
		case *req.MachineID == "exists":
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "user 'exists': user already exist"})
		case req.RegistrationToken != "":
			w.WriteHeader(http.StatusAccepted)
		default:
			w.WriteHeader(http.StatusCreated)
		}
	})
	deleted := 0
	f.machine("DELETE /v1/watchers/self", func(w http.ResponseWriter, r *http.Request) {
		deleted++
		w.WriteHeader(http.StatusNoContent)
	})
	c := f.client(t, nil)
	ctx := context.Background()

	if err := c.RegisterWatcher(ctx, "m2", "pw", ""); err != nil {
		t.Errorf("RegisterWatcher (201): %v", err)
	}
	if err := c.RegisterWatcher(ctx, "m3", "pw", strings.Repeat("t", 32)); err != nil {
		t.Errorf("RegisterWatcher (202): %v", err)
	}
	var apiErr *APIError
	if err := c.RegisterWatcher(ctx, "exists", "pw", ""); !errors.As(err, &apiErr) || apiErr.Status != 403 {
		t.Errorf("RegisterWatcher (exists): %v", err)
	}
	if len(registered) != 3 || *registered[0].MachineID != "m2" || *registered[0].Password != "pw" ||
		registered[1].RegistrationToken != strings.Repeat("t", 32) {
		t.Errorf("registrations = %+v", registered)
	}
	if n := f.loginCount(); n != 0 {
		t.Errorf("registration logged in %d times", n)
	}

	if err := c.DeleteSelf(ctx); err != nil {
		t.Fatalf("DeleteSelf: %v", err)
	}
	if deleted != 1 {
		t.Errorf("DELETE /v1/watchers/self reached the server %d times", deleted)
	}
	if _, ok := c.currentToken(); ok {
		t.Error("token kept after DeleteSelf")
	}
}

// streamServer serves a chunked stream of nNew new and nDeleted deleted
// decisions. After the first half of "new" it waits until the client
// signals (through firstSeen) that it already decoded a decision, which
// proves the client decodes while the body is still being written.
func streamServer(f *fakeLAPI, nNew, nDeleted int, firstSeen <-chan struct{}, stalled *bool) {
	f.bouncer("GET /v1/decisions/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		flusher := w.(http.Flusher)
		bw := &bytes.Buffer{}
		writeDecision := func(id int, dur string) {
			fmt.Fprintf(bw, `{"duration":%q,"id":%d,"origin":"crowdsec","scenario":"crowdsecurity/ssh-bf","scope":"Ip","type":"ban","uuid":"u-%d","value":"10.%d.%d.%d"}`,
				dur, id, id, (id>>16)&255, (id>>8)&255, id&255)
		}
		flush := func() {
			_, _ = w.Write(bw.Bytes())
			bw.Reset()
			flusher.Flush()
		}
		bw.WriteString(`{"new": [`)
		for i := 0; i < nNew; i++ {
			if i > 0 {
				bw.WriteByte(',')
			}
			writeDecision(i+1, "3h59m58s")
			if bw.Len() > 32<<10 {
				flush()
			}
			if i == nNew/2 {
				flush()
				select {
				case <-firstSeen:
				case <-time.After(5 * time.Second):
					*stalled = true
				}
			}
		}
		bw.WriteString(`], "deleted": [`)
		for i := 0; i < nDeleted; i++ {
			if i > 0 {
				bw.WriteByte(',')
			}
			writeDecision(nNew+i+1, "-1h2m3s")
			if bw.Len() > 32<<10 {
				flush()
			}
		}
		bw.WriteString(`]}`)
		flush()
	})
}

func TestStreamDecodeLarge(t *testing.T) {
	const nNew, nDeleted = 200_000, 20_000
	f := newFakeLAPI(t, "")
	firstSeen := make(chan struct{})
	stalled := false
	streamServer(f, nNew, nDeleted, firstSeen, &stalled)
	c := f.client(t, func(cfg *Config) { cfg.MachineID, cfg.APIKey = "", testAPIKey })

	var gotNew, gotDeleted int
	var lastID int64
	var once sync.Once
	err := c.StreamDecode(context.Background(), true, url.Values{"scopes": {"ip,range"}},
		func(d *models.Decision) error {
			once.Do(func() { close(firstSeen) })
			gotNew++
			if d.ID != lastID+1 || d.Type != "ban" || d.Duration != "3h59m58s" {
				return fmt.Errorf("new element %d: %+v", gotNew, d)
			}
			lastID = d.ID
			return nil
		},
		func(d *models.Decision) error {
			gotDeleted++
			if d.ID != lastID+1 || d.Duration != "-1h2m3s" {
				return fmt.Errorf("deleted element %d: %+v", gotDeleted, d)
			}
			lastID = d.ID
			return nil
		})
	if err != nil {
		t.Fatalf("StreamDecode: %v", err)
	}
	if gotNew != nNew || gotDeleted != nDeleted {
		t.Errorf("decoded %d new and %d deleted, want %d and %d", gotNew, gotDeleted, nNew, nDeleted)
	}
	if stalled {
		t.Error("the client decoded nothing while the server held the rest of the body: not incremental")
	}
	reqs := f.seen()
	if len(reqs) != 1 {
		t.Fatalf("requests = %v", reqs)
	}
	u, _ := url.Parse(strings.TrimPrefix(reqs[0], "GET "))
	q := u.Query()
	if u.Path != "/v1/decisions/stream" || q.Get("startup") != "true" || q.Get("community_pull") != "false" ||
		q.Get("additional_pull") != "false" || q.Get("scopes") != "ip,range" {
		t.Errorf("stream request = %s", reqs[0])
	}
}

func TestStreamShapes(t *testing.T) {
	tests := []struct {
		name, body       string
		wantNew, wantDel []int64
	}{
		{"v1.7.8 chunked", `{"new": [{"id":1,"value":"a"},{"id":2,"value":"b"}], "deleted": [{"id":3,"value":"c"}]}`, []int64{1, 2}, []int64{3}},
		{"legacy null", `{"deleted":null,"new":null}`, nil, nil},
		{"legacy sorted keys", `{"deleted":[{"id":5}],"new":[{"id":6}]}`, []int64{6}, []int64{5}},
		{"empty lists", `{"new": [], "deleted": []}`, nil, nil},
		{"unknown key skipped", `{"extra":{"a":[1,2,{"b":null}]},"new":[{"id":9}],"deleted":[]}`, []int64{9}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLAPI(t, "")
			var startup []string
			f.bouncer("GET /v1/decisions/stream", func(w http.ResponseWriter, r *http.Request) {
				startup = append(startup, r.URL.Query().Get("startup"))
				_, _ = io.WriteString(w, tc.body)
			})
			c := f.client(t, func(cfg *Config) { cfg.APIKey = testAPIKey })
			resp, err := c.Stream(context.Background(), false, url.Values{"startup": {"true"}})
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			if resp.New == nil || resp.Deleted == nil {
				t.Errorf("nil list in %+v", resp)
			}
			if got := ids(resp.New); fmt.Sprint(got) != fmt.Sprint(orEmpty(tc.wantNew)) {
				t.Errorf("new ids = %v, want %v", got, tc.wantNew)
			}
			if got := ids(resp.Deleted); fmt.Sprint(got) != fmt.Sprint(orEmpty(tc.wantDel)) {
				t.Errorf("deleted ids = %v, want %v", got, tc.wantDel)
			}
			if len(startup) != 1 || startup[0] != "" {
				t.Errorf("startup parameter sent on a delta pull: %q", startup)
			}
		})
	}
}

func ids(ds []*models.Decision) []int64 {
	out := []int64{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func orEmpty(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

func TestStreamErrors(t *testing.T) {
	f := newFakeLAPI(t, "")
	firstSeen := make(chan struct{})
	close(firstSeen)
	stalled := false
	streamServer(f, 1000, 10, firstSeen, &stalled)
	c := f.client(t, func(cfg *Config) { cfg.APIKey = testAPIKey })

	stop := errors.New("firewall full")
	seen := 0
	err := c.StreamDecode(context.Background(), true, nil, func(*models.Decision) error {
		seen++
		if seen == 10 {
			return stop
		}
		return nil
	}, nil)
	if !errors.Is(err, stop) {
		t.Errorf("callback error not returned: %v", err)
	}
	if seen != 10 {
		t.Errorf("callbacks after the error: %d calls", seen)
	}

	bad := newFakeLAPI(t, "")
	bad.bouncer("GET /v1/decisions/stream", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"new": [{"id":1}, {"id":`) // truncated, as after a mid-stream DB error
	})
	c = bad.client(t, func(cfg *Config) { cfg.APIKey = testAPIKey })
	if _, err := c.Stream(context.Background(), true, nil); err == nil {
		t.Error("a truncated stream decoded without error")
	}
}

func TestDefaultDeadline(t *testing.T) {
	f := newFakeLAPI(t, "")
	f.mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	c := f.client(t, func(cfg *Config) { cfg.Timeout = 200 * time.Millisecond })
	if c.eps[0].http.Timeout != 0 {
		t.Errorf("http.Client.Timeout = %s, want 0 (deadlines come from contexts)", c.eps[0].http.Timeout)
	}
	start := time.Now()
	err := c.Health(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Health against a stuck server: err = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Health took %s with a 200ms default timeout", d)
	}

	// A caller's own deadline wins over the default (a long-poll).
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	start = time.Now()
	_ = c.Health(ctx)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("call with a 600ms context ended after %s: the default timeout overrode it", d)
	}

	if c2, _ := New(Config{URL: "http://127.0.0.1:1/"}); c2.timeout != DefaultTimeout {
		t.Errorf("default timeout = %s, want %s", c2.timeout, DefaultTimeout)
	}
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "lapi.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix sockets unavailable: %v", err)
	}
	var path string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		writeJSON(w, http.StatusOK, map[string]string{"status": "up"})
	}))
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)

	c, err := New(Config{URL: sock})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := c.Health(context.Background()); err != nil {
		t.Fatalf("Health over %s: %v", sock, err)
	}
	if path != "/health" {
		t.Errorf("path = %q, want /health", path)
	}
}
