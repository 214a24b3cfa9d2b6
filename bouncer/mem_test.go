package bouncer

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/firewall"
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
