package acquisition

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/event"
)

// Syslog server defaults, upstream's: a local relay (rsyslog, a device
// pointed at the host) sends to 127.0.0.1:514 over UDP.
const (
	syslogDefaultAddr  = "127.0.0.1"
	syslogDefaultPort  = 514
	syslogDefaultProto = "udp"
)

// syslogLimits bound what one peer can make the server hold; tests
// shrink them.
type syslogLimits struct {
	maxMsg      int           // bytes in one message; larger ones are dropped
	maxConns    int           // TCP connections served at once; more are closed
	idleTimeout time.Duration // a TCP connection silent this long is closed
}

func defaultSyslogLimits() syslogLimits {
	return syslogLimits{
		// RFC 5424 receivers must take 480 bytes and should take 2048;
		// 64 KiB holds any real message, even a stack trace.
		maxMsg:   64 << 10,
		maxConns: 256,
		// Relays keep one connection open and may be quiet for long
		// stretches; they reconnect after a close, so this only frees
		// slots held by dead or stalled peers.
		idleTimeout: 10 * time.Minute,
	}
}

// syslogSource is a syslog server: it listens on UDP, TCP or both and
// turns each RFC 3164 or RFC 5424 message into a classic syslog line.
type syslogSource struct {
	name   string
	addr   string // host:port to listen on
	udp    bool
	tcp    bool
	labels map[string]string
	log    *log.Entry
	idle   *idleWatch
	lines  prometheus.Counter
	// metrics gives upstream's per-peer counter; peers come and go, so it
	// is looked up per message (syslog rates make that cheap enough).
	metrics *Metrics
	limits  syslogLimits

	ready     chan struct{} // closed once the listeners are first bound
	readyOnce sync.Once
	udpAddr   net.Addr // set before ready is closed
	tcpAddr   net.Addr
	conns     atomic.Int64  // TCP connections being served
	malformed atomic.Uint64 // messages dropped as unreadable or oversized
	refused   atomic.Uint64 // TCP connections closed at maxConns
}

// newSyslogSource builds a syslog server; listen_addr, listen_port and
// protocol default to 127.0.0.1, 514 and udp.
func newSyslogSource(cfg Config, opts Options) (Source, error) {
	switch {
	case cfg.Filename != "" || len(cfg.Filenames) > 0 || cfg.PollWithoutInotify:
		return nil, errors.New("filenames and poll_without_inotify are file keys, not syslog ones")
	case len(cfg.JournalctlFilter) > 0:
		return nil, errors.New("journalctl_filter is a journalctl key, not a syslog one")
	}
	host, port, proto := syslogEndpoint(cfg)
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("listen_addr %q: want an IP address, e.g. 127.0.0.1 or 0.0.0.0", host)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("listen_port %d: want 1-65535", port)
	}
	s := &syslogSource{labels: cfg.Labels, limits: defaultSyslogLimits(), ready: make(chan struct{})}
	switch proto {
	case "udp":
		s.udp = true
	case "tcp":
		s.tcp = true
	case "both":
		s.udp, s.tcp = true, true
	default:
		return nil, fmt.Errorf("protocol %q: want udp, tcp or both", proto)
	}
	s.addr = net.JoinHostPort(host, strconv.Itoa(port))
	s.name = "syslog:" + proto + "/" + s.addr
	s.log = opts.logger().WithFields(log.Fields{"source": s.name, "type": cfg.Labels["type"]})
	s.idle = newIdleWatch(s.name, cfg.IdlePeriod(), opts)
	s.lines = opts.Metrics.lineCounter(s.name, cfg.Labels["type"])
	s.metrics = opts.Metrics
	return s, nil
}

// syslogEndpoint is where a syslog source listens, defaults applied.
func syslogEndpoint(cfg Config) (host string, port int, proto string) {
	host, port, proto = cfg.ListenAddr, cfg.ListenPort, cfg.Protocol
	if host == "" {
		host = syslogDefaultAddr
	}
	if port == 0 {
		port = syslogDefaultPort
	}
	if proto == "" {
		proto = syslogDefaultProto
	}
	return host, port, proto
}

