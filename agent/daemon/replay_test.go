package daemon

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/lapi/store"
)

// replayAgent builds a replay of a file with ips addresses each failing
// six SSH logins in one second (one rampart/ssh-bf alert each), queued
// for the LAPI at lapiAddr with at most maxQueued alerts waiting.
func replayAgent(t *testing.T, dir, lapiAddr string, ips, maxQueued int, wait time.Duration) *Agent {
	t.Helper()
	rulesDir, _ := filepath.Abs("../../rules")
	logPath := filepath.Join(dir, "auth.log")
	var b strings.Builder
	for i := range ips {
		for range 6 {
			fmt.Fprintf(&b, "Feb 12 14:%02d:%02d host sshd[1]: Failed password for root from 198.51.%d.%d port 5 ssh2\n", i/60, i%60, 100+i/200, 1+i%200)
		}
	}
	if err := os.WriteFile(logPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := agentConfig(t, dir, rulesDir, "http://"+lapiAddr+"/")
	cfg.Crowdsec.AlertQueueMaxAlerts = maxQueued
	ag, err := New(cfg, Options{DSN: "file://" + logPath, Labels: map[string]string{"type": "syslog"}, DrainTimeout: wait})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ag.Close)
	return ag
}

// loopbackAddr returns a loopback address nothing listens on (yet).
func loopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestReplayWaitsForRoom: a replay raising five times more alerts than
// alert_queue_max_alerts, into a LAPI that is down while the queue fills
// and starts later, delivers every alert: the full queue holds the
// reading back instead of dropping its oldest alerts as the service does.
func TestReplayWaitsForRoom(t *testing.T) {
	dir := t.TempDir()
	addr := loopbackAddr(t)
	ag := replayAgent(t, dir, addr, 100, 20, time.Minute)
	var logs syncBuffer
	lg := log.New()
	lg.SetOutput(&logs)
	ag.log = lg.WithField("component", "agent")
	done := make(chan error, 1)
	go func() { done <- ag.Run(context.Background()) }()

	deadline := time.Now().Add(waitLimit)
	for ag.pusher.Stats().Queued < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("the replay's queue never filled: %+v", ag.pusher.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	l := startLAPI(t, filepath.Join(dir, "crowdsec.db"), addr)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("replay: %v", err)
		}
	case <-time.After(2 * waitLimit):
		t.Fatal("the replay did not end once the LAPI answered")
	}
	raised := ag.Stats().Alerts.Load()
	alerts, err := l.Store.QueryAlerts(context.Background(), store.AlertFilter{IncludeCAPI: true}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st := ag.pusher.Stats()
	if raised < 100 || int64(len(alerts)) != raised || st.Dropped != 0 || st.Refused != 0 || st.Delivered != uint64(raised) {
		t.Fatalf("raised %d alerts, the LAPI holds %d; delivery %+v", raised, len(alerts), st)
	}
	seen := map[string]bool{}
	for _, a := range alerts {
		seen[a.GetValue()] = true
	}
	if len(seen) != 100 {
		t.Errorf("the LAPI has alerts for %d addresses, want 100", len(seen))
	}
	// The replay says where its time went, up to its last acknowledged
	// alert.
	var timeline string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, `msg="replay timeline"`) {
			timeline = line
		}
	}
	for _, f := range []string{"rules_loaded=", "first_line=", "last_line=", "last_poured=", "first_ack=", "last_ack=", "drained=", "posts=", "workers_idle="} {
		if !strings.Contains(timeline, f) || strings.Contains(timeline, f+"- ") {
			t.Errorf("replay timeline without %s: %q", f, timeline)
		}
	}
}

// syncBuffer is a bytes.Buffer for a logger's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestReplayLAPINeverBack: with the LAPI down for good, a replay whose
// queue is full stops after -replay-wait and fails, naming the alerts it
// did not deliver, instead of dropping them or reading on.
func TestReplayLAPINeverBack(t *testing.T) {
	dir := t.TempDir()
	ag := replayAgent(t, dir, loopbackAddr(t), 100, 20, 500*time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- ag.Run(context.Background()) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * waitLimit):
		t.Fatal("the replay did not end with its LAPI down")
	}
	if err == nil {
		t.Fatal("a replay whose LAPI never answered succeeded")
	}
	raised := ag.Stats().Alerts.Load()
	want := fmt.Sprintf("replay: %d of %d alerts not delivered", raised, raised)
	if raised < 20 || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "stopped once its queue was full") {
		t.Fatalf("error %q; want it to contain %q and say the replay stopped", err, want)
	}
	if st := ag.pusher.Stats(); st.Dropped != 0 || st.Queued != 20 {
		t.Errorf("delivery: %+v, want 20 queued and none dropped", st)
	}
}

// TestReplayInterrupted: Ctrl-C while the replay waits for room ends it
// at once, with an error saying it was interrupted.
func TestReplayInterrupted(t *testing.T) {
	dir := t.TempDir()
	ag := replayAgent(t, dir, loopbackAddr(t), 100, 20, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	deadline := time.Now().Add(waitLimit)
	for ag.pusher.Stats().Queued < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("the replay's queue never filled: %+v", ag.pusher.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "interrupted") {
			t.Fatalf("interrupted replay: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Ctrl-C did not stop a replay waiting for room")
	}
}
