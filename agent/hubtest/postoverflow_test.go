package hubtest

import (
	"testing"

	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/internal/testhub"
)

// writeHub writes a hub folder from an index and files.
func writeHub(t *testing.T, index map[string]map[string]map[string]any, files map[string]string) *hub.Hub {
	t.Helper()
	dir := testhub.WriteHub(t, index, files)
	h, err := hub.OpenHub(dir)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestPostOverflows runs a hub test whose config lists a postoverflow
// whitelist (and takes its scenario from a collection): the whitelisted
// overflow is still in the results, marked, as upstream dumps it.
func TestPostOverflows(t *testing.T) {
	h := writeHub(t, map[string]map[string]map[string]any{
		"parsers":       {"test/fail": {"path": "parsers/s01-parse/test/fail.yaml", "stage": "s01-parse"}},
		"scenarios":     {"test/trigger": {"path": "scenarios/test/trigger.yaml"}},
		"postoverflows": {"test/po-whitelist": {"path": "postoverflows/s01-whitelist/test/po-whitelist.yaml", "stage": "s01-whitelist"}},
		"collections":   {"test/col": {"path": "collections/test/col.yaml", "scenarios": []string{"test/trigger"}}},
	}, map[string]string{
		"parsers/s01-parse/test/fail.yaml": `name: test/fail
grok:
  pattern: "^login failed from %{IP:source_ip}$"
  apply_on: Line.Raw
statics:
  - meta: source_ip
    expression: evt.Parsed.source_ip
  - meta: log_type
    value: test_fail
`,
		"scenarios/test/trigger.yaml": `type: trigger
name: test/trigger
filter: "evt.Meta.log_type == 'test_fail'"
groupby: evt.Meta.source_ip
blackhole: 1m
labels:
  remediation: true
`,
		"postoverflows/s01-whitelist/test/po-whitelist.yaml": `name: test/po-whitelist
whitelist:
  reason: trusted
  expression:
    - evt.Overflow.Alert.Source.IP == '10.9.9.9'
`,
		"collections/test/col.yaml": "name: test/col\nscenarios: [test/trigger]\n",
		".tests/po/config.yaml": `parsers:
- test/fail
scenarios:
- ""
collections:
- test/col
postoverflows:
- ./postoverflows/s01-whitelist/test/po-whitelist.yaml
log_file: po.log
log_type: test
ignore_parsers: true
`,
		".tests/po/po.log": "login failed from 10.9.9.9\nlogin failed from 198.51.100.1\n",
		".tests/po/scenario.assert": `len(results) == 2
"198.51.100.1" in results[0].Overflow.GetSources()
results[0].Overflow.Whitelisted == false
"10.9.9.9" in results[1].Overflow.GetSources()
results[1].Overflow.Whitelisted == true
results[1].WhitelistReason == "trusted"
`,
	})
	res := (&Runner{Hub: h}).Run("po")
	if !res.Passed || res.ScenarioChecks != 6 {
		t.Fatalf("%+v", res)
	}
}