// checkListeners refuses syslog sources that listen on the same port and
// protocol at overlapping addresses: only one of them could ever bind it,
// so the configuration can never work. Sources that are wrong on their
// own are left to New, which says why.
func checkListeners(cfgs []Config) error {
	type listener struct {
		ip       net.IP
		port     int
		udp, tcp bool
		where    string
	}
	var seen []listener
	for _, c := range cfgs {
		if c.Source != "syslog" {
			continue
		}
		host, port, proto := syslogEndpoint(c)
		ip := net.ParseIP(host)
		if ip == nil {
			continue
		}
		l := listener{ip: ip, port: port, udp: proto == "udp" || proto == "both", tcp: proto == "tcp" || proto == "both", where: c.Where()}
		for _, o := range seen {
			if o.port != l.port || !(o.udp && l.udp || o.tcp && l.tcp) || !addrsOverlap(o.ip, l.ip) {
				continue
			}
			proto := "udp"
			if !(o.udp && l.udp) {
				proto = "tcp"
			}
			return fmt.Errorf("%s: syslog source listens on %s %s, where the syslog source of %s listens on %s: only one of them can ever bind port %d",
				l.where, proto, net.JoinHostPort(l.ip.String(), strconv.Itoa(port)), o.where, o.ip, port)
		}
		seen = append(seen, l)
	}
	return nil
}

// addrsOverlap says whether listening on a and on b, same port, clash:
// the same address, or a wildcard covering the other (:: is dual-stack as
// Go binds it; 0.0.0.0 covers IPv4 only).
func addrsOverlap(a, b net.IP) bool {
	if a.Equal(b) {
		return true
	}
	for _, p := range [][2]net.IP{{a, b}, {b, a}} {
		wild, other := p[0], p[1]
		if wild.Equal(net.IPv6unspecified) || wild.Equal(net.IPv4zero) && other.To4() != nil {
			return true
		}
	}
	return false
}

// Name implements Source.
func (s *syslogSource) Name() string { return s.name }

