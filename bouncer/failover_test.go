package bouncer

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/internal/lapitest"
	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/lapi/apikey"
	"github.com/rampart-ips/rampart/lapi/store"
)

// streamLog is a real reverse proxy on loopback in front of one LAPI that
// notes each decision-stream pull: "startup" or "delta cursor=<c>".
// Closing it refuses connections, as a dead LAPI host does.
type streamLog struct {
	url string
	srv *http.Server

	mu    sync.Mutex
	pulls []string
}

func newStreamLog(t *testing.T, backend string) *streamLog {
	t.Helper()
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &streamLog{url: "http://" + ln.Addr().String() + "/"}
	rp := httputil.NewSingleHostReverseProxy(u)
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/decisions/stream" {
			q := r.URL.Query()
			pull := "delta cursor=" + q.Get("cursor")
			if q.Get("startup") == "true" {
				pull = "startup"
			}
			s.mu.Lock()
			s.pulls = append(s.pulls, pull)
			s.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	})}
	go s.srv.Serve(ln)
	t.Cleanup(s.close)
	return s
}

func (s *streamLog) close() { _ = s.srv.Close() }

func (s *streamLog) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.pulls...)
}

// count returns how many pulls start with prefix.
func (s *streamLog) count(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.pulls {
		if strings.HasPrefix(p, prefix) {
			n++
		}
	}
	return n
}

func failoverMetric(t *testing.T, m *Metrics) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "fw_bouncer_lapi_failovers_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no fw_bouncer_lapi_failovers_total")
	return 0
}

// TestFailoverKeepsDeltas runs a bouncer with api_urls against two real
// LAPIs serving one SQLite file (a fleet on one database). LAPI 1 dies
// mid-run: the bouncer keeps enforcing what it holds (no removal, no
// reload), moves to LAPI 2 and receives a ban added there as a delta from
// its cursor, never asking LAPI 2 for the full state. Then both are down:
// the bouncer says so at every retry and keeps running and enforcing; once
// LAPI 2 is back, a new ban arrives as a delta again.
func TestFailoverKeepsDeltas(t *testing.T) {
	db := filepath.Join(t.TempDir(), "crowdsec.db")
	l1 := lapitest.Start(t, db, "")
	key := l1.AddBouncer("fw")
	l2 := lapitest.Start(t, db, "")
	p1, p2 := newStreamLog(t, l1.URL()), newStreamLog(t, l2.URL())
	banBatch(t, l1.Store, "one", []string{"198.18.0.1"})

	nft, ns := nftInNS(t)
	fw := &recordingFW{Backend: nft}
	cfg, err := ParseConfig([]byte(fmt.Sprintf("mode = \"nftables\"\napi_key = %q\napi_urls = [%q, %q]\nrequest_timeout = \"5s\"\n"+
		"update_frequency = \"20ms\"\nresync_interval = \"0s\"\nmetrics_interval = \"0s\"\n", key, p1.url, p2.url)), "t")
	if err != nil {
		t.Fatal(err)
	}
	logger := logrus.New()
	logger.Out = io.Discard
	hook := logtest.NewLocal(logger)
	client, err := apiclient.New(apiclient.Config{URLs: cfg.LAPIURLs(), APIKey: cfg.APIKey, Timeout: cfg.RequestTimeout.Duration,
		Log: logrus.NewEntry(logger)})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(fw)
	b := New(cfg, fw, client, m)
	b.log = logrus.NewEntry(logger).WithField("component", "bouncer")
	runReady(t, b)
	if !nstest.Eventually(5*time.Second, func() bool { return kernelBans(t, ns) == 1 }) {
		t.Fatalf("first sync missing:\n%s", ruleset(t, ns))
	}
	if p1.count("startup") != 1 || p2.count("") != 0 {
		t.Fatalf("before the failure: LAPI 1 pulls %v, LAPI 2 pulls %v", p1.list(), p2.list())
	}
	fw.mu.Lock()
	fw.replaced = 0
	fw.mu.Unlock()

	l1.Stop()
	p1.close()
	banBatch(t, l2.Store, "two", []string{"198.18.0.2"})
	if !nstest.Eventually(10*time.Second, func() bool { return b.held() == 2 && kernelBans(t, ns) == 2 }) {
		t.Fatalf("the ban added on LAPI 2 never arrived: bouncer holds %d\n%s", b.held(), ruleset(t, ns))
	}
	if n := p2.count("startup"); n != 0 {
		t.Errorf("LAPI 2 was asked for the full state %d times after the failover; want deltas only", n)
	}
	// LAPI 1 handed over cursor 1 (the first ban's change).
	if pulls := p2.list(); len(pulls) == 0 || pulls[0] != "delta cursor=1" {
		t.Errorf("LAPI 2 pulls %v: want the first one a delta from the cursor LAPI 1 handed over (1)", pulls)
	}
	if n := failoverMetric(t, m); n == 0 || n != float64(client.Failovers()) {
		t.Errorf("fw_bouncer_lapi_failovers_total = %v after LAPI 1 died, client counted %d", n, client.Failovers())
	}
	moved := false
	for _, e := range hook.AllEntries() {
		if e.Data["from"] == p1.url && e.Data["to"] == p2.url && e.Data["error"] != nil {
			moved = true
		}
	}
	if !moved {
		t.Error("no log entry with from, to and error for the move to LAPI 2")
	}

	// Both down: the bouncer keeps running, enforcing and saying why.
	addr2 := l2.Addr
	l2.Stop()
	waitEntry(t, hook, "pulling decisions failed")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n := 0
		for _, e := range hook.AllEntries() {
			if e.Message == "pulling decisions failed; the firewall keeps its current state" {
				if err, _ := e.Data["error"].(error); err != nil && strings.Contains(err.Error(), "no LAPI available (2 tried)") {
					n++
				}
			}
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no repeated error naming both LAPIs while both are down")
		}
	}
	if kernelBans(t, ns) != 2 {
		t.Errorf("the firewall changed while every LAPI was down:\n%s", ruleset(t, ns))
	}

	l2 = lapitest.Start(t, db, addr2)
	banBatch(t, l2.Store, "three", []string{"198.18.0.3"})
	if !nstest.Eventually(20*time.Second, func() bool { return kernelBans(t, ns) == 3 }) {
		t.Fatalf("the ban added once LAPI 2 was back never arrived:\n%s", ruleset(t, ns))
	}
	if n := p2.count("startup"); n != 0 {
		t.Errorf("LAPI 2 was asked for the full state %d times; want deltas only", n)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if len(fw.removed) != 0 || fw.replaced != 0 {
		t.Errorf("the firewall lost bans during the outages: removed %v, reloaded %d times", fw.removed, fw.replaced)
	}
}

