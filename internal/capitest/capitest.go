// Package capitest is a Central API on loopback for tests: registration,
// login with expiring JWTs, console enrollment (strictly checked, accepted
// by the test), PAPI long polls with the orders a test gives, signals
// (recorded), the decision stream
// (startup and deltas) with links to lists it serves itself, and the
// failure modes a client must survive: refused tokens (401), busy answers
// (429/503), an outage, 304 on lists, a list that fails, a huge community
// list.
package capitest

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/rampart-ips/rampart/capi"
)

// Server is one running test Central API.
type Server struct {
	srv *httptest.Server
	key []byte

	mu       sync.Mutex
	machines map[string]string // login -> password
	tokens   map[string]bool   // valid tokens
	tokenTTL time.Duration     // lifetime of the tokens it issues (1 h)
	logins   []capi.LoginRequest
	signals  []capi.Signal
	posts    []int // items per accepted signals POST
	// The stream answers, encoded when set: a 100k-address list encoded
	// per request made the server a large part of what an in-process
	// benchmark of the pull measured.
	stream   []byte
	startup  []byte // answer to startup=true, when set
	queries  []string
	lists    map[string]*List
	fail     map[string][]int // path -> statuses to answer next, in order
	down     bool
	agents   map[string]bool // User-Agents seen
	gzipped  int
	metrics  []capi.MetricsRequest
	requests map[string]int // by path, refused ones included
	usage    []capi.UsageRequest
	enrolls  []map[string]any      // enroll bodies, as decoded JSON
	pending  map[string]string     // login -> attachment key waiting in the console
	orgs     map[string]enrollment // login -> accepted enrollment
	orders   []capi.PAPIEvent      // PAPI orders, oldest first
	wake     chan struct{}         // closed (and replaced) when an order comes
	polls    []string              // query strings of the PAPI polls
	done     chan struct{}         // closed by Close: held polls end
	closed   sync.Once
	deleted  []string // UUIDs received on /v3/decisions/delete
}

// enrollment is an instance attached to an organization.
type enrollment struct{ org, subscription string }

// List is a blocklist the server serves at /lists/<name>.
type List struct {
	Body     string
	Modified time.Time
	Status   int // non-zero: always answer this status (a failing list)
	Fetches  int
	NotMod   int // 304 answers
}

// Start runs a server on a free loopback port until the test ends.
func Start(t testing.TB) *Server { return StartAt(t, "127.0.0.1:0") }

// StartAt runs a server on addr (the same address again plays a restart)
// until the test ends.
func StartAt(t testing.TB, addr string) *Server {
	s, err := New(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// New runs a server on addr outside a test (benchmark commands); Close
// stops it.
func New(addr string) (*Server, error) {
	s := &Server{key: []byte("capitest-signing-key"), machines: map[string]string{}, tokens: map[string]bool{},
		tokenTTL: time.Hour, lists: map[string]*List{}, fail: map[string][]int{}, agents: map[string]bool{}, requests: map[string]int{},
		pending: map[string]string{}, orgs: map[string]enrollment{}, wake: make(chan struct{}), done: make(chan struct{})}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Listener.Close()
	s.srv.Listener = ln
	s.srv.Start()
	return s, nil
}

// URL is the base URL, as the credentials file holds it ("/" at the end).
func (s *Server) URL() string { return s.srv.URL + "/" }

// Close stops the server.
func (s *Server) Close() {
	s.closed.Do(func() { close(s.done) })
	s.srv.Close()
}

// SetTokenTTL sets the lifetime of the tokens issued from now on.
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenTTL = d
}

// AddMachine registers a login directly.
func (s *Server) AddMachine(login, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.machines[login] = password
}

// SetStream sets what GET /v3/decisions/stream answers (a delta);
// SetStartup what it answers to startup=true (the delta otherwise).
func (s *Server) SetStream(r capi.StreamResponse) {
	b := encode(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stream = b
}

// SetStartup sets the answer to startup=true.
func (s *Server) SetStartup(r capi.StreamResponse) {
	b := encode(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startup = b
}

func encode(r capi.StreamResponse) []byte {
	b, _ := json.Marshal(r) // plain structs: cannot fail
	return append(b, '\n')
}

// SetList serves a list at ListURL(name).
func (s *Server) SetList(name string, l *List) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists[name] = l
}

// ListURL is where list name is served.
func (s *Server) ListURL(name string) string { return s.srv.URL + "/lists/" + name }

// GetList returns the list's state (fetch counts).
func (s *Server) GetList(name string) List {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.lists[name]
}

// Fail makes the next requests on path ("/v3/signals"...) answer these
// statuses, one each, in order.
func (s *Server) Fail(path string, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[path] = append(s.fail[path], statuses...)
}

// SetDown makes every request answer 503 (an outage) or serves again.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// RevokeTokens forgets every token issued: the next call gets a 401.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]bool{}
}

// Signals returns the signals received.
func (s *Server) Signals() []capi.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]capi.Signal(nil), s.signals...)
}

