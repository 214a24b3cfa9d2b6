package cscli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/agent/hubtest"
	"github.com/rampart-ips/rampart/internal/testhub"
)

func runHubtestCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs(append([]string{"hubtest", "run"}, args...))
	err := root.Execute()
	return out.String(), err
}

func TestHubtestRun(t *testing.T) {
	hubDir := testhub.Dir(t)
	out, err := runHubtestCmd(t, "--hub", hubDir, "ssh-bf", "whitelists")
	if err != nil || !strings.Contains(out, "PASS  ssh-bf (") || !strings.Contains(out, "2 tests: 2 passed, 0 failed") {
		t.Errorf("%v\n%s", err, out)
	}
	out, err = runHubtestCmd(t, "--hub", hubDir, "no-such-test")
	if err == nil || !strings.Contains(out, "FAIL  no-such-test") {
		t.Errorf("missing test: %v\n%s", err, out)
	}
	if _, err := runHubtestCmd(t, "--hub", hubDir); err == nil {
		t.Error("no test named: no error")
	}
}

// hubtestFixture is a small hub: three parsers (one with a GeoIP
// enricher), two scenarios, a collection, and tests that cover part of
// it, one failing 25 assertions and one needing GeoIP.
func hubtestFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var fail25 strings.Builder
	for i := range 25 {
		fmt.Fprintf(&fail25, "len(results) == %d\n", 100+i)
	}
	files := map[string]string{
		"index.json": `{"parsers": {
			"test/a": {"path": "parsers/s01-parse/test/a.yaml", "stage": "s01-parse"},
			"test/b": {"path": "parsers/s01-parse/test/b.yaml", "stage": "s01-parse"},
			"test/geo": {"path": "parsers/s02-enrich/test/geo.yaml", "stage": "s02-enrich"}},
			"scenarios": {
			"test/s1": {"path": "scenarios/test/s1.yaml"},
			"test/s2": {"path": "scenarios/test/s2.yaml"}},
			"collections": {"test/col": {"path": "collections/test/col.yaml", "parsers": ["test/b"], "scenarios": ["test/s1"]}}}`,
		"parsers/s01-parse/test/a.yaml":    "name: test/a\nfilter: \"true\"\nonsuccess: next_stage\n",
		"parsers/s01-parse/test/b.yaml":    "name: test/b\nfilter: \"false\"\n",
		"parsers/s02-enrich/test/geo.yaml": "name: test/geo\nfilter: \"true\"\nstatics:\n  - method: GeoIpASN\n    value: 192.0.2.1\n",
		"scenarios/test/s1.yaml":           "type: trigger\nname: test/s1\nfilter: \"false\"\ngroupby: evt.Meta.source_ip\n",
		"scenarios/test/s2.yaml":           "type: trigger\nname: test/s2\nfilter: \"false\"\ngroupby: evt.Meta.source_ip\n",
		"collections/test/col.yaml":        "name: test/col\nparsers: [test/b]\nscenarios: [test/s1]\n",
		".tests/one/config.yaml":           "parsers:\n- test/a\nlog_file: x.log\nlog_type: x\n",
		".tests/one/x.log":                 "hello\n",
		".tests/one/parser.assert":         "len(results[\"s01-parse\"][\"test/a\"]) == 1\n",
		".tests/two/config.yaml":           "collections:\n- test/col\nlog_file: x.log\nlog_type: x\nignore_parsers: true\n",
		".tests/two/x.log":                 "hello\n",
		".tests/two/scenario.assert":       "len(results) == 0\n",
		".tests/three/config.yaml":         "parsers:\n- test/a\nscenarios:\n- ./scenarios/test/s1.yaml\nlog_file: x.log\nlog_type: x\nignore_parsers: true\n",
		".tests/three/x.log":               "hello\n",
		".tests/three/scenario.assert":     "len(results) == 0\n",
		".tests/fail25/config.yaml":        "parsers:\n- test/a\nlog_file: x.log\nlog_type: x\n",
		".tests/fail25/x.log":              "hello\n",
		".tests/fail25/parser.assert":      fail25.String(),
		".tests/geo/config.yaml":           "parsers:\n- test/a\n- test/geo\nlog_file: x.log\nlog_type: x\n",
		".tests/geo/x.log":                 "hello\n",
		".tests/geo/parser.assert":         "len(results) == 3\n",
	}
	testhub.WriteTree(t, dir, files)
	return dir
}

