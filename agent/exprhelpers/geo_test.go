package exprhelpers

import (
	"strings"
	"testing"

	"github.com/expr-lang/expr"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/geoip"
	"github.com/rampart-ips/rampart/agent/geoip/geoiptest"
)

// geoHelpers returns Helpers reading real mmdb files (geoiptest.DataDir).
func geoHelpers(t *testing.T) *Helpers {
	t.Helper()
	db, err := geoip.Open(geoiptest.DataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := New(t.TempDir())
	h.SetGeoIP(db)
	return h
}

// evalGeo compiles src against the typed env and runs it on an event whose
// Meta.source_ip is ip.
func evalGeo(t *testing.T, h *Helpers, src, ip string) (any, error) {
	t.Helper()
	prog, err := expr.Compile(src, append(h.Options(), expr.Env(CompileEnv()))...)
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return expr.Run(prog, Env(&event.Event{Meta: map[string]string{"source_ip": ip}}))
}

func TestGeoIPHelpers(t *testing.T) {
	h := geoHelpers(t)
	cases := []struct {
		src, ip string
		want    any
	}{
		{`GeoIPEnrich(evt.Meta.source_ip).Country.IsoCode`, "203.0.113.7", "FR"},
		{`GeoIPEnrich(evt.Meta.source_ip).Country.IsInEuropeanUnion`, "203.0.113.7", true},
		{`GeoIPEnrich(evt.Meta.source_ip).City.Names["en"]`, "203.0.113.7", "Paris"},
		{`GeoIPEnrich(evt.Meta.source_ip).Continent.Code`, "203.0.113.7", "EU"},
		{`GeoIPEnrich(evt.Meta.source_ip).Location.TimeZone`, "203.0.113.7", "Europe/Paris"},
		{`GeoIPEnrich(evt.Meta.source_ip).Location.Latitude`, "203.0.113.7", 48.8566},
		// the IPv4-mapped form reads the same record
		{`GeoIPEnrich(evt.Meta.source_ip)?.Country.IsoCode`, "::ffff:203.0.113.7", "FR"},
		// no country: an empty code (no fallback, unlike the enricher), the registered one is there
		{`GeoIPEnrich(evt.Meta.source_ip).Country.IsoCode`, "198.51.100.1", ""},
		{`GeoIPEnrich(evt.Meta.source_ip).RegisteredCountry.IsoCode`, "198.51.100.1", "US"},
		{`GeoIPEnrich(evt.Meta.source_ip).Country.IsoCode`, "2001:db8::1", "DE"},
		// an unknown address gives an empty record, not nil, as upstream
		{`GeoIPEnrich(evt.Meta.source_ip) != nil && GeoIPEnrich(evt.Meta.source_ip).Country.IsoCode == ""`, "192.0.2.1", true},

		{`GeoIPASNEnrich(evt.Meta.source_ip).AutonomousSystemNumber`, "203.0.113.7", uint(64500)},
		{`GeoIPASNEnrich(evt.Meta.source_ip).AutonomousSystemOrganization`, "203.0.113.7", "Example Net"},
		{`GeoIPASNEnrich(evt.Meta.source_ip).AutonomousSystemOrganization`, "2001:db8:1::5", "Example Six"},
		{`GeoIPASNEnrich(evt.Meta.source_ip).AutonomousSystemNumber`, "192.0.2.1", uint(0)},

		{`GeoIPRangeEnrich(evt.Meta.source_ip).String()`, "203.0.113.7", "203.0.113.0/24"},
		{`GeoIPRangeEnrich(evt.Meta.source_ip).String()`, "2001:db8:1::5", "2001:db8:1::/48"},
		{`GeoIPRangeEnrich(evt.Meta.source_ip) == nil`, "192.0.2.1", true},

		{`IPToCountry(evt.Meta.source_ip)`, "203.0.113.7", "FR"},
		{`IPToCountry(evt.Meta.source_ip)`, "2001:db8::1", "DE"},
		{`IPToCountry(evt.Meta.source_ip)`, "198.51.100.1", ""},
		{`IPToCountry(evt.Meta.source_ip)`, "192.0.2.1", ""},
		{`IPToCountry(evt.Meta.source_ip)`, "not-an-ip", ""},
		{`IPToCountry(evt.Meta.source_ip)`, "", ""},
	}
	for _, c := range cases {
		got, err := evalGeo(t, h, c.src, c.ip)
		if err != nil || got != c.want {
			t.Errorf("%s with %q = %#v, %v; want %#v", c.src, c.ip, got, err, c.want)
		}
	}

	// Not an address: the expression fails, as upstream's reader errors on
	// a nil IP (the filter is then false), but nothing panics.
	for _, src := range []string{`GeoIPEnrich(evt.Meta.source_ip)`, `GeoIPASNEnrich(evt.Meta.source_ip)`, `GeoIPRangeEnrich(evt.Meta.source_ip)`} {
		for _, ip := range []string{"not-an-ip", "", "203.0.113.7:80", "fe80::1%eth0"} {
			if got, err := evalGeo(t, h, src, ip); err == nil || !strings.Contains(err.Error(), "is not an IP address") {
				t.Errorf("%s with %q = %#v, %v; want an error", src, ip, got, err)
			}
		}
	}
}

// Without databases (none set, none in the folder, or closed) the helpers
// give nil and IPToCountry "", as upstream with no database loaded.
func TestGeoIPHelpersWithoutDatabase(t *testing.T) {
	empty, err := geoip.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	closed, err := geoip.Open(geoiptest.DataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	for name, db := range map[string]*geoip.DB{"none set": nil, "empty folder": empty, "closed": closed} {
		h := New(t.TempDir())
		if db != nil {
			h.SetGeoIP(db)
		}
		for _, src := range []string{`GeoIPEnrich(evt.Meta.source_ip) == nil`, `GeoIPASNEnrich(evt.Meta.source_ip) == nil`,
			`GeoIPRangeEnrich(evt.Meta.source_ip) == nil`, `GeoIPEnrich(evt.Meta.source_ip)?.Country.IsoCode == nil`,
			`IPToCountry(evt.Meta.source_ip) == ""`} {
			for _, ip := range []string{"203.0.113.7", "garbage"} {
				if got, err := evalGeo(t, h, src, ip); err != nil || got != true {
					t.Errorf("%s: %s with %q = %#v, %v", name, src, ip, got, err)
				}
			}
		}
	}
}

// A closed database fails lookups cleanly even while rules still run.
func TestGeoIPCloseWhileRunning(t *testing.T) {
	h := geoHelpers(t)
	db := h.geo.Load()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2000 {
			if c := h.IPToCountry("203.0.113.7"); c != "FR" && c != "" {
				t.Errorf("IPToCountry = %q", c)
				return
			}
		}
	}()
	db.Close()
	<-done
	if c := h.IPToCountry("203.0.113.7"); c != "" {
		t.Errorf("after Close: %q", c)
	}
}
