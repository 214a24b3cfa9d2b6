package hubtest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/rampart-ips/rampart/agent/geoip/geoiptest"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/parser"
)

type index = map[string]map[string]map[string]any

// jsonHub is a hub with one JSON parser (as caddy-logs) and one test.
func jsonHub(t *testing.T, parserAssert string) *hub.Hub {
	t.Helper()
	return writeHub(t, index{
		"parsers": {"test/json": {"path": "parsers/s01-parse/test/json.yaml", "stage": "s01-parse"}},
	}, map[string]string{
		"parsers/s01-parse/test/json.yaml": `name: test/json
filter: UnmarshalJSON(evt.Line.Raw, evt.Unmarshaled, "app") in ["", nil]
onsuccess: next_stage
statics:
  - meta: source_ip
    expression: evt.Unmarshaled.app.ip
  - meta: user
    expression: evt.Unmarshaled.app.user
`,
		".tests/t/config.yaml":   "parsers:\n- test/json\nlog_file: t.log\nlog_type: json\n",
		".tests/t/t.log":         `{"ip":"192.0.2.7","user":"bob","ts":1693840791.7565}` + "\n",
		".tests/t/parser.assert": parserAssert,
	})
}

// TestAssertHelpers: assertions are compiled with the rules' expr
// helpers, as upstream's (caddy-logs' parser.assert calls
// FloatApproxEqual); before, any helper call failed with "cannot call nil".
func TestAssertHelpers(t *testing.T) {
	h := jsonHub(t, `FloatApproxEqual(results["s01-parse"]["test/json"][0].Evt.Unmarshaled["app"]["ts"], 1693840791.756500)
Upper(results["s01-parse"]["test/json"][0].Evt.Meta["user"]) == "BOB"
`)
	res := (&Runner{Hub: h}).Run("t")
	if !res.Passed || res.ParserChecks != 2 {
		t.Fatalf("%+v", res)
	}
}

// TestEveryFailure: every assertion that does not hold is reported with
// its file, line and expression, and for a false comparison the value of
// its left side; the others still count.
func TestEveryFailure(t *testing.T) {
	h := jsonHub(t, `len(results["s01-parse"]["test/json"]) == 1
results["s01-parse"]["test/json"][0].Evt.Meta["user"] == "alice"
"10.0.0.1" in [results["s01-parse"]["test/json"][0].Evt.Meta["source_ip"]]

results["s01-parse"]["test/json"][3].Success == true
NoSuchHelper(1)
results["s01-parse"]["test/json"][0].Success
`)
	res := (&Runner{Hub: h}).Run("t")
	if res.Passed || !res.Failed() || res.Error != "" || res.ParserChecks != 2 {
		t.Fatalf("%+v", res)
	}
	var lines []int
	for _, f := range res.Failures {
		lines = append(lines, f.Line)
		if f.File != "parser.assert" || f.Expr == "" {
			t.Errorf("%+v", f)
		}
	}
	if !slices.Equal(lines, []int{2, 3, 5, 6}) {
		t.Fatalf("failed lines %v, want 2 3 5 6: %+v", lines, res.Failures)
	}
	f := res.Failures
	if f[0].Left != `"bob"` || f[0].Err != "" || !strings.Contains(f[0].String(), `parser.assert:2: results["s01-parse"]["test/json"][0].Evt.Meta["user"] == "alice": false (left side is "bob")`) {
		t.Errorf("== failure: %+v / %s", f[0], f[0])
	}
	if f[1].Left != `"10.0.0.1"` {
		t.Errorf("in failure: %+v", f[1])
	}
	if !strings.Contains(f[2].Err, "out of range") || !strings.Contains(f[3].Err, "NoSuchHelper") {
		t.Errorf("errors: %+v / %+v", f[2], f[3])
	}
}

// TestOverrideStatics: override_statics go through an "overrides" parser
// first in s00-raw, as upstream's, so any static target works
// (windows-bf's and iis-xml-logs' tests set evt.Line.Module) and the
// node is in the results.
func TestOverrideStatics(t *testing.T) {
	h := writeHub(t, index{
		"parsers": {"test/win": {"path": "parsers/s00-raw/test/win.yaml", "stage": "s00-raw"}},
	}, map[string]string{
		"parsers/s00-raw/test/win.yaml": `name: test/win
filter: evt.Line.Module == 'wineventlog'
onsuccess: next_stage
statics:
  - parsed: id
    expression: evt.Parsed.EventID + "/" + evt.Line.Labels.site
`,
		".tests/t/config.yaml": `parsers:
- test/win
log_file: t.log
log_type: xml
override_statics:
 - target: evt.Line.Module
   value: wineventlog
 - target: evt.Parsed.EventID
   value: "6200"
 - target: evt.Line.Labels.site
   value: paris
`,
		".tests/t/t.log": "<Event/>\n",
		".tests/t/parser.assert": `len(results["s00-raw"]["overrides"]) == 1
results["s00-raw"]["overrides"][0].Success == true
results["s00-raw"]["test/win"][0].Success == true
results["s00-raw"]["test/win"][0].Evt.Parsed["id"] == "6200/paris"
results["s00-raw"]["test/win"][0].Evt.Line.Module == "wineventlog"
`,
	})
	res := (&Runner{Hub: h}).Run("t")
	if !res.Passed || res.ParserChecks != 5 {
		t.Fatalf("%+v", res)
	}
}

