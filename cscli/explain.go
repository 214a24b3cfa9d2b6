package cscli

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	log "github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/leakybucket"
	"github.com/rampart-ips/rampart/agent/parser"
	"github.com/rampart-ips/rampart/agent/ruleset"
)

// explainOpts are cscli explain's flags.
type explainOpts struct {
	hubDir     string
	logLine    string
	file       string
	dsn        string
	logType    string
	labels     []string
	verbose    bool
	failures   bool
	onlyOK     bool
	parsers    []string
	scenarios  []string
	maxLineLen int
}

func newExplainCmd(cli *CLI) *cobra.Command {
	o := &explainOpts{}
	cmd := &cobra.Command{
		Use:   "explain",
		Short: "Explain how log lines go through the parsers and into the scenarios",
		Long: `Explain runs log lines through the parsers of a hub folder and shows, per
stage, which parser succeeded (🟢) or failed (🔴), what each one changed
(-v), whether the line was parsed, and which scenarios it was poured into.
By default every parser and scenario of the hub index is loaded.`,
		Example: `cscli explain --hub ../shared/hub --type syslog --log "Nov  1 12:00:00 host sshd[42]: Failed password for root from 1.2.3.4 port 22 ssh2"
cscli explain --hub ../shared/hub --type nginx --file /var/log/nginx/access.log -v
cscli explain --hub ../shared/hub --type syslog --dsn file:///var/log/auth.log --parsers crowdsecurity/syslog-logs,crowdsecurity/sshd-logs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cli.bindIO(cmd)
			return runExplain(cli.Out, cli.In, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.hubDir, "hub", "/etc/crowdsec/hub", "hub folder (with index.json)")
	f.StringVarP(&o.logLine, "log", "l", "", "log line to explain")
	f.StringVarP(&o.file, "file", "f", "", "log file to explain (- for standard input)")
	f.StringVarP(&o.dsn, "dsn", "d", "", "acquisition DSN to explain (file:///path)")
	f.StringVarP(&o.logType, "type", "t", "", "log type (the type label, e.g. syslog, nginx)")
	f.StringSliceVar(&o.labels, "labels", nil, "extra labels, key:value")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "show what each parser changed")
	f.BoolVar(&o.failures, "failures", false, "only show lines the parsers failed on")
	f.BoolVar(&o.onlyOK, "only-successful-parsers", false, "only show parsers that succeeded")
	f.StringSliceVar(&o.parsers, "parsers", nil, "parsers to load (hub names or paths; default: every parser of the hub)")
	f.StringSliceVar(&o.scenarios, "scenarios", nil, "scenarios to load (hub names or paths; default: every scenario of the hub)")
	f.IntVar(&o.maxLineLen, "max-line-length", 16<<20, "longest line read from a file")
	return cmd
}

// Explainer is a loaded engine that explains lines.
type Explainer struct {
	Rules     *ruleset.Ruleset
	Pipeline  *parser.Pipeline
	Scenarios []*leakybucket.Scenario
	// Skipped lists the items that failed to load when the whole hub was
	// asked for (explicitly listed items that fail are an error).
	Skipped []error
}

// NewExplainer loads parsers and scenarios from a hub folder; nil lists
// mean every item of the index.
func NewExplainer(hubDir string, parsers, scenarios []string) (*Explainer, error) {
	h, err := hub.OpenHub(hubDir)
	if err != nil {
		return nil, err
	}
	allParsers, allScenarios := len(parsers) == 0, len(scenarios) == 0
	spec := ruleset.Spec{Parsers: parsers, Scenarios: scenarios, Policy: ruleset.SkipBroken}
	if allParsers {
		spec.Parsers = h.Items("parsers")
	}
	if allScenarios {
		spec.Scenarios = h.Items("scenarios")
	}
	rs, err := ruleset.Load(h, spec)
	if err != nil {
		return nil, err
	}
	ex := &Explainer{Rules: rs, Pipeline: rs.Parsers, Scenarios: rs.Scenarios}
	for _, e := range rs.Skipped {
		// an item the user named must load; the rest of a whole hub may not
		if e.Kind == "parsers" && !allParsers || e.Kind == "scenarios" && !allScenarios {
			rs.Close()
			return nil, e
		}
		ex.Skipped = append(ex.Skipped, e)
	}
	return ex, nil
}

// Close releases what the rules hold open (GeoIP databases).
func (ex *Explainer) Close() error { return ex.Rules.Close() }

// ParserStep is one node evaluation of one line.
type ParserStep struct {
	Stage, Parser string
	Success       bool
	Whitelisted   bool
	Changes       []Change
}

// Change is one evt field a parser created, updated or deleted.
type Change struct {
	Op    string // create, update, delete
	Field string // evt.Parsed.x, evt.Meta.x, evt.Enriched.x
	Old   string
	New   string
}

// LineExplanation is what happened to one line.
type LineExplanation struct {
	Line            string
	Steps           []ParserStep
	Parsed          bool
	Whitelisted     bool
	WhitelistReason string
	Scenarios       []string
	TooLong         bool // longer than the pipeline parses
	// Dropped says why a parsed line was dropped: a client-written field
	// may have forged its source address.
	Dropped *parser.Drop
	Err     error
}

type snapshot struct {
	parsed, meta, enriched map[string]string
	whitelisted            bool
}

func snap(e *event.Event) snapshot {
	return snapshot{maps.Clone(e.Parsed), maps.Clone(e.Meta), maps.Clone(e.Enriched), e.Whitelisted}
}

func diffMaps(prefix string, before, after map[string]string) []Change {
	var out []Change
	keys := make([]string, 0, len(after)+len(before))
	for k := range after {
		keys = append(keys, k)
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		o, had := before[k]
		n, has := after[k]
		switch {
		case !had && has:
			out = append(out, Change{Op: "create", Field: prefix + k, New: n})
		case had && !has:
			out = append(out, Change{Op: "delete", Field: prefix + k, Old: o})
		case o != n:
			out = append(out, Change{Op: "update", Field: prefix + k, Old: o, New: n})
		}
	}
	return out
}

// Explain runs one line through the pipeline and the scenario filters.
func (ex *Explainer) Explain(line string, labels map[string]string, src string) LineExplanation {
	res := LineExplanation{Line: line}
	evt := event.New(event.Line{Raw: line, Src: src, Module: "file", Labels: labels})
	prev := snap(&evt)
	drop, err := ex.Pipeline.ParseExplain(&evt, func(stage, name string, e *event.Event, ok bool) {
		cur := snap(e)
		st := ParserStep{Stage: stage, Parser: name, Success: ok, Whitelisted: cur.whitelisted && !prev.whitelisted}
		st.Changes = append(st.Changes, diffMaps("evt.Parsed.", prev.parsed, cur.parsed)...)
		st.Changes = append(st.Changes, diffMaps("evt.Meta.", prev.meta, cur.meta)...)
		st.Changes = append(st.Changes, diffMaps("evt.Enriched.", prev.enriched, cur.enriched)...)
		res.Steps = append(res.Steps, st)
		prev = cur
	})
	if err != nil {
		res.Err = err
		return res
	}
	res.Parsed, res.Dropped = evt.Process, drop
	res.TooLong = ex.Pipeline.MaxLineBytes() > 0 && len(line) > ex.Pipeline.MaxLineBytes()
	res.Whitelisted, res.WhitelistReason = evt.Whitelisted, evt.WhitelistReason
	if evt.Process && !evt.Whitelisted {
		for _, s := range ex.Scenarios {
			if s.Matches(&evt) {
				res.Scenarios = append(res.Scenarios, s.Name())
			}
		}
	}
	return res
}

func (ex *Explainer) render(w io.Writer, r LineExplanation, o *explainOpts) {
	fmt.Fprintf(w, "line: %s\n", r.Line)
	var stages []string
	byStage := map[string][]ParserStep{}
	for _, st := range r.Steps {
		if _, ok := byStage[st.Stage]; !ok {
			stages = append(stages, st.Stage)
		}
		byStage[st.Stage] = append(byStage[st.Stage], st)
	}
	for _, stage := range stages {
		fmt.Fprintf(w, "\t├ %s\n", stage)
		steps := byStage[stage]
		if o.onlyOK {
			kept := steps[:0:0]
			for _, st := range steps {
				if st.Success {
					kept = append(kept, st)
				}
			}
			steps = kept
		}
		for i, st := range steps {
			branch, cont := "├", "|"
			if i == len(steps)-1 {
				branch, cont = "└", " "
			}
			mark := "🔴"
			if st.Success {
				mark = "🟢"
			}
			fmt.Fprintf(w, "\t|\t%s %s %s%s\n", branch, mark, st.Parser, summary(st))
			if o.verbose {
				for j, c := range st.Changes {
					b := "├"
					if j == len(st.Changes)-1 {
						b = "└"
					}
					switch c.Op {
					case "create":
						fmt.Fprintf(w, "\t|\t%s\t%s create %s : %s\n", cont, b, c.Field, c.New)
					case "update":
						fmt.Fprintf(w, "\t|\t%s\t%s update %s : %s -> %s\n", cont, b, c.Field, c.Old, c.New)
					case "delete":
						fmt.Fprintf(w, "\t|\t%s\t%s delete %s\n", cont, b, c.Field)
					}
				}
			}
		}
	}
	switch {
	case r.Err != nil:
		fmt.Fprintf(w, "\t├-------- parser error 🔴: %v\n", r.Err)
	case r.Parsed && r.Whitelisted:
		fmt.Fprintf(w, "\t├-------- parser success, ignored by whitelist (%s) 🟢\n", r.WhitelistReason)
	case r.Parsed:
		fmt.Fprintf(w, "\t├-------- parser success 🟢\n")
	case r.Dropped != nil:
		fmt.Fprintf(w, "\t├-------- parser failure 🔴: dropped by %s: %s\n", r.Dropped.Parser, r.Dropped)
	case r.TooLong:
		fmt.Fprintf(w, "\t├-------- parser failure 🔴: line longer than %d bytes, not parsed\n", ex.Pipeline.MaxLineBytes())
	default:
		fmt.Fprintf(w, "\t├-------- parser failure 🔴\n")
	}
	if len(r.Scenarios) > 0 {
		fmt.Fprintf(w, "\t├ Scenarios\n")
		for i, s := range r.Scenarios {
			b := "├"
			if i == len(r.Scenarios)-1 {
				b = "└"
			}
			fmt.Fprintf(w, "\t\t%s 🟢 %s\n", b, s)
		}
	}
	fmt.Fprintln(w)
}

func summary(st ParserStep) string {
	var c, u, d int
	for _, ch := range st.Changes {
		switch ch.Op {
		case "create":
			c++
		case "update":
			u++
		case "delete":
			d++
		}
	}
	var parts []string
	if c > 0 {
		parts = append(parts, fmt.Sprintf("+%d", c))
	}
	if u > 0 {
		parts = append(parts, fmt.Sprintf("~%d", u))
	}
	if d > 0 {
		parts = append(parts, fmt.Sprintf("-%d", d))
	}
	if st.Whitelisted {
		parts = append(parts, "[whitelisted]")
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, " ") + ")"
}

func runExplain(out io.Writer, in io.Reader, o *explainOpts) error {
	given := 0
	for _, s := range []string{o.logLine, o.file, o.dsn} {
		if s != "" {
			given++
		}
	}
	if given != 1 {
		return fmt.Errorf("give exactly one of --log, --file or --dsn")
	}
	if o.logType == "" {
		return fmt.Errorf("--type is required (the log type, e.g. syslog or nginx)")
	}
	labels := map[string]string{"type": o.logType}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return fmt.Errorf("label %q: expected key:value", l)
		}
		labels[k] = v
	}
	var src string
	var r io.Reader
	switch {
	case o.logLine != "":
		src = "explain"
		r = strings.NewReader(o.logLine)
	case o.file == "-":
		src = "stdin"
		r = in
	default:
		path := o.file
		if o.dsn != "" {
			u, err := url.Parse(o.dsn)
			if err != nil {
				return fmt.Errorf("dsn %q: %w", o.dsn, err)
			}
			if u.Scheme != "file" {
				return fmt.Errorf("dsn %q: only file:// DSNs are supported", o.dsn)
			}
			path = u.Path
			if path == "" {
				path = u.Opaque
			}
			if t := u.Query().Get("log_type"); t != "" && o.logType == "" {
				labels["type"] = t
			}
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		src, _ = filepath.Abs(path)
		r = f
	}
	ex, err := NewExplainer(o.hubDir, o.parsers, o.scenarios)
	if err != nil {
		return err
	}
	defer ex.Close()
	for _, e := range ex.Skipped {
		log.Warnf("skipped: %v", e)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), max(o.maxLineLen, 64<<10))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		res := ex.Explain(line, labels, src)
		if o.failures && res.Parsed {
			continue
		}
		ex.render(out, res, o)
	}
	return sc.Err()
}
