// Package parser runs hub-format parsers (stages s00-raw, s01-parse,
// s02-enrich, and postoverflows) over events: filters, grok, statics,
// whitelists and enrichers, with upstream's node semantics. Every
// expression and pattern is compiled once at load; it never reads logs or
// talks to the LAPI.
package parser

import (
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"

	"github.com/expr-lang/expr/vm"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/grok"
	"github.com/rampart-ips/rampart/internal/netaddr"
)

// NodeConfig is one parser document or sub-node, in the hub's YAML.
type NodeConfig struct {
	Name          string            `yaml:"name"`
	Description   string            `yaml:"description"`
	Author        string            `yaml:"author"`
	Filter        string            `yaml:"filter"`
	OnSuccess     string            `yaml:"onsuccess"`
	Debug         bool              `yaml:"debug"`
	PatternSyntax map[string]string `yaml:"pattern_syntax"`
	Grok          GrokConfig        `yaml:"grok"`
	Statics       []Static          `yaml:"statics"`
	Nodes         []NodeConfig      `yaml:"nodes"`
	Whitelist     WhitelistConfig   `yaml:"whitelist"`
	Data          []DataRef         `yaml:"data"`
	Format        string            `yaml:"format"`
	Stash         []StashConfig     `yaml:"stash"`
	References    []string          `yaml:"references"`
	Labels        map[string]any    `yaml:"labels"`
}

// DataRef is a data file a rule needs (loaded by the expr helpers).
type DataRef struct {
	SourceURL string `yaml:"source_url"`
	DestFile  string `yaml:"dest_file"`
	Type      string `yaml:"type"`
	Strategy  string `yaml:"strategy"`
	Size      int    `yaml:"size"`
	TTL       string `yaml:"ttl"`
}

// GrokConfig is a node's grok block.
type GrokConfig struct {
	Pattern    string   `yaml:"pattern"`
	Name       string   `yaml:"name"`
	ApplyOn    string   `yaml:"apply_on"`
	Expression string   `yaml:"expression"`
	Statics    []Static `yaml:"statics"`
}

// Static is one assignment: a target and a value or expression.
type Static struct {
	Meta       string `yaml:"meta"`
	Parsed     string `yaml:"parsed"`
	Enriched   string `yaml:"enriched"`
	Target     string `yaml:"target"`
	Method     string `yaml:"method"`
	Value      string `yaml:"value"`
	Expression string `yaml:"expression"`
}

// WhitelistConfig is a node's whitelist block.
type WhitelistConfig struct {
	Reason     string   `yaml:"reason"`
	IPs        []string `yaml:"ip"`
	CIDRs      []string `yaml:"cidr"`
	Expression []string `yaml:"expression"`
}

// node is a compiled NodeConfig.
type node struct {
	name      string
	stage     string
	onSuccess string
	filter    *program
	grok      *grok.Pattern
	grokName  string
	applyOn   string
	grokExpr  *program
	grokStats []static
	statics   []static
	stash     []stash
	children  []*node
	wl        whitelist
	log       *log.Entry
	// slot indexes the node's counters; counted: whether it has its own
	// hit metrics (top-level or named nodes, as upstream's named ones).
	slot    int
	counted bool

	// clientCaps tells, per grok.Names() entry, whether the capture is a
	// field the client writes (see inject.go).
	clientCaps []bool
}

type static struct {
	cfg  Static
	expr *program
	// date is set when the method is this package's ParseDate, which
	// applyStatics runs through the env's memo (see dateMemo).
	date bool
	// warned is set once a target could not be assigned: that is a
	// property of the rule, so one warning says it, not one per line
	warned *atomic.Bool
}

type whitelist struct {
	reason   string
	prefixes []netip.Prefix
	exprs    []*program
}

func (w *whitelist) empty() bool { return len(w.prefixes) == 0 && len(w.exprs) == 0 }

