package nftables

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
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

func TestPacketsDropped(t *testing.T) {
	ctx := context.Background()
	l := newLab(t)
	b := newBackend(t, testConfig(l.def))
	ensure(t, b)
	reach := func(dst string, want bool) {
		t.Helper()
		err := l.connect(t, dst, time.Second)
		switch {
		case want && err != nil:
			t.Fatalf("connect to %s: %v, want success", dst, err)
		case !want && !isTimeout(err):
			t.Fatalf("connect to %s: %v, want a timeout", dst, err)
		}
	}
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
