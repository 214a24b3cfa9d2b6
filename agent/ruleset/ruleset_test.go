package ruleset_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/leakybucket"
	"github.com/rampart-ips/rampart/agent/parser"
	"github.com/rampart-ips/rampart/agent/ruleset"
	"github.com/rampart-ips/rampart/internal/loggen"
	"github.com/rampart-ips/rampart/internal/testhub"
	"github.com/rampart-ips/rampart/models"
)

func sharedHub(t *testing.T) *hub.Hub {
	t.Helper()
	h, err := hub.OpenHub(testhub.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestLoadAllCollections loads every collection of the shared hub together
// with the base parsers, then replays generated sshd and nginx logs: both
// must parse and raise alerts.
func TestLoadAllCollections(t *testing.T) {
	h := sharedHub(t)
	var cols []string
	for _, c := range h.Items("collections") {
		if strings.HasPrefix(c, "crowdsecurity/") {
			cols = append(cols, c)
		}
	}
	var base []string
	for _, p := range []string{"crowdsecurity/syslog-logs", "crowdsecurity/dateparse-enrich", "crowdsecurity/whitelists"} {
		if _, ok := h.Item("parsers", p); ok {
			base = append(base, p)
		}
	}
	rs, err := ruleset.Load(h, ruleset.Spec{Collections: cols, Parsers: base})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for _, want := range []string{"crowdsecurity/sshd", "crowdsecurity/nginx", "crowdsecurity/base-http-scenarios", "crowdsecurity/http-cve"} {
		if !slices.Contains(rs.Items.Collections, want) {
			t.Errorf("collection %s not resolved: %v", want, rs.Items.Collections)
		}
	}
	for _, want := range []string{"crowdsecurity/bf_base", "crowdsecurity/http_base"} {
		if !slices.Contains(rs.Items.Contexts, want) {
			t.Errorf("context %s not recorded: %v", want, rs.Items.Contexts)
		}
	}
	if got, want := len(rs.Parsers.Items()), len(base)+4; got != want {
		t.Errorf("%d parsers loaded, want %d: %v", got, want, rs.Parsers.Items())
	}
	if len(rs.Items.Scenarios) < 50 || len(rs.Scenarios) < len(rs.Items.Scenarios) {
		t.Errorf("%d scenario items, %d scenarios", len(rs.Items.Scenarios), len(rs.Scenarios))
	}
	for _, k := range []string{"target_user", "target_uri", "user_agent", "status"} {
		if len(rs.Contexts[k]) == 0 {
			t.Errorf("built-in alert context %q not loaded: %v", k, rs.Contexts)
		}
	}
	// keys seen in alert meta, per log type
	ctxKeys := map[string]map[string]bool{"syslog": {}, "nginx": {}}
	engine := rs.NewEngine(true)
	for _, c := range []struct {
		typ string
		gen func(*bytes.Buffer) error
	}{
		{"syslog", func(b *bytes.Buffer) error { _, err := loggen.SSHDCount(b, 3000, 1); return err }},
		{"nginx", func(b *bytes.Buffer) error { _, err := loggen.NginxCount(b, 3000, 1); return err }},
	} {
		var buf bytes.Buffer
		if err := c.gen(&buf); err != nil {
			t.Fatal(err)
		}
		parsed, alerts := 0, map[string]int{}
		sc := bufio.NewScanner(&buf)
		for sc.Scan() {
			evt := event.New(event.Line{Raw: sc.Text(), Src: "/var/log/test.log", Module: "file", Labels: map[string]string{"type": c.typ}})
			if err := rs.Parse(&evt, nil); err != nil {
				t.Fatal(err)
			}
			if !evt.Process || evt.Whitelisted {
				continue
			}
			parsed++
			for _, ov := range engine.Pour(&evt) {
				if keep, err := rs.PostOverflow(&ov); err != nil || !keep {
					t.Fatalf("postoverflow: keep %v, %v", keep, err)
				}
				alerts[ov.GetScenario()]++
				for _, m := range ov.Overflow.Alert.Meta {
					var vals []string
					if err := json.Unmarshal([]byte(m.Value), &vals); err != nil || len(vals) == 0 {
						t.Errorf("alert context %s = %q: not a JSON list of values (%v)", m.Key, m.Value, err)
					}
					ctxKeys[c.typ][m.Key] = true
				}
			}
		}
		if parsed < 300 || len(alerts) == 0 {
			t.Errorf("%s: %d lines parsed, alerts %v", c.typ, parsed, alerts)
		}
		t.Logf("%s: %d parsed, alerts %v, context keys %v", c.typ, parsed, alerts, ctxKeys[c.typ])
	}
	if !ctxKeys["syslog"]["target_user"] || !ctxKeys["nginx"]["target_uri"] || !ctxKeys["nginx"]["user_agent"] {
		t.Errorf("alerts lack their context: %v", ctxKeys)
	}
}

// testHub writes a hub folder: index.json plus the given files.
func testHub(t *testing.T, index map[string]map[string]map[string]any, files map[string]string) *hub.Hub {
	t.Helper()
	dir := testhub.WriteHub(t, index, files)
	h, err := hub.OpenHub(dir)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

const goodParser = `name: test/good
filter: "evt.Line.Labels.type == 'test'"
onsuccess: next_stage
grok:
  pattern: "^login failed from %{IP:source_ip}$"
  apply_on: Line.Raw
statics:
  - meta: source_ip
    expression: evt.Parsed.source_ip
  - meta: log_type
    value: test_fail
`

const brokenParser = `name: test/broken
filter: "evt.Line.Labels.type == 'test'"
statics:
  - meta: x
    expression: "evt.Parsed.y +"
`

const goodScenario = `type: trigger
name: test/trigger
filter: "evt.Meta.log_type == 'test_fail'"
groupby: evt.Meta.source_ip
blackhole: 1m
labels:
  remediation: true
`

const brokenScenario = `type: leaky
name: test/broken-scenario
filter: "evt.Meta.log_type =="
capacity: 1
leakspeed: 10s
`

const poWhitelist = `name: test/po-whitelist
description: whitelist overflows from a trusted source
whitelist:
  reason: trusted scanner
  ip:
    - 10.9.9.9
  expression:
    - evt.Overflow.Alert.Source.IP == '203.0.113.7'
`

func brokenHub(t *testing.T) *hub.Hub {
	return testHub(t, map[string]map[string]map[string]any{
		"parsers": {
			"test/good":   {"path": "parsers/s01-parse/test/good.yaml", "stage": "s01-parse"},
			"test/broken": {"path": "parsers/s01-parse/test/broken.yaml", "stage": "s01-parse"},
		},
		"scenarios": {
			"test/trigger":         {"path": "scenarios/test/trigger.yaml"},
			"test/broken-scenario": {"path": "scenarios/test/broken-scenario.yaml"},
		},
		"postoverflows": {
			"test/po-whitelist": {"path": "postoverflows/s01-whitelist/test/po-whitelist.yaml", "stage": "s01-whitelist"},
		},
		"collections": {
			"test/all":   {"path": "collections/test/all.yaml", "parsers": []string{"test/good", "test/broken"}, "collections": []string{"test/inner"}},
			"test/inner": {"path": "collections/test/inner.yaml", "scenarios": []string{"test/trigger", "test/broken-scenario"}, "collections": []string{"test/all"}},
		},
	}, map[string]string{
		"parsers/s01-parse/test/good.yaml":                   goodParser,
		"parsers/s01-parse/test/broken.yaml":                 brokenParser,
		"scenarios/test/trigger.yaml":                        goodScenario,
		"scenarios/test/broken-scenario.yaml":                brokenScenario,
		"postoverflows/s01-whitelist/test/po-whitelist.yaml": poWhitelist,
		"collections/test/all.yaml":                          "name: test/all\nparsers: [test/good, test/broken]\ncollections: [test/inner]\ncontexts: [test/ctx]\n",
		"collections/test/inner.yaml":                        "name: test/inner\nscenarios: [test/trigger, test/broken-scenario]\ncollections: [test/all]\n",
	})
}

func TestPolicy(t *testing.T) {
	h := brokenHub(t)
	// FailFast: the first broken item (parsers load before scenarios) is
	// the error, with its file, item and position.
	_, err := ruleset.Load(h, ruleset.Spec{Collections: []string{"test/all"}})
	var ie *ruleset.ItemError
	if !errors.As(err, &ie) || ie.Kind != "parsers" || ie.Name != "test/broken" || !strings.HasSuffix(ie.File, "broken.yaml") {
		t.Fatalf("FailFast: %v", err)
	}
	var le *parser.LoadError
	if !errors.As(err, &le) || le.Line != 5 || le.Key != "statics[0].expression" {
		t.Errorf("FailFast: no position: %#v", le)
	}
	t.Log(err)

	// SkipBroken: the rest loads; both broken items are reported.
	rs, err := ruleset.Load(h, ruleset.Spec{Collections: []string{"test/all"}, Policy: ruleset.SkipBroken})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if len(rs.Skipped) != 2 {
		t.Fatalf("skipped %v", rs.Err())
	}
	if rs.Skipped[0].Name != "test/broken" || rs.Skipped[1].Name != "test/broken-scenario" {
		t.Errorf("skipped %v", rs.Err())
	}
	var sle *leakybucket.LoadError
	if !errors.As(rs.Skipped[1], &sle) || !strings.Contains(rs.Skipped[1].Error(), "broken-scenario.yaml") {
		t.Errorf("scenario error: %v", rs.Skipped[1])
	}
	if got := rs.Parsers.Items(); len(got) != 1 || got[0].Name != "test/good" {
		t.Errorf("parsers %v", got)
	}
	if len(rs.Scenarios) != 1 || rs.Scenarios[0].Name() != "test/trigger" {
		t.Errorf("%d scenarios", len(rs.Scenarios))
	}
	if !slices.Equal(rs.Items.Collections, []string{"test/all", "test/inner"}) || !slices.Equal(rs.Items.Contexts, []string{"test/ctx"}) {
		t.Errorf("items %+v", rs.Items)
	}

	// Items that do not exist are item errors too.
	for _, spec := range []ruleset.Spec{
		{Collections: []string{"test/nope"}},
		{Parsers: []string{"test/nope"}},
		{Scenarios: []string{"./scenarios/nope.yaml"}},
		{PostOverflows: []string{"test/nope"}},
	} {
		if _, err := ruleset.Load(h, spec); !errors.As(err, &ie) {
			t.Errorf("%+v: %v", spec, err)
		}
		spec.Policy = ruleset.SkipBroken
		rs, err := ruleset.Load(h, spec)
		if err != nil || len(rs.Skipped) != 1 {
			t.Errorf("%+v skip: %v", spec, err)
		}
	}
}

func overflow(ip string) event.Event {
	return event.Event{
		Type: event.OVFLW,
		Overflow: event.RuntimeAlert{
			Sources: map[string]models.Source{ip: {IP: ip, Scope: "Ip", Value: ip}},
			Alert:   &models.Alert{Scenario: "test/trigger", Source: &models.Source{IP: ip, Scope: "Ip", Value: ip}},
		},
	}
}

func TestPostOverflowWhitelist(t *testing.T) {
	h := brokenHub(t)
	rs, err := ruleset.Load(h, ruleset.Spec{Parsers: []string{"test/good"}, Scenarios: []string{"test/trigger"}, PostOverflows: []string{"test/po-whitelist"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if !rs.HasPostOverflows() {
		t.Fatal("no postoverflow loaded")
	}
	for ip, want := range map[string]bool{"10.9.9.9": false, "203.0.113.7": false, "198.51.100.1": true} {
		evt := overflow(ip)
		keep, err := rs.PostOverflow(&evt)
		if err != nil || keep != want {
			t.Errorf("%s: keep %v (want %v), %v", ip, keep, want, err)
		}
		if !want && (!evt.Overflow.Whitelisted || evt.WhitelistReason != "trusted scanner") {
			t.Errorf("%s: whitelisted %v reason %q", ip, evt.Overflow.Whitelisted, evt.WhitelistReason)
		}
	}
	// end to end: parse, pour, postoverflow
	engine := rs.NewEngine(true)
	kept := map[string]bool{}
	for _, ip := range []string{"10.9.9.9", "198.51.100.1"} {
		evt := event.New(event.Line{Raw: "login failed from " + ip, Labels: map[string]string{"type": "test"}})
		if err := rs.Parse(&evt, nil); err != nil || !evt.Process {
			t.Fatalf("parse %s: %v %v", ip, evt.Process, err)
		}
		for _, ov := range engine.Pour(&evt) {
			keep, err := rs.PostOverflow(&ov)
			if err != nil {
				t.Fatal(err)
			}
			kept[ip] = keep
		}
	}
	if len(kept) != 2 || kept["10.9.9.9"] || !kept["198.51.100.1"] {
		t.Errorf("kept %v", kept)
	}

	// without postoverflows every overflow is kept
	rs2, err := ruleset.Load(h, ruleset.Spec{Parsers: []string{"test/good"}})
	if err != nil {
		t.Fatal(err)
	}
	evt := overflow("10.9.9.9")
	if keep, err := rs2.PostOverflow(&evt); !keep || err != nil || rs2.HasPostOverflows() {
		t.Errorf("no postoverflows: keep %v, %v", keep, err)
	}
}

// Simulating a hub item covers every scenario its file defines:
// crowdsecurity/ssh-bf's file also holds crowdsecurity/ssh-bf_user-enum.
func TestIsSimulatedByItem(t *testing.T) {
	h := sharedHub(t)
	rs, err := ruleset.Load(h, ruleset.Spec{Scenarios: []string{"crowdsecurity/ssh-bf", "crowdsecurity/ssh-slow-bf"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if rs.IsSimulated("crowdsecurity/ssh-bf") {
		t.Error("simulated without a simulation setting")
	}
	rs.Simulated = func(s string) bool { return s == "crowdsecurity/ssh-bf" }
	for name, want := range map[string]bool{"crowdsecurity/ssh-bf": true, "crowdsecurity/ssh-bf_user-enum": true,
		"crowdsecurity/ssh-slow-bf": false, "crowdsecurity/ssh-slow-bf_user-enum": false} {
		if got := rs.IsSimulated(name); got != want {
			t.Errorf("IsSimulated(%s) = %v, want %v", name, got, want)
		}
	}
	// a scenario named by its own name, not its item's, is simulated too
	rs.Simulated = func(s string) bool { return s == "crowdsecurity/ssh-slow-bf_user-enum" }
	if !rs.IsSimulated("crowdsecurity/ssh-slow-bf_user-enum") || rs.IsSimulated("crowdsecurity/ssh-slow-bf") {
		t.Error("a scenario simulated by its own name")
	}
}

// TestCorpusLoads loads every parser, scenario and postoverflow of the
// whole-hub corpus: none may be refused, so the load-time refusals of
// constructs Rampart does not implement (README, "Hub constructs Rampart
// refuses") cost no hub rule.
func TestCorpusLoads(t *testing.T) {
	h, err := hub.OpenHub(testhub.Corpus(t))
	if err != nil {
		t.Fatal(err)
	}
	spec := ruleset.Spec{Parsers: h.Items("parsers"), Scenarios: h.Items("scenarios"),
		PostOverflows: h.Items("postoverflows"), Policy: ruleset.SkipBroken}
	rs, err := ruleset.Load(h, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for _, s := range rs.Skipped {
		t.Errorf("refused: %v", s)
	}
	if len(spec.Parsers) == 0 || len(rs.Scenarios) < len(spec.Scenarios) {
		t.Errorf("loaded %d scenarios from %d items, %d parsers", len(rs.Scenarios), len(spec.Scenarios), len(spec.Parsers))
	}
	t.Logf("%d parsers, %d scenario items (%d scenarios), %d postoverflows", len(spec.Parsers), len(spec.Scenarios), len(rs.Scenarios), len(spec.PostOverflows))
}

// TestAppsecCollectionRefused: a collection listing AppSec rules loads
// neither partly nor silently: the error names its file, the list and its
// line, from a Spec and from a configuration folder alike.
func TestAppsecCollectionRefused(t *testing.T) {
	h := testHub(t, map[string]map[string]map[string]any{
		"parsers":     {"test/good": {"path": "parsers/s01-parse/test/good.yaml", "stage": "s01-parse"}},
		"collections": {"test/waf": {"path": "collections/test/waf.yaml", "parsers": []string{"test/good"}}},
	}, map[string]string{
		"parsers/s01-parse/test/good.yaml": goodParser,
		"collections/test/waf.yaml":        "name: test/waf\nparsers:\n  - test/good\nappsec-rules:\n  - test/vpatch\n",
	})
	_, err := ruleset.Load(h, ruleset.Spec{Collections: []string{"test/waf"}})
	var ie *ruleset.ItemError
	if !errors.As(err, &ie) || ie.Name != "test/waf" || !strings.HasSuffix(ie.File, "waf.yaml") {
		t.Fatalf("Spec: %v", err)
	}
	for _, want := range []string{"waf.yaml", "line 4", "appsec-rules", "not supported by Rampart"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Spec: message lacks %q: %v", want, err)
		}
	}

	conf := t.TempDir()
	_, err = ruleset.Load(h, ruleset.Spec{Enabled: h.Enabled(conf, []string{"test/waf"})})
	if err == nil || !strings.Contains(err.Error(), "line 4: appsec-rules") {
		t.Errorf("configuration folder: %v", err)
	}
}
