package geoip_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/agent/geoip"
	"github.com/rampart-ips/rampart/agent/geoip/geoiptest"
)

func TestDB(t *testing.T) {
	db, err := geoip.Open(geoiptest.DataDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if !db.HasCity() || !db.HasASN() {
		t.Fatal("databases not opened")
	}
	var c geoip.City
	if ok, err := db.DecodeCity(netip.MustParseAddr("::ffff:203.0.113.1"), &c); !ok || err != nil || c.Country.IsoCode != "FR" {
		t.Errorf("city: %v %v %+v", ok, err, c.Country)
	}
	for ip, want := range map[string]string{"203.0.113.9": "203.0.113.0/24", "2001:db8:1::1": "2001:db8:1::/48"} {
		p, found, ok, err := db.ASNNetwork(netip.MustParseAddr(ip))
		if !ok || !found || err != nil || p.String() != want {
			t.Errorf("ASNNetwork(%s) = %v %v %v %v", ip, p, found, ok, err)
		}
	}
	if _, found, ok, _ := db.ASNNetwork(netip.MustParseAddr("192.0.2.1")); !ok || found {
		t.Error("an address outside every network was found")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db.HasCity() || db.HasASN() {
		t.Error("open after Close")
	}
	if ok, err := db.DecodeASN(netip.MustParseAddr("203.0.113.9"), &geoip.ASN{}); ok || err != nil {
		t.Errorf("lookup after Close: %v %v", ok, err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOpenAbsentAndBroken(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		db, err := geoip.Open(dir)
		if err != nil || db.HasCity() || db.HasASN() {
			t.Errorf("Open(%q): %v", dir, err)
		}
	}
	var none *geoip.DB // a nil DB is "no database"
	if ok, err := none.DecodeCity(netip.MustParseAddr("203.0.113.1"), &geoip.City{}); ok || err != nil || none.Close() != nil {
		t.Error("nil DB")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, geoip.ASNDB), []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := geoip.Open(dir); err == nil || !strings.Contains(err.Error(), geoip.ASNDB) {
		t.Errorf("broken database: %v", err)
	}
}
