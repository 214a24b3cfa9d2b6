package nftables

import (
	"bufio"
	"context"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/rampart-ips/rampart/firewall"
)

// Benchmarks run only with -bench, each in a namespace of its own. They
// report the peak RSS of the whole process (VmHWM, reset before the timed
// part) and, as MB-over-input, how far it rose above the RSS at the reset,
// which already holds the input lists: that is the backend's own share. Run
// them one at a time for clean memory figures.

// hosts4 returns n distinct IPv4 /32 bans, scattered over the address
// space (a multiplicative bijection of the index), starting at index off.
func hosts4(off, n int) []firewall.Element {
	out := make([]firewall.Element, n)
	for i := range out {
		a := uint32(off+i)*2654435761 + 0x01000000
		out[i] = firewall.Element{
			Prefix:  netip.PrefixFrom(ip4(a).netip(), 32),
			Timeout: 4 * time.Hour,
		}
	}
	return out
}

// resetPeakRSS resets VmHWM and returns the current RSS.
func resetPeakRSS() float64 {
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	return statusMB("VmRSS:")
}

// peakRSSMB reads VmHWM.
func peakRSSMB() float64 { return statusMB("VmHWM:") }

func statusMB(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func benchBackend(b *testing.B, ns *testNS) *Backend {
	cfg := testConfig(ns)
	cfg.IPv6.Enabled = false
	be, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if v := os.Getenv("RAMPART_NFT_TXN_BYTES"); v != "" {
		be.txnBytes, _ = strconv.Atoi(v)
	}
	return be
}

func benchColdStart(b *testing.B, n int) {
	requireRoot(b)
	ctx := context.Background()
	els := hosts4(0, n)
	var total time.Duration
	var peak, over float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ns := newNS(b)
		base := resetPeakRSS()
		b.StartTimer()
		start := time.Now()
		be := benchBackend(b, ns)
		if err := be.Ensure(ctx); err != nil {
			b.Fatal(err)
		}
		if err := be.Apply(ctx, els, nil); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		peak = max(peak, peakRSSMB())
		over = max(over, peakRSSMB()-base)
		if st := be.Stats(); st.Elements[firewall.IPv4] != n {
			b.Fatalf("%d elements", st.Elements[firewall.IPv4])
		}
		_ = be.Close()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/load")
	b.ReportMetric(peak, "MB-peak-RSS")
	b.ReportMetric(over, "MB-over-input")
}

func BenchmarkColdStart100k(b *testing.B) { benchColdStart(b, 100_000) }
func BenchmarkColdStart1M(b *testing.B)   { benchColdStart(b, 1_000_000) }

// BenchmarkDelta1kOn1M applies deltas of 1k adds and 1k deletes to a set of
// 1M addresses.
func BenchmarkDelta1kOn1M(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	ns := newNS(b)
	be := benchBackend(b, ns)
	defer be.Close()
	if err := be.Ensure(ctx); err != nil {
		b.Fatal(err)
	}
	const n, k, rounds = 1_000_000, 1000, 10
	if err := be.Apply(ctx, hosts4(0, n), nil); err != nil {
		b.Fatal(err)
	}
	next, oldest := n, 0
	var total time.Duration
	base := resetPeakRSS()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			adds := hosts4(next, k)
			var dels []netip.Prefix
			for _, e := range hosts4(oldest, k) {
				dels = append(dels, e.Prefix)
			}
			next, oldest = next+k, oldest+k
			start := time.Now()
			if err := be.Apply(ctx, adds, dels); err != nil {
				b.Fatal(err)
			}
			total += time.Since(start)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N*rounds), "ms/delta")
	b.ReportMetric(peakRSSMB(), "MB-peak-RSS")
	b.ReportMetric(peakRSSMB()-base, "MB-over-input")
}

