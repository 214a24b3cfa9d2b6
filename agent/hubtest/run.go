// Package hubtest runs the hub's .tests cases the way upstream's cscli
// hubtest does: load the listed rules from a hub folder, replay the log
// file, and check each line of parser.assert and scenario.assert as an
// expr-lang boolean over the results. It never contacts the network.
package hubtest

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	exprparser "github.com/expr-lang/expr/parser"
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
	Name    string `json:"name"`
	Passed  bool   `json:"passed"`
	Skipped string `json:"skipped,omitempty"` // why the test was not run, when it was not
	// Error is why the test could not run to its assertions (a rule that
	// does not load, a missing log file): nothing was asserted.
	Error string `json:"error,omitempty"`
	// Failures are every assertion that did not hold, in file order.
	Failures       []Failure `json:"failures,omitempty"`
	ParserChecks   int       `json:"parser_checks"`   // assertions that held
	ScenarioChecks int       `json:"scenario_checks"` // assertions that held
}

// Failed reports whether the test ran and failed, or could not run.
func (r Result) Failed() bool { return r.Error != "" || len(r.Failures) > 0 }

// Failure is one assertion that did not hold.
type Failure struct {
	File string `json:"file"` // parser.assert or scenario.assert
	Line int    `json:"line"`
	Expr string `json:"expression"`
	// Left is the value of the left side of a false comparison ("X" of
	// "X == Y" or "X in Y"); "" for other expressions.
	Left string `json:"left,omitempty"`
	// Err is the error compiling or running the expression.
	Err string `json:"error,omitempty"`
}

func (f Failure) String() string {
	switch {
	case f.Err != "":
		return fmt.Sprintf("%s:%d: %s: %s", f.File, f.Line, f.Expr, f.Err)
	case f.Left != "":
		return fmt.Sprintf("%s:%d: %s: false (left side is %s)", f.File, f.Line, f.Expr, f.Left)
	}
	return fmt.Sprintf("%s:%d: %s: false", f.File, f.Line, f.Expr)
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
		res.Error = err.Error()
		return res
	}
	var cfg Config
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		res.Error = fmt.Sprintf("config.yaml: %v", err)
		return res
	}
	rs, err := ruleset.Load(r.Hub, ruleset.Spec{
		Collections:   nonEmpty(cfg.Collections),
		Parsers:       nonEmpty(cfg.Parsers),
		Scenarios:     nonEmpty(cfg.Scenarios),
		PostOverflows: nonEmpty(cfg.PostOverflows),
	})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer rs.Close()
	if why := missingGeoIP(rs); why != "" {
		res.Skipped = why
		return res
	}
	if err := addOverrides(rs.Parsers, cfg.OverrideStatics); err != nil {
		res.Error = err.Error()
		return res
	}
	results, overflows, err := replay(rs, dir, cfg)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	if !cfg.IgnoreParsers {
		n, fails, err := checkAsserts(rs, filepath.Join(dir, "parser.assert"), map[string]any{"results": results})
		if err != nil {
			res.Error = err.Error()
			return res
		}
		res.ParserChecks = n
		res.Failures = append(res.Failures, fails...)
	}
	if len(rs.Items.Scenarios) > 0 {
		// not stable, as upstream's sort.Sort: overflows with equal keys come
		// out in the order its asserts were written from (authelia-bf)
		sort.Slice(overflows, func(i, j int) bool { return overflowKey(overflows[i]) > overflowKey(overflows[j]) })
		n, fails, err := checkAsserts(rs, filepath.Join(dir, "scenario.assert"), map[string]any{"results": overflows})
		if err != nil {
			res.Error = err.Error()
			return res
		}
		res.ScenarioChecks = n
		res.Failures = append(res.Failures, fails...)
	}
	res.Passed = len(res.Failures) == 0
	if !res.Passed && rs.Helpers.GeoIPMissed() {
		// an expression called a GeoIP helper without its database: the
		// difference may be the missing database, not the rules
		res.Skipped = fmt.Sprintf("needs GeoLite2 databases (%s / %s): a GeoIP expr helper ran without them (%s)", parser.CityDB, parser.ASNDB, rs.Helpers.DataDir())
		res.Failures = nil
	}
	return res
}

// replay parses the test's log file and pours it into the scenarios: the
// parser results by stage and node, and the overflows, as upstream dumps
// them.
func replay(rs *ruleset.Ruleset, dir string, cfg Config) (map[string]map[string][]ParserResult, []event.Event, error) {
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
		return nil, nil, err
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
		err := pipe.Parse(&evt, func(stage, name string, e *event.Event, ok bool) {
			key := stage + "/" + name
			if _, seen := idx[key]; !seen {
				idx[key] = len(results[stage])
			}
			results[stage][name] = append(results[stage][name], ParserResult{Idx: idx[key], Evt: copyEvent(e), Success: ok})
		})
		if err != nil {
			return nil, nil, err
		}
		if !evt.Process || evt.Whitelisted {
			continue
		}
		for _, ov := range engine.Pour(&evt) {
			// Upstream dumps overflows after the postoverflows ran and
			// before it drops whitelisted ones, so a test sees those too
			// (with Overflow.Whitelisted set).
			if _, err := rs.PostOverflow(&ov); err != nil {
				return nil, nil, err
			}
			overflows = append(overflows, ov)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", logPath, err)
	}
	return results, overflows, nil
}

