package leakybucket

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/internal/hubformat"
	"github.com/rampart-ips/rampart/models"
)

// Config is one scenario document in the hub's YAML.
type Config struct {
	Type           string         `yaml:"type"`
	Name           string         `yaml:"name"`
	Description    string         `yaml:"description"`
	Filter         string         `yaml:"filter"`
	GroupBy        string         `yaml:"groupby"`
	Distinct       string         `yaml:"distinct"`
	Capacity       int            `yaml:"capacity"`
	LeakSpeed      string         `yaml:"leakspeed"`
	Duration       string         `yaml:"duration"`
	Blackhole      string         `yaml:"blackhole"`
	Labels         map[string]any `yaml:"labels"`
	Reprocess      bool           `yaml:"reprocess"`
	CacheSize      int            `yaml:"cache_size"`
	OverflowFilter string         `yaml:"overflow_filter"`
	Condition      string         `yaml:"condition"`
	CancelOn       string         `yaml:"cancel_on"`
	Data           []struct {
		SourceURL string `yaml:"source_url"`
		DestFile  string `yaml:"dest_file"`
		Type      string `yaml:"type"`
		Strategy  string `yaml:"strategy"`
		Size      int    `yaml:"size"`
		TTL       string `yaml:"ttl"`
	} `yaml:"data"`
	Format     any      `yaml:"format"`
	References []string `yaml:"references"`
	Debug      bool     `yaml:"debug"`
	Author     string   `yaml:"author"`
	ScopeType  struct {
		Type       string `yaml:"type"`
		Expression string `yaml:"expression"`
	} `yaml:"scope"`
}

// upstreamOnly are the scenario keys upstream reads and Rampart does not
// implement: the strict decoding refuses them, with what they are for.
var upstreamOnly = map[string]string{
	"bayesian_prior":      "the bayesian scenario type",
	"bayesian_threshold":  "the bayesian scenario type",
	"bayesian_conditions": "the bayesian scenario type",
	"profiling":           "upstream's per-scenario profiling",
	"simulated":           "simulation set in a scenario file (simulation.yaml sets it)",
	"version":             "a version set in a scenario file (the hub index gives it)",
}

// Scopes an alert's source can have; Ip is the default.
const (
	ScopeIP    = "Ip"
	ScopeRange = "Range"
)

// Scenario is a compiled Config. It is read-only once loaded, so engines in
// several goroutines may share it.
type Scenario struct {
	cfg       Config
	filter    *vm.Program
	groupby   *vm.Program
	distinct  *vm.Program
	condition *vm.Program
	cancelOn  *vm.Program
	// The per-event programs that compiled to a single Go closure
	// (exprhelpers.DirectFrame) also keep it here, to run without the VM.
	filterFn, groupbyFn, distinctFn, cancelOnFn directFn
	// helpers compiled the programs (nil: none were given); the engine
	// tests the filters' leading guards and literals with them, sharing
	// the filters' frame (Engine.indexGuards, newGate).
	helpers        *exprhelpers.Helpers
	overflowFilter *vm.Program
	scope          string
	scopeValue     *vm.Program
	// window, when set, lets a conditional bucket forget events its
	// condition can no longer read (see queueWindow).
	window []windowPred
	// windowCond is the condition reading the window's lists (see
	// compileWindow), for buckets that trim; nil when the rewrite failed.
	windowCond *vm.Program
	reads      fieldMask
	leak       time.Duration
	blackhole  time.Duration
	duration   time.Duration
	hash       string
	Version    string
	// dataSum digests the data files the scenario loads (see Identity).
	dataSum string
	// identity says what the scenario is; see Identity.
	identity string
}

// Identity digests everything that defines the scenario: its file, its
// name within it (and its rank among the file's scenarios of that name),
// and the content of the data files it loads. Two loads
// with the same identity behave the same, so a reload keeps the buckets
// of such a scenario (Engine.Adopt).
func (s *Scenario) Identity() string { return s.identity }

// Name returns the scenario's name.
func (s *Scenario) Name() string { return s.cfg.Name }

// LoadError says where a scenario file is wrong.
type LoadError struct {
	File string
	Doc  int    // 1-based YAML document, 0 for the whole file
	Item string // the scenario's name, when the document has one
	Line int    // YAML line of Key (or of the document), 0 when unknown
	Key  string // the offending key: filter, groupby, condition, leakspeed...
	Err  error
}

func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Doc > 0 {
		fmt.Fprintf(&b, ": document %d", e.Doc)
	}
	if e.Item != "" {
		fmt.Fprintf(&b, " (%s)", e.Item)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ", line %d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *LoadError) Unwrap() error { return e.Err }

// keyError is a compile failure tied to one key of the document, so Load
// can add that key's line.
type keyError struct {
	key string
	err error
}

func (e *keyError) Error() string { return e.key + ": " + e.err.Error() }

// Load reads every scenario document of a file. Errors are *LoadError.
func Load(path, version string, helpers *exprhelpers.Helpers) ([]*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &LoadError{File: path, Err: err}
	}
	return load(path, data, version, helpers)
}

