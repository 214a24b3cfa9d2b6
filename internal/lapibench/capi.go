package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/capitest"
	"github.com/rampart-ips/rampart/internal/procstat"
	"github.com/rampart-ips/rampart/models"
)

// stallAt is the push latency the capi measurement calls a stall of alert
// ingest: an agent's push normally takes milliseconds, and one second is
// already longer than an agent's bucket needs to notice.
const stallAt = time.Second

// capiScenario is the community list's scenario and the one the bench
// machine declares at login (no scenarios, no pull).
const capiScenario = "crowdsecurity/ssh-bf"

// benchCAPI is issue 16's Central API benchmark on real processes: a
// capitest Central API on loopback serving a community startup list of
// o.capiN addresses, a crowdsec LAPI with [api.server.online_client]
// pointing at it, o.capiBouncers bouncers long-polling the stream (as
// Rampart's bouncer: cursor and wait=30s, community_pull left on) and an
// agent pushing o.capiRate alerts per second in batches of 10. The pull
// waits for a machine with scenarios (as upstream's), so the bench machine
// logs in without any first and with one once the bouncers and the agent
// run: that login is the pull's start. It reports the time until every
// bouncer has received every community decision, the pushes' latency
// before and during the pull (worst, p99, errors), the LAPI's CPU-s, and
// its RSS before, at its peak, right after and o.capiSettle later.
func benchCAPI(r *report, o opts) error {
	n, nb := o.capiN, o.capiBouncers
	ctx, cancel := context.WithTimeout(context.Background(), o.capiTimeout)
	defer cancel()
	cs, err := capitest.New("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer cs.Close()
	const capiLogin, capiPassword = "lapibench-capi", "lapibench-capi-password-0123456789"
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetStartup(capitest.Community(capiScenario, n, "24h"))

	e, err := prepare(o.bin, o.kind, o.profile, nb)
	if err != nil {
		return err
	}
	defer e.stop()
	credsPath := filepath.Join(e.dir, "online_api_credentials.yaml")
	if err := csconfig.WriteCAPICredentials(credsPath, &csconfig.CAPICredentials{URL: cs.URL(), Login: capiLogin, Password: capiPassword}, nil); err != nil {
		return err
	}
	conf, err := os.ReadFile(e.cfg)
	if err != nil {
		return err
	}
	// Info, so the log (config.toml.log) says when the pull stored its
	// decisions.
	conf = bytes.Replace(conf, []byte(`log_level = "warning"`), []byte(`log_level = "info"`), 1)
	conf = fmt.Appendf(conf, "[api.server.online_client]\ncredentials_path = %q\n", credsPath)
	if err := os.WriteFile(e.cfg, conf, 0o600); err != nil {
		return err
	}
	if err := e.launch(); err != nil {
		return err
	}
	pid := e.cmd.Process.Pid
	token, err := loginScenarios(e.url, nil)
	if err != nil {
		return err
	}

	// Bouncers: a startup pull, then long-polls, counting the community
	// decisions they receive; done closes when one has them all.
	keys := e.keys()
	transport := &http.Transport{MaxIdleConnsPerHost: nb + 16}
	client := &http.Client{Transport: transport, Timeout: 45 * time.Second}
	var (
		started  sync.WaitGroup
		bwg      sync.WaitGroup
		mu       sync.Mutex
		doneAt   []time.Time // when each bouncer held all n
		errs     atomic.Int64
		firstErr atomic.Value
		got      = make([]atomic.Int64, nb)
	)
	fail := func(err error) {
		if ctx.Err() != nil {
			return
		}
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	bctx, stopBouncers := context.WithCancel(ctx)
	defer stopBouncers()
	allDone := make(chan struct{})
	started.Add(nb)
	for i := 0; i < nb; i++ {
		bwg.Add(1)
		go func(i int, key string) {
			defer bwg.Done()
			cursor := ""
			for first := true; bctx.Err() == nil; first = false {
				u := e.url + "v1/decisions/stream?cursor=" + cursor
				if first {
					u += "&startup=true"
				} else {
					u += "&wait=30s"
				}
				req, _ := http.NewRequestWithContext(bctx, "GET", u, nil)
				req.Header.Set("X-Api-Key", key)
				req.Header.Set("User-Agent", "crowdsec-firewall-bouncer/v0.0.31-rampart")
				cc := &capiCounter{}
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(cc, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("stream: status %d", resp.StatusCode)
					}
					if err == nil {
						cursor = resp.Header.Get(models.CursorHeader)
					}
				}
				if first {
					started.Done()
				}
				if err != nil {
					fail(err)
					time.Sleep(time.Second)
					continue
				}
				if got[i].Add(int64(cc.n)) >= int64(n) {
					mu.Lock()
					doneAt = append(doneAt, time.Now())
					if len(doneAt) == nb {
						close(allDone)
					}
					mu.Unlock()
					return
				}
			}
		}(i, keys[i])
	}
	started.Wait()

	// The agent: batches of 10 on a fixed schedule (behind it, at once),
	// each push timed.
	type push struct {
		at   time.Time
		took time.Duration
		err  bool
	}
	var pushes []push
	pctx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	agentDone := make(chan struct{})
	const batch = 10
	interval := time.Duration(float64(time.Second) * batch / max(o.capiRate, 1))
	go func() {
		defer close(agentDone)
		hc := &http.Client{Timeout: 30 * time.Second}
		next := time.Now()
		for k := 0; pctx.Err() == nil; {
			time.Sleep(time.Until(next))
			next = next.Add(interval)
			alerts := make([]*models.Alert, batch)
			now := time.Now().UTC().Format(time.RFC3339Nano)
			for i := range alerts {
				k++
				ip := fmt.Sprintf("172.%d.%d.%d", 16+k>>16&15, k>>8&255, k&255)
				alerts[i] = &models.Alert{Scenario: capiScenario, ScenarioHash: "h", ScenarioVersion: "0.1",
					Message: "Ip " + ip + " performed " + capiScenario, EventsCount: 6, StartAt: now, StopAt: now, Capacity: 5,
					Leakspeed: "10s", Remediation: true, Kind: "crowdsec", Source: &models.Source{Scope: "Ip", Value: ip, IP: ip},
					Events: []*models.Event{{Timestamp: now, Meta: []models.Meta{{Key: "source_ip", Value: ip}}}}}
			}
			data, _ := json.Marshal(alerts)
			req, _ := http.NewRequestWithContext(pctx, "POST", e.url+"v1/alerts", bytes.NewReader(data))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("User-Agent", "crowdsec/v1.7.8-bench-linux")
			t0 := time.Now()
			resp, err := hc.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					err = fmt.Errorf("push: status %d", resp.StatusCode)
				}
			}
			if pctx.Err() != nil {
				return
			}
			if err != nil {
				fail(err)
			}
			pushes = append(pushes, push{at: t0, took: time.Since(t0), err: err != nil})
		}
	}()

	// Two seconds of pushes before the pull, as a baseline.
	time.Sleep(2 * time.Second)
	_ = procstat.ResetPeak(pid)
	rssBefore := procstat.KB(pid, "VmRSS")
	cpu0, self0 := procstat.CPU(pid), procstat.CPU(os.Getpid())
	pullStart := time.Now()
	if _, err := loginScenarios(e.url, []string{capiScenario}); err != nil {
		return err
	}
	// When the Central API sees the stream request (the service polls for
	// scenarios every second).
	var requested time.Time
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var waitErr error
wait:
	for {
		select {
		case <-allDone:
			break wait
		case <-ctx.Done():
			waitErr = fmt.Errorf("after %s, bouncers still short of %d community decisions (least %d); see %s.log",
				time.Since(pullStart).Round(time.Second), n, least(got), e.cfg)
			break wait
		case <-tick.C:
			if requested.IsZero() && cs.Requests("/v3/decisions/stream") > 0 {
				requested = time.Now()
			}
		}
	}
	allAt := time.Now()
	lapiCPU := procstat.CPU(pid) - cpu0
	// One more second of pushes after the pull, then the RSS as it is
	// right after; then o.capiSettle more of pushes (no forced
	// collection: what an administrator's top shows) for the RSS the
	// pull leaves behind.
	time.Sleep(time.Second)
	rss, peak := procstat.KB(pid, "VmRSS"), procstat.KB(pid, "VmHWM")
	stopBouncers()
	bwg.Wait()
	selfCPU := procstat.CPU(os.Getpid()) - self0
	time.Sleep(o.capiSettle)
	settled := procstat.KB(pid, "VmRSS")
	stopAgent()
	<-agentDone

	var before, during []time.Duration
	pushErrs := 0
	for _, p := range pushes {
		if p.err {
			pushErrs++
			continue
		}
		if p.at.Before(pullStart) {
			before = append(before, p.took)
		} else if p.at.Before(allAt) {
			during = append(during, p.took)
		}
	}
	sortDur := func(l []time.Duration) { sort.Slice(l, func(i, j int) bool { return l[i] < l[j] }) }
	sortDur(before)
	sortDur(during)
	pct := func(l []time.Duration, p float64) time.Duration {
		if len(l) == 0 {
			return 0
		}
		return l[min(len(l)-1, int(float64(len(l))*p))].Round(time.Millisecond)
	}
	stalls := 0
	for _, d := range during {
		if d > stallAt {
			stalls++
		}
	}
	sort.Slice(doneAt, func(i, j int) bool { return doneAt[i].Before(doneAt[j]) })
	firstAll := time.Duration(0)
	if len(doneAt) > 0 {
		firstAll = doneAt[0].Sub(pullStart)
	}
	sinceReq := "?"
	if !requested.IsZero() {
		sinceReq = fmt.Sprintf("%.2f s", allAt.Sub(requested).Seconds())
	}
	fmt.Printf("capi: community pull of %d addresses (capitest on loopback) while %d bouncers long-poll and an agent pushes %g alerts/s in batches of %d\n",
		n, nb, o.capiRate, batch)
	fmt.Printf("capi: every bouncer holds all %d: %.2f s after the scenario login (%s after the Central API got the stream request; first bouncer at %.2f s), LAPI %.1f CPU-s, bench client %.1f CPU-s (target: no stall, see below)\n",
		n, allAt.Sub(pullStart).Seconds(), sinceReq, firstAll.Seconds(), lapiCPU.Seconds(), selfCPU.Seconds())
	// The agent pushes one batch at a time, as crowdsec's does: slow
	// answers lower the rate it achieves, which is said.
	fmt.Printf("capi: pushes of %d alerts, before the pull: %d, p99 %s, worst %s; during it: %d (%.0f alerts/s achieved), p50 %s, p99 %s, worst %s, %d over %s; %d failed (target: worst <= %s, 0 failed)\n",
		batch, len(before), pct(before, 0.99), pct(before, 1), len(during), float64(len(during)*batch)/allAt.Sub(pullStart).Seconds(),
		pct(during, 0.5), pct(during, 0.99), pct(during, 1), stalls, stallAt, pushErrs, stallAt)
	fmt.Printf("capi: LAPI RSS %.1f MB before the pull, %.1f MB after, peak %.1f MB; %.1f MB %s later (pushes going on)\n",
		float64(rssBefore)/1024, float64(rss)/1024, float64(peak)/1024, float64(settled)/1024, o.capiSettle)
	r.add(fmt.Sprintf("community pull %d -> %d bouncers", n, nb), e.db.kind,
		fmt.Sprintf("%.2f s, LAPI %.1f CPU-s, RSS %.0f -> peak %.0f -> %.0f MB", allAt.Sub(pullStart).Seconds(), lapiCPU.Seconds(),
			float64(rssBefore)/1024, float64(peak)/1024, float64(settled)/1024))
	r.add(fmt.Sprintf("  push during it, worst (<= %s, 0 errors)", stallAt), e.db.kind,
		fmt.Sprintf("worst %s p99 %s, %d err", pct(during, 1), pct(during, 0.99), pushErrs))
	if waitErr != nil {
		return waitErr
	}
	if errs.Load() > 0 {
		return fmt.Errorf("%d requests failed (first: %v)", errs.Load(), firstErr.Load())
	}
	return nil
}

