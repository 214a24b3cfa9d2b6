// Package ruleset loads what the agent runs from a hub folder: grok
// patterns, expression helpers and their data, the parser pipeline, the
// scenarios and the postoverflow pipeline, with collections resolved. It
// is the one loader behind hubtest, cscli explain and the agent, so they
// cannot disagree on what a hub means. It never reads logs and never
// fetches anything: missing data files stay missing.
package ruleset

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/agent/grok"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/leakybucket"
	"github.com/rampart-ips/rampart/agent/parser"
	"github.com/rampart-ips/rampart/rules/contexts"
	"github.com/rampart-ips/rampart/rules/patterns"
)

// Policy is what Load does with a broken item.
type Policy int

const (
	// FailFast stops at the first broken item: a daemon refuses to start
	// rather than run with rules silently missing.
	FailFast Policy = iota
	// SkipBroken leaves broken items out and lists them in
	// Ruleset.Skipped (tools that explore a hub).
	SkipBroken
)

// Spec says what to load from a hub.
type Spec struct {
	Collections   []string // hub names, resolved recursively
	Parsers       []string // hub names or paths (see hub.Resolve)
	Scenarios     []string
	PostOverflows []string
	// Enabled are items already resolved to files (hub.Hub.Enabled: what
	// a configuration folder enables); each is loaded from its file.
	Enabled *hub.Enabled
	Policy  Policy
	// DataDir holds the rules' data files and the GeoIP databases;
	// default <hub>/data.
	DataDir string
	// Enrich configures reverse_dns and GeoIP; its DataDir defaults to
	// DataDir.
	Enrich parser.EnrichConfig
}

// Items are hub item names by kind, after collections are resolved.
type Items struct {
	Collections, Parsers, Scenarios, PostOverflows []string
	// Contexts are the console contexts the collections name; they are
	// recorded, not loaded.
	Contexts []string
}

// ItemError is one item that failed to resolve or to load.
type ItemError struct {
	Kind string // collections, parsers, scenarios or postoverflows
	Name string
	File string // "" when the item was not found
	Err  error  // a *parser.LoadError or *leakybucket.LoadError when the file failed
}

func (e *ItemError) Error() string {
	return fmt.Sprintf("loading %s %s: %v", strings.TrimSuffix(e.Kind, "s"), e.Name, e.Err)
}

func (e *ItemError) Unwrap() error { return e.Err }

// Ruleset is a loaded set of rules. Parse and PostOverflow may run
// concurrently; scenarios are shared by the engines NewEngine makes.
type Ruleset struct {
	Hub           *hub.Hub
	Grok          *grok.Library
	Helpers       *exprhelpers.Helpers
	Parsers       *parser.Pipeline
	Scenarios     []*leakybucket.Scenario
	PostOverflows *parser.Pipeline
	Items         Items        // what was asked for, collections resolved
	Skipped       []*ItemError // broken items left out (SkipBroken only)
	// Contexts are the alert contexts of Items.Contexts, merged: key ->
	// expressions evaluated over an overflow's events (see NewEngine).
	Contexts map[string][]string
	// Simulated says which scenarios are in simulation (their alerts are
	// marked simulated); nil simulates nothing. Kept with the rules so
	// that loading them again (a reload) takes the new setting.
	Simulated func(scenario string) bool
	enrich    *parser.Enrichment
	files     map[string]hub.State // kind:name -> file, from Spec.Enabled
	// scenarioItem names each scenario's hub item: a file may hold
	// several scenarios (crowdsecurity/ssh-bf also defines
	// crowdsecurity/ssh-bf_user-enum).
	scenarioItem map[string]string
}

// IsSimulated reports whether scenario's alerts are simulated: the
// scenario, or the hub item that defines it, is in simulation, so that
// simulating an item covers every scenario of its file.
func (r *Ruleset) IsSimulated(scenario string) bool {
	if r.Simulated == nil {
		return false
	}
	if item, ok := r.scenarioItem[scenario]; ok && item != scenario && r.Simulated(item) {
		return true
	}
	return r.Simulated(scenario)
}

