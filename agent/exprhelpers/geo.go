package exprhelpers

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/expr-lang/expr"

	"github.com/rampart-ips/rampart/agent/geoip"
)

// The GeoIP helpers read the databases the parser's GeoIP enricher opened
// (parser.Enrichment.GeoIP); the rule loader hands them over with
// SetGeoIP. Without them every helper gives what upstream gives when no
// database is loaded: nil, or "" for IPToCountry.

// SetGeoIP gives the helpers the opened GeoIP databases (nil for none).
func (h *Helpers) SetGeoIP(db *geoip.DB) { h.geo.Store(db) }

// GeoIPMissed tells whether a GeoIP helper ran without the database it
// reads, so a result may differ from one with the databases (hubtest
// reports such a test as skipped rather than failed).
func (h *Helpers) GeoIPMissed() bool { return h.geoMissed.Load() }

// geoAddr parses ip as upstream (net.ParseIP: no zone, no port); an
// address it refuses is the lookup error upstream's reader returns for a
// nil IP, prefixed by the helper's name.
func geoAddr(helper, ip string) (netip.Addr, error) {
	parsed := net.ParseIP(ip)
	if parsed == nil {
		return netip.Addr{}, fmt.Errorf("%s: %q is not an IP address", helper, ip)
	}
	a, _ := netip.AddrFromSlice(parsed)
	return a.Unmap(), nil
}

// GeoIPEnrich returns the city record of ip: nil without a city database,
// an empty record when the database does not hold ip, and an error (the
// expression fails, as upstream) when ip is not an address.
func (h *Helpers) GeoIPEnrich(ip string) (*geoip.City, error) {
	db := h.geo.Load()
	if !db.HasCity() {
		h.geoMissed.Store(true)
		return nil, nil
	}
	a, err := geoAddr("GeoIPEnrich", ip)
	if err != nil {
		return nil, err
	}
	var rec geoip.City
	ok, err := db.DecodeCity(a, &rec)
	if err != nil {
		return nil, fmt.Errorf("GeoIPEnrich: %w", err)
	}
	if !ok { // closed meanwhile
		return nil, nil
	}
	return &rec, nil
}

// GeoIPASNEnrich is GeoIPEnrich on the ASN database.
func (h *Helpers) GeoIPASNEnrich(ip string) (*geoip.ASN, error) {
	db := h.geo.Load()
	if !db.HasASN() {
		h.geoMissed.Store(true)
		return nil, nil
	}
	a, err := geoAddr("GeoIPASNEnrich", ip)
	if err != nil {
		return nil, err
	}
	var rec geoip.ASN
	ok, err := db.DecodeASN(a, &rec)
	if err != nil {
		return nil, fmt.Errorf("GeoIPASNEnrich: %w", err)
	}
	if !ok {
		return nil, nil
	}
	return &rec, nil
}

// GeoIPRangeEnrich returns the network of the ASN database that holds ip
// (an IPv4 network for an IPv4 address), nil when none does or without
// the database; an error when ip is not an address, as upstream.
func (h *Helpers) GeoIPRangeEnrich(ip string) (*net.IPNet, error) {
	db := h.geo.Load()
	if !db.HasASN() {
		h.geoMissed.Store(true)
		return nil, nil
	}
	a, err := geoAddr("GeoIPRangeEnrich", ip)
	if err != nil {
		return nil, err
	}
	p, found, _, err := db.ASNNetwork(a)
	if err != nil {
		return nil, fmt.Errorf("GeoIPRangeEnrich: %w", err)
	}
	if !found {
		return nil, nil
	}
	addr := p.Masked().Addr()
	return &net.IPNet{IP: net.IP(addr.AsSlice()), Mask: net.CIDRMask(p.Bits(), addr.BitLen())}, nil
}

// IPToCountry is the ISO 3166 country code of ip's city record (its
// country, not the registered one, as upstream); "" on any failure:
// no database, not an address, unknown address.
func (h *Helpers) IPToCountry(ip string) string {
	if ip == "" {
		return ""
	}
	rec, err := h.GeoIPEnrich(ip)
	if err != nil || rec == nil {
		return ""
	}
	return rec.Country.IsoCode
}

// geoOptions registers the GeoIP helpers with upstream's signatures.
func (h *Helpers) geoOptions() []expr.Option {
	return []expr.Option{
		expr.Function("GeoIPEnrich", func(p ...any) (any, error) {
			return nilIfNil(h.GeoIPEnrich(str(p, 0)))
		}, new(func(string) *geoip.City)),
		expr.Function("GeoIPASNEnrich", func(p ...any) (any, error) {
			return nilIfNil(h.GeoIPASNEnrich(str(p, 0)))
		}, new(func(string) *geoip.ASN)),
		expr.Function("GeoIPRangeEnrich", func(p ...any) (any, error) {
			return nilIfNil(h.GeoIPRangeEnrich(str(p, 0)))
		}, new(func(string) *net.IPNet)),
		expr.Function("IPToCountry", fn1(h.IPToCountry), sigStr),
	}
}

// nilIfNil turns a nil pointer result into an untyped nil, so `== nil`
// and `?.` in expressions see nil, as with upstream's helpers.
func nilIfNil[T any](v *T, err error) (any, error) {
	if err != nil || v == nil {
		return nil, err
	}
	return v, nil
}