// process runs the node on evt with upstream's semantics and reports
// whether it succeeded.
func (n *node) process(p *Pipeline, evt *event.Event, env *runEnv) (bool, error) {
	state := true
	if n.filter != nil {
		out, err := env.run(n.filter)
		if err != nil {
			n.log.WithError(err).Debug("filter failed")
			return false, nil
		}
		if b, ok := out.(bool); !ok || !b {
			return false, nil
		}
	}
	if n.counted {
		env.count(n, cHits)
	}
	whitelisted := false
	if !n.wl.empty() {
		var err error
		env.count(n, cWLHits)
		whitelisted, err = n.checkWhitelist(evt, env)
		if err != nil {
			return false, nil
		}
		if whitelisted {
			env.count(n, cWLOK)
		}
		if whitelisted && !evt.Whitelisted {
			evt.Whitelisted = true
			evt.WhitelistReason = n.wl.reason
			if evt.Type == event.OVFLW {
				evt.Overflow.Whitelisted = true
			}
		}
	}
	grokOK := false
	if n.grok != nil {
		var src string
		haveSrc := true
		switch {
		case n.grokExpr != nil:
			out, err := env.run(n.grokExpr)
			if s, ok := out.(string); err == nil && ok {
				src = s
			} else {
				haveSrc = false
			}
		case n.applyOn == "Line.Raw" || n.applyOn == "":
			src = evt.Line.Raw
		default:
			v, ok := evt.Parsed[n.applyOn]
			src, haveSrc = v, ok
		}
		if !haveSrc {
			state = false
		}
		var m grok.Match
		if haveSrc {
			m, haveSrc = n.grok.ParseMatch(src, evt.Parsed)
		}
		if haveSrc {
			grokOK = true
			env.hits = append(env.hits, grokHit{node: n, src: src, m: m})
			if err := p.applyStatics(n, n.grokStats, evt, env); err != nil {
				return false, err
			}
			if env.drop != nil {
				return false, nil
			}
		} else {
			state = false
		}
	}
	// Upstream fills the stash once the node's own grok matched (or when
	// it has none), before its children run.
	if len(n.stash) > 0 && (grokOK || n.grok == nil) {
		p.applyStash(n, evt, env)
	}
	for _, c := range n.children {
		ok, err := c.process(p, evt, env)
		if err != nil {
			return false, err
		}
		if env.drop != nil {
			return false, nil
		}
		if ok {
			state = true
			if n.onSuccess == "next_stage" {
				break
			}
		} else if !grokOK {
			// A node without a successful grok of its own needs its
			// children to succeed (upstream's rule, quirks included).
			state = false
		}
	}
	if !state {
		return false, nil
	}
	if len(n.statics) > 0 && (whitelisted || n.wl.empty()) {
		if err := p.applyStatics(n, n.statics, evt, env); err != nil {
			return false, err
		}
		if env.drop != nil {
			return false, nil
		}
	}
	if n.counted {
		env.count(n, cOK)
	}
	if n.onSuccess == "next_stage" {
		env.moves++ // a child moves the event as its parent does (upstream)
	}
	return true, nil
}

func (n *node) checkWhitelist(evt *event.Event, env *runEnv) (bool, error) {
	var ips []string
	if evt.Type == event.OVFLW {
		for k := range evt.Overflow.Sources {
			ips = append(ips, k)
		}
	} else if v := evt.Meta["source_ip"]; v != "" {
		ips = append(ips, v)
	}
	for _, s := range ips {
		a, err := netaddr.ParseAddr(s)
		if err != nil {
			continue
		}
		for _, pfx := range n.wl.prefixes {
			if pfx.Contains(a) {
				return true, nil
			}
		}
	}
	for _, prog := range n.wl.exprs {
		out, err := env.run(prog)
		if err != nil {
			n.log.WithError(err).Debug("whitelist expression failed")
			continue
		}
		if b, ok := out.(bool); ok && b {
			return true, nil
		}
	}
	return false, nil
}

// applyStatics runs assignments; an empty or failing expression skips the
// assignment (syslog-logs assigns StrTime twice relying on that).
func (p *Pipeline) applyStatics(n *node, statics []static, evt *event.Event, env *runEnv) error {
	for i := range statics {
		s := &statics[i] // not a copy: a static is large
		value := s.cfg.Value
		if value == "" && s.expr != nil && s.expr.text != nil {
			value = s.expr.text(evt)
		} else if value == "" && s.expr != nil {
			out, err := env.run(s.expr)
			if err != nil {
				n.log.WithError(err).Debug("static expression failed")
				continue
			}
			value = staticText(out)
		}
		if value == "" && s.cfg.Method != "ParseDate" {
			continue
		}
		source := false
		switch {
		case s.date:
			// ParseDate, without its map: one entry
			if mt, ok := env.date.get(value, evt.StrTimeFormat); ok {
				evt.Enriched["MarshaledTime"] = mt
			}
		case s.cfg.Method != "":
			fn := p.enrichers[s.cfg.Method]
			if fn == nil {
				n.log.WithField("method", s.cfg.Method).Debug("unknown enrichment method")
				continue
			}
			for k, v := range fn(value, evt) {
				evt.Enriched[k] = v
			}
		case s.cfg.Parsed != "":
			evt.Parsed[s.cfg.Parsed] = value
		case s.cfg.Meta != "":
			evt.Meta[s.cfg.Meta] = value
			source = s.cfg.Meta == "source_ip"
		case s.cfg.Enriched != "":
			evt.Enriched[s.cfg.Enriched] = value
		case s.cfg.Target != "":
			if !setTarget(evt, s.cfg.Target, value) {
				if s.warned != nil && s.warned.CompareAndSwap(false, true) {
					n.log.WithField("target", s.cfg.Target).Warn("cannot assign static target (warned once; later lines at debug level)")
				} else {
					n.log.WithField("target", s.cfg.Target).Debug("cannot assign static target")
				}
			}
			source = strings.TrimPrefix(s.cfg.Target, "evt.") == "Meta.source_ip"
		}
		if source {
			// the address a scenario will blame: check where it came from
			if d := checkSource(n, evt, env, value); d != nil {
				delete(evt.Meta, "source_ip")
				env.drop = d
				return nil
			}
		}
	}
	return nil
}

