package parser

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	log "github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/agent/grok"
	"github.com/rampart-ips/rampart/internal/hubformat"
	"github.com/rampart-ips/rampart/internal/netaddr"
	"github.com/rampart-ips/rampart/models"
)

// Item is one parser file to load: its hub name, stage and path.
type Item struct {
	Name  string // e.g. crowdsecurity/sshd-logs
	Stage string // e.g. s01-parse
	Path  string
}

// Observer sees every node evaluation (hubtest's dump, cscli explain).
type Observer func(stage, parser string, evt *event.Event, success bool)

// DefaultMaxLineBytes is the longest raw line the pipeline parses. Longer
// lines are left unparsed: no real log line comes near it, upstream's
// file acquisition never hands such lines over, and running every grok
// node over megabytes would stall the pipeline.
const DefaultMaxLineBytes = 64 << 10

// Pipeline is a loaded, compiled set of parser stages. Load and Parse must
// not run concurrently; Parse itself is safe for concurrent use.
type Pipeline struct {
	stages    []string
	nodes     map[string][]*node
	files     []loadedFile // sorted by stage, then file name
	grok      *grok.Library
	helpers   *exprhelpers.Helpers
	enrichers map[string]Enricher
	maxLine   int
	log       *log.Entry
	scratch   sync.Pool // *runEnv
	// progs are the programs compiled so far by source: half of a hub's
	// expressions repeat (evt.Parsed.source_ip, ...), and a program is
	// immutable, its runs independent. Written while loading only.
	progs map[string]*program

	// Counters (see stats.go): slots describes the node each counter
	// slot belongs to; statMu guards the shard lists and shards' maps.
	slots      []slotInfo
	statMu     sync.Mutex
	shards     []*statShard
	freeShards []*statShard

	// dropWarnNext is when (Unix ns) a dropped line may be logged next;
	// dropsUnwarned counts those dropped since the last warning.
	dropWarnNext, dropsUnwarned atomic.Int64

	// usesUnmarshaled is set when a loaded expression names
	// evt.Unmarshaled (UnmarshalJSON, ParseKV write into it), so Parse
	// creates that map only for pipelines that need it.
	usesUnmarshaled atomic.Bool
}

type loadedFile struct {
	item  Item
	nodes []*node
}

// Enricher is a statics method: it returns values merged into Enriched.
type Enricher func(value string, evt *event.Event) map[string]string

// NewPipeline returns an empty pipeline; Load adds parser files to it.
// Patterns and helpers are shared with the scenarios; enrichers may be nil
// for DefaultEnrichers.
func NewPipeline(lib *grok.Library, helpers *exprhelpers.Helpers, enrichers map[string]Enricher) *Pipeline {
	p := &Pipeline{nodes: map[string][]*node{}, grok: lib, helpers: helpers, enrichers: enrichers,
		progs:   map[string]*program{},
		maxLine: DefaultMaxLineBytes, log: log.WithField("component", "parser")}
	if p.enrichers == nil {
		p.enrichers = DefaultEnrichers()
	}
	return p
}

