package bouncer

import (
	"context"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/firewall"
)

// benchScrape measures one /metrics scrape (a Gather of the bouncer's
// registry, what promhttp serves) with n IPv4 addresses banned in a real
// nftables set, in a namespace of the benchmark's own.
func benchScrape(b *testing.B, n int) {
	fw, _ := nftInNS(b)
	ctx := context.Background()
	if err := fw.Ensure(ctx); err != nil {
		b.Fatal(err)
	}
	els := make([]firewall.Element, n)
	for i := range els {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], uint32(i)*2654435761+0x01000000) // distinct, scattered
		els[i] = firewall.Element{Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32), Timeout: 4 * time.Hour}
	}
	if err := fw.Apply(ctx, els, nil); err != nil {
		b.Fatal(err)
	}
	els = nil
	if got := fw.Stats().Elements[firewall.IPv4]; got != n {
		b.Fatalf("%d elements loaded, want %d", got, n)
	}
	m := NewMetrics(fw)
	m.setBanned(&state{n4: n})
	check := func() {
		mfs, err := m.Registry.Gather()
		if err != nil {
			b.Fatal(err)
		}
		found := map[string]bool{}
		for _, mf := range mfs {
			found[mf.GetName()] = true
		}
		for _, want := range []string{"fw_bouncer_banned_ips", "fw_bouncer_dropped_packets", "fw_bouncer_processed_packets", "fw_bouncer_processed_bytes"} {
			if !found[want] {
				b.Fatalf("no %s in the scrape", want)
			}
		}
	}
	check()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := m.Registry.Gather(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/scrape")
}

func BenchmarkMetricsScrape10(b *testing.B) { benchScrape(b, 10) }
func BenchmarkMetricsScrape1M(b *testing.B) { benchScrape(b, 1_000_000) }
