package nftables

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/firewall"
)

// lab is a defender namespace (where the backend works and a TCP server
// listens) linked by a veth pair to an attacker namespace. Every address
// lives inside these two namespaces.
type lab struct {
	def, att *testNS
	port     int
}

const (
	defV4, attV4 = "10.99.0.1", "10.99.0.2"
	defV6, attV6 = "fd00:99::1", "fd00:99::2"
)

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{def: newNS(t), att: newNS(t)}
	for _, args := range [][]string{
		{"-n", l.def.name, "link", "add", "rpd0", "type", "veth", "peer", "name", "rpa0", "netns", l.att.name},
		{"-n", l.def.name, "addr", "add", defV4 + "/24", "dev", "rpd0"},
		{"-n", l.def.name, "addr", "add", defV6 + "/64", "dev", "rpd0", "nodad"},
		{"-n", l.def.name, "link", "set", "rpd0", "up"},
		{"-n", l.def.name, "link", "set", "lo", "up"},
		{"-n", l.att.name, "addr", "add", attV4 + "/24", "dev", "rpa0"},
		{"-n", l.att.name, "addr", "add", attV6 + "/64", "dev", "rpa0", "nodad"},
		{"-n", l.att.name, "link", "set", "rpa0", "up"},
		{"-n", l.att.name, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Skipf("cannot build the veth lab: ip %v: %v: %s", args, err, out)
		}
	}
	var ln net.Listener
	l.def.do(t, func() {
		var err error
		ln, err = net.Listen("tcp", ":0") // both families
		if err != nil {
			t.Fatalf("listen in defender: %v", err)
		}
	})
	l.port = ln.Addr().(*net.TCPAddr).Port
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	return l
}

// connect dials the defender from the attacker namespace.
func (l *lab) connect(t *testing.T, dst string, timeout time.Duration) error {
	t.Helper()
	var conn net.Conn
	var err error
	l.att.do(t, func() {
		d := net.Dialer{Timeout: timeout}
		conn, err = d.Dial("tcp", net.JoinHostPort(dst, itoa(l.port)))
	})
	if err == nil {
		_ = conn.Close()
	}
	return err
}

func itoa(n int) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(n)).String()[len("0.0.0.0:"):]
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// reach connects from the attacker to dst and fails the test unless the
// connection succeeds (want) or times out (a drop).
func (l *lab) reach(t *testing.T, dst string, want bool, timeout time.Duration) {
	t.Helper()
	err := l.connect(t, dst, timeout)
	// A lost first ARP request is retried only a second later: under load
	// a connection that should pass can time out once (CI failed that way
	// before any ban), so success gets a few tries.
	for deadline := time.Now().Add(10 * time.Second); want && isTimeout(err) && time.Now().Before(deadline); {
		err = l.connect(t, dst, time.Second)
	}
	switch {
	case want && err != nil:
		t.Fatalf("connect to %s: %v, want success", dst, err)
	case !want && !isTimeout(err):
		t.Fatalf("connect to %s: %v, want a timeout", dst, err)
	}
}

func TestPacketsDropped(t *testing.T) {
	ctx := context.Background()
	l := newLab(t)
	b := newBackend(t, testConfig(l.def))
	ensure(t, b)
	reach := func(dst string, want bool) { t.Helper(); l.reach(t, dst, want, time.Second) }
	apply := func(adds []firewall.Element, dels []netip.Prefix) {
		t.Helper()
		if err := b.Apply(ctx, adds, dels); err != nil {
			t.Fatal(err)
		}
	}
	reach(defV4, true)
	reach(defV6, true)

	apply([]firewall.Element{el(attV4+"/32", time.Hour)}, nil)
	reach(defV4, false)
	reach(defV6, true)
	apply(nil, pfx(attV4+"/32"))
	reach(defV4, true)

	// A /24 holding the attacker, with a /32 inside it: deleting the /32
	// keeps the /24 enforced.
	apply([]firewall.Element{el("10.99.0.0/24", time.Hour), el(attV4+"/32", 2*time.Hour)}, nil)
	reach(defV4, false)
	apply(nil, pfx(attV4+"/32"))
	reach(defV4, false)
	apply(nil, pfx("10.99.0.0/24"))
	reach(defV4, true)

	apply([]firewall.Element{el(attV6+"/128", time.Hour)}, nil)
	reach(defV6, false)
	reach(defV4, true)
	apply([]firewall.Element{el("fd00:99::/64", time.Hour)}, pfx(attV6+"/128"))
	reach(defV6, false)

	ctr, err := b.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ctr[firewall.IPv4].Packets == 0 || ctr[firewall.IPv4].Bytes == 0 || ctr[firewall.IPv6].Packets == 0 {
		t.Fatalf("counters did not move: %+v", ctr)
	}
}

