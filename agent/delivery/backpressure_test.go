package delivery

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pauseAlerts makes fp answer POST /v1/alerts with 503 while paused is
// set, as a LAPI restarting or overloaded would.
func pauseAlerts(fp *faultProxy, paused *atomic.Bool) {
	fp.setFail(func(r *http.Request) (int, string) {
		if paused.Load() && r.Method == http.MethodPost && r.URL.Path == "/v1/alerts" {
			return http.StatusServiceUnavailable, `{"message":"paused"}`
		}
		return 0, ""
	})
}

// TestWaitForRoomLosesNothing: with WaitForRoom (a replay), pushing five
// times the queue's bound while the LAPI is paused drops nothing: Push
// waits at the bound, and once the LAPI answers every alert reaches it.
func TestWaitForRoomLosesNothing(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	fp := newFaultProxy(t, l.URL())
	var paused atomic.Bool
	paused.Store(true)
	pauseAlerts(fp, &paused)
	cfg := fastConfig(t.TempDir())
	cfg.MaxQueueAlerts = 20
	cfg.WaitForRoom = time.Minute
	p := newPusher(t, cfg, fp.url)
	run(t, p)

	want := names("bp", 0, 100)
	pushed := pushInBackground(p, want)
	waitFor(t, "a full queue", func() bool { return p.Stats().Queued == 20 })
	waitFor(t, "retries against the paused LAPI", func() bool { return fp.count("POST /v1/alerts") > 5 })
	select {
	case err := <-pushed:
		t.Fatalf("pushing 100 alerts into a queue of 20 with the LAPI paused returned (%v): it should wait", err)
	default:
	}
	if s := p.Stats(); s.Dropped != 0 || s.Refused != 0 || s.Queued != 20 {
		t.Fatalf("stats while paused: %+v", s)
	}

	paused.Store(false)
	select {
	case err := <-pushed:
		if err != nil {
			t.Fatalf("Push: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Push still waits after the LAPI came back")
	}
	waitMessages(t, l, want)
	// Delivered is counted just after the queue's head moves.
	waitFor(t, "every alert delivered", func() bool { s := p.Stats(); return s.Queued == 0 && s.Delivered == 100 })
	if s := p.Stats(); s.Dropped != 0 || s.Refused != 0 {
		t.Errorf("stats: %+v", s)
	}
}

// TestWaitForRoomStalls: a LAPI that never answers makes a waiting Push
// fail with ErrStalled after WaitForRoom, saying why; every later Push
// fails at once, and the alerts not queued are counted.
func TestWaitForRoomStalls(t *testing.T) {
	cfg := fastConfig(t.TempDir())
	cfg.MaxQueueAlerts = 20
	cfg.WaitForRoom = 200 * time.Millisecond
	p := newPusher(t, cfg, "http://"+freeAddr(t)+"/")
	run(t, p)

	msgs := names("stall", 0, 25)
	var err error
	for i, m := range msgs {
		if err = p.Push(context.Background(), alert(m)); err != nil {
			if i != 20 {
				t.Fatalf("Push %d failed, want the 21st to: %v", i, err)
			}
			break
		}
	}
	if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "took none of them for 200ms") {
		t.Fatalf("Push into a full queue with the LAPI down: %v, want ErrStalled", err)
	}
	select {
	case <-p.Stalled():
	default:
		t.Fatal("Stalled() not closed")
	}
	// Later Pushes do not wait again: with a long context they fail.
	if err := p.Push(context.Background(), alert("stall-late-1"), alert("stall-late-2")); !errors.Is(err, ErrStalled) {
		t.Fatalf("Push after the stall: %v", err)
	}
	if s := p.Stats(); s.Queued != 20 || s.Refused != 3 || s.Dropped != 0 {
		t.Errorf("stats: %+v, want 20 queued, 3 refused, none dropped", s)
	}
}

// TestWaitForRoomCancel: a Push waiting for room returns once its context
// ends (Ctrl-C during a replay), long before WaitForRoom.
func TestWaitForRoomCancel(t *testing.T) {
	cfg := fastConfig(t.TempDir())
	cfg.MaxQueueAlerts = 5
	cfg.WaitForRoom = time.Hour
	p := newPusher(t, cfg, "http://"+freeAddr(t)+"/")
	run(t, p)
	pushAll(t, p, names("cancel", 0, 5))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Push(ctx, alert("cancel-waits")) }()
	// Not an assertion on time: a pause so that the cancel most likely
	// finds the Push waiting rather than before its first check.
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Push into a full queue returned: %v", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Push after cancel: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("a waiting Push ignores its context")
	}
	if s := p.Stats(); s.Queued != 5 || s.Refused != 1 || s.Dropped != 0 {
		t.Errorf("stats: %+v", s)
	}
}

// TestWaitForRoomBytes: the byte bound pushes back too: big alerts beyond
// MaxQueueBytes wait rather than push whole segments out.
func TestWaitForRoomBytes(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	fp := newFaultProxy(t, l.URL())
	var paused atomic.Bool
	paused.Store(true)
	pauseAlerts(fp, &paused)
	cfg := fastConfig(t.TempDir())
	cfg.MaxQueueBytes = 64 << 10
	cfg.WaitForRoom = time.Minute
	p := newPusher(t, cfg, fp.url)
	run(t, p)
	big := strings.Repeat("x", 900)
	var want []string
	for i := range 200 {
		want = append(want, big+names("-", i, i+1)[0])
	}
	pushed := pushInBackground(p, want)
	waitFor(t, "a full queue", func() bool {
		qs := p.q.stats()
		return qs.bytes+2*int64(len(big)) > cfg.MaxQueueBytes
	})
	paused.Store(false)
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every alert delivered", func() bool { s := p.Stats(); return s.Queued == 0 && s.Delivered == 200 })
	if s := p.Stats(); s.Dropped != 0 {
		t.Errorf("stats: %+v", s)
	}
	if got := len(l.messages()); got != 200 {
		t.Errorf("LAPI holds %d alerts, want 200", got)
	}
}

// TestWaitForRoomMoveDropsNothing: moving a failing alert behind the
// others in a full queue (it is appended before its old place is freed)
// must not push an alert out with WaitForRoom.
func TestWaitForRoomMoveDropsNothing(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	fp := newFaultProxy(t, l.URL())
	var failures atomic.Int32
	fp.setFail(func(r *http.Request) (int, string) {
		// The batch, its first half, then the head alone three times:
		// the head is moved behind the others.
		if r.Method == http.MethodPost && r.URL.Path == "/v1/alerts" && failures.Add(1) <= 5 {
			return 500, `{"message":"database is locked"}`
		}
		return 0, ""
	})
	cfg := fastConfig(t.TempDir())
	cfg.MaxQueueAlerts = 5
	cfg.WaitForRoom = time.Minute
	p := newPusher(t, cfg, fp.url)
	pushAll(t, p, names("move", 0, 5))
	run(t, p)
	waitMessages(t, l, names("move", 0, 5))
	waitFor(t, "every alert delivered", func() bool { return p.Stats().Delivered == 5 })
	if s := p.Stats(); s.Dropped != 0 {
		t.Errorf("stats: %+v", s)
	}
}

// pushInBackground is pushAll in a goroutine; the channel gets the
// first error, or nil once every push returned.
func pushInBackground(p *Pusher, names []string) <-chan error {
	pushed := make(chan error, 1)
	go func() {
		for _, m := range names {
			if err := p.Push(context.Background(), alert(m)); err != nil {
				pushed <- err
				return
			}
		}
		pushed <- nil
	}()
	return pushed
}
