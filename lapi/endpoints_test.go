package lapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// ---------------------------------------------------------------------------
// helpers

// reply is a full HTTP answer.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r reply) String() string { return fmt.Sprintf("%d %q", r.Status, truncForLog(r.Body)) }

func truncForLog(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// hdr builds canonical headers from pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func (l *testLAPI) jwtHdr(extra ...string) http.Header {
	h := hdr("Authorization", "Bearer "+l.login(), "User-Agent", testUA)
	for i := 0; i+1 < len(extra); i += 2 {
		h.Set(extra[i], extra[i+1])
	}
	return h
}

func keyHdr(key string, extra ...string) http.Header {
	h := hdr("X-Api-Key", key, "User-Agent", "crowdsec-firewall-bouncer/v0.0.30")
	for i := 0; i+1 < len(extra); i += 2 {
		h.Set(extra[i], extra[i+1])
	}
	return h
}

// send issues a request keeping header keys exactly as given (so tests can
// send non-canonical names). body may be nil, []byte or a value to marshal.
func (l *testLAPI) send(method, path string, h http.Header, body any) reply {
	l.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			l.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, l.URL+path, rd)
	if err != nil {
		l.t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	client := &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if l.client != nil {
		client = l.client
	}
	resp, err := client.Do(req)
	if err != nil {
		l.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		l.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// decodeJSON decodes with json.Number so tests can check number vs string.
func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("body %q is not JSON: %v", truncForLog(b), err)
	}
	if dec.More() {
		t.Fatalf("body %q has trailing data", truncForLog(b))
	}
	return v
}

func decodeObj(t *testing.T, b []byte) map[string]any {
	t.Helper()
	m, ok := decodeJSON(t, b).(map[string]any)
	if !ok {
		t.Fatalf("body %q is not a JSON object", truncForLog(b))
	}
	return m
}

// expectMsg checks a {"message": msg} error answer (exact message).
func expectMsg(t *testing.T, what string, r reply, status int, msg string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: status %d, want %d (body %q)", what, r.Status, status, truncForLog(r.Body))
		return
	}
	m := decodeObj(t, r.Body)
	got, ok := m["message"].(string)
	if !ok {
		t.Errorf("%s: no string message in %q", what, r.Body)
		return
	}
	if msg != "" && got != msg {
		t.Errorf("%s: message %q, want %q", what, got, msg)
	}
}

// expectMsgPrefix is expectMsg with a message prefix.
func expectMsgPrefix(t *testing.T, what string, r reply, status int, prefix string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: status %d, want %d (body %q)", what, r.Status, status, truncForLog(r.Body))
		return
	}
	m := decodeObj(t, r.Body)
	got, _ := m["message"].(string)
	if !strings.HasPrefix(got, prefix) {
		t.Errorf("%s: message %q, want prefix %q", what, got, prefix)
	}
}

// expectAuth401 checks the {"code":401,"message":...} shape.
func expectAuth401(t *testing.T, what string, r reply, msg string) {
	t.Helper()
	if r.Status != http.StatusUnauthorized {
		t.Errorf("%s: status %d, want 401 (body %q)", what, r.Status, truncForLog(r.Body))
		return
	}
	m := decodeObj(t, r.Body)
	if c, ok := m["code"].(json.Number); !ok || c.String() != "401" {
		t.Errorf("%s: code %#v, want the number 401", what, m["code"])
	}
	got, ok := m["message"].(string)
	if !ok {
		t.Errorf("%s: no message in %q", what, r.Body)
	}
	if msg != "" && got != msg {
		t.Errorf("%s: message %q, want %q", what, got, msg)
	}
}

func expectEmpty(t *testing.T, what string, r reply, status int) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: status %d, want %d (body %q)", what, r.Status, status, truncForLog(r.Body))
	}
	if len(r.Body) != 0 {
		t.Errorf("%s: body %q, want empty", what, truncForLog(r.Body))
	}
}

// countEvents counts the events stored in every alert's events document.
func (l *testLAPI) countEvents() int {
	l.t.Helper()
	as, err := l.Store.QueryAlerts(context.Background(), store.AlertFilter{IncludeCAPI: true}, time.Now())
	if err != nil {
		l.t.Fatalf("counting events: %v", err)
	}
	n := 0
	for _, a := range as {
		n += len(a.Events)
	}
	return n
}

func (l *testLAPI) count(table string) int {
	l.t.Helper()
	var n int
	if err := l.Store.QueryRowForTest("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		l.t.Fatalf("counting %s: %v", table, err)
	}
	return n
}

func (l *testLAPI) expectCounts(what string, alerts, decisions int) {
	l.t.Helper()
	if n := l.count("alerts"); n != alerts {
		l.t.Errorf("%s: %d alerts in the database, want %d", what, n, alerts)
	}
	if n := l.count("decisions"); n != decisions {
		l.t.Errorf("%s: %d decisions in the database, want %d", what, n, decisions)
	}
}

// rawAlert turns an alert into a generic map so tests can break it.
func rawAlert(t *testing.T, a *models.Alert) map[string]any {
	t.Helper()
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func gzipBytes(t *testing.T, chunks ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	for _, c := range chunks {
		if _, err := zw.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pushRaw posts an arbitrary body to /v1/alerts as the test machine.
func (l *testLAPI) pushRaw(body any, extra ...string) reply {
	l.t.Helper()
	return l.send("POST", "/v1/alerts", l.jwtHdr(extra...), body)
}

// getDecisions returns GET /v1/decisions?query as decoded decisions (nil for null).
func (l *testLAPI) getDecisions(key, query string) (reply, []*models.Decision) {
	l.t.Helper()
	r := l.send("GET", "/v1/decisions"+query, keyHdr(key), nil)
	if r.Status != 200 {
		return r, nil
	}
	var ds []*models.Decision
	if err := json.Unmarshal(r.Body, &ds); err != nil {
		l.t.Fatalf("GET /v1/decisions%s: %q: %v", query, truncForLog(r.Body), err)
	}
	return r, ds
}

func (l *testLAPI) getAlerts(query string) (reply, []*models.Alert) {
	l.t.Helper()
	r := l.send("GET", "/v1/alerts"+query, l.jwtHdr(), nil)
	if r.Status != 200 {
		return r, nil
	}
	var as []*models.Alert
	if err := json.Unmarshal(r.Body, &as); err != nil {
		l.t.Fatalf("GET /v1/alerts%s: %q: %v", query, truncForLog(r.Body), err)
	}
	return r, as
}

func decisionKeys(ds []*models.Decision) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.Scope+":"+d.Value+":"+d.Type)
	}
	sort.Strings(out)
	return out
}

func parseDur(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

func within(d, want, slack time.Duration) bool { return d >= want-slack && d <= want+slack }

// ---------------------------------------------------------------------------
// routing

func TestHealthAndRouting(t *testing.T) {
	l := startLAPI(t, nil)

	r := l.send("GET", "/health", nil, nil)
	if r.Status != 200 {
		t.Fatalf("health: %s", r)
	}
	if m := decodeObj(t, r.Body); len(m) != 1 || m["status"] != "up" {
		t.Errorf("health body %q", r.Body)
	}
	// The server never compresses responses, even when asked.
	r = l.send("GET", "/health", hdr("Accept-Encoding", "gzip"), nil)
	if ce := r.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("health answered with Content-Encoding %q", ce)
	}

	for _, c := range []struct{ method, path string }{
		{"GET", "/nope"},
		{"GET", "/v1/nope"},
		{"GET", "/v2/decisions"},
		{"POST", "/v1/alerts/1/extra"},
		{"GET", "/v1/decisions/stream/extra"},
		{"DELETE", "/v1/watchers/other"},
		{"GET", "/v1/decisions/1/x"},
		{"DELETE", "/v1/decisions/1/x"},
		{"GET", "/v1/alerts/1/extra"},
		{"DELETE", "/v1/alerts/1/extra"},
		{"GET", "/v1/allowlists/a/b"},
	} {
		expectEmpty(t, "404 "+c.method+" "+c.path, l.send(c.method, c.path, nil, nil), http.StatusNotFound)
	}
	for _, c := range []struct{ method, path string }{
		{"POST", "/health"},
		{"PUT", "/v1/alerts"},
		{"PATCH", "/v1/decisions"},
		{"GET", "/v1/watchers"},
		{"GET", "/v1/watchers/login"},
		{"POST", "/v1/decisions/stream"},
		{"GET", "/v1/usage-metrics"},
		{"PUT", "/v1/heartbeat"},
	} {
		expectEmpty(t, "405 "+c.method+" "+c.path, l.send(c.method, c.path, nil, nil), http.StatusMethodNotAllowed)
	}
}

// ---------------------------------------------------------------------------
// POST /v1/watchers

func TestRegisterWatcher(t *testing.T) {
	l := startLAPI(t, nil)
	ua := hdr("User-Agent", testUA)

	cases := []struct {
		name   string
		body   any
		status int
		msg    string
	}{
		{"bad json", []byte(`{"machine_id":`), 400, ""},
		{"not an object", []byte(`[1,2]`), 400, ""},
		{"missing both", map[string]any{}, 422, "validation failure list:\nmachine_id in body is required\npassword in body is required"},
		{"missing password", map[string]any{"machine_id": "m1"}, 422, "validation failure list:\npassword in body is required"},
		{"missing machine_id", map[string]any{"password": "p"}, 422, "validation failure list:\nmachine_id in body is required"},
		{"short token", map[string]any{"machine_id": "m1", "password": "p", "registration_token": "short"}, 422, ""},
		{"token without auto-registration", map[string]any{"machine_id": "m1", "password": "p", "registration_token": strings.Repeat("t", 40)}, 401,
			"invalid token for auto registration"},
	}
	for _, c := range cases {
		r := l.send("POST", "/v1/watchers", ua, c.body)
		expectMsg(t, c.name, r, c.status, c.msg)
		if c.status == 422 {
			expectMsgPrefix(t, c.name, r, 422, "validation failure list:\n")
		}
	}
	if _, err := l.Store.GetMachine(context.Background(), "m1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused registration created the machine: %v", err)
	}

	r := l.send("POST", "/v1/watchers", ua, map[string]any{"machine_id": "m1", "password": "secret-pw"})
	expectEmpty(t, "register", r, http.StatusCreated)
	m, err := l.Store.GetMachine(context.Background(), "m1")
	if err != nil {
		t.Fatal(err)
	}
	if m.IsValidated || m.AuthType != "password" || m.IPAddress != "127.0.0.1" {
		t.Errorf("registered machine = %+v, want not validated, password auth, ip 127.0.0.1", m)
	}
	expectMsg(t, "register again", l.send("POST", "/v1/watchers", ua, map[string]any{"machine_id": "m1", "password": "other"}),
		http.StatusForbidden, "user 'm1': user already exist")

	login := func() reply {
		return l.send("POST", "/v1/watchers/login", ua, map[string]any{"machine_id": "m1", "password": "secret-pw"})
	}
	expectAuth401(t, "login before validation", login(), "machine m1 not validated")
	if err := l.Store.ValidateMachine(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	if r := login(); r.Status != 200 {
		t.Errorf("login after validation: %s", r)
	}
}

func TestRegisterWatcherDisableRemote(t *testing.T) {
	// disable_remote_lapi_registration refuses non-local clients only.
	l := startLAPI(t, func(c *csconfig.Config) {
		c.API.Server.DisableRemoteLAPIRegistration = true
		c.API.Server.UseForwardedForHeaders = true
		c.API.Server.TrustedProxies = []string{"127.0.0.1"}
	})
	r := l.send("POST", "/v1/watchers", hdr("X-Forwarded-For", "198.51.100.7"), map[string]any{"machine_id": "far", "password": "p"})
	expectMsg(t, "remote registration", r, http.StatusForbidden, "access forbidden")
	expectEmpty(t, "local registration", l.send("POST", "/v1/watchers", nil, map[string]any{"machine_id": "near", "password": "p"}), http.StatusCreated)
}

