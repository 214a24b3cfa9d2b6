package nftables

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/firewall"
)

// TestIntactIsCheapWhileNothingChanges: the repair loop asks Intact four
// times a second. While the ruleset's generation stays the same, Intact
// answers from one small message instead of a dozen dumps (which made
// about 110 KB of garbage per call and grew an idle bouncer's heap), and
// any change, by us or by someone else, is still seen at once.
func TestIntactIsCheapWhileNothingChanges(t *testing.T) {
	ctx := context.Background()
	ns := newNS(t)
	b := newBackend(t, testConfig(ns))
	ensure(t, b)
	intact := func(want bool) {
		t.Helper()
		if ok, err := b.Intact(ctx); err != nil || ok != want {
			t.Fatalf("Intact = %v, %v; want %v", ok, err, want)
		}
	}
	intact(true)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	const calls = 200
	for range calls {
		intact(true)
	}
	runtime.ReadMemStats(&m1)
	if per := (m1.TotalAlloc - m0.TotalAlloc) / calls; per > 8<<10 {
		t.Errorf("Intact allocates %d bytes per call while nothing changes, want at most 8 KiB", per)
	}
	// Our own change, then someone else's: both seen.
	if err := b.Apply(ctx, []firewall.Element{el("192.0.2.1/32", time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	intact(true)
	ns.nft(t, "flush", "chain", "ip", "crowdsec", "crowdsec_chain")
	intact(false)
	ensure(t, b)
	intact(true)
	ns.nft(t, "delete", "table", "ip6", "crowdsec6")
	intact(false)
}