// setTarget assigns a static target given as a path ("evt.StrTime",
// "evt.Parsed.x") or a bare field name ("MarshaledTime").
func setTarget(evt *event.Event, target, value string) bool {
	t := strings.TrimPrefix(target, "evt.")
	switch {
	case t == "StrTime":
		evt.StrTime = value
	case t == "MarshaledTime":
		evt.MarshaledTime = value
	case t == "StrTimeFormat":
		evt.StrTimeFormat = value
	case t == "WhitelistReason":
		evt.WhitelistReason = value
	case strings.HasPrefix(t, "Parsed."):
		evt.Parsed[strings.TrimPrefix(t, "Parsed.")] = value
	case strings.HasPrefix(t, "Meta."):
		evt.Meta[strings.TrimPrefix(t, "Meta.")] = value
	case strings.HasPrefix(t, "Enriched."):
		evt.Enriched[strings.TrimPrefix(t, "Enriched.")] = value
	case strings.HasPrefix(t, "Overflow.Alert.Source."):
		return setAlertSource(evt, strings.TrimPrefix(t, "Overflow.Alert.Source."), value)
	default:
		return setByPath(reflect.ValueOf(evt).Elem(), t, value)
	}
	return true
}

// setByPath is upstream's general static target: walk the dotted path
// through struct fields ("Line.Module") until a string field, or a map,
// whose entry named by the next element is set ("Line.Labels.x",
// "Unmarshaled.k"). Anything else is not a target.
func setByPath(v reflect.Value, path, value string) bool {
	for f := range strings.SplitSeq(path, ".") {
		switch v.Kind() {
		case reflect.Struct:
			v = v.FieldByName(f)
			if !v.IsValid() || !v.CanSet() {
				return false
			}
			if v.Kind() == reflect.Pointer {
				if v.IsNil() {
					return false
				}
				v = v.Elem()
			}
		case reflect.Map:
			// as upstream: the entry named by the next element, the
			// rest of the path ignored
			return setMapEntry(v, f, value)
		default:
			return false
		}
	}
	if v.Kind() != reflect.String || !v.CanSet() {
		return false
	}
	v.SetString(value)
	return true
}

// setMapEntry sets m[key] = value when a string fits the map's values.
func setMapEntry(m reflect.Value, key, value string) bool {
	if m.Type().Key().Kind() != reflect.String {
		return false
	}
	val := reflect.ValueOf(value)
	if !val.Type().AssignableTo(m.Type().Elem()) {
		return false
	}
	if m.IsNil() {
		if !m.CanSet() {
			return false
		}
		m.Set(reflect.MakeMap(m.Type()))
	}
	m.SetMapIndex(reflect.ValueOf(key).Convert(m.Type().Key()), val)
	return true
}

// setAlertSource sets a field of an overflow's alert source, as the
// postoverflow crowdsecurity/ipv6_to_range does (Value to the /64 range,
// Scope to Range). Upstream's alert source shares Scope and Value
// (pointers) with the overflow's Sources entry it was made from, so that
// entry shows the change too.
func setAlertSource(evt *event.Event, field, value string) bool {
	a := evt.Overflow.Alert
	if a == nil || a.Source == nil {
		return false
	}
	src := a.Source
	old := *src
	switch field {
	case "Value":
		src.Value = value
	case "Scope":
		src.Scope = value
	case "Range":
		src.Range = value
	case "IP":
		src.IP = value
	case "AsName":
		src.AsName = value
	case "AsNumber":
		src.AsNumber = value
	case "Cn":
		src.Cn = value
	default:
		return false
	}
	if field != "Value" && field != "Scope" {
		return true
	}
	for k, s := range evt.Overflow.Sources {
		if s.Scope == old.Scope && s.Value == old.Value && s.IP == old.IP {
			s.Scope, s.Value = src.Scope, src.Value
			evt.Overflow.Sources[k] = s
		}
	}
	return true
}

// runEnv is what one Parse call evaluates expressions with: the env map
// and a VM reused for every expression of the line, instead of the fresh
// VM and stack vm.Run allocates per call. Not for concurrent use.
type runEnv struct {
	vm  vm.VM
	env map[string]any
	evt *event.Event
	// date remembers the last ParseDate answer (see dateMemo).
	date dateMemo
	// hits are the line's successful groks, newest last; drop is set
	// when the line is dropped (see inject.go).
	hits []grokHit
	drop *Drop
	// moves counts the successful next_stage nodes since parseStages
	// last looked: each moves the event one stage on.
	moves int
	// shard takes this env's counts; ent caches the entry of the last
	// (source, type) seen.
	shard  *shardRef
	ent    *lineStats
	entKey srcKey
}

func (r *runEnv) run(p *program) (any, error) {
	if p.direct != nil {
		return p.direct(r.evt)
	}
	return r.vm.Run(p.vm, r.env)
}
