package acquisition

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/event"
)

// startSyslog runs a syslog server on 127.0.0.1, port 0, with limits
// changed by tweak, and returns its harness and bound addresses.
func startSyslog(t *testing.T, proto string, tweak func(*syslogLimits)) (*srcHarness, *syslogSource, net.Addr, net.Addr) {
	t.Helper()
	opts, hook, m := acqTestOptions()
	src, err := newSyslogSource(Config{Source: "syslog", Protocol: proto, Labels: map[string]string{"type": "syslog", "env": "test"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*syslogSource)
	s.addr = "127.0.0.1:0"
	if tweak != nil {
		tweak(&s.limits)
	}
	h := runSource(t, s, hook, m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	udp, tcp, err := s.boundAddrs(ctx)
	if err != nil {
		t.Fatalf("server not listening: %v", err)
	}
	return h, s, udp, tcp
}

func syslogDial(t *testing.T, network string, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.Dial(network, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func syslogWrite(t *testing.T, c net.Conn, msgs ...string) {
	t.Helper()
	for _, m := range msgs {
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
}

// syslogWaitFor polls cond for up to 5s.
func syslogWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stamp is how a local timestamp reads in a rebuilt line.
func stamp(t time.Time) string { return t.Local().Format(time.Stamp) }

func TestSyslogUDP(t *testing.T) {
	h, _, udp, tcp := startSyslog(t, "udp", nil)
	if tcp != nil {
		t.Fatalf("udp server listens on tcp %v", tcp)
	}
	c := syslogDial(t, "udp", udp)
	before := time.Now()
	syslogWrite(t, c,
		"<34>Nov 25 10:00:01 web1 sshd[123]: Failed password for root from 1.2.3.4 port 22 ssh2",
		"<13>Nov 25 10:00:02 sshd[9]: no host here\n",
		"Nov 25 10:00:03 web2 cron[7]: no PRI here",
		`<165>1 2025-11-25T10:00:04.5Z db1 postgres 4242 ID7 [origin ip="10.0.0.1"][meta seq="1"] connection received`,
		"<14>1 - - - - - - only a message",
	)
	got := h.collect(5, 5*time.Second)
	year := time.Now().Year()
	if time.Date(year, 11, 25, 10, 0, 1, 0, time.Local).After(time.Now().Add(24 * time.Hour)) {
		year--
	}
	want := []string{
		"Nov 25 10:00:01 web1 sshd[123]: Failed password for root from 1.2.3.4 port 22 ssh2",
		"Nov 25 10:00:02 127.0.0.1 sshd[9]: no host here",
		"Nov 25 10:00:03 web2 cron[7]: no PRI here",
		stamp(time.Date(2025, 11, 25, 10, 0, 4, 5e8, time.UTC)) + " db1 postgres[4242]: connection received",
		"",
	}
	for i, l := range got {
		if i == 4 {
			if !strings.HasPrefix(l.Raw, stamp(before)[:7]) || !strings.HasSuffix(l.Raw, " 127.0.0.1 only a message") {
				t.Errorf("line %d = %q, want now's date, the peer as host and the message", i, l.Raw)
			}
			if l.Time.Before(before.Add(-time.Second)) || l.Time.After(time.Now()) {
				t.Errorf("line %d time %v: want now", i, l.Time)
			}
		} else if l.Raw != want[i] {
			t.Errorf("line %d = %q, want %q", i, l.Raw, want[i])
		}
		if l.Src != "127.0.0.1" || l.Module != "syslog" || l.Labels["type"] != "syslog" || l.Labels["env"] != "test" {
			t.Errorf("line %d: src %q module %q labels %v", i, l.Src, l.Module, l.Labels)
		}
	}
	if wt := time.Date(year, 11, 25, 10, 0, 1, 0, time.Local); !got[0].Time.Equal(wt) {
		t.Errorf("RFC 3164 time = %v, want %v", got[0].Time, wt)
	}
	if wt := time.Date(2025, 11, 25, 10, 0, 4, 5e8, time.UTC); !got[3].Time.Equal(wt) {
		t.Errorf("RFC 5424 time = %v, want %v", got[3].Time, wt)
	}
	// upstream's per-peer counter, keyed like the lines' Src
	if v := testutil.ToFloat64(h.metrics.hits["syslog"].WithLabelValues("127.0.0.1", "syslog", "syslog")); v != 5 {
		t.Errorf("cs_syslogsource_hits_total = %v, want 5", v)
	}
}

func TestSyslogTCPFraming(t *testing.T) {
	h, s, udp, tcp := startSyslog(t, "tcp", nil)
	if udp != nil {
		t.Fatalf("tcp server listens on udp %v", udp)
	}
	c := syslogDial(t, "tcp", tcp)
	m1 := "<13>1 2025-11-25T10:00:01Z h1 app 1 - - octet one"
	m2 := "<13>1 2025-11-25T10:00:02Z h1 app 2 - [x y=\"a]\\\"b\"] two\nlines"
	m3 := "<13>Nov 25 10:00:03 h2 lf[3]: newline framed"
	m4 := "<13>Nov 25 10:00:04 h2 lf[4]: crlf framed"
	stream := fmt.Sprintf("%d %s%d %s%s\n%s\r\n\n", len(m1), m1, len(m2), m2, m3, m4)
	// Byte by byte: framing must not depend on how TCP segments the stream.
	for i := range len(stream) {
		syslogWrite(t, c, stream[i:i+1])
	}
	got := raws(h.collect(4, 5*time.Second))
	want := []string{
		stamp(time.Date(2025, 11, 25, 10, 0, 1, 0, time.UTC)) + " h1 app[1]: octet one",
		stamp(time.Date(2025, 11, 25, 10, 0, 2, 0, time.UTC)) + " h1 app[2]: two\nlines",
		"Nov 25 10:00:03 h2 lf[3]: newline framed",
		"Nov 25 10:00:04 h2 lf[4]: crlf framed",
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i, got[i], want[i])
		}
	}
	// A last message without newline counts once the peer closes.
	syslogWrite(t, c, "<13>Nov 25 10:00:05 h2 lf[5]: unterminated")
	c.(*net.TCPConn).CloseWrite()
	if l := h.collect(1, 5*time.Second)[0]; l.Raw != "Nov 25 10:00:05 h2 lf[5]: unterminated" {
		t.Errorf("unterminated line = %q", l.Raw)
	}
	if n := s.malformed.Load(); n != 0 {
		t.Errorf("%d messages counted malformed", n)
	}
}

func TestSyslogOversizedAndGarbage(t *testing.T) {
	const max = 1024
	h, s, udp, tcp := startSyslog(t, "both", func(l *syslogLimits) { l.maxMsg = max })
	big := "<13>Nov 25 10:00:01 h a: " + strings.Repeat("x", max)

	u := syslogDial(t, "udp", udp)
	syslogWrite(t, u, big, "\x00\x01\xfe\xff garbage", "<999>bad pri", "<13>", "<13>Nov 25 10:00:02 h a: fine udp")
	if l := h.collect(1, 5*time.Second)[0]; l.Raw != "Nov 25 10:00:02 h a: fine udp" {
		t.Errorf("after bad datagrams got %q", l.Raw)
	}
	syslogWaitFor(t, "4 malformed datagrams", func() bool { return s.malformed.Load() == 4 })

	// Newline framing: the oversized line is skipped, the connection lives on.
	c := syslogDial(t, "tcp", tcp)
	syslogWrite(t, c, big+"\n", "random garbage line\n", "<13>Nov 25 10:00:03 h a: fine tcp\n")
	if l := h.collect(1, 5*time.Second)[0]; l.Raw != "Nov 25 10:00:03 h a: fine tcp" {
		t.Errorf("after bad lines got %q", l.Raw)
	}
	syslogWaitFor(t, "6 malformed messages", func() bool { return s.malformed.Load() == 6 })

	// An octet count over the limit loses the framing: the server hangs up.
	c2 := syslogDial(t, "tcp", tcp)
	syslogWrite(t, c2, fmt.Sprintf("%d <13>", max+1))
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after an oversized octet count: %v, want EOF", err)
	}
	h.expectNone(50 * time.Millisecond)
}

func TestSyslogConnectionLimit(t *testing.T) {
	const limit = 4
	h, s, _, tcp := startSyslog(t, "tcp", func(l *syslogLimits) { l.maxConns = limit })
	var held []net.Conn
	for i := range limit {
		c := syslogDial(t, "tcp", tcp)
		// A message per connection proves it is being served.
		syslogWrite(t, c, fmt.Sprintf("<13>Nov 25 10:00:01 h a: held %d\n", i))
		held = append(held, c)
	}
	h.collect(limit, 5*time.Second)

	// Many clients at once: none beyond the limit is served, all of them
	// are told so by a close rather than left hanging.
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			c, err := net.Dial("tcp", tcp.String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			_, _ = c.Write([]byte("<13>Nov 25 10:00:01 h a: refused\n"))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
				t.Errorf("connection over the limit: read %v, want it closed", err)
			}
			if n := s.conns.Load(); n > limit {
				t.Errorf("%d connections served, limit %d", n, limit)
			}
		})
	}
	wg.Wait()
	if n := s.refused.Load(); n != 40 {
		t.Errorf("refused %d connections, want 40", n)
	}
	h.expectNone(50 * time.Millisecond)

	// Freed slots are reused.
	for _, c := range held {
		c.Close()
	}
	syslogWaitFor(t, "held connections to end", func() bool { return s.conns.Load() == 0 })
	c := syslogDial(t, "tcp", tcp)
	syslogWrite(t, c, "<13>Nov 25 10:00:01 h a: after\n")
	if l := h.collect(1, 5*time.Second)[0]; !strings.HasSuffix(l.Raw, "after") {
		t.Errorf("got %q", l.Raw)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestSyslogIdleConnectionClosed(t *testing.T) {
	_, s, _, tcp := startSyslog(t, "tcp", func(l *syslogLimits) { l.idleTimeout = 100 * time.Millisecond })
	c := syslogDial(t, "tcp", tcp)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection: read %v, want EOF", err)
	}
	syslogWaitFor(t, "the connection slot to free", func() bool { return s.conns.Load() == 0 })
}

// Stopping the source closes the connections still open.
func TestSyslogStopClosesConnections(t *testing.T) {
	h, _, _, tcp := startSyslog(t, "tcp", nil)
	c := syslogDial(t, "tcp", tcp)
	syslogWrite(t, c, "<13>Nov 25 10:00:01 h a: hi\n")
	h.collect(1, 5*time.Second)
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("Run = %v after cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	h.done <- nil // for the harness cleanup
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after stop: %v, want EOF", err)
	}
}

func TestSyslogListenError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	opts, _, _ := acqTestOptions()
	port := busy.Addr().(*net.TCPAddr).Port
	src, err := newSyslogSource(Config{Source: "syslog", Protocol: "tcp", ListenPort: port, Labels: map[string]string{"type": "syslog"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	err = src.Run(context.Background(), make(chan event.Line))
	if err == nil || !strings.Contains(err.Error(), "listening on tcp") {
		t.Errorf("Run on a busy port = %v, want a listen error", err)
	}
}

func TestNewSyslogErrors(t *testing.T) {
	opts, _, _ := acqTestOptions()
	labels := map[string]string{"type": "syslog"}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Protocol: "sctp"}, "protocol"},
		{Config{ListenAddr: "localhost"}, "listen_addr"},
		{Config{ListenPort: 70000}, "listen_port"},
		{Config{ListenPort: -1}, "listen_port"},
		{Config{Filenames: []string{"/var/log/x"}}, "file keys"},
		{Config{JournalctlFilter: []string{"A=b"}}, "journalctl"},
	} {
		tc.cfg.Source, tc.cfg.Labels = "syslog", labels
		if _, err := newSyslogSource(tc.cfg, opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("newSyslogSource(%+v) = %v, want an error about %s", tc.cfg, err, tc.want)
		}
	}
	src, err := newSyslogSource(Config{Source: "syslog", Labels: labels}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := src.Name(); got != "syslog:udp/127.0.0.1:514" {
		t.Errorf("default Name = %q", got)
	}
	src, err = newSyslogSource(Config{Source: "syslog", ListenAddr: "::", ListenPort: 1514, Protocol: "both", Labels: labels}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := src.Name(); got != "syslog:both/[::]:1514" {
		t.Errorf("Name = %q", got)
	}
}

// A quiet server warns through the shared idle watch, like every source.
func TestSyslogIdleWarning(t *testing.T) {
	opts, hook, m := acqTestOptions()
	idle := Duration(50 * time.Millisecond)
	src, err := newSyslogSource(Config{Source: "syslog", IdleWarning: &idle, Labels: map[string]string{"type": "syslog"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	src.(*syslogSource).addr = "127.0.0.1:0"
	runSource(t, src, hook, m)
	syslogWaitFor(t, "the idle warning", func() bool {
		for _, e := range hook.AllEntries() {
			if e.Level == log.WarnLevel && strings.HasPrefix(e.Message, "no lines read from "+src.Name()) {
				return true
			}
		}
		return false
	})
}