// addOverrides adds the test's override_statics as upstream's hubtest
// does: an "overrides" parser first in s00-raw that matches every line,
// so its statics take any target a parser's statics take, and the node
// shows in the results under that name.
func addOverrides(p *parser.Pipeline, statics []parser.Static) error {
	if len(statics) == 0 {
		return nil
	}
	data, err := yaml.Marshal(parser.NodeConfig{Name: "overrides", Filter: "1==1", Statics: statics})
	if err != nil {
		return fmt.Errorf("override_statics: %w", err)
	}
	it := parser.Item{Name: "overrides", Stage: "s00-raw", Path: filepath.Join("parsers", "s00-raw", "00_overrides.yaml")}
	if err := p.LoadData(it, data); err != nil {
		return fmt.Errorf("override_statics: %w", err)
	}
	return nil
}

// missingGeoIP says why the test cannot run when its rules call the
// GeoIP enrichers and the hub's data folder lacks a database they read
// (the hub does not ship them: upstream downloads them); "" otherwise.
func missingGeoIP(rs *ruleset.Ruleset) string {
	uses := func(methods ...string) bool {
		return rs.Parsers.UsesMethod(methods...) || rs.PostOverflows.UsesMethod(methods...)
	}
	var need []string
	if uses("GeoIpCity") {
		need = append(need, parser.CityDB)
	}
	if uses("GeoIpASN", "IpToRange") {
		need = append(need, parser.ASNDB)
	}
	dataDir := rs.Helpers.DataDir()
	var missing []string
	for _, db := range need {
		if _, err := os.Stat(filepath.Join(dataDir, db)); err != nil {
			missing = append(missing, db)
		}
	}
	switch {
	case len(missing) == 0:
		return ""
	case len(missing) == len(need):
		return fmt.Sprintf("needs GeoLite2 databases (%s / %s), none found in %s", parser.CityDB, parser.ASNDB, dataDir)
	}
	return fmt.Sprintf("needs GeoLite2 database %s, not found in %s", strings.Join(missing, ", "), dataDir)
}

func copyEvent(e *event.Event) event.Event {
	c := *e
	c.Parsed = maps.Clone(e.Parsed)
	c.Meta = maps.Clone(e.Meta)
	c.Enriched = maps.Clone(e.Enriched)
	return c
}

// checkAsserts evaluates each non-empty line of an assert file with the
// expr helpers the rules use; it returns how many held and every one
// that did not. Only an unreadable file is an error.
func checkAsserts(rs *ruleset.Ruleset, path string, env map[string]any) (int, []Failure, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	env["basename"] = filepath.Base
	opts := append([]expr.Option{expr.Env(env)}, rs.Helpers.Options()...)
	n := 0
	var fails []Failure
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		line = basenameShim(line)
		fail := Failure{File: filepath.Base(path), Line: i + 1, Expr: line}
		out, err := eval(line, env, opts)
		if err != nil {
			fail.Err = err.Error()
			fails = append(fails, fail)
			continue
		}
		if b, ok := out.(bool); ok && b {
			n++
			continue
		}
		if _, ok := out.(bool); !ok {
			fail.Err = fmt.Sprintf("not a boolean: %s", show(out))
		} else {
			fail.Left = leftSide(line, env, opts)
		}
		fails = append(fails, fail)
	}
	return n, fails, nil
}

func eval(src string, env map[string]any, opts []expr.Option) (any, error) {
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, err
	}
	return expr.Run(prog, env)
}

// leftSide is the value of the left operand of a false comparison, as
// upstream's hubtest prints it, so a failure shows what the rules gave;
// "" when the expression is no comparison.
func leftSide(src string, env map[string]any, opts []expr.Option) string {
	tree, err := exprparser.Parse(src)
	if err != nil {
		return ""
	}
	b, ok := tree.Node.(*ast.BinaryNode)
	if !ok {
		return ""
	}
	switch b.Operator {
	case "==", "!=", "in", "not in", "<", "<=", ">", ">=", "contains", "startsWith", "endsWith", "matches":
	default:
		return ""
	}
	out, err := eval(b.Left.String(), env, opts)
	if err != nil {
		return "error: " + err.Error()
	}
	return show(out)
}

// maxShown bounds a value printed in a failure: a whole event is no help.
const maxShown = 300

func show(v any) string {
	var s string
	if str, ok := v.(string); ok {
		s = strconv.Quote(str)
	} else {
		s = fmt.Sprintf("%v", v)
	}
	if len(s) > maxShown {
		s = s[:maxShown] + "..."
	}
	return s
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

// RunAll runs the named tests, up to parallel at a time (at least one),
// and hands each result to report in the order of names as soon as it and
// those before it are done, so the output reads the same whatever the
// parallelism. A test not started when ctx ends reports ctx's error.
func (r *Runner) RunAll(ctx context.Context, names []string, parallel int, report func(Result)) {
	parallel = max(1, min(parallel, len(names)))
	results := make([]Result, len(names))
	done := make([]chan struct{}, len(names))
	for i := range done {
		done[i] = make(chan struct{})
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range next {
				if err := ctx.Err(); err != nil {
					results[i] = Result{Name: names[i], Error: err.Error()}
				} else {
					results[i] = r.Run(names[i])
				}
				close(done[i])
			}
		})
	}
	go func() {
		for i := range names {
			next <- i
		}
		close(next)
	}()
	for i := range names {
		<-done[i]
		report(results[i])
	}
	wg.Wait()
}
