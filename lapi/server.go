// Package lapi is Rampart's local API: CrowdSec's /v1 protocol over HTTP for
// agents, cscli and bouncers, on top of the store. It is the only component
// that touches the database; it never drives the firewall.
package lapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/capi"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/netaddr"
	"github.com/rampart-ips/rampart/lapi/blocklists"
	"github.com/rampart-ips/rampart/lapi/notify"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// Body limits after decompression, as upstream.
const (
	unauthBodyLimit = 2 << 20
	authBodyLimit   = 50 << 20
	// A usage report is a few hundred items at most (a few KiB); anything
	// near this is a client gone wrong, and each report is kept a week.
	usageBodyLimit = 1 << 20
)

// Server is the LAPI.
type Server struct {
	cfg        *csconfig.Config
	store      *store.Store
	profiles   atomic.Pointer[profiles.Set] // swapped whole by SetProfiles (reload)
	notify     *notify.Broker               // possibly with no notification
	log        *log.Entry
	echo       *echo.Echo
	jwt        *jwtKeys
	allow      *allowChecker
	lists      *blocklists.Runner
	listsOut   listOutCache
	trusted    []netip.Prefix
	proxies    []netip.Prefix // trusted_proxies
	autoRanges []netip.Prefix
	tlsAuth    *tlsAuth
	logins     *loginLimiter // nil when api.server.login_limit is off
	now        func() time.Time
	metrics    atomic.Pointer[lapiMetrics] // nil until RegisterMetrics
	usage      usageCache
	share      atomic.Pointer[capi.SharePolicy] // nil: no signals queued for the Central API
	shareDel   atomic.Bool                      // DELETE /v1/decisions queues the UUIDs it ends for the console
	streams    streamWatch
	deltas     sharedDeltas
	// Reads every bouncer request makes, shared by the requests waiting
	// at once (see rounds): the change counters, key lookups (kept in
	// keyRows while the bouncers' counter stays) and the sweep of expired
	// decisions a stream does first.
	counts  *rounds[struct{}, changeCounts]
	keys    *rounds[string, []*store.Bouncer]
	keyRows keyCache
	sweeps  *rounds[struct{}, int64]
	pulls   pullTimes // bouncers' pull times not yet written
	// openConns counts the connections the listeners hold; onConns
	// hears of it every second when it changed (see OnConnections).
	openConns atomic.Int64
	onConns   func(open int)
	// stopping closes when shutdown begins: waiting long-polls answer at
	// once, or http.Server.Shutdown would wait out their wait= (30 s).
	stopping  chan struct{}
	stopOnce  sync.Once
	longPolls atomic.Int64 // long-polls waiting now
	follows   atomic.Int64 // follow responses open now
	follow    followTiming
	// followBeat fires every follow.check: the followers' shared checks.
	followBeat beat
	// shutdownTimeout bounds the graceful shutdown before connections are
	// cut (5 s; tests shorten it).
	shutdownTimeout time.Duration
}