// boundAddrs waits until Run has bound its listeners and returns their
// addresses (nil for a protocol not served), so tests can listen on port 0.
func (s *syslogSource) boundAddrs(ctx context.Context) (udp, tcp net.Addr, err error) {
	select {
	case <-s.ready:
		return s.udpAddr, s.tcpAddr, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// Run implements Source: it serves until ctx ends, then returns nil. It
// fails only when it cannot listen (the port is taken, the address is not
// configured yet); it may then be run again. Runs must not overlap.
func (s *syslogSource) Run(ctx context.Context, out chan<- event.Line) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lc net.ListenConfig
	var (
		pc net.PacketConn
		ln net.Listener
	)
	if s.udp {
		var err error
		if pc, err = lc.ListenPacket(ctx, "udp", s.addr); err != nil {
			return fmt.Errorf("listening on udp %s: %w", s.addr, err)
		}
		defer pc.Close()
		s.udpAddr = pc.LocalAddr()
	}
	if s.tcp {
		var err error
		if ln, err = lc.Listen(ctx, "tcp", s.addr); err != nil {
			return fmt.Errorf("listening on tcp %s: %w", s.addr, err)
		}
		defer ln.Close()
		s.tcpAddr = ln.Addr()
	}
	s.readyOnce.Do(func() { close(s.ready) })
	markUp(ctx)
	s.log.WithFields(log.Fields{"udp": s.udpAddr, "tcp": s.tcpAddr}).Info("syslog server listening")

	go s.idle.run(ctx)
	// Closing the sockets is what unblocks ReadFrom and Accept.
	stop := context.AfterFunc(ctx, func() {
		if pc != nil {
			pc.Close()
		}
		if ln != nil {
			ln.Close()
		}
	})
	defer stop()

	var wg sync.WaitGroup
	if pc != nil {
		wg.Go(func() { s.serveUDP(ctx, pc, out) })
	}
	if ln != nil {
		wg.Go(func() { s.serveTCP(ctx, ln, out) })
	}
	wg.Wait()
	return nil
}

// serveUDP reads datagrams, one message each.
func (s *syslogSource) serveUDP(ctx context.Context, pc net.PacketConn, out chan<- event.Line) {
	if uc, ok := pc.(*net.UDPConn); ok {
		// Bursts (a relay flushing its queue) outrun one reader; the
		// kernel default of ~200 KiB drops them. Best effort: the kernel
		// caps it at net.core.rmem_max.
		_ = uc.SetReadBuffer(4 << 20)
	}
	// One byte more than the limit tells an oversized datagram from one
	// that fills it exactly.
	buf := make([]byte, s.limits.maxMsg+1)
	for {
		n, peer, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.WithError(err).Warn("reading syslog datagram")
			select { // a persistent error must not spin
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if n > s.limits.maxMsg {
			s.drop(peerIP(peer), buf[:s.limits.maxMsg], fmt.Errorf("datagram over %d bytes", s.limits.maxMsg))
			continue
		}
		if !s.handle(ctx, buf[:n], peerIP(peer), out) {
			return
		}
	}
}

// serveTCP accepts connections, at most limits.maxConns at once.
func (s *syslogSource) serveTCP(ctx context.Context, ln net.Listener, out chan<- event.Line) {
	var wg sync.WaitGroup
	defer wg.Wait()
	var full atomic.Bool // logs reaching the limit once, not per refused peer
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.WithError(err).Warn("accepting syslog connection")
			select { // e.g. EMFILE: wait for descriptors to free up
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		// Refusing (closing at once) rather than not accepting: senders
		// see the failure and retry, instead of hanging in the backlog.
		// This loop alone adds to conns, so the check cannot race.
		if s.conns.Load() >= int64(s.limits.maxConns) {
			s.refused.Add(1)
			if full.CompareAndSwap(false, true) {
				s.log.WithField("max_connections", s.limits.maxConns).Warn("syslog connection limit reached: closing new connections")
			}
			s.log.WithField("peer", conn.RemoteAddr().String()).Debug("syslog connection refused: too many connections")
			conn.Close()
			continue
		}
		full.Store(false)
		s.conns.Add(1)
		wg.Go(func() {
			defer s.conns.Add(-1)
			s.serveConn(ctx, conn, out)
		})
	}
}

// serveConn reads the messages of one TCP connection until it closes,
// stays idle too long, breaks the framing or ctx ends.
func (s *syslogSource) serveConn(ctx context.Context, conn net.Conn, out chan<- event.Line) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	peer := peerIP(conn.RemoteAddr())
	l := s.log.WithField("peer", conn.RemoteAddr().String())
	l.Debug("syslog connection opened")
	fr := newSyslogFramer(conn, s.limits.maxMsg)
	for {
		if err := conn.SetReadDeadline(time.Now().Add(s.limits.idleTimeout)); err != nil {
			return
		}
		msg, err := fr.next()
		switch {
		case err == nil:
			if !s.handle(ctx, msg, peer, out) {
				return
			}
		case errors.Is(err, errSyslogOversized):
			s.drop(peer, nil, err)
		case errors.Is(err, errSyslogFraming):
			// The frame boundaries are lost: what follows would be read
			// as garbage, so the connection ends here.
			s.drop(peer, nil, err)
			return
		default:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				l.WithField("idle_timeout", s.limits.idleTimeout.String()).Debug("syslog connection idle: closing it")
			} else if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				l.WithError(err).Debug("syslog connection closed")
			}
			return
		}
	}
}

// handle turns one message into a line and sends it; it returns false
// once ctx has ended.
func (s *syslogSource) handle(ctx context.Context, data []byte, peer string, out chan<- event.Line) bool {
	now := time.Now()
	m, err := parseSyslog(data, now)
	if err != nil {
		s.drop(peer, data, err)
		return true
	}
	if m.Time.IsZero() {
		m.Time = now
	}
	host := m.Host
	if host == "" {
		// The sender left its name out: its address is the next best
		// answer to "which machine", and the hub's parsers need a host.
		host = peer
	}
	msg := m.Message
	if !utf8.ValidString(msg) {
		msg = strings.ToValidUTF8(msg, "\uFFFD")
	}
	line := event.Line{
		Raw:    classicSyslogLine(m.Time, syslogToken(host), syslogToken(m.App), syslogToken(m.ProcID), msg),
		Src:    peer,
		Module: "syslog",
		Labels: s.labels, // shared by every line of the source: events never change it
		Time:   m.Time,
	}
	select {
	case out <- line:
	case <-ctx.Done():
		return false
	}
	s.lines.Inc()
	if s.metrics != nil {
		s.metrics.hitCounter("syslog", peer, s.labels["type"]).Inc()
	}
	s.idle.seen()
	return true
}

