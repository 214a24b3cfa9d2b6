package lapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/procstat"
	"github.com/rampart-ips/rampart/models"
)

// BenchmarkBlocklistFeed100k: a LAPI subscribes to a 100k-address feed on
// loopback; apply-s is the time from the subscription to a bouncer's delta
// holding all of it, refresh-s a refresh with 1% of the feed replaced
// (download, parse, allowlists, store), delta-s the bouncer's next pull
// (the 2,000 changes in one delta). push-max-ms is the slowest alert push
// of a machine pushing every 20 ms meanwhile, cpu-s the process's CPU for
// the whole, rss-MB its peak RSS.
func BenchmarkBlocklistFeed100k(b *testing.B) {
	const n = 100_000
	feedBody := func(shift int) []byte {
		var buf bytes.Buffer
		for i := 0; i < n; i++ {
			v := 10<<24 + i
			if i < n/100 {
				v += shift
			}
			fmt.Fprintf(&buf, "%d.%d.%d.%d\n", v>>24, (v>>16)&255, (v>>8)&255, v&255)
		}
		return buf.Bytes()
	}
	var cur atomic.Pointer[[]byte]
	v1, v2 := feedBody(0), feedBody(1<<20)
	cur.Store(&v1)
	feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(*cur.Load()) }))
	defer feed.Close()

	for i := 0; i < b.N; i++ {
		cur.Store(&v1)
		l := startLAPI(&testing.T{}, nil)
		key := l.addBouncerB(b, "fw")
		token := l.login()
		pull := func(startup bool) (int, int) {
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/decisions/stream?startup=%t", l.URL, startup), nil)
			req.Header.Set("X-Api-Key", key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			var sr models.StreamResponse
			if err := json.NewDecoder(resp.Body).Decode(&sr); err != nil {
				b.Fatal(err)
			}
			return len(sr.New), len(sr.Deleted)
		}
		pull(true)
		var stop atomic.Bool
		var worst atomic.Int64
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; !stop.Load(); k++ {
				body, _ := json.Marshal([]*models.Alert{agentAlert(fmt.Sprintf("192.0.2.%d", k%200+1), "bench/push")})
				req, _ := http.NewRequest("POST", l.URL+"/v1/alerts", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				start := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if d := time.Since(start).Nanoseconds(); d > worst.Load() {
					worst.Store(d)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		cpu0 := procstat.CPU(os.Getpid())
		start := time.Now()
		bl := csconfig.Blocklist{Name: "big", URL: feed.URL}
		bl.SetDefaults()
		if err := l.Server.SetBlocklists([]csconfig.Blocklist{bl}); err != nil {
			b.Fatal(err)
		}
		got := 0
		for got < n {
			k, _ := pull(false)
			got += k
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("bouncer got %d of %d", got, n)
			}
		}
		apply := time.Since(start)
		cur.Store(&v2)
		start = time.Now()
		if err := l.Server.lists.Refresh(context.Background(), "big"); err != nil {
			b.Fatal(err)
		}
		refresh := time.Since(start)
		start = time.Now()
		added, deleted := pull(false)
		delta := time.Since(start)
		if added < n/100 || deleted != n/100 { // the pusher's bans come along
			b.Fatalf("delta +%d -%d", added, deleted)
		}
		stop.Store(true)
		wg.Wait()
		b.ReportMetric(apply.Seconds(), "apply-s")
		b.ReportMetric(refresh.Seconds(), "refresh-s")
		b.ReportMetric(delta.Seconds(), "delta-s")
		b.ReportMetric(float64(worst.Load())/1e6, "push-max-ms")
		b.ReportMetric((procstat.CPU(os.Getpid()) - cpu0).Seconds(), "cpu-s")
		b.ReportMetric(float64(procstat.KB(os.Getpid(), "VmHWM"))/1024, "rss-MB")
		l.Stop()
	}
}
