package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/internal/procstat"
	"github.com/rampart-ips/rampart/models"
)

// benchLoad runs n bouncers waiting on the stream as Rampart's bouncer
// does, in mode "follow" (one response carrying each change as a line, read
// with the bouncer's own parser) or "longpoll" (wait=30s), while alerts
// are pushed at rate per second for d,
// in batches from 4 agents. It reports failed requests (target 0),
// the time from a sampled alert's push to its decision reaching a measuring
// bouncer (p50/p99/max), and the LAPI's RSS. The load stops at d; bouncers
// get 30 s more to drain. With several LAPIs es (on one server database),
// the agents push to the first, bouncer i long-polls es[i%len(es)], and the
// measuring bouncers are on the last: a decision added on LAPI A is timed
// to a bouncer on LAPI B.
// Every sample-th alert carries a marker address whose arrival the
// measuring bouncers time.
func benchLoad(r *report, es []*env, mode string, n int, rate float64, batch, sample int, d time.Duration) error {
	e, last := es[0], es[len(es)-1]
	keys := e.keys()
	token, err := login(e.url)
	if err != nil {
		return err
	}
	pid := last.cmd.Process.Pid
	_ = procstat.ResetPeak(pid)
	rssBefore := procstat.KB(pid, "VmRSS")
	cpu0, self0 := cpu(es), procstat.CPU(os.Getpid())

	var (
		acked      sync.Map // marker value -> time its alert was sent
		errs       atomic.Int64
		firstErr   atomic.Value
		pushed     atomic.Int64
		mu         sync.Mutex
		lat        []time.Duration
		deliveries atomic.Int64
	)
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	// The agents start once every bouncer has its startup stream and
	// long-polls: a decision pushed during the fleet's startup would time
	// how fast 5,000 startup pulls are served, not a wake-up.
	var started sync.WaitGroup
	started.Add(n)
	var loadEnd time.Time
	var agentsDone atomic.Bool // every push answered: wantMarkers is final
	var drainEnd atomic.Value  // set when the agents stop: 30 s more
	drainEnd.Store(time.Now().Add(time.Hour))
	const measuring = 20 // bouncers that parse bodies for markers
	var wantMarkers atomic.Int64

	// Bouncers: one startup pull, then long-polls until the drain ends.
	transport := &http.Transport{MaxIdleConnsPerHost: n + 16}
	client := &http.Client{Transport: transport, Timeout: 45 * time.Second}
	// As Rampart's bouncer pulls: its own cursor (cursor=, then the
	// X-Rampart-Cursor of its last answer) and wait=30s on deltas.
	pull := func(url, key, cursor string, startup bool) ([]byte, string, error) {
		u := url + "v1/decisions/stream?additional_pull=false&community_pull=false&cursor=" + cursor
		if startup {
			u += "&startup=true"
		} else {
			u += "&wait=30s"
		}
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("X-Api-Key", key)
		req.Header.Set("User-Agent", "crowdsec-firewall-bouncer/v0.0.31-rampart")
		resp, err := client.Do(req)
		if err != nil {
			return nil, cursor, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("stream: status %d", resp.StatusCode)
		}
		if err != nil {
			return nil, cursor, err
		}
		return b, resp.Header.Get(models.CursorHeader), nil
	}
	followClient := &http.Client{Transport: transport} // no timeout: a response lasts minutes
	// follow reads follow responses from cursor until ctx ends, as the
	// bouncer does: each line's decisions apply when the line is whole.
	// Markers are timed at that moment; done says whether to stop.
	follow := func(ctx context.Context, url, key, cursor string, measure bool, done func(seen int) bool) {
		seen := 0
		var pending []string
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, "GET", url+"v1/decisions/stream?additional_pull=false&community_pull=false&follow=true&cursor="+cursor, nil)
			req.Header.Set("X-Api-Key", key)
			req.Header.Set("User-Agent", "crowdsec-firewall-bouncer/v0.0.31-rampart")
			resp, err := followClient.Do(req)
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("follow: status %d", resp.StatusCode)
				resp.Body.Close()
			}
			if err == nil {
				err = apiclient.ScanFollow(resp.Body, func(deleted bool, dd *models.Decision) error {
					if measure && !deleted {
						pending = append(pending, dd.Value)
					}
					return nil
				}, func(cur int64) error {
					cursor = strconv.FormatInt(cur, 10)
					if !measure {
						return nil
					}
					now := time.Now()
					for _, v := range pending {
						if at, ok := acked.Load(v); ok {
							mu.Lock()
							lat = append(lat, now.Sub(at.(time.Time)))
							mu.Unlock()
							seen++
							deliveries.Add(1)
						}
					}
					pending = pending[:0]
					if done(seen) {
						return errFollowDone
					}
					return nil
				})
				resp.Body.Close()
			}
			if errors.Is(err, errFollowDone) {
				return
			}
			if err != nil && ctx.Err() == nil {
				fail(err)
				time.Sleep(time.Second)
			}
		}
	}
	// The follow mode's bouncers stop when the drain ends (or, measuring,
	// once they have every marker).
	fctx, fcancel := context.WithCancel(context.Background())
	defer fcancel()
	var bwg, mwg sync.WaitGroup
	for i := 0; i < n; i++ {
		bwg.Add(1)
		measure := i%len(es) == len(es)-1 && i/len(es) < measuring
		if measure {
			mwg.Add(1)
		}
		go func(url, key string, measure bool) {
			defer bwg.Done()
			if measure {
				defer mwg.Done()
			}
			seen := 0
			cursor := ""
			if mode == "follow" {
				body, next, err := pull(url, key, "", true)
				started.Done()
				if err != nil {
					fail(err)
					return
				}
				_ = body
				follow(fctx, url, key, next, measure, func(seen int) bool {
					return agentsDone.Load() && int64(seen) >= wantMarkers.Load()
				})
				return
			}
			for first := true; time.Now().Before(drainEnd.Load().(time.Time)); first = false {
				body, next, err := pull(url, key, cursor, first)
				cursor = next
				if first {
					started.Done()
				}
				if err != nil {
					fail(err)
					time.Sleep(time.Second)
					continue
				}
				if !measure {
					continue
				}
				now := time.Now()
				var sr models.StreamResponse
				if err := json.Unmarshal(body, &sr); err != nil {
					fail(fmt.Errorf("stream body: %w", err))
					continue
				}
				for _, dd := range sr.New {
					if at, ok := acked.Load(dd.Value); ok {
						mu.Lock()
						lat = append(lat, now.Sub(at.(time.Time)))
						mu.Unlock()
						seen++
						deliveries.Add(1)
					}
				}
				if agentsDone.Load() && int64(seen) >= wantMarkers.Load() {
					return
				}
			}
		}(es[i%len(es)].url, keys[i], i%len(es) == len(es)-1 && i/len(es) < measuring)
	}

	fleetStart := time.Now()
	started.Wait()
	fmt.Printf("load: %d bouncers pulled their startup stream in %s\n", n, time.Since(fleetStart).Round(time.Millisecond))
	start := time.Now()
	loadEnd = start.Add(d)
	// The wake-ups' CPU, without the fleet's startup pulls.
	cpuLoad0, selfLoad0 := cpu(es), procstat.CPU(os.Getpid())

	// Agents: batches of 50, paced to rate alerts per second in all.
	const agents = 4
	interval := time.Duration(float64(time.Second) * float64(batch*agents) / rate)
	var seq atomic.Int64
	var awg sync.WaitGroup
	for w := 0; w < agents; w++ {
		awg.Add(1)
		go func(w int) {
			defer awg.Done()
			hc := &http.Client{Timeout: 30 * time.Second}
			next := start.Add(time.Duration(w) * interval / agents)
			// Behind schedule, an agent sends at once; it never sends past
			// the end, so the rate reported is what the LAPI took.
			for time.Now().Before(loadEnd) {
				time.Sleep(time.Until(next))
				next = next.Add(interval)
				alerts := make([]*models.Alert, batch)
				var markers []string
				now := time.Now().UTC().Format(time.RFC3339Nano)
				for i := range alerts {
					k := seq.Add(1)
					ip := fmt.Sprintf("172.%d.%d.%d", 16+k>>16&15, k>>8&255, k&255)
					if k%int64(sample) == 0 {
						ip = fmt.Sprintf("100.%d.%d.%d", 64+k>>16&63, k>>8&255, k&255)
						markers = append(markers, ip)
					}
					alerts[i] = &models.Alert{Scenario: "crowdsecurity/ssh-bf", ScenarioHash: "h", ScenarioVersion: "0.1",
						Message: "Ip " + ip + " performed crowdsecurity/ssh-bf", EventsCount: 6, StartAt: now, StopAt: now, Capacity: 5,
						Leakspeed: "10s", Remediation: true, Kind: "crowdsec", Source: &models.Source{Scope: "Ip", Value: ip, IP: ip},
						Events: []*models.Event{{Timestamp: now, Meta: []models.Meta{{Key: "source_ip", Value: ip}}}}}
				}
				// The send time is stored first: a long-poll may hand the
				// decision to a bouncer before this agent reads its 201.
				sentAt := time.Now()
				for _, m := range markers {
					acked.Store(m, sentAt)
				}
				data, _ := json.Marshal(alerts)
				req, _ := http.NewRequest("POST", e.url+"v1/alerts", bytes.NewReader(data))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("User-Agent", "crowdsec/v1.7.8-bench-linux")
				resp, err := hc.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 201 {
						err = fmt.Errorf("push: status %d", resp.StatusCode)
					}
				}
				if err != nil {
					fail(err)
					for _, m := range markers {
						acked.Delete(m)
					}
					continue
				}
				wantMarkers.Add(int64(len(markers)))
				pushed.Add(int64(batch))
			}
		}(w)
	}
	awg.Wait()
	pushTook := time.Since(start)
	drainEnd.Store(time.Now().Add(30 * time.Second))
	agentsDone.Store(true)
	if mode == "follow" {
		// Followers wait for lines: they stop once the measuring ones
		// have everything, or when the drain ends.
		measured := make(chan struct{})
		go func() { mwg.Wait(); close(measured) }()
		select {
		case <-measured:
		case <-time.After(30 * time.Second):
		}
		fcancel()
	}
	bwg.Wait()
	lapiCPU, selfCPU := cpu(es)-cpu0, procstat.CPU(os.Getpid())-self0
	loadCPU, selfLoad := cpu(es)-cpuLoad0, procstat.CPU(os.Getpid())-selfLoad0
	perDecision := func(c time.Duration) float64 { return float64(c.Milliseconds()) / float64(max(pushed.Load(), 1)) }
	rss, peak := procstat.KB(pid, "VmRSS"), procstat.KB(pid, "VmHWM")
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	want := wantMarkers.Load() * measuring
	fmt.Printf("load (%s): %d bouncers on %d LAPI(s) + %g alerts/s asked for %s (pushed to the first LAPI): %d alerts pushed (%.0f/s), %d failed requests (target 0), LAPIs %.1f CPU-s, bench client %.1f CPU-s\n",
		mode, n, len(es), rate, d, pushed.Load(), float64(pushed.Load())/pushTook.Seconds(), errs.Load(), lapiCPU.Seconds(), selfCPU.Seconds())
	fmt.Printf("load (%s): after the fleet's startup: LAPIs %.1f CPU-s (%.0f CPU-ms per decision), bench client %.1f CPU-s (%.0f CPU-ms per decision)\n",
		mode, loadCPU.Seconds(), perDecision(loadCPU), selfLoad.Seconds(), perDecision(selfLoad))
	fmt.Printf("load (%s): alert pushed to the first LAPI -> decision at a bouncer of the last (%d of %d sampled deliveries): p50 %s, p99 %s, max %s; last LAPI RSS %.1f MB before, %.1f MB after, peak %.1f MB\n",
		mode, deliveries.Load(), want, pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), pct(1).Round(time.Millisecond),
		float64(rssBefore)/1024, float64(rss)/1024, float64(peak)/1024)
	r.add(fmt.Sprintf("%d bouncers (%s), %g alerts/s in %d (0 errors)", n, mode, rate, batch), e.db.kind,
		fmt.Sprintf("%d err, %d LAPI(s), %.1f CPU-s, %.0f CPU-ms/decision", errs.Load(), len(es), lapiCPU.Seconds(), perDecision(loadCPU)))
	r.add(fmt.Sprintf("  decision on A -> bouncer on B (%s), p99 (<= 100 ms)", mode), e.db.kind,
		fmt.Sprintf("p50 %s p99 %s max %s (%d/%d)", pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), pct(1).Round(time.Millisecond), deliveries.Load(), want))
	if errs.Load() > 0 {
		return fmt.Errorf("%d requests failed (first: %v)", errs.Load(), firstErr.Load())
	}
	if deliveries.Load() < want {
		return fmt.Errorf("%d sampled decisions never reached their bouncer", want-deliveries.Load())
	}
	return nil
}

// errFollowDone stops a measuring follower that has every marker.
var errFollowDone = errors.New("every marker received")
