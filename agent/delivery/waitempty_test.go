package delivery

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestWaitEmpty: WaitEmpty returns true once every queued alert reached
// the LAPI (a replay's drain) and false when the LAPI takes nothing
// within the timeout; Timing counts the POSTs and the acks.
func TestWaitEmpty(t *testing.T) {
	addr := freeAddr(t)
	p := newPusher(t, fastConfig(t.TempDir()), "http://"+addr+"/")
	run(t, p)
	want := names("wait", 0, 120) // more than one batch
	pushAll(t, p, want)
	if p.WaitEmpty(context.Background(), 50*time.Millisecond) {
		t.Fatalf("WaitEmpty with the LAPI down: true, stats %+v", p.Stats())
	}
	if tm := p.Timing(); !tm.FirstAck.IsZero() || !tm.LastAck.IsZero() {
		t.Errorf("acks before any delivery: %+v", tm)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if p.WaitEmpty(ctx, waitLimit) {
		t.Error("WaitEmpty with its context over and alerts queued: true")
	}

	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), addr)
	if !p.WaitEmpty(context.Background(), waitLimit) {
		t.Fatalf("WaitEmpty once the LAPI is up: false, stats %+v", p.Stats())
	}
	// Delivered is counted before the alerts leave the queue: no wait.
	if s := p.Stats(); s.Delivered != 120 || s.Queued != 0 {
		t.Fatalf("stats after WaitEmpty: %+v", s)
	}
	waitMessages(t, l, want)
	tm := p.Timing()
	if tm.Posts < 3 || tm.Posting <= 0 || tm.FirstAck.IsZero() || tm.LastAck.Before(tm.FirstAck) {
		t.Errorf("timing: %+v", tm)
	}
	if !p.WaitEmpty(context.Background(), 0) {
		t.Error("WaitEmpty on an empty queue: false")
	}
}
