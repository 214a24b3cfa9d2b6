package lapi

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
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
	ctxBouncer     = "bouncer"
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

func (k *jwtKeys) issue(machineID string, now time.Time) (string, time.Time, error) {
	exp := now.Add(tokenLifetime)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"id": machineID, "exp": exp.Unix(), "orig_iat": now.Unix(),
	})
	s, err := tok.SignedString(k.secret)
	return s, exp, err
}

func (k *jwtKeys) verify(raw string) (string, error) {
	tok, err := jwt.Parse(raw, func(t *jwt.Token) (any, error) { return k.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		return "", err
	}
	claims, ok := tok.Claims.(jwt.MapClaims)
	if !ok {
		return "", errors.New("invalid claims")
	}
	id, _ := claims["id"].(string)
	if id == "" {
		return "", errors.New("token has no identity")
	}
	return id, nil
}

func authError(c echo.Context, msg string) error {
	return c.JSON(http.StatusUnauthorized, map[string]any{"code": http.StatusUnauthorized, "message": msg})
}

// jwtAuth checks the Bearer token (or the jwt cookie): signature and expiry.
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
		id, err := s.jwt.verify(raw)
		if err != nil {
			return authError(c, "Token is expired or invalid")
		}
		// Unlike upstream, a deleted machine loses access at once.
		if _, err := s.store.GetMachine(c.Request().Context(), id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return authError(c, "machine "+id+" does not exist")
			}
			return s.storeError(c, err)
		}
		c.Set(ctxMachine, id)
		return next(c)
	}
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
	ip := s.clientAddr(c).String()

	var machineID string
	if cert := peerCert(c); cert != nil && s.tlsAuth != nil {
		id, err := s.tlsAuth.identify(c, cert, s.tlsAuth.agentOU)
		if err != nil {
			s.log.WithError(err).Warn("agent certificate refused")
			return authError(c, "access forbidden: "+err.Error())
		}
		machineID = id + "@" + ip
		m, err := s.store.GetMachine(ctx, machineID)
		if errors.Is(err, store.ErrNotFound) {
			pw := make([]byte, 32)
			_, _ = rand.Read(pw)
			hash, _ := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(pw)), bcrypt.DefaultCost)
			m = &store.Machine{MachineID: machineID, PasswordHash: string(hash), IPAddress: ip, IsValidated: true, AuthType: "tls"}
			if err = s.store.CreateMachine(ctx, *m, false); errors.Is(err, store.ErrExists) {
				// A concurrent first login of the same certificate made it.
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
		machineID = *req.MachineID
		m, err := s.store.GetMachine(ctx, machineID)
		if errors.Is(err, store.ErrNotFound) {
			return authError(c, "ent: machine not found")
		}
		if err != nil {
			return s.storeError(c, err)
		}
		if m.AuthType == "tls" {
			return authError(c, "machine uses certificate authentication")
		}
		if bcrypt.CompareHashAndPassword([]byte(m.PasswordHash), []byte(*req.Password)) != nil {
			return authError(c, loginErrorText)
		}
		if !m.IsValidated {
			return authError(c, fmt.Sprintf("machine %s not validated", machineID))
		}
	}
	if err := s.store.MachineLoggedIn(ctx, machineID, ip, version, req.Scenarios); err != nil {
		s.log.WithError(err).Warn("recording login")
	}
	return s.issueToken(c, machineID)
}

func (s *Server) issueToken(c echo.Context, machineID string) error {
	tok, exp, err := s.jwt.issue(machineID, s.now())
	if err != nil {
		return c.JSON(http.StatusInternalServerError, map[string]any{"code": 500, "message": "signing token: " + err.Error()})
	}
	return c.JSON(http.StatusOK, models.WatcherAuthResponse{Code: http.StatusOK, Expire: exp.Local().Format(time.RFC3339), Token: tok})
}

func (s *Server) refreshToken(c echo.Context) error {
	return s.issueToken(c, c.Get(ctxMachine).(string))
}

func forbidden(c echo.Context) error {
	return jsonError(c, http.StatusForbidden, "access forbidden")
}

// bouncerAuth resolves the calling bouncer row (API key or certificate).
func (s *Server) bouncerAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		b, err := s.authBouncer(c)
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
			return nil, err
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
	rows, err := s.store.BouncersByKey(ctx, apikey.Hash(key), "api-key")
	if err != nil {
		return nil, err
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
			return nil, err
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
