package lapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/apikey"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// fuzzLAPI is one in-process LAPI over a real SQLite file for a whole fuzz
// run, with a logged-in machine and a bouncer key; requests go straight to
// its handler.
type fuzzLAPI struct {
	h     http.Handler
	token string
	key   string
}

func newFuzzLAPI(f *testing.F) *fuzzLAPI {
	f.Helper()
	dbPath := filepath.Join(f.TempDir(), "crowdsec.db")
	cfg := csconfig.Default()
	cfg.DBConfig.DBPath = dbPath
	cfg.API.Server.ListenURI = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	st, err := store.Open(ctx, testStoreConfig(f, dbPath))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	srv, err := New(ctx, cfg, st, profiles.Default())
	if err != nil {
		f.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err := st.CreateMachine(ctx, store.Machine{MachineID: testMachine, PasswordHash: string(hash), IsValidated: true}, false); err != nil {
		f.Fatal(err)
	}
	key, err := apikey.Generate()
	if err != nil {
		f.Fatal(err)
	}
	if _, err := st.CreateBouncer(ctx, store.Bouncer{Name: "fw", APIKeyHash: apikey.Hash(key)}); err != nil {
		f.Fatal(err)
	}
	l := &fuzzLAPI{h: srv.Handler(), key: key}
	code, body := l.send("POST", "/v1/watchers/login", nil, []byte(`{"machine_id":"`+testMachine+`","password":"`+testPassword+`"}`))
	var r models.WatcherAuthResponse
	if code != 200 || json.Unmarshal(body, &r) != nil {
		f.Fatalf("login: %d %s", code, body)
	}
	l.token = r.Token
	return l
}

func (l *fuzzLAPI) send(method, path string, hdr map[string]string, body []byte) (int, []byte) {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.RemoteAddr = "192.0.2.10:4242"
	req.Header.Set("User-Agent", testUA)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	l.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// checkAnswer: every answer is JSON and no error shows SQL or a Go panic.
func checkAnswer(t *testing.T, what string, code int, body []byte) {
	t.Helper()
	if code == 0 || code >= 500 && code != 500 {
		t.Fatalf("%s: status %d", what, code)
	}
	s := strings.ToLower(string(body))
	for _, w := range []string{"sqlite", "sql logic", "syntax error", "runtime error", "goroutine "} {
		if strings.Contains(s, w) {
			t.Fatalf("%s: answer leaks %q: %.300s", what, w, body)
		}
	}
}

// FuzzPostAlerts: any body an agent (or anyone holding its token) sends to
// POST /v1/alerts is stored or refused, never crashes the LAPI.
func FuzzPostAlerts(f *testing.F) {
	for _, a := range []*models.Alert{manualAlert("192.0.2.1", "Ip", "4h", "cscli"), agentAlert("192.0.2.2", "x/y"),
		manualAlert("::ffff:10.99.0.1/64", "Range", "4h", "cscli"), manualAlert("203.0.113.9", "Ip", "106751d", "cscli")} {
		b, _ := json.Marshal([]*models.Alert{a})
		f.Add(b)
	}
	f.Add([]byte(`[{"scenario":"x","decisions":[{"type":"","value":"192.0.2.9","scope":"Ip","duration":"1h","origin":"cscli"}]}]`))
	f.Add([]byte(`[null]`))
	l := newFuzzLAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		code, out := l.send("POST", "/v1/alerts", map[string]string{"Authorization": "Bearer " + l.token}, body)
		checkAnswer(t, "POST /v1/alerts", code, out)
	})
}

// FuzzLogin: the unauthenticated login and registration bodies.
func FuzzLogin(f *testing.F) {
	f.Add([]byte(`{"machine_id":"testmachine","password":"wrong"}`))
	f.Add([]byte(`{"machine_id":"nobody","password":"x","scenarios":["a/b"]}`))
	f.Add([]byte(`{"machine_id":"","password":""}`))
	f.Add([]byte(`{"machine_id":null}`))
	l := newFuzzLAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		code, out := l.send("POST", "/v1/watchers/login", nil, body)
		checkAnswer(t, "login", code, out)
		if code == 200 && !bytes.Contains(body, []byte(testPassword)) {
			t.Fatalf("login accepted without the password: %q", body)
		}
		code, out = l.send("POST", "/v1/watchers", nil, body)
		checkAnswer(t, "register", code, out)
	})
}

// FuzzUsageMetrics: the reports bouncers and agents push.
func FuzzUsageMetrics(f *testing.F) {
	f.Add([]byte(`{"remediation_components":[{"version":"v1","type":"crowdsec-firewall-bouncer","metrics":[{"meta":{"window_size_seconds":60,"utc_now_timestamp":1700000000},"items":[{"name":"dropped","value":10,"unit":"packet","labels":{"ip_type":"ipv4"}}]}]}]}`))
	f.Add([]byte(`{"log_processors":[{"version":"v1","datasources":{"file":1},"metrics":[{"meta":{"window_size_seconds":-1},"items":[{"name":"read","value":1e308}]}]}]}`))
	f.Add([]byte(`{}`))
	l := newFuzzLAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		code, out := l.send("POST", "/v1/usage-metrics", map[string]string{"X-Api-Key": l.key}, body)
		checkAnswer(t, "usage-metrics", code, out)
	})
}

// FuzzQueries: query strings of the read routes a bouncer or agent calls.
func FuzzQueries(f *testing.F) {
	for _, q := range []string{"ip=192.0.2.1", "range=10.0.0.0/8&contains=false", "scenarios_containing=ssh&limit=5",
		"ip=' OR 1=1 --", "since=4h&until=-1s", "startup=true&scopes=ip,range&origins=crowdsec", "value=::ffff:1.2.3.4/90"} {
		f.Add(q)
	}
	l := newFuzzLAPI(f)
	f.Fuzz(func(t *testing.T, q string) {
		// What a client can send at all: an HTTP server refuses the rest
		// before any handler runs.
		if strings.ContainsAny(q, " #") || len(q) > 4096 {
			return
		}
		if _, err := url.ParseRequestURI("/v1/decisions?" + q); err != nil {
			return
		}
		for _, r := range []struct {
			path string
			hdr  map[string]string
		}{
			{"/v1/decisions?", map[string]string{"X-Api-Key": l.key}},
			{"/v1/decisions/stream?", map[string]string{"X-Api-Key": l.key}},
			{"/v1/alerts?", map[string]string{"Authorization": "Bearer " + l.token}},
		} {
			code, out := l.send("GET", r.path+q, r.hdr, nil)
			checkAnswer(t, r.path+q, code, out)
		}
	})
}