// New loads and compiles items, failing on the first broken one.
func New(items []Item, lib *grok.Library, helpers *exprhelpers.Helpers, enrichers map[string]Enricher) (*Pipeline, error) {
	p := NewPipeline(lib, helpers, enrichers)
	for _, it := range SortItems(items) {
		if err := p.Load(it); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// SortItems returns items in the order upstream loads and runs them: by
// stage, and within a stage by file name. Loading in that order matters
// for pattern_syntax, where the first definition of a name wins.
func SortItems(items []Item) []Item {
	sorted := append([]Item{}, items...)
	sort.SliceStable(sorted, func(i, j int) bool { return itemLess(sorted[i], sorted[j]) })
	return sorted
}

// itemLess is upstream's order: by stage, and within a stage by file name.
func itemLess(a, b Item) bool {
	if a.Stage != b.Stage {
		return a.Stage < b.Stage
	}
	return filepath.Base(a.Path) < filepath.Base(b.Path)
}

// SetMaxLineBytes sets the longest raw line Parse runs the nodes on
// (DefaultMaxLineBytes by default; n <= 0 removes the limit).
func (p *Pipeline) SetMaxLineBytes(n int) { p.maxLine = n }

// MaxLineBytes is the longest raw line Parse runs the nodes on (0: no
// limit).
func (p *Pipeline) MaxLineBytes() int { return p.maxLine }

// Stages returns the stage names in order.
func (p *Pipeline) Stages() []string { return p.stages }

// Items returns the loaded parser files in the order they run.
func (p *Pipeline) Items() []Item {
	out := make([]Item, len(p.files))
	for i, f := range p.files {
		out[i] = f.item
	}
	return out
}

// Load compiles every document of one parser file and adds them to the
// pipeline, or none of them: a file that fails leaves the pipeline as it
// was (except for pattern_syntax already registered in the shared grok
// library, which upstream cannot undo either). Errors are *LoadError.
func (p *Pipeline) Load(it Item) error {
	data, err := os.ReadFile(it.Path)
	if err != nil {
		return &LoadError{File: it.Path, Item: it.Name, Err: err}
	}
	return p.LoadData(it, data)
}

// LoadData is Load with the file's content given: for a parser that is
// built, not read (hubtest's override_statics node, as upstream's). it.Path
// still orders the file within its stage and names it in errors.
func (p *Pipeline) LoadData(it Item, data []byte) error {
	nodes, err := p.compileFile(it, data)
	if err != nil {
		return err
	}
	at := sort.Search(len(p.files), func(i int) bool { return itemLess(it, p.files[i].item) })
	p.files = append(p.files, loadedFile{})
	copy(p.files[at+1:], p.files[at:])
	p.files[at] = loadedFile{item: it, nodes: nodes}
	p.index()
	return nil
}

// index rebuilds the per-stage node lists from the loaded files.
func (p *Pipeline) index() {
	p.nodes = map[string][]*node{}
	p.stages = nil // a fresh slice: callers may hold the old one
	for _, f := range p.files {
		if _, ok := p.nodes[f.item.Stage]; !ok {
			p.stages = append(p.stages, f.item.Stage)
		}
		p.nodes[f.item.Stage] = append(p.nodes[f.item.Stage], f.nodes...)
	}
}

func (p *Pipeline) compileFile(it Item, data []byte) (out []*node, err error) {
	doc := 0
	defer func() {
		// yaml, expr and the regexp translator are fed untrusted files: a
		// bug in them must fail this file, not the agent.
		if r := recover(); r != nil {
			out, err = nil, &LoadError{File: it.Path, Item: it.Name, Doc: doc, Err: fmt.Errorf("internal error: %v", r)}
		}
	}()
	// Two decoders walk the same documents in step: the typed one rejects
	// unknown keys (with their line), the node one gives every key's line.
	typed := yaml.NewDecoder(bytes.NewReader(data))
	typed.KnownFields(true)
	nodes := yaml.NewDecoder(bytes.NewReader(data))
	for doc = 1; ; doc++ {
		var yn yaml.Node
		err := nodes.Decode(&yn)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &LoadError{File: it.Path, Item: it.Name, Doc: doc, Line: yamlErrLine(err, 0), Err: err}
		}
		var cfg NodeConfig
		if err := typed.Decode(&cfg); err != nil {
			le := &LoadError{File: it.Path, Item: it.Name, Doc: doc, Line: yamlErrLine(err, yn.Line), Err: err}
			if ke := hubformat.UnknownKey(err, upstreamOnly); ke != nil {
				le.Key, le.Line, le.Err = ke.Key, ke.Line, ke.Err
			}
			return nil, le
		}
		if cfg.Name == "" && cfg.Filter == "" && len(cfg.Nodes) == 0 && cfg.Grok.Pattern == "" && cfg.Grok.Name == "" && len(cfg.Statics) == 0 {
			continue // an empty document
		}
		m := mappingOf(&yn)
		if len(cfg.Data) > 0 && p.helpers != nil {
			files := make([]exprhelpers.DataFile, 0, len(cfg.Data))
			for _, d := range cfg.Data {
				files = append(files, exprhelpers.DataFile{SourceURL: d.SourceURL, DestFile: d.DestFile, Type: d.Type, Strategy: d.Strategy, Size: d.Size, TTL: d.TTL})
			}
			if err := p.helpers.Load(files); err != nil {
				return nil, &LoadError{File: it.Path, Item: it.Name, Doc: doc, Key: "data", Line: keyLine(m, "data"), Err: err}
			}
		}
		n, err := p.compile(cfg, m, it.Stage, it.Name)
		if err != nil {
			le := &LoadError{File: it.Path, Item: it.Name, Doc: doc, Line: yn.Line, Err: err}
			if cfg.Name != it.Name {
				le.Name = cfg.Name
			}
			le.locate(err)
			return nil, le
		}
		n.counted = true // top-level nodes always count, named or not
		out = append(out, n)
	}
	return out, nil
}

func (p *Pipeline) exprOptions() []expr.Option {
	opts := []expr.Option{expr.Env(map[string]any{"evt": &event.Event{}})}
	if p.helpers != nil {
		opts = append(opts, p.helpers.Options()...)
	}
	return opts
}

// compileExpr compiles one expression; its errors keep expr's own
// "(line:column)" position and snippet within the expression.
func (p *Pipeline) compileExpr(src string) (*program, error) {
	if prog, ok := p.progs[src]; ok {
		return prog, nil
	}
	vp, err := expr.Compile(src, p.exprOptions()...)
	if err != nil {
		return nil, err
	}
	prog := &program{vm: vp, text: textOf(src)}
	if f, ok := exprhelpers.Direct(vp); ok {
		prog.direct = f
	}
	p.progs[src] = prog
	if strings.Contains(src, "Unmarshaled") {
		p.usesUnmarshaled.Store(true)
	}
	return prog, nil
}

// upstreamOnly are the parser node keys upstream reads and Rampart does not
// implement: the strict decoding refuses them, with what they are for.
var upstreamOnly = map[string]string{
	"profiling": "upstream's per-node profiling",
	"stage":     "a stage set in a parser file (its folder gives it)",
}

// compile builds a node from its config; m is the node's YAML mapping
// (nil when unknown), used to put a line on errors.
func (p *Pipeline) compile(cfg NodeConfig, m *yaml.Node, stage, fileName string) (*node, error) {
	name := cfg.Name
	if name == "" {
		name = fileName
	}
	n := &node{name: name, stage: stage, onSuccess: cfg.OnSuccess, log: p.log.WithField("parser", name),
		slot: len(p.slots), counted: cfg.Name != ""}
	p.slots = append(p.slots, slotInfo{name: name, stage: stage, reason: cfg.Whitelist.Reason})
	// pattern_syntax goes into the shared library, as upstream (first
	// wins). Every definition is checked once all of the node's are in,
	// so they may refer to each other in any order.
	keys := make([]string, 0, len(cfg.PatternSyntax))
	for k := range cfg.PatternSyntax {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ps := childMap(m, "pattern_syntax")
	for _, k := range keys {
		if err := p.grok.Add(k, cfg.PatternSyntax[k]); err != nil {
			return nil, keyErr("pattern_syntax."+k, keyLine(ps, k), err)
		}
	}
	for _, k := range keys {
		if _, err := p.grok.Compile("%{" + k + "}"); err != nil {
			return nil, keyErr("pattern_syntax."+k, keyLine(ps, k), err)
		}
	}
	if err := hubformat.CheckFormat(cfg.Format); err != nil {
		return nil, keyErr("format", keyLine(m, "format"), err)
	}
	switch cfg.OnSuccess {
	case "", "continue", "next_stage":
	default:
		// upstream refuses any other value too
		return nil, keyErr("onsuccess", keyLine(m, "onsuccess"), fmt.Errorf("onsuccess %q is neither continue nor next_stage", cfg.OnSuccess))
	}
	var err error
	if strings.TrimSpace(cfg.Filter) != "" {
		if n.filter, err = p.compileExpr(cfg.Filter); err != nil {
			return nil, keyErr("filter", keyLine(m, "filter"), err)
		}
	}
	if cfg.Grok.Pattern != "" || cfg.Grok.Name != "" {
		g := childMap(m, "grok")
		pat, key := cfg.Grok.Pattern, "grok.pattern"
		if pat == "" {
			pat, key = "%{"+cfg.Grok.Name+"}", "grok.name"
			n.grokName = cfg.Grok.Name
		}
		if n.grok, err = p.grok.Compile(pat); err != nil {
			return nil, keyErr(key, keyLine(g, strings.TrimPrefix(key, "grok.")), err)
		}
		for _, name := range n.grok.Names() {
			n.clientCaps = append(n.clientCaps, clientWritten(name))
		}
		if cfg.Grok.ApplyOn == "" && cfg.Grok.Expression == "" {
			// upstream refuses it rather than pick a field
			return nil, keyErr("grok", keyLine(m, "grok"), errors.New("grok needs apply_on or expression"))
		}
		n.applyOn = cfg.Grok.ApplyOn
		if cfg.Grok.Expression != "" {
			if n.grokExpr, err = p.compileExpr(cfg.Grok.Expression); err != nil {
				return nil, keyErr("grok.expression", keyLine(g, "expression"), err)
			}
		}
		if n.grokStats, err = p.compileStatics(cfg.Grok.Statics, g, "statics", "grok.statics"); err != nil {
			return nil, err
		}
	}
	if n.statics, err = p.compileStatics(cfg.Statics, m, "statics", "statics"); err != nil {
		return nil, err
	}
	if n.stash, err = p.compileStash(cfg.Stash, m); err != nil {
		return nil, err
	}
	wl := childMap(m, "whitelist")
	n.wl.reason = cfg.Whitelist.Reason
	for _, l := range []struct {
		key  string
		list []string
	}{{"ip", cfg.Whitelist.IPs}, {"cidr", cfg.Whitelist.CIDRs}} {
		for i, v := range l.list {
			pfx, err := netaddr.ParsePrefix(v)
			if err != nil {
				return nil, keyErr(fmt.Sprintf("whitelist.%s[%d]", l.key, i), itemLine(wl, l.key, i), err)
			}
			n.wl.prefixes = append(n.wl.prefixes, pfx)
		}
	}
	for i, e := range cfg.Whitelist.Expression {
		prog, err := p.compileExpr(e)
		if err != nil {
			return nil, keyErr(fmt.Sprintf("whitelist.expression[%d]", i), itemLine(wl, "expression", i), err)
		}
		n.wl.exprs = append(n.wl.exprs, prog)
	}
	for i, c := range cfg.Nodes {
		child, err := p.compile(c, mappingOf(seqItem(m, "nodes", i)), stage, fmt.Sprintf("%s/node-%d", name, i))
		if err != nil {
			return nil, &nodeError{index: i, err: err}
		}
		n.children = append(n.children, child)
	}
	return n, nil
}

// upstreamOnlyTarget reports whether upstream would assign a static target
// that setTarget cannot: upstream walks the path by reflection and sets a
// string field or a map entry. A path naming neither ("source_ip") is a
// no-op upstream as here, so it loads.
func upstreamOnlyTarget(target string) bool {
	// a postoverflow's event carries an alert: its fields are targets too
	scratch := event.Event{Parsed: map[string]string{}, Meta: map[string]string{}, Enriched: map[string]string{},
		Overflow: event.RuntimeAlert{Alert: &models.Alert{Source: &models.Source{}}}}
	if setTarget(&scratch, target, "x") {
		return false
	}
	t := reflect.TypeFor[event.Event]()
	for _, seg := range strings.Split(strings.TrimPrefix(target, "evt."), ".") {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() == reflect.Map {
			return true
		}
		if t.Kind() != reflect.Struct {
			return false
		}
		f, ok := t.FieldByName(seg)
		if !ok {
			return false
		}
		t = f.Type
	}
	return t.Kind() == reflect.String || t.Kind() == reflect.Map
}

// compileStatics compiles a statics list found under seqKey of the parent
// mapping; label names it in errors ("statics", "grok.statics").
func (p *Pipeline) compileStatics(in []Static, parent *yaml.Node, seqKey, label string) ([]static, error) {
	out := make([]static, 0, len(in))
	for i, s := range in {
		// date: only this package's ParseDate is memoized; an enricher a
		// caller put in its place runs as given
		st := static{cfg: s, warned: new(atomic.Bool),
			date: s.Method == "ParseDate" && reflect.ValueOf(p.enrichers[s.Method]).Pointer() == reflect.ValueOf(ParseDate).Pointer()}
		item := mappingOf(seqItem(parent, seqKey, i))
		line := itemLine(parent, seqKey, i)
		switch {
		case s.Method != "":
			// applyStatics could only skip it, where upstream enriches
			if _, ok := p.enrichers[s.Method]; !ok {
				if l := keyLine(item, "method"); l > 0 {
					line = l
				}
				return nil, keyErr(fmt.Sprintf("%s[%d].method", label, i), line, fmt.Errorf("enrichment method %q is not supported by Rampart", s.Method))
			}
		case s.Meta == "" && s.Parsed == "" && s.Enriched == "" && s.Target == "":
			return nil, keyErr(fmt.Sprintf("%s[%d]", label, i), line, errors.New("a static needs a method, meta, parsed, enriched or target"))
		case s.Meta == "" && s.Parsed == "" && s.Enriched == "" && upstreamOnlyTarget(s.Target):
			if l := keyLine(item, "target"); l > 0 {
				line = l
			}
			return nil, keyErr(fmt.Sprintf("%s[%d].target", label, i), line, fmt.Errorf("static target %q is not supported by Rampart", s.Target))
		}
		if s.Value == "" && s.Expression != "" {
			prog, err := p.compileExpr(s.Expression)
			if err != nil {
				line := keyLine(mappingOf(seqItem(parent, seqKey, i)), "expression")
				if line == 0 {
					line = itemLine(parent, seqKey, i)
				}
				return nil, keyErr(fmt.Sprintf("%s[%d].expression", label, i), line, err)
			}
			st.expr = prog
		}
		out = append(out, st)
	}
	return out, nil
}

// Parse runs evt through every stage. An event that no node of a stage
// accepts stops there with Process=false, as upstream; so does a line
// longer than the pipeline's limit, and one whose source address a
// client-written field may have forged (see inject.go). obs may be nil.
func (p *Pipeline) Parse(evt *event.Event, obs Observer) error {
	_, err := p.ParseExplain(evt, obs)
	return err
}

// ParseExplain is Parse that also says why it dropped a line a parser had
// parsed (nil when it did not).
func (p *Pipeline) ParseExplain(evt *event.Event, obs Observer) (drop *Drop, err error) {
	defer func() {
		// A bug tripped by one hostile line must cost that line, not the
		// agent.
		if r := recover(); r != nil {
			evt.Process = false
			drop, err = nil, fmt.Errorf("parsing %.80q: internal error: %v", evt.Line.Raw, r)
		}
	}()
	if evt.Parsed == nil {
		evt.Parsed = map[string]string{}
	}
	if evt.Meta == nil {
		evt.Meta = map[string]string{}
	}
	if evt.Enriched == nil {
		evt.Enriched = map[string]string{}
	}
	if evt.Unmarshaled == nil && p.usesUnmarshaled.Load() {
		// UnmarshalJSON/ParseKV write into it: it must exist, as upstream.
		evt.Unmarshaled = map[string]any{}
	}
	env, _ := p.scratch.Get().(*runEnv)
	if env == nil {
		env = p.newRunEnv()
	}
	env.env["evt"], env.evt = evt, evt
	defer func() {
		// do not pin the event or its text from the pool
		env.env["evt"], env.evt = nil, nil
		clear(env.hits)
		env.hits, env.drop = env.hits[:0], nil
		p.scratch.Put(env)
	}()
	ls := env.lineStats(p, evt.Line.Src, evt.Line.Module)
	ls.hits.Add(1)
	start := time.Now()
	err = p.parseStages(evt, obs, env)
	ls.observe(time.Since(start))
	if err == nil && evt.Process {
		ls.ok.Add(1)
	}
	if env.drop != nil {
		p.warnDrop(env.drop, evt)
	}
	return env.drop, err
}

// parseStages is Parse's work on one line, timed by Parse.
func (p *Pipeline) parseStages(evt *event.Event, obs Observer, env *runEnv) error {
	if p.maxLine > 0 && len(evt.Line.Raw) > p.maxLine {
		if len(p.stages) > 0 {
			evt.Stage = p.stages[0]
		}
		evt.Process = false
		return nil
	}
	// at is the stage the event has reached, as upstream's evt.Stage: only
	// a successful node with onsuccess: next_stage moves it on. A stage
	// left without such a node ends the parse (the event is not
	// processed) unless it is the last; a stage moved past is skipped.
	at, last := 0, len(p.stages)-1
	env.moves = 0
	for i, stage := range p.stages {
		if at > i {
			continue
		}
		if at < i {
			evt.Process = false
			return nil
		}
		evt.Stage = stage
		stageOK := false
		for _, n := range p.nodes[stage] {
			ok, err := n.process(p, evt, env)
			at, env.moves = min(at+env.moves, last), 0
			if err != nil {
				return fmt.Errorf("parser %s: %w", n.name, err)
			}
			if env.drop != nil {
				env.count(n, cDropped)
				if obs != nil {
					obs(stage, n.name, evt, false)
				}
				evt.Process = false
				return nil
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
			if at != i {
				break
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

// UsesMethod reports whether a loaded node (or sub-node) calls one of the
// statics methods named (GeoIpCity, reverse_dns...): hubtest tells by it
// whether a test needs the GeoIP databases.
func (p *Pipeline) UsesMethod(names ...string) bool {
	var walk func(ns []*node) bool
	walk = func(ns []*node) bool {
		for _, n := range ns {
			for _, list := range [][]static{n.statics, n.grokStats} {
				for _, s := range list {
					if s.cfg.Method != "" && slices.Contains(names, s.cfg.Method) {
						return true
					}
				}
			}
			if walk(n.children) {
				return true
			}
		}
		return false
	}
	for _, f := range p.files {
		if walk(f.nodes) {
			return true
		}
	}
	return false
}