func TestPacketsRejected(t *testing.T) {
	ctx := context.Background()
	l := newLab(t)
	cfg := testConfig(l.def)
	cfg.DenyAction = "REJECT"
	cfg.DenyLog = true
	b := newBackend(t, cfg)
	ensure(t, b)
	for _, dst := range []string{defV4, defV6} {
		if err := l.connect(t, dst, time.Second); err != nil {
			t.Fatalf("connect to %s before the ban: %v", dst, err)
		}
	}
	if err := b.Apply(ctx, []firewall.Element{el(attV4+"/32", time.Hour), el(attV6+"/128", time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	// The ban also rejects the attacker's neighbour solicitations and
	// advertisements, so over IPv6 a connect without a cached neighbour
	// fails only when address resolution gives up (3 s). With the
	// neighbour known, as here, IPv4 is refused at once; over IPv6 the
	// refusal ("permission denied") was seen to come with the first SYN
	// retransmission, after 1 s. A dropped connect waits for its timeout.
	for _, dst := range []string{defV4, defV6} {
		start := time.Now()
		err := l.connect(t, dst, 5*time.Second)
		if err == nil || isTimeout(err) || time.Since(start) > 1500*time.Millisecond {
			t.Fatalf("connect to %s: %v after %v, want a refusal", dst, err, time.Since(start))
		}
		t.Logf("connect to %s refused after %v: %v", dst, time.Since(start).Round(time.Millisecond), err)
	}
}

// TestPacketsHostInsideRange: a host banned inside a banned range lives in
// the host set and the range in the interval set; deleting either keeps the
// other enforced.
func TestPacketsHostInsideRange(t *testing.T) {
	ctx := context.Background()
	l := newLab(t)
	b := newBackend(t, testConfig(l.def))
	ensure(t, b)
	reach := func(dst string, want bool) { t.Helper(); l.reach(t, dst, want, 500*time.Millisecond) }
	apply := func(adds []firewall.Element, dels []netip.Prefix) {
		t.Helper()
		if err := b.Apply(ctx, adds, dels); err != nil {
			t.Fatal(err)
		}
	}
	for _, fam := range []struct{ dst, host, rng string }{
		{defV4, attV4 + "/32", "10.99.0.0/24"},
		{defV6, attV6 + "/128", "fd00:99::/64"},
	} {
		reach(fam.dst, true)
		// The /32 inside the banned /24: dropped; the /24 goes, the /32
		// still drops.
		apply([]firewall.Element{el(fam.rng, time.Hour), el(fam.host, time.Hour)}, nil)
		reach(fam.dst, false)
		apply(nil, pfx(fam.rng))
		reach(fam.dst, false)
		apply(nil, pfx(fam.host))
		reach(fam.dst, true)
		// The other way round: the /32 goes, the /24 still drops.
		apply([]firewall.Element{el(fam.host, time.Hour)}, nil)
		apply([]firewall.Element{el(fam.rng, time.Hour)}, nil)
		reach(fam.dst, false)
		apply(nil, pfx(fam.host))
		reach(fam.dst, false)
		// The ban moves from the range to the host, and back, in one
		// call each: enforced throughout.
		apply([]firewall.Element{el(fam.host, time.Hour)}, pfx(fam.rng))
		reach(fam.dst, false)
		apply([]firewall.Element{el(fam.rng, time.Hour)}, pfx(fam.host))
		reach(fam.dst, false)
		apply(nil, pfx(fam.rng))
		reach(fam.dst, true)
	}
	ctr, err := b.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := l.def.nft(t, "list", "ruleset")
	for _, id := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		// Counters sum both rules: each of them dropped packets.
		if ctr[id].Packets == 0 {
			t.Fatalf("counters: %+v", ctr)
		}
	}
	if n := strings.Count(out, "counter packets 0 "); n != 0 {
		t.Fatalf("a rule never matched:\n%s", out)
	}
	var sum uint64
	for _, m := range regexp.MustCompile(`saddr @crowdsec_blocklist(?:_ranges)? counter packets (\d+)`).FindAllStringSubmatch(out, -1) {
		n, _ := strconv.ParseUint(m[1], 10, 64)
		sum += n
	}
	if sum != ctr[firewall.IPv4].Packets {
		t.Fatalf("ipv4 counters %d, rules say %d:\n%s", ctr[firewall.IPv4].Packets, sum, out)
	}
}

// TestReplaceWithoutGap probes a banned address while Replace reloads a
// large set around it: no probe may get through.
func TestReplaceWithoutGap(t *testing.T) {
	ctx := context.Background()
	l := newLab(t)
	cfg := testConfig(l.def)
	cfg.IPv6.Enabled = false
	b := newBackend(t, cfg)
	ensure(t, b)
	want := make([]firewall.Element, 0, 100_001)
	for i := 0; i < 100_000; i++ {
		a := netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)})
		want = append(want, firewall.Element{Prefix: netip.PrefixFrom(a, 32), Timeout: time.Hour})
	}
	want = append(want, el(attV4+"/32", time.Hour))
	if err := b.Replace(ctx, want); err != nil {
		t.Fatal(err)
	}
	var through, tries atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			tries.Add(1)
			if err := l.connect(t, defV4, 50*time.Millisecond); err == nil {
				through.Add(1)
			}
		}
	}()
	b2 := newBackend(t, cfg) // a restart: the set is not empty
	ensure(t, b2)
	for i := 0; i < 3; i++ {
		if err := b2.Replace(ctx, want[i*1000:]); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-done
	if through.Load() > 0 {
		t.Fatalf("%d of %d probes got through during Replace", through.Load(), tries.Load())
	}
	if tries.Load() < 3 {
		t.Fatalf("only %d probes", tries.Load())
	}
	if st := b2.Stats(); st.Elements[firewall.IPv4] != 98_001 {
		t.Fatalf("elements: %d", st.Elements[firewall.IPv4])
	}
}