// New builds a server over an open store.
func New(ctx context.Context, cfg *csconfig.Config, st *store.Store, prof *profiles.Set) (*Server, error) {
	s := &Server{cfg: cfg, store: st, log: log.WithField("component", "lapi"), now: time.Now,
		stopping: make(chan struct{}), shutdownTimeout: 5 * time.Second, follow: defaultFollowTiming()}
	s.profiles.Store(prof)
	nc, err := LoadNotifications(cfg, prof)
	if err != nil {
		return nil, err
	}
	// A broker even without notifications: a reload may add some.
	if s.notify, err = notify.NewBroker(nc, st); err != nil {
		return nil, err
	}
	warnUnusable(nc)
	if s.jwt, err = loadJWTKeys(ctx, st); err != nil {
		return nil, err
	}
	if s.trusted, err = netaddr.ParsePrefixes(cfg.API.Server.TrustedIPs); err != nil {
		return nil, fmt.Errorf("api.server.trusted_ips: %w", err)
	}
	if s.proxies, err = netaddr.ParsePrefixes(cfg.API.Server.TrustedProxies); err != nil {
		return nil, fmt.Errorf("api.server.trusted_proxies: %w", err)
	}
	if cfg.API.Server.UseForwardedForHeaders && len(s.proxies) == 0 {
		s.log.Warn("api.server.use_forwarded_for_headers is set but trusted_proxies is empty: X-Forwarded-For is ignored")
	}
	if ar := cfg.API.Server.AutoRegistration; ar != nil && ar.Enabled {
		if len(ar.Token) < 32 {
			return nil, fmt.Errorf("api.server.auto_registration.token must be at least 32 characters")
		}
		if s.autoRanges, err = netaddr.ParsePrefixes(ar.AllowedRanges); err != nil {
			return nil, fmt.Errorf("api.server.auto_registration.allowed_ranges: %w", err)
		}
	}
	if t := cfg.API.Server.TLS; t != nil && (len(t.AgentsAllowedOU) > 0 || len(t.BouncersAllowedOU) > 0) {
		if s.tlsAuth, err = newTLSAuth(t); err != nil {
			return nil, err
		}
	}
	s.logins = newLoginLimiter(cfg.API.Server.LoginLimit)
	// Shared reads outlive any request, and a shutdown still answers
	// the requests in flight.
	readCtx := context.WithoutCancel(ctx)
	s.counts = newRounds(readCtx, func(ctx context.Context, _ []struct{}) (map[struct{}]changeCounts, error) {
		a, b, err := st.Versions(ctx)
		return map[struct{}]changeCounts{{}: {allowlists: a, bouncers: b}}, err
	})
	s.allow = newAllowChecker(st, csconfig.Bool(cfg.API.Server.AllowlistHostAddresses, true), s.log, func(ctx context.Context) (int64, error) {
		c, err := s.counts.get(ctx, struct{}{})
		return c.allowlists, err
	})
	s.keys = newRounds(readCtx, func(ctx context.Context, hashes []string) (map[string][]*store.Bouncer, error) {
		return st.BouncersByKeys(ctx, hashes, "api-key")
	})
	s.sweeps = newRounds(readCtx, func(ctx context.Context, _ []struct{}) (map[struct{}]int64, error) {
		n, err := st.SweepExpired(ctx, s.now())
		return map[struct{}]int64{{}: n}, err
	})
	s.lists = blocklists.New(st, func(ctx context.Context) (func(string) (bool, string), error) {
		snap, err := s.allow.snapshot(ctx)
		if err != nil {
			return nil, err
		}
		return snap.check, nil
	})
	s.echo = s.routes()
	return s, nil
}

// Handler exposes the HTTP handler (tests and embedding).
func (s *Server) Handler() http.Handler { return s.echo }

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.IPExtractor = s.ipExtractor()
	e.Use(s.metricsMiddleware, s.recoverMiddleware, s.logMiddleware, strictParams)

	e.GET("/health", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "up"}) })
	v1 := e.Group("/v1")
	v1.POST("/watchers", s.registerWatcher)
	v1.POST("/watchers/login", s.login)

	// Middleware per route, not per group: an echo group with middleware
	// would answer unknown paths with the auth error instead of a 404.
	j, bo := s.jwtAuth, s.bouncerAuth
	v1.GET("/refresh_token", s.refreshToken, j)
	v1.DELETE("/watchers/self", s.deleteSelf, j)
	v1.POST("/alerts", s.postAlerts, j)
	v1.GET("/alerts", s.getAlerts, j)
	v1.HEAD("/alerts", s.getAlerts, j)
	v1.DELETE("/alerts", s.deleteAlerts, j)
	v1.GET("/alerts/:alert_id", s.getAlert, j)
	v1.HEAD("/alerts/:alert_id", s.getAlert, j)
	v1.DELETE("/alerts/:alert_id", s.deleteAlert, j)
	v1.DELETE("/decisions", s.deleteDecisions, j)
	v1.GET("/decisions/count", s.countDecisions, j) // Rampart's, for the agent's decision helpers
	v1.DELETE("/decisions/:decision_id", s.deleteDecision, j)
	v1.GET("/heartbeat", s.heartbeat, j)
	v1.GET("/allowlists", s.listAllowlists, j)
	v1.GET("/allowlists/check/*", s.checkAllowlist, j)
	v1.HEAD("/allowlists/check/*", s.checkAllowlist, j)
	v1.POST("/allowlists/check", s.bulkCheckAllowlist, j)
	v1.GET("/allowlists/:name", s.getAllowlist, j)
	v1.GET("/blocklists", s.listBlocklists, j)
	v1.POST("/blocklists/refresh", s.refreshBlocklists, j)
	v1.GET("/notifications", s.listNotifications, j)

	v1.GET("/decisions", s.getDecisions, bo)
	v1.HEAD("/decisions", s.getDecisions, bo)
	v1.GET("/decisions/stream", s.streamDecisions, bo)
	v1.HEAD("/decisions/stream", s.headStream, bo)
	v1.GET("/lists/:name", s.getListOut, bo)
	v1.HEAD("/lists/:name", s.getListOut, bo)

	v1.POST("/usage-metrics", s.usageMetrics, s.eitherAuth)
	s.uiRoutes(e)
	return e
}