// State is an item's state as Spec.Enabled resolved it (false when the
// item came by name, not through Spec.Enabled).
func (r *Ruleset) State(kind, name string) (hub.State, bool) {
	st, ok := r.files[kind+":"+name]
	return st, ok
}

// ref resolves an item to its file: Spec.Enabled's, else the hub's.
func (r *Ruleset) ref(kind, ref string) (path, name, stage, version string, err error) {
	if st, ok := r.files[kind+":"+ref]; ok {
		return st.Path, st.Name, st.Stage, st.Version, nil
	}
	path, name, stage, err = r.Hub.Resolve(kind, ref)
	return path, name, stage, r.Hub.Version(kind, ref), err
}

// Resolve resolves spec's collections against h without loading anything:
// the items Load would load (hubtest coverage reads it). Under FailFast
// the error is the first unknown collection.
func Resolve(h *hub.Hub, spec Spec) (Items, error) {
	r := &Ruleset{Hub: h}
	err := r.resolve(spec, func(e *ItemError) error {
		if spec.Policy == SkipBroken {
			return nil
		}
		return e
	})
	return r.Items, err
}

// Load resolves spec against h and loads it. Under FailFast the error is
// the first broken item's *ItemError; under SkipBroken only a failure that
// is no item's (the pattern library, a GeoIP database) is an error.
func Load(h *hub.Hub, spec Spec) (_ *Ruleset, err error) {
	r := &Ruleset{Hub: h}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	fail := func(e *ItemError) error {
		if spec.Policy == SkipBroken {
			r.Skipped = append(r.Skipped, e)
			return nil
		}
		return e
	}
	if err := r.resolve(spec, fail); err != nil {
		return nil, err
	}
	if r.Grok, err = Patterns(h.Dir); err != nil {
		return nil, err
	}
	dataDir := spec.DataDir
	if dataDir == "" {
		dataDir = filepath.Join(h.Dir, "data")
	}
	r.Helpers = exprhelpers.New(dataDir)
	ecfg := spec.Enrich
	if ecfg.DataDir == "" {
		ecfg.DataDir = dataDir
	}
	if r.enrich, err = parser.OpenEnrichment(ecfg); err != nil {
		return nil, err
	}
	r.Helpers.SetGeoIP(r.enrich.GeoIP())
	methods := r.enrich.Methods()
	if r.Parsers, err = r.pipeline("parsers", r.Items.Parsers, methods, fail); err != nil {
		return nil, err
	}
	if r.PostOverflows, err = r.pipeline("postoverflows", r.Items.PostOverflows, methods, fail); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, ref := range r.Items.Scenarios {
		path, name, _, version, rerr := r.ref("scenarios", ref)
		if rerr != nil {
			if err := fail(&ItemError{Kind: "scenarios", Name: ref, Err: rerr}); err != nil {
				return nil, err
			}
			continue
		}
		if seen[path] {
			continue
		}
		seen[path] = true
		sc, lerr := leakybucket.Load(path, version, r.Helpers)
		if lerr != nil {
			if err := fail(&ItemError{Kind: "scenarios", Name: name, File: path, Err: lerr}); err != nil {
				return nil, err
			}
			continue
		}
		r.Scenarios = append(r.Scenarios, sc...)
		for _, one := range sc {
			if r.scenarioItem == nil {
				r.scenarioItem = map[string]string{}
			}
			r.scenarioItem[one.Name()] = name
		}
	}
	if err := r.loadContexts(fail); err != nil {
		return nil, err
	}
	return r, nil
}

