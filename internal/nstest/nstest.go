// Package nstest builds throwaway network namespaces for tests that touch
// netfilter: a "defender" and an "attacker" joined by a veth pair. Nothing
// here ever changes the host's own namespace; everything is removed when
// the test ends.
package nstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// Pair is two namespaces joined by a veth pair, with IPv4 and IPv6.
type Pair struct {
	Defender, Attacker string
	DefLink, AttLink   string // the veth ends
	DefIP4, AttIP4     netip.Addr
	DefIP6, AttIP6     netip.Addr
}

// Require skips the test unless it runs as root with ip(8) available.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// NewPair creates the namespaces; subnet picks 10.<subnet>.0.0/24 and
// fd00:<subnet>::/64 so parallel tests do not collide.
func NewPair(t testing.TB, subnet int) *Pair {
	t.Helper()
	return newPair(t, &Pair{
		DefIP4: netip.MustParseAddr(fmt.Sprintf("10.%d.0.1", subnet)), AttIP4: netip.MustParseAddr(fmt.Sprintf("10.%d.0.2", subnet)),
		DefIP6: netip.MustParseAddr(fmt.Sprintf("fd00:%x::1", subnet)), AttIP6: netip.MustParseAddr(fmt.Sprintf("fd00:%x::2", subnet)),
	})
}

// NewPublicPair is NewPair with public-looking addresses: the
// documentation ranges 198.51.100.0/24 and 2001:db8:<subnet>::/64, which no
// private-range whitelist covers (the addresses exist only inside the
// test's namespaces).
func NewPublicPair(t testing.TB, subnet int) *Pair {
	t.Helper()
	return newPair(t, &Pair{
		DefIP4: netip.MustParseAddr("198.51.100.1"), AttIP4: netip.MustParseAddr("198.51.100.2"),
		DefIP6: netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::1", subnet)), AttIP6: netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::2", subnet)),
	})
}

func newPair(t testing.TB, p *Pair) *Pair {
	t.Helper()
	Require(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	p.Defender, p.Attacker = "rdef-"+id, "ratt-"+id
	vd, va := "vd"+id, "va"+id
	p.DefLink, p.AttLink = vd, va
	t.Cleanup(func() {
		_ = run("ip", "netns", "del", p.Defender)
		_ = run("ip", "netns", "del", p.Attacker)
	})
	steps := [][]string{
		{"ip", "netns", "add", p.Defender},
		{"ip", "netns", "add", p.Attacker},
		{"ip", "link", "add", vd, "netns", p.Defender, "type", "veth", "peer", "name", va, "netns", p.Attacker},
		{"ip", "-n", p.Defender, "link", "set", "lo", "up"},
		{"ip", "-n", p.Attacker, "link", "set", "lo", "up"},
		{"ip", "-n", p.Defender, "addr", "add", p.DefIP4.String() + "/24", "dev", vd},
		{"ip", "-n", p.Attacker, "addr", "add", p.AttIP4.String() + "/24", "dev", va},
		{"ip", "-n", p.Defender, "addr", "add", p.DefIP6.String() + "/64", "dev", vd, "nodad"},
		{"ip", "-n", p.Attacker, "addr", "add", p.AttIP6.String() + "/64", "dev", va, "nodad"},
		{"ip", "-n", p.Defender, "link", "set", vd, "up"},
		{"ip", "-n", p.Attacker, "link", "set", va, "up"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			t.Fatalf("creating namespaces: %v", err)
		}
	}
	return p
}

// Command returns a command that runs inside namespace ns.
func (p *Pair) Command(ctx context.Context, ns string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// Run runs a command inside ns and returns its combined output.
func (p *Pair) Run(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := p.Command(context.Background(), ns, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v: %s", strings.Join(args, " "), ns, err, out)
	}
	return string(out)
}

// In runs fn on an OS thread moved into namespace ns (sockets it opens stay
// in that namespace).
func In(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked: it dies with the goroutine rather
		// than carry the namespace back into the scheduler's pool.
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// ListenRaw opens a TCP listener inside ns; the caller serves it.
func (p *Pair) ListenRaw(t testing.TB, ns, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := In(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Listen opens a TCP listener inside ns that accepts and closes connections
// (enough to tell a completed handshake from a dropped SYN).
func (p *Pair) Listen(t testing.TB, ns, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := In(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, ns, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Dial tries a TCP connection from ns; nil means the handshake completed.
func (p *Pair) Dial(ns, addr string, timeout time.Duration) error {
	return In(ns, func() error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// Eventually polls cond until it holds or the timeout passes.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DialConn opens a TCP connection from inside ns and returns it.
func (p *Pair) DialConn(ns, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := In(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

// DialFrom connects from namespace ns with source address src.
func (p *Pair) DialFrom(ns string, src netip.Addr, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := In(ns, func() error {
		var err error
		d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		c, err = d.Dial("tcp", addr)
		return err
	})
	return c, err
}

// LAN is several namespaces on one Ethernet segment: each has a veth
// whose other end is a port of a bridge in a namespace of its own, so
// nothing of it touches the host's network. The embedded Pair's methods
// (Command, Run, Listen, Dial, DialFrom) work in any namespace; its own
// fields are unset.
type LAN struct {
	Pair
	NS   map[string]string     // member name → namespace
	Addr map[string]netip.Addr // member name → its first address
	dev  map[string]string     // member name → its veth
}

// NewLAN creates the segment with one namespace per member, member i
// (from 0) holding prefix's address number i+1 (prefix is a /24 such as
// 198.51.100.0/24).
func NewLAN(t testing.TB, prefix netip.Prefix, members ...string) *LAN {
	t.Helper()
	Require(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	l := &LAN{NS: map[string]string{}, Addr: map[string]netip.Addr{}, dev: map[string]string{}}
	sw := "rlan-" + id
	t.Cleanup(func() { _ = run("ip", "netns", "del", sw) })
	steps := [][]string{
		{"ip", "netns", "add", sw},
		{"ip", "-n", sw, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", sw, "link", "set", "br0", "up"},
	}
	addr := prefix.Masked().Addr()
	for i, m := range members {
		ns := fmt.Sprintf("r%d-%s", i, id)
		addr = addr.Next()
		in, port := fmt.Sprintf("e%d%s", i, id), fmt.Sprintf("p%d%s", i, id)
		l.NS[m], l.Addr[m], l.dev[m] = ns, addr, in
		t.Cleanup(func() { _ = run("ip", "netns", "del", ns) })
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "link", "add", in, "netns", ns, "type", "veth", "peer", "name", port, "netns", sw},
			[]string{"ip", "-n", sw, "link", "set", port, "master", "br0", "up"},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			[]string{"ip", "-n", ns, "addr", "add", fmt.Sprintf("%s/%d", addr, prefix.Bits()), "dev", in},
			[]string{"ip", "-n", ns, "link", "set", in, "up"},
		)
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			t.Fatalf("creating the LAN: %v", err)
		}
	}
	return l
}

// AddAddr gives member another address on the segment (an attacker
// with several sources).
func (l *LAN) AddAddr(t testing.TB, member string, a netip.Addr, bits int) {
	t.Helper()
	if err := run("ip", "-n", l.NS[member], "addr", "add", fmt.Sprintf("%s/%d", a, bits), "dev", l.dev[member]); err != nil {
		t.Fatalf("adding %s to %s: %v", a, member, err)
	}
}
