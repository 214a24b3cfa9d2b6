package apiclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSOptions are the TLS settings of a LAPI client, as its configuration
// names them (the same keys for the agent, cscli and the bouncer).
type TLSOptions struct {
	// CACertPath is a PEM file of CA certificates trusted in addition to
	// the system roots (ca_cert_path).
	CACertPath string
	// CertPath and KeyPath are the PEM client certificate and its key
	// (cert_path, key_path); together they may replace a password or an
	// API key (mTLS).
	CertPath, KeyPath string
	// InsecureSkipVerify disables the check of the LAPI's certificate
	// (insecure_skip_verify).
	InsecureSkipVerify bool
}

// TLSConfig builds the client TLS configuration o asks for; nil when o is
// empty, so plain defaults apply. Every LAPI client builds its TLS here so
// that a CA file means the same thing everywhere: it is added to the system
// roots, never a replacement for them.
func TLSConfig(o TLSOptions) (*tls.Config, error) {
	if o == (TLSOptions{}) {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // the operator's choice
	if o.CACertPath != "" {
		pem, err := os.ReadFile(o.CACertPath)
		if err != nil {
			return nil, fmt.Errorf("reading ca_cert_path: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			// No system roots here: the CA file alone is trusted.
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_cert_path %s holds no PEM certificate", o.CACertPath)
		}
		tc.RootCAs = pool
	}
	switch {
	case o.CertPath == "" && o.KeyPath == "":
	case o.CertPath == "":
		return nil, errors.New("key_path is set but cert_path is not: a client certificate needs both")
	case o.KeyPath == "":
		return nil, errors.New("cert_path is set but key_path is not: a client certificate needs both")
	default:
		cert, err := loadKeyPair(o.CertPath, o.KeyPath)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// loadKeyPair reads the files one by one so an error names the file at
// fault before the pair is matched.
func loadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("reading cert_path: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("reading key_path: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("client certificate %s with key %s: %w", certPath, keyPath, err)
	}
	return cert, nil
}