func TestAutoRegistration(t *testing.T) {
	token := strings.Repeat("k", 40)
	l := startLAPI(t, func(c *csconfig.Config) {
		c.API.Server.AutoRegistration = &csconfig.AutoRegistration{Enabled: true, Token: token, AllowedRanges: []string{"127.0.0.1/32", "::1"}}
	})
	ua := hdr("User-Agent", testUA)
	expectMsg(t, "wrong token", l.send("POST", "/v1/watchers", ua,
		map[string]any{"machine_id": "auto1", "password": "pw", "registration_token": strings.Repeat("x", 40)}), 401, "invalid token for auto registration")

	r := l.send("POST", "/v1/watchers", ua, map[string]any{"machine_id": "auto1", "password": "pw", "registration_token": token})
	expectEmpty(t, "auto registration", r, http.StatusAccepted)
	m, err := l.Store.GetMachine(context.Background(), "auto1")
	if err != nil {
		t.Fatal(err)
	}
	if !m.IsValidated {
		t.Errorf("auto-registered machine is not validated")
	}
	if r := l.send("POST", "/v1/watchers/login", ua, map[string]any{"machine_id": "auto1", "password": "pw"}); r.Status != 200 {
		t.Errorf("login of the auto-registered machine: %s", r)
	}
	// registering without a token still works (not validated)
	expectEmpty(t, "plain registration", l.send("POST", "/v1/watchers", ua, map[string]any{"machine_id": "plain", "password": "pw"}), http.StatusCreated)

	// out of the allowed ranges
	l2 := startLAPI(t, func(c *csconfig.Config) {
		c.API.Server.AutoRegistration = &csconfig.AutoRegistration{Enabled: true, Token: token, AllowedRanges: []string{"10.0.0.0/8"}}
	})
	expectMsg(t, "ip outside range", l2.send("POST", "/v1/watchers", ua,
		map[string]any{"machine_id": "auto2", "password": "pw", "registration_token": token}), 401, "IP not in allowed range for auto registration")
	if _, err := l2.Store.GetMachine(context.Background(), "auto2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused auto registration created the machine: %v", err)
	}

	// a short token is a configuration error
	cfg := csconfig.Default()
	cfg.DBConfig.DBPath = filepath.Join(t.TempDir(), "x.db")
	cfg.API.Server.AutoRegistration = &csconfig.AutoRegistration{Enabled: true, Token: "short"}
	st, err := store.Open(context.Background(), testStoreConfig(t, cfg.DBConfig.DBPath))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := New(context.Background(), cfg, st, profiles.Default()); err == nil {
		t.Errorf("New accepted an auto-registration token of 5 characters")
	}
}

// ---------------------------------------------------------------------------
// POST /v1/watchers/login and JWT

func TestLogin(t *testing.T) {
	l := startLAPI(t, nil)
	l.addMachine("m1", "good-password")
	ctx := context.Background()

	before := time.Now()
	r := l.send("POST", "/v1/watchers/login", hdr("User-Agent", "crowdsec/v1.7.8-abc-linux"),
		map[string]any{"machine_id": "m1", "password": "good-password", "scenarios": []string{"a/b", "c/d"}})
	if r.Status != 200 {
		t.Fatalf("login: %s", r)
	}
	m := decodeObj(t, r.Body)
	if len(m) != 3 {
		t.Errorf("login body has keys %v, want code, expire, token", m)
	}
	if c, ok := m["code"].(json.Number); !ok || c.String() != "200" {
		t.Errorf("code = %#v, want the number 200", m["code"])
	}
	exp, err := time.Parse(time.RFC3339, fmt.Sprint(m["expire"]))
	if err != nil {
		t.Errorf("expire %v is not RFC3339: %v", m["expire"], err)
	} else if d := exp.Sub(before); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("token lifetime %s, want 1h", d)
	}
	tok, _ := m["token"].(string)
	if strings.Count(tok, ".") != 2 {
		t.Errorf("token %q is not a JWT", tok)
	}
	mach, err := l.Store.GetMachine(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if mach.Version != "v1.7.8-abc-linux" || mach.Scenarios != "a/b,c/d" || mach.IPAddress != "127.0.0.1" {
		t.Errorf("login side effects: version %q scenarios %q ip %q", mach.Version, mach.Scenarios, mach.IPAddress)
	}
	// a token works, and refresh_token answers the login shape
	if r := l.send("GET", "/v1/heartbeat", hdr("Authorization", "Bearer "+tok), nil); r.Status != 200 {
		t.Errorf("heartbeat with the token: %s", r)
	}
	r = l.send("GET", "/v1/refresh_token", hdr("Authorization", "Bearer "+tok), nil)
	if r.Status != 200 {
		t.Errorf("refresh_token: %s", r)
	} else if m := decodeObj(t, r.Body); m["token"] == nil || m["expire"] == nil || fmt.Sprint(m["code"]) != "200" {
		t.Errorf("refresh_token body %q", r.Body)
	}
	// null scenarios (cscli) keep the stored list
	if r := l.send("POST", "/v1/watchers/login", hdr("User-Agent", testUA), map[string]any{"machine_id": "m1", "password": "good-password", "scenarios": nil}); r.Status != 200 {
		t.Errorf("login with null scenarios: %s", r)
	}
	if mach, _ := l.Store.GetMachine(ctx, "m1"); mach.Scenarios != "a/b,c/d" {
		t.Errorf("login without scenarios overwrote them: %q", mach.Scenarios)
	}

	cases := []struct {
		name string
		ua   string
		body any
		msg  string
	}{
		{"bad password", testUA, map[string]any{"machine_id": "m1", "password": "nope"}, "incorrect Username or Password"},
		{"user agent without slash", "crowdsec", map[string]any{"machine_id": "m1", "password": "good-password"}, "incorrect Username or Password"},
		{"user agent with two slashes", "crowdsec/v1/linux", map[string]any{"machine_id": "m1", "password": "good-password"}, "incorrect Username or Password"},
		{"unknown machine", testUA, map[string]any{"machine_id": "ghost", "password": "x"}, "incorrect Username or Password"},
		{"missing password", testUA, map[string]any{"machine_id": "m1"}, "validation failure list:\npassword in body is required"},
		{"bad json", testUA, []byte(`{"machine_id":`), ""},
	}
	for _, c := range cases {
		r := l.send("POST", "/v1/watchers/login", hdr("User-Agent", c.ua), c.body)
		expectAuth401(t, c.name, r, c.msg)
		if c.name == "bad json" {
			if msg, _ := decodeObj(t, r.Body)["message"].(string); !strings.HasPrefix(msg, "missing: ") {
				t.Errorf("bad json message %q, want 'missing: ...'", msg)
			}
		}
	}

	// the unauthenticated body limit is 2 MiB after decompression
	big := gzipBytes(t, []byte(`{"machine_id":"m1","password":"`), bytes.Repeat([]byte("a"), 3<<20), []byte(`"}`))
	r = l.send("POST", "/v1/watchers/login", hdr("User-Agent", testUA, "Content-Encoding", "gzip"), big)
	if r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("3 MiB login body: %s, want 413", r)
	}
	// a gzipped login is fine
	small := gzipBytes(t, []byte(`{"machine_id":"m1","password":"good-password"}`))
	if r := l.send("POST", "/v1/watchers/login", hdr("User-Agent", testUA, "Content-Encoding", "gzip"), small); r.Status != 200 {
		t.Errorf("gzipped login: %s", r)
	}
}

func TestJWT(t *testing.T) {
	t.Setenv("CS_LAPI_SECRET", "")
	dbPath := filepath.Join(t.TempDir(), "crowdsec.db")
	l := startLAPIAt(t, dbPath, nil)
	tok := l.login()
	hb := func(h http.Header) reply { return l.send("GET", "/v1/heartbeat", h, nil) }

	if r := hb(hdr("Authorization", "Bearer "+tok)); r.Status != 200 {
		t.Fatalf("heartbeat: %s", r)
	}
	if r := hb(hdr("Cookie", "jwt="+tok)); r.Status != 200 {
		t.Errorf("jwt cookie refused: %s", r)
	}

	secret, err := l.Store.GetKV(context.Background(), jwtSecretKV)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	tampered := []byte(tok)
	i := strings.LastIndex(tok, ".") + 3
	if tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}
	parts := strings.Split(tok, ".")
	otherPayload := sign(jwt.SigningMethodHS256, []byte("x"), jwt.MapClaims{"id": "admin", "exp": now.Add(time.Hour).Unix()})
	swapped := parts[0] + "." + strings.Split(otherPayload, ".")[1] + "." + parts[2]

	bad := map[string]http.Header{
		"no token":             nil,
		"empty bearer":         hdr("Authorization", "Bearer "),
		"basic auth":           hdr("Authorization", "Basic dXNlcjpwYXNz"),
		"garbage":              hdr("Authorization", "Bearer not.a.jwt"),
		"tampered signature":   hdr("Authorization", "Bearer "+string(tampered)),
		"swapped payload":      hdr("Authorization", "Bearer "+swapped),
		"wrong secret":         hdr("Authorization", "Bearer "+sign(jwt.SigningMethodHS256, []byte(strings.Repeat("z", 64)), jwt.MapClaims{"id": testMachine, "exp": now.Add(time.Hour).Unix()})),
		"expired":              hdr("Authorization", "Bearer "+sign(jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"id": testMachine, "exp": now.Add(-time.Minute).Unix(), "orig_iat": now.Add(-time.Hour).Unix()})),
		"no exp":               hdr("Authorization", "Bearer "+sign(jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"id": testMachine})),
		"no id":                hdr("Authorization", "Bearer "+sign(jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"exp": now.Add(time.Hour).Unix()})),
		"alg none":             hdr("Authorization", "Bearer "+sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"id": testMachine, "exp": now.Add(time.Hour).Unix()})),
		"HS512 with db secret": hdr("Authorization", "Bearer "+sign(jwt.SigningMethodHS512, []byte(secret), jwt.MapClaims{"id": testMachine, "exp": now.Add(time.Hour).Unix()})),
		"tampered cookie":      hdr("Cookie", "jwt="+string(tampered)),
		"api key instead":      hdr("X-Api-Key", "whatever"),
	}
	for name, h := range bad {
		expectAuth401(t, name, hb(h), "")
	}
	// a freshly signed valid token with the stored secret works (sanity of
	// the forgery helper); without the binding to the machine row, as
	// earlier versions issued it, it is refused and the agent logs in again
	m, err := l.Store.GetMachine(context.Background(), testMachine)
	if err != nil {
		t.Fatal(err)
	}
	bound := jwt.MapClaims{"id": testMachine, "mid": m.ID, "cred": l.Server.jwt.credTag(m), "exp": now.Add(time.Hour).Unix()}
	if r := hb(hdr("Authorization", "Bearer "+sign(jwt.SigningMethodHS256, []byte(secret), bound))); r.Status != 200 {
		t.Errorf("valid forged token refused: %s", r)
	}
	expectAuth401(t, "token naming the machine only", hb(hdr("Authorization", "Bearer "+sign(jwt.SigningMethodHS256, []byte(secret),
		jwt.MapClaims{"id": testMachine, "exp": now.Add(time.Hour).Unix()}))), "Token is expired or invalid")
	bound["mid"] = m.ID + 1
	expectAuth401(t, "token naming another row", hb(hdr("Authorization", "Bearer "+sign(jwt.SigningMethodHS256, []byte(secret), bound))), "Token is expired or invalid")

	// The secret is persisted: a restarted LAPI on the same database keeps
	// accepting the token.
	l.Stop()
	l2 := startLAPIAt(t, dbPath, nil)
	if r := l2.send("GET", "/v1/heartbeat", hdr("Authorization", "Bearer "+tok), nil); r.Status != 200 {
		t.Errorf("token refused after restart: %s", r)
	}
	// a LAPI on another database does not
	l3 := startLAPI(t, nil)
	expectAuth401(t, "token from another LAPI", l3.send("GET", "/v1/heartbeat", hdr("Authorization", "Bearer "+tok), nil), "")
}

// ---------------------------------------------------------------------------
// bouncer authentication