// TestFailoverCursorGone: api_urls wrongly lists a LAPI of another
// database. Its stream cannot continue from LAPI 1's cursor (it is ahead of
// its own changes): it answers 410, and the bouncer says so and pulls that
// LAPI's full state instead of applying a wrong delta.
func TestFailoverCursorGone(t *testing.T) {
	dir := t.TempDir()
	l1 := lapitest.Start(t, filepath.Join(dir, "one.db"), "")
	key := l1.AddBouncer("fw")
	for i := range 3 {
		banBatch(t, l1.Store, fmt.Sprint(i), []string{fmt.Sprintf("198.18.0.%d", i+1)})
	}
	l2 := lapitest.Start(t, filepath.Join(dir, "two.db"), "")
	if _, err := l2.Store.CreateBouncer(context.Background(), store.Bouncer{Name: "fw", APIKeyHash: apikey.Hash(key)}); err != nil {
		t.Fatal(err)
	}
	banBatch(t, l2.Store, "other", []string{"198.18.0.9"})
	p1 := newStreamLog(t, l1.URL())
	cfg, err := ParseConfig([]byte(fmt.Sprintf("mode = \"nftables\"\napi_key = %q\napi_urls = [%q, %q]\nrequest_timeout = \"5s\"\n"+
		"update_frequency = \"20ms\"\nlong_poll = false\nresync_interval = \"0s\"\nmetrics_interval = \"0s\"\n", key, p1.url, l2.URL())), "t")
	if err != nil {
		t.Fatal(err)
	}
	client, err := apiclient.New(apiclient.Config{URLs: cfg.LAPIURLs(), APIKey: cfg.APIKey, Timeout: cfg.RequestTimeout.Duration})
	if err != nil {
		t.Fatal(err)
	}
	fw, ns := nftInNS(t)
	logger := logrus.New()
	logger.Out = io.Discard
	hook := logtest.NewLocal(logger)
	b := New(cfg, fw, client, nil)
	b.log = logrus.NewEntry(logger).WithField("component", "bouncer")
	runReady(t, b)
	if kernelBans(t, ns) != 3 {
		t.Fatalf("first sync:\n%s", ruleset(t, ns))
	}
	l1.Stop()
	p1.close()
	e := waitEntry(t, hook, "the LAPI cannot send this bouncer's missed changes")
	if e.Data["lapi"] != l2.URL() {
		t.Errorf("the cursor-gone warning names %v, want %s", e.Data["lapi"], l2.URL())
	}
	if !nstest.Eventually(10*time.Second, func() bool { return b.held() == 1 && kernelBans(t, ns) == 1 }) {
		t.Fatalf("after the full pull from LAPI 2 the bouncer holds %d:\n%s", b.held(), ruleset(t, ns))
	}
	if !strings.Contains(ruleset(t, ns), "198.18.0.9") {
		t.Errorf("LAPI 2's ban missing:\n%s", ruleset(t, ns))
	}
}
