package lapi

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"
	log "github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/apikey"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

const (
	tokenLifetime  = time.Hour
	ctxMachine     = "machine_id"
	ctxMachineRow  = "machine_row" // *store.Machine, set with ctxMachine
	ctxBouncer     = "bouncer"
	ctxCounts      = "change_counts" // changeCounts read while authenticating a bouncer
	jwtSecretKV    = "jwt_secret"
	loginErrorText = "incorrect Username or Password"
)

type jwtKeys struct{ secret []byte }

// loadJWTKeys takes CS_LAPI_SECRET when set, else a secret persisted in the
// database so that a restart does not log every agent out.
func loadJWTKeys(ctx context.Context, st *store.Store) (*jwtKeys, error) {
	if env := os.Getenv("CS_LAPI_SECRET"); env != "" {
		if len(env) < 64 {
			return nil, fmt.Errorf("CS_LAPI_SECRET must be at least 64 bytes long")
		}
		return &jwtKeys{secret: []byte(env)}, nil
	}
	v, err := st.GetOrCreateKV(ctx, jwtSecretKV, func() (string, error) {
		b := make([]byte, 64)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("generating JWT secret: %w", err)
		}
		return hex.EncodeToString(b), nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading JWT secret: %w", err)
	}
	return &jwtKeys{secret: []byte(v)}, nil
}

// machineClaims is what a machine's token says. Upstream's agents only
// hand the token back, so the claims are Rampart's to choose: besides the
// name ("id", as upstream), the token names the machine's row and a tag of
// its credentials, so that it dies with them (deletion, a new password)
// instead of passing to whoever holds the name next.
type machineClaims struct {
	Machine string `json:"id"`
	RowID   int64  `json:"mid"`
	Cred    string `json:"cred"`
	OrigIat int64  `json:"orig_iat"`
	jwt.RegisteredClaims
}

// credTag fingerprints the machine row and its credentials. It is keyed
// with the JWT secret, so the token reveals nothing about the password
// hash; the bcrypt salt changes it on every password change, and the row id
// (never reused: AUTOINCREMENT) on every re-creation.
func (k *jwtKeys) credTag(m *store.Machine) string {
	mac := hmac.New(sha256.New, k.secret)
	fmt.Fprintf(mac, "machine-credentials\x00%d\x00%s\x00%s", m.ID, m.AuthType, m.PasswordHash)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
}

func (k *jwtKeys) issue(m *store.Machine, now time.Time) (string, time.Time, error) {
	exp := now.Add(tokenLifetime)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, machineClaims{
		Machine: m.MachineID, RowID: m.ID, Cred: k.credTag(m), OrigIat: now.Unix(),
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(exp)},
	})
	s, err := tok.SignedString(k.secret)
	return s, exp, err
}

// verify checks the token's signature and expiry and returns its claims.
func (k *jwtKeys) verify(raw string) (*machineClaims, error) {
	var claims machineClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) { return k.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		return nil, err
	}
	if claims.Machine == "" {
		return nil, errors.New("token has no identity")
	}
	return &claims, nil
}

// bound says whether the token was issued to m as it stands: the same row
// and the same credentials.
func (k *jwtKeys) bound(claims *machineClaims, m *store.Machine) bool {
	return claims.RowID == m.ID && hmac.Equal([]byte(claims.Cred), []byte(k.credTag(m)))
}

func authError(c echo.Context, msg string) error {
	return c.JSON(http.StatusUnauthorized, map[string]any{"code": http.StatusUnauthorized, "message": msg})
}

