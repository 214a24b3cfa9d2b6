package ruleset_test

import (
	"testing"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/geoip/geoiptest"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/ruleset"
)

// A parser written for upstream reads the GeoIP expr helpers; Load hands
// them the databases the enricher opened from the data folder.
const geoParser = `name: test/geo
filter: "evt.Line.Labels.type == 'test'"
grok:
  pattern: "^login failed from %{IP:source_ip}$"
  apply_on: Line.Raw
statics:
  - meta: source_ip
    expression: evt.Parsed.source_ip
  - meta: country
    expression: IPToCountry(evt.Parsed.source_ip)
  - meta: city
    expression: GeoIPEnrich(evt.Parsed.source_ip)?.City.Names["en"] ?? ""
  - meta: as_org
    expression: GeoIPASNEnrich(evt.Parsed.source_ip)?.AutonomousSystemOrganization ?? ""
  - meta: range
    expression: 'GeoIPRangeEnrich(evt.Parsed.source_ip) == nil ? "none" : GeoIPRangeEnrich(evt.Parsed.source_ip).String()'
`

func geoHub(t *testing.T) *hub.Hub {
	return testHub(t, map[string]map[string]map[string]any{
		"parsers": {"test/geo": {"path": "parsers/s01-parse/test/geo.yaml", "stage": "s01-parse"}},
	}, map[string]string{"parsers/s01-parse/test/geo.yaml": geoParser})
}

func TestGeoIPHelpersThroughLoad(t *testing.T) {
	parse := func(rs *ruleset.Ruleset, ip string) map[string]string {
		t.Helper()
		evt := event.New(event.Line{Raw: "login failed from " + ip, Labels: map[string]string{"type": "test"}})
		if err := rs.Parse(&evt, nil); err != nil || !evt.Process {
			t.Fatalf("parse %s: %v %v", ip, evt.Process, err)
		}
		return evt.Meta
	}
	rs, err := ruleset.Load(geoHub(t), ruleset.Spec{Parsers: []string{"test/geo"}, DataDir: geoiptest.DataDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	m := parse(rs, "203.0.113.7")
	if m["country"] != "FR" || m["city"] != "Paris" || m["as_org"] != "Example Net" || m["range"] != "203.0.113.0/24" {
		t.Errorf("with databases: %v", m)
	}
	if m := parse(rs, "192.0.2.1"); m["country"] != "" || m["range"] != "none" {
		t.Errorf("unknown address: %v", m)
	}
	// after Close the helpers see no database, and nothing breaks
	rs.Close()
	if m := parse(rs, "203.0.113.7"); m["country"] != "" || m["range"] != "none" {
		t.Errorf("after Close: %v", m)
	}

	// no databases in the data folder: upstream's nil answers
	rs2, err := ruleset.Load(geoHub(t), ruleset.Spec{Parsers: []string{"test/geo"}, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rs2.Close()
	if m := parse(rs2, "203.0.113.7"); m["country"] != "" || m["city"] != "" || m["range"] != "none" {
		t.Errorf("without databases: %v", m)
	}
}
