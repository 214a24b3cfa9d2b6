package apiclient

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/testpki"
)

func TestTLSConfigErrors(t *testing.T) {
	pki := testpki.New(t)
	day := time.Now().Add(24 * time.Hour)
	a := pki.Issue("a", "a", nil, false, day)
	b := pki.Issue("b", "b", nil, false, day)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    TLSOptions
		want []string
	}{
		{"missing CA", TLSOptions{CACertPath: missing}, []string{"reading ca_cert_path", "no such file"}},
		{"CA without a certificate", TLSOptions{CACertPath: notPEM}, []string{"ca_cert_path", notPEM, "no PEM certificate"}},
		{"cert without key", TLSOptions{CertPath: a.CertFile}, []string{"key_path is not"}},
		{"key without cert", TLSOptions{KeyPath: a.KeyFile}, []string{"cert_path is not"}},
		{"missing cert", TLSOptions{CertPath: missing, KeyPath: a.KeyFile}, []string{"reading cert_path", "no such file"}},
		{"missing key", TLSOptions{CertPath: a.CertFile, KeyPath: missing}, []string{"reading key_path", "no such file"}},
		{"key of another certificate", TLSOptions{CertPath: a.CertFile, KeyPath: b.KeyFile}, []string{a.CertFile, b.KeyFile, "does not match"}},
		{"cert file holds no certificate", TLSOptions{CertPath: notPEM, KeyPath: a.KeyFile}, []string{notPEM}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TLSConfig(tc.o)
			if err == nil {
				t.Fatalf("TLSConfig(%+v) = %v, want an error", tc.o, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if tc, err := TLSConfig(TLSOptions{}); tc != nil || err != nil {
		t.Errorf("empty options = %v, %v; want nil, nil", tc, err)
	}
}

// mtlsServer is an HTTPS server that requires a client certificate of
// pki and records the paths and authentication headers it gets.
type mtlsServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string // "PATH auth=<Authorization> key=<X-Api-Key> cn=<client CN>"
}

func newMTLSServer(t *testing.T, pki *testpki.CA) *mtlsServer {
	t.Helper()
	leaf := pki.Issue("server", "127.0.0.1", nil, true, time.Now().Add(24*time.Hour))
	m := &mtlsServer{}
	m.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := ""
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		m.mu.Lock()
		m.seen = append(m.seen, r.URL.Path+" auth="+r.Header.Get("Authorization")+" key="+r.Header.Get("X-Api-Key")+" cn="+cn)
		m.mu.Unlock()
		switch r.URL.Path {
		case "/v1/watchers/login":
			_, _ = w.Write([]byte(`{"code":200,"expire":"` + time.Now().Add(time.Hour).Format(time.RFC3339) + `","token":"tok"}`))
		case "/v1/usage-metrics":
			w.WriteHeader(http.StatusCreated)
		default:
			_, _ = w.Write([]byte(`{"new":[],"deleted":[]}`))
		}
	}))
	m.srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.Pair}, ClientCAs: pki.Pool, ClientAuth: tls.RequireAndVerifyClientCert}
	m.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	m.srv.StartTLS()
	t.Cleanup(m.srv.Close)
	return m
}

func (m *mtlsServer) requests() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.seen...)
}

// A client certificate alone authenticates: a machine logs in with it and
// sends its token, a bouncer sends no key and never logs in, usage metrics
// included.
func TestClientCertificateOnly(t *testing.T) {
	pki := testpki.New(t)
	srv := newMTLSServer(t, pki)
	day := time.Now().Add(24 * time.Hour)
	agent := pki.Issue("agent", "agent1", []string{"agent"}, false, day)
	bouncer := pki.Issue("bouncer", "fw", []string{"bouncer"}, false, day)
	ctx := context.Background()

	tc, err := TLSConfig(TLSOptions{CACertPath: pki.File, CertPath: agent.CertFile, KeyPath: agent.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{URL: srv.srv.URL, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.UsageMetrics(ctx, map[string]any{"log_processors": []any{}}); err != nil {
		t.Fatalf("machine usage metrics with a certificate: %v", err)
	}
	tc, err = TLSConfig(TLSOptions{CACertPath: pki.File, CertPath: bouncer.CertFile, KeyPath: bouncer.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{URL: srv.srv.URL, TLS: tc, Bouncer: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stream(ctx, true, nil); err != nil {
		t.Fatalf("bouncer stream with a certificate: %v", err)
	}
	if err := b.UsageMetrics(ctx, map[string]any{"remediation_components": []any{}}); err != nil {
		t.Fatalf("bouncer usage metrics with a certificate: %v", err)
	}
	want := []string{
		"/v1/watchers/login auth= key= cn=agent1",
		"/v1/usage-metrics auth=Bearer tok key= cn=agent1",
		"/v1/decisions/stream auth= key= cn=fw",
		"/v1/usage-metrics auth= key= cn=fw",
	}
	if got := srv.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Without the CA the server's certificate is unknown; with
	// insecure_skip_verify it is not checked.
	tc, err = TLSConfig(TLSOptions{CertPath: bouncer.CertFile, KeyPath: bouncer.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = New(Config{URL: srv.srv.URL, TLS: tc, Bouncer: true})
	if _, err := b.Stream(ctx, true, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("stream without the CA: %v, want a certificate error", err)
	}
	tc, err = TLSConfig(TLSOptions{CertPath: bouncer.CertFile, KeyPath: bouncer.KeyFile, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = New(Config{URL: srv.srv.URL, TLS: tc, Bouncer: true})
	if _, err := b.Stream(ctx, true, nil); err != nil {
		t.Errorf("stream with insecure_skip_verify: %v", err)
	}
}