func TestBouncerAuth(t *testing.T) {
	l := startLAPI(t, nil)
	ctx := context.Background()
	key := l.addBouncer("fw")

	for _, path := range []string{"/v1/decisions", "/v1/decisions/stream?startup=true"} {
		for name, h := range map[string]http.Header{
			"no key":     hdr("User-Agent", "x/y"),
			"empty key":  hdr("X-Api-Key", ""),
			"bad key":    hdr("X-Api-Key", "nope"),
			"key+suffix": hdr("X-Api-Key", key+"x"),
			"key prefix": hdr("X-Api-Key", key[:20]),
			"jwt":        l.jwtHdr(),
			"bearer key": hdr("Authorization", "Bearer "+key),
		} {
			expectMsg(t, name+" "+path, l.send("GET", path, h, nil), http.StatusForbidden, "access forbidden")
		}
		if r := l.send("HEAD", path, hdr("X-Api-Key", "nope"), nil); r.Status != http.StatusForbidden {
			t.Errorf("HEAD %s with a bad key: %s", path, r)
		}
	}

	// HEAD checks the key only: no row update, no cursor
	r := l.send("HEAD", "/v1/decisions/stream", hdr("X-Api-Key", key, "User-Agent", "appsec/v1.7.8"), nil)
	expectEmpty(t, "HEAD stream", r, 200)
	b, err := l.Store.GetBouncer(ctx, "fw")
	if err != nil {
		t.Fatal(err)
	}
	if b.LastPull != nil || b.Cursor != nil || b.IPAddress != "" || b.Type != "" {
		t.Errorf("HEAD /v1/decisions/stream changed the bouncer row: %+v", b)
	}

	// header name is case-insensitive
	for _, name := range []string{"X-API-Key", "x-api-key", "X-API-KEY"} {
		h := http.Header{name: {key}, "User-Agent": {"crowdsec-firewall-bouncer/v1.2.3"}}
		if r := l.send("GET", "/v1/decisions", h, nil); r.Status != 200 {
			t.Errorf("header %s: %s", name, r)
		}
	}
	b, _ = l.Store.GetBouncer(ctx, "fw")
	if b.Type != "crowdsec-firewall-bouncer" || b.Version != "v1.2.3" || b.IPAddress != "127.0.0.1" {
		t.Errorf("bouncer after GET = type %q version %q ip %q", b.Type, b.Version, b.IPAddress)
	}
	// Pull times are written within a second (see pullTimes).
	eventually(t, "GET /v1/decisions to set last_pull", func() bool {
		b, err := l.Store.GetBouncer(ctx, "fw")
		return err == nil && b.LastPull != nil
	})
	for ua, want := range map[string][2]string{
		"weird-bouncer":            {"weird-bouncer", "N/A"},
		"a/b/c":                    {"a/b/c", "N/A"},
		"cs-custom-bouncer/v0.0.1": {"cs-custom-bouncer", "v0.0.1"},
	} {
		if r := l.send("GET", "/v1/decisions/stream", hdr("X-Api-Key", key, "User-Agent", ua), nil); r.Status != 200 {
			t.Fatalf("stream with UA %q: %s", ua, r)
		}
		b, _ = l.Store.GetBouncer(ctx, "fw")
		if b.Type != want[0] || b.Version != want[1] {
			t.Errorf("UA %q stored as (%q, %q), want %v", ua, b.Type, b.Version, want)
		}
	}
	if b.Cursor == nil || b.LastPull == nil {
		t.Errorf("stream did not record the pull: %+v", b)
	}
	if bs, _ := l.Store.ListBouncers(ctx); len(bs) != 1 {
		t.Errorf("%d bouncer rows, want 1 (loopback only)", len(bs))
	}
	// a HEAD after pulls does not move the cursor either
	before := *b.Cursor
	l.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"))
	expectEmpty(t, "HEAD stream later", l.send("HEAD", "/v1/decisions/stream", keyHdr(key), nil), 200)
	if b, _ = l.Store.GetBouncer(ctx, "fw"); b.Cursor == nil || *b.Cursor != before {
		t.Errorf("HEAD moved the cursor")
	}
	expectStream(t, "delta after HEAD", l.stream(key, ""), []string{"192.0.2.1"}, nil)
}

// TestBouncerKeyFromSeveralIPs simulates other addresses through a trusted
// proxy: each address gets its own row and cursor.
func TestBouncerKeyFromSeveralIPs(t *testing.T) {
	l := startLAPI(t, func(c *csconfig.Config) {
		c.API.Server.UseForwardedForHeaders = true
		c.API.Server.TrustedProxies = []string{"127.0.0.1"}
	})
	ctx := context.Background()
	key := l.addBouncer("fw")
	pull := func(ip, q string) models.StreamResponse {
		t.Helper()
		r := l.send("GET", "/v1/decisions/stream?"+q, keyHdr(key, "X-Forwarded-For", ip), nil)
		if r.Status != 200 {
			t.Fatalf("stream from %s: %s", ip, r)
		}
		var s models.StreamResponse
		if err := json.Unmarshal(r.Body, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	pull("198.51.100.1", "startup=true")
	b, _ := l.Store.GetBouncer(ctx, "fw")
	if b.IPAddress != "198.51.100.1" {
		t.Errorf("fresh key row took ip %q, want 198.51.100.1", b.IPAddress)
	}
	pull("198.51.100.2", "startup=true")
	b2, err := l.Store.GetBouncer(ctx, "fw@198.51.100.2")
	if err != nil {
		t.Fatalf("no row for the second address: %v", err)
	}
	if !b2.AutoCreated || b2.APIKeyHash != b.APIKeyHash || b2.AuthType != "api-key" {
		t.Errorf("second-address row = %+v", b2)
	}
	l.push(manualAlert("192.0.2.8", "Ip", "4h", "cscli"))
	expectStream(t, "first address delta", pull("198.51.100.1", ""), []string{"192.0.2.8"}, nil)
	expectStream(t, "second address delta", pull("198.51.100.2", ""), []string{"192.0.2.8"}, nil)
	expectStream(t, "second address again", pull("198.51.100.2", ""), nil, nil)
	// a third address: named from the base name, not fw@a@b
	pull("198.51.100.3", "startup=true")
	if _, err := l.Store.GetBouncer(ctx, "fw@198.51.100.3"); err != nil {
		t.Errorf("third address row: %v", err)
	}
	if bs, _ := l.Store.ListBouncers(ctx); len(bs) != 3 {
		t.Errorf("%d bouncer rows, want 3", len(bs))
	}
	// HEAD from a fourth address creates nothing
	expectEmpty(t, "HEAD from new address", l.send("HEAD", "/v1/decisions/stream", keyHdr(key, "X-Forwarded-For", "198.51.100.4"), nil), 200)
	if bs, _ := l.Store.ListBouncers(ctx); len(bs) != 3 {
		t.Errorf("HEAD created a bouncer row: %d rows", len(bs))
	}
}

// ---------------------------------------------------------------------------
// GET /v1/decisions

// expiredAlert is a manual alert whose decision already ended.
func expiredAlert(value string) *models.Alert {
	a := manualAlert(value, "Ip", "1h", "cscli")
	past := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
	a.StartAt, a.StopAt = past, past
	return a
}

func TestGetDecisions(t *testing.T) {
	l := startLAPI(t, nil)
	key := l.addBouncer("fw")

	r := l.send("GET", "/v1/decisions", keyHdr(key), nil)
	if r.Status != 200 || string(r.Body) != "null" {
		t.Fatalf("empty GET /v1/decisions = %s, want 200 null", r)
	}

	captcha := manualAlert("192.0.2.1", "Ip", "4h", "cscli")
	captcha.Decisions[0].Type = "captcha"
	sim := manualAlert("192.0.2.99", "Ip", "4h", "cscli")
	sim.Simulated = true
	short := manualAlert("192.0.2.1", "Ip", "1h", "cscli")
	l.push(
		manualAlert("192.0.2.1", "Ip", "4h", "cscli"),
		manualAlert("192.0.2.0/24", "Range", "4h", "cscli"),
		captcha,
		agentAlert("198.51.100.9", "crowdsecurity/ssh-bf"),
		manualAlert("2001:db8::5", "Ip", "4h", "cscli"),
		manualAlert("2001:db8::/64", "Range", "4h", "cscli"),
		manualAlert("FR", "Country", "4h", "cscli"),
		sim,
		expiredAlert("192.0.2.50"),
		short,
	)

	// exact wire shape and key order, no uuid
	r = l.send("GET", "/v1/decisions?value=198.51.100.9", keyHdr(key), nil)
	re := regexp.MustCompile(`^\[\{"duration":"(-?[0-9hms.]+)","id":[1-9][0-9]*,"origin":"crowdsec","scenario":"crowdsecurity/ssh-bf","scope":"Ip","type":"ban","value":"198\.51\.100\.9"\}\]$`)
	mm := re.FindSubmatch(r.Body)
	if r.Status != 200 || mm == nil {
		t.Errorf("GET /v1/decisions?value= body %q does not have upstream's exact shape", r.Body)
	} else if d := parseDur(t, string(mm[1])); !within(d, 4*time.Hour, 5*time.Second) {
		t.Errorf("profile decision remaining %s, want ~4h", d)
	}

	all := []string{"Country:FR:ban", "Ip:192.0.2.1:ban", "Ip:192.0.2.1:ban", "Ip:192.0.2.1:captcha", "Ip:198.51.100.9:ban",
		"Ip:2001:db8::5:ban", "Range:192.0.2.0/24:ban", "Range:2001:db8::/64:ban"}
	cases := []struct {
		query string
		want  []string
	}{
		{"", all},
		{"?foo=bar&community_pull=false", all},
		{"?scope=ip", []string{"Ip:192.0.2.1:ban", "Ip:192.0.2.1:ban", "Ip:192.0.2.1:captcha", "Ip:198.51.100.9:ban", "Ip:2001:db8::5:ban"}},
		{"?scopes=RANGE", []string{"Range:192.0.2.0/24:ban", "Range:2001:db8::/64:ban"}},
		{"?scopes=range,country", []string{"Country:FR:ban", "Range:192.0.2.0/24:ban", "Range:2001:db8::/64:ban"}},
		{"?value=192.0.2.1", []string{"Ip:192.0.2.1:ban", "Ip:192.0.2.1:ban", "Ip:192.0.2.1:captcha"}},
		{"?value=192.0.2.1&type=captcha", []string{"Ip:192.0.2.1:captcha"}},
		{"?type=ban&scope=country", []string{"Country:FR:ban"}},
		{"?origins=crowdsec", []string{"Ip:198.51.100.9:ban"}},
		{"?origins=lists,crowdsec", []string{"Ip:198.51.100.9:ban"}},
		{"?origins=CAPI", nil},
		{"?scenarios_containing=SSH", []string{"Ip:198.51.100.9:ban"}},
		{"?scenarios_not_containing=manual", []string{"Ip:198.51.100.9:ban"}},
		{"?ip=192.0.2.1", []string{"Ip:192.0.2.1:ban", "Ip:192.0.2.1:ban", "Ip:192.0.2.1:captcha", "Range:192.0.2.0/24:ban"}},
		{"?ip=192.0.2.7", []string{"Range:192.0.2.0/24:ban"}},
		{"?ip=192.0.2.7&contains=true", []string{"Range:192.0.2.0/24:ban"}},
		{"?ip=192.0.2.7&contains=false", nil},
		{"?ip=192.0.2.50", []string{"Range:192.0.2.0/24:ban"}}, // the Ip one expired
		{"?range=192.0.2.0/24&contains=false", []string{"Ip:192.0.2.1:ban", "Ip:192.0.2.1:ban", "Ip:192.0.2.1:captcha", "Range:192.0.2.0/24:ban"}},
		{"?range=192.0.2.0/25", []string{"Range:192.0.2.0/24:ban"}},
		{"?range=192.0.0.0/16&contains=true", nil},
		{"?range=0.0.0.0/0&contains=false", []string{"Ip:192.0.2.1:ban", "Ip:192.0.2.1:ban", "Ip:192.0.2.1:captcha", "Ip:198.51.100.9:ban", "Range:192.0.2.0/24:ban"}},
		{"?ip=2001:db8::5", []string{"Ip:2001:db8::5:ban", "Range:2001:db8::/64:ban"}},
		{"?ip=2001:db8::ffff:1", []string{"Range:2001:db8::/64:ban"}},
		{"?ip=2001:db8:0:1::1", nil},
		{"?range=2001:db8::/48&contains=false", []string{"Ip:2001:db8::5:ban", "Range:2001:db8::/64:ban"}},
		{"?range=2001:db8::/96", []string{"Range:2001:db8::/64:ban"}},
		{"?range=::/0&contains=false", []string{"Ip:2001:db8::5:ban", "Range:2001:db8::/64:ban"}},
		{"?simulated=true&value=192.0.2.99", nil}, // simulated decisions never reach a bouncer
		{"?simulated=false&value=192.0.2.99", nil},
		{"?value=192.0.2.99", nil},
		{"?value=nothing", nil},
		{"?value=" + url.QueryEscape("' OR 1=1 --"), nil},
	}
	for _, c := range cases {
		r, ds := l.getDecisions(key, c.query)
		if r.Status != 200 {
			t.Errorf("GET /v1/decisions%s: %s", c.query, r)
			continue
		}
		if c.want == nil {
			if string(r.Body) != "null" {
				t.Errorf("GET /v1/decisions%s = %q, want null", c.query, truncForLog(r.Body))
			}
			continue
		}
		if got := decisionKeys(ds); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("GET /v1/decisions%s = %v, want %v", c.query, got, c.want)
		}
	}

	// field types and remaining durations
	r = l.send("GET", "/v1/decisions?value=192.0.2.1&type=ban", keyHdr(key), nil)
	arr, ok := decodeJSON(t, r.Body).([]any)
	if !ok || len(arr) != 2 {
		t.Fatalf("value=192.0.2.1&type=ban: %q", r.Body)
	}
	var durs []time.Duration
	var lastID int64
	for _, e := range arr {
		o := e.(map[string]any)
		id, ok := o["id"].(json.Number)
		if !ok {
			t.Errorf("id %#v is not a number", o["id"])
		}
		n, _ := id.Int64()
		if n <= lastID {
			t.Errorf("ids not ascending: %d after %d", n, lastID)
		}
		lastID = n
		for _, k := range []string{"uuid", "until", "simulated"} {
			if _, has := o[k]; has {
				t.Errorf("GET /v1/decisions element carries %q: %v", k, o)
			}
		}
		durs = append(durs, parseDur(t, o["duration"].(string)))
	}
	if !within(durs[0], 4*time.Hour, 5*time.Second) || !within(durs[1], time.Hour, 5*time.Second) {
		t.Errorf("durations %v, want ~4h and ~1h", durs)
	}
	// limit
	if _, ds := l.getDecisions(key, "?limit=2"); len(ds) != 2 {
		t.Errorf("limit=2 gave %d decisions", len(ds))
	}

	// errors are 500 with a message
	expectMsg(t, "invalid ip", l.send("GET", "/v1/decisions?ip=1.2.3", keyHdr(key), nil), 500,
		"unable to convert '1.2.3' to int: invalid ip address '1.2.3': invalid ip address / range")
	expectMsgPrefix(t, "invalid range", l.send("GET", "/v1/decisions?range=1.2.3.0/33", keyHdr(key), nil), 500, "unable to convert '1.2.3.0/33' to int")
	expectMsg(t, "invalid contains", l.send("GET", "/v1/decisions?ip=1.2.3.4&contains=maybe", keyHdr(key), nil), 500, "")
	expectMsg(t, "invalid limit", l.send("GET", "/v1/decisions?limit=ten", keyHdr(key), nil), 500, "")

	// HEAD: 200, empty body
	r = l.send("HEAD", "/v1/decisions?ip=192.0.2.1", keyHdr(key), nil)
	expectEmpty(t, "HEAD /v1/decisions", r, 200)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("HEAD /v1/decisions Content-Type %q, want text/plain", ct)
	}
}

