package capi_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/capi"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/capitest"
	"github.com/rampart-ips/rampart/internal/procstat"
	"github.com/rampart-ips/rampart/lapi"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// benchService is a CAPI service over a fresh SQLite file, filtering
// through a real LAPI's allowlists, pulling from cs.
func benchService(b *testing.B, cs *capitest.Server) (*capi.Service, *store.Store) {
	b.Helper()
	dbPath := filepath.Join(b.TempDir(), "crowdsec.db")
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Path: dbPath})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	cfg := csconfig.Default()
	cfg.DBConfig.DBPath = dbPath
	srv, err := lapi.New(ctx, cfg, st, profiles.Default())
	if err != nil {
		b.Fatal(err)
	}
	if err := st.CreateAllowlist(ctx, "mine", ""); err != nil {
		b.Fatal(err)
	}
	if err := st.AddAllowlistItems(ctx, "mine", []string{"203.0.113.0/24", "198.51.100.7"}, "", nil); err != nil {
		b.Fatal(err)
	}
	client, err := capi.NewClient(capi.ClientConfig{URL: cs.URL(), Login: capiLogin, Password: capiPassword, Tokens: st})
	if err != nil {
		b.Fatal(err)
	}
	return capi.New(capi.Options{Client: client, Store: st, Filter: srv.FilterPulled, PullCommunity: true, PullBlocklists: true}), st
}

// BenchmarkCommunityPull applies a 100k-address community list: the
// startup pull into an empty database, and the same list pulled again
// (every decision replaced, as after a restart past the 1h30 skip).
// nBouncers wait on the stream in the serving benchmark.
const nBouncers = 3

