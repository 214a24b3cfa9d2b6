package lapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// sendFrom is send from the loopback address src (any of 127.0.0.0/8):
// the LAPI sees a different client address without any proxy header.
func (l *testLAPI) sendFrom(src, method, path string, h http.Header, body any) reply {
	l.t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
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
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		l.t.Fatalf("%s %s from %s: %v", method, path, src, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		l.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

func loginBody(machine, password string) map[string]any {
	return map[string]any{"machine_id": machine, "password": password}
}

func (l *testLAPI) loginAs(machine, password string) string {
	l.t.Helper()
	r := l.send("POST", "/v1/watchers/login", hdr("User-Agent", testUA), loginBody(machine, password))
	var out models.WatcherAuthResponse
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &out) != nil || out.Token == "" {
		l.t.Fatalf("login %s: %s", machine, r)
	}
	return out.Token
}

// TestUnvalidatedMachineTokenRefused: a token whose machine is not
// validated (here: the same row and password, the flag withdrawn) opens
// no authenticated route, refresh included.
func TestUnvalidatedMachineTokenRefused(t *testing.T) {
	l := startLAPI(t, nil)
	ctx := context.Background()
	l.addMachine("m3", "m3-password")
	tok := l.loginAs("m3", "m3-password")
	m, err := l.Store.GetMachine(ctx, "m3")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Store.CreateMachine(ctx, store.Machine{MachineID: "m3", PasswordHash: m.PasswordHash, IPAddress: m.IPAddress}, true); err != nil {
		t.Fatal(err)
	}
	if m2, err := l.Store.GetMachine(ctx, "m3"); err != nil || m2.ID != m.ID || m2.PasswordHash != m.PasswordHash || m2.IsValidated {
		t.Fatalf("setup: want the same row unvalidated, got %+v (%v)", m2, err)
	}

	// Every /v1 route but the two open ones, parameters filled in.
	open := map[string]bool{"POST /v1/watchers": true, "POST /v1/watchers/login": true}
	h := hdr("Authorization", "Bearer "+tok, "User-Agent", testUA)
	n := 0
	for _, rt := range l.Server.echo.Routes() {
		if !strings.HasPrefix(rt.Path, "/v1/") || open[rt.Method+" "+rt.Path] {
			continue
		}
		path := strings.NewReplacer(":alert_id", "1", ":decision_id", "1", ":name", "x", "*", "192.0.2.1").Replace(rt.Path)
		var body any
		if rt.Method == http.MethodPost {
			body = []any{}
		}
		r := l.send(rt.Method, path, h, body)
		if r.Status != http.StatusUnauthorized && r.Status != http.StatusForbidden {
			t.Errorf("%s %s with an unvalidated machine's token: %s, want 401 or 403", rt.Method, path, r)
		}
		n++
	}
	if n < 15 {
		t.Fatalf("only %d authenticated routes found", n)
	}
	if _, err := l.Store.GetMachine(ctx, "m3"); err != nil {
		t.Errorf("DELETE /v1/watchers/self ran for the unvalidated machine: %v", err)
	}
	expectAuth401(t, "login of the unvalidated machine", l.send("POST", "/v1/watchers/login", hdr("User-Agent", testUA), loginBody("m3", "m3-password")), "machine m3 not validated")
}

// TestLoginFailuresLookAlike: an unknown name, a wrong password and a
// password tried on a certificate machine get byte-identical answers.
func TestLoginFailuresLookAlike(t *testing.T) {
	l := startLAPI(t, nil)
	l.addMachine("known", "known-password")
	if err := l.Store.CreateMachine(context.Background(), store.Machine{MachineID: "cert@127.0.0.1", PasswordHash: dummyPasswordHash, IsValidated: true, AuthType: "tls"}, false); err != nil {
		t.Fatal(err)
	}
	try := func(machine string) reply {
		return l.send("POST", "/v1/watchers/login", hdr("User-Agent", testUA), loginBody(machine, "guess"))
	}
	want := try("known")
	expectAuth401(t, "wrong password", want, loginErrorText)
	for _, machine := range []string{"nosuchmachine", "cert@127.0.0.1"} {
		got := try(machine)
		if got.Status != want.Status || !bytes.Equal(got.Body, want.Body) {
			t.Errorf("%s: %s, want the wrong-password answer %s", machine, got, want)
		}
		got.Header.Del("Date")
		want.Header.Del("Date")
		if g, w := got.Header, want.Header; len(g) != len(w) || g.Get("Content-Type") != w.Get("Content-Type") || g.Get("Content-Length") != w.Get("Content-Length") {
			t.Errorf("%s: headers %v, want %v", machine, g, w)
		}
	}
}

// TestDummyPasswordHash: unknown machines cost a real bcrypt comparison at
// the cost cscli and registration use.
func TestDummyPasswordHash(t *testing.T) {
	cost, err := bcrypt.Cost([]byte(dummyPasswordHash))
	if err != nil || cost != bcrypt.DefaultCost {
		t.Fatalf("dummy hash cost %d (%v), want %d", cost, err, bcrypt.DefaultCost)
	}
	if passwordMatches(nil, "") || passwordMatches(&store.Machine{PasswordHash: dummyPasswordHash, AuthType: "tls"}, "") {
		t.Fatal("passwordMatches accepted a machine without a password")
	}
}

// TestLoginRateLimit: failed logins are limited per client address and
// per machine name; 429 carries Retry-After; the limit holds back neither
// other addresses nor other machines, nor the address a machine last
// logged in from; successful logins are not counted.
func TestLoginRateLimit(t *testing.T) {
	l := startLAPI(t, func(c *csconfig.Config) {
		// Refills of an hour: nothing comes back while the test runs.
		c.API.Server.LoginLimit = csconfig.LoginLimit{SourceBurst: 3, SourceRefill: csconfig.Duration{Duration: time.Hour},
			MachineBurst: 5, MachineRefill: csconfig.Duration{Duration: time.Hour}, MaxTracked: 100}
	})
	l.addMachine("agent", "agent-password")
	l.addMachine("other", "other-password")
	ua := hdr("User-Agent", testUA)
	login := func(src, machine, password string) reply {
		return l.sendFrom(src, "POST", "/v1/watchers/login", ua, loginBody(machine, password))
	}
	expect429 := func(what string, r reply) {
		t.Helper()
		if r.Status != http.StatusTooManyRequests {
			t.Errorf("%s: %s, want 429", what, r)
			return
		}
		if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 3600 {
			t.Errorf("%s: Retry-After %q, want 1..3600 seconds", what, r.Header.Get("Retry-After"))
		}
		if m := decodeObj(t, r.Body); m["message"] == nil {
			t.Errorf("%s: body %q", what, r.Body)
		}
	}

	// The agent logs in from its own address, which the LAPI records.
	for range 5 {
		if r := login("127.0.0.3", "agent", "agent-password"); r.Status != http.StatusOK {
			t.Fatalf("agent login: %s", r)
		}
	}

	// One address: 3 failures, then 429, even with the right password.
	for i := range 3 {
		expectAuth401(t, "failure "+strconv.Itoa(i+1), login("127.0.0.1", "agent", "guess"), loginErrorText)
	}
	expect429("4th failure from 127.0.0.1", login("127.0.0.1", "agent", "guess"))
	expect429("right password from the blocked address", login("127.0.0.1", "agent", "agent-password"))
	// Unknown names count the same.
	for range 3 {
		expectAuth401(t, "unknown name", login("127.0.0.4", "ghost", "guess"), loginErrorText)
	}
	expect429("4th unknown-name failure", login("127.0.0.4", "ghost", "guess"))

	// The name: 3 + 2 failures from two addresses empty its bucket of 5;
	// a third address gets 429 for it although its own bucket is full.
	for range 2 {
		expectAuth401(t, "failure from 127.0.0.2", login("127.0.0.2", "agent", "guess"), loginErrorText)
	}
	expect429("agent's name from a fresh address", login("127.0.0.5", "agent", "agent-password"))

	// Others are unaffected: another machine from an address with
	// attempts left, and the agent from the address it logs in from.
	if r := login("127.0.0.2", "other", "other-password"); r.Status != http.StatusOK {
		t.Errorf("other machine from 127.0.0.2: %s", r)
	}
	if r := login("127.0.0.3", "agent", "agent-password"); r.Status != http.StatusOK {
		t.Errorf("agent from its own address while its name is attacked: %s", r)
	}
	// 127.0.0.2 has 1 attempt left after its 2 failures: successes above
	// did not spend it.
	expectAuth401(t, "last failure from 127.0.0.2", login("127.0.0.2", "other", "guess"), loginErrorText)
	expect429("127.0.0.2 exhausted", login("127.0.0.2", "other", "other-password"))
}

// TestPendingMachineNotLimited: a registered machine waiting for its
// validation retries its login with the right password; the LAPI answers
// "not validated" each time and never 429, so the agent gets in as soon as
// the administrator validates it.
func TestPendingMachineNotLimited(t *testing.T) {
	l := startLAPI(t, func(c *csconfig.Config) {
		c.API.Server.LoginLimit = csconfig.LoginLimit{SourceBurst: 2, SourceRefill: csconfig.Duration{Duration: time.Hour},
			MachineBurst: 2, MachineRefill: csconfig.Duration{Duration: time.Hour}, MaxTracked: 100}
	})
	hash, err := bcrypt.GenerateFromPassword([]byte("pending-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.Store.CreateMachine(ctx, store.Machine{MachineID: "remote", PasswordHash: string(hash), IPAddress: "127.0.0.9"}, false); err != nil {
		t.Fatal(err)
	}
	ua := hdr("User-Agent", testUA)
	for i := range 5 {
		r := l.sendFrom("127.0.0.9", "POST", "/v1/watchers/login", ua, loginBody("remote", "pending-password"))
		expectAuth401(t, "pending login "+strconv.Itoa(i+1), r, "machine remote not validated")
	}
	if err := l.Store.ValidateMachine(ctx, "remote"); err != nil {
		t.Fatal(err)
	}
	if r := l.sendFrom("127.0.0.9", "POST", "/v1/watchers/login", ua, loginBody("remote", "pending-password")); r.Status != http.StatusOK {
		t.Fatalf("login once validated: %s", r)
	}
}

// TestFailureBuckets checks refill and the memory bound on a clock of the
// test's own.
func TestFailureBuckets(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	f := newFailureBuckets[int](2, 10*time.Second, 3)
	take := func(k int, now time.Time) time.Duration {
		_, wait := f.reserve(k, true, now)
		return wait
	}
	if take(1, t0) != 0 || take(1, t0) != 0 {
		t.Fatal("burst of 2 refused")
	}
	if w := take(1, t0); w != 10*time.Second {
		t.Fatalf("third attempt: wait %s, want 10s", w)
	}
	if w := take(1, t0.Add(4*time.Second)); w != 6*time.Second {
		t.Fatalf("after 4s: wait %s, want 6s", w)
	}
	if take(1, t0.Add(11*time.Second)) != 0 {
		t.Fatal("no attempt regained after 11s")
	}
	b, _ := f.reserve(2, true, t0)
	f.refund(b)
	f.refund(b) // never above the burst
	if take(2, t0) != 0 || take(2, t0) != 0 || take(2, t0) == 0 {
		t.Fatal("refund: want exactly the burst back")
	}

	// A flood of new keys: the table stays at 3, newcomers share one
	// bucket, and the emptied buckets of keys 1 and 2 are not pushed out.
	for k := 3; k < 1000; k++ {
		take(k, t0.Add(11*time.Second))
	}
	if n := f.tracked(); n != 3 {
		t.Fatalf("%d keys tracked, want 3", n)
	}
	if take(5000, t0.Add(11*time.Second)) == 0 {
		t.Error("overflow bucket not shared by newcomers")
	}
	if _, wait := f.reserve(6000, false, t0.Add(11*time.Second)); wait != 0 {
		t.Error("a key let through untracked was held back by the overflow bucket")
	}
	if take(2, t0.Add(11*time.Second)) != 0 || take(2, t0.Add(11*time.Second)) == 0 {
		t.Error("key 2 lost its bucket in the flood")
	}
	// Once the buckets refill they are dropped to make room.
	later := t0.Add(time.Hour)
	if take(7000, later) != 0 {
		t.Fatal("newcomer refused after every bucket refilled")
	}
	if n := f.tracked(); n != 1 {
		t.Errorf("%d keys tracked after the sweep, want 1", n)
	}
}

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7/32",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
	} {
		if got := sourceKey(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	if sourceKey(netip.Addr{}) != (netip.Prefix{}) {
		t.Error("invalid address: want the zero prefix")
	}
}

// BenchmarkLoginFailure compares the cost of a wrong password and of an
// unknown machine (real bcrypt cost, no rate limit).
func BenchmarkLoginFailure(b *testing.B) {
	l := startLAPI(&testing.T{}, func(c *csconfig.Config) { c.API.Server.LoginLimit.Enabled = new(bool) })
	defer l.Stop()
	hash, err := bcrypt.GenerateFromPassword([]byte("bench-password"), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Store.CreateMachine(context.Background(), store.Machine{MachineID: "bench", PasswordHash: string(hash), IsValidated: true}, false); err != nil {
		b.Fatal(err)
	}
	for _, machine := range []string{"bench", "nosuchmachine"} {
		body, _ := json.Marshal(loginBody(machine, "guess"))
		b.Run(machine, func(b *testing.B) {
			for b.Loop() {
				req, _ := http.NewRequest("POST", l.URL+"/v1/watchers/login", bytes.NewReader(body))
				req.Header.Set("User-Agent", testUA)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

// BenchmarkTokenCheck is an authenticated request that does little else
// (GET /v1/allowlists with none), served in process: the cost of checking
// a token against the machine's row on every request.
func BenchmarkTokenCheck(b *testing.B) {
	l := startLAPI(&testing.T{}, nil)
	defer l.Stop()
	tok := l.login()
	h := l.Server.Handler()
	for b.Loop() {
		req := httptest.NewRequest("GET", "/v1/allowlists", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// TestRegistrationRateLimit: each registration costs a bcrypt hash and a
// row, so one address gets source_burst of them; an existing name is
// refused before any hashing, and another address is unaffected.
func TestRegistrationRateLimit(t *testing.T) {
	l := startLAPI(t, func(c *csconfig.Config) {
		c.API.Server.LoginLimit = csconfig.LoginLimit{SourceBurst: 3, SourceRefill: csconfig.Duration{Duration: time.Hour},
			MachineBurst: 5, MachineRefill: csconfig.Duration{Duration: time.Hour}, MaxTracked: 100}
	})
	register := func(src, name string) reply {
		return l.sendFrom(src, "POST", "/v1/watchers", hdr("User-Agent", testUA), map[string]any{"machine_id": name, "password": "a-long-enough-password"})
	}
	for i := range 3 {
		if r := register("127.0.0.7", "flood"+strconv.Itoa(i)); r.Status != http.StatusCreated {
			t.Fatalf("registration %d: %s", i+1, r)
		}
	}
	if r := register("127.0.0.7", "flood3"); r.Status != http.StatusTooManyRequests {
		t.Errorf("4th registration from one address: %s, want 429", r)
	}
	if r := register("127.0.0.7", "flood0"); r.Status != http.StatusForbidden {
		t.Errorf("existing name: %s, want 403", r)
	}
	if r := register("127.0.0.8", "elsewhere"); r.Status != http.StatusCreated {
		t.Errorf("registration from another address: %s", r)
	}
	if n := l.count("machines"); n != 4 {
		t.Errorf("%d machines, want 4", n)
	}
}
