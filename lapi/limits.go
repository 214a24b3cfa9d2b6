package lapi

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	log "github.com/sirupsen/logrus"
)

// httpServer is the http.Server for the LAPI's listeners, with the client
// bounds of [api.server]. ReadTimeout bounds reading a request, header and
// body: net/http lifts it once the body is read, so the handler's own time
// is not counted. There is no WriteTimeout: it would run while the handler
// works, and a long-poll or a large stream must not be cut.
func (s *Server) httpServer() *http.Server {
	c := &s.cfg.API.Server
	return &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: c.ReadHeaderTimeout.Duration,
		ReadTimeout:       c.ReadTimeout.Duration,
		IdleTimeout:       c.IdleTimeout.Duration,
		MaxHeaderBytes:    c.MaxHeaderBytes,
	}
}

// connLimiter caps the connections open at once, from one address (an
// IPv6 client's /64, as for failed logins: one host holds a /64) and in
// all. A connection over a cap is closed as soon as it is accepted, before
// any TLS handshake, so one flooding address cannot take the descriptors
// every other client, /health and the bouncers' streams need.
type connLimiter struct {
	net.Listener
	perSource, total int
	exempt           []netip.Prefix // trusted proxies: their clients all share their address
	log              *log.Entry

	mu       sync.Mutex
	open     int
	all      *atomic.Int64        // open connections of every listener (Server.openConns); may be nil
	bySource map[netip.Prefix]int // by sourceKey: an IPv6 client's /64
	refused  int                  // since the last warning
	warned   time.Time            // when refusals were last logged
}

// limitConns wraps ln with the configured caps (0 or less: no cap). The
// total stays within half the process's open files limit: the other half
// is for the database, the agent's log files and the rest, and refusing a
// connection must never fail for want of a descriptor.
func (s *Server) limitConns(ln net.Listener) net.Listener {
	c := &s.cfg.API.Server
	total := c.MaxConnections
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < 1<<31 {
		if room := int(rl.Cur) / 2; total <= 0 || total > room {
			s.log.WithFields(log.Fields{"max_connections": c.MaxConnections, "open_files_limit": rl.Cur, "using": max(room, 1)}).
				Warn("api.server.max_connections lowered to half the open files limit")
			total = max(room, 1)
		}
	}
	return &connLimiter{Listener: ln, perSource: c.MaxConnectionsPerSource, total: total, exempt: s.proxies,
		log: s.log, all: &s.openConns, bySource: map[netip.Prefix]int{}}
}

// Accept returns the next connection within the caps, closing the others.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := peerAddr(c)
		if l.acquire(src) {
			return &limitedConn{Conn: c, release: func() { l.release(src) }}, nil
		}
		_ = c.Close()
	}
}

func peerAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

func (l *connLimiter) acquire(src netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	limit := ""
	switch {
	case l.total > 0 && l.open >= l.total:
		limit = "max_connections"
	case l.perSource > 0 && l.bySource[sourceKey(src)] >= l.perSource && !l.isExempt(src):
		limit = "max_connections_per_source"
	default:
		l.open++
		if l.all != nil {
			l.all.Add(1)
		}
		l.bySource[sourceKey(src)]++
		return true
	}
	// One line a minute at most: a flood must not fill the log too.
	l.refused++
	if now := time.Now(); now.Sub(l.warned) >= time.Minute {
		l.log.WithFields(log.Fields{"source": src.String(), "limit": limit, "open": l.open, "refused": l.refused}).
			Warn("connections refused: too many open")
		l.warned, l.refused = now, 0
	}
	return false
}

func (l *connLimiter) isExempt(a netip.Addr) bool {
	for _, p := range l.exempt {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (l *connLimiter) release(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.all != nil {
		l.all.Add(-1)
	}
	k := sourceKey(src)
	if l.bySource[k]--; l.bySource[k] <= 0 {
		delete(l.bySource, k)
	}
}

// limitedConn gives its slot back when closed (net/http may close twice).
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// CloseWrite keeps the half-close net/http does before closing a
// connection whose request it did not read in full, so the client gets the
// error answer rather than a reset.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