// drop counts a message that could not be used and says why at debug
// level: a noisy or hostile peer must not flood the log.
func (s *syslogSource) drop(peer string, data []byte, err error) {
	s.malformed.Add(1)
	f := log.Fields{"peer": peer}
	if data != nil {
		f["start"] = string(syslogPrefix(data, 80))
	}
	s.log.WithFields(f).WithError(err).Debug("syslog message dropped")
}

func peerIP(a net.Addr) string {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.IP.String()
	case *net.TCPAddr:
		return a.IP.String()
	case nil:
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// Errors of syslogFramer.next besides the connection's own.
var (
	// errSyslogOversized: one message was over the limit and skipped; the
	// next one can be read.
	errSyslogOversized = errors.New("syslog message over the size limit")
	// errSyslogFraming: the stream cannot be cut into messages any more.
	errSyslogFraming = errors.New("syslog framing broken")
)

// syslogFramer cuts a TCP stream into messages as RFC 6587 describes:
// octet counting ("LEN SP MSG", what RFC 5425/5426 senders use) or
// non-transparent framing (messages ended by LF), told apart per message
// by whether it opens with a length and a space.
type syslogFramer struct {
	r   *bufio.Reader
	max int
}

func newSyslogFramer(r io.Reader, max int) *syslogFramer {
	// Room for a whole message and its "\r\n", so ReadSlice sees the end.
	return &syslogFramer{r: bufio.NewReaderSize(r, max+2), max: max}
}

// next returns the next message, valid until the following call.
func (f *syslogFramer) next() ([]byte, error) {
	// Empty lines and NUL trailers (some senders end frames with NUL)
	// separate messages.
	for {
		b, err := f.r.Peek(1)
		if err != nil {
			return nil, err
		}
		if b[0] != '\n' && b[0] != '\r' && b[0] != 0 {
			break
		}
		_, _ = f.r.Discard(1)
	}
	n, counted, err := f.octetCount()
	if err != nil {
		return nil, err
	}
	if counted {
		if n > f.max {
			return nil, fmt.Errorf("%w: octet count %d over %d", errSyslogFraming, n, f.max)
		}
		msg, err := f.r.Peek(n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		_, _ = f.r.Discard(n)
		return msg, nil
	}
	line, err := f.r.ReadSlice('\n')
	switch {
	case err == nil:
		return line[:len(line)-1], nil
	case errors.Is(err, bufio.ErrBufferFull):
		// Skip to the end of the oversized line; the next one is fine.
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = f.r.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return nil, fmt.Errorf("%w (%d bytes)", errSyslogOversized, f.max)
	case errors.Is(err, io.EOF) && len(line) > 0:
		return line, nil // the peer closed after a last unterminated message
	default:
		return nil, err
	}
}

// octetCount reads "LEN SP" when the stream is at one: up to 9 digits
// with no leading zero, then a space, then the '<' of the message's PRI
// (RFC 6587 frames syslog messages, and the '<' keeps a newline-framed
// "404 Not Found" from passing for a frame). Anything else (a '<', a
// month name, digits followed by '-') is left unread for newline framing.
// It peeks a byte at a time so a short message never waits for bytes that
// may not come.
func (f *syslogFramer) octetCount() (int, bool, error) {
	for i := 1; i <= 10; i++ {
		b, err := f.r.Peek(i)
		if len(b) < i {
			if errors.Is(err, io.EOF) {
				return 0, false, nil
			}
			return 0, false, err
		}
		c := b[i-1]
		switch {
		case c >= '0' && c <= '9' && !(i == 1 && c == '0'):
			continue
		case c == ' ' && i > 1:
			b, err := f.r.Peek(i + 1)
			if len(b) <= i {
				if errors.Is(err, io.EOF) {
					return 0, false, nil
				}
				return 0, false, err
			}
			if b[i] != '<' {
				return 0, false, nil
			}
			n, _ := strconv.Atoi(string(b[:i-1]))
			_, _ = f.r.Discard(i)
			return n, true, nil
		}
		return 0, false, nil
	}
	return 0, false, nil
}
