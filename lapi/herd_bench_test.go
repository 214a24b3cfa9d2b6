package lapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// BenchmarkHerdWake is a fleet of bouncers long-polling with their own
// cursors (as Rampart's bouncer does), all woken by one new decision: one
// op is the decision reaching every bouncer and every bouncer waiting
// again. cpu-us/pull is the process's CPU (this LAPI and its clients
// together) per woken pull, the figure that bounds how fast a fleet hears
// of a decision; B/pull and allocs/pull are heap allocations.
func BenchmarkHerdWake(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchHerdWake(b, n) })
	}
}

func benchHerdWake(b *testing.B, n int) {
	// Every bouncer of the fleet connects from loopback.
	l := startLAPI(&testing.T{}, func(c *csconfig.Config) {
		c.API.Server.MaxConnections = 2*n + csconfig.DefaultMaxConnections
		c.API.Server.MaxConnectionsPerSource = 2*n + csconfig.DefaultMaxConnectionsPerSource
	})
	defer l.Stop()
	fillDecisions(b, l, 100)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = l.addBouncerB(b, fmt.Sprintf("herd%d", i))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n + 1}}
	pull := func(key, query string) (string, error) {
		req, _ := http.NewRequest("GET", l.URL+"/v1/decisions/stream?"+query, nil)
		req.Header.Set("X-Api-Key", key)
		req.Header.Set("User-Agent", "crowdsec-firewall-bouncer/v0.0.31-rampart")
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return "", err
		}
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("status %d", resp.StatusCode)
		}
		return resp.Header.Get(models.CursorHeader), nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg       sync.WaitGroup
		answered atomic.Int64
		failed   atomic.Value
	)
	for _, key := range keys {
		cursor, err := pull(key, "startup=true&cursor=")
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				next, err := pull(key, "wait=30s&cursor="+cursor)
				if err != nil {
					if ctx.Err() == nil {
						failed.CompareAndSwap(nil, err)
					}
					return
				}
				if next != cursor {
					answered.Add(1)
				}
				cursor = next
			}
		}()
	}
	// waitParked waits until every bouncer waits on the server again.
	waitParked := func(want int64) {
		for answered.Load() < want || l.Server.longPolls.Load() < int64(n) {
			if err := failed.Load(); err != nil {
				b.Fatal(err)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	waitParked(0)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	keys0, sweeps0 := l.Server.keys.reads.Load(), l.Server.sweeps.reads.Load()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		addHerdDecision(b, l, i)
		waitParked(int64(i+1) * int64(n))
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms1)
	pulls := float64(b.N * n)
	b.ReportMetric(float64(cpu.Microseconds())/pulls, "cpu-us/pull")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/pulls, "B/pull")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/pulls, "allocs/pull")
	b.ReportMetric(float64(l.Server.keys.reads.Load()-keys0)/pulls, "key-reads/pull")
	b.ReportMetric(float64(l.Server.sweeps.reads.Load()-sweeps0)/pulls, "sweeps/pull")
	cancel()
	l.Stop()
	client.CloseIdleConnections()
	wg.Wait()
}

// BenchmarkFollowWake is BenchmarkHerdWake for bouncers in follow mode: a
// fleet holding follow responses open, all woken by one new decision; one
// op is the decision's line reaching every follower (parsed as Rampart's
// bouncer parses it). cpu-us/wake is the process's CPU (this LAPI and its
// clients together) per follower woken.
func BenchmarkFollowWake(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchFollowWake(b, n) })
	}
}

func benchFollowWake(b *testing.B, n int) {
	l := startLAPI(&testing.T{}, func(c *csconfig.Config) {
		c.API.Server.MaxConnections = 2*n + csconfig.DefaultMaxConnections
		c.API.Server.MaxConnectionsPerSource = 2*n + csconfig.DefaultMaxConnectionsPerSource
	})
	defer l.Stop()
	fillDecisions(b, l, 100)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n + 1}}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg       sync.WaitGroup
		answered atomic.Int64
		failed   atomic.Value
	)
	cursor := strconv.FormatInt(l.Store.Seq(), 10)
	for i := 0; i < n; i++ {
		key := l.addBouncerB(b, fmt.Sprintf("follow%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", l.URL+"/v1/decisions/stream?follow=true&cursor="+cursor, nil)
			req.Header.Set("X-Api-Key", key)
			req.Header.Set("User-Agent", "crowdsec-firewall-bouncer/v0.0.31-rampart")
			resp, err := client.Do(req)
			if err != nil {
				failed.CompareAndSwap(nil, err)
				return
			}
			defer resp.Body.Close()
			first := true
			err = apiclient.ScanFollow(resp.Body, func(bool, *models.Decision) error { return nil }, func(int64) error {
				if !first {
					answered.Add(1)
				}
				first = false
				return nil
			})
			if err != nil && ctx.Err() == nil {
				failed.CompareAndSwap(nil, err)
			}
		}()
	}
	wait := func(want int64) {
		for answered.Load() < want || l.Server.Follows() < int64(n) {
			if err := failed.Load(); err != nil {
				b.Fatal(err)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	wait(0)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		addHerdDecision(b, l, i)
		wait(int64(i+1) * int64(n))
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms1)
	wakes := float64(b.N * n)
	b.ReportMetric(float64(cpu.Microseconds())/wakes, "cpu-us/wake")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/wakes, "B/wake")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/wakes, "allocs/wake")
	cancel()
	l.Stop()
	wg.Wait()
}

// addHerdDecision adds decision i of a herd benchmark straight into the store.
func addHerdDecision(b *testing.B, l *testLAPI, i int) {
	now := time.Now()
	v := fmt.Sprintf("198.18.%d.%d", i>>8&255, i&255)
	r, _ := store.ParseRange(v)
	a := &models.Alert{Scenario: "manual", Source: &models.Source{Scope: "Ip", Value: v}}
	if _, err := l.Store.CreateAlerts(context.Background(), []store.NewAlert{{Alert: a, UUID: fmt.Sprintf("herd-%d", i), StartAt: now, StopAt: now,
		Decisions: []store.NewDecision{{UUID: fmt.Sprintf("6f1c3e2a-0000-4000-9000-%012d", i), Until: now.Add(time.Hour), Scenario: "manual",
			Type: "ban", Scope: "Ip", Value: v, Origin: "cscli", Range: r}}}}); err != nil {
		b.Fatal(err)
	}
}

// cpuTime is the CPU this process used so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
