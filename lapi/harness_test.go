package lapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/testdb/storecfg"
	"github.com/rampart-ips/rampart/lapi/apikey"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// testLAPI is a real LAPI on a loopback port over a real SQLite file.
type testLAPI struct {
	t      *testing.T
	URL    string // http://127.0.0.1:port
	Store  *store.Store
	Server *Server
	Cfg    *csconfig.Config
	DBPath string
	cancel context.CancelFunc
	done   chan struct{}
	token  string
	client *http.Client // nil: a plain client (see via)
}

const (
	testMachine  = "testmachine"
	testPassword = "testpassword-0123456789"
	testUA       = "crowdsec/v1.7.8-test-linux"
)

// startLAPI starts a LAPI; mutate lets a test adjust the configuration.
func startLAPI(t *testing.T, mutate func(*csconfig.Config)) *testLAPI {
	t.Helper()
	dir := t.TempDir()
	return startLAPIAt(t, filepath.Join(dir, "crowdsec.db"), mutate)
}

func startLAPIAt(t *testing.T, dbPath string, mutate func(*csconfig.Config)) *testLAPI {
	t.Helper()
	return startLAPIOn(t, dbPath, nil, mutate)
}

// startLAPIOn serves on ln, or on the configured listener when ln is nil.
func startLAPIOn(t *testing.T, dbPath string, ln net.Listener, mutate func(*csconfig.Config)) *testLAPI {
	t.Helper()
	return startLAPITuned(t, dbPath, ln, mutate, nil)
}