// jwtAuth checks the Bearer token (or the jwt cookie): signature, expiry,
// and that the machine row it was issued to still exists with the same
// credentials and is validated. The row is read on every request (one
// indexed SELECT, as cheap as the name lookup it replaces): cscli changes
// machines directly in the database, so a cache in this process could not
// learn of a deletion.
func (s *Server) jwtAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		raw := ""
		if h := c.Request().Header.Get("Authorization"); h != "" {
			const p = "Bearer "
			if len(h) > len(p) && strings.EqualFold(h[:len(p)], p) {
				raw = strings.TrimSpace(h[len(p):])
			}
		} else if ck, err := c.Cookie("jwt"); err == nil {
			raw = ck.Value
		}
		if raw == "" {
			return authError(c, "auth header is empty")
		}
		claims, err := s.jwt.verify(raw)
		if err != nil {
			return authError(c, "Token is expired or invalid")
		}
		// Unlike upstream, a deleted machine loses access at once.
		m, err := s.store.GetMachine(c.Request().Context(), claims.Machine)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return s.storeError(c, err)
		}
		if err != nil || !s.jwt.bound(claims, m) {
			s.log.WithFields(log.Fields{"machine": claims.Machine, "ip": c.RealIP()}).Info("token refused: its machine was deleted or re-created, its password changed, or the token predates binding tokens to machines")
			return authError(c, "Token is expired or invalid")
		}
		if !m.IsValidated {
			return authError(c, fmt.Sprintf("machine %s not validated", m.MachineID))
		}
		c.Set(ctxMachine, m.MachineID)
		c.Set(ctxMachineRow, m)
		return next(c)
	}
}

// dummyPasswordHash is compared against when the claimed machine has no
// password, so that an unknown name costs the same bcrypt work as a wrong
// password (bcrypt.DefaultCost, as cscli and registration hash). Nobody
// knows its password, and matching it would not log anyone in.
const dummyPasswordHash = "$2a$10$t1UowfHqZuBdbbnIT4L7/OPJegNqLnWZgwGk0nVB2jfQNSq0Q/3zW"

// passwordMatches checks password against m's hash; an unknown machine
// (nil) or a certificate one goes through the same comparison and fails.
func passwordMatches(m *store.Machine, password string) bool {
	hash := dummyPasswordHash
	usable := m != nil && m.AuthType != "tls"
	if usable {
		hash = m.PasswordHash
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil && usable
}

// tooManyLogins is the answer once a login bucket is empty; it does not
// say which one.
func tooManyLogins(c echo.Context, wait time.Duration) error {
	c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	return c.JSON(http.StatusTooManyRequests, map[string]any{"code": http.StatusTooManyRequests, "message": "too many failed logins: retry later"})
}

// login implements POST /v1/watchers/login (password or certificate).
func (s *Server) login(c echo.Context) error {
	ctx := c.Request().Context()
	body, status, err := readBody(c, unauthBodyLimit)
	if err != nil {
		return c.JSON(status, map[string]any{"code": status, "message": err.Error()})
	}
	ua := c.Request().UserAgent()
	parts := strings.Split(ua, "/")
	if len(parts) != 2 {
		s.log.WithField("user_agent", ua).Warn("login refused: unexpected User-Agent")
		return authError(c, loginErrorText)
	}
	version := parts[1]
	var req models.WatcherAuthRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return authError(c, "missing: "+err.Error())
	}
	addr := s.clientAddr(c)
	ip := addr.String()

	var m *store.Machine
	if cert := peerCert(c); cert != nil && s.tlsAuth != nil {
		id, err := s.tlsAuth.identify(c, cert, s.tlsAuth.agentOU)
		if err != nil {
			s.log.WithError(err).Warn("agent certificate refused")
			return authError(c, "access forbidden: "+err.Error())
		}
		machineID := id + "@" + ip
		m, err = s.store.GetMachine(ctx, machineID)
		if errors.Is(err, store.ErrNotFound) {
			pw := make([]byte, 32)
			_, _ = rand.Read(pw)
			hash, _ := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(pw)), bcrypt.DefaultCost)
			err = s.store.CreateMachine(ctx, store.Machine{MachineID: machineID, PasswordHash: string(hash), IPAddress: ip, IsValidated: true, AuthType: "tls"}, false)
			if err == nil || errors.Is(err, store.ErrExists) {
				// Read back for the row id the token binds to; ErrExists
				// means a concurrent first login of the same certificate
				// made it.
				m, err = s.store.GetMachine(ctx, machineID)
			}
		}
		switch {
		case err != nil:
			return s.storeError(c, err)
		case m.AuthType != "tls":
			return authError(c, fmt.Sprintf("machine %s attempted to auth with a certificate but is registered with a password", machineID))
		}
	} else {
		var problems []string
		if req.MachineID == nil {
			problems = append(problems, "machine_id in body is required")
		}
		if req.Password == nil {
			problems = append(problems, "password in body is required")
		}
		if len(problems) > 0 {
			return authError(c, "validation failure list:\n"+strings.Join(problems, "\n"))
		}
		machineID := *req.MachineID
		m, err = s.store.GetMachine(ctx, machineID)
		if errors.Is(err, store.ErrNotFound) {
			m = nil
		} else if err != nil {
			return s.storeError(c, err)
		}
		now := s.now()
		known := m != nil && m.IPAddress != "" && m.IPAddress == ip
		attempt, wait := s.logins.reserve(addr, machineID, known, now)
		if wait > 0 {
			s.log.WithFields(log.Fields{"machine": machineID, "ip": ip}).Debug("login refused: too many failed logins")
			return tooManyLogins(c, wait)
		}
		// An unknown name, a certificate machine and a wrong password get
		// the same answer after the same work: the name's existence is not
		// for strangers to learn.
		if !passwordMatches(m, *req.Password) {
			s.log.WithFields(log.Fields{"machine": machineID, "ip": ip}).Info("login failed: incorrect username or password")
			return authError(c, loginErrorText)
		}
		// The right password is no guess: a machine waiting for its
		// validation retries without draining its address's bucket.
		s.logins.succeeded(attempt)
		if !m.IsValidated {
			return authError(c, fmt.Sprintf("machine %s not validated", machineID))
		}
	}
	if err := s.store.MachineLoggedIn(ctx, m.MachineID, ip, version, req.Scenarios); err != nil {
		s.log.WithError(err).Warn("recording login")
	}
	return s.issueToken(c, m)
}

