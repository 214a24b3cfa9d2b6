package bouncer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/firewall"
	"github.com/rampart-ips/rampart/internal/memtune"
	"github.com/rampart-ips/rampart/internal/procstat"
)

// countingFW stands in for the kernel in the memory benchmark: it only
// measures the process heap when the full state is handed over.
type countingFW struct{ heapAtReplace, liveAtReplace uint64 }

func (c *countingFW) Name() string                         { return "counting" }
func (c *countingFW) Ensure(context.Context) error         { return nil }
func (c *countingFW) Intact(context.Context) (bool, error) { return true, nil }
func (c *countingFW) Apply(context.Context, []firewall.Element, []netip.Prefix) error {
	return nil
}
func (c *countingFW) Replace(_ context.Context, want []firewall.Element) error {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	c.heapAtReplace = m.HeapAlloc
	runtime.GC()
	runtime.ReadMemStats(&m)
	c.liveAtReplace = m.HeapAlloc
	return nil
}
func (c *countingFW) Counters(context.Context) (map[firewall.Family]firewall.Counter, error) {
	return nil, nil
}
func (c *countingFW) Flush(context.Context) error { return nil }
func (c *countingFW) Close() error                { return nil }

// BenchmarkStartupHeap1M reports the bouncer's live heap when a 1M startup
// stream is about to be loaded into the kernel.
func BenchmarkStartupHeap1M(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bw := bufio.NewWriterSize(w, 64<<10)
		bw.WriteString(`{"new": [`)
		for i := 0; i < 1_000_000; i++ {
			if i > 0 {
				bw.WriteByte(',')
			}
			fmt.Fprintf(bw, `{"duration":"3h59m59s","id":%d,"origin":"cscli-import","scenario":"import","scope":"Ip","type":"ban","uuid":"6f1c3e2a-0000-4000-8000-%012d","value":"10.%d.%d.%d"}`, i, i, i>>16&255, i>>8&255, i&255)
		}
		bw.WriteString(`], "deleted": []}`)
		bw.Flush()
	}))
	defer srv.Close()
	cfg, _ := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"k\"\napi_url = \""+srv.URL+"\"\n"), "b")
	client, _ := apiclient.New(apiclient.Config{URL: cfg.APIURL, APIKey: "k", Timeout: time.Minute})
	for i := 0; i < b.N; i++ {
		fw := &countingFW{}
		bn := New(cfg, fw, client, nil)
		runtime.GC()
		if err := bn.pullFull(context.Background(), ""); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fw.heapAtReplace)/1e6, "MB-heap-at-load")
		b.ReportMetric(float64(fw.liveAtReplace)/1e6, "MB-live-at-load")
	}
}

// BenchmarkIdleRSS1M loads 1M decisions through Run, then lets the bouncer
// poll an idle LAPI (empty deltas, as upstream's answers) and reports its
// RSS and heap after the load and after the polls: an idle bouncer must
// stay flat. The LAPI here is a plain loopback server in the same process,
// so the figures include its small share.
func BenchmarkIdleRSS1M(b *testing.B) {
	const polls = 2000
	var pulls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("startup") != "true" {
			pulls.Add(1)
			fmt.Fprint(w, `{"new":[],"deleted":[]}`)
			return
		}
		bw := bufio.NewWriterSize(w, 64<<10)
		bw.WriteString(`{"new": [`)
		for i := 0; i < 1_000_000; i++ {
			if i > 0 {
				bw.WriteByte(',')
			}
			fmt.Fprintf(bw, `{"duration":"3h59m59s","id":%d,"origin":"cscli-import","scenario":"import","scope":"Ip","type":"ban","uuid":"6f1c3e2a-0000-4000-8000-%012d","value":"10.%d.%d.%d"}`, i, i, i>>16&255, i>>8&255, i&255)
		}
		bw.WriteString(`], "deleted": []}`)
		bw.Flush()
	}))
	defer srv.Close()
	cfg, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"k\"\napi_url = \""+srv.URL+"\"\nupdate_frequency = \"10ms\"\nmetrics_interval = \"0s\"\nresync_interval = \"0s\"\n"), "b")
	if err != nil {
		b.Fatal(err)
	}
	client, _ := apiclient.New(apiclient.Config{URL: cfg.APIURL, APIKey: "k", Timeout: time.Minute})
	// As the binary runs (cmd/crowdsec-firewall-bouncer).
	if s := memtune.ApplyBouncer(); s.GCPercent >= 0 {
		defer debug.SetGCPercent(100)
	}
	rss := func() float64 { return float64(procstat.KB(os.Getpid(), "VmRSS")) / 1024 }
	// heap is what the heap holds of the RSS: in use, and free but not
	// yet handed back to the kernel.
	heap := func() (inuse, retained float64) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.HeapInuse) / (1 << 20), float64(m.HeapSys-m.HeapReleased) / (1 << 20)
	}
	for i := 0; i < b.N; i++ {
		bn := New(cfg, &countingFW{}, client, nil)
		bn.log = log.NewEntry(quietLogger())
		ctx, cancel := context.WithCancel(context.Background())
		loaded := make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- bn.Run(ctx, func() { close(loaded) }) }()
		<-loaded
		rssLoad := rss()
		heapLoad, retLoad := heap()
		start := pulls.Load()
		for pulls.Load()-start < polls {
			time.Sleep(50 * time.Millisecond)
		}
		rssIdle := rss()
		heapIdle, retIdle := heap()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		cancel()
		<-done
		b.ReportMetric(float64(m.HeapAlloc)/(1<<20), "MB-live-after-polls")
		b.ReportMetric(rssLoad, "MB-RSS-after-load")
		b.ReportMetric(rssIdle, "MB-RSS-after-polls")
		b.ReportMetric(heapLoad, "MB-heap-after-load")
		b.ReportMetric(heapIdle, "MB-heap-after-polls")
		b.ReportMetric(retLoad, "MB-retained-after-load")
		b.ReportMetric(retIdle, "MB-retained-after-polls")
	}
}

func quietLogger() *log.Logger {
	l := log.New()
	l.Out = io.Discard
	return l
}
