package lapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/models"
)

// slowBody is a request that announces 100 kB of body and sends one byte.
const slowBody = "POST /v1/watchers HTTP/1.1\r\nHost: lapi\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"

// slowHeader is a request header that never ends.
const slowHeader = "POST /v1/watchers HTTP/1.1\r\nHost: lapi\r\n"

// dialFrom opens a TCP connection to the LAPI from a loopback source
// address (127.0.0.0/8 is all loopback), so tests can play several clients.
func (l *testLAPI) dialFrom(src string) net.Conn {
	l.t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", strings.TrimPrefix(l.URL, "http://"))
	if err != nil {
		l.t.Fatalf("dialing from %s: %v", src, err)
	}
	l.t.Cleanup(func() { c.Close() })
	return c
}

// openSlow opens n connections from src, each sending req and no more.
func (l *testLAPI) openSlow(src, req string, n int) []net.Conn {
	l.t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = l.dialFrom(src)
		// A connection the server already refused may fail the write.
		_, _ = conns[i].Write([]byte(req))
	}
	return conns
}

// closedByServer reads c until the server closes it and returns what it
// sent. The deadline is only a bound on a broken test: a connection still
// open when it passes is an error.
func closedByServer(c net.Conn) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil
	}
	return string(got), err
}

// healthFrom asks /health over a new connection from src; ok is false when
// the server closed the connection without answering.
func (l *testLAPI) healthFrom(src string) (status int, ok bool) {
	l.t.Helper()
	c := l.dialFrom(src)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte("GET /health HTTP/1.1\r\nHost: lapi\r\nConnection: close\r\n\r\n")); err != nil {
		return 0, false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			l.t.Fatalf("/health from %s: no answer and not closed", src)
		}
		return 0, false
	}
	resp.Body.Close()
	return resp.StatusCode, true
}

// TestConnectionCaps floods the LAPI with connections that never finish
// their body: one address gets max_connections_per_source of them, the
// rest are closed at once, and other addresses are still served. A trusted
// proxy, whose clients all share its address, is held to the total only.
func TestConnectionCaps(t *testing.T) {
	l := startLAPI(t, func(c *csconfig.Config) {
		c.API.Server.MaxConnectionsPerSource = 20
		c.API.Server.MaxConnections = 100
		c.API.Server.ReadTimeout.Duration = time.Hour // the slow clients stay for the whole test
		c.API.Server.UseForwardedForHeaders = true
		c.API.Server.TrustedProxies = []string{"127.0.0.3"}
	})
	attacker := l.openSlow("127.0.0.2", slowBody, 200)
	// The first 20 were accepted in order; the server closed the others
	// without reading them.
	for i, c := range attacker[20:] {
		if got, err := closedByServer(c); err != nil || got != "" {
			t.Fatalf("connection %d over the per-source cap: read %q, %v; want closed without an answer", 20+i, got, err)
		}
	}
	if _, ok := l.healthFrom("127.0.0.2"); ok {
		t.Error("a 21st connection from the flooding address was served")
	}
	if status, ok := l.healthFrom("127.0.0.1"); !ok || status != 200 {
		t.Errorf("/health from another address during the flood: %d, served %v", status, ok)
	}
	l.stream(l.addBouncer("fw"), "&startup=true") // a bouncer from another address is served

	// The proxy gets past the per-source cap up to the total (80 slots
	// are left; 85 asked): once there, nobody else gets in.
	proxy := l.openSlow("127.0.0.3", slowBody, 85)
	if _, ok := l.healthFrom("127.0.0.1"); ok {
		t.Error("a connection over max_connections was served, or the proxy was held to the per-source cap")
	}
	// Its slow clients leaving frees the server again.
	for _, c := range proxy {
		c.Close()
	}
	if !nstest.Eventually(20*time.Second, func() bool { s, ok := l.healthFrom("127.0.0.1"); return ok && s == 200 }) {
		t.Error("/health not served once the proxy's connections left")
	}
}

// TestSlowClientsTimeOut: clients that trickle their header or body are
// closed after the read timeouts, while a long-poll that outlasts both is
// answered in full.
func TestSlowClientsTimeOut(t *testing.T) {
	l := startLAPI(t, func(c *csconfig.Config) {
		c.API.Server.ReadHeaderTimeout.Duration = 300 * time.Millisecond
		c.API.Server.ReadTimeout.Duration = 300 * time.Millisecond
	})
	key := l.addBouncer("fw")
	l.stream(key, "&startup=true") // sets the cursor, so the next pull may wait
	type answer struct {
		status int
		body   []byte
		err    error
	}
	poll := make(chan answer, 1)
	go func() { // not l.send: it may not fail the test from this goroutine
		req, _ := http.NewRequest("GET", l.URL+"/v1/decisions/stream?wait=1500ms", nil)
		req.Header = keyHdr(key)
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			poll <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		poll <- answer{resp.StatusCode, body, err}
	}()

	bodies := l.openSlow("127.0.0.2", slowBody, 20)
	headers := l.openSlow("127.0.0.2", slowHeader, 20)
	if status, ok := l.healthFrom("127.0.0.1"); !ok || status != 200 {
		t.Errorf("/health beside slow clients: %d, served %v", status, ok)
	}
	var wg sync.WaitGroup
	for i, c := range append(bodies, headers...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := closedByServer(c); err != nil {
				t.Errorf("slow connection %d not closed by the server: %v (read %q)", i, err, got)
			}
		}()
	}
	wg.Wait()

	a := <-poll
	var sr models.StreamResponse
	if a.err == nil {
		a.err = json.Unmarshal(a.body, &sr)
	}
	if a.status != 200 || a.err != nil {
		t.Errorf("long-poll longer than the read timeouts: %d %q (%v)", a.status, a.body, a.err)
	}
	// A body sent in time is read as usual.
	r := l.send("POST", "/v1/watchers", nil, map[string]any{"machine_id": "m", "password": "p"})
	expectEmpty(t, "registration beside the slow clients", r, http.StatusCreated)
}

// TestConnectionCapPerIPv6Network: an IPv6 host holds a whole /64, so the
// per-source cap counts the /64, not each address an attacker picks in it.
func TestConnectionCapPerIPv6Network(t *testing.T) {
	l := &connLimiter{perSource: 2, bySource: map[netip.Prefix]int{}, log: log.NewEntry(log.StandardLogger())}
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	for i, c := range []struct {
		addr string
		want bool
	}{
		{"2001:db8::1", true}, {"2001:db8::2", true}, {"2001:db8::ffff:3", false}, // same /64
		{"2001:db8:0:1::1", true},                                                           // the next /64
		{"192.0.2.1", true}, {"192.0.2.1", true}, {"192.0.2.1", false}, {"192.0.2.2", true}, // IPv4: per address
	} {
		if got := l.acquire(a(c.addr)); got != c.want {
			t.Errorf("#%d %s: acquire = %v, want %v", i, c.addr, got, c.want)
		}
	}
	l.release(a("2001:db8::2"))
	if !l.acquire(a("2001:db8::abcd")) {
		t.Errorf("a slot given back in 2001:db8::/64 was not reusable")
	}
}