func BenchmarkCommunityPull(b *testing.B) {
	const n = 100000
	cs := capitest.Start(b)
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetStartup(capitest.Community("crowdsecurity/ssh-bf", n, "24h"))
	ctx := context.Background()
	count := func(st *store.Store) int64 {
		c, err := st.ActiveDecisionCount(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	pid := os.Getpid()
	// allocated is what the process allocated so far (the pull's bytes
	// per decision: a regression in how much a pull holds or copies
	// shows there first).
	allocated := func() uint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.TotalAlloc
	}
	// live is the heap in use once collected.
	live := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	b.Run("startup", func(b *testing.B) {
		var cpu time.Duration
		var bytes uint64
		for b.Loop() {
			b.StopTimer()
			svc, st := benchService(b, cs)
			b.StartTimer()
			c0, a0 := procstat.CPU(pid), allocated()
			if err := svc.Pull(ctx, true); err != nil {
				b.Fatal(err)
			}
			cpu += procstat.CPU(pid) - c0
			bytes += allocated() - a0
			b.StopTimer()
			if c := count(st); c != n {
				b.Fatalf("%d active decisions, want %d", c, n)
			}
			b.StartTimer()
		}
		b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		b.ReportMetric(float64(bytes)/float64(b.N*n), "B/decision")
	})
	// Deltas of 100k after the startup pull, in one service (as one
	// LAPI's pulls every two hours, here each replacing the last): what
	// each allocates, and how the collected heap grows from the first
	// pull to the last (a leak shows as growth).
	b.Run("delta", func(b *testing.B) {
		cs.SetStream(capitest.Community("crowdsecurity/ssh-bf", n, "48h"))
		defer cs.SetStream(capi.StreamResponse{})
		svc, st := benchService(b, cs)
		if err := svc.Pull(ctx, true); err != nil {
			b.Fatal(err)
		}
		first := live()
		var cpu time.Duration
		var bytes uint64
		for b.Loop() {
			c0, a0 := procstat.CPU(pid), allocated()
			if err := svc.Pull(ctx, true); err != nil {
				b.Fatal(err)
			}
			cpu += procstat.CPU(pid) - c0
			bytes += allocated() - a0
		}
		b.StopTimer()
		b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		b.ReportMetric(float64(bytes)/float64(b.N*n), "B/decision")
		b.ReportMetric((float64(live())-float64(first))/(1<<20), "heap-growth-MB")
		b.ReportMetric(float64(procstat.KB(pid, "VmRSS"))/1024, "rss-MB")
		if c := count(st); c != n {
			b.Fatalf("%d active decisions, want %d", c, n)
		}
	})
	b.Run("replace", func(b *testing.B) {
		svc, st := benchService(b, cs)
		if err := svc.Pull(ctx, true); err != nil {
			b.Fatal(err)
		}
		var cpu time.Duration
		for b.Loop() {
			// Each pull restarts from startup, as a new process would.
			svc2 := capi.New(capi.Options{Client: mustClient(b, cs, st), Store: st, PullCommunity: true})
			c0 := procstat.CPU(pid)
			if err := svc2.Pull(ctx, true); err != nil {
				b.Fatal(err)
			}
			cpu += procstat.CPU(pid) - c0
		}
		b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		b.StopTimer()
		if c := count(st); c != n {
			b.Fatalf("%d active decisions, want %d", c, n)
		}
	})
	// The pull into a serving LAPI while three bouncers wait on the stream
	// and an agent keeps pushing alerts: time until every bouncer holds
	// the list, the slowest push meanwhile (the pull's transaction holds
	// the writer), and the process's peak RSS.
	for _, chunk := range []int{-1, 5000} {
		b.Run(fmt.Sprintf("serving/chunk=%d", chunk), func(b *testing.B) {
			var toBouncers, worstPush, cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				r := startRig(b, filepath.Join(b.TempDir(), "crowdsec.db"), cs, func(o *capi.Options) { o.Sharing, o.ApplyChunk = false, chunk })
				r.addAgent() // no scenarios: the service's own loop does not pull
				agent := r.agent()
				var bouncers []*apiclient.Client
				for i := range nBouncers {
					bc := r.bouncer(fmt.Sprintf("fw%d", i))
					if _, err := bc.Stream(ctx, true, nil); err != nil {
						b.Fatal(err)
					}
					bouncers = append(bouncers, bc)
				}
				if _, err := agent.PushAlerts(ctx, []*models.Alert{alert("192.0.2.250", 0)}); err != nil {
					b.Fatal(err)
				}
				_ = procstat.ResetPeak(pid)
				stop := make(chan struct{})
				pushes := make(chan time.Duration, 1)
				go func() {
					var worst time.Duration
					for i := 1; ; i++ {
						select {
						case <-stop:
							pushes <- worst
							return
						default:
						}
						t0 := time.Now()
						if _, err := agent.PushAlerts(ctx, []*models.Alert{alert(fmt.Sprintf("192.0.2.%d", i%250), i)}); err != nil {
							b.Error(err)
						}
						worst = max(worst, time.Since(t0))
						time.Sleep(10 * time.Millisecond)
					}
				}()
				b.StartTimer()
				t0, c0 := time.Now(), procstat.CPU(pid)
				var wg sync.WaitGroup
				for _, bc := range bouncers {
					wg.Go(func() {
						got := 0
						for got < n {
							resp, err := bc.Stream(ctx, false, url.Values{"wait": {"10s"}})
							if err != nil {
								b.Error(err)
								return
							}
							for _, d := range resp.New {
								if d.Origin == store.OriginCAPI {
									got++
								}
							}
						}
					})
				}
				if err := r.Svc.Pull(ctx, true); err != nil {
					b.Fatal(err)
				}
				wg.Wait()
				toBouncers += time.Since(t0)
				cpu += procstat.CPU(pid) - c0
				b.StopTimer()
				close(stop)
				worstPush = max(worstPush, <-pushes)
				b.ReportMetric(float64(procstat.KB(pid, "VmHWM"))/1024, "peak-rss-MB")
				r.Stop()
				b.StartTimer()
			}
			b.ReportMetric(float64(toBouncers.Milliseconds())/float64(b.N), "ms-to-3-bouncers")
			b.ReportMetric(float64(worstPush.Milliseconds()), "worst-push-ms")
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

func mustClient(b *testing.B, cs *capitest.Server, st *store.Store) *capi.Client {
	c, err := capi.NewClient(capi.ClientConfig{URL: cs.URL(), Login: capiLogin, Password: capiPassword, Tokens: st})
	if err != nil {
		b.Fatal(err)
	}
	return c
}