// ipExtractor picks the client address requests are judged by. With
// use_forwarded_for_headers, X-Forwarded-For is read right to left from the
// peer, and only while each hop is one of trusted_proxies: echo would also
// trust every loopback, link-local and private peer, letting any LAN client
// claim to be 127.0.0.1.
func (s *Server) ipExtractor() echo.IPExtractor {
	if !s.cfg.API.Server.UseForwardedForHeaders || len(s.proxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range s.proxies {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// errorHandler answers router 404/405 with an empty body as upstream does,
// and everything else with {"message": ...}.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if he.Code == http.StatusNotFound || he.Code == http.StatusMethodNotAllowed {
			_ = c.NoContent(he.Code)
			return
		}
		msg := fmt.Sprint(he.Message)
		_ = c.JSON(he.Code, models.ErrorResponse{Message: msg})
		return
	}
	s.log.WithError(err).WithField("path", c.Request().URL.Path).Error("request failed")
	// The error may come from anywhere (the database among others): its
	// text is for the log, not for the client.
	_ = c.JSON(http.StatusInternalServerError, models.ErrorResponse{Message: "internal error"})
}

// strictParams answers 404 when a trailing :param swallowed more than one
// path segment: echo lets "/alerts/:alert_id" match "/alerts/1/extra" (and
// then runs the handler or answers 405), where upstream's router says 404.
func strictParams(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		route := c.Path()
		if strings.Contains(route, "/:") && !strings.HasSuffix(route, "*") {
			p := c.Request().URL.RawPath
			if p == "" {
				p = c.Request().URL.Path
			}
			if strings.Count(route, "/") != strings.Count(p, "/") {
				return echo.ErrNotFound
			}
		}
		return next(c)
	}
}

func (s *Server) recoverMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.WithFields(log.Fields{"panic": r, "path": c.Request().URL.Path}).Error("handler panicked")
				err = c.JSON(http.StatusInternalServerError, models.ErrorResponse{Message: "internal error"})
			}
		}()
		return next(c)
	}
}

func (s *Server) logMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if s.log.Logger.IsLevelEnabled(log.DebugLevel) {
			s.log.WithFields(log.Fields{"method": c.Request().Method, "path": c.Request().URL.Path, "status": c.Response().Status,
				"ip": c.RealIP(), "took": time.Since(start)}).Debug("request")
		}
		return err
	}
}

// jsonError answers a failure with {"message": ...}.
func jsonError(c echo.Context, status int, msg string) error {
	return c.JSON(status, models.ErrorResponse{Message: msg})
}

// storeError maps store errors to upstream's statuses.
func (s *Server) storeError(c echo.Context, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return jsonError(c, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrExists):
		return jsonError(c, http.StatusForbidden, err.Error())
	case errors.Is(err, store.ErrInvalidData):
		return jsonError(c, http.StatusBadRequest, err.Error())
	case store.IsDiskFull(err):
		s.log.WithError(err).Error("database disk is full: writes fail, reads still served")
		return jsonError(c, http.StatusInsufficientStorage, "database write failed: disk is full")
	case errors.Is(err, context.Canceled):
		return nil
	case store.IsUnavailable(err):
		// The server, not the request: 503 moves a fleet's clients to
		// another LAPI and keeps an agent's alert queued unblamed.
		s.log.WithError(err).WithField("path", c.Request().URL.Path).Error("database unavailable")
		return jsonError(c, http.StatusServiceUnavailable, "database unavailable (details in the LAPI log)")
	}
	s.log.WithError(err).WithField("path", c.Request().URL.Path).Error("database error")
	// The driver's message can quote SQL: it goes to the log only.
	return jsonError(c, http.StatusInternalServerError, "database error (details in the LAPI log)")
}

