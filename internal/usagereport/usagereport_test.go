package usagereport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/internal/lapitest"
	"github.com/rampart-ips/rampart/models"
)

const component = "usage-test"

// counter is a component's cumulative count and the report builder that
// sends what moved since the last accepted report.
type counter struct {
	mu         sync.Mutex
	total, acc int
}

func (c *counter) add(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += n
}

func (c *counter) build(_ context.Context, w Window) (*models.UsageMetrics, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.total
	items := []*models.UsageItem{{Name: models.UsageDropped, Unit: models.UsageUnitPacket, Value: float64(cur - c.acc),
		Labels: map[string]string{"ip_type": "ipv4"}}}
	body := &models.UsageMetrics{RemediationComponents: []*models.RemediationComponentUsage{{Type: "test", BaseUsage: w.Base(items)}}}
	return body, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.acc = cur
	}
}

// stored reads back the reports the LAPI kept, oldest first.
func stored(t *testing.T, l *lapitest.LAPI) []models.RemediationComponentUsage {
	t.Helper()
	rs, err := l.Store.UsageReports(context.Background(), "remediation_component", component)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]models.RemediationComponentUsage, len(rs))
	for i, r := range rs {
		if err := json.Unmarshal([]byte(r.Payload), &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func quietLog() *log.Entry {
	l := log.New()
	l.Out = io.Discard
	return log.NewEntry(l)
}

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

// TestRun: the report at start fails while the LAPI is down and is
// retried well before the (hour-long) interval once it is up; the one at
// stop follows. Together they carry every count exactly once, in windows
// that tile time from the start.
func TestRun(t *testing.T) {
	db := filepath.Join(t.TempDir(), "crowdsec.db")
	l := lapitest.Start(t, db, "")
	key := l.AddBouncer(component)
	addr, url := l.Addr, l.URL()
	l.Stop()
	client, err := apiclient.New(apiclient.Config{URL: url, APIKey: key, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var c counter
	c.add(3)
	start := time.Now().Add(-time.Minute)
	r := New(Config{Client: client, Interval: time.Hour, RetryMin: 20 * time.Millisecond, Build: c.build, Start: start, Log: quietLog()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()

	eventually(t, "a failed report", func() bool { return r.Failed() >= 2 })
	c.add(5)
	l = lapitest.Start(t, db, addr)
	eventually(t, "the report retried after the outage", func() bool { return r.Sent() == 1 })
	c.add(7)
	cancel()
	<-done
	if r.Sent() != 2 {
		t.Fatalf("%d reports accepted, want the first and the last", r.Sent())
	}
	rs := stored(t, l)
	if len(rs) != 2 {
		t.Fatalf("%d reports stored, want 2", len(rs))
	}
	sum := 0.0
	from := start.Unix()
	for i, rep := range rs {
		m := rep.Metrics[0]
		sum += m.Items[0].Value
		if got := m.Meta.UtcNowTimestamp - m.Meta.WindowSizeSeconds; got != from {
			t.Errorf("report %d starts at %d, want %d", i, got, from)
		}
		from = m.Meta.UtcNowTimestamp
		if rep.UtcStartupTimestamp != start.Unix() || rep.Version == "" || rep.OS == nil {
			t.Errorf("report %d: startup %d version %q os %v", i, rep.UtcStartupTimestamp, rep.Version, rep.OS)
		}
	}
	if sum != 15 {
		t.Errorf("reports sum to %v, want 15", sum)
	}
}

// TestRunOnce: with no interval (a one-shot run) the only report is the
// last one, sent after ctx ended.
func TestRunOnce(t *testing.T) {
	l := lapitest.Start(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	client, err := apiclient.New(apiclient.Config{URL: l.URL(), APIKey: l.AddBouncer(component)})
	if err != nil {
		t.Fatal(err)
	}
	var c counter
	c.add(4)
	r := New(Config{Client: client, Build: c.build, Start: time.Now(), Log: quietLog()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.Run(ctx)
	if rs := stored(t, l); len(rs) != 1 || rs[0].Metrics[0].Items[0].Value != 4 {
		t.Fatalf("reports %+v, want one with 4", rs)
	}
}

// TestRetryEarly: a failure is retried before the interval and warned
// about once; a 404 (an older LAPI) is warned about once and waits for
// the interval; a failure while stopping waits for the last report.
func TestRetryEarly(t *testing.T) {
	logger, hook := logtest.NewNullLogger()
	r := New(Config{Interval: time.Hour, Start: time.Now(), Log: log.NewEntry(logger)})
	ctx := context.Background()
	down := fmt.Errorf("posting: %w", errors.New("connection refused"))
	old := &apiclient.APIError{Status: 404, Message: "Page or Method not found"}
	for i, step := range []struct {
		err   error
		early bool
	}{{down, true}, {down, true}, {nil, false}, {old, false}, {old, false}, {down, true}} {
		if got := r.retryEarly(ctx, step.err); got != step.early {
			t.Errorf("step %d (%v): retry early %v, want %v", i, step.err, got, step.early)
		}
	}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	if r.retryEarly(stopped, down) {
		t.Error("retrying early while stopping")
	}
	var warns, infos int
	for _, e := range hook.AllEntries() {
		switch e.Level {
		case log.WarnLevel:
			warns++
		case log.InfoLevel:
			infos++
		}
	}
	// The first outage, the older LAPI, the second outage; one recovery.
	if warns != 3 || infos != 1 {
		t.Errorf("%d warnings and %d infos, want 3 and 1: %v", warns, infos, hook.AllEntries())
	}
}

// TestStopDuringReport: a report the LAPI stores while the component
// stops must not be sent again by the last report. The proxy lets the
// LAPI store the report, stops the component, then answers: before, the
// stop cancelled the request in flight, the client saw an error, did not
// move its baseline, and the last report counted the same lines twice.
func TestStopDuringReport(t *testing.T) {
	db := filepath.Join(t.TempDir(), "crowdsec.db")
	l := lapitest.Start(t, db, "")
	key := l.AddBouncer(component)
	target, err := neturl.Parse(l.URL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(*http.Response) error {
		once.Do(func() {
			cancel()
			time.Sleep(200 * time.Millisecond)
		})
		return nil
	}
	srv := httptest.NewServer(proxy)
	defer srv.Close()
	client, err := apiclient.New(apiclient.Config{URL: srv.URL, APIKey: key, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var c counter
	c.add(4)
	r := New(Config{Client: client, Interval: time.Hour, Build: c.build, Start: time.Now(), Log: quietLog()})
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	<-done
	sum := 0.0
	for _, rep := range stored(t, l) {
		sum += rep.Metrics[0].Items[0].Value
	}
	if sum != 4 {
		t.Errorf("stored reports sum to %v, want 4: a report in flight at stop was sent again", sum)
	}
}