func (s *Server) issueToken(c echo.Context, m *store.Machine) error {
	tok, exp, err := s.jwt.issue(m, s.now())
	if err != nil {
		return c.JSON(http.StatusInternalServerError, map[string]any{"code": 500, "message": "signing token: " + err.Error()})
	}
	return c.JSON(http.StatusOK, models.WatcherAuthResponse{Code: http.StatusOK, Expire: exp.Local().Format(time.RFC3339), Token: tok})
}

// refreshToken issues a new token to the machine jwtAuth just checked.
func (s *Server) refreshToken(c echo.Context) error {
	return s.issueToken(c, c.Get(ctxMachineRow).(*store.Machine))
}

func forbidden(c echo.Context) error {
	return jsonError(c, http.StatusForbidden, "access forbidden")
}

// bouncerAuth resolves the calling bouncer row (API key or certificate).
func (s *Server) bouncerAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := s.authBouncer(c)
		var dbe dbFailure
		if errors.As(err, &dbe) {
			// The key may be fine: say what failed, not "forbidden".
			return s.storeError(c, dbe.err)
		}
		if err != nil {
			s.log.WithError(err).WithField("ip", c.RealIP()).Info("bouncer authentication failed")
			return forbidden(c)
		}
		if b == nil {
			return forbidden(c)
		}
		c.Set(ctxBouncer, b)
		return next(c)
	}
}

// dbFailure is a database error met while checking a bouncer's
// credentials, as opposed to credentials refused.
type dbFailure struct{ err error }

func (e dbFailure) Error() string { return e.err.Error() }

