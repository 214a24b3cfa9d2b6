// Package hubtest runs the hub's .tests cases the way upstream's cscli
// hubtest does: load the listed rules from a hub folder, replay the log
// file, and check each line of parser.assert and scenario.assert as an
// expr-lang boolean over the results. It never contacts the network.
package hubtest

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/expr-lang/expr"
	"gopkg.in/yaml.v3"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/parser"
	"github.com/rampart-ips/rampart/agent/ruleset"
)

// Config is a test's config.yaml.
type Config struct {
	Parsers         []string          `yaml:"parsers"`
	Scenarios       []string          `yaml:"scenarios"`
	PostOverflows   []string          `yaml:"postoverflows"`
	Collections     []string          `yaml:"collections"`
	LogFile         string            `yaml:"log_file"`
	LogType         string            `yaml:"log_type"`
	Labels          map[string]string `yaml:"labels"`
	IgnoreParsers   bool              `yaml:"ignore_parsers"`
	OverrideStatics []parser.Static   `yaml:"override_statics"`
	OwnDataDir      bool              `yaml:"own_data_dir"`
	NucleiTemplate  string            `yaml:"nuclei_template"`
	ExpectFailure   bool              `yaml:"expect_failure"`
	AppsecRules     []string          `yaml:"appsec-rules"`
}

// ParserResult is one node evaluation of one line, as upstream dumps it.
type ParserResult struct {
	Idx     int
	Evt     event.Event
	Success bool
}

// Result is the outcome of one test.
type Result struct {
	Name           string
	Passed         bool
	Skipped        string // why the test was not run, when it was not
	Failure        string // the first failing assertion and why
	ParserChecks   int
	ScenarioChecks int
}

// overflowKey is upstream's sort key: scenario + sources joined by "@".
func overflowKey(e event.Event) string {
	srcs := make([]string, 0, len(e.Overflow.Sources))
	for k := range e.Overflow.Sources {
		srcs = append(srcs, k)
	}
	sort.Strings(srcs)
	sc := ""
	if e.Overflow.Alert != nil {
		sc = e.Overflow.Alert.Scenario
	}
	return sc + strings.Join(srcs, "@")
}

// Runner runs tests from one hub folder.
type Runner struct {
	Hub *hub.Hub
}

func nonEmpty(in []string) []string {
	var out []string
	for _, s := range in {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}

// Run runs the test in DIR/.tests/NAME.
func (r *Runner) Run(name string) Result {
	res := Result{Name: name}
	dir := filepath.Join(r.Hub.Dir, ".tests", name)
	data, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		res.Failure = err.Error()
		return res
	}
	var cfg Config
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		res.Failure = fmt.Sprintf("config.yaml: %v", err)
		return res
	}
	rs, err := ruleset.Load(r.Hub, ruleset.Spec{
		Collections:   nonEmpty(cfg.Collections),
		Parsers:       nonEmpty(cfg.Parsers),
		Scenarios:     nonEmpty(cfg.Scenarios),
		PostOverflows: nonEmpty(cfg.PostOverflows),
	})
	if err != nil {
		res.Failure = err.Error()
		return res
	}
	defer rs.Close()
	pipe := rs.Parsers
	engine := rs.NewEngine(true)
	var overflows []event.Event
	// upstream's dump keeps a "success" stage that hub tests always see
	// empty
	results := map[string]map[string][]ParserResult{"success": {}}
	for _, st := range pipe.Stages() {
		results[st] = map[string][]ParserResult{}
	}
	logPath, _ := filepath.Abs(filepath.Join(dir, cfg.LogFile))
	f, err := os.Open(logPath)
	if err != nil {
		res.Failure = err.Error()
		return res
	}
	defer f.Close()
	labels := map[string]string{"type": cfg.LogType}
	maps.Copy(labels, cfg.Labels)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	idx := map[string]int{}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		evt := event.New(event.Line{Raw: line, Src: logPath, Module: "file", Labels: labels})
		for _, s := range cfg.OverrideStatics {
			applyOverride(&evt, s)
		}
		err := pipe.Parse(&evt, func(stage, name string, e *event.Event, ok bool) {
			key := stage + "/" + name
			if _, seen := idx[key]; !seen {
				idx[key] = len(results[stage])
			}
			results[stage][name] = append(results[stage][name], ParserResult{Idx: idx[key], Evt: copyEvent(e), Success: ok})
		})
		if err != nil {
			res.Failure = err.Error()
			return res
		}
		if !evt.Process || evt.Whitelisted {
			continue
		}
		for _, ov := range engine.Pour(&evt) {
			// Upstream dumps overflows after the postoverflows ran and
			// before it drops whitelisted ones, so a test sees those too
			// (with Overflow.Whitelisted set).
			if _, err := rs.PostOverflow(&ov); err != nil {
				res.Failure = err.Error()
				return res
			}
			overflows = append(overflows, ov)
		}
	}
	if err := sc.Err(); err != nil {
		res.Failure = err.Error()
		return res
	}
	if !cfg.IgnoreParsers {
		n, fail := checkAsserts(filepath.Join(dir, "parser.assert"), map[string]any{"results": results})
		res.ParserChecks = n
		if fail != "" {
			res.Failure = fail
			return res
		}
	}
	if len(rs.Items.Scenarios) > 0 {
		sort.SliceStable(overflows, func(i, j int) bool { return overflowKey(overflows[i]) > overflowKey(overflows[j]) })
		n, fail := checkAsserts(filepath.Join(dir, "scenario.assert"), map[string]any{"results": overflows})
		res.ScenarioChecks = n
		if fail != "" {
			res.Failure = fail
			return res
		}
	}
	res.Passed = true
	return res
}

func applyOverride(evt *event.Event, s parser.Static) {
	switch {
	case s.Parsed != "":
		evt.Parsed[s.Parsed] = s.Value
	case s.Meta != "":
		evt.Meta[s.Meta] = s.Value
	case s.Enriched != "":
		evt.Enriched[s.Enriched] = s.Value
	}
}

func copyEvent(e *event.Event) event.Event {
	c := *e
	c.Parsed = maps.Clone(e.Parsed)
	c.Meta = maps.Clone(e.Meta)
	c.Enriched = maps.Clone(e.Enriched)
	return c
}

// checkAsserts evaluates each non-empty line of an assert file; it returns
// how many held and the first failure.
func checkAsserts(path string, env map[string]any) (int, string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err.Error()
	}
	env["basename"] = filepath.Base
	n := 0
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		line = basenameShim(line)
		out, err := expr.Eval(line, env)
		if err != nil {
			return n, fmt.Sprintf("%s:%d: %s: %v", filepath.Base(path), i+1, line, err)
		}
		if b, ok := out.(bool); !ok || !b {
			return n, fmt.Sprintf("%s:%d: %s: false", filepath.Base(path), i+1, line)
		}
		n++
	}
	return n, ""
}

var dsPath = regexp.MustCompile(`^(results\S*?(?:\["datasource_path"\]|GetMeta\("datasource_path"\)))\s*==`)

// basenameShim wraps a datasource_path comparison in basename(), as
// upstream's hubtest does: the log file's folder differs per machine.
func basenameShim(line string) string {
	if strings.HasPrefix(line, "basename(") {
		return line
	}
	return dsPath.ReplaceAllString(line, "basename($1) ==")
}