func load(path string, data []byte, version string, helpers *exprhelpers.Helpers) (out []*Scenario, err error) {
	doc := 0
	defer func() {
		// The YAML and expr libraries are third-party parsers fed with
		// untrusted files: a bug in them must fail one file, not the agent.
		if r := recover(); r != nil {
			out, err = nil, &LoadError{File: path, Doc: doc, Err: fmt.Errorf("internal error: %v", r)}
		}
	}()
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	// Two decoders walk the same documents in step: the typed one rejects
	// unknown keys, the node one knows each key's line.
	typed := yaml.NewDecoder(bytes.NewReader(data))
	typed.KnownFields(true)
	nodes := yaml.NewDecoder(bytes.NewReader(data))
	// how many scenarios of each name came before: same-named documents
	// of one file (which share buckets, see sharePeers) each keep their
	// own identity
	named := map[string]int{}
	for doc = 1; ; doc++ {
		var n yaml.Node
		err := nodes.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &LoadError{File: path, Doc: doc, Err: err}
		}
		var cfg Config
		if err := typed.Decode(&cfg); err != nil {
			le := &LoadError{File: path, Doc: doc, Item: scalarAt(&n, "name"), Err: err} // yaml's own message has the line
			if ke := hubformat.UnknownKey(err, upstreamOnly); ke != nil {
				le.Key, le.Line, le.Err = ke.Key, ke.Line, ke.Err
			}
			return nil, le
		}
		if cfg.Name == "" {
			continue
		}
		s, err := compile(cfg, helpers)
		if err != nil {
			le := &LoadError{File: path, Doc: doc, Item: cfg.Name, Line: n.Line, Err: err}
			var ke *keyError
			if errors.As(err, &ke) {
				le.Key, le.Err = ke.key, ke.err
				if l := keyLine(&n, ke.key); l > 0 {
					le.Line = l
				}
			}
			return nil, le
		}
		s.hash, s.Version = hash, version
		nth := named[cfg.Name]
		named[cfg.Name]++
		id := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%s\x00%s", hash, cfg.Name, nth, version, s.dataSum))
		s.identity = hex.EncodeToString(id[:])
		out = append(out, s)
	}
	return out, nil
}

// mapping returns a document's top-level mapping, or nil.
func mapping(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	return n
}

func keyLine(n *yaml.Node, key string) int {
	if m := mapping(n); m != nil {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				return m.Content[i].Line
			}
		}
	}
	return 0
}

func scalarAt(n *yaml.Node, key string) string {
	if m := mapping(n); m != nil {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.ScalarNode {
				return m.Content[i+1].Value
			}
		}
	}
	return ""
}

// envOptions are the compile options for an expression over env.
func envOptions(helpers *exprhelpers.Helpers, env map[string]any) []expr.Option {
	opts := []expr.Option{expr.Env(env)}
	if helpers != nil {
		opts = append(opts, helpers.Options()...)
	}
	return opts
}

func evtEnv() map[string]any { return map[string]any{"evt": &event.Event{}} }

func queueEnv() map[string]any {
	return map[string]any{"queue": &Queue{}, "leaky": &bucketView{}}
}

func overflowEnv() map[string]any {
	return map[string]any{"queue": &Queue{}, "leaky": &bucketView{}, "signal": &event.RuntimeAlert{}}
}

