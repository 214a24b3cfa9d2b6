package delivery

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestFullBatches: with FullBatches (a replay), alerts pushed one at a
// time go to the LAPI in full batches only, until Flush (WaitEmpty calls
// it) sends the rest.
func TestFullBatches(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	cfg := fastConfig(t.TempDir())
	cfg.BatchSize, cfg.FullBatches = 50, true
	p := newPusher(t, cfg, l.URL())
	var mu sync.Mutex
	var acks []int
	p.onAck = func(n int) {
		mu.Lock()
		acks = append(acks, n)
		mu.Unlock()
	}
	run(t, p)

	want := names("full", 0, 120)
	pushAll(t, p, want)
	waitFor(t, "two full batches delivered", func() bool { return p.Stats().Delivered == 100 })
	if s := p.Stats(); s.Queued != 20 {
		t.Fatalf("stats before the flush: %+v", s)
	}
	if !p.WaitEmpty(context.Background(), waitLimit) {
		t.Fatalf("WaitEmpty: false, stats %+v", p.Stats())
	}
	waitMessages(t, l, want)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(acks, []int{50, 50, 20}) {
		t.Errorf("batches acknowledged: %v, want [50 50 20]", acks)
	}
}

// TestFullBatchesWaitingForRoom: a queue bound below the batch size
// (alert_queue_max_alerts) does not stall a replay's pushes: while a Push
// waits for room the delivery loop sends what is queued.
func TestFullBatchesWaitingForRoom(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	cfg := fastConfig(t.TempDir())
	cfg.BatchSize, cfg.FullBatches = 50, true
	cfg.MaxQueueAlerts = 20
	cfg.WaitForRoom = 2 * time.Second
	p := newPusher(t, cfg, l.URL())
	run(t, p)

	want := names("room", 0, 100)
	pushAll(t, p, want)
	if s := p.Stats(); s.Refused != 0 || s.Dropped != 0 {
		t.Fatalf("stats after the pushes: %+v", s)
	}
	if !p.WaitEmpty(context.Background(), waitLimit) {
		t.Fatalf("WaitEmpty: false, stats %+v", p.Stats())
	}
	waitMessages(t, l, want)
}
