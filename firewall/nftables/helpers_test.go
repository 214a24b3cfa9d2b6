package nftables

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/rampart-ips/rampart/firewall"
)

// Tests that touch the kernel need root and create a network namespace of
// their own for every test; the host's firewall is never touched.

type testNS struct {
	name string
	fd   int
}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root (network namespaces, nftables)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip("needs the ip command")
	}
}

// newNS creates a network namespace that is deleted when the test ends.
func newNS(tb testing.TB) *testNS {
	tb.Helper()
	requireRoot(tb)
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	name := "rampart-nft-" + hex.EncodeToString(rb[:])
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		_ = exec.Command("ip", "netns", "del", name).Run()
		tb.Skipf("cannot open network namespace: %v", err)
	}
	ns := &testNS{name: name, fd: int(f.Fd())}
	tb.Cleanup(func() {
		_ = f.Close()
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("delete netns %s: %v: %s", name, err, out)
		}
	})
	return ns
}

// run runs a command inside the namespace and returns its output.
func (ns *testNS) run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.name, name}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (ns *testNS) nft(tb testing.TB, args ...string) string {
	tb.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		tb.Skip("needs the nft command to inspect the ruleset")
	}
	return ns.run(tb, "nft", args...)
}

// do runs fn on a thread inside the namespace: sockets fn creates live
// there.
func (ns *testNS) do(tb testing.TB, fn func()) {
	tb.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("get netns: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(netns.NsHandle(ns.fd)); err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("enter netns: %v", err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with the goroutine.
			tb.Errorf("leave netns: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

func testConfig(ns *testNS) Config {
	return Config{IPv4: Family{Enabled: true}, IPv6: Family{Enabled: true}, NetNS: ns.fd}
}

func newBackend(tb testing.TB, cfg Config) *Backend {
	tb.Helper()
	b, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

func ensure(tb testing.TB, b *Backend) {
	tb.Helper()
	if err := b.Ensure(context.Background()); err != nil {
		tb.Fatalf("Ensure: %v", err)
	}
}

// kelem is an interval the kernel holds.
type kelem struct {
	first, last netip.Addr
	timeout     time.Duration // as set
	expires     time.Duration // left
}

// kernelElements reads a set back (fine for the small sets of tests) and
// pairs interval starts with their ends.
func kernelElements(tb testing.TB, ns *testNS, fam nftables.TableFamily, table, set string) []kelem {
	tb.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd))
	if err != nil {
		tb.Fatalf("nftables.New: %v", err)
	}
	s, err := c.GetSetByName(&nftables.Table{Name: table, Family: fam}, set)
	if err != nil {
		tb.Fatalf("get set %s: %v", set, err)
	}
	els, err := c.GetSetElements(s)
	if err != nil {
		tb.Fatalf("get elements of %s: %v", set, err)
	}
	type pt struct {
		a   netip.Addr
		end bool
		e   nftables.SetElement
	}
	pts := make([]pt, 0, len(els))
	for _, e := range els {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok {
			tb.Fatalf("bad key %x", e.Key)
		}
		pts = append(pts, pt{a, e.IntervalEnd, e})
	}
	slices.SortFunc(pts, func(x, y pt) int {
		if d := x.a.Compare(y.a); d != 0 {
			return d
		}
		if x.end != y.end {
			if x.end {
				return -1
			}
			return 1
		}
		return 0
	})
	var out []kelem
	for i, p := range pts {
		if p.end {
			continue
		}
		k := kelem{first: p.a, timeout: p.e.Timeout, expires: p.e.Expires}
		if i+1 < len(pts) && pts[i+1].end {
			k.last = pts[i+1].a.Prev()
		} else if p.a.Is4() {
			k.last = netip.AddrFrom4([4]byte{255, 255, 255, 255})
		} else {
			k.last = netip.AddrFrom16([16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		}
		out = append(out, k)
	}
	return out
}

// kernelHosts reads a host (hash) set back, sorted by address.
func kernelHosts(tb testing.TB, ns *testNS, fam nftables.TableFamily, table, set string) []kelem {
	tb.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd))
	if err != nil {
		tb.Fatalf("nftables.New: %v", err)
	}
	s, err := c.GetSetByName(&nftables.Table{Name: table, Family: fam}, set)
	if err != nil {
		tb.Fatalf("get set %s: %v", set, err)
	}
	els, err := c.GetSetElements(s)
	if err != nil {
		tb.Fatalf("get elements of %s: %v", set, err)
	}
	out := make([]kelem, 0, len(els))
	for _, e := range els {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok || e.IntervalEnd {
			tb.Fatalf("bad host element %+v", e)
		}
		out = append(out, kelem{first: a, last: a, timeout: e.Timeout, expires: e.Expires})
	}
	slices.SortFunc(out, func(x, y kelem) int { return x.first.Compare(y.first) })
	return out
}

func v4Hosts(tb testing.TB, ns *testNS) []kelem {
	return kernelHosts(tb, ns, nftables.TableFamilyIPv4, "crowdsec", "crowdsec_blocklist")
}

func v6Hosts(tb testing.TB, ns *testNS) []kelem {
	return kernelHosts(tb, ns, nftables.TableFamilyIPv6, "crowdsec6", "crowdsec6_blocklist")
}

// v4Elements is the interval set of ranges.
func v4Elements(tb testing.TB, ns *testNS) []kelem {
	return kernelElements(tb, ns, nftables.TableFamilyIPv4, "crowdsec", "crowdsec_blocklist_ranges")
}

func v6Elements(tb testing.TB, ns *testNS) []kelem {
	return kernelElements(tb, ns, nftables.TableFamilyIPv6, "crowdsec6", "crowdsec6_blocklist_ranges")
}

func (k kelem) String() string {
	if k.first == k.last {
		return k.first.String()
	}
	return k.first.String() + "-" + k.last.String()
}

func names(ks []kelem) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.String()
	}
	return out
}

func el(p string, d time.Duration) firewall.Element {
	return firewall.Element{Prefix: netip.MustParsePrefix(p), Timeout: d}
}

func pfx(ps ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}