func compile(cfg Config, helpers *exprhelpers.Helpers) (*Scenario, error) {
	s := &Scenario{cfg: cfg, helpers: helpers}
	switch cfg.Type {
	case "leaky", "trigger", "conditional", "counter":
	case "bayesian":
		return nil, &keyError{"type", errors.New("bayesian scenarios are not supported by Rampart")}
	default:
		return nil, &keyError{"type", fmt.Errorf("unknown scenario type %q", cfg.Type)}
	}
	if err := hubformat.CheckFormat(cfg.Format); err != nil {
		return nil, &keyError{"format", err}
	}
	// upstream refuses a scenario without a filter rather than pour every
	// event into it
	if strings.TrimSpace(cfg.Filter) == "" {
		return nil, &keyError{"filter", errors.New("a scenario needs a filter")}
	}
	if len(cfg.Data) > 0 && helpers != nil {
		var files []exprhelpers.DataFile
		for _, d := range cfg.Data {
			files = append(files, exprhelpers.DataFile{SourceURL: d.SourceURL, DestFile: d.DestFile, Type: d.Type, Strategy: d.Strategy, Size: d.Size, TTL: d.TTL})
		}
		if err := helpers.Load(files); err != nil {
			return nil, &keyError{"data", err}
		}
		s.dataSum = dataSum(helpers.DataDir(), files)
	}
	var err error
	exprs := []struct {
		key, src string
		dst      **vm.Program
		env      map[string]any
		queued   bool // reads queued copies, not the event being poured
		fn       *directFn
	}{
		{"filter", cfg.Filter, &s.filter, evtEnv(), false, &s.filterFn},
		{"groupby", cfg.GroupBy, &s.groupby, evtEnv(), false, &s.groupbyFn},
		{"distinct", cfg.Distinct, &s.distinct, evtEnv(), false, &s.distinctFn},
		{"cancel_on", cfg.CancelOn, &s.cancelOn, evtEnv(), false, &s.cancelOnFn},
		{"condition", cfg.Condition, &s.condition, queueEnv(), true, nil},
		{"overflow_filter", cfg.OverflowFilter, &s.overflowFilter, overflowEnv(), true, nil},
		{"scope", cfg.ScopeType.Expression, &s.scopeValue, evtEnv(), true, nil},
	}
	for _, x := range exprs {
		if strings.TrimSpace(x.src) == "" {
			continue
		}
		if *x.dst, err = expr.Compile(x.src, envOptions(helpers, x.env)...); err != nil {
			return nil, &keyError{x.key, err}
		}
		if x.queued {
			s.reads |= fieldsIn(x.src)
		} else if f, ok := exprhelpers.DirectFrame(*x.dst); ok && x.fn != nil {
			*x.fn = f
		}
	}
	durations := []struct {
		key, src string
		dst      *time.Duration
	}{{"leakspeed", cfg.LeakSpeed, &s.leak}, {"blackhole", cfg.Blackhole, &s.blackhole}, {"duration", cfg.Duration, &s.duration}}
	for _, d := range durations {
		if d.src == "" {
			continue
		}
		if *d.dst, err = models.ParseDuration(d.src); err != nil {
			return nil, &keyError{d.key, err}
		}
		if *d.dst < 0 {
			return nil, &keyError{d.key, fmt.Errorf("negative duration %q", d.src)}
		}
	}
	switch cfg.Type {
	case "leaky":
		if s.leak <= 0 || cfg.Capacity <= 0 {
			return nil, &keyError{"capacity", errors.New("a leaky bucket needs a capacity and a leakspeed")}
		}
	case "counter":
		// upstream: a counter has no capacity (-1) and overflows when its
		// duration has elapsed
		if s.duration <= 0 {
			return nil, &keyError{"duration", errors.New("a counter needs a duration")}
		}
		if cfg.Capacity != -1 && cfg.Capacity != 0 {
			return nil, &keyError{"capacity", errors.New("a counter's capacity must be -1")}
		}
	case "trigger":
		// upstream refuses any other: a trigger overflows on its first event
		if cfg.Capacity != 0 {
			return nil, &keyError{"capacity", errors.New("a trigger's capacity must be 0")}
		}
	case "conditional":
		if s.condition == nil {
			return nil, &keyError{"condition", errors.New("a conditional bucket needs a condition")}
		}
		if s.leak <= 0 {
			return nil, &keyError{"leakspeed", errors.New("a conditional bucket needs a leakspeed")}
		}
	}
	if cfg.CacheSize < 0 {
		return nil, &keyError{"cache_size", fmt.Errorf("negative cache_size %d", cfg.CacheSize)}
	}
	switch t := cfg.ScopeType.Type; {
	case t == "" || strings.EqualFold(t, ScopeIP):
		s.scope = ScopeIP
		if s.scopeValue != nil {
			return nil, &keyError{"scope", errors.New("the Ip scope takes no expression")}
		}
	case strings.EqualFold(t, ScopeRange):
		s.scope = ScopeRange
	default:
		s.scope = t
		if s.scopeValue == nil {
			return nil, &keyError{"scope", fmt.Errorf("scope %q needs an expression", t)}
		}
	}
	// Trimming is off when overflow_filter reads the queue: it would see
	// fewer events than upstream's.
	if s.condition != nil && cfg.Type == "conditional" && !strings.Contains(cfg.OverflowFilter, "queue") {
		s.window, s.windowCond = compileWindow(cfg.Condition, helpers)
	}
	return s, nil
}

// fieldMask says which of an event's bulky fields a queued copy keeps.
type fieldMask uint8

const (
	readsParsed fieldMask = 1 << iota
	readsLine
	readsUnmarshaled
	// fieldBits is how many bits a fieldMask uses.
	fieldBits = iota
)

// fieldsIn tells which bulky event fields an expression may read. It looks
// at the source text, so it also catches evt["Parsed"]; a field name built
// at run time would be missed, which no hub rule does.
func fieldsIn(src string) fieldMask {
	var m fieldMask
	if strings.Contains(src, "Parsed") {
		m |= readsParsed
	}
	if strings.Contains(src, "Line") {
		m |= readsLine
	}
	if strings.Contains(src, "Unmarshaled") {
		m |= readsUnmarshaled
	}
	return m
}

// dataSum digests the content of a scenario's data files, so that an
// edited list (a new bad user-agent) counts as a changed scenario.
func dataSum(dir string, files []exprhelpers.DataFile) string {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f.DestFile + "\x00"))
		if data, err := os.ReadFile(filepath.Join(dir, f.DestFile)); err == nil {
			h.Write(data)
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