// loadContexts merges the named alert contexts: an enabled file
// (Spec.Enabled), else the hub's contexts/<author>/<name>.yaml when it has
// one, else Rampart's built-in file of that name (rules/contexts). Their
// expressions are compiled once here so a broken one is reported at load,
// like any other item.
func (r *Ruleset) loadContexts(fail func(*ItemError) error) error {
	merged := map[string][]string{}
	for _, ref := range r.Items.Contexts {
		author, name, ok := strings.Cut(ref, "/")
		if !ok {
			author, name = "", ref
		}
		path := filepath.Join(r.Hub.Dir, "contexts", author, name+".yaml")
		if st, ok := r.files["contexts:"+ref]; ok {
			path = st.Path
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			path = "rules/contexts/" + name + ".yaml (built in)"
			data, err = fs.ReadFile(contexts.FS, name+".yaml")
			if errors.Is(err, fs.ErrNotExist) {
				log.WithField("context", ref).Warn("alert context not found in the hub nor built in: alerts go without it")
				continue
			}
		}
		if err == nil {
			err = leakybucket.MergeContexts(merged, data)
		}
		if err != nil {
			if err := fail(&ItemError{Kind: "contexts", Name: ref, File: path, Err: err}); err != nil {
				return err
			}
		}
	}
	if len(merged) == 0 {
		return nil
	}
	if err := leakybucket.NewEngine(nil, true).SetContexts(merged, r.Helpers); err != nil {
		return fail(&ItemError{Kind: "contexts", Name: strings.Join(r.Items.Contexts, ","), Err: err})
	}
	r.Contexts = merged
	return nil
}

// Patterns builds the grok library: Rampart's embedded patterns first,
// then the hub's patterns folder when there is one (first definition of a
// name wins, so the hub cannot shadow a pattern Rampart tuned).
func Patterns(hubDir string) (*grok.Library, error) {
	lib := grok.NewLibrary()
	if err := lib.LoadFS(patterns.FS, "."); err != nil {
		return nil, fmt.Errorf("loading Rampart's grok patterns: %w", err)
	}
	dir := filepath.Join(hubDir, "patterns")
	if _, err := os.Stat(dir); err == nil {
		if err := lib.LoadDir(dir); err != nil {
			return nil, fmt.Errorf("loading the hub's grok patterns: %w", err)
		}
	}
	return lib, nil
}