// readBody reads the request body, decompressing gzip, up to limit bytes.
func readBody(c echo.Context, limit int64) ([]byte, int, error) {
	req := c.Request()
	if !strings.EqualFold(req.Header.Get("Content-Encoding"), "gzip") {
		return readLimited(req.Body, limit, limit, req.ContentLength)
	}
	// The compressed body first: its gzip trailer gives the size to
	// expect, so that the body is inflated into one buffer rather than
	// one grown by doubling (a fifth of a push's allocations). A gzip
	// stream over limit plus its framing cannot inflate within limit.
	zipped, status, err := readLimited(req.Body, limit+limit/16+64<<10, limit, req.ContentLength)
	if err != nil {
		return nil, status, err
	}
	gz, err := gzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("invalid gzip body: %w", err)
	}
	defer gz.Close()
	// The trailer is the sender's word: trusted no further than deflate's
	// best ratio (1032:1) and the limit.
	hint := int64(-1)
	if n := len(zipped); n >= 4 {
		hint = min(int64(binary.LittleEndian.Uint32(zipped[n-4:])), 1032*int64(n), limit+1)
	}
	return readLimited(gz, limit, limit, hint)
}

// readLimited reads r whole into a buffer sized for size bytes (-1:
// unknown), refusing more than max bytes with a 413 that names limit.
func readLimited(r io.Reader, max, limit, size int64) ([]byte, int, error) {
	var buf bytes.Buffer
	if size >= 0 {
		// bytes.MinRead more than the body: ReadFrom wants that much
		// room before it reads the end of the stream.
		buf.Grow(int(min(size, max+1)) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(r, max+1)); err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("reading body: %w", err)
	}
	if int64(buf.Len()) > max {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body too large (limit %d bytes)", limit)
	}
	return buf.Bytes(), 0, nil
}

func (s *Server) clientAddr(c echo.Context) netip.Addr {
	a, err := netip.ParseAddr(c.RealIP())
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// isTrusted says whether the caller may use the admin deletion routes.
func (s *Server) isTrusted(c echo.Context) bool {
	if ra := c.Request().RemoteAddr; ra == "" || ra == "@" || strings.HasPrefix(ra, "/") {
		return true // unix socket
	}
	a := s.clientAddr(c)
	if !a.IsValid() {
		return false
	}
	if a.IsLoopback() {
		return true
	}
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Run serves until ctx is cancelled, then shuts down gracefully. It also
// runs the expiry sweeper and the retention job.
func (s *Server) Run(ctx context.Context, ready func()) error {
	ln, err := s.Listen()
	if err != nil {
		return err
	}
	if sock := s.cfg.API.Server.ListenSocket; sock != "" {
		_ = os.Remove(sock) // a stale socket from a crash
		uln, err := net.Listen("unix", sock)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listening on %s: %w", sock, err)
		}
		if err := os.Chmod(sock, 0o660); err != nil {
			s.log.WithError(err).Warn("restricting the LAPI socket")
		}
		usrv := s.httpServer()
		go func() {
			if err := usrv.Serve(uln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.WithError(err).Error("unix socket listener stopped")
			}
		}()
		defer usrv.Close()
		s.log.WithField("socket", sock).Info("local API listening on unix socket")
	}
	return s.Serve(ctx, ln, ready)
}

// Listen opens the configured listener (TLS when configured), with the
// connection caps of [api.server].
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.API.Server.ListenURI)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", s.cfg.API.Server.ListenURI, err)
	}
	// Below TLS: a connection over a cap costs no handshake.
	ln = s.limitConns(ln)
	if t := s.cfg.API.Server.TLS; t != nil && t.CertFile != "" {
		tc, err := s.tlsConfig(t)
		if err != nil {
			ln.Close()
			return nil, err
		}
		ln = tls.NewListener(ln, tc)
	} else if !loopbackOnly(ln.Addr()) {
		s.log.WithField("listen", ln.Addr().String()).Warn("the local API listens beyond loopback without TLS: machine passwords, tokens and bouncer keys cross the network in clear; set cert_file and key_file in [api.server.tls]")
	}
	return ln, nil
}