// ---------------------------------------------------------------------------
// POST /v1/alerts

func TestPostAlertsShapes(t *testing.T) {
	l := startLAPI(t, nil)
	key := l.addBouncer("fw")
	ctx := context.Background()

	// ids are strings
	r := l.pushRaw([]*models.Alert{manualAlert("192.0.2.1", "Ip", "4h", "cscli"), agentAlert("192.0.2.2", "x/y")})
	if r.Status != 201 || !regexp.MustCompile(`^\["[1-9][0-9]*","[1-9][0-9]*"\]\s*$`).Match(r.Body) {
		t.Fatalf("POST /v1/alerts = %s, want 201 [\"id\",\"id\"]", r)
	}
	m, _ := l.Store.GetMachine(ctx, testMachine)
	if m.LastPush == nil {
		t.Errorf("last_push not set after a push")
	}

	// gzip request bodies
	body, _ := json.Marshal([]*models.Alert{manualAlert("192.0.2.3", "Ip", "4h", "cscli")})
	r = l.pushRaw(gzipBytes(t, body), "Content-Encoding", "gzip")
	if r.Status != 201 {
		t.Errorf("gzipped push: %s", r)
	}
	if _, ds := l.getDecisions(key, "?ip=192.0.2.3"); len(ds) != 1 {
		t.Errorf("gzipped push stored %d decisions", len(ds))
	}
	// an empty array is fine
	if r := l.pushRaw([]byte(`[]`)); r.Status != 201 || strings.TrimSpace(string(r.Body)) != "[]" {
		t.Errorf("empty array: %s", r)
	}

	// more than 50 MiB once decompressed: 413, without sending 50 MiB
	before := l.count("alerts")
	chunk := bytes.Repeat([]byte(" "), 1<<20)
	chunks := [][]byte{[]byte("[")}
	for i := 0; i < 51; i++ {
		chunks = append(chunks, chunk)
	}
	chunks = append(chunks, []byte("]"))
	big := gzipBytes(t, chunks...)
	if len(big) > 1<<20 {
		t.Fatalf("compressed bomb is %d bytes", len(big))
	}
	r = l.pushRaw(big, "Content-Encoding", "gzip")
	if r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("51 MiB body: %s, want 413", r)
	}
	// just under the limit is accepted
	chunks = [][]byte{[]byte("[")}
	for i := 0; i < 49; i++ {
		chunks = append(chunks, chunk)
	}
	chunks = append(chunks, []byte("]"))
	if r := l.pushRaw(gzipBytes(t, chunks...), "Content-Encoding", "gzip"); r.Status != 201 {
		t.Errorf("49 MiB body: %s, want 201", r)
	}
	if n := l.count("alerts"); n != before {
		t.Errorf("oversized pushes stored alerts: %d -> %d", before, n)
	}

	// bind errors: 400
	for name, b := range map[string][]byte{
		"object":        []byte(`{"scenario":"x"}`),
		"string":        []byte(`"x"`),
		"number":        []byte(`42`),
		"empty":         []byte(``),
		"truncated":     []byte(`[{"scenario":`),
		"garbage gzip":  nil, // sent below
		"array of nums": []byte(`[1,2]`),
	} {
		if b == nil {
			continue
		}
		expectMsg(t, "bind error "+name, l.pushRaw(b), 400, "")
	}
	expectMsgPrefix(t, "garbage gzip", l.pushRaw([]byte("this is not gzip"), "Content-Encoding", "gzip"), 400, "invalid gzip body")
}

func TestPostAlertsValidation(t *testing.T) {
	l := startLAPI(t, nil)
	l.login()

	for _, field := range []string{"scenario", "scenario_hash", "scenario_version", "message", "events_count", "start_at", "stop_at",
		"capacity", "leakspeed", "simulated", "events", "source"} {
		for _, mode := range []string{"missing", "null"} {
			a := rawAlert(t, agentAlert("192.0.2.1", "x/y"))
			if mode == "missing" {
				delete(a, field)
			} else {
				a[field] = nil
			}
			r := l.pushRaw([]any{a})
			expectMsg(t, mode+" "+field, r, 500, "validation failure list:\n0."+field+" in body is required")
		}
	}
	for _, field := range []string{"scope", "value"} {
		a := rawAlert(t, agentAlert("192.0.2.1", "x/y"))
		delete(a["source"].(map[string]any), field)
		expectMsg(t, "missing source."+field, l.pushRaw([]any{a}), 500, "validation failure list:\n0.source."+field+" in body is required")
	}
	// empty strings and empty events are fine (cscli sends them)
	a := rawAlert(t, manualAlert("192.0.2.1", "Ip", "4h", "cscli"))
	a["scenario_hash"], a["scenario_version"], a["leakspeed"] = "", "", ""
	if r := l.pushRaw([]any{a}); r.Status != 201 {
		t.Errorf("alert with empty strings: %s", r)
	}
	l.expectCounts("after the valid one", 1, 1)

	// A batch with one bad alert writes nothing, whatever its position.
	good := rawAlert(t, manualAlert("192.0.2.2", "Ip", "4h", "cscli"))
	bad := rawAlert(t, agentAlert("192.0.2.3", "x/y"))
	delete(bad, "scenario")
	r := l.pushRaw([]any{good, good, bad})
	expectMsg(t, "batch with an invalid alert", r, 500, "validation failure list:\n2.scenario in body is required")
	l.expectCounts("after the refused batch", 1, 1)
	two := rawAlert(t, agentAlert("192.0.2.3", "x/y"))
	delete(two, "message")
	delete(two, "capacity")
	r = l.pushRaw([]any{two, good})
	expectMsg(t, "two problems", r, 500, "validation failure list:\n0.message in body is required\n0.capacity in body is required")

	// invalid decision durations: 500 and nothing written
	for _, dur := range []string{"forever", "", "4x", "1.5d", "-"} {
		badDur := manualAlert("192.0.2.4", "Ip", dur, "cscli")
		r := l.pushRaw([]*models.Alert{manualAlert("192.0.2.5", "Ip", "4h", "cscli"), badDur})
		expectMsg(t, "duration "+dur, r, 500, "")
	}
	l.expectCounts("after invalid durations", 1, 1)
	if n := l.countEvents() + l.count("alert_meta"); n != 0 {
		t.Errorf("%d events/meta rows left by refused batches", n)
	}
	// null entries inside lists
	a = rawAlert(t, manualAlert("192.0.2.6", "Ip", "4h", "cscli"))
	a["decisions"] = []any{nil}
	expectMsgPrefix(t, "null decision", l.pushRaw([]any{a}), 500, "validation failure list:\n")
	a = rawAlert(t, agentAlert("192.0.2.6", "x/y"))
	a["events"] = []any{nil}
	expectMsgPrefix(t, "null event", l.pushRaw([]any{a}), 500, "validation failure list:\n")
	expectMsgPrefix(t, "null alert", l.pushRaw([]byte(`[null]`)), 500, "validation failure list:\n")
	l.expectCounts("after null entries", 1, 1)
}

