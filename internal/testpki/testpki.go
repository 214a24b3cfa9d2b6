// Package testpki is a throw-away certificate authority for tests: it
// issues server and client certificates and revocation lists as PEM files
// in the test's temporary directory, so the LAPI, its clients and the
// end-to-end tests exercise real TLS and mTLS on loopback.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is one authority and the directory its files go to.
type CA struct {
	Dir    string
	File   string // the CA certificate, PEM
	Cert   *x509.Certificate
	Pool   *x509.CertPool // holds Cert only
	t      testing.TB
	key    *ecdsa.PrivateKey
	serial int64
}

// Leaf is an issued certificate with its key.
type Leaf struct {
	Cert     *x509.Certificate
	Pair     tls.Certificate
	CertFile string
	KeyFile  string
}

// New creates a CA valid from an hour ago for a day; its files live in a
// fresh temporary directory.
func New(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rampart test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Dir: t.TempDir(), Cert: cert, Pool: x509.NewCertPool(), t: t, key: key, serial: 1}
	ca.Pool.AddCert(cert)
	ca.File = ca.write("ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *CA) write(name, typ string, der []byte) string {
	ca.t.Helper()
	path := filepath.Join(ca.Dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return path
}

// Issue signs a leaf named name (its files are name.pem and name-key.pem)
// with common name cn and organisational units ous. A server leaf is for
// 127.0.0.1 and ::1; any other is a client certificate.
func (ca *CA) Issue(name, cn string, ous []string, server bool, notAfter time.Time) Leaf {
	ca.t.Helper()
	return ca.issue(name, cn, ous, server, notAfter, nil)
}

// IssueServerFor is a server leaf for hosts (IP addresses or DNS names)
// besides loopback: a LAPI other hosts reach over the network.
func (ca *CA) IssueServerFor(name string, notAfter time.Time, hosts ...string) Leaf {
	ca.t.Helper()
	return ca.issue(name, hosts[0], nil, true, notAfter, hosts)
}

func (ca *CA) issue(name, cn string, ous []string, server bool, notAfter time.Time, hosts []string) Leaf {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	ca.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: ous},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	cf := ca.write(name+".pem", "CERTIFICATE", der)
	kf := ca.write(name+"-key.pem", "EC PRIVATE KEY", kder)
	pair, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		ca.t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		ca.t.Fatal(err)
	}
	return Leaf{Cert: cert, Pair: pair, CertFile: cf, KeyFile: kf}
}

// CRL writes crl.pem, a revocation list of this CA revoking the given
// certificates, and returns its path.
func (ca *CA) CRL(revoked ...*x509.Certificate) string {
	ca.t.Helper()
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return ca.write("crl.pem", "X509 CRL", der)
}

// ClientConfig trusts this CA and presents certs.
func (ca *CA) ClientConfig(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: ca.Pool, Certificates: certs, MinVersion: tls.VersionTLS12}
}