// TestApplyMoveWithoutGap probes a banned address while large Applies,
// cut into many transactions, move its ban from a range to the host set
// and back: no probe may get through.
func TestApplyMoveWithoutGap(t *testing.T) {
	ctx := context.Background()
	l := newLab(t)
	cfg := testConfig(l.def)
	cfg.IPv6.Enabled = false
	b := newBackend(t, cfg)
	ensure(t, b)
	b.txnBytes = 64 << 10 // about 2300 hosts per transaction
	bulk := func(off int) []firewall.Element {
		out := make([]firewall.Element, 0, 50_000)
		for i := off; i < off+50_000; i++ {
			a := netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)})
			out = append(out, firewall.Element{Prefix: netip.PrefixFrom(a, 32), Timeout: time.Hour})
		}
		return out
	}
	if err := b.Apply(ctx, []firewall.Element{el("10.99.0.0/24", time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	// Besides TCP connects, a ping flood from the attacker, counted by a
	// rule of another table that sees what our chain let through: windows
	// of a fraction of a millisecond show up there.
	l.def.nft(t, "add table ip probe")
	l.def.nft(t, "add chain ip probe in { type filter hook input priority 10; policy accept; }")
	l.def.nft(t, "add rule ip probe in ip saddr "+attV4+" icmp type echo-request counter")
	flood := exec.Command("ip", "netns", "exec", l.att.name, "ping", "-i", "0.00002", "-q", defV4)
	if err := flood.Start(); err != nil {
		t.Skipf("ping flood: %v", err)
	}
	defer func() { _ = flood.Process.Kill(); _ = flood.Wait() }()
	t0 := time.Now()
	var through, tries atomic.Int64
	var mu sync.Mutex
	var events []string
	note := func(s string) {
		mu.Lock()
		events = append(events, fmt.Sprintf("%s at %v", s, time.Since(t0)))
		mu.Unlock()
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			tries.Add(1)
			at := time.Since(t0)
			if err := l.connect(t, defV4, 50*time.Millisecond); err == nil {
				through.Add(1)
				mu.Lock()
				events = append(events, fmt.Sprintf("probe through %v-%v", at, time.Since(t0)))
				mu.Unlock()
			}
		}
	}()
	for i := 0; i < 3; i++ {
		// Range to host: the host add comes last in a long list.
		adds := append(bulk(2*i*50_000), el(attV4+"/32", time.Hour))
		note("range to host")
		if err := b.Apply(ctx, adds, pfx("10.99.0.0/24")); err != nil {
			t.Fatal(err)
		}
		note("done")
		// Host to range: the host delete comes with a long list of deletes.
		var dels []netip.Prefix
		for _, e := range bulk(2 * i * 50_000) {
			dels = append(dels, e.Prefix)
		}
		dels = append([]netip.Prefix{netip.MustParsePrefix(attV4 + "/32")}, dels...)
		note("host to range")
		if err := b.Apply(ctx, append(bulk((2*i+1)*50_000), el("10.99.0.0/24", time.Hour)), dels); err != nil {
			t.Fatal(err)
		}
		note("done")
	}
	if st := b.Stats(); st.Elements[firewall.IPv4] != 150_001 {
		t.Fatalf("elements: %d", st.Elements[firewall.IPv4])
	}
	// The same moves by Replace, both sets holding something, as after a
	// restart.
	other := el("198.51.100.0/24", time.Hour)
	for i := 0; i < 2; i++ {
		b2 := newBackend(t, cfg)
		ensure(t, b2)
		note("replace: range to host")
		if err := b2.Replace(ctx, append(bulk(0), el(attV4+"/32", time.Hour), other)); err != nil {
			t.Fatal(err)
		}
		note("replace: host to range")
		if err := b2.Replace(ctx, append(bulk(50_000), el("10.99.0.0/24", time.Hour), other)); err != nil {
			t.Fatal(err)
		}
		note("done")
		if st := b2.Stats(); st.Elements[firewall.IPv4] != 50_002 {
			t.Fatalf("elements after Replace: %d", st.Elements[firewall.IPv4])
		}
	}
	close(stop)
	<-done
	if through.Load() > 0 {
		t.Fatalf("%d of %d probes got through: %v", through.Load(), tries.Load(), events)
	}
	if tries.Load() < 3 {
		t.Fatalf("only %d probes", tries.Load())
	}
	if out := l.def.nft(t, "list chain ip probe in"); !strings.Contains(out, "counter packets 0 bytes 0") {
		t.Fatalf("pings got through:\n%s", out)
	}
	if out := l.def.nft(t, "list ruleset"); !regexp.MustCompile(`@crowdsec_blocklist counter packets [1-9]`).MatchString(out) ||
		!regexp.MustCompile(`@crowdsec_blocklist_ranges counter packets [1-9]`).MatchString(out) {
		t.Fatalf("the flood did not reach both rules:\n%s", out)
	}
	if got := names(v4Elements(t, l.def)); !slices.Equal(got, []string{"10.99.0.0-10.99.0.255", "198.51.100.0-198.51.100.255"}) {
		t.Fatalf("ranges: %v", got)
	}
	if err := l.connect(t, defV4, 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("connect after the moves: %v, want a timeout", err)
	}
}

// TestProcessedCounters sends known UDP datagrams from the attacker: the
// counter rule at the top of our chains counts each one, dropped or not,
// and the ban rules count only the dropped ones.
func TestProcessedCounters(t *testing.T) {
	ctx := context.Background()
	l := newLab(t)
	b := newBackend(t, testConfig(l.def))
	ensure(t, b)
	read := func() (dropped, processed map[firewall.Family]firewall.Counter) {
		t.Helper()
		d, p, err := b.TrafficCounters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d, p
	}
	const n, payload = 25, 100
	send := func(dst string) {
		t.Helper()
		l.att.do(t, func() {
			// Unconnected: a port-unreachable reply must not fail the
			// next write.
			c, err := net.ListenPacket("udp", ":0")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(dst), 9))
			for i := 0; i < n; i++ {
				if _, err := c.WriteTo(make([]byte, payload), to); err != nil {
					t.Fatal(err)
				}
			}
		})
		time.Sleep(100 * time.Millisecond)
	}
	check := func(fam firewall.Family, before, after firewall.Counter, hdr uint64, exact bool) {
		t.Helper()
		dp, db := after.Packets-before.Packets, after.Bytes-before.Bytes
		if exact && (dp != n || db != n*(hdr+payload)) || !exact && (dp < n || db < n*(hdr+payload)) {
			t.Errorf("family %v grew by %d packets, %d bytes; want %d, %d", fam, dp, db, n, n*(hdr+payload))
		}
	}
	// Warm up: the first datagrams wait for neighbour resolution, and
	// some of them may be lost there, before reaching the input hook. A
	// lost first ARP request is only retried a second later, so wait until
	// a connection gets through both ways rather than a fixed time.
	for _, dst := range []string{defV4, defV6} {
		deadline := time.Now().Add(10 * time.Second)
		for l.connect(t, dst, time.Second) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("the lab never carried a connection to %s", dst)
			}
		}
	}
	send(defV4)
	send(defV6)
	d0, p0 := read()
	send(defV4)
	send(defV6)
	d1, p1 := read()
	// IPv4: only our datagrams reach the input chain (ARP is not IP).
	// IPv6: neighbour discovery and MLD add a few packets.
	check(firewall.IPv4, p0[firewall.IPv4], p1[firewall.IPv4], 28, true)
	check(firewall.IPv6, p0[firewall.IPv6], p1[firewall.IPv6], 48, false)
	if d1[firewall.IPv4] != d0[firewall.IPv4] || d1[firewall.IPv6].Packets != 0 {
		t.Errorf("drops without a ban: %+v", d1)
	}

	if err := b.Apply(ctx, []firewall.Element{el(attV4+"/32", time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	send(defV4)
	d2, p2 := read()
	check(firewall.IPv4, p1[firewall.IPv4], p2[firewall.IPv4], 28, true)
	check(firewall.IPv4, d1[firewall.IPv4], d2[firewall.IPv4], 28, true)
	if ctr, err := b.Counters(ctx); err != nil || ctr[firewall.IPv4] != d2[firewall.IPv4] {
		t.Errorf("Counters = %+v, %v; TrafficCounters said %+v", ctr, err, d2)
	}
}