func TestPostAlertsDecisions(t *testing.T) {
	l := startLAPI(t, nil)
	key := l.addBouncer("fw")

	// one invalid IP drops only that decision
	a := manualAlert("192.0.2.1", "Ip", "4h", "cscli")
	a.Decisions = append(a.Decisions,
		&models.Decision{Duration: "4h", Origin: "cscli", Scenario: "s", Scope: "Ip", Type: "ban", Value: "192.0.2.400"},
		&models.Decision{Duration: "4h", Origin: "cscli", Scenario: "s", Scope: "Range", Type: "ban", Value: "not-a-range"},
		&models.Decision{Duration: "4h", Origin: "cscli", Scenario: "s", Scope: "Ip", Type: "ban", Value: "192.0.2.2"})
	ids := l.push(a)
	if len(ids) != 1 {
		t.Fatalf("ids %v", ids)
	}
	if _, ds := l.getDecisions(key, ""); fmt.Sprint(decisionKeys(ds)) != "[Ip:192.0.2.1:ban Ip:192.0.2.2:ban]" {
		t.Errorf("decisions = %v, want the two valid ones", decisionKeys(ds))
	}
	// every decision invalid: the alert goes too
	if ids := l.push(manualAlert("300.1.1.1", "Ip", "4h", "cscli")); len(ids) != 0 {
		t.Errorf("alert with only invalid decisions kept: %v", ids)
	}
	l.expectCounts("after invalid-only alert", 1, 2)

	// until = stop_at + duration
	past := manualAlert("192.0.2.10", "Ip", "2h", "cscli")
	stop := time.Now().Add(-time.Hour)
	past.StartAt, past.StopAt = stop.Add(-time.Minute).UTC().Format(time.RFC3339), stop.UTC().Format(time.RFC3339)
	l.push(past)
	_, ds := l.getDecisions(key, "?ip=192.0.2.10")
	if len(ds) != 1 || !within(parseDur(t, ds[0].Duration), time.Hour, 5*time.Second) {
		t.Errorf("decision with stop_at 1h ago and 2h duration = %+v, want ~1h left", ds)
	}
	// offsets and fractions in stop_at; day durations
	off := manualAlert("192.0.2.11", "Ip", "1d12h", "cscli")
	off.StopAt = time.Now().In(time.FixedZone("x", 5*3600+1800)).Format("2006-01-02T15:04:05.999999999-07:00")
	l.push(off)
	if _, ds := l.getDecisions(key, "?ip=192.0.2.11"); len(ds) != 1 || !within(parseDur(t, ds[0].Duration), 36*time.Hour, 5*time.Second) {
		t.Errorf("1d12h decision = %+v, want ~36h", ds)
	}
	// an unparsable stop_at counts as now
	garbage := manualAlert("192.0.2.12", "Ip", "3h", "cscli")
	garbage.StopAt = "yesterday"
	l.push(garbage)
	if _, ds := l.getDecisions(key, "?ip=192.0.2.12"); len(ds) != 1 || !within(parseDur(t, ds[0].Duration), 3*time.Hour, 5*time.Second) {
		t.Errorf("decision with garbage stop_at = %+v, want ~3h", ds)
	}

	// scope normalisation, source and decisions
	for _, c := range []struct{ in, want, value string }{
		{"ip", "Ip", "192.0.2.20"}, {"IP", "Ip", "192.0.2.21"}, {"range", "Range", "192.0.3.0/24"}, {"RANGE", "Range", "192.0.4.0/24"},
		{"as", "AS", "64500"}, {"country", "Country", "DE"}, {"Country", "Country", "IT"}, {"username", "username", "root"}, {"UserName", "UserName", "admin"},
	} {
		ids := l.push(manualAlert(c.value, c.in, "4h", "cscli"))
		if len(ids) != 1 {
			t.Errorf("scope %s: ids %v", c.in, ids)
			continue
		}
		r := l.send("GET", "/v1/alerts/"+ids[0], l.jwtHdr(), nil)
		var al models.Alert
		if err := json.Unmarshal(r.Body, &al); err != nil || r.Status != 200 {
			t.Fatalf("get alert: %s", r)
		}
		if al.Source.Scope != c.want || len(al.Decisions) != 1 || al.Decisions[0].Scope != c.want {
			t.Errorf("scope %q stored as source %q, decision %+v; want %q", c.in, al.Source.Scope, al.Decisions, c.want)
		}
	}
	if _, ds := l.getDecisions(key, "?scopes=ip&value=192.0.2.21"); len(ds) != 1 {
		t.Errorf("normalised Ip decision not found with scopes=ip")
	}

	// decisions inherit alert.simulated; input ids, uuids and until are ignored
	sim := manualAlert("192.0.2.30", "Ip", "4h", "cscli")
	sim.Simulated = true
	sim.ID, sim.UUID, sim.MachineID, sim.CreatedAt = 999999, "fixed-uuid", "evil", "2000-01-01T00:00:00Z"
	sim.Decisions[0].ID, sim.Decisions[0].UUID, sim.Decisions[0].Until = 777777, "dec-uuid", "2000-01-01T00:00:00Z"
	ids = l.push(sim)
	if ids[0] == "999999" {
		t.Errorf("client-chosen alert id used")
	}
	_, as := l.getAlerts("?value=192.0.2.30")
	if len(as) != 1 {
		t.Fatalf("simulated alert not listed")
	}
	got := as[0]
	if got.MachineID != testMachine || got.UUID == "fixed-uuid" || got.ID == 999999 || strings.HasPrefix(got.CreatedAt, "2000") {
		t.Errorf("client-supplied output fields kept: %+v", got)
	}
	if len(got.Decisions) != 1 || got.Decisions[0].Simulated == nil || !*got.Decisions[0].Simulated || got.Decisions[0].ID == 777777 {
		t.Errorf("simulated alert decisions = %+v", got.Decisions)
	}
	if _, ds := l.getDecisions(key, "?ip=192.0.2.30"); ds != nil {
		t.Errorf("simulated decision served by default")
	}
	// not even when a bouncer asks for them (upstream would serve them)
	if _, ds := l.getDecisions(key, "?ip=192.0.2.30&simulated=true"); ds != nil {
		t.Errorf("simulated decision served with simulated=true")
	}
	for _, d := range l.stream(key, "&startup=true&scopes=ip&simulated=true").New {
		if d.Value == "192.0.2.30" {
			t.Errorf("simulated decision in the stream with simulated=true")
		}
	}
	// a decision marked simulated in a real alert is simulated too
	dsim := manualAlert("192.0.2.32", "Ip", "4h", "cscli")
	yes := true
	dsim.Decisions[0].Simulated = &yes
	l.push(dsim)
	if _, ds := l.getDecisions(key, "?ip=192.0.2.32"); ds != nil {
		t.Errorf("decision marked simulated served to a bouncer")
	}
	// the stream carries a fresh uuid, not the client's
	nsim := manualAlert("192.0.2.31", "Ip", "4h", "cscli")
	nsim.Decisions[0].UUID = "dec-uuid"
	l.push(nsim)
	st := l.stream(key, "&startup=true&scopes=ip")
	found := false
	for _, d := range st.New {
		found = found || d.Value == "192.0.2.31"
		if d.UUID == "dec-uuid" {
			t.Errorf("client-supplied decision uuid kept")
		}
	}
	if !found {
		t.Errorf("decision of 192.0.2.31 missing from the stream")
	}

	// remediation:false: stored, no decision
	noRem := agentAlert("192.0.2.40", "crowdsecurity/http-probing")
	noRem.Remediation = false
	if ids := l.push(noRem); len(ids) != 1 {
		t.Errorf("remediation:false alert: ids %v", ids)
	}
	if _, ds := l.getDecisions(key, "?ip=192.0.2.40"); ds != nil {
		t.Errorf("remediation:false alert produced decisions %v", decisionKeys(ds))
	}
	// Range source through the default profile
	rng := agentAlert("198.51.100.0/24", "x/range")
	rng.Source = &models.Source{Scope: "range", Value: "198.51.100.0/24"}
	l.push(rng)
	if _, ds := l.getDecisions(key, "?ip=198.51.100.77"); len(ds) != 1 || ds[0].Scope != "Range" || ds[0].Origin != "crowdsec" || ds[0].Scenario != "x/range" {
		t.Errorf("range profile decision = %v", decisionKeys(ds))
	}
}

// TestPostAlertsDecisionWithoutType: a decision no bouncer can apply is
// dropped like one on an invalid address, never stored nor streamed.
func TestPostAlertsDecisionWithoutType(t *testing.T) {
	l := startLAPI(t, nil)
	key := l.addBouncer("fw")
	a := manualAlert("192.0.2.1", "Ip", "4h", "cscli")
	a.Decisions = append(a.Decisions,
		&models.Decision{Duration: "4h", Origin: "cscli", Scenario: "s", Scope: "Ip", Type: "", Value: "192.0.2.2"},
		&models.Decision{Duration: "4h", Origin: "cscli", Scenario: "s", Scope: "Ip", Type: " \t", Value: "192.0.2.3"},
		&models.Decision{Duration: "4h", Origin: "cscli", Scenario: "s", Scope: "username", Type: "", Value: "bob"})
	if ids := l.push(a); len(ids) != 1 {
		t.Fatalf("ids %v", ids)
	}
	if _, ds := l.getDecisions(key, "?scopes=ip,username"); fmt.Sprint(decisionKeys(ds)) != "[Ip:192.0.2.1:ban]" {
		t.Errorf("decisions = %v, want only the one with a type", decisionKeys(ds))
	}
	for _, d := range l.stream(key, "&startup=true&scopes=ip,range,username").New {
		if strings.TrimSpace(d.Type) == "" {
			t.Errorf("streamed a decision without a type: %+v", d)
		}
	}
	// every decision without a type: the alert goes too
	only := manualAlert("192.0.2.4", "Ip", "4h", "cscli")
	only.Decisions[0].Type = ""
	if ids := l.push(only); len(ids) != 0 {
		t.Errorf("alert whose only decision has no type kept: %v", ids)
	}
	l.expectCounts("after typeless decisions", 1, 1)
}

func TestPostAlertsAllowlist(t *testing.T) {
	l := startLAPI(t, nil)
	key := l.addBouncer("fw")
	ctx := context.Background()
	if err := l.Store.CreateAllowlist(ctx, "office", "office network"); err != nil {
		t.Fatal(err)
	}
	if err := l.Store.AddAllowlistItems(ctx, "office", []string{"10.0.0.0/8", "2001:db8:a::/48"}, "lan", nil); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	if err := l.Store.AddAllowlistItems(ctx, "office", []string{"192.0.2.66"}, "expired entry", &past); err != nil {
		t.Fatal(err)
	}

	// agent alert from an allowlisted source: silently skipped
	r := l.pushRaw([]*models.Alert{agentAlert("10.0.0.5", "crowdsecurity/ssh-bf")})
	if r.Status != 201 || strings.TrimSpace(string(r.Body)) != "[]" {
		t.Errorf("allowlisted agent alert: %s, want 201 []", r)
	}
	r = l.pushRaw([]*models.Alert{agentAlert("2001:db8:a::1", "crowdsecurity/ssh-bf")})
	if r.Status != 201 || strings.TrimSpace(string(r.Body)) != "[]" {
		t.Errorf("allowlisted IPv6 agent alert: %s, want 201 []", r)
	}
	rng := agentAlert("10.1.0.0/16", "x/range")
	rng.Source = &models.Source{Scope: "Range", Value: "10.1.0.0/16"}
	if ids := l.push(rng); len(ids) != 0 {
		t.Errorf("allowlisted range source kept: %v", ids)
	}
	l.expectCounts("after allowlisted alerts", 0, 0)
	// mixed batch: only the allowlisted one is skipped
	ids := l.push(agentAlert("10.0.0.6", "crowdsecurity/ssh-bf"), agentAlert("192.0.2.5", "crowdsecurity/ssh-bf"))
	if len(ids) != 1 {
		t.Errorf("mixed batch ids %v, want one", ids)
	}
	// an expired allowlist entry does not protect
	if ids := l.push(agentAlert("192.0.2.66", "crowdsecurity/ssh-bf")); len(ids) != 1 {
		t.Errorf("expired allowlist entry still protects: %v", ids)
	}

	// an operator's cscli ban is forced through
	if ids := l.push(manualAlert("10.0.0.7", "Ip", "4h", "cscli")); len(ids) != 1 {
		t.Errorf("cscli decision on an allowlisted IP refused: %v", ids)
	}
	if _, ds := l.getDecisions(key, "?ip=10.0.0.7"); len(ds) != 1 {
		t.Errorf("cscli decision on an allowlisted IP not served")
	}
	// alerts carrying decisions of another origin/kind are not
	other := manualAlert("10.0.0.8", "Ip", "4h", "crowdsec")
	other.Kind = "crowdsec"
	if ids := l.push(other); len(ids) != 0 {
		t.Errorf("crowdsec decision on an allowlisted IP accepted: %v", ids)
	}
	wide := manualAlert("10.0.0.0/7", "Range", "4h", "lists")
	wide.Kind = "capi"
	if ids := l.push(wide); len(ids) != 0 {
		t.Errorf("range overlapping an allowlist accepted: %v", ids)
	}
	if _, ds := l.getDecisions(key, "?range=10.0.0.0/7&contains=false"); len(ds) != 1 {
		t.Errorf("decisions in 10/7 = %v, want only the forced cscli one", decisionKeys(ds))
	}
}

// ---------------------------------------------------------------------------
// GET /v1/alerts

