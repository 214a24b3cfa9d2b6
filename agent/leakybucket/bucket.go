// Package leakybucket runs hub-format scenarios over parsed events:
// leaky, trigger and conditional buckets keyed by groupby, with distinct,
// blackhole and cancel_on, turning overflows into alerts. Time comes from
// the events in replay (time-machine) mode and from the clock in live
// mode; results do not depend on goroutines, because pouring is sequential
// and per event deterministic. It never talks to the LAPI.
package leakybucket

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	log "github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
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

// Scenario is a compiled Config.
type Scenario struct {
	cfg       Config
	filter    *vm.Program
	groupby   *vm.Program
	distinct  *vm.Program
	condition *vm.Program
	cancelOn  *vm.Program
	leak      time.Duration
	blackhole time.Duration
	hash      string
	Version   string
}

// Name returns the scenario's name.
func (s *Scenario) Name() string { return s.cfg.Name }

// Load reads every scenario document of a file.
func Load(path, version string, helpers *exprhelpers.Helpers) ([]*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading scenario: %w", err)
	}
	sum := sha256.Sum256(data)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var out []*Scenario
	for i := 0; ; i++ {
		var cfg Config
		err := dec.Decode(&cfg)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		if cfg.Name == "" {
			continue
		}
		s, err := compile(cfg, helpers)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", path, cfg.Name, err)
		}
		s.hash, s.Version = hex.EncodeToString(sum[:]), version
		out = append(out, s)
	}
	return out, nil
}

func compile(cfg Config, helpers *exprhelpers.Helpers) (*Scenario, error) {
	s := &Scenario{cfg: cfg}
	if len(cfg.Data) > 0 && helpers != nil {
		var files []exprhelpers.DataFile
		for _, d := range cfg.Data {
			files = append(files, exprhelpers.DataFile{SourceURL: d.SourceURL, DestFile: d.DestFile, Type: d.Type, Strategy: d.Strategy, Size: d.Size, TTL: d.TTL})
		}
		if err := helpers.Load(files); err != nil {
			return nil, err
		}
	}
	opts := []expr.Option{expr.Env(map[string]any{"evt": &event.Event{}})}
	if helpers != nil {
		opts = append(opts, helpers.Options()...)
	}
	c := func(src, what string, qopts ...expr.Option) (*vm.Program, error) {
		if strings.TrimSpace(src) == "" {
			return nil, nil
		}
		o := opts
		if len(qopts) > 0 {
			o = append(append([]expr.Option{}, helperOpts(helpers)...), qopts...)
		}
		p, err := expr.Compile(src, o...)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", what, src, err)
		}
		return p, nil
	}
	var err error
	switch cfg.Type {
	case "leaky", "trigger", "conditional":
	case "counter":
		return nil, fmt.Errorf("scenario type counter is not supported yet")
	default:
		return nil, fmt.Errorf("unknown scenario type %q", cfg.Type)
	}
	if s.filter, err = c(cfg.Filter, "filter"); err != nil {
		return nil, err
	}
	if s.groupby, err = c(cfg.GroupBy, "groupby"); err != nil {
		return nil, err
	}
	if s.distinct, err = c(cfg.Distinct, "distinct"); err != nil {
		return nil, err
	}
	if s.cancelOn, err = c(cfg.CancelOn, "cancel_on"); err != nil {
		return nil, err
	}
	if s.condition, err = c(cfg.Condition, "condition", expr.Env(map[string]any{"queue": &Queue{}, "leaky": &bucketView{}})); err != nil {
		return nil, err
	}
	if cfg.LeakSpeed != "" {
		if s.leak, err = models.ParseDuration(cfg.LeakSpeed); err != nil {
			return nil, fmt.Errorf("leakspeed: %w", err)
		}
	}
	if cfg.Blackhole != "" {
		if s.blackhole, err = models.ParseDuration(cfg.Blackhole); err != nil {
			return nil, fmt.Errorf("blackhole: %w", err)
		}
	}
	if cfg.Type == "leaky" && (s.leak <= 0 || cfg.Capacity <= 0) {
		return nil, fmt.Errorf("a leaky bucket needs a capacity and a leakspeed")
	}
	return s, nil
}

func helperOpts(h *exprhelpers.Helpers) []expr.Option {
	if h == nil {
		return nil
	}
	return h.Options()
}