// loopbackOnly: a listener no other host can reach (a wildcard address
// can be).
func loopbackOnly(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return !ok || ta.IP.IsLoopback()
}

func (s *Server) tlsConfig(t *csconfig.TLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading LAPI certificate: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.CACertPath != "" {
		pem, err := os.ReadFile(t.CACertPath)
		if err != nil {
			return nil, fmt.Errorf("reading ca_cert_path: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_cert_path %s holds no certificate", t.CACertPath)
		}
		tc.ClientCAs = pool
	}
	switch t.ClientVerification {
	case "NoClientCert":
		tc.ClientAuth = tls.NoClientCert
	case "RequestClientCert":
		tc.ClientAuth = tls.RequestClientCert
	case "RequireAnyClientCert":
		tc.ClientAuth = tls.RequireAnyClientCert
	case "RequireAndVerifyClientCert":
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// OnConnections has fn called with the number of connections open, from
// the server's jobs (every second) when it changed; crowdsec sizes its
// memory limit with it (memtune). Set it before Serve.
func (s *Server) OnConnections(fn func(open int)) { s.onConns = fn }

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener, ready func()) error {
	srv := s.httpServer()
	jobsCtx, stopJobs := context.WithCancel(ctx)
	defer stopJobs()
	jobsDone := make(chan struct{})
	go func() {
		defer close(jobsDone)
		s.runJobs(jobsCtx)
	}()
	go s.notify.Run(jobsCtx)
	go s.runBeat(jobsCtx)
	listsDone := make(chan struct{})
	go func() {
		defer close(listsDone)
		s.lists.Run(jobsCtx, s.cfg.Blocklists)
	}()
	defer func() { stopJobs(); <-listsDone }()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.WithField("listen", ln.Addr().String()).Info("local API listening")
	if ready != nil {
		ready()
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serving LAPI: %w", err)
	case <-ctx.Done():
	}
	s.stopOnce.Do(func() { close(s.stopping) })
	shCtx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		s.log.WithError(err).WithField("timeout", s.shutdownTimeout).Warn("requests still running at shutdown: connections closed")
		srv.Close()
	}
	// The pulls answered since the last flush; the jobs have stopped.
	stopJobs()
	<-jobsDone
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancelFlush()
	if err := s.flushPulls(flushCtx); err != nil {
		s.log.WithError(err).Warn("recording bouncer pull times at shutdown")
	}
	return nil
}

// runJobs sweeps expired decisions every second (so deltas and long-polls
// see expiry promptly), writes the bouncers' pull times gathered, tells
// onConns of the connections open, and applies retention on its interval.
func (s *Server) runJobs(ctx context.Context) {
	sweep := time.NewTicker(time.Second)
	defer sweep.Stop()
	fl := s.cfg.DBConfig.Flush
	flush := time.NewTicker(fl.Interval.Duration)
	defer flush.Stop()
	// A failing database is logged when the sweeps start failing and
	// when they work again, not every second in between.
	failing := false
	conns := int64(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			if n := s.openConns.Load(); n != conns && s.onConns != nil {
				s.onConns(int(n))
				conns = n
			}
			if err := s.flushPulls(ctx); err != nil && ctx.Err() == nil {
				s.log.WithError(err).Warn("recording bouncer pull times; retried in a second")
			}
			_, err := s.store.SweepExpired(ctx, s.now())
			if err == nil {
				err = s.store.RefreshSeq(ctx)
			}
			switch {
			case ctx.Err() != nil:
				return
			case err != nil && !failing:
				s.log.WithError(err).Warn("expiring decisions failed; retried every second, logged again when it works")
			case err != nil:
				s.log.WithError(err).Debug("expiring decisions still fails")
			case failing:
				s.log.Info("expiring decisions works again")
			}
			failing = err != nil
		case <-flush.C:
			s.RunRetention(ctx)
		}
	}
}

