package iptables

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Benchmarks run only with -bench, each in fresh namespaces. Besides time
// they report the process's peak RSS (VmHWM, reset before the timed part),
// which includes the input slice (40 B per element).

func resetPeakRSS(b *testing.B) {
	b.Helper()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset VmHWM: %v", err)
	}
}

func peakRSSMB(b *testing.B) float64 {
	b.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

func quiet(b *testing.B, n ns) *Backend {
	l := testLogger(b)
	l.(interface{ SetOutput(io.Writer) }).SetOutput(io.Discard)
	return newBackend(b, n, Config{Mode: ModeIPTables, IPv4: true, IPv6: true, Log: l})
}

func entries(b *testing.B, be *Backend, set string) int {
	b.Helper()
	h, err := be.nl.header(set)
	if err != nil {
		b.Fatal(err)
	}
	return int(h.elements)
}

func benchColdStart(b *testing.B, n int) {
	elems := addrs(netip.MustParseAddr("11.0.0.0"), n)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		ns := newNS(b)
		resetPeakRSS(b)
		b.StartTimer()
		start := time.Now()
		be := quiet(b, ns)
		if err := be.Ensure(ctx); err != nil {
			b.Fatal(err)
		}
		if err := be.Apply(ctx, elems, nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(time.Since(start).Seconds(), "s")
		b.ReportMetric(peakRSSMB(b), "peak-RSS-MB")
		if got := entries(b, be, DefaultSetV4); got != n {
			b.Fatalf("%d entries, want %d", got, n)
		}
		be.Close()
		b.StartTimer()
	}
}

// Ensure plus Apply of N /32 into a fresh namespace: upstream takes 14 s
// and 700 MB for 1M.
func BenchmarkColdStart100k(b *testing.B) { benchColdStart(b, 100_000) }
func BenchmarkColdStart1M(b *testing.B)   { benchColdStart(b, 1_000_000) }

// 1k adds and 1k deletes on a 1M set: O(delta).
func BenchmarkDelta1kOn1M(b *testing.B) {
	ns := newNS(b)
	be := quiet(b, ns)
	ctx := context.Background()
	const n = 1_000_000
	base := addrs(netip.MustParseAddr("11.0.0.0"), n)
	if err := be.Ensure(ctx); err != nil {
		b.Fatal(err)
	}
	if err := be.Apply(ctx, base, nil); err != nil {
		b.Fatal(err)
	}
	resetPeakRSS(b)
	i := 0
	for b.Loop() {
		b.StopTimer()
		off := uint32(i * 1000)
		adds := addrs(netip.AddrFrom4([4]byte{12, byte(off >> 16), byte(off >> 8), byte(off)}), 1000)
		dels := make([]netip.Prefix, 1000)
		for j := range dels {
			dels[j] = base[(i*1000+j)%n].Prefix
		}
		b.StartTimer()
		if err := be.Apply(ctx, adds, dels); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(peakRSSMB(b), "peak-RSS-MB")
	if got := entries(b, be, DefaultSetV4); got != n {
		b.Fatalf("%d entries, want %d", got, n)
	}
}

// A full resync of 1M over the same 1M: one listing, 1M refreshes, no deletes.
func BenchmarkReplace1MSame(b *testing.B) {
	ns := newNS(b)
	be := quiet(b, ns)
	ctx := context.Background()
	want := addrs(netip.MustParseAddr("11.0.0.0"), 1_000_000)
	if err := be.Ensure(ctx); err != nil {
		b.Fatal(err)
	}
	if err := be.Apply(ctx, want, nil); err != nil {
		b.Fatal(err)
	}
	resetPeakRSS(b)
	for b.Loop() {
		if err := be.Replace(ctx, want); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(peakRSSMB(b), "peak-RSS-MB")
}

// The floor: `ipset restore` of the same 1M elements (creation included).
func BenchmarkIpsetRestore1M(b *testing.B) {
	requireRoot(b)
	path := filepath.Join(b.TempDir(), "restore")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "create bench hash:net family inet maxelem 2097152 timeout 300")
	for _, e := range addrs(netip.MustParseAddr("11.0.0.0"), 1_000_000) {
		fmt.Fprintf(w, "add bench %s timeout 3600\n", e.Prefix.Addr())
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	for b.Loop() {
		b.StopTimer()
		ns := newNS(b)
		b.StartTimer()
		start := time.Now()
		if out, err := exec.Command("ip", "netns", "exec", ns.name, "ipset", "restore", "-f", path).CombinedOutput(); err != nil {
			b.Fatalf("ipset restore: %v\n%s", err, out)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s")
	}
}

// What one netlink round trip per element costs: vishvananda/netlink's
// IpsetAdd (with Replace, i.e. -exist) for 100k elements.
func BenchmarkVishvanandaIpsetAdd100k(b *testing.B) {
	elems := addrs(netip.MustParseAddr("11.0.0.0"), 100_000)
	for b.Loop() {
		b.StopTimer()
		ns := newNS(b)
		be := quiet(b, ns)
		if err := be.Ensure(context.Background()); err != nil {
			b.Fatal(err)
		}
		h, err := netlink.NewHandleAt(ns.h, unix.NETLINK_NETFILTER)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		t := uint32(3600)
		for _, e := range elems {
			a := e.Prefix.Addr().As4()
			err := h.IpsetAdd(DefaultSetV4, &netlink.IPSetEntry{IP: a[:], CIDR: 32, Timeout: &t, Replace: true})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(time.Since(start).Seconds(), "s")
		log.SetOutput(io.Discard)
		res, err := h.IpsetList(DefaultSetV4)
		log.SetOutput(os.Stderr)
		if err != nil || len(res.Entries) != len(elems) {
			b.Fatalf("IpsetList: %d entries, %v", len(res.Entries), err)
		}
		h.Close()
		be.Close()
		b.StartTimer()
	}
}

// Intact and Counters on a 1M set: they never read the set, so their cost
// does not depend on its size.
func BenchmarkIntactCounters1M(b *testing.B) {
	ns := newNS(b)
	be := quiet(b, ns)
	ctx := context.Background()
	if err := be.Ensure(ctx); err != nil {
		b.Fatal(err)
	}
	if err := be.Apply(ctx, addrs(netip.MustParseAddr("11.0.0.0"), 1_000_000), nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ok, err := be.Intact(ctx)
		if err != nil || !ok {
			b.Fatalf("Intact = %v, %v", ok, err)
		}
		if _, err := be.Counters(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
