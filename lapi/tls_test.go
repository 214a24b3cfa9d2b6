package lapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/testpki"
	"github.com/rampart-ips/rampart/lapi/apikey"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// tlsClient is an HTTPS client trusting pki and presenting certs.
func tlsClient(pki *testpki.CA, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientConfig(certs...)}}
}

func httpsURL(l *testLAPI) string { return "https://" + strings.TrimPrefix(l.URL, "http://") }

// tlsSend is send() over a given client; err is the transport error.
func tlsSend(l *testLAPI, c *http.Client, method, path string, h http.Header, body any) (reply, error) {
	l.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, httpsURL(l)+path, rd)
	if err != nil {
		l.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: data}, err
}

func mustTLS(t *testing.T, l *testLAPI, c *http.Client, method, path string, h http.Header, body any) reply {
	t.Helper()
	r, err := tlsSend(l, c, method, path, h, body)
	if err != nil {
		t.Fatalf("%s %s over TLS: %v", method, path, err)
	}
	return r
}

func TestTLSClientCertificates(t *testing.T) {
	pki := testpki.New(t)
	srv := pki.Issue("server", "127.0.0.1", nil, true, time.Now().Add(24*time.Hour))
	day := time.Now().Add(24 * time.Hour)
	bouncer := pki.Issue("bouncer", "fw-tls", []string{"bouncer-ou"}, false, day)
	bouncer2 := pki.Issue("bouncer2", "fw-multi", []string{"misc", "bouncer-ou"}, false, day)
	agent := pki.Issue("agent", "agent1", []string{"agent-ou"}, false, day)
	wrongOU := pki.Issue("wrong", "intruder", []string{"other-ou"}, false, day)
	revoked := pki.Issue("revoked", "revoked-fw", []string{"bouncer-ou"}, false, day)
	revokedAgent := pki.Issue("revoked-agent", "revoked-agent", []string{"agent-ou"}, false, day)
	clash := pki.Issue("clash", "clash", []string{"bouncer-ou"}, false, day)
	pwClash := pki.Issue("pwclash", "pwagent", []string{"agent-ou"}, false, day)
	noCN := pki.Issue("nocn", "", []string{"bouncer-ou"}, false, day)
	crl := pki.CRL(revoked.Cert, revokedAgent.Cert)

	l := startLAPI(t, func(c *csconfig.Config) {
		c.API.Server.TLS = &csconfig.TLS{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CACertPath: pki.File,
			BouncersAllowedOU: []string{"bouncer-ou"}, AgentsAllowedOU: []string{"agent-ou"}, CRLPath: crl}
	})
	ctx := context.Background()
	bua := hdr("User-Agent", "crowdsecurity-firewall-bouncer/v0.0.31")
	bua.Set("User-Agent", "crowdsec-firewall-bouncer/v0.0.31")

	// plain HTTP to the TLS port never gets an answer from the API
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(l.URL + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP to the TLS listener answered 200")
		}
	}
	// TLS below 1.2 is refused
	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := tlsSend(l, old, "GET", "/health", nil, nil); err == nil {
		t.Errorf("TLS 1.1 handshake accepted")
	}
	anon := tlsClient(pki)
	if r := mustTLS(t, l, anon, "GET", "/health", nil, nil); r.Status != 200 {
		t.Errorf("health over TLS: %s", r)
	}

	// bouncer certificate: stream works, a tls row is auto-created
	bc := tlsClient(pki, bouncer.Pair)
	r := mustTLS(t, l, bc, "GET", "/v1/decisions/stream?startup=true", bua, nil)
	if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"new": [], "deleted": []}` {
		t.Fatalf("bouncer cert stream: %s", r)
	}
	b, err := l.Store.GetBouncer(ctx, "fw-tls@127.0.0.1")
	if err != nil {
		t.Fatalf("no bouncer row for the certificate: %v", err)
	}
	if b.AuthType != "tls" || !b.AutoCreated || b.IPAddress != "127.0.0.1" || b.Type != "crowdsec-firewall-bouncer" || b.Version != "v0.0.31" || b.Cursor == nil {
		t.Errorf("certificate bouncer row = %+v", b)
	}
	// password login without a certificate still works over TLS, and the
	// bouncer sees the push
	l.addMachine(testMachine, testPassword)
	r = mustTLS(t, l, anon, "POST", "/v1/watchers/login", hdr("User-Agent", testUA), map[string]any{"machine_id": testMachine, "password": testPassword})
	var login models.WatcherAuthResponse
	if r.Status != 200 || json.Unmarshal(r.Body, &login) != nil {
		t.Fatalf("password login over TLS: %s", r)
	}
	r = mustTLS(t, l, anon, "POST", "/v1/alerts", hdr("Authorization", "Bearer "+login.Token, "User-Agent", testUA),
		[]*models.Alert{manualAlert("192.0.2.44", "Ip", "4h", "cscli")})
	if r.Status != 201 {
		t.Fatalf("push over TLS: %s", r)
	}
	r = mustTLS(t, l, bc, "GET", "/v1/decisions/stream", bua, nil)
	var sr models.StreamResponse
	if err := json.Unmarshal(r.Body, &sr); err != nil || len(sr.New) != 1 || sr.New[0].Value != "192.0.2.44" {
		t.Errorf("certificate bouncer delta: %s", r)
	}
	if bs, _ := l.Store.ListBouncers(ctx); len(bs) != 1 {
		t.Errorf("%d bouncer rows after two pulls, want 1", len(bs))
	}
	// GET /v1/decisions and HEAD work with the certificate too
	if r := mustTLS(t, l, bc, "GET", "/v1/decisions?ip=192.0.2.44", bua, nil); r.Status != 200 || !strings.Contains(string(r.Body), "192.0.2.44") {
		t.Errorf("certificate bouncer GET /v1/decisions: %s", r)
	}
	// any of several OUs may match
	if r := mustTLS(t, l, tlsClient(pki, bouncer2.Pair), "GET", "/v1/decisions", bua, nil); r.Status != 200 {
		t.Errorf("certificate with the OU in second place: %s", r)
	}
	// an API key still works without a certificate
	key := l.addBouncer("keyed")
	if r := mustTLS(t, l, anon, "GET", "/v1/decisions", keyHdr(key), nil); r.Status != 200 {
		t.Errorf("API key over TLS: %s", r)
	}

	// refused certificates
	for name, cl := range map[string]*http.Client{
		"wrong OU":   tlsClient(pki, wrongOU.Pair),
		"agent cert": tlsClient(pki, agent.Pair),
		"revoked":    tlsClient(pki, revoked.Pair),
		"no CN":      tlsClient(pki, noCN.Pair),
		"no cert":    anon,
	} {
		expectMsg(t, name+" on the stream", mustTLS(t, l, cl, "GET", "/v1/decisions/stream?startup=true", bua, nil), 403, "access forbidden")
	}
	// an existing API-key bouncer of the same name is not taken over
	if _, err := l.Store.CreateBouncer(ctx, store.Bouncer{Name: "clash@127.0.0.1", APIKeyHash: apikey.Hash("k"), IPAddress: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, "cert over an api-key bouncer", mustTLS(t, l, tlsClient(pki, clash.Pair), "GET", "/v1/decisions", bua, nil), 403, "access forbidden")
	for _, name := range []string{"intruder@127.0.0.1", "revoked-fw@127.0.0.1", "agent1@127.0.0.1", "@127.0.0.1"} {
		if _, err := l.Store.GetBouncer(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refused certificate created bouncer %q (%v)", name, err)
		}
	}

	// agent certificate: login creates a validated tls machine
	ac := tlsClient(pki, agent.Pair)
	r = mustTLS(t, l, ac, "POST", "/v1/watchers/login", hdr("User-Agent", "crowdsec/v1.7.8-x-linux"), map[string]any{"scenarios": []string{"a/b"}})
	var tlsLogin models.WatcherAuthResponse
	if r.Status != 200 || json.Unmarshal(r.Body, &tlsLogin) != nil || tlsLogin.Token == "" {
		t.Fatalf("agent certificate login: %s", r)
	}
	m, err := l.Store.GetMachine(ctx, "agent1@127.0.0.1")
	if err != nil {
		t.Fatalf("no machine for the agent certificate: %v", err)
	}
	if !m.IsValidated || m.AuthType != "tls" || m.Version != "v1.7.8-x-linux" || m.Scenarios != "a/b" {
		t.Errorf("certificate machine = %+v", m)
	}
	if r := mustTLS(t, l, ac, "GET", "/v1/heartbeat", hdr("Authorization", "Bearer "+tlsLogin.Token), nil); r.Status != 200 {
		t.Errorf("heartbeat with the certificate token: %s", r)
	}
	// a second login reuses the machine
	if r := mustTLS(t, l, ac, "POST", "/v1/watchers/login", hdr("User-Agent", testUA), map[string]any{}); r.Status != 200 {
		t.Errorf("second certificate login: %s", r)
	}
	// that machine cannot log in with a password
	expectAuth401(t, "password login of a tls machine", mustTLS(t, l, anon, "POST", "/v1/watchers/login", hdr("User-Agent", testUA),
		map[string]any{"machine_id": "agent1@127.0.0.1", "password": "x"}), "")

	// refused agent certificates: 401
	for name, cl := range map[string]*http.Client{
		"bouncer cert":  bc,
		"wrong OU":      tlsClient(pki, wrongOU.Pair),
		"revoked agent": tlsClient(pki, revokedAgent.Pair),
	} {
		expectAuth401(t, name+" login", mustTLS(t, l, cl, "POST", "/v1/watchers/login", hdr("User-Agent", testUA), map[string]any{"scenarios": []string{}}), "")
	}
	expectAuth401(t, "agent cert with a bad user agent", mustTLS(t, l, ac, "POST", "/v1/watchers/login", hdr("User-Agent", "curl"), map[string]any{}), "")
	// a password machine of the same name is not taken over
	l.addMachine("pwagent@127.0.0.1", "pw")
	expectAuth401(t, "cert over a password machine", mustTLS(t, l, tlsClient(pki, pwClash.Pair), "POST", "/v1/watchers/login", hdr("User-Agent", testUA), map[string]any{}), "")
	for _, name := range []string{"revoked-agent@127.0.0.1", "intruder@127.0.0.1", "fw-tls@127.0.0.1"} {
		if _, err := l.Store.GetMachine(ctx, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refused certificate created machine %q (%v)", name, err)
		}
	}

	// certificates the TLS layer itself rejects
	otherCA := testpki.New(t)
	foreign := otherCA.Issue("foreign", "fw-tls", []string{"bouncer-ou"}, false, day)
	if _, err := tlsSend(l, tlsClient(pki, foreign.Pair), "GET", "/v1/decisions/stream", bua, nil); err == nil {
		t.Errorf("certificate from an unknown CA accepted")
	}
	expired := pki.Issue("expired", "old-fw", []string{"bouncer-ou"}, false, time.Now().Add(-time.Minute))
	if r, err := tlsSend(l, tlsClient(pki, expired.Pair), "GET", "/v1/decisions/stream", bua, nil); err == nil && r.Status == 200 {
		t.Errorf("expired certificate accepted")
	}
	if r := l.send("GET", "/health", nil, nil); r.Status == 200 {
		t.Errorf("plain HTTP answered after TLS traffic")
	}
}

func TestTLSRequireClientCert(t *testing.T) {
	pki := testpki.New(t)
	srv := pki.Issue("server", "127.0.0.1", nil, true, time.Now().Add(24*time.Hour))
	bouncer := pki.Issue("bouncer", "fw", []string{"bouncer-ou"}, false, time.Now().Add(24*time.Hour))
	l := startLAPI(t, func(c *csconfig.Config) {
		c.API.Server.TLS = &csconfig.TLS{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CACertPath: pki.File,
			ClientVerification: "RequireAndVerifyClientCert", BouncersAllowedOU: []string{"bouncer-ou"}}
	})
	if _, err := tlsSend(l, tlsClient(pki), "GET", "/health", nil, nil); err == nil {
		t.Errorf("connection without a client certificate accepted under RequireAndVerifyClientCert")
	}
	if r := mustTLS(t, l, tlsClient(pki, bouncer.Pair), "GET", "/v1/decisions", hdr("User-Agent", "x/y"), nil); r.Status != 200 {
		t.Errorf("bouncer with certificate: %s", r)
	}
	// no agent OU configured: agent certificate login is refused
	expectAuth401(t, "agent login without agents_allowed_ou", mustTLS(t, l, tlsClient(pki, bouncer.Pair), "POST", "/v1/watchers/login",
		hdr("User-Agent", testUA), map[string]any{}), "")
}

// The first requests of a certificate may arrive together (an agent and
// cscli sharing credentials, a bouncer's stream and usage report): they
// all get in, over one machine or bouncer row.
func TestTLSConcurrentFirstUse(t *testing.T) {
	pki := testpki.New(t)
	day := time.Now().Add(24 * time.Hour)
	srv := pki.Issue("server", "127.0.0.1", nil, true, day)
	agent := pki.Issue("agent", "agent1", []string{"agent-ou"}, false, day)
	bouncer := pki.Issue("bouncer", "fw", []string{"bouncer-ou"}, false, day)
	l := startLAPI(t, func(c *csconfig.Config) {
		c.API.Server.TLS = &csconfig.TLS{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CACertPath: pki.File,
			AgentsAllowedOU: []string{"agent-ou"}, BouncersAllowedOU: []string{"bouncer-ou"}}
	})
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, 2*n)
	for i := range n {
		wg.Go(func() {
			r, err := tlsSend(l, tlsClient(pki, agent.Pair), "POST", "/v1/watchers/login", hdr("User-Agent", testUA), map[string]any{})
			if err != nil {
				t.Errorf("login %d: %v", i, err)
			}
			statuses[i] = r.Status
		})
		wg.Go(func() {
			r, err := tlsSend(l, tlsClient(pki, bouncer.Pair), "GET", "/v1/decisions", hdr("User-Agent", "crowdsec-firewall-bouncer/v0.0.31"), nil)
			if err != nil {
				t.Errorf("bouncer request %d: %v", i, err)
			}
			statuses[n+i] = r.Status
		})
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Errorf("concurrent first use %d: status %d, want 200", i, st)
		}
	}
	ctx := context.Background()
	if ms, err := l.Store.ListMachines(ctx); err != nil || len(ms) != 1 {
		t.Errorf("%d machines (%v), want 1", len(ms), err)
	}
	if bs, err := l.Store.ListBouncers(ctx); err != nil || len(bs) != 1 {
		t.Errorf("%d bouncers (%v), want 1", len(bs), err)
	}
}

// A CRL file as tools write it (text around the PEM block, blank lines)
// revokes what it lists and nothing else; a file that holds no CRL stops
// the LAPI at start with an error naming crl_path.
func TestTLSCRLFile(t *testing.T) {
	pki := testpki.New(t)
	day := time.Now().Add(24 * time.Hour)
	srv := pki.Issue("server", "127.0.0.1", nil, true, day)
	good := pki.Issue("good", "fw", []string{"bouncer-ou"}, false, day)
	revoked := pki.Issue("revoked", "stolen", []string{"bouncer-ou"}, false, day)
	crlPEM, err := os.ReadFile(pki.CRL(revoked.Cert))
	if err != nil {
		t.Fatal(err)
	}
	crl := filepath.Join(t.TempDir(), "crl.pem")
	if err := os.WriteFile(crl, append(append([]byte("Certificate Revocation List (CRL):\n    Version 2 (0x1)\n"), crlPEM...), "\n\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsCfg := func(c *csconfig.Config) {
		c.API.Server.TLS = &csconfig.TLS{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CACertPath: pki.File,
			BouncersAllowedOU: []string{"bouncer-ou"}, CRLPath: crl}
	}
	l := startLAPI(t, tlsCfg)
	bua := hdr("User-Agent", "crowdsec-firewall-bouncer/v0.0.31")
	if r := mustTLS(t, l, tlsClient(pki, good.Pair), "GET", "/v1/decisions", bua, nil); r.Status != 200 {
		t.Errorf("certificate not in the CRL: %s", r)
	}
	expectMsg(t, "revoked certificate", mustTLS(t, l, tlsClient(pki, revoked.Pair), "GET", "/v1/decisions", bua, nil), 403, "access forbidden")

	if err := os.WriteFile(crl, []byte("not a CRL\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := csconfig.Default()
	tlsCfg(cfg)
	if _, err := New(context.Background(), cfg, l.Store, profiles.Default()); err == nil || !strings.Contains(err.Error(), "crl_path") {
		t.Errorf("LAPI with a CRL file holding no CRL: %v, want an error naming crl_path", err)
	}
}

// A certificate revoked while the LAPI runs is refused from its next
// request: a changed CRL file drops the cached verdicts.
func TestTLSCRLChange(t *testing.T) {
	pki := testpki.New(t)
	day := time.Now().Add(24 * time.Hour)
	srv := pki.Issue("server", "127.0.0.1", nil, true, day)
	fw := pki.Issue("fw", "fw", []string{"bouncer-ou"}, false, day)
	crl := pki.CRL()
	l := startLAPI(t, func(c *csconfig.Config) {
		c.API.Server.TLS = &csconfig.TLS{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CACertPath: pki.File,
			BouncersAllowedOU: []string{"bouncer-ou"}, CRLPath: crl}
	})
	bua := hdr("User-Agent", "crowdsec-firewall-bouncer/v0.0.31")
	if r := mustTLS(t, l, tlsClient(pki, fw.Pair), "GET", "/v1/decisions", bua, nil); r.Status != 200 {
		t.Fatalf("before revocation: %s", r)
	}
	if pki.CRL(fw.Cert) != crl {
		t.Fatal("the new CRL went to another file")
	}
	// The rewrite may land in the same clock tick: date it apart.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(crl, later, later); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, "after revocation", mustTLS(t, l, tlsClient(pki, fw.Pair), "GET", "/v1/decisions", bua, nil), 403, "access forbidden")
}

// TestLoopbackOnly decides the warning of a LAPI listening on the network
// without TLS.
func TestLoopbackOnly(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true,
		"0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.1:8080": false,
	} {
		ta, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := loopbackOnly(ta); got != want {
			t.Errorf("loopbackOnly(%s) = %v, want %v", addr, got, want)
		}
	}
}