// authBouncer finds the calling bouncer; a database error comes back as a
// dbFailure.
func (s *Server) authBouncer(c echo.Context) (*store.Bouncer, error) {
	ctx := c.Request().Context()
	req := c.Request()
	ip := s.clientAddr(c).String()
	if cert := peerCert(c); cert != nil && s.tlsAuth != nil && req.Header.Get("X-Api-Key") == "" {
		cn, err := s.tlsAuth.identify(c, cert, s.tlsAuth.bouncerOU)
		if err != nil {
			return nil, err
		}
		name := cn + "@" + ip
		b, err := s.store.GetBouncer(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			key, kerr := apikey.Generate()
			if kerr != nil {
				return nil, kerr
			}
			b, err = s.store.CreateBouncer(ctx, store.Bouncer{Name: name, APIKeyHash: apikey.Hash(key), IPAddress: ip, AuthType: "tls", AutoCreated: true})
			if errors.Is(err, store.ErrExists) {
				// A concurrent first request of the same certificate made it.
				b, err = s.store.GetBouncer(ctx, name)
			}
		}
		if err != nil {
			return nil, dbFailure{err}
		}
		if b.AuthType != "tls" {
			return nil, fmt.Errorf("bouncer %s exists with API key authentication", name)
		}
		s.touchBouncer(c, b, ip)
		return b, nil
	}
	key := req.Header.Get("X-Api-Key")
	if key == "" {
		return nil, errors.New("no API key")
	}
	counts, err := s.counts.get(ctx, struct{}{})
	if err != nil {
		return nil, dbFailure{err}
	}
	c.Set(ctxCounts, counts)
	hash := apikey.Hash(key)
	// Rows age in wall time (s.now is the decisions' clock).
	now := time.Now()
	rows, ok := s.keyRows.get(counts.bouncers, hash, now)
	if !ok {
		shared, err := s.keys.get(ctx, hash)
		if err != nil {
			return nil, dbFailure{err}
		}
		s.keyRows.put(counts.bouncers, hash, shared, now)
		// The rows may be another request's too (same key, same round):
		// this request changes its own copies.
		rows = make([]*store.Bouncer, len(shared))
		for i, b := range shared {
			c := *b
			rows[i] = &c
		}
	}
	if len(rows) == 0 {
		return nil, errors.New("unknown API key")
	}
	if req.Method == http.MethodHead {
		return rows[0], nil
	}
	var found *store.Bouncer
	for _, b := range rows {
		if b.IPAddress == ip {
			found = b
			break
		}
	}
	if found == nil {
		var fresh []*store.Bouncer
		for _, b := range rows {
			if b.IPAddress == "" {
				fresh = append(fresh, b)
			}
		}
		if len(fresh) == 1 {
			found = fresh[0]
		}
	}
	if found == nil {
		base := rows[0].Name
		for {
			i := strings.LastIndex(base, "@")
			if i <= 0 {
				break
			}
			base = base[:i]
		}
		name := base + "@" + ip
		b, err := s.store.GetBouncer(ctx, name)
		if err == nil && (b.APIKeyHash != rows[0].APIKeyHash || b.AuthType != "api-key") {
			return nil, fmt.Errorf("bouncer %s exists with another key", name)
		}
		if errors.Is(err, store.ErrNotFound) {
			b, err = s.store.CreateBouncer(ctx, store.Bouncer{Name: name, APIKeyHash: rows[0].APIKeyHash, IPAddress: ip, AuthType: "api-key", AutoCreated: true})
			if err == nil {
				s.log.WithFields(log.Fields{"bouncer": name, "ip": ip}).Info("API key used from a new address: created a bouncer entry for it")
			}
		}
		if err != nil {
			return nil, dbFailure{err}
		}
		found = b
	}
	s.touchBouncer(c, found, ip)
	return found, nil
}

// touchBouncer stores IP, type and version when they changed.
func (s *Server) touchBouncer(c echo.Context, b *store.Bouncer, ip string) {
	ua := c.Request().UserAgent()
	typ, version := ua, "N/A"
	if parts := strings.Split(ua, "/"); len(parts) == 2 {
		typ, version = parts[0], parts[1]
	}
	if b.IPAddress == ip && b.Type == typ && b.Version == version {
		return
	}
	if err := s.store.UpdateBouncerSeen(c.Request().Context(), b.ID, ip, typ, version); err != nil {
		s.log.WithError(err).Warn("recording bouncer address")
	}
	b.IPAddress, b.Type, b.Version = ip, typ, version
}

// eitherAuth is upstream's rule for /usage-metrics.
func (s *Server) eitherAuth(next echo.HandlerFunc) echo.HandlerFunc {
	bouncer := s.bouncerAuth(next)
	machine := s.jwtAuth(next)
	return func(c echo.Context) error {
		h := c.Request().Header
		switch {
		case h.Get("X-Api-Key") != "":
			return bouncer(c)
		case h.Get("Authorization") != "":
			return machine(c)
		case strings.HasPrefix(c.Request().UserAgent(), "crowdsec/"):
			return machine(c)
		}
		return bouncer(c)
	}
}

func peerCert(c echo.Context) *x509.Certificate {
	st := c.Request().TLS
	if st == nil || len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return nil
	}
	return st.VerifiedChains[0][0]
}