func TestGetAlerts(t *testing.T) {
	l := startLAPI(t, nil)
	r := l.send("GET", "/v1/alerts", l.jwtHdr(), nil)
	if r.Status != 200 || string(r.Body) != "null" {
		t.Fatalf("empty GET /v1/alerts = %s, want null", r)
	}

	manual := manualAlert("192.0.2.1", "Ip", "4h", "cscli")
	agent := agentAlert("198.51.100.9", "crowdsecurity/ssh-bf")
	agent.Events = []*models.Event{{Timestamp: "2020-10-02T17:09:08Z", Meta: []models.Meta{{Key: "source_ip", Value: "198.51.100.9"}}}}
	captcha := manualAlert("203.0.113.0/24", "Range", "4h", "cscli")
	captcha.Decisions[0].Type = "captcha"
	noRem := agentAlert("198.51.100.10", "crowdsecurity/http-probing")
	noRem.Remediation = false
	sim := manualAlert("192.0.2.77", "Ip", "4h", "cscli")
	sim.Simulated = true
	capi := manualAlert("192.0.2.88", "Ip", "4h", "CAPI")
	capi.Kind = "capi"
	capi.Source.Scope = "crowdsecurity/community-blocklist"
	expired := expiredAlert("192.0.2.99")
	expired.Kind = "crowdsec"
	expired.Scenario = "crowdsecurity/old"

	ids := map[string]string{}
	for _, c := range []struct {
		name string
		a    *models.Alert
	}{{"manual", manual}, {"agent", agent}, {"captcha", captcha}, {"norem", noRem}, {"sim", sim}, {"capi", capi}, {"expired", expired}} {
		ids[c.name] = l.push(c.a)[0]
	}
	names := map[string]string{}
	for n, id := range ids {
		names[id] = n
	}
	gotNames := func(as []*models.Alert) []string {
		var out []string
		for _, a := range as {
			out = append(out, names[fmt.Sprint(a.ID)])
		}
		sort.Strings(out)
		return out
	}

	cases := []struct {
		query string
		want  []string
	}{
		{"", []string{"agent", "capi", "captcha", "expired", "manual", "norem", "sim"}},
		{"?limit=0", []string{"agent", "capi", "captcha", "expired", "manual", "norem", "sim"}},
		{"?scope=ip", []string{"agent", "expired", "manual", "norem", "sim"}},
		{"?scope=Range", []string{"captcha"}},
		{"?value=192.0.2.1", []string{"manual"}},
		{"?scenario=crowdsecurity/ssh-bf", []string{"agent"}},
		// matches the alert scenario or a decision's scenario (expired has only the latter)
		{"?scenario=" + url.QueryEscape("manual 'ban' from 'test'"), []string{"capi", "captcha", "expired", "manual", "sim"}},
		{"?ip=203.0.113.9", []string{"captcha"}},
		{"?ip=192.0.2.1", []string{"manual"}},
		{"?range=203.0.113.0/25", []string{"captcha"}},
		{"?range=203.0.113.0/25&contains=false", nil},
		{"?range=203.0.0.0/16&contains=false", []string{"captcha"}},
		{"?range=192.0.2.0/24&contains=false", []string{"capi", "expired", "manual", "sim"}},
		{"?since=1h", []string{"agent", "capi", "captcha", "manual", "norem", "sim"}},
		{"?until=1h", []string{"expired"}},
		{"?since=1d", []string{"agent", "capi", "captcha", "expired", "manual", "norem", "sim"}},
		{"?created_before=1h", nil},
		{"?decision_type=captcha", []string{"captcha"}},
		{"?decision_type=ban", []string{"agent", "capi", "expired", "manual", "sim"}},
		{"?origin=CAPI", []string{"capi"}},
		{"?origin=CAPI&include_capi=false", []string{"capi"}},
		{"?origin=crowdsec", []string{"agent"}},
		{"?include_capi=false", []string{"agent", "captcha", "expired", "manual", "norem", "sim"}},
		{"?include_capi=true", []string{"agent", "capi", "captcha", "expired", "manual", "norem", "sim"}},
		{"?has_active_decision=true", []string{"agent", "capi", "captcha", "manual", "sim"}},
		{"?has_active_decision=false", []string{"norem"}},
		{"?has_active_decision=true&include_capi=false&simulated=false&limit=100", []string{"agent", "captcha", "manual"}},
		{"?simulated=false", []string{"agent", "capi", "captcha", "expired", "manual", "norem"}},
		{"?simulated=true", []string{"agent", "capi", "captcha", "expired", "manual", "norem", "sim"}},
		{"?kind=cscli", []string{"captcha", "manual", "sim"}},
		{"?kind=crowdsec", []string{"agent", "expired", "norem"}},
		{"?value=" + url.QueryEscape("' OR '1'='1"), nil},
	}
	for _, c := range cases {
		r, as := l.getAlerts(c.query)
		if r.Status != 200 {
			t.Errorf("GET /v1/alerts%s: %s", c.query, r)
			continue
		}
		if c.want == nil {
			if string(r.Body) != "null" {
				t.Errorf("GET /v1/alerts%s = %v, want null", c.query, gotNames(as))
			}
			continue
		}
		if got := gotNames(as); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("GET /v1/alerts%s = %v, want %v", c.query, got, c.want)
		}
	}

	// order and limit
	_, as := l.getAlerts("?limit=2")
	if len(as) != 2 || names[fmt.Sprint(as[0].ID)] != "expired" || names[fmt.Sprint(as[1].ID)] != "capi" {
		t.Errorf("limit=2 = %v, want the two newest, newest first", gotNames(as))
	}
	_, as = l.getAlerts("?limit=2&sort=ASC")
	if len(as) != 2 || names[fmt.Sprint(as[0].ID)] != "manual" || names[fmt.Sprint(as[1].ID)] != "agent" {
		t.Errorf("limit=2&sort=ASC = %v, want the two oldest, oldest first", gotNames(as))
	}
	_, as = l.getAlerts("?with_decisions=false&value=192.0.2.1")
	if len(as) != 1 || as[0].Decisions != nil {
		t.Errorf("with_decisions=false still returns decisions")
	}

	// errors: 500
	expectMsg(t, "unknown filter", l.send("GET", "/v1/alerts?x=v", l.jwtHdr(), nil), 500, "filter parameter 'x' is unknown (=v): invalid filter")
	expectMsg(t, "alert_source", l.send("GET", "/v1/alerts?alert_source=foo", l.jwtHdr(), nil), 500, "filter parameter 'alert_source' is unknown (=foo): invalid filter")
	for _, q := range []string{"has_active_decision=maybe", "contains=maybe", "ip=1.2.3", "since=yesterday", "limit=ten", "include_capi=x"} {
		expectMsg(t, q, l.send("GET", "/v1/alerts?"+q, l.jwtHdr(), nil), 500, "")
	}
	expectMsg(t, "bad ip message", l.send("GET", "/v1/alerts?ip=1.2.3", l.jwtHdr(), nil), 500,
		"unable to convert '1.2.3' to int: invalid ip address '1.2.3': invalid ip address / range")
	// HEAD
	expectEmpty(t, "HEAD /v1/alerts", l.send("HEAD", "/v1/alerts", l.jwtHdr(), nil), 200)
	expectAuth401(t, "GET /v1/alerts without token", l.send("GET", "/v1/alerts", nil, nil), "")

	// shape of one alert
	r = l.send("GET", "/v1/alerts/"+ids["agent"], l.jwtHdr(), nil)
	if r.Status != 200 {
		t.Fatalf("GET alert: %s", r)
	}
	o := decodeObj(t, r.Body)
	if id, ok := o["id"].(json.Number); !ok || id.String() != ids["agent"] {
		t.Errorf("alert id %#v, want the number %s", o["id"], ids["agent"])
	}
	if o["machine_id"] != testMachine {
		t.Errorf("machine_id %v", o["machine_id"])
	}
	if _, ok := o["events_count"].(json.Number); !ok {
		t.Errorf("events_count %#v is not a number", o["events_count"])
	}
	if v, ok := o["simulated"].(bool); !ok || v {
		t.Errorf("simulated %#v", o["simulated"])
	}
	if v, has := o["labels"]; !has || v != nil {
		t.Errorf("labels = %#v, want null", v)
	}
	for _, k := range []string{"created_at", "start_at", "stop_at"} {
		s, _ := o[k].(string)
		if _, err := time.Parse(time.RFC3339, s); err != nil || strings.Contains(s, ".") {
			t.Errorf("%s = %q, want RFC3339 with whole seconds", k, s)
		}
	}
	evs, _ := o["events"].([]any)
	if len(evs) != 1 {
		t.Fatalf("events %v", o["events"])
	}
	if ts := evs[0].(map[string]any)["timestamp"]; ts != "2020-10-02 17:09:08 +0000 UTC" {
		t.Errorf("event timestamp %q, want Go time.String() form", ts)
	}
	src := o["source"].(map[string]any)
	if src["scope"] != "Ip" || src["value"] != "198.51.100.9" || src["ip"] != "198.51.100.9" {
		t.Errorf("source = %v", src)
	}
	decs, _ := o["decisions"].([]any)
	if len(decs) != 1 {
		t.Fatalf("decisions %v", o["decisions"])
	}
	d := decs[0].(map[string]any)
	if _, ok := d["id"].(json.Number); !ok {
		t.Errorf("decision id %#v is not a number", d["id"])
	}
	if d["simulated"] != false || d["origin"] != "crowdsec" || d["type"] != "ban" || d["scope"] != "Ip" || d["value"] != "198.51.100.9" || d["scenario"] != "crowdsecurity/ssh-bf" {
		t.Errorf("alert decision = %v", d)
	}
	for _, k := range []string{"uuid", "until"} {
		if _, has := d[k]; has {
			t.Errorf("alert decision carries %q", k)
		}
	}
	// expired decisions are listed with a negative duration
	r = l.send("GET", "/v1/alerts/"+ids["expired"], l.jwtHdr(), nil)
	var exp models.Alert
	if err := json.Unmarshal(r.Body, &exp); err != nil {
		t.Fatal(err)
	}
	if len(exp.Decisions) != 1 || !within(parseDur(t, exp.Decisions[0].Duration), -time.Hour, 5*time.Second) {
		t.Errorf("expired alert decisions = %+v, want one at about -1h", exp.Decisions)
	}
	// an alert without decisions has null decisions and [] events
	r = l.send("GET", "/v1/alerts/"+ids["norem"], l.jwtHdr(), nil)
	if o := decodeObj(t, r.Body); o["decisions"] != nil {
		t.Errorf("decision-less alert has decisions %v", o["decisions"])
	}

	// GET /v1/alerts/{id} errors
	expectMsg(t, "non-integer id", l.send("GET", "/v1/alerts/abc", l.jwtHdr(), nil), 400, "alert_id must be valid integer")
	expectMsg(t, "unknown id", l.send("GET", "/v1/alerts/424242", l.jwtHdr(), nil), 404, "object not found")
	expectEmpty(t, "HEAD one alert", l.send("HEAD", "/v1/alerts/"+ids["agent"], l.jwtHdr(), nil), 200)
	if r := l.send("HEAD", "/v1/alerts/424242", l.jwtHdr(), nil); r.Status != 404 {
		t.Errorf("HEAD unknown alert: %d", r.Status)
	}
}

func TestGetAlertsDefaultLimit(t *testing.T) {
	l := startLAPI(t, nil)
	batch := make([]*models.Alert, 0, 120)
	for i := 0; i < 120; i++ {
		a := agentAlert(fmt.Sprintf("192.0.2.%d", i), "x/y")
		a.Remediation = false
		batch = append(batch, a)
	}
	if ids := l.push(batch...); len(ids) != 120 {
		t.Fatalf("%d ids", len(ids))
	}
	for q, want := range map[string]int{"": 100, "?limit=0": 120, "?limit=7": 7, "?limit=500": 120} {
		if _, as := l.getAlerts(q); len(as) != want {
			t.Errorf("GET /v1/alerts%s: %d alerts, want %d", q, len(as), want)
		}
	}
}

// ---------------------------------------------------------------------------
// DELETE /v1/alerts

func TestDeleteAlerts(t *testing.T) {
	l := startLAPI(t, nil)
	key := l.addBouncer("fw")
	l.stream(key, "&startup=true")
	a1 := l.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"))[0]
	l.push(agentAlert("198.51.100.1", "crowdsecurity/ssh-bf"), agentAlert("198.51.100.2", "crowdsecurity/ssh-bf"))
	l.push(agentAlert("198.51.100.3", "crowdsecurity/http-probing"))
	l.stream(key, "")

	r := l.send("DELETE", "/v1/alerts?scenario=crowdsecurity/ssh-bf", l.jwtHdr(), nil)
	if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"nbDeleted":"2"}` {
		t.Errorf("delete by scenario: %s, want {\"nbDeleted\":\"2\"}", r)
	}
	if _, as := l.getAlerts("?scenario=crowdsecurity/ssh-bf"); len(as) != 0 {
		t.Errorf("deleted alerts still listed")
	}
	if n := l.countEvents(); n != 1 {
		t.Errorf("%d events left, want 1 (cascade)", n)
	}
	// Rampart: the deleted alerts' decisions end and reach bouncers.
	expectStream(t, "after alert deletion", l.stream(key, ""), nil, []string{"198.51.100.1", "198.51.100.2"})

	expectMsg(t, "alert_source refused", l.send("DELETE", "/v1/alerts?alert_source=x", l.jwtHdr(), nil), 500,
		"filter parameter 'alert_source' is unknown (=x): invalid filter")
	expectMsg(t, "sort refused on delete", l.send("DELETE", "/v1/alerts?sort=ASC", l.jwtHdr(), nil), 500, "")
	r = l.send("DELETE", "/v1/alerts?scenario=nothing&limit=1", l.jwtHdr(), nil)
	if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"nbDeleted":"0"}` {
		t.Errorf("delete with no match: %s", r)
	}

	// by id
	r = l.send("DELETE", "/v1/alerts/"+a1, l.jwtHdr(), nil)
	if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"nbDeleted":"1"}` {
		t.Errorf("delete by id: %s", r)
	}
	expectMsg(t, "delete unknown id", l.send("DELETE", "/v1/alerts/"+a1, l.jwtHdr(), nil), 500, "")
	expectMsg(t, "delete non-integer id", l.send("DELETE", "/v1/alerts/abc", l.jwtHdr(), nil), 400, "alert_id must be valid integer")
	expectAuth401(t, "delete without token", l.send("DELETE", "/v1/alerts", nil, nil), "")

	// no filter: everything
	r = l.send("DELETE", "/v1/alerts", l.jwtHdr(), nil)
	if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"nbDeleted":"1"}` {
		t.Errorf("delete all: %s", r)
	}
	if l.count("alerts") != 0 {
		t.Errorf("alerts left after delete all")
	}
	// a spoofed X-Forwarded-For is ignored without use_forwarded_for_headers
	r = l.send("DELETE", "/v1/alerts", l.jwtHdr("X-Forwarded-For", "198.51.100.7"), nil)
	if r.Status != 200 {
		t.Errorf("X-Forwarded-For honoured without use_forwarded_for_headers: %s", r)
	}
}