// BenchmarkReplace1M restarts on a host set of 1M addresses and replaces
// it by a list of 1M of which 100k are new (the set is not empty: one
// transaction flushes and reloads both sets).
func BenchmarkReplace1M(b *testing.B) {
	requireRoot(b)
	ctx := context.Background()
	ns := newNS(b)
	be := benchBackend(b, ns)
	if err := be.Ensure(ctx); err != nil {
		b.Fatal(err)
	}
	const n = 1_000_000
	if err := be.Apply(ctx, hosts4(0, n), nil); err != nil {
		b.Fatal(err)
	}
	_ = be.Close()
	want := hosts4(n/10, n)
	var total time.Duration
	base := resetPeakRSS()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		be2 := benchBackend(b, ns)
		if err := be2.Ensure(ctx); err != nil {
			b.Fatal(err)
		}
		if err := be2.Replace(ctx, want); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		_ = be2.Close()
	}
	b.StopTimer()
	b.ReportMetric(total.Seconds()/float64(b.N), "s/replace")
	b.ReportMetric(peakRSSMB(), "MB-peak-RSS")
	b.ReportMetric(peakRSSMB()-base, "MB-over-input")
}

// floor loads 1M addresses with google/nftables and minimal code: the
// same interval set and elements (start with timeout, end), every
// SetAddElements call kept under the 64 KiB attribute limit, one Flush
// (transaction) per chunk.
func floor(b *testing.B, interval bool, chunk int) {
	requireRoot(b)
	const n = 1_000_000
	els := hosts4(0, n)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ns := newNS(b)
		resetPeakRSS()
		b.StartTimer()
		start := time.Now()
		c, err := nftables.New(nftables.WithNetNSFd(ns.fd), nftables.AsLasting(),
			nftables.WithSockOptions(func(c *netlink.Conn) error {
				raw, err := c.SyscallConn()
				if err != nil {
					return err
				}
				return raw.Control(func(fd uintptr) {
					_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 256<<20)
					// One acknowledgement per message: 500 of them
					// overflow the default receive buffer (ENOBUFS).
					_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
				})
			}))
		if err != nil {
			b.Fatal(err)
		}
		t := c.AddTable(&nftables.Table{Name: "floor", Family: nftables.TableFamilyIPv4})
		s := &nftables.Set{Table: t, Name: "s", KeyType: nftables.TypeIPAddr, Interval: interval, HasTimeout: true}
		if err := c.AddSet(s, nil); err != nil {
			b.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			b.Fatal(err)
		}
		var batch []nftables.SetElement
		for j, e := range els {
			a := e.Prefix.Addr().As4()
			batch = append(batch, nftables.SetElement{Key: a[:], Timeout: e.Timeout})
			if interval {
				end := ip4(uint32(a[0])<<24|uint32(a[1])<<16|uint32(a[2])<<8|uint32(a[3])) + 1
				batch = append(batch, nftables.SetElement{Key: end.appendKey(nil), IntervalEnd: true})
			}
			if len(batch) >= 2000 || j == len(els)-1 {
				if err := c.SetAddElements(s, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
			if (j+1)%chunk == 0 || j == len(els)-1 {
				if err := c.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		}
		total += time.Since(start)
		b.StopTimer()
		_ = c.CloseLasting()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/load")
	b.ReportMetric(peakRSSMB(), "MB-peak-RSS")
}

// BenchmarkFloorIntervalOneTxn1M: the interval set, all in one transaction
// (the best chunking on this kernel).
func BenchmarkFloorIntervalOneTxn1M(b *testing.B) { floor(b, true, 1_000_000) }

// BenchmarkFloorHashOneTxn1M: a set without the interval flag (our host
// set), all in one transaction.
func BenchmarkFloorHashOneTxn1M(b *testing.B) { floor(b, false, 1_000_000) }

// BenchmarkFloorHash4000_1M: what upstream loads, a set without the
// interval flag, 4000 elements per transaction.
func BenchmarkFloorHash4000_1M(b *testing.B) { floor(b, false, 4000) }