// Queue is what conditions see as `queue`.
type Queue struct {
	Queue []event.Event
}

type bucketView struct{}

type bucketKey struct {
	scenario int
	key      string
}

type bucket struct {
	// tokens is kept in nanoseconds of leak (one token = leakspeed) so
	// refills are exact: floating point made 540s/60s fall just short of 9.
	tokens   int64
	last     time.Time
	first    time.Time
	queue    []event.Event
	poured   int
	distinct map[string]bool
}

// Engine pours events into the scenarios' buckets.
type Engine struct {
	scenarios  []*Scenario
	buckets    map[bucketKey]*bucket
	blackholes map[bucketKey]time.Time
	replay     bool
	log        *log.Entry
	lastGC     time.Time
}

// NewEngine builds an engine; replay selects time-machine mode (event
// timestamps) over the clock.
func NewEngine(scenarios []*Scenario, replay bool) *Engine {
	return &Engine{scenarios: scenarios, buckets: map[bucketKey]*bucket{}, blackholes: map[bucketKey]time.Time{},
		replay: replay, log: log.WithField("component", "buckets")}
}

// Buckets returns how many buckets are alive.
func (e *Engine) Buckets() int { return len(e.buckets) }

func (e *Engine) eventTime(evt *event.Event) time.Time {
	if e.replay {
		if t, err := time.Parse(time.RFC3339Nano, evt.MarshaledTime); err == nil {
			return t
		}
		if !evt.Time.IsZero() {
			return evt.Time
		}
	}
	return time.Now()
}

func runString(p *vm.Program, env map[string]any) (string, bool) {
	out, err := vm.Run(p, env)
	if err != nil {
		return "", false
	}
	switch o := out.(type) {
	case string:
		return o, true
	case nil:
		return "", true
	default:
		return fmt.Sprint(o), true
	}
}

func runBool(p *vm.Program, env map[string]any) bool {
	out, err := vm.Run(p, env)
	if err != nil {
		return false
	}
	b, _ := out.(bool)
	return b
}

// Pour sends one parsed event to every scenario and returns the overflows
// it caused, in scenario order.
func (e *Engine) Pour(evt *event.Event) []event.Event {
	now := e.eventTime(evt)
	env := map[string]any{"evt": evt}
	var out []event.Event
	for i, s := range e.scenarios {
		if s.filter != nil && !runBool(s.filter, env) {
			continue
		}
		key := ""
		if s.groupby != nil {
			k, ok := runString(s.groupby, env)
			if !ok {
				continue
			}
			key = k
		}
		bk := bucketKey{i, key}
		if until, ok := e.blackholes[bk]; ok {
			if now.Before(until) {
				continue
			}
			delete(e.blackholes, bk)
		}
		b := e.buckets[bk]
		if b != nil && s.leak > 0 && s.cfg.Capacity > 0 && now.Sub(b.last) >= time.Duration(s.cfg.Capacity)*s.leak {
			// fully leaked: an underflow, start over
			delete(e.buckets, bk)
			b = nil
		}
		if b != nil && s.cfg.Type == "conditional" && s.leak > 0 && now.Sub(b.last) >= s.leak {
			// expired, as gc would have decided: the outcome must not
			// depend on whether other keys' events made gc run meanwhile
			delete(e.buckets, bk)
			b = nil
		}
		if s.cancelOn != nil && runBool(s.cancelOn, env) {
			delete(e.buckets, bk)
			continue
		}
		var dv string
		if s.distinct != nil {
			v, ok := runString(s.distinct, env)
			if !ok {
				continue
			}
			dv = v
			if b != nil && b.distinct[dv] {
				continue
			}
		}
		if b == nil {
			b = &bucket{tokens: int64(s.cfg.Capacity) * int64(s.leak), last: now, first: now, distinct: map[string]bool{}}
			e.buckets[bk] = b
		}
		if s.distinct != nil {
			b.distinct[dv] = true
		}
		qe := copyEvent(evt)
		qe.Time = now
		b.queue = append(b.queue, qe)
		b.poured++
		// The queue keeps the last capacity+1 events (cache_size when set),
		// as upstream; events_count still counts every event poured.
		keep := s.cfg.Capacity + 1
		if s.cfg.CacheSize > 0 {
			keep = s.cfg.CacheSize
		}
		if s.cfg.Capacity >= 0 && len(b.queue) > keep {
			b.queue = append(b.queue[:0:0], b.queue[len(b.queue)-keep:]...)
		}
		overflow := false
		switch s.cfg.Type {
		case "trigger":
			overflow = true
		case "leaky":
			if el := now.Sub(b.last); el > 0 {
				b.tokens = min(int64(s.cfg.Capacity)*int64(s.leak), b.tokens+int64(el))
			}
			b.last = now
			if b.tokens >= int64(s.leak) {
				b.tokens -= int64(s.leak)
			} else {
				overflow = true
			}
		case "conditional":
			b.last = now
			if s.condition != nil {
				out, err := vm.Run(s.condition, map[string]any{"queue": &Queue{Queue: b.queue}, "leaky": &bucketView{}})
				if err == nil {
					overflow, _ = out.(bool)
				}
			}
		}
		if overflow {
			out = append(out, e.overflow(s, key, b, now))
			delete(e.buckets, bk)
			if s.blackhole > 0 {
				e.blackholes[bk] = now.Add(s.blackhole)
			}
		}
	}
	if now.Sub(e.lastGC) > time.Minute {
		e.gc(now)
	}
	return out
}

