package delivery

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// reportLatency adds p50/p99 (µs) of lat to the benchmark output.
func reportLatency(b *testing.B, prefix string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(f float64) float64 {
		return float64(lat[min(len(lat)-1, int(f*float64(len(lat))))].Microseconds())
	}
	b.ReportMetric(q(0.50), prefix+"p50-µs")
	b.ReportMetric(q(0.99), prefix+"p99-µs")
}

// BenchmarkPush is the durable append: Push returns once the alert is
// fsynced. No LAPI, so the queue fills up and its bound drops the oldest.
func BenchmarkPush(b *testing.B) {
	p, err := New(Config{QueueDir: b.TempDir(), HeartbeatInterval: -1}, newClient(b, "http://127.0.0.1:1/"), testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	a := alert("bench")
	lat := make([]time.Duration, 0, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if err := p.Push(ctx, a); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, "push-", lat)
}

// BenchmarkPushParallel shows group commit: concurrent Pushes share
// fsyncs.
func BenchmarkPushParallel(b *testing.B) {
	p, err := New(Config{QueueDir: b.TempDir(), HeartbeatInterval: -1}, newClient(b, "http://127.0.0.1:1/"), testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		a := alert("bench")
		for pb.Next() {
			if err := p.Push(context.Background(), a); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkEndToEnd is one alert at a time from Push to the LAPI's 201
// and the ack: the delay between an overflow and the LAPI knowing of it.
func BenchmarkEndToEnd(b *testing.B) {
	l := startLAPI(b, filepath.Join(b.TempDir(), "crowdsec.db"), "")
	p, err := New(Config{QueueDir: b.TempDir(), HeartbeatInterval: -1}, newClient(b, l.URL()), testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	acked := make(chan int, 16)
	p.onAck = func(n int) { acked <- n }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Warm up: login and connection.
	if err := p.Push(ctx, alert("warmup")); err != nil {
		b.Fatal(err)
	}
	<-acked

	lat := make([]time.Duration, 0, b.N)
	i := 0
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if err := p.Push(ctx, alert(fmt.Sprint("e2e-", i))); err != nil {
			b.Fatal(err)
		}
		select {
		case <-acked:
		case <-time.After(waitLimit):
			b.Fatal("no ack")
		}
		lat = append(lat, time.Since(t0))
		i++
	}
	b.StopTimer()
	reportLatency(b, "e2e-", lat)
}

// BenchmarkPushBatch is a replay's push: 128 alerts of 6 events at once
// into an ephemeral queue (no fsync), so what it measures is encoding the
// alerts into the queue's records and writing them.
func BenchmarkPushBatch(b *testing.B) {
	p, err := New(Config{QueueDir: b.TempDir(), HeartbeatInterval: -1, Ephemeral: true}, newClient(b, "http://127.0.0.1:1/"), testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	alerts := make([]*models.Alert, 128)
	for i := range alerts {
		a := alert(fmt.Sprintf("bench %d", i))
		for len(a.Events) < 6 {
			a.Events = append(a.Events, a.Events[0])
		}
		alerts[i] = a
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Push(ctx, alerts...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(alerts)), "ns/alert")
}