func TestDeleteAlertsUntrusted(t *testing.T) {
	proxied := func(c *csconfig.Config) {
		c.API.Server.UseForwardedForHeaders = true
		c.API.Server.TrustedProxies = []string{"127.0.0.1"}
	}
	l := startLAPI(t, proxied)
	id := l.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"))[0]
	xff := l.jwtHdr("X-Forwarded-For", "198.51.100.7")
	expectMsg(t, "untrusted delete all", l.send("DELETE", "/v1/alerts", xff, nil), 403, "access forbidden from this IP (198.51.100.7)")
	expectMsg(t, "untrusted delete by id", l.send("DELETE", "/v1/alerts/"+id, xff, nil), 403, "access forbidden from this IP (198.51.100.7)")
	l.expectCounts("after refused deletions", 1, 1)
	// other routes are fine from there
	if r := l.send("GET", "/v1/alerts", xff, nil); r.Status != 200 {
		t.Errorf("GET /v1/alerts from an untrusted IP: %s", r)
	}
	if r := l.send("DELETE", "/v1/decisions?ip=192.0.2.9", xff, nil); r.Status != 200 {
		t.Errorf("DELETE /v1/decisions from an untrusted IP: %s", r)
	}
	// the proxy itself (no header) is trusted
	if r := l.send("DELETE", "/v1/alerts/"+id, l.jwtHdr(), nil); r.Status != 200 {
		t.Errorf("delete from loopback behind proxy config: %s", r)
	}

	// trusted_ips makes the address trusted
	l2 := startLAPI(t, func(c *csconfig.Config) {
		proxied(c)
		c.API.Server.TrustedIPs = []string{"198.51.100.0/24"}
	})
	l2.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"))
	r := l2.send("DELETE", "/v1/alerts", l2.jwtHdr("X-Forwarded-For", "198.51.100.7"), nil)
	if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"nbDeleted":"1"}` {
		t.Errorf("delete from a trusted_ips address: %s", r)
	}
	expectMsg(t, "outside trusted_ips", l2.send("DELETE", "/v1/alerts", l2.jwtHdr("X-Forwarded-For", "203.0.113.1"), nil), 403,
		"access forbidden from this IP (203.0.113.1)")
}

// ---------------------------------------------------------------------------
// DELETE /v1/decisions

func TestDeleteDecisions(t *testing.T) {
	type setup struct {
		l   *testLAPI
		key string
	}
	seed := func(t *testing.T) setup {
		l := startLAPI(t, nil)
		key := l.addBouncer("fw")
		captcha := manualAlert("192.0.2.7", "Ip", "4h", "cscli")
		captcha.Decisions[0].Type = "captcha"
		l.push(
			manualAlert("1.2.3.4", "Ip", "4h", "cscli"),
			manualAlert("1.2.3.0/24", "Range", "4h", "cscli"),
			captcha,
			agentAlert("198.51.100.9", "crowdsecurity/ssh-bf"),
			manualAlert("2001:db8::1", "Ip", "4h", "cscli"),
			manualAlert("2001:db8::/64", "Range", "4h", "cscli"),
			expiredAlert("1.2.3.5"),
		)
		return setup{l, key}
	}
	all := []string{"Ip:1.2.3.4:ban", "Ip:192.0.2.7:captcha", "Ip:198.51.100.9:ban", "Ip:2001:db8::1:ban", "Range:1.2.3.0/24:ban", "Range:2001:db8::/64:ban"}
	without := func(drop ...string) []string {
		var out []string
	next:
		for _, k := range all {
			for _, d := range drop {
				if k == d {
					continue next
				}
			}
			out = append(out, k)
		}
		return out
	}
	cases := []struct {
		query string
		n     string
		left  []string
	}{
		{"", "6", nil},
		{"?ip=1.2.3.4", "2", without("Ip:1.2.3.4:ban", "Range:1.2.3.0/24:ban")},
		{"?ip=1.2.3.4&contains=true", "2", without("Ip:1.2.3.4:ban", "Range:1.2.3.0/24:ban")},
		{"?ip=1.2.3.4&contains=false", "1", without("Ip:1.2.3.4:ban")},
		{"?ip=1.2.3.5", "1", without("Range:1.2.3.0/24:ban")}, // the expired Ip row is not counted
		{"?range=1.2.3.0/24", "1", without("Range:1.2.3.0/24:ban")},
		{"?range=1.2.3.0/24&contains=false", "2", without("Ip:1.2.3.4:ban", "Range:1.2.3.0/24:ban")},
		{"?ip=2001:db8::1", "2", without("Ip:2001:db8::1:ban", "Range:2001:db8::/64:ban")},
		{"?range=2001:db8::/32&contains=false", "2", without("Ip:2001:db8::1:ban", "Range:2001:db8::/64:ban")},
		{"?scopes=Range", "2", without("Range:1.2.3.0/24:ban", "Range:2001:db8::/64:ban")},
		{"?scopes=range", "0", all}, // exact, not normalised
		{"?scopes=Range,Ip", "2", without("Range:1.2.3.0/24:ban", "Range:2001:db8::/64:ban")}, // first value only
		{"?value=1.2.3.4", "1", without("Ip:1.2.3.4:ban")},
		{"?type=captcha", "1", without("Ip:192.0.2.7:captcha")},
		{"?origin=crowdsec", "1", without("Ip:198.51.100.9:ban")},
		{"?scenario=crowdsecurity/ssh-bf", "1", without("Ip:198.51.100.9:ban")},
		{"?scenario=ssh", "0", all}, // exact
		{"?value=1.2.3.4&type=captcha", "0", all},
		{"?value=nothing", "0", all},
	}
	for _, c := range cases {
		t.Run("query"+c.query, func(t *testing.T) {
			s := seed(t)
			r := s.l.send("DELETE", "/v1/decisions"+c.query, s.l.jwtHdr(), nil)
			if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"nbDeleted":"`+c.n+`"}` {
				t.Errorf("DELETE /v1/decisions%s = %s, want nbDeleted %q", c.query, r, c.n)
			}
			_, ds := s.l.getDecisions(s.key, "")
			if got := decisionKeys(ds); fmt.Sprint(got) != fmt.Sprint(c.left) {
				t.Errorf("after DELETE /v1/decisions%s left %v, want %v", c.query, got, c.left)
			}
		})
	}

	t.Run("uuid and errors", func(t *testing.T) {
		s := seed(t)
		l := s.l
		st := l.stream(s.key, "&startup=true&scopes=ip,range")
		var u1, u2 string
		for _, d := range st.New {
			switch d.Value {
			case "1.2.3.4":
				u1 = d.UUID
			case "198.51.100.9":
				u2 = d.UUID
			}
		}
		if u1 == "" || u2 == "" {
			t.Fatalf("no uuids in the stream: %+v", st.New)
		}
		r := l.send("DELETE", "/v1/decisions?uuid="+u1+"&uuid="+u2, l.jwtHdr(), nil)
		if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"nbDeleted":"2"}` {
			t.Errorf("delete by uuids: %s", r)
		}
		expectStream(t, "after uuid delete", l.stream(s.key, ""), nil, []string{"1.2.3.4", "198.51.100.9"})
		// deleting again counts nothing (only active rows)
		r = l.send("DELETE", "/v1/decisions?uuid="+u1, l.jwtHdr(), nil)
		if strings.TrimSpace(string(r.Body)) != `{"nbDeleted":"0"}` {
			t.Errorf("second delete by uuid: %s", r)
		}

		for _, p := range []string{"scope", "scenarios_containing", "limit", "foo"} {
			expectMsg(t, "unknown "+p, l.send("DELETE", "/v1/decisions?"+p+"=x", l.jwtHdr(), nil), 500, "'"+p+"' doesn't exist: invalid filter")
		}
		expectMsg(t, "invalid ip", l.send("DELETE", "/v1/decisions?ip=1.2.3", l.jwtHdr(), nil), 500,
			"unable to convert '1.2.3' to int: invalid ip address '1.2.3': invalid ip address / range")
		expectMsg(t, "invalid contains", l.send("DELETE", "/v1/decisions?ip=1.2.3.4&contains=x", l.jwtHdr(), nil), 500, "")
		expectAuth401(t, "no token", l.send("DELETE", "/v1/decisions", nil, nil), "")
		expectAuth401(t, "api key instead of token", l.send("DELETE", "/v1/decisions", keyHdr(s.key), nil), "")
		if _, ds := l.getDecisions(s.key, ""); len(ds) != 4 {
			t.Errorf("refused deletions removed decisions: %v", decisionKeys(ds))
		}
	})

	t.Run("by id", func(t *testing.T) {
		s := seed(t)
		l := s.l
		l.stream(s.key, "&startup=true")
		_, ds := l.getDecisions(s.key, "?value=1.2.3.4")
		if len(ds) != 1 {
			t.Fatalf("decisions %v", ds)
		}
		id := fmt.Sprint(ds[0].ID)
		r := l.send("DELETE", "/v1/decisions/"+id, l.jwtHdr(), nil)
		if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"nbDeleted":"1"}` {
			t.Errorf("delete by id: %s", r)
		}
		expectStream(t, "after delete by id", l.stream(s.key, ""), nil, []string{"1.2.3.4"})
		// an already-ended decision is ended again and re-reported
		r = l.send("DELETE", "/v1/decisions/"+id, l.jwtHdr(), nil)
		if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"nbDeleted":"1"}` {
			t.Errorf("second delete by id: %s", r)
		}
		expectStream(t, "after second delete by id", l.stream(s.key, ""), nil, []string{"1.2.3.4"})

		expectMsg(t, "non-integer id", l.send("DELETE", "/v1/decisions/abc", l.jwtHdr(), nil), 400, "decision_id must be valid integer")
		expectMsg(t, "unknown id", l.send("DELETE", "/v1/decisions/100", l.jwtHdr(), nil), 500, "decision with id '100' doesn't exist: unable to delete")
		expectAuth401(t, "no token", l.send("DELETE", "/v1/decisions/"+id, nil, nil), "")
	})
}

// ---------------------------------------------------------------------------
// heartbeat, watchers/self, usage-metrics

func TestHeartbeatAndDeleteSelf(t *testing.T) {
	l := startLAPI(t, nil)
	ctx := context.Background()
	l.login()
	m, _ := l.Store.GetMachine(ctx, testMachine)
	if m.LastHeartbeat != nil {
		t.Fatalf("last_heartbeat set before any heartbeat")
	}
	expectEmpty(t, "heartbeat", l.send("GET", "/v1/heartbeat", l.jwtHdr(), nil), 200)
	m, _ = l.Store.GetMachine(ctx, testMachine)
	if m.LastHeartbeat == nil || time.Since(*m.LastHeartbeat) > time.Minute {
		t.Errorf("last_heartbeat = %v", m.LastHeartbeat)
	}
	expectAuth401(t, "heartbeat without token", l.send("GET", "/v1/heartbeat", nil, nil), "")

	expectEmpty(t, "delete self", l.send("DELETE", "/v1/watchers/self", l.jwtHdr(), nil), http.StatusNoContent)
	if _, err := l.Store.GetMachine(ctx, testMachine); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("machine still there after DELETE /v1/watchers/self: %v", err)
	}
	// and it can no longer log in
	expectAuth401(t, "login after delete", l.send("POST", "/v1/watchers/login", hdr("User-Agent", testUA),
		map[string]any{"machine_id": testMachine, "password": testPassword}), "incorrect Username or Password")
	expectAuth401(t, "delete self without token", l.send("DELETE", "/v1/watchers/self", nil, nil), "")
}

func TestUsageMetrics(t *testing.T) {
	l := startLAPI(t, nil)
	key := l.addBouncer("fw")
	now := time.Now().Unix()
	bouncerItem := map[string]any{
		"version": "v0.0.30", "utc_startup_timestamp": now, "type": "crowdsec-firewall-bouncer", "name": "fw",
		"os": map[string]any{"name": "debian", "version": "12"}, "feature_flags": []string{},
		"metrics": []any{map[string]any{"meta": map[string]any{"window_size_seconds": 900, "utc_now_timestamp": now},
			"items": []any{map[string]any{"name": "dropped", "value": 12, "unit": "packet", "labels": map[string]string{"origin": "cscli"}}}}},
	}
	agentItem := map[string]any{
		"version": "v1.7.8", "utc_startup_timestamp": now, "os": map[string]any{"name": "debian", "version": "12"},
		"feature_flags": []string{}, "hub_items": map[string]any{}, "datasources": map[string]int{"file": 2},
	}
	without := func(m map[string]any, k string) map[string]any {
		out := map[string]any{}
		for kk, v := range m {
			if kk != k {
				out[kk] = v
			}
		}
		return out
	}
	bh := keyHdr(key)
	jh := l.jwtHdr()
	cases := []struct {
		name   string
		h      http.Header
		body   any
		status int
	}{
		{"bouncer", bh, map[string]any{"remediation_components": []any{bouncerItem}}, 201},
		{"agent", jh, map[string]any{"log_processors": []any{agentItem}}, 201},
		{"agent gzipped", jh, nil, 201}, // body set below
		{"bad json", bh, []byte(`{"remediation_components":`), 400},
		{"bouncer missing version", bh, map[string]any{"remediation_components": []any{without(bouncerItem, "version")}}, 422},
		{"agent missing version", jh, map[string]any{"log_processors": []any{without(agentItem, "version")}}, 422},
		{"missing startup timestamp", bh, map[string]any{"remediation_components": []any{without(bouncerItem, "utc_startup_timestamp")}}, 422},
		{"version too long", bh, map[string]any{"remediation_components": []any{map[string]any{"version": strings.Repeat("v", 256), "utc_startup_timestamp": now}}}, 422},
		{"two items", bh, map[string]any{"remediation_components": []any{bouncerItem, bouncerItem}}, 400},
		{"no items", bh, map[string]any{"remediation_components": []any{}}, 400},
		{"empty object", bh, map[string]any{}, 400},
		{"bouncer sends log_processors", bh, map[string]any{"log_processors": []any{agentItem}}, 400},
		{"agent sends remediation_components", jh, map[string]any{"remediation_components": []any{bouncerItem}}, 400},
		// a report is kept a week: one of over 1 MiB is refused, not stored
		{"oversized", bh, map[string]any{"remediation_components": []any{bouncerItem}, "padding": strings.Repeat("x", 1<<20)}, 413},
	}
	agentGz, _ := json.Marshal(map[string]any{"log_processors": []any{agentItem}})
	for _, c := range cases {
		h, body := c.h, c.body
		if c.name == "agent gzipped" {
			h = l.jwtHdr("Content-Encoding", "gzip")
			body = gzipBytes(t, agentGz)
		}
		r := l.send("POST", "/v1/usage-metrics", h, body)
		if c.status == 201 {
			expectEmpty(t, c.name, r, 201)
		} else {
			expectMsg(t, c.name, r, c.status, "")
		}
	}
	if n := l.count("usage_metrics"); n != 3 {
		t.Errorf("%d usage metrics stored, want 3", n)
	}
	// authentication dispatch (upstream's either-auth rule)
	expectMsg(t, "bad key", l.send("POST", "/v1/usage-metrics", hdr("X-Api-Key", "nope"), map[string]any{}), 403, "access forbidden")
	expectAuth401(t, "crowdsec UA without token", l.send("POST", "/v1/usage-metrics", hdr("User-Agent", testUA), map[string]any{}), "")
	expectMsg(t, "bouncer UA without key", l.send("POST", "/v1/usage-metrics", hdr("User-Agent", "crowdsec-firewall-bouncer/v1"), map[string]any{}), 403, "access forbidden")
	expectAuth401(t, "bad bearer", l.send("POST", "/v1/usage-metrics", hdr("Authorization", "Bearer x"), map[string]any{}), "")
}

// ---------------------------------------------------------------------------
// allowlists

func TestAllowlistEndpoints(t *testing.T) {
	l := startLAPI(t, nil)
	ctx := context.Background()
	if r := l.send("GET", "/v1/allowlists?with_content=true", l.jwtHdr(), nil); r.Status != 200 || strings.TrimSpace(string(r.Body)) != "[]" {
		t.Errorf("no allowlists: %s", r)
	}
	if err := l.Store.CreateAllowlist(ctx, "office", "office network"); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(24 * time.Hour)
	if err := l.Store.AddAllowlistItems(ctx, "office", []string{"10.0.0.0/8"}, "lan", &exp); err != nil {
		t.Fatal(err)
	}
	if err := l.Store.AddAllowlistItems(ctx, "office", []string{"2001:db8:a::/48", "192.0.2.1"}, "", nil); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	if err := l.Store.AddAllowlistItems(ctx, "office", []string{"192.0.2.2"}, "gone", &past); err != nil {
		t.Fatal(err)
	}
	if err := l.Store.CreateAllowlist(ctx, "empty", ""); err != nil {
		t.Fatal(err)
	}

	r := l.send("GET", "/v1/allowlists?with_content=true", l.jwtHdr(), nil)
	lists, ok := decodeJSON(t, r.Body).([]any)
	if r.Status != 200 || !ok || len(lists) != 2 {
		t.Fatalf("GET /v1/allowlists?with_content=true = %s", r)
	}
	o := lists[0].(map[string]any)
	for _, k := range []string{"name", "allowlist_id", "description", "items", "created_at", "updated_at", "console_managed"} {
		if _, has := o[k]; !has {
			t.Errorf("allowlist lacks %q: %v", k, o)
		}
	}
	if o["name"] != "office" || o["description"] != "office network" || o["console_managed"] != false {
		t.Errorf("allowlist = %v", o)
	}
	for _, k := range []string{"created_at", "updated_at"} {
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(o[k])); err != nil {
			t.Errorf("%s %v not RFC3339", k, o[k])
		}
	}
	items, _ := o["items"].([]any)
	if len(items) != 4 {
		t.Fatalf("items %v", o["items"])
	}
	it := items[0].(map[string]any)
	if it["value"] != "10.0.0.0/8" || it["description"] != "lan" {
		t.Errorf("first item %v", it)
	}
	if e, err := time.Parse(time.RFC3339, fmt.Sprint(it["expiration"])); err != nil || !within(e.Sub(exp), 0, 2*time.Second) {
		t.Errorf("item expiration %v, want %s", it["expiration"], exp.UTC().Format(time.RFC3339))
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(it["created_at"])); err != nil {
		t.Errorf("item created_at %v", it["created_at"])
	}

	// one by name
	r = l.send("GET", "/v1/allowlists/office", l.jwtHdr(), nil)
	if r.Status != 200 || decodeObj(t, r.Body)["name"] != "office" {
		t.Errorf("GET /v1/allowlists/office = %s", r)
	}
	expectMsg(t, "unknown allowlist", l.send("GET", "/v1/allowlists/nope", l.jwtHdr(), nil), 404, "")
	expectAuth401(t, "allowlists without token", l.send("GET", "/v1/allowlists", nil, nil), "")

	// single checks
	checks := []struct {
		path string
		hit  bool
	}{
		{"10.0.0.5", true},
		{"10.0.0.0%2F24", true},
		{"10.0.0.0/24", true},
		{"10.255.255.255", true},
		{"11.0.0.1", false},
		{"2001:db8:a::1", true},
		{"2001:db8:a::%2F64", true},
		{"2001:db8:b::1", false},
		{"192.0.2.1", true},
		{"192.0.2.2", false}, // expired entry
		{"8.8.8.8", false},
		{"not-an-ip", false},
	}
	for _, c := range checks {
		r := l.send("GET", "/v1/allowlists/check/"+c.path, l.jwtHdr(), nil)
		if r.Status != 200 {
			t.Errorf("check %s: %s", c.path, r)
			continue
		}
		o := decodeObj(t, r.Body)
		if c.hit {
			reason, _ := o["reason"].(string)
			if o["allowlisted"] != true || !strings.Contains(reason, "office") || len(o) != 2 {
				t.Errorf("check %s = %s, want allowlisted with a reason naming the list", c.path, r.Body)
			}
		} else if len(o) != 0 {
			t.Errorf("check %s = %s, want {}", c.path, r.Body)
		}
		want := 204
		if c.hit {
			want = 200
		}
		expectEmpty(t, "HEAD check "+c.path, l.send("HEAD", "/v1/allowlists/check/"+c.path, l.jwtHdr(), nil), want)
	}

	// bulk check
	r = l.send("POST", "/v1/allowlists/check", l.jwtHdr(), map[string]any{"targets": []string{"10.0.0.5", "8.8.8.8", "192.0.2.1", "garbage", "10.1.0.0/16"}})
	if r.Status != 200 {
		t.Fatalf("bulk check: %s", r)
	}
	var bulk models.BulkCheckAllowlistResponse
	if err := json.Unmarshal(r.Body, &bulk); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, res := range bulk.Results {
		targets = append(targets, res.Target)
		if len(res.Allowlists) == 0 {
			t.Errorf("bulk result %+v has no allowlist", res)
		}
	}
	if fmt.Sprint(targets) != "[10.0.0.5 192.0.2.1 10.1.0.0/16]" {
		t.Errorf("bulk hits %v", targets)
	}
	r = l.send("POST", "/v1/allowlists/check", l.jwtHdr(), map[string]any{"targets": []string{"8.8.8.8"}})
	if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"results":[]}` {
		t.Errorf("bulk check without hits = %s, want {\"results\":[]}", r)
	}
	expectMsg(t, "empty targets", l.send("POST", "/v1/allowlists/check", l.jwtHdr(), map[string]any{"targets": []string{}}), 400, "")
	expectMsg(t, "no targets", l.send("POST", "/v1/allowlists/check", l.jwtHdr(), map[string]any{}), 400, "")
	expectMsg(t, "bad json", l.send("POST", "/v1/allowlists/check", l.jwtHdr(), []byte(`{"targets":`)), 400, "")

	// removal is seen without restart
	if _, err := l.Store.RemoveAllowlistItems(ctx, "office", []string{"10.0.0.0/8"}); err != nil {
		t.Fatal(err)
	}
	if r := l.send("GET", "/v1/allowlists/check/10.0.0.5", l.jwtHdr(), nil); strings.TrimSpace(string(r.Body)) != "{}" {
		t.Errorf("check after removal = %s", r)
	}
}

