package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	log "github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/internal/lapitest"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

const (
	testMachine  = "agent-test"
	testPassword = "agent-test-password-0123456789"
	waitLimit    = 10 * time.Second
)

// testLAPI is a real LAPI on loopback over a SQLite file, with the test
// machine registered.
type testLAPI struct {
	*lapitest.LAPI
	t testing.TB
}

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startLAPI serves the database at dbPath on addr ("" = any port).
func startLAPI(t testing.TB, dbPath, addr string) *testLAPI {
	t.Helper()
	l := &testLAPI{LAPI: lapitest.Start(t, dbPath, addr), t: t}
	l.AddMachine(testMachine, testPassword)
	return l
}

// messages lists the stored alerts' messages, sorted.
func (l *testLAPI) messages() []string {
	l.t.Helper()
	alerts, err := l.Store.QueryAlerts(context.Background(), store.AlertFilter{Limit: 0, IncludeCAPI: true}, time.Now())
	if err != nil {
		l.t.Fatalf("querying alerts: %v", err)
	}
	out := make([]string, 0, len(alerts))
	for _, a := range alerts {
		out = append(out, a.Message)
	}
	sort.Strings(out)
	return out
}

func newClient(t testing.TB, url string) *apiclient.Client {
	t.Helper()
	c, err := apiclient.New(apiclient.Config{URL: url, MachineID: testMachine, Password: testPassword, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testLogger(t testing.TB) *log.Entry {
	l := log.New()
	l.SetOutput(t.Output())
	l.SetLevel(log.InfoLevel)
	return l.WithField("component", "delivery")
}

// fastConfig retries quickly so outages in tests are short.
func fastConfig(dir string) Config {
	return Config{QueueDir: dir, RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, HeartbeatInterval: -1}
}

func newPusher(t *testing.T, cfg Config, url string) *Pusher {
	t.Helper()
	p, err := New(cfg, newClient(t, url), testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// run starts p.Run and returns a stop function that waits for it.
func run(t *testing.T, p *Pusher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(waitLimit):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// alert is an overflow as the agent pushes it; msg identifies it in the
// LAPI (which assigns its own uuid).
func alert(msg string) *models.Alert {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	ip := "192.0.2.7"
	return &models.Alert{
		Scenario: "crowdsecurity/ssh-bf", ScenarioHash: "abc", ScenarioVersion: "0.1", Message: msg,
		EventsCount: 6, StartAt: now, StopAt: now, Capacity: 5, Leakspeed: "10s", Remediation: true, Kind: "crowdsec",
		Source: &models.Source{Scope: "Ip", Value: ip, IP: ip},
		Events: []*models.Event{{Timestamp: now, Meta: []models.Meta{{Key: "source_ip", Value: ip}}}},
	}
}

// queuedAlert is the alert r carries, as its payload says (what the LAPI
// gets).
func queuedAlert(t *testing.T, r record) *models.Alert {
	t.Helper()
	a, err := models.DecodeAlert(r.payload)
	if err != nil {
		t.Fatalf("queued alert %d: %v", r.seq, err)
	}
	return a
}

func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%03d", prefix, i))
	}
	sort.Strings(out)
	return out
}

func pushAll(t *testing.T, p *Pusher, msgs []string) {
	t.Helper()
	for _, m := range msgs {
		if err := p.Push(context.Background(), alert(m)); err != nil {
			t.Fatalf("Push(%s): %v", m, err)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitMessages waits until the LAPI holds exactly want (sorted), then
// checks that no further alert trickles in.
func waitMessages(t *testing.T, l *testLAPI, want []string) {
	t.Helper()
	var got []string
	deadline := time.Now().Add(waitLimit)
	for {
		got = l.messages()
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	got = l.messages()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("LAPI alerts:\n got %d %v\nwant %d %v", len(got), got, len(want), want)
	}
}

// faultProxy sits between the Pusher and a real LAPI and can answer
// POST /v1/alerts itself, to stage failures the LAPI would only show
// under rare conditions.
type faultProxy struct {
	srv *http.Server
	url string

	mu     sync.Mutex
	fail   func(r *http.Request) (status int, body string) // status 0 = forward
	counts map[string]int                                  // requests by "METHOD path"
}

func newFaultProxy(t *testing.T, backend string) *faultProxy {
	t.Helper()
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	fp := &faultProxy{counts: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp.url = "http://" + ln.Addr().String() + "/"
	fp.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fp.mu.Lock()
		fp.counts[r.Method+" "+r.URL.Path]++
		fail := fp.fail
		fp.mu.Unlock()
		if fail != nil {
			status, body := fail(r)
			switch status {
			case 0:
			case statusReset, statusStoredThenReset:
				if status == statusStoredThenReset {
					// The LAPI takes the request; its answer is lost.
					rp.ServeHTTP(httptest.NewRecorder(), r)
				} else {
					_, _ = io.Copy(io.Discard, r.Body)
				}
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Errorf("hijacking: %v", err)
					return
				}
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // a reset, not a clean close
				}
				conn.Close()
				return
			default:
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				fmt.Fprint(w, body)
				return
			}
		}
		rp.ServeHTTP(w, r)
	})}
	go fp.srv.Serve(ln)
	t.Cleanup(func() { fp.srv.Close() })
	return fp
}

// Statuses a faultProxy's fail function may return beside HTTP ones: the
// connection is reset mid-request, before the LAPI sees the request or
// after the LAPI took it.
const (
	statusReset           = -1
	statusStoredThenReset = -2
)

func (fp *faultProxy) setFail(f func(r *http.Request) (int, string)) {
	fp.mu.Lock()
	fp.fail = f
	fp.mu.Unlock()
}

func (fp *faultProxy) count(key string) int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.counts[key]
}

// gather reads one series from reg: a counter with result=label, or an
// unlabelled gauge or counter when label is "".
func gather(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" {
				if m.Counter != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" && lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{result=%q}", name, label)
	return 0
}

// segments lists the queue's segment files.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, segmentPrefix+"*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// smallFS mounts a tmpfs of size bytes on a new directory and unmounts it
// when the test ends; the test is skipped where mounting is not allowed
// (not root, or no CAP_SYS_ADMIN).
func smallFS(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// fillFS fills the filesystem of dir with a dummy file, as a flood of log
// lines would, then frees leave bytes (whole pages) of it again.
func fillFS(t *testing.T, dir string, leave int64) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	var size int64
	for {
		n, err := f.Write(chunk)
		size += int64(n)
		if errors.Is(err, unix.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(max(0, size-leave)); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if free := int64(st.Bavail) * st.Bsize; free > leave+4096 {
		t.Fatalf("%d bytes free after filling, want about %d", free, leave)
	}
}