// least is the fewest community decisions a bouncer has received.
func least(got []atomic.Int64) int64 {
	m := int64(-1)
	for i := range got {
		if v := got[i].Load(); m < 0 || v < m {
			m = v
		}
	}
	return m
}

// loginScenarios logs the bench machine in, declaring scenarios as an
// agent does (the Central API pull waits for some), and returns its token.
func loginScenarios(url string, scenarios []string) (string, error) {
	id, pw := "bench", "benchpassword"
	body, _ := json.Marshal(models.WatcherAuthRequest{MachineID: &id, Password: &pw, Scenarios: scenarios})
	req, _ := http.NewRequest("POST", url+"v1/watchers/login", bytes.NewReader(body))
	req.Header.Set("User-Agent", "crowdsec/v1.7.8-bench-linux")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var r models.WatcherAuthResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Token == "" {
		return "", fmt.Errorf("login with scenarios %s failed: %d %v", strings.Join(scenarios, ","), resp.StatusCode, err)
	}
	return r.Token, nil
}

// capiCounter counts the community decisions in a stream body without
// holding it (50 bodies of 100k decisions would take the bench client
// hundreds of MB), markers split across writes included. Deletions of
// community decisions would count too: this measurement has none.
type capiCounter struct {
	n    int
	tail []byte
}

var capiMarker = []byte(`"origin":"CAPI"`)

func (c *capiCounter) Write(p []byte) (int, error) {
	// A marker across the previous write's end: the tail and p's head are
	// each shorter than one, so this counts only those.
	if len(c.tail) > 0 {
		c.n += bytes.Count(append(c.tail, p[:min(len(p), len(capiMarker)-1)]...), capiMarker)
	}
	c.n += bytes.Count(p, capiMarker)
	keep := len(capiMarker) - 1
	if len(p) >= keep {
		c.tail = append(c.tail[:0], p[len(p)-keep:]...)
	} else {
		c.tail = append(c.tail, p...)
		c.tail = append(c.tail[:0], c.tail[max(0, len(c.tail)-keep):]...)
	}
	return len(p), nil
}