func TestHostAllowlist(t *testing.T) {
	l := startLAPI(t, func(c *csconfig.Config) { c.API.Server.AllowlistHostAddresses = nil })
	if r := l.send("GET", "/v1/allowlists/check/127.0.0.1", l.jwtHdr(), nil); decodeObj(t, r.Body)["allowlisted"] != true {
		t.Errorf("loopback not allowlisted by default: %s", r)
	}
	if ids := l.push(agentAlert("127.0.0.1", "crowdsecurity/ssh-bf")); len(ids) != 0 {
		t.Errorf("alert on loopback kept: %v", ids)
	}
}

// An agent that lost the reply to a push sends the same alerts again, with
// their UUIDs: they are stored once, the retry gets the same ids, and
// their decisions are not doubled. Alerts without a UUID are all new.
func TestPostAlertsRetryByUUID(t *testing.T) {
	l := startLAPI(t, nil)
	a := agentAlert("192.0.2.50", "crowdsecurity/ssh-bf")
	a.UUID = "6f1c2b0a-3d4e-4f5a-8b9c-0d1e2f3a4b5c"
	b := agentAlert("192.0.2.51", "crowdsecurity/ssh-bf")
	b.UUID = "6f1c2b0a-3d4e-4f5a-8b9c-0d1e2f3a4b5d"
	first := l.push(a, b)
	if len(first) != 2 {
		t.Fatalf("ids %v", first)
	}
	l.expectCounts("first push", 2, 2)
	again := l.push(b, a)
	if fmt.Sprint(again) != fmt.Sprint([]string{first[1], first[0]}) {
		t.Errorf("retry ids %v, want %v reversed", again, first)
	}
	l.expectCounts("after the retry", 2, 2)
	l.push(agentAlert("192.0.2.52", "crowdsecurity/ssh-bf"), agentAlert("192.0.2.52", "crowdsecurity/ssh-bf"))
	l.expectCounts("alerts without UUID", 4, 4)
}

// TestPostAlertsBatchOneInvalid: one bad alert (an odd-cased required key,
// which the key check does not take for the key) refuses the whole batch
// with its index, storing nothing; the same batch corrected is stored whole.
func TestPostAlertsBatchOneInvalid(t *testing.T) {
	l := startLAPI(t, nil)
	l.login()
	batch := func(key string) []any {
		var as []any
		for i := range 3 {
			a := rawAlert(t, agentAlert(fmt.Sprintf("192.0.2.%d", i+1), "x/y"))
			if i == 1 {
				v := a["message"]
				delete(a, "message")
				a[key] = v
			}
			as = append(as, a)
		}
		return as
	}
	expectMsg(t, "odd-cased key", l.pushRaw(batch("Message")), 500, "validation failure list:\n1.message in body is required")
	if n, err := l.Store.CountAlertsByScenario(context.Background()); err != nil || len(n) != 0 {
		t.Fatalf("refused batch stored alerts: %v %v", n, err)
	}
	if r := l.pushRaw(batch("message")); r.Status != 201 {
		t.Fatalf("valid batch: %s", r)
	}
	if n, err := l.Store.CountAlertsByScenario(context.Background()); err != nil || n["x/y"] != 3 {
		t.Fatalf("stored %v %v, want 3 alerts", n, err)
	}
}