// SignalPosts returns the item count of each accepted POST /v3/signals.
func (s *Server) SignalPosts() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.posts...)
}

// Logins returns the logins received.
func (s *Server) Logins() []capi.LoginRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]capi.LoginRequest(nil), s.logins...)
}

// Queries returns the query strings of the stream requests.
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

// Requests is how many requests came for path, refused ones included.
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// Metrics returns the metrics received.
func (s *Server) Metrics() []capi.MetricsRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]capi.MetricsRequest(nil), s.metrics...)
}

// UserAgents returns the User-Agents seen on /v3 calls.
func (s *Server) UserAgents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for ua := range s.agents {
		out = append(out, ua)
	}
	return out
}

// Gzipped is how many request bodies came gzipped.
func (s *Server) Gzipped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gzipped
}

// Community builds a startup answer of n addresses (10.x.y.z, then
// 11.x...) for scenario, each for duration.
func Community(scenario string, n int, duration string) capi.StreamResponse {
	g := capi.StreamGroup{Scenario: scenario, Scope: "ip", Decisions: make([]capi.StreamDecision, 0, n)}
	for i := 0; i < n; i++ {
		g.Decisions = append(g.Decisions, capi.StreamDecision{Value: fmt.Sprintf("%d.%d.%d.%d", 10+i>>24, (i>>16)&255, (i>>8)&255, i&255), Duration: duration})
	}
	return capi.StreamResponse{New: []capi.StreamGroup{g}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.URL.Path]++
	if s.down {
		s.mu.Unlock()
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "down"})
		return
	}
	if q := s.fail[r.URL.Path]; len(q) > 0 {
		st := q[0]
		s.fail[r.URL.Path] = q[1:]
		s.mu.Unlock()
		writeJSON(w, st, map[string]string{"message": "injected failure"})
		return
	}
	if strings.HasPrefix(r.URL.Path, "/v3/") {
		s.agents[r.UserAgent()] = true
	}
	s.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/lists/") {
		s.serveList(w, r, strings.TrimPrefix(r.URL.Path, "/lists/"))
		return
	}
	body, err := s.readBody(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
		return
	}
	switch r.Method + " " + r.URL.Path {
	case "POST /v3/watchers":
		var req capi.RegisterRequest
		if err := json.Unmarshal(body, &req); err != nil || req.MachineID == "" || req.Password == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"message": "invalid registration"})
			return
		}
		s.AddMachine(req.MachineID, req.Password)
		writeJSON(w, http.StatusCreated, map[string]string{"message": "OK"})
	case "POST /v3/watchers/login":
		s.login(w, body)
	case "POST /v3/watchers/enroll":
		login, ok := s.machineOf(w, r)
		if !ok {
			return
		}
		s.enroll(w, login, body)
	case "GET /papi/v1/decisions/stream/poll":
		login, ok := s.machineOf(w, r)
		if !ok {
			return
		}
		s.poll(w, r, login)
	case "POST /v3/decisions/delete":
		if !s.authorized(w, r) {
			return
		}
		var uuids []string
		if err := json.Unmarshal(body, &uuids); err != nil || uuids == nil || len(uuids) > 50 || slices.Contains(uuids, "") {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "want a JSON array of 1 to 50 decision UUIDs"})
			return
		}
		s.mu.Lock()
		s.deleted = append(s.deleted, uuids...)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]string{"message": "OK"})
	case "GET /papi/v1/permissions":
		login, ok := s.machineOf(w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		e, ok := s.orgs[login]
		s.mu.Unlock()
		if !ok || (e.subscription != "ENTERPRISE" && e.subscription != "SECOPS") {
			writeJSON(w, http.StatusPaymentRequired, map[string]string{"error": "this instance's plan has no console management"})
			return
		}
		writeJSON(w, http.StatusOK, capi.PAPIPermissions{Status: "success", Plan: e.subscription, Categories: []string{"decision", "management"}})
	case "POST /v3/signals":
		if !s.authorized(w, r) {
			return
		}
		var items []capi.Signal
		if err := json.Unmarshal(body, &items); err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": err.Error()})
			return
		}
		s.mu.Lock()
		s.signals = append(s.signals, items...)
		s.posts = append(s.posts, len(items))
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]string{"message": "OK"})
	case "GET /v3/decisions/stream":
		if !s.authorized(w, r) {
			return
		}
		s.mu.Lock()
		s.queries = append(s.queries, r.URL.RawQuery)
		resp := s.stream
		if r.URL.Query().Get("startup") == "true" && s.startup != nil {
			resp = s.startup
		}
		s.mu.Unlock()
		if resp == nil {
			resp = encode(capi.StreamResponse{})
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(resp)
	case "POST /v3/metrics/":
		if !s.authorized(w, r) {
			return
		}
		var m capi.MetricsRequest
		if err := json.Unmarshal(body, &m); err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": err.Error()})
			return
		}
		s.mu.Lock()
		s.metrics = append(s.metrics, m)
		s.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]string{"message": "OK"})
	case "POST /v3/usage-metrics":
		if !s.authorized(w, r) {
			return
		}
		var u capi.UsageRequest
		if err := json.Unmarshal(body, &u); err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": err.Error()})
			return
		}
		s.mu.Lock()
		s.usage = append(s.usage, u)
		s.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]string{"message": "OK"})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// Usage returns the usage metrics received.
