package parser

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	log "github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/agent/grok"
)

// Item is one parser file to load: its hub name, stage and path.
type Item struct {
	Name  string // e.g. crowdsecurity/sshd-logs
	Stage string // e.g. s01-parse
	Path  string
}

// Observer sees every node evaluation (hubtest's dump, cscli explain).
type Observer func(stage, parser string, evt *event.Event, success bool)

// Pipeline is a loaded, compiled set of parser stages.
type Pipeline struct {
	stages    []string
	nodes     map[string][]*node
	grok      *grok.Library
	helpers   *exprhelpers.Helpers
	enrichers map[string]Enricher
	log       *log.Entry
}

// Enricher is a statics method: it returns values merged into Enriched.
type Enricher func(value string, evt *event.Event) map[string]string

// LoadError names the file, the item and what failed.
type LoadError struct {
	File, Item string
	Err        error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("%s (%s): %v", e.File, e.Item, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// New loads and compiles items. Patterns and helpers are shared with the
// scenarios; enrichers may be nil for the defaults.
func New(items []Item, lib *grok.Library, helpers *exprhelpers.Helpers, enrichers map[string]Enricher) (*Pipeline, error) {
	p := &Pipeline{nodes: map[string][]*node{}, grok: lib, helpers: helpers, enrichers: enrichers, log: log.WithField("component", "parser")}
	if p.enrichers == nil {
		p.enrichers = DefaultEnrichers()
	}
	sorted := append([]Item{}, items...)
	// Within a stage, upstream runs parsers in file-name order.
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Stage != sorted[j].Stage {
			return sorted[i].Stage < sorted[j].Stage
		}
		return filepath.Base(sorted[i].Path) < filepath.Base(sorted[j].Path)
	})
	for _, it := range sorted {
		if err := p.loadFile(it); err != nil {
			return nil, err
		}
	}
	for st := range p.nodes {
		p.stages = append(p.stages, st)
	}
	sort.Strings(p.stages)
	return p, nil
}

// Stages returns the stage names in order.
func (p *Pipeline) Stages() []string { return p.stages }

func (p *Pipeline) loadFile(it Item) error {
	data, err := os.ReadFile(it.Path)
	if err != nil {
		return &LoadError{File: it.Path, Item: it.Name, Err: err}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	for i := 0; ; i++ {
		var cfg NodeConfig
		err := dec.Decode(&cfg)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return &LoadError{File: it.Path, Item: it.Name, Err: fmt.Errorf("document %d: %w", i+1, err)}
		}
		if cfg.Name == "" && cfg.Filter == "" && len(cfg.Nodes) == 0 && cfg.Grok.Pattern == "" && cfg.Grok.Name == "" && len(cfg.Statics) == 0 {
			continue // an empty document
		}
		if len(cfg.Data) > 0 && p.helpers != nil {
			files := make([]exprhelpers.DataFile, 0, len(cfg.Data))
			for _, d := range cfg.Data {
				files = append(files, exprhelpers.DataFile{SourceURL: d.SourceURL, DestFile: d.DestFile, Type: d.Type, Strategy: d.Strategy, Size: d.Size, TTL: d.TTL})
			}
			if err := p.helpers.Load(files); err != nil {
				return &LoadError{File: it.Path, Item: it.Name, Err: err}
			}
		}
		n, err := p.compile(cfg, it.Stage, it.Name)
		if err != nil {
			return &LoadError{File: it.Path, Item: it.Name, Err: fmt.Errorf("document %d: %w", i+1, err)}
		}
		p.nodes[it.Stage] = append(p.nodes[it.Stage], n)
	}
	return nil
}

func (p *Pipeline) exprOptions() []expr.Option {
	opts := []expr.Option{expr.Env(map[string]any{"evt": &event.Event{}})}
	if p.helpers != nil {
		opts = append(opts, p.helpers.Options()...)
	}
	return opts
}

func (p *Pipeline) compileExpr(src string) (*vm.Program, error) {
	prog, err := expr.Compile(src, p.exprOptions()...)
	if err != nil {
		return nil, fmt.Errorf("compiling %q: %w", src, err)
	}
	return prog, nil
}

