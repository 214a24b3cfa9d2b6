package lapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/lapi/apikey"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// fillDecisions stores n IPv4 bans directly (the HTTP path is measured elsewhere).
func fillDecisions(tb testing.TB, l *testLAPI, n int) {
	fillDecisionsOf(tb, l, 0, n, "cscli-import", "manual import")
}

// fillDecisionsOf stores the IPv4 bans number from to to-1 with origin
// and scenario, in alerts of up to 50,000.
func fillDecisionsOf(tb testing.TB, l *testLAPI, from, to int, origin, scenario string) {
	tb.Helper()
	now := time.Now()
	const batch = 50_000
	for start := from; start < to; start += batch {
		end := min(start+batch, to)
		ds := make([]store.NewDecision, 0, end-start)
		for i := start; i < end; i++ {
			v := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
			r, _ := store.ParseRange(v)
			ds = append(ds, store.NewDecision{UUID: fmt.Sprintf("6f1c3e2a-0000-4000-8000-%012d", i), Until: now.Add(4 * time.Hour),
				Scenario: scenario, Type: "ban", Scope: "Ip", Value: v, Origin: origin, Range: r})
		}
		a := &models.Alert{Scenario: scenario, Source: &models.Source{Scope: origin, Value: "import"}}
		if _, err := l.Store.CreateAlerts(context.Background(), []store.NewAlert{{Alert: a, UUID: fmt.Sprintf("bench-%d", start), StartAt: now, StopAt: now, Decisions: ds}}); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkUISummary1M is one refresh of the dashboard (GET
// /ui/api/summary) with 1M active decisions of several origins, unfiltered
// and filtered on the oldest origin; cpu-ms/op is the process's CPU.
func BenchmarkUISummary1M(b *testing.B) {
	l := startLAPI(&testing.T{}, nil)
	defer l.Stop()
	fillDecisionsOf(b, l, 0, 100_000, "cscli", "manual ban")
	fillDecisionsOf(b, l, 100_000, 400_000, "lists", "lists:feed-a")
	fillDecisionsOf(b, l, 400_000, 500_000, "lists", "lists:feed-b")
	fillDecisionsOf(b, l, 500_000, 1_000_000, "CAPI", "crowdsecurity/ssh-bf")
	for _, q := range []string{"", "?origin=cscli"} {
		b.Run("filter="+q, func(b *testing.B) {
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				resp, err := http.Get(l.URL + "/ui/api/summary" + q)
				if err != nil {
					b.Fatal(err)
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("status %d err %v", resp.StatusCode, err)
				}
			}
			// The LAPI serves in this process: its CPU is counted.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
		})
	}
}

// BenchmarkStreamStartup1M serves a startup stream of 1M decisions over
// HTTP on loopback and reads the whole body.
func BenchmarkStreamStartup1M(b *testing.B) {
	l := startLAPI(&testing.T{}, nil)
	defer l.Stop()
	fillDecisions(b, l, 1_000_000)
	key := l.addBouncerB(b, "bench")
	b.ResetTimer()
	var size int64
	for i := 0; i < b.N; i++ {
		req, _ := http.NewRequest("GET", l.URL+"/v1/decisions/stream?startup=true", nil)
		req.Header.Set("X-Api-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		size, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("status %d err %v", resp.StatusCode, err)
		}
	}
	b.ReportMetric(float64(size)/1e6, "MB/body")
}

func (l *testLAPI) addBouncerB(b *testing.B, name string) string {
	key, err := apikey.Generate()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := l.Store.CreateBouncer(context.Background(), store.Bouncer{Name: name, APIKeyHash: apikey.Hash(key)}); err != nil {
		b.Fatal(err)
	}
	return key
}

// BenchmarkStreamDelta is one bouncer's delta pull bringing one new
// decision over HTTP on loopback: what each long-polling bouncer of a
// large fleet costs the LAPI when a decision wakes them all.
func BenchmarkStreamDelta(b *testing.B) {
	l := startLAPI(&testing.T{}, nil)
	defer l.Stop()
	fillDecisions(b, l, 1000)
	key := l.addBouncerB(b, "bench")
	pull := func(startup bool) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/decisions/stream?startup=%t", l.URL, startup), nil)
		req.Header.Set("X-Api-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("status %d err %v", resp.StatusCode, err)
		}
	}
	pull(true)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		now := time.Now()
		v := fmt.Sprintf("192.0.%d.%d", i>>8&255, i&255)
		r, _ := store.ParseRange(v)
		a := &models.Alert{Scenario: "manual", Source: &models.Source{Scope: "Ip", Value: v}}
		if _, err := l.Store.CreateAlerts(context.Background(), []store.NewAlert{{Alert: a, UUID: fmt.Sprintf("delta-%d", i), StartAt: now, StopAt: now,
			Decisions: []store.NewDecision{{UUID: fmt.Sprintf("6f1c3e2a-0000-4000-9000-%012d", i), Until: now.Add(time.Hour), Scenario: "manual",
				Type: "ban", Scope: "Ip", Value: v, Origin: "cscli", Range: r}}}}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		pull(false)
	}
}