func (s *Server) Usage() []capi.UsageRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]capi.UsageRequest(nil), s.usage...)
}

func (s *Server) readBody(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		defer gz.Close()
		rd = gz
		s.mu.Lock()
		s.gzipped++
		s.mu.Unlock()
	}
	return io.ReadAll(rd)
}

func (s *Server) login(w http.ResponseWriter, body []byte) {
	var req capi.LoginRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logins = append(s.logins, req)
	if pw, ok := s.machines[req.MachineID]; !ok || pw != req.Password {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": "incorrect Username or Password"})
		return
	}
	exp := time.Now().Add(s.tokenTTL)
	claims := jwt.MapClaims{"id": req.MachineID, "exp": exp.Unix(), "subscription_type": "COMMUNITY", "n": len(s.logins)}
	if e, ok := s.orgs[req.MachineID]; ok {
		claims["organization_id"], claims["subscription_type"] = e.org, e.subscription
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.key)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	s.tokens[tok] = true
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(capi.LoginResponse{Code: 200, Expire: exp.UTC().Format(time.RFC3339), Token: tok})
}

// authorized checks the Bearer token: issued, not revoked, not expired.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	ok := s.tokens[tok]
	s.mu.Unlock()
	if ok {
		_, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return s.key, nil }, jwt.WithValidMethods([]string{"HS256"}))
		ok = err == nil
	}
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "token is expired or invalid"})
	}
	return ok
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request, name string) {
	s.mu.Lock()
	l, ok := s.lists[name]
	if !ok {
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
		return
	}
	l.Fetches++
	st, body, mod := l.Status, l.Body, l.Modified
	if st == 0 {
		if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !mod.Truncate(time.Second).After(ims) {
			l.NotMod++
			st = http.StatusNotModified
		}
	}
	s.mu.Unlock()
	switch st {
	case 0:
		w.Header().Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
		_, _ = io.WriteString(w, body)
	default:
		w.WriteHeader(st)
	}
}

// machineOf checks the Bearer token as authorized does and returns the
// login it was issued to.
func (s *Server) machineOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !s.authorized(w, r) {
		return "", false
	}
	claims := jwt.MapClaims{}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return s.key, nil }); err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": err.Error()})
		return "", false
	}
	login, _ := claims["id"].(string)
	return login, true
}

// enroll checks the body's shape as strictly as the console's client
// sends it (an unknown key, a null tags, a false overwrite or a key with
// autoenroll are refused with 422) and answers 200 when the instance is
// already enrolled, 202 when the request now waits in the console (with
// the link for an automatic enrollment).
func (s *Server) enroll(w http.ResponseWriter, login string, body []byte) {
	refuse := func(format string, args ...any) {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": fmt.Sprintf(format, args...)})
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		refuse("invalid enroll request: %v", err)
		return
	}
	var req capi.EnrollRequest
	for k, v := range raw {
		var err error
		switch k {
		case "attachment_key":
			err = json.Unmarshal(v, &req.AttachmentKey)
			if err == nil && req.AttachmentKey == "" {
				err = fmt.Errorf("empty")
			}
		case "name":
			err = json.Unmarshal(v, &req.Name)
		case "tags":
			err = json.Unmarshal(v, &req.Tags)
			if err == nil && req.Tags == nil {
				err = fmt.Errorf("null")
			}
		case "overwrite":
			err = json.Unmarshal(v, &req.Overwrite)
			if err == nil && !req.Overwrite {
				err = fmt.Errorf("false (sent only when true)")
			}
		case "autoenroll":
			err = json.Unmarshal(v, &req.AutoEnroll)
		default:
			err = fmt.Errorf("unknown field")
		}
		if err != nil {
			refuse("%s: %v", k, err)
			return
		}
	}
	for _, k := range []string{"name", "tags", "autoenroll"} {
		if _, ok := raw[k]; !ok {
			refuse("%s is required", k)
			return
		}
	}
	switch {
	case req.Name == "":
		refuse("name is empty")
		return
	case req.AutoEnroll && (raw["attachment_key"] != nil || raw["overwrite"] != nil):
		refuse("autoenroll with attachment_key or overwrite")
		return
	case !req.AutoEnroll && req.AttachmentKey == "":
		refuse("attachment_key is required without autoenroll")
		return
	}
	var decoded map[string]any
	_ = json.Unmarshal(body, &decoded)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enrolls = append(s.enrolls, decoded)
	if _, ok := s.orgs[login]; ok && !req.Overwrite {
		writeJSON(w, http.StatusOK, map[string]string{"message": "instance already enrolled"})
		return
	}
	s.pending[login] = req.AttachmentKey
	if req.AutoEnroll {
		writeJSON(w, http.StatusAccepted, capi.EnrollResponse{URL: s.srv.URL + "/enroll/" + login,
			ExpireAt: time.Now().Add(15 * time.Minute).UnixMilli()})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"message": "OK"})
}