// gc drops fully leaked buckets and ended blackholes so memory stays
// bounded on long replays.
func (e *Engine) gc(now time.Time) {
	e.lastGC = now
	for k, b := range e.buckets {
		s := e.scenarios[k.scenario]
		if s.leak > 0 && s.cfg.Capacity > 0 && now.Sub(b.last) >= time.Duration(s.cfg.Capacity)*s.leak {
			delete(e.buckets, k)
		}
		if s.cfg.Type == "conditional" && s.leak > 0 && now.Sub(b.last) >= s.leak {
			delete(e.buckets, k)
		}
	}
	for k, until := range e.blackholes {
		if now.After(until) {
			delete(e.blackholes, k)
		}
	}
}

func copyEvent(e *event.Event) event.Event {
	c := *e
	c.Parsed = cloneMap(e.Parsed)
	c.Meta = cloneMap(e.Meta)
	c.Enriched = cloneMap(e.Enriched)
	return c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// overflow turns a full bucket into an overflow event with its alert.
func (e *Engine) overflow(s *Scenario, key string, b *bucket, now time.Time) event.Event {
	last := b.queue[len(b.queue)-1]
	start := b.first
	stop := e.eventTime(&last)
	ip := last.Meta["source_ip"]
	src := models.Source{Scope: "Ip", Value: ip, IP: ip, Range: last.Enriched["SourceRange"], AsNumber: last.Enriched["ASNNumber"],
		AsName: last.Enriched["ASNOrg"], Cn: last.Enriched["IsoCode"]}
	remediation := false
	if v, ok := s.cfg.Labels["remediation"].(bool); ok {
		remediation = v
	}
	alert := &models.Alert{
		Scenario: s.cfg.Name, ScenarioHash: s.hash, ScenarioVersion: s.Version,
		Message:     fmt.Sprintf("Ip %s performed '%s' (%d events over %s) at %s", ip, s.cfg.Name, b.poured, stop.Sub(start), stop),
		EventsCount: int32(b.poured), Capacity: int32(s.cfg.Capacity), Leakspeed: s.cfg.LeakSpeed,
		StartAt: start.UTC().Format(time.RFC3339), StopAt: stop.UTC().Format(time.RFC3339),
		Remediation: remediation, Kind: "crowdsec", Source: &src,
	}
	for _, qe := range b.queue {
		keys := make([]string, 0, len(qe.Meta))
		for k := range qe.Meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		me := &models.Event{Timestamp: qe.MarshaledTime}
		for _, k := range keys {
			me.Meta = append(me.Meta, models.Meta{Key: k, Value: qe.Meta[k]})
		}
		alert.Events = append(alert.Events, me)
	}
	return event.Event{Type: event.OVFLW, Time: now, MarshaledTime: now.UTC().Format(time.RFC3339),
		Overflow: event.RuntimeAlert{Mapkey: key, Reprocess: s.cfg.Reprocess, Alert: alert, Sources: map[string]models.Source{ip: src}}}
}