// TestHubtestRunReport: every failed assertion is listed (20 in human
// output, all in json), a test needing absent GeoIP databases is skipped
// without failing the command, and the order of the output does not
// depend on --parallel.
func TestHubtestRunReport(t *testing.T) {
	dir := hubtestFixture(t)
	out, err := runHubtestCmd(t, "--hub", dir, "one", "geo", "--parallel", "2")
	if err != nil || !strings.Contains(out, "SKIP  geo: needs GeoLite2 databases (GeoLite2-City.mmdb / GeoLite2-ASN.mmdb), none found in "+filepath.Join(dir, "data")) ||
		!strings.Contains(out, "2 tests: 1 passed, 0 failed, 1 skipped") {
		t.Errorf("skip: %v\n%s", err, out)
	}
	out, err = runHubtestCmd(t, "--hub", dir, "fail25")
	if err == nil || !strings.Contains(out, "FAIL  fail25: 25 assertions failed") ||
		!strings.Contains(out, "parser.assert:20: len(results) == 119: false (left side is 2)") ||
		strings.Contains(out, "parser.assert:21:") || !strings.Contains(out, "... and 5 more") {
		t.Errorf("failures: %v\n%s", err, out)
	}
	var lines []string
	for _, p := range []string{"1", "4"} {
		out, err := runHubtestCmd(t, "--hub", dir, "--all", "--parallel", p)
		if err == nil {
			t.Errorf("--all with a failing test: no error")
		}
		lines = append(lines, out)
	}
	if lines[0] != lines[1] {
		t.Errorf("output depends on --parallel:\n%s\n---\n%s", lines[0], lines[1])
	}
	if _, err := runHubtestCmd(t, "--hub", dir, "one", "--parallel", "0"); err == nil {
		t.Error("--parallel 0: no error")
	}
	out, err = runHubtestCmd(t, "--hub", dir, "fail25", "geo", "-o", "json")
	var res []hubtest.Result
	if jerr := json.Unmarshal([]byte(out), &res); err == nil || jerr != nil || len(res) != 2 {
		t.Fatalf("json: %v %v\n%s", err, jerr, out)
	}
	if len(res[0].Failures) != 25 || res[0].Failures[24].Line != 25 || res[0].Failures[24].Left != "2" || res[1].Skipped == "" {
		t.Errorf("json: %+v", res)
	}
}

// TestHubtestKnownFailures: a listed test that fails is an XFAIL and
// does not fail the run; a listed test that passes fails it, so the list
// cannot go stale; an entry without a reason is refused.
func TestHubtestKnownFailures(t *testing.T) {
	dir := hubtestFixture(t)
	list := filepath.Join(t.TempDir(), "known")
	write := func(body string) {
		if err := os.WriteFile(list, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# comment\n\nfail25 asserts written for another engine\n")
	out, err := runHubtestCmd(t, "--hub", dir, "one", "fail25", "--known-failures", list)
	if err != nil || !strings.Contains(out, "XFAIL fail25: known failure: asserts written for another engine") ||
		!strings.Contains(out, "2 tests: 1 passed, 0 failed, 0 skipped, 1 known failures") {
		t.Errorf("xfail: %v\n%s", err, out)
	}
	write("one no longer fails\n")
	if _, err := runHubtestCmd(t, "--hub", dir, "one", "--known-failures", list); err == nil || !strings.Contains(err.Error(), "passed") {
		t.Errorf("a listed test that passed: %v", err)
	}
	write("fail25\n")
	if _, err := runHubtestCmd(t, "--hub", dir, "one", "--known-failures", list); err == nil || !strings.Contains(err.Error(), "gives no reason") {
		t.Errorf("an entry without a reason: %v", err)
	}
}

// TestHubtestCoverage: an item is covered when a test's config.yaml
// loads it, by name, by path or through a collection.
func TestHubtestCoverage(t *testing.T) {
	dir := hubtestFixture(t)
	root := NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"hubtest", "coverage", "--hub", dir})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"parsers coverage: 3/3 (100%)", "scenarios coverage: 1/2 (50%)", "test/s2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
	root = NewRootCommand()
	out.Reset()
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"hubtest", "coverage", "--hub", dir, "--scenarios", "-o", "json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var got map[string]struct {
		Percent float64
		Items   []hubtest.ItemCoverage
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	sc, ok := got["scenarios"]
	if _, hasParsers := got["parsers"]; hasParsers || !ok || sc.Percent != 50 || len(sc.Items) != 2 ||
		!slices.Equal(sc.Items[0].Tests, []string{"three", "two"}) || len(sc.Items[1].Tests) != 0 {
		t.Errorf("%+v", got)
	}
}