// startLAPITuned is startLAPIOn with tune run on the server before it
// serves (timings tests shorten).
func startLAPITuned(t *testing.T, dbPath string, ln net.Listener, mutate func(*csconfig.Config), tune func(*Server)) *testLAPI {
	t.Helper()
	cfg := csconfig.Default()
	cfg.DBConfig.DBPath = dbPath
	cfg.API.Server.ListenURI = "127.0.0.1:0"
	cfg.API.Server.AllowlistHostAddresses = new(bool) // tests use loopback as attackers unless they say otherwise
	// Never the host's notifications; a test writes its own there.
	cfg.ConfigPaths.NotificationDir = filepath.Join(filepath.Dir(dbPath), "notifications")
	defaultProfiles := cfg.API.Server.ProfilesPath
	if mutate != nil {
		mutate(cfg)
	}
	prof := profiles.Default()
	if p := cfg.API.Server.ProfilesPath; p != defaultProfiles {
		var err error
		if prof, err = profiles.Load(p); err != nil {
			t.Fatalf("loading profiles: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, testStoreConfig(t, dbPath))
	if err != nil {
		cancel()
		t.Fatalf("opening store: %v", err)
	}
	srv, err := New(ctx, cfg, st, prof)
	if err != nil {
		cancel()
		st.Close()
		t.Fatalf("creating server: %v", err)
	}
	if tune != nil {
		tune(srv)
	}
	if ln == nil {
		if ln, err = srv.Listen(); err != nil {
			cancel()
			st.Close()
			t.Fatalf("listening: %v", err)
		}
	}
	l := &testLAPI{t: t, URL: "http://" + ln.Addr().String(), Store: st, Server: srv, Cfg: cfg, DBPath: dbPath, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		if err := srv.Serve(ctx, ln, nil); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(l.Stop)
	return l
}

// Stop shuts the server down and closes the store (idempotent).
func (l *testLAPI) Stop() {
	if l.cancel == nil {
		return
	}
	l.cancel()
	<-l.done
	l.Store.Close()
	l.cancel = nil
}

// via is a view of l whose requests go to url through client (another
// address of the server, another source); stop the server through l.
func (l *testLAPI) via(url string, client *http.Client) *testLAPI {
	v := *l
	v.URL, v.client = url, client
	return &v
}

// addMachine creates a validated machine with a password.
func (l *testLAPI) addMachine(id, password string) {
	l.t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		l.t.Fatal(err)
	}
	if err := l.Store.CreateMachine(context.Background(), store.Machine{MachineID: id, PasswordHash: string(hash), IsValidated: true}, false); err != nil {
		l.t.Fatalf("creating machine: %v", err)
	}
}

// addBouncer registers a bouncer and returns its key.
func (l *testLAPI) addBouncer(name string) string {
	l.t.Helper()
	key, err := apikey.Generate()
	if err != nil {
		l.t.Fatal(err)
	}
	if _, err := l.Store.CreateBouncer(context.Background(), store.Bouncer{Name: name, APIKeyHash: apikey.Hash(key)}); err != nil {
		l.t.Fatalf("creating bouncer: %v", err)
	}
	return key
}

// login creates the default machine on first use and returns a token.
func (l *testLAPI) login() string {
	l.t.Helper()
	if l.token != "" {
		return l.token
	}
	// Another LAPI on the same database may have created it already.
	if _, err := l.Store.GetMachine(context.Background(), testMachine); errors.Is(err, store.ErrNotFound) {
		l.addMachine(testMachine, testPassword)
	}
	status, body := l.do("POST", "/v1/watchers/login", map[string]string{"User-Agent": testUA},
		map[string]any{"machine_id": testMachine, "password": testPassword, "scenarios": []string{"a/b"}})
	if status != 200 {
		l.t.Fatalf("login: %d %s", status, body)
	}
	var r models.WatcherAuthResponse
	if err := json.Unmarshal(body, &r); err != nil {
		l.t.Fatalf("login body: %v", err)
	}
	l.token = r.Token
	return r.Token
}

func (l *testLAPI) jwtHeaders() map[string]string {
	return map[string]string{"Authorization": "Bearer " + l.login(), "User-Agent": testUA}
}

func keyHeaders(key string) map[string]string {
	return map[string]string{"X-Api-Key": key, "User-Agent": "crowdsec-firewall-bouncer/v0.0.30"}
}

// do sends a request; body may be nil, []byte (sent as is) or a value to
// marshal as JSON.
func (l *testLAPI) do(method, path string, headers map[string]string, body any) (int, []byte) {
	l.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			l.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, l.URL+path, r)
	if err != nil {
		l.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		l.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		l.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, data
}

// eventually waits (10 s at most) until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// manualAlert is the alert `cscli decisions add` sends.
func manualAlert(value, scope, duration, origin string) *models.Alert {
	now := time.Now().UTC().Format(time.RFC3339)
	reason := "manual 'ban' from 'test'"
	return &models.Alert{
		Scenario: reason, Message: reason, EventsCount: 1, StartAt: now, StopAt: now, Capacity: 0, Leakspeed: "0",
		Remediation: true, Kind: "cscli", Events: []*models.Event{},
		Source:    &models.Source{Scope: scope, Value: value},
		Decisions: []*models.Decision{{Duration: duration, Origin: origin, Scenario: reason, Scope: scope, Type: "ban", Value: value}},
	}
}

// agentAlert is an overflow as the agent pushes it: no decisions.
func agentAlert(ip, scenario string) *models.Alert {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	return &models.Alert{
		Scenario: scenario, ScenarioHash: "abc", ScenarioVersion: "0.1", Message: "Ip " + ip + " performed " + scenario,
		EventsCount: 6, StartAt: now, StopAt: now, Capacity: 5, Leakspeed: "10s", Remediation: true, Kind: "crowdsec",
		Source: &models.Source{Scope: "Ip", Value: ip, IP: ip},
		Events: []*models.Event{{Timestamp: now, Meta: []models.Meta{{Key: "source_ip", Value: ip}}}},
		Meta:   []models.Meta{{Key: "service", Value: "ssh"}},
	}
}

// push posts alerts as the test machine and returns the new ids.
func (l *testLAPI) push(alerts ...*models.Alert) []string {
	l.t.Helper()
	status, body := l.do("POST", "/v1/alerts", l.jwtHeaders(), alerts)
	if status != 201 {
		l.t.Fatalf("POST /v1/alerts: %d %s", status, body)
	}
	var ids []string
	if err := json.Unmarshal(body, &ids); err != nil {
		l.t.Fatalf("POST /v1/alerts body %s: %v", body, err)
	}
	return ids
}

// stream pulls the decision stream as the bouncer with key.
func (l *testLAPI) stream(key string, query string) models.StreamResponse {
	l.t.Helper()
	status, body := l.do("GET", "/v1/decisions/stream?additional_pull=false&community_pull=false"+query, keyHeaders(key), nil)
	if status != 200 {
		l.t.Fatalf("stream: %d %s", status, body)
	}
	var r models.StreamResponse
	if err := json.Unmarshal(body, &r); err != nil {
		l.t.Fatalf("stream body %q: %v", body, err)
	}
	return r
}

// testStoreConfig is the store configuration of the test database known
// by path, on the engine RAMPART_TEST_DB selects.
func testStoreConfig(t testing.TB, path string) store.Config {
	t.Helper()
	return storecfg.At(t, path)
}
