package apiclient

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// deadURL is a loopback URL nothing listens on: connections are refused.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String() + "/"
	ln.Close()
	return u
}

// heartbeatLAPI is a fake LAPI serving the machine heartbeat and the
// bouncer's decisions; status, when set, answers every /v1 call instead.
func heartbeatLAPI(t *testing.T) (*fakeLAPI, *atomic.Int32) {
	f := newFakeLAPI(t, "")
	var status atomic.Int32
	f.machine("GET /v1/heartbeat", func(w http.ResponseWriter, r *http.Request) {
		if s := status.Load(); s != 0 {
			writeJSON(w, int(s), map[string]string{"message": "scripted"})
		}
	})
	f.bouncer("GET /v1/decisions", func(w http.ResponseWriter, r *http.Request) {
		if s := status.Load(); s != 0 {
			writeJSON(w, int(s), map[string]string{"message": "scripted"})
			return
		}
		writeJSON(w, http.StatusOK, nil)
	})
	f.mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if s := status.Load(); s != 0 {
			writeJSON(w, int(s), map[string]string{"message": "scripted"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "up"})
	})
	return f, &status
}

func failoverClient(t *testing.T, logger *log.Logger, mutate func(*Config), urls ...string) *Client {
	t.Helper()
	cfg := Config{URLs: urls, MachineID: testMachine, Password: testPassword, APIKey: "", Failback: -1}
	if logger != nil {
		cfg.Log = log.NewEntry(logger)
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// TestFailoverRefusedConnection: the first LAPI refuses connections; the
// call goes to the second within the same call, the move is logged with
// from, to and error, counted, and later calls go straight to the second.
func TestFailoverRefusedConnection(t *testing.T) {
	dead := deadURL(t)
	b, _ := heartbeatLAPI(t)
	logger, hook := logtest.NewNullLogger()
	c := failoverClient(t, logger, nil, dead, b.srv.URL)
	for i := range 3 {
		if err := c.Heartbeat(context.Background()); err != nil {
			t.Fatalf("heartbeat %d: %v", i, err)
		}
	}
	if n := c.Failovers(); n != 1 {
		t.Errorf("Failovers = %d, want 1 (sticks to the LAPI that works)", n)
	}
	if c.URL() != b.srv.URL+"/" {
		t.Errorf("current LAPI %s, want %s", c.URL(), b.srv.URL+"/")
	}
	var moves []*log.Entry
	for _, e := range hook.AllEntries() {
		if _, ok := e.Data["from"]; ok {
			moves = append(moves, e)
		}
	}
	if len(moves) != 1 || moves[0].Level != log.WarnLevel || moves[0].Data["from"] != dead || moves[0].Data["to"] != b.srv.URL ||
		!strings.Contains(moves[0].Data["error"].(error).Error(), "refused") {
		t.Errorf("failover log entries: %+v", moves)
	}
}

// TestFailoverStatus: 502, 503 and 504 move to the next LAPI; a 500 or a
// 4xx is the LAPI's answer about the request and is returned as it is.
func TestFailoverStatus(t *testing.T) {
	for _, tc := range []struct {
		status int
		moves  bool
	}{{502, true}, {503, true}, {504, true}, {500, false}, {404, false}} {
		a, aStatus := heartbeatLAPI(t)
		b, _ := heartbeatLAPI(t)
		aStatus.Store(int32(tc.status))
		c := failoverClient(t, nil, func(cfg *Config) { cfg.APIKey = testAPIKey }, a.srv.URL, b.srv.URL)
		_, err := c.GetDecisions(context.Background(), nil)
		if tc.moves {
			if err != nil || c.Failovers() != 1 {
				t.Errorf("HTTP %d: err = %v, failovers %d; want the call served by the second LAPI", tc.status, err, c.Failovers())
			}
			continue
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != tc.status || c.Failovers() != 0 || len(b.seen()) != 0 {
			t.Errorf("HTTP %d: err = %v, failovers %d, second LAPI saw %v; want the answer returned, no move", tc.status, err, c.Failovers(), b.seen())
		}
	}
}

// TestFailoverAllDown: every LAPI failing gives one error naming each URL
// and what it said (an *APIError still found by errors.As); the next call
// tries them all again, and once one is back it works.
func TestFailoverAllDown(t *testing.T) {
	dead := deadURL(t)
	b, bStatus := heartbeatLAPI(t)
	bStatus.Store(503)
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(log.DebugLevel)
	c := failoverClient(t, logger, nil, dead, b.srv.URL)
	for range 3 {
		err := c.Heartbeat(context.Background())
		var ue *UnavailableError
		if !errors.As(err, &ue) || len(ue.URLs) != 2 {
			t.Fatalf("all down: err = %v, want an *UnavailableError over both URLs", err)
		}
		for _, want := range []string{"no LAPI available (2 tried)", dead, "refused", b.srv.URL, "HTTP 503"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("all-down error %q does not say %q", err, want)
			}
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 503 {
			t.Errorf("errors.As(*APIError) on %v: %v", err, ae)
		}
	}
	warns := 0
	for _, e := range hook.AllEntries() {
		if e.Level == log.WarnLevel {
			warns++
		}
	}
	if warns != 2 {
		t.Errorf("%d warnings for three rounds of an outage of two LAPIs, want one per LAPI", warns)
	}
	bStatus.Store(0)
	if err := c.Heartbeat(context.Background()); err != nil {
		t.Fatalf("heartbeat once the second LAPI is back: %v", err)
	}
}

// TestFailoverCancelledCallMovesNothing: a call its caller cancels says
// nothing about the LAPI.
func TestFailoverCancelledCallMovesNothing(t *testing.T) {
	a, _ := heartbeatLAPI(t)
	b, _ := heartbeatLAPI(t)
	c := failoverClient(t, nil, nil, a.srv.URL, b.srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Heartbeat(ctx); err == nil {
		t.Fatal("a cancelled call succeeded")
	}
	if c.Failovers() != 0 || c.URL() != a.srv.URL+"/" {
		t.Errorf("a cancelled call moved the client to %s (%d failovers)", c.URL(), c.Failovers())
	}
}

// TestFailoverRelogin: the second LAPI does not take the first one's
// token (another JWT secret): the client logs in there and goes on.
func TestFailoverRelogin(t *testing.T) {
	a, aStatus := heartbeatLAPI(t)
	b, _ := heartbeatLAPI(t)
	c := failoverClient(t, nil, nil, a.srv.URL, b.srv.URL)
	if err := c.Heartbeat(context.Background()); err != nil {
		t.Fatal(err)
	}
	aStatus.Store(503)
	if err := c.Heartbeat(context.Background()); err != nil {
		t.Fatalf("heartbeat after the first LAPI failed: %v", err)
	}
	if a.loginCount() != 1 || b.loginCount() != 1 {
		t.Errorf("logins: first LAPI %d, second %d; want one each", a.loginCount(), b.loginCount())
	}
}

// TestFailback: once the preferred LAPI answers again, the client goes
// back to it after Failback, without a failed call.
func TestFailback(t *testing.T) {
	a, aStatus := heartbeatLAPI(t)
	b, _ := heartbeatLAPI(t)
	aStatus.Store(503)
	c := failoverClient(t, nil, func(cfg *Config) { cfg.Failback = time.Millisecond }, a.srv.URL, b.srv.URL)
	if err := c.Heartbeat(context.Background()); err != nil || c.URL() != b.srv.URL+"/" {
		t.Fatalf("heartbeat: %v, on %s", err, c.URL())
	}
	// While the preferred one still fails, probes leave the client put.
	for range 20 {
		if err := c.Heartbeat(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if c.URL() != b.srv.URL+"/" {
		t.Fatalf("moved to %s while the preferred LAPI still fails", c.URL())
	}
	aStatus.Store(0)
	deadline := time.Now().Add(10 * time.Second)
	for c.URL() != a.srv.URL+"/" {
		if time.Now().After(deadline) {
			t.Fatalf("still on %s after the preferred LAPI came back", c.URL())
		}
		if err := c.Heartbeat(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if c.Failovers() != 2 {
		t.Errorf("Failovers = %d, want 2 (away and back)", c.Failovers())
	}
}

func TestNewURLs(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"both", Config{URL: "http://a/", URLs: []string{"http://b/"}}, "both URL and URLs"},
		{"twice", Config{URLs: []string{"http://a:8080", "http://a:8080/"}}, "listed twice"},
		{"bad", Config{URLs: []string{"http://a/", "ftp://b/"}}, "scheme must be http or https"},
		{"empty", Config{URLs: []string{}}, "empty LAPI URL"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	c, err := New(Config{URLs: []string{"http://a:8080", "/run/lapi.sock"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.URLs(), " "); got != "http://a:8080/ http://unix/" {
		t.Errorf("URLs() = %q", got)
	}
}
