package iptables

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
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/firewall"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netns"
)

// Every test works in network namespaces it creates and deletes; none
// touches the host's firewall. TestMain checks that: it compares the
// host's rules and sets before and after the run.
func TestMain(m *testing.M) {
	before, ok := hostState()
	code := m.Run()
	if ok {
		if after, _ := hostState(); after != before {
			fmt.Fprintf(os.Stderr, "host firewall changed during the tests!\nbefore:\n%s\nafter:\n%s\n", before, after)
			code = 1
		}
	}
	os.Exit(code)
}

func hostState() (string, bool) {
	if os.Geteuid() != 0 {
		return "", false
	}
	var b strings.Builder
	for _, args := range [][]string{{"iptables", "-S"}, {"ip6tables", "-S"}, {"ipset", "list", "-n"}} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return "", false
		}
		b.WriteString(strings.Join(args, " ") + ":\n" + string(out))
	}
	return b.String(), true
}

// requireRoot skips tests that need root, the tools and network namespaces.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root (network namespaces, ipset, iptables)")
	}
	for _, bin := range []string{"ip", "iptables", "ip6tables", "ipset"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Skipf("needs %s: %v", bin, err)
		}
	}
}

// ns is a named network namespace that lives as long as the test.
type ns struct {
	name string
	h    netns.NsHandle
}

func newNS(tb testing.TB) ns {
	tb.Helper()
	requireRoot(tb)
	var r [4]byte
	_, _ = rand.Read(r[:])
	name := "rampart-ipt-" + hex.EncodeToString(r[:])
	var h netns.NsHandle
	errc := make(chan error, 1)
	go func() {
		// NewNamed moves this thread into the new namespace; the thread
		// comes back, or stays locked and dies with the goroutine.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		h, err = netns.NewNamed(name)
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	err := <-errc
	if err != nil {
		tb.Skipf("cannot create a network namespace: %v", err)
	}
	tb.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			tb.Errorf("delete netns %s: %v", name, err)
		}
	})
	run(tb, name, "ip", "link", "set", "lo", "up")
	return ns{name: name, h: h}
}

// run executes a command inside the namespace and returns its output.
func run(tb testing.TB, nsName string, args ...string) string {
	tb.Helper()
	out, err := runErr(nsName, args...)
	if err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(nsName string, args ...string) (string, error) {
	full := append([]string{"netns", "exec", nsName}, args...)
	out, err := exec.Command("ip", full...).CombinedOutput()
	return string(out), err
}

type tlog struct{ tb testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(tb testing.TB) logrus.FieldLogger {
	l := logrus.New()
	l.Out = tlog{tb}
	return l
}

func newBackend(tb testing.TB, n ns, cfg Config) *Backend {
	tb.Helper()
	cfg.NetNS = int(n.h)
	if cfg.Log == nil {
		cfg.Log = testLogger(tb)
	}
	b, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func ensure(tb testing.TB, b *Backend) {
	tb.Helper()
	if err := b.Ensure(context.Background()); err != nil {
		tb.Fatalf("Ensure: %v", err)
	}
}

func apply(tb testing.TB, b *Backend, adds []firewall.Element, dels ...netip.Prefix) {
	tb.Helper()
	if err := b.Apply(context.Background(), adds, dels); err != nil {
		tb.Fatalf("Apply: %v", err)
	}
}

func el(s string, d time.Duration) firewall.Element {
	return firewall.Element{Prefix: netip.MustParsePrefix(s), Timeout: d}
}

func intact(tb testing.TB, b *Backend) bool {
	tb.Helper()
	ok, err := b.Intact(context.Background())
	if err != nil {
		tb.Fatalf("Intact: %v", err)
	}
	return ok
}

// members lists a set with the ipset tool: element -> timeout.
func members(tb testing.TB, n ns, set string) map[string]int {
	tb.Helper()
	out := run(tb, n.name, "ipset", "list", set)
	m := map[string]int{}
	in := false
	for _, l := range strings.Split(out, "\n") {
		if l == "Members:" {
			in = true
			continue
		}
		f := strings.Fields(l)
		if !in || len(f) == 0 {
			continue
		}
		t := -1
		if len(f) >= 3 && f[1] == "timeout" {
			t, _ = strconv.Atoi(f[2])
		}
		m[f[0]] = t
	}
	return m
}

// headerField reads one "Key: value" line of `ipset list -t`.
func headerField(tb testing.TB, n ns, set, field string) string {
	tb.Helper()
	for _, l := range strings.Split(run(tb, n.name, "ipset", "list", "-t", set), "\n") {
		if v, ok := strings.CutPrefix(l, field+": "); ok {
			return v
		}
	}
	tb.Fatalf("ipset list -t %s: no %q", set, field)
	return ""
}

// rulesOf returns `iptables -S` (or ip6tables) inside the namespace.
func rulesOf(tb testing.TB, n ns, bin string) []string {
	tb.Helper()
	return strings.Split(strings.TrimSpace(run(tb, n.name, bin, "-S")), "\n")
}

func count(lines []string, want string) int {
	c := 0
	for _, l := range lines {
		if l == want {
			c++
		}
	}
	return c
}

// pair is a defender and an attacker namespace joined by a veth pair,
// addressed from the benchmarking range 198.18.0.0/15 and 2001:db8::/32.
type pair struct {
	def, att ns
}

const (
	defV4 = "198.18.0.1"
	attV4 = "198.18.0.2"
	defV6 = "2001:db8:5::1"
	attV6 = "2001:db8:5::2"
	port  = "8080"
)

func newPair(tb testing.TB) pair {
	tb.Helper()
	p := pair{def: newNS(tb), att: newNS(tb)}
	run(tb, p.def.name, "ip", "link", "add", "vdef", "type", "veth", "peer", "name", "vatt", "netns", p.att.name)
	for _, c := range []struct {
		n        ns
		dev      string
		ip4, ip6 string
	}{{p.def, "vdef", defV4, defV6}, {p.att, "vatt", attV4, attV6}} {
		run(tb, c.n.name, "ip", "addr", "add", c.ip4+"/24", "dev", c.dev)
		run(tb, c.n.name, "ip", "-6", "addr", "add", c.ip6+"/64", "dev", c.dev, "nodad")
		run(tb, c.n.name, "ip", "link", "set", c.dev, "up")
	}
	var ln net.Listener
	err := inNS(p.def.h, func() error {
		var err error
		ln, err = net.Listen("tcp", ":"+port)
		return err
	})
	if err != nil {
		tb.Fatalf("listen in defender: %v", err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// The link needs a moment before the first packet gets through.
	deadline := time.Now().Add(5 * time.Second)
	for p.dial(defV4) != nil || p.dial(defV6) != nil {
		if time.Now().After(deadline) {
			tb.Fatalf("defender unreachable before any ban: v4 %v, v6 %v", p.dial(defV4), p.dial(defV6))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// dial connects from the attacker to the defender with a 1 s timeout.
func (p pair) dial(addr string) error { return p.dialTimeout(addr, time.Second) }

func (p pair) dialTimeout(addr string, d time.Duration) error {
	return inNS(p.att.h, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, port), d)
		if err == nil {
			c.Close()
		}
		return err
	})
}