func (p *Pipeline) compile(cfg NodeConfig, stage, fileName string) (*node, error) {
	name := cfg.Name
	if name == "" {
		name = fileName
	}
	n := &node{name: name, stage: stage, onSuccess: cfg.OnSuccess, log: p.log.WithField("parser", name)}
	// pattern_syntax goes into the shared library, as upstream (first wins).
	keys := make([]string, 0, len(cfg.PatternSyntax))
	for k := range cfg.PatternSyntax {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := p.grok.Add(k, cfg.PatternSyntax[k]); err != nil {
			return nil, fmt.Errorf("pattern_syntax %s: %w", k, err)
		}
	}
	var err error
	if strings.TrimSpace(cfg.Filter) != "" {
		if n.filter, err = p.compileExpr(cfg.Filter); err != nil {
			return nil, fmt.Errorf("filter: %w", err)
		}
	}
	if cfg.Grok.Pattern != "" || cfg.Grok.Name != "" {
		pat := cfg.Grok.Pattern
		if pat == "" {
			pat = "%{" + cfg.Grok.Name + "}"
			n.grokName = cfg.Grok.Name
		}
		if n.grok, err = p.grok.Compile(pat); err != nil {
			return nil, fmt.Errorf("grok: %w", err)
		}
		n.applyOn = cfg.Grok.ApplyOn
		if cfg.Grok.Expression != "" {
			if n.grokExpr, err = p.compileExpr(cfg.Grok.Expression); err != nil {
				return nil, fmt.Errorf("grok expression: %w", err)
			}
		}
		if n.grokStats, err = p.compileStatics(cfg.Grok.Statics); err != nil {
			return nil, err
		}
	}
	if n.statics, err = p.compileStatics(cfg.Statics); err != nil {
		return nil, err
	}
	n.wl.reason = cfg.Whitelist.Reason
	for _, v := range append(append([]string{}, cfg.Whitelist.IPs...), cfg.Whitelist.CIDRs...) {
		pfx, err := parsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("whitelist: %w", err)
		}
		n.wl.prefixes = append(n.wl.prefixes, pfx)
	}
	for _, e := range cfg.Whitelist.Expression {
		prog, err := p.compileExpr(e)
		if err != nil {
			return nil, fmt.Errorf("whitelist expression: %w", err)
		}
		n.wl.exprs = append(n.wl.exprs, prog)
	}
	for i, c := range cfg.Nodes {
		child, err := p.compile(c, stage, fmt.Sprintf("%s/node-%d", name, i))
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		n.children = append(n.children, child)
	}
	return n, nil
}

func (p *Pipeline) compileStatics(in []Static) ([]static, error) {
	out := make([]static, 0, len(in))
	for _, s := range in {
		st := static{cfg: s}
		if s.Value == "" && s.Expression != "" {
			prog, err := p.compileExpr(s.Expression)
			if err != nil {
				return nil, fmt.Errorf("statics: %w", err)
			}
			st.expr = prog
		}
		out = append(out, st)
	}
	return out, nil
}

func parsePrefix(v string) (netip.Prefix, error) {
	v = strings.TrimSpace(v)
	if strings.Contains(v, "/") {
		pfx, err := netip.ParsePrefix(v)
		return pfx.Masked(), err
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// Parse runs evt through every stage. An event that no node of a stage
// accepts stops there with Process=false, as upstream. obs may be nil.
func (p *Pipeline) Parse(evt *event.Event, obs Observer) error {
	if evt.Parsed == nil {
		evt.Parsed = map[string]string{}
	}
	if evt.Meta == nil {
		evt.Meta = map[string]string{}
	}
	if evt.Enriched == nil {
		evt.Enriched = map[string]string{}
	}
	env := map[string]any{"evt": evt}
	for _, stage := range p.stages {
		evt.Stage = stage
		stageOK := false
		for _, n := range p.nodes[stage] {
			ok, err := n.process(p, evt, env)
			if err != nil {
				return fmt.Errorf("parser %s: %w", n.name, err)
			}
			if obs != nil {
				obs(stage, n.name, evt, ok)
			}
			if ok {
				stageOK = true
				if n.onSuccess == "next_stage" {
					break
				}
			}
		}
		if !stageOK {
			evt.Process = false
			return nil
		}
	}
	evt.Process = true
	return nil
}