// Enrolls returns the enroll request bodies received (decoded JSON).
func (s *Server) Enrolls() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.enrolls...)
}

// Accept plays the user accepting login's pending enrollment in the
// console: its tokens from the next login on carry the organization and
// the subscription type (COMMUNITY, ENTERPRISE, SECOPS). It says whether
// an enrollment was pending.
func (s *Server) Accept(login, org, subscription string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[login]; !ok {
		return false
	}
	delete(s.pending, login)
	s.orgs[login] = enrollment{org: org, subscription: subscription}
	return true
}

// PAPIURL is the base of the polling API, as papi_url holds it.
func (s *Server) PAPIURL() string { return s.srv.URL + "/papi/" }

// SetEnrolled attaches login to an organization at once (the console
// accepted it): its tokens from the next login on say so.
func (s *Server) SetEnrolled(login, org, subscription string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orgs[login] = enrollment{org: org, subscription: subscription}
}

// Order queues a PAPI order for every poller, as the console sends it: a
// message (header and data) JSON-encoded in the event's data. It returns
// the event's timestamp (Unix milliseconds, increasing).
func (s *Server) Order(operation, cmd, message string, data any) int64 {
	raw, err := json.Marshal(data)
	if err != nil {
		panic(err) // a test's own data
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := time.Now().UnixMilli()
	if n := len(s.orders); n > 0 && ts <= s.orders[n-1].Timestamp {
		ts = s.orders[n-1].Timestamp + 1
	}
	id := uuid.NewString()
	msg, _ := json.Marshal(capi.PAPIMessage{Header: &capi.PAPIHeader{OperationType: operation, OperationCmd: cmd, Timestamp: time.UnixMilli(ts).UTC(),
		Message: message, UUID: id, Source: &capi.PAPISource{User: "tester@example.com"}}, Data: raw})
	s.orders = append(s.orders, capi.PAPIEvent{Timestamp: ts, Category: "order", Data: string(msg), ID: id})
	close(s.wake)
	s.wake = make(chan struct{})
	return ts
}

// Polls returns the query strings of the PAPI polls received.
func (s *Server) Polls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.polls...)
}

// poll answers a long poll as PAPI does: the orders after since_time at
// once, else those that come within timeout seconds, else PAPI's timeout
// message. A token of an instance that is not enrolled with a paying plan
// gets 402.
func (s *Server) poll(w http.ResponseWriter, r *http.Request, login string) {
	q := r.URL.Query()
	since, err1 := strconv.ParseInt(q.Get("since_time"), 10, 64)
	timeout, err2 := strconv.Atoi(q.Get("timeout"))
	if err1 != nil || err2 != nil || timeout <= 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "since_time and timeout are required integers"})
		return
	}
	s.mu.Lock()
	s.polls = append(s.polls, r.URL.RawQuery)
	e, ok := s.orgs[login]
	s.mu.Unlock()
	if !ok || (e.subscription != "ENTERPRISE" && e.subscription != "SECOPS") {
		writeJSON(w, http.StatusPaymentRequired, map[string]string{"error": "this instance's plan has no console management"})
		return
	}
	deadline := time.NewTimer(time.Duration(timeout) * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		var out []capi.PAPIEvent
		for _, o := range s.orders {
			if o.Timestamp > since {
				out = append(out, o)
			}
		}
		wake := s.wake
		s.mu.Unlock()
		if len(out) > 0 {
			writeJSON(w, http.StatusOK, capi.PAPIPoll{Events: out})
			return
		}
		select {
		case <-wake:
		case <-deadline.C:
			writeJSON(w, http.StatusOK, capi.PAPIPoll{Error: "no events before timeout", Timestamp: time.Now().UnixMilli()})
			return
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
}

// Deleted returns the decision UUIDs received on /v3/decisions/delete.
func (s *Server) Deleted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.deleted...)
}