// geoHub is a hub whose test loads a GeoIpCity enricher (as
// geoip-enrich) and asserts what the databases hold.
func geoHub(t *testing.T) *hub.Hub {
	t.Helper()
	return writeHub(t, index{
		"parsers": {
			"test/ip":  {"path": "parsers/s01-parse/test/ip.yaml", "stage": "s01-parse"},
			"test/geo": {"path": "parsers/s02-enrich/test/geo.yaml", "stage": "s02-enrich"},
			"test/cc":  {"path": "parsers/s02-enrich/test/cc.yaml", "stage": "s02-enrich"},
		},
	}, map[string]string{
		"parsers/s01-parse/test/ip.yaml": `name: test/ip
filter: "true"
onsuccess: next_stage
statics:
  - meta: source_ip
    expression: evt.Line.Raw
`,
		"parsers/s02-enrich/test/geo.yaml": `name: test/geo
filter: "true"
statics:
  - method: GeoIpCity
    expression: evt.Meta.source_ip
  - meta: IsoCode
    expression: evt.Enriched.IsoCode
`,
		"parsers/s02-enrich/test/cc.yaml": `name: test/cc
filter: "true"
statics:
  - meta: country
    expression: IPToCountry(evt.Meta.source_ip)
`,
		".tests/cc/config.yaml":   "parsers:\n- test/ip\n- test/cc\nlog_file: t.log\nlog_type: x\n",
		".tests/cc/t.log":         "203.0.113.9\n",
		".tests/cc/parser.assert": `results["s02-enrich"]["test/cc"][0].Evt.Meta["country"] == "FR"` + "\n",
		".tests/geo/config.yaml":  "parsers:\n- test/ip\n- test/geo\nlog_file: t.log\nlog_type: x\n",
		".tests/geo/t.log":        "203.0.113.9\n",
		".tests/geo/parser.assert": `results["s02-enrich"]["test/geo"][0].Evt.Meta["IsoCode"] == "FR"
`,
		".tests/plain/config.yaml":   "parsers:\n- test/ip\nlog_file: t.log\nlog_type: x\n",
		".tests/plain/t.log":         "203.0.113.9\n",
		".tests/plain/parser.assert": `results["s01-parse"]["test/ip"][0].Evt.Meta["source_ip"] == "203.0.113.9"` + "\n",
	})
}

// TestGeoIPSkip: a test whose rules call the GeoIP enrichers is skipped,
// with the reason, when the hub's data folder has no GeoLite2 database
// (the hub does not ship them), and runs when they are there.
func TestGeoIPSkip(t *testing.T) {
	h := geoHub(t)
	r := &Runner{Hub: h}
	res := r.Run("geo")
	want := "needs GeoLite2 databases (GeoLite2-City.mmdb / GeoLite2-ASN.mmdb), none found in " + filepath.Join(h.Dir, "data")
	if res.Skipped != want || res.Passed || res.Failed() {
		t.Fatalf("without databases: %+v\nwant skipped: %s", res, want)
	}
	if res := r.Run("plain"); !res.Passed || res.Skipped != "" {
		t.Fatalf("a test without GeoIP: %+v", res)
	}
	// an expr helper, not an enricher method: known only once it ran
	if res := r.Run("cc"); !strings.Contains(res.Skipped, "a GeoIP expr helper ran without them") || res.Failed() {
		t.Fatalf("IPToCountry without databases: %+v", res)
	}
	if err := os.MkdirAll(filepath.Join(h.Dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	country := mmdbtype.Map{"iso_code": mmdbtype.String("FR"), "is_in_european_union": mmdbtype.Bool(true)}
	geoiptest.Write(t, filepath.Join(h.Dir, "data", parser.CityDB), "GeoLite2-City", map[string]mmdbtype.Map{
		"203.0.113.0/24": {"country": country},
	})
	if res := r.Run("geo"); !res.Passed || res.Skipped != "" || res.ParserChecks != 1 {
		t.Fatalf("with the City database: %+v", res)
	}
	if res := r.Run("cc"); !res.Passed || res.Skipped != "" || res.ParserChecks != 1 {
		t.Fatalf("IPToCountry with the City database: %+v", res)
	}
}

// TestRunAllOrder: RunAll reports every test once, in the order given,
// whatever the parallelism.
func TestRunAllOrder(t *testing.T) {
	h := geoHub(t)
	names := []string{"plain", "geo", "missing", "plain"}
	for _, parallel := range []int{1, 3, 0} {
		var got []string
		(&Runner{Hub: h}).RunAll(context.Background(), names, parallel, func(res Result) {
			got = append(got, res.Name)
		})
		if !slices.Equal(got, names) {
			t.Errorf("parallel %d: %v", parallel, got)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	(&Runner{Hub: h}).RunAll(ctx, names[:1], 2, func(res Result) {
		if !strings.Contains(res.Error, "canceled") {
			t.Errorf("after cancel: %+v", res)
		}
	})
}
