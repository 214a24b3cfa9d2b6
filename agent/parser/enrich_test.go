package parser

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/geoip/geoiptest"
	"github.com/rampart-ips/rampart/agent/grok"
	"github.com/rampart-ips/rampart/internal/dnstest"
)

func geoDataDir(t *testing.T) string { return geoiptest.DataDir(t) }

func TestGeoIP(t *testing.T) {
	e, err := OpenEnrichment(EnrichConfig{DataDir: geoDataDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	m := e.Methods()
	cases := []struct {
		method, ip string
		want       map[string]string
	}{
		{"GeoIpCity", "203.0.113.9", map[string]string{"IsoCode": "FR", "IsInEU": "true", "Latitude": "48.856600", "Longitude": "2.352200"}},
		{"GeoIpCity", "::ffff:203.0.113.9", map[string]string{"IsoCode": "FR", "IsInEU": "true", "Latitude": "48.856600", "Longitude": "2.352200"}},
		{"GeoIpCity", "198.51.100.1", map[string]string{"IsoCode": "US", "IsInEU": "false", "Latitude": "37.751000", "Longitude": "-97.822000"}},
		{"GeoIpCity", "2001:db8:1::5", map[string]string{"IsoCode": "DE", "IsInEU": "true", "Latitude": "0.000000", "Longitude": "0.000000"}},
		{"GeoIpCity", "192.0.2.1", map[string]string{"IsoCode": "", "IsInEU": "false", "Latitude": "0.000000", "Longitude": "0.000000"}},
		{"GeoIpCity", "not an ip", nil},
		{"GeoIpCity", "", nil},
		{"GeoIpASN", "203.0.113.9", map[string]string{"ASNNumber": "64500", "ASNumber": "64500", "ASNOrg": "Example Net"}},
		{"GeoIpASN", "2001:db8:1::5", map[string]string{"ASNNumber": "64501", "ASNumber": "64501", "ASNOrg": "Example Six"}},
		{"GeoIpASN", "192.0.2.1", map[string]string{"ASNNumber": "0", "ASNumber": "0", "ASNOrg": ""}},
		{"GeoIpASN", "999.1.1.1", nil},
		{"IpToRange", "203.0.113.9", map[string]string{"SourceRange": "203.0.113.0/24"}},
		{"IpToRange", "2001:db8:1::5", map[string]string{"SourceRange": "2001:db8:1::/48"}},
		{"IpToRange", "192.0.2.1", nil},
		{"IpToRange", "x", nil},
	}
	for _, c := range cases {
		got := m[c.method](c.ip, &event.Event{})
		if len(got) != len(c.want) {
			t.Errorf("%s(%q) = %v, want %v", c.method, c.ip, got, c.want)
			continue
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s(%q)[%s] = %q, want %q", c.method, c.ip, k, got[k], v)
			}
		}
	}
}

// TestGeoIPParser runs a geoip-enrich style parser over the databases.
func TestGeoIPParser(t *testing.T) {
	e, err := OpenEnrichment(EnrichConfig{DataDir: geoDataDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	path := filepath.Join(t.TempDir(), "geoip-enrich.yaml")
	if err := os.WriteFile(path, []byte(`name: test/geoip-enrich
filter: "'source_ip' in evt.Meta"
statics:
  - method: GeoIpCity
    expression: evt.Meta.source_ip
  - meta: IsoCode
    expression: evt.Enriched.IsoCode
  - method: GeoIpASN
    expression: evt.Meta.source_ip
  - meta: ASNNumber
    expression: evt.Enriched.ASNNumber
  - method: IpToRange
    expression: evt.Meta.source_ip
  - meta: SourceRange
    expression: evt.Enriched.SourceRange
`), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := New([]Item{{Name: "test/geoip-enrich", Stage: "s02-enrich", Path: path}}, grok.NewLibrary(), nil, e.Methods())
	if err != nil {
		t.Fatal(err)
	}
	evt := event.New(event.Line{Raw: "x"})
	evt.Meta["source_ip"] = "203.0.113.77"
	if err := p.Parse(&evt, nil); err != nil || !evt.Process {
		t.Fatalf("parse: %v %v", evt.Process, err)
	}
	if evt.Meta["IsoCode"] != "FR" || evt.Meta["ASNNumber"] != "64500" || evt.Meta["SourceRange"] != "203.0.113.0/24" || evt.Enriched["IsInEU"] != "true" {
		t.Errorf("meta %v enriched %v", evt.Meta, evt.Enriched)
	}
}

func TestGeoIPAbsent(t *testing.T) {
	logger, hook := logtest.NewNullLogger()
	e, err := OpenEnrichment(EnrichConfig{DataDir: t.TempDir(), Log: log.NewEntry(logger)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if len(hook.AllEntries()) != 0 {
		t.Errorf("warned before any use: %v", hook.AllEntries())
	}
	for _, m := range []string{"GeoIpCity", "GeoIpASN", "IpToRange", "GeoIpCity"} {
		if got := e.Methods()[m]("203.0.113.9", &event.Event{}); got != nil {
			t.Errorf("%s without a database: %v", m, got)
		}
	}
	if n := len(hook.AllEntries()); n != 1 || hook.LastEntry().Level != log.WarnLevel {
		t.Errorf("%d log entries, want one warning", n)
	}

	// a database that is there but broken is an error
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, CityDB), []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenEnrichment(EnrichConfig{DataDir: dir}); err == nil {
		t.Error("no error for a corrupt database")
	}
}

// dnsServer answers PTR queries on a loopback UDP port from names; other
// names get NXDOMAIN. With silent it reads queries and never answers.
func dnsServer(t *testing.T, names map[string]string, silent bool) (addr string, queries *atomic.Int32) {
	t.Helper()
	recs := dnstest.Records{PTR: map[string][]string{}}
	for ip, name := range names {
		recs.PTR[ip] = []string{name}
	}
	s := dnstest.Start(t, recs, silent)
	return s.Addr, &s.Queries
}

func loopbackResolver(addr string) *net.Resolver { return dnstest.Resolver(addr) }

func TestReverseDNS(t *testing.T) {
	addr, queries := dnsServer(t, map[string]string{"9.113.0.203.in-addr.arpa.": "host.example.test."}, false)
	e, err := OpenEnrichment(EnrichConfig{Resolver: loopbackResolver(addr), DNSTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rdns := e.Methods()["reverse_dns"]
	for range 3 {
		got := rdns("203.0.113.9", &event.Event{})
		if got["reverse_dns"] != "host.example.test." {
			t.Fatalf("reverse_dns = %v", got)
		}
	}
	if n := queries.Load(); n != 1 {
		t.Errorf("%d queries for three lookups of one address, want 1 (cached)", n)
	}
	// no PTR: nothing, and the failure is cached too
	for range 2 {
		if got := rdns("203.0.113.10", &event.Event{}); got != nil {
			t.Errorf("unknown address: %v", got)
		}
	}
	if n := queries.Load(); n != 2 {
		t.Errorf("%d queries, want 2", n)
	}
	// not an address: no query at all
	if got := rdns("not-an-ip", &event.Event{}); got != nil || queries.Load() != 2 {
		t.Errorf("garbage: %v, %d queries", got, queries.Load())
	}
}

func TestReverseDNSTimeout(t *testing.T) {
	addr, queries := dnsServer(t, nil, true)
	const timeout = 200 * time.Millisecond
	e, err := OpenEnrichment(EnrichConfig{Resolver: loopbackResolver(addr), DNSTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got := e.ReverseDNS("203.0.113.9", &event.Event{})
	if d := time.Since(start); d > timeout+time.Second {
		t.Errorf("lookup held the event %s with a %s timeout", d, timeout)
	}
	if got != nil || queries.Load() == 0 {
		t.Errorf("got %v after %d queries", got, queries.Load())
	}
	// the timeout is remembered: the next event is not held again
	start = time.Now()
	e.ReverseDNS("203.0.113.9", &event.Event{})
	if d := time.Since(start); d > timeout/2 {
		t.Errorf("second lookup took %s", d)
	}
}

func TestDNSCacheBounds(t *testing.T) {
	c := newDNSCache(loopbackResolver("127.0.0.1:9"), time.Second, 2, time.Minute)
	now := time.Unix(1_000_000, 0)
	c.now = func() time.Time { return now }
	c.put("192.0.2.1", "a.", time.Minute)
	c.put("192.0.2.2", "b.", time.Minute)
	if _, ok := c.get("192.0.2.1"); !ok { // 192.0.2.1 is now the most recent
		t.Fatal("miss")
	}
	c.put("192.0.2.3", "c.", time.Minute)
	if _, ok := c.get("192.0.2.2"); ok || c.entries() != 2 {
		t.Errorf("least recently used entry kept; %d entries", c.entries())
	}
	if name, ok := c.get("192.0.2.1"); !ok || name != "a." {
		t.Errorf("recent entry evicted")
	}
	now = now.Add(2 * time.Minute)
	if _, ok := c.get("192.0.2.3"); ok {
		t.Error("expired entry served")
	}
	if c.entries() != 1 {
		t.Errorf("%d entries after expiry", c.entries())
	}
}

func TestOpenEnrichmentNoDataDir(t *testing.T) {
	e, err := OpenEnrichment(EnrichConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		t.Error(err)
	}
}