// pipeline loads one parser-like kind (parsers, postoverflows).
func (r *Ruleset) pipeline(kind string, refs []string, methods map[string]parser.Enricher, fail func(*ItemError) error) (*parser.Pipeline, error) {
	var items []parser.Item
	seen := map[string]bool{}
	for _, ref := range refs {
		path, name, stage, _, err := r.ref(kind, ref)
		if err != nil {
			if err := fail(&ItemError{Kind: kind, Name: ref, Err: err}); err != nil {
				return nil, err
			}
			continue
		}
		if seen[path] {
			continue
		}
		seen[path] = true
		items = append(items, parser.Item{Name: name, Stage: stage, Path: path})
	}
	p := parser.NewPipeline(r.Grok, r.Helpers, methods)
	for _, it := range parser.SortItems(items) {
		if err := p.Load(it); err != nil {
			if err := fail(&ItemError{Kind: kind, Name: it.Name, File: it.Path, Err: err}); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// resolve fills r.Items: the explicit lists first, then every collection's
// items, depth first, each name once.
func (r *Ruleset) resolve(spec Spec, fail func(*ItemError) error) error {
	seen := map[string]bool{}
	add := func(kind, name string) bool {
		key := kind + ":" + name
		if name == "" || seen[key] {
			return false
		}
		seen[key] = true
		return true
	}
	lists := []struct {
		refs []string
		dst  *[]string
		kind string
	}{
		{spec.Parsers, &r.Items.Parsers, "parsers"},
		{spec.Scenarios, &r.Items.Scenarios, "scenarios"},
		{spec.PostOverflows, &r.Items.PostOverflows, "postoverflows"},
	}
	for _, l := range lists {
		for _, ref := range l.refs {
			if add(l.kind, ref) {
				*l.dst = append(*l.dst, ref)
			}
		}
	}
	if en := spec.Enabled; en != nil {
		// Resolved already: collections are not walked again, their
		// items are in the list.
		r.files = map[string]hub.State{}
		for _, p := range en.Problems {
			name := p.Name
			if name == "" {
				name = p.File
			}
			if err := fail(&ItemError{Kind: p.Kind, Name: name, File: p.File, Err: p.Err}); err != nil {
				return err
			}
		}
		dst := map[string]*[]string{"collections": &r.Items.Collections, "parsers": &r.Items.Parsers, "scenarios": &r.Items.Scenarios,
			"postoverflows": &r.Items.PostOverflows, "contexts": &r.Items.Contexts}
		for _, st := range en.Items {
			r.files[st.Kind+":"+st.Name] = st
			if d := dst[st.Kind]; d != nil && add(st.Kind, st.Name) {
				*d = append(*d, st.Name)
			}
		}
		for _, c := range en.ContextRefs {
			if add("contexts", c) {
				r.Items.Contexts = append(r.Items.Contexts, c)
			}
		}
	}
	var walk func(name string) error
	walk = func(name string) error {
		if !add("collections", name) {
			return nil
		}
		info, err := r.Hub.Collection(name)
		if err != nil {
			file := ""
			if i, ok := r.Hub.Item("collections", name); ok {
				file = i.Path
			}
			return fail(&ItemError{Kind: "collections", Name: name, File: file, Err: err})
		}
		if len(info.Unsupported) > 0 {
			return fail(&ItemError{Kind: "collections", Name: name, File: info.Path,
				Err: fmt.Errorf("%s: %s", info.Path, strings.Join(info.Unsupported, "; "))})
		}
		r.Items.Collections = append(r.Items.Collections, name)
		for _, l := range lists {
			for _, dep := range info.Deps[l.kind] {
				if add(l.kind, dep) {
					*l.dst = append(*l.dst, dep)
				}
			}
		}
		for _, c := range info.Deps["contexts"] {
			if add("contexts", c) {
				r.Items.Contexts = append(r.Items.Contexts, c)
			}
		}
		for _, c := range info.Deps["collections"] {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	for _, c := range spec.Collections {
		if err := walk(c); err != nil {
			return err
		}
	}
	return nil
}

// Parse runs a log event through the parsers (see parser.Pipeline.Parse).
func (r *Ruleset) Parse(evt *event.Event, obs parser.Observer) error {
	return r.Parsers.Parse(evt, obs)
}

// NewEngine returns a bucket engine over the scenarios; replay is
// time-machine mode (event time drives the buckets).
func (r *Ruleset) NewEngine(replay bool) *leakybucket.Engine {
	e := leakybucket.NewEngine(r.Scenarios, replay)
	if len(r.Contexts) > 0 {
		// compiled without error at load: same expressions, same helpers
		_ = e.SetContexts(r.Contexts, r.Helpers)
	}
	return e
}

// PostOverflow runs an overflow through the postoverflow parsers (stages
// such as s00-enrich, s01-whitelist), which may enrich it or whitelist it.
// keep is false when it was whitelisted: the alert must be dropped. As
// upstream, an overflow that no postoverflow node accepts is still kept;
// so is one the postoverflows failed on (losing an alert is worse).
func (r *Ruleset) PostOverflow(evt *event.Event) (keep bool, err error) {
	if r.PostOverflows != nil && len(r.PostOverflows.Stages()) > 0 {
		if err := r.PostOverflows.Parse(evt, nil); err != nil {
			return true, fmt.Errorf("postoverflow: %w", err)
		}
	}
	return !evt.Overflow.Whitelisted && !evt.Whitelisted, nil
}

// HasPostOverflows reports whether any postoverflow parser is loaded.
func (r *Ruleset) HasPostOverflows() bool {
	return r.PostOverflows != nil && len(r.PostOverflows.Stages()) > 0
}

// Err joins the skipped items' errors (nil when none was skipped).
func (r *Ruleset) Err() error {
	errs := make([]error, len(r.Skipped))
	for i, e := range r.Skipped {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// Close releases the GeoIP databases.
func (r *Ruleset) Close() error {
	if r.enrich == nil {
		return nil
	}
	return r.enrich.Close()
}
