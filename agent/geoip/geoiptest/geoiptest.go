// Package geoiptest writes small MaxMind databases for tests (real mmdb
// files, built with mmdbwriter). Only tests import it, so mmdbwriter is
// never linked into a shipped binary.
package geoiptest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/rampart-ips/rampart/agent/geoip"
)

// Write builds a database of dbType ("GeoLite2-City", "GeoLite2-ASN") at
// path holding records by CIDR. Reserved networks (the documentation
// ranges tests use) are allowed.
func Write(t testing.TB, path, dbType string, records map[string]mmdbtype.Map) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, IncludeReservedNetworks: true, RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, rec := range records {
		_, network, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(network, rec); err != nil {
			t.Fatalf("insert %s: %v", cidr, err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// Country is a country entry of a city record.
func Country(iso string, eu bool) mmdbtype.Map {
	return mmdbtype.Map{"iso_code": mmdbtype.String(iso), "is_in_european_union": mmdbtype.Bool(eu)}
}

// DataDir returns a temporary folder with a city and an ASN database:
//
//	203.0.113.0/24   FR (EU), Paris coordinates, city "Paris"; AS64500 "Example Net"
//	198.51.100.0/24  no country, registered country US; no ASN
//	2001:db8::/32    DE (EU); 2001:db8:1::/48 is AS64501 "Example Six"
func DataDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	Write(t, filepath.Join(dir, geoip.CityDB), "GeoLite2-City", map[string]mmdbtype.Map{
		"203.0.113.0/24": {"country": Country("FR", true), "registered_country": Country("FR", true),
			"city":      mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String("Paris")}, "geoname_id": mmdbtype.Uint32(2988507)},
			"continent": mmdbtype.Map{"code": mmdbtype.String("EU")},
			"location":  mmdbtype.Map{"latitude": mmdbtype.Float64(48.8566), "longitude": mmdbtype.Float64(2.3522), "time_zone": mmdbtype.String("Europe/Paris")}},
		"198.51.100.0/24": {"registered_country": Country("US", false),
			"location": mmdbtype.Map{"latitude": mmdbtype.Float64(37.751), "longitude": mmdbtype.Float64(-97.822)}},
		"2001:db8::/32": {"country": Country("DE", true)},
	})
	Write(t, filepath.Join(dir, geoip.ASNDB), "GeoLite2-ASN", map[string]mmdbtype.Map{
		"203.0.113.0/24":  {"autonomous_system_number": mmdbtype.Uint32(64500), "autonomous_system_organization": mmdbtype.String("Example Net")},
		"2001:db8:1::/48": {"autonomous_system_number": mmdbtype.Uint32(64501), "autonomous_system_organization": mmdbtype.String("Example Six")},
	})
	return dir
}