// RunRetention applies [db_config.flush] once.
func (s *Server) RunRetention(ctx context.Context) {
	fl := s.cfg.DBConfig.Flush
	p := store.FlushPolicy{MaxItems: fl.MaxItems}
	if fl.MaxAge != nil {
		p.MaxAge = fl.MaxAge.Duration
	}
	defer s.store.Optimize(ctx)
	res, err := s.store.Flush(ctx, p, s.now())
	if err != nil {
		if ctx.Err() == nil {
			s.log.WithError(err).Warn("retention flush failed")
		}
		return
	}
	if res.Alerts > 0 || res.Decisions > 0 {
		s.log.WithFields(log.Fields{"alerts": res.Alerts, "decisions": res.Decisions}).Info("retention flushed old data")
	}
	now := s.now()
	if d := fl.BouncersAutodelete.APIKey; d != nil && d.Duration > 0 {
		if names, err := s.store.PruneBouncers(ctx, now.Add(-d.Duration)); err == nil && len(names) > 0 {
			s.log.WithField("bouncers", names).Info("auto-deleted stale bouncers")
		}
	}
	if d := fl.AgentsAutodelete.LoginPassword; d != nil && d.Duration > 0 {
		if names, err := s.store.PruneMachines(ctx, now.Add(-d.Duration), false); err == nil && len(names) > 0 {
			s.log.WithField("machines", names).Info("auto-deleted stale machines")
		}
	}
}

// ShareSignals queues, from now on, the alerts p shares as signals for
// the Central API, in the transaction that stores them; nil stops.
func (s *Server) ShareSignals(p *capi.SharePolicy) { s.share.Store(p) }

// The Central API runner finds these by type: a slip here would turn them
// off silently.
var (
	_ capi.ConsoleSink      = (*Server)(nil)
	_ capi.DeletionReporter = (*Server)(nil)
)

// ReportDeletions makes, from now on, the machines' DELETE /v1/decisions
// queue the UUIDs of the decisions it ends for the console (which keeps
// its copy of them), in the deleting transaction; false stops.
func (s *Server) ReportDeletions(on bool) { s.shareDel.Store(on) }

// FilterPulled returns what says whether a pulled decision (community
// list, blocklists) of scope on r overlaps the host allowlist or a user
// allowlist, as of now: those always win, ranges included, and such a
// decision is dropped. A predicate rather than a filter of NewDecisions,
// so that a 100k-address pull need not be built as NewDecisions for it.
func (s *Server) FilterPulled(ctx context.Context) (func(scope string, r store.Range) bool, error) {
	allow, err := s.allow.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return func(scope string, r store.Range) bool { return store.IsAddressScope(scope) && allow.overlaps(r) }, nil
}

// SetBlocklists replaces the blocklist subscriptions (a reload): new and
// changed feeds start (and refresh at once), removed ones end their
// decisions, unchanged ones keep running.
func (s *Server) SetBlocklists(lists []csconfig.Blocklist) error { return s.lists.Set(lists) }

// SetProfiles replaces the profiles alerts are evaluated with (a reload):
// each alert sees the old set or the new one whole, never a mix. Check
// the notifications they name with LoadNotifications first, and apply
// those with SetNotifications.
func (s *Server) SetProfiles(p *profiles.Set) { s.profiles.Store(p) }

// LoadNotifications reads the notification folder of cfg and checks that
// every notification the profiles name exists and can send.
func LoadNotifications(cfg *csconfig.Config, prof *profiles.Set) ([]*notify.Config, error) {
	dir := cfg.ConfigPaths.NotificationDir
	var configs []*notify.Config
	if dir != "" {
		var err error
		if configs, err = notify.LoadDir(dir); err != nil {
			return nil, fmt.Errorf("loading notifications: %w", err)
		}
	}
	if err := notify.CheckReferences(prof.Notifications(), configs, dir); err != nil {
		return nil, err
	}
	return configs, nil
}

// SetNotifications replaces the notifications (a reload, after
// LoadNotifications): unchanged ones keep their queue.
func (s *Server) SetNotifications(configs []*notify.Config) error {
	if err := s.notify.Set(configs); err != nil {
		return err
	}
	warnUnusable(configs)
	return nil
}

// warnUnusable names the notifications left out for a problem (no
// profile names them: LoadNotifications checked).
func warnUnusable(configs []*notify.Config) {
	for _, c := range configs {
		if c.Problem != nil {
			log.WithError(c.Problem).Warn("notification left out: it cannot send (no profile names it)")
		}
	}
}

// Notifications is the server's notification broker.
func (s *Server) Notifications() *notify.Broker { return s.notify }
