package store

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rampart-ips/rampart/internal/procstat"
	"github.com/rampart-ips/rampart/models"
)

// benchEntries is n distinct IPv4 addresses from 10.0.0.0/8, starting at
// offset.
func benchEntries(n, offset int) []ListEntry {
	out := make([]ListEntry, n)
	for i := range out {
		v := uint32(10<<24 + offset + i)
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		out[i] = ListEntry{Value: a.String(), Scope: "Ip", Range: RangeOf(netip.PrefixFrom(a, 32))}
	}
	return out
}

// BenchmarkReplaceList: a 100k-entry feed applied to an empty list
// (apply), then refreshed with 1% of it replaced (refresh1pct), then
// renewed whole (renew100k). push-max-ms is the slowest one-alert push
// made while the feed was being written (the writer is shared: it waits
// for the feed's transaction); rss-MB the process's peak RSS.
func BenchmarkReplaceList(b *testing.B) {
	const n = 100000
	ctx := context.Background()
	full := benchEntries(n, 0)
	pushDuring := func(b *testing.B, s *Store, run func()) {
		var stop atomic.Bool
		var worst atomic.Int64
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				now := time.Now()
				a := &models.Alert{Scenario: "bench/push", Source: &models.Source{Scope: "Ip", Value: "192.0.2.1"}}
				if _, err := s.CreateAlerts(ctx, []NewAlert{{Alert: a, UUID: uuid.NewString(), StartAt: now, StopAt: now}}); err != nil {
					b.Error(err)
					return
				}
				if d := time.Since(now); d.Nanoseconds() > worst.Load() {
					worst.Store(d.Nanoseconds())
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		run()
		stop.Store(true)
		wg.Wait()
		b.ReportMetric(float64(worst.Load())/1e6, "push-max-ms")
		b.ReportMetric(float64(procstat.KB(os.Getpid(), "VmHWM"))/1024, "rss-MB")
	}
	open := func(b *testing.B) *Store {
		s, err := Open(ctx, testConfig(b, filepath.Join(b.TempDir(), "bench.db")))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	b.Run("apply100k", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			s := open(b)
			b.StartTimer()
			pushDuring(b, s, func() {
				if res, err := s.ReplaceList(ctx, ListUpdate{Name: "bench", Type: "ban", Duration: 24 * time.Hour, Entries: full}, time.Now()); err != nil || res.Added != n {
					b.Fatalf("%+v %v", res, err)
				}
			})
		}
	})
	b.Run("refresh1pct", func(b *testing.B) {
		s := open(b)
		if _, err := s.ReplaceList(ctx, ListUpdate{Name: "bench", Type: "ban", Duration: 24 * time.Hour, Entries: full}, time.Now()); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			// 1% of the entries swapped for others, alternately.
			e := append([]ListEntry{}, full[n/100:]...)
			e = append(e, benchEntries(n/100, n+(i%2)*n)...)
			pushDuring(b, s, func() {
				if res, err := s.ReplaceList(ctx, ListUpdate{Name: "bench", Type: "ban", Duration: 24 * time.Hour, Entries: e}, time.Now()); err != nil || res.Added != n/100 {
					b.Fatalf("%+v %v", res, err)
				}
			})
		}
	})
	b.Run("renew100k", func(b *testing.B) {
		s := open(b)
		base := time.Now()
		if _, err := s.ReplaceList(ctx, ListUpdate{Name: "bench", Type: "ban", Duration: 24 * time.Hour, Entries: full}, base); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			at := base.Add(time.Duration(i+1) * 13 * time.Hour)
			pushDuring(b, s, func() {
				if res, err := s.ReplaceList(ctx, ListUpdate{Name: "bench", Type: "ban", Duration: 24 * time.Hour, Entries: full}, at); err != nil || res.Renewed != n {
					b.Fatalf("%+v %v", res, err)
				}
			})
		}
	})
}