// tlsAuth checks client certificates: OU, validity and CRL, with a cache.
type tlsAuth struct {
	agentOU, bouncerOU []string
	crlPath            string
	cacheTTL           time.Duration

	mu       sync.Mutex
	cache    map[string]tlsVerdict
	crlStamp string // the CRL file's size and time when cache was filled
}

type tlsVerdict struct {
	err error
	at  time.Time
}

func newTLSAuth(t *csconfig.TLS) (*tlsAuth, error) {
	a := &tlsAuth{agentOU: t.AgentsAllowedOU, bouncerOU: t.BouncersAllowedOU, crlPath: t.CRLPath,
		cacheTTL: t.CacheExpiration.Duration, cache: map[string]tlsVerdict{}}
	if a.cacheTTL <= 0 {
		a.cacheTTL = time.Hour
	}
	if a.crlPath != "" {
		// Read once now so a wrong file stops the start, not every client.
		if _, err := readCRLs(a.crlPath); err != nil {
			return nil, fmt.Errorf("api.server.tls.crl_path: %w", err)
		}
	}
	return a, nil
}

// identify returns the certificate's CN when it may authenticate as the
// class whose OUs are given.
func (a *tlsAuth) identify(c echo.Context, cert *x509.Certificate, allowed []string) (string, error) {
	if len(allowed) == 0 {
		return "", errors.New("certificate authentication is not enabled for this client class")
	}
	ok := false
	for _, ou := range cert.Subject.OrganizationalUnit {
		for _, want := range allowed {
			if ou == want {
				ok = true
			}
		}
	}
	if !ok {
		return "", fmt.Errorf("certificate OU %v not allowed", cert.Subject.OrganizationalUnit)
	}
	now := time.Now()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return "", errors.New("certificate is not valid at this time")
	}
	if err := a.revoked(cert, now); err != nil {
		return "", err
	}
	if cert.Subject.CommonName == "" {
		return "", errors.New("certificate has no common name")
	}
	return cert.Subject.CommonName, nil
}

func (a *tlsAuth) revoked(cert *x509.Certificate, now time.Time) error {
	if a.crlPath == "" {
		return nil
	}
	key := hex.EncodeToString(cert.SerialNumber.Bytes()) + "/" + cert.Issuer.String()
	// A rewritten CRL applies at once, not when cached verdicts expire.
	stamp := ""
	if fi, err := os.Stat(a.crlPath); err == nil {
		stamp = fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
	}
	a.mu.Lock()
	if stamp != a.crlStamp {
		clear(a.cache)
		a.crlStamp = stamp
	}
	if v, ok := a.cache[key]; ok && now.Sub(v.at) < a.cacheTTL {
		a.mu.Unlock()
		return v.err
	}
	a.mu.Unlock()
	verdict := a.checkCRL(cert)
	a.mu.Lock()
	if a.crlStamp == stamp { // else read from a CRL already replaced
		a.cache[key] = tlsVerdict{err: verdict, at: now}
	}
	a.mu.Unlock()
	return verdict
}

func (a *tlsAuth) checkCRL(cert *x509.Certificate) error {
	crls, err := readCRLs(a.crlPath)
	if err != nil {
		return err
	}
	for _, crl := range crls {
		for _, rc := range crl.RevokedCertificateEntries {
			if rc.SerialNumber.Cmp(cert.SerialNumber) == 0 {
				return errors.New("certificate is revoked")
			}
		}
	}
	return nil
}

// readCRLs reads the revocation lists of a file: its X509 CRL PEM blocks,
// text around them skipped (openssl crl -text writes some), or else the
// whole file as one DER list.
func readCRLs(path string) ([]*x509.RevocationList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CRL: %w", err)
	}
	var crls []*x509.RevocationList
	for rest := data; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type != "X509 CRL" {
			continue
		}
		crl, err := x509.ParseRevocationList(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing CRL %s: %w", path, err)
		}
		crls = append(crls, crl)
	}
	if len(crls) > 0 {
		return crls, nil
	}
	crl, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("%s holds no CRL (PEM X509 CRL blocks or DER): %w", path, err)
	}
	return []*x509.RevocationList{crl}, nil
}
