package parser

import (
	"net/netip"
	"strconv"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/internal/netaddr"
)

// country is the part of a GeoLite2-City record upstream reads.
type country struct {
	IsoCode string `maxminddb:"iso_code"`
	InEU    bool   `maxminddb:"is_in_european_union"`
}

type cityRecord struct {
	Country            country `maxminddb:"country"`
	RegisteredCountry  country `maxminddb:"registered_country"`
	RepresentedCountry country `maxminddb:"represented_country"`
	Location           struct {
		Latitude  float64 `maxminddb:"latitude"`
		Longitude float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

type asnRecord struct {
	Number uint   `maxminddb:"autonomous_system_number"`
	Org    string `maxminddb:"autonomous_system_organization"`
}

// parseIP reads an enricher's argument; "" and garbage give false.
func parseIP(value string) (netip.Addr, bool) {
	a, err := netaddr.ParseAddr(value)
	return a, err == nil
}

// GeoIPCity is the GeoIpCity method: IsoCode and IsInEU (from the country,
// else the registered, else the represented country), Latitude and
// Longitude. An address the database does not know gives an empty IsoCode,
// IsInEU false and zero coordinates, as upstream.
func (e *Enrichment) GeoIPCity(value string, _ *event.Event) map[string]string {
	ip, ok := parseIP(value)
	if !ok || e.missing(e.geo.HasCity()) {
		return nil
	}
	var rec cityRecord
	if _, err := e.geo.DecodeCity(ip, &rec); err != nil {
		e.log.WithError(err).Debugf("GeoIpCity %s", ip)
		return nil
	}
	c := rec.Country
	if c.IsoCode == "" {
		c = rec.RegisteredCountry
	}
	if c.IsoCode == "" {
		c = rec.RepresentedCountry
	}
	return map[string]string{
		"IsoCode":   c.IsoCode,
		"IsInEU":    strconv.FormatBool(c.InEU),
		"Latitude":  strconv.FormatFloat(rec.Location.Latitude, 'f', 6, 64),
		"Longitude": strconv.FormatFloat(rec.Location.Longitude, 'f', 6, 64),
	}
}

// GeoIPASN is the GeoIpASN method: ASNNumber and ASNumber (the same
// number, both names are read by the hub) and ASNOrg. An unknown address
// gives number 0 and an empty organisation, as upstream.
func (e *Enrichment) GeoIPASN(value string, _ *event.Event) map[string]string {
	ip, ok := parseIP(value)
	if !ok || e.missing(e.geo.HasASN()) {
		return nil
	}
	var rec asnRecord
	if _, err := e.geo.DecodeASN(ip, &rec); err != nil {
		e.log.WithError(err).Debugf("GeoIpASN %s", ip)
		return nil
	}
	n := strconv.FormatUint(uint64(rec.Number), 10)
	return map[string]string{"ASNNumber": n, "ASNumber": n, "ASNOrg": rec.Org}
}

// IPToRange is the IpToRange method: SourceRange, the network of the ASN
// database that holds the address; nothing when no network does.
func (e *Enrichment) IPToRange(value string, _ *event.Event) map[string]string {
	ip, ok := parseIP(value)
	if !ok || e.missing(e.geo.HasASN()) {
		return nil
	}
	p, found, _, err := e.geo.ASNNetwork(ip)
	if err != nil {
		e.log.WithError(err).Debugf("IpToRange %s", ip)
		return nil
	}
	if !found {
		return nil
	}
	return map[string]string{"SourceRange": p.String()}
}
