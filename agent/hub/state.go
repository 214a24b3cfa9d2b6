package hub

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// InstallKinds are the folders of a configuration folder whose files the
// daemon loads, as upstream's /etc/crowdsec: parsers/<stage>/...,
// postoverflows/<stage>/..., scenarios/, collections/ and contexts/, at any
// depth below (Rampart installs into per-author folders).
var InstallKinds = []string{"parsers", "postoverflows", "scenarios", "collections", "contexts"}

// staged kinds keep their files under a stage folder.
func staged(kind string) bool { return kind == "parsers" || kind == "postoverflows" }

// ConfigSource is ByConfig's value: the configuration key that enables
// items loaded straight from the hub folder.
const ConfigSource = "crowdsec_service.collections"

// State is one enabled item: what the daemon loads and how it relates to
// the hub index, in upstream's words.
type State struct {
	Kind, Name, Stage string
	// Path is the file loaded: an installed file under the configuration
	// folder, or the hub folder's own file for an item ByConfig enables.
	Path string
	// Local: no hub index lists the item (a hand-written rule).
	Local bool
	// Tainted: the file is no published version of the item, or (a
	// collection) one of its items is missing.
	Tainted bool
	// Version is the published version the file is ("" when tainted or
	// local); Latest is the index's current version.
	Version, Latest string
	// ByConfig is ConfigSource when the item is enabled through the
	// configuration's collections list rather than by a file.
	ByConfig string
	// Note says why an item is tainted.
	Note string
	// Linked: Path is the hub folder's own file (a symlink into it, as
	// cscli installs, or ByConfig), so upgrading the hub file upgrades it.
	Linked bool
}

// UpToDate reports whether the file is the index's current version.
func (s State) UpToDate() bool { return !s.Local && !s.Tainted && s.Version == s.Latest }

// Status is upstream's status text: enabled, enabled,local,
// enabled,tainted or enabled,update-available.
func (s State) Status() string {
	switch {
	case s.Local:
		return "enabled,local"
	case s.Tainted:
		return "enabled,tainted"
	case !s.UpToDate():
		return "enabled,update-available"
	}
	return "enabled"
}

// Problem is an item that cannot be enabled: a collection the
// configuration names that the hub lacks, a file that cannot be read, a
// parser outside a stage folder, an item installed twice.
type Problem struct {
	Kind, Name, File string
	Err              error
}

func (p *Problem) Error() string {
	what := p.Name
	if what == "" {
		what = p.File
	}
	return fmt.Sprintf("%s %s: %v", strings.TrimSuffix(p.Kind, "s"), what, p.Err)
}

func (p *Problem) Unwrap() error { return p.Err }

// Enabled is what a configuration enables.
type Enabled struct {
	// Items are sorted by kind (InstallKinds order), then name.
	Items []State
	// ContextRefs are alert contexts the enabled collections name that no
	// file provides: loaded from the hub's contexts folder or Rampart's
	// built-in ones (agent/ruleset).
	ContextRefs []string
	// Problems are items that cannot load (the daemon stops on them
	// unless skip_broken_rules); Warnings are loaded around (a second
	// file of an item already installed, which is ignored).
	Problems []*Problem
	Warnings []string
}

// Get returns the enabled item kind/name.
func (e *Enabled) Get(kind, name string) (State, bool) {
	for _, s := range e.Items {
		if s.Kind == kind && s.Name == name {
			return s, true
		}
	}
	return State{}, false
}

// Of returns the enabled items of one kind.
func (e *Enabled) Of(kind string) []State {
	var out []State
	for _, s := range e.Items {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

// Enabled resolves what configDir and the configuration's collections
// list enable: every item file under configDir's InstallKinds folders
// (upstream's rule: what is there is loaded), then the collections named
// in config, recursively, from the hub folder, for the items no file
// provides. The daemon loads exactly these; cscli lists them.
func (h *Hub) Enabled(configDir string, collections []string) *Enabled {
	e := &Enabled{}
	seen := map[string]int{} // kind:name -> index in e.Items
	id := h.newIdentifier()
	for _, kind := range InstallKinds {
		root := filepath.Join(configDir, kind)
		var files []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p != root || !errors.Is(err, fs.ErrNotExist) {
					e.Problems = append(e.Problems, &Problem{Kind: kind, File: p, Err: err})
				}
				return nil
			}
			if strings.HasPrefix(d.Name(), ".") && p != root {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				files = append(files, p)
			}
			return nil
		})
		sort.Strings(files)
		for _, p := range files {
			st, err := id.identify(kind, root, p)
			if err != nil {
				e.Problems = append(e.Problems, &Problem{Kind: kind, Name: st.Name, File: p, Err: err})
				continue
			}
			key := kind + ":" + st.Name
			if i, dup := seen[key]; dup {
				e.Warnings = append(e.Warnings, fmt.Sprintf("%s %s is installed twice: %s is loaded, %s ignored; remove one",
					strings.TrimSuffix(kind, "s"), st.Name, e.Items[i].Path, p))
				continue
			}
			seen[key] = len(e.Items)
			e.Items = append(e.Items, st)
		}
	}
	// The configuration's collections, from the hub folder.
	walked := map[string]bool{}
	var walk func(kind, name, from string)
	walk = func(kind, name, from string) {
		key := kind + ":" + name
		if name == "" || walked[key] {
			return
		}
		walked[key] = true
		if _, ok := seen[key]; !ok {
			it, ok := h.index[kind][name]
			if !ok {
				e.Problems = append(e.Problems, &Problem{Kind: kind, Name: name, Err: fmt.Errorf("not in the hub index of %s (named by %s)", h.Dir, from)})
				return
			}
			st := State{Kind: kind, Name: name, Stage: it.Stage, Path: filepath.Join(h.Dir, it.Path), Latest: it.Version, ByConfig: ConfigSource, Linked: true}
			if data, err := os.ReadFile(st.Path); err != nil {
				e.Problems = append(e.Problems, &Problem{Kind: kind, Name: name, File: st.Path, Err: err})
				return
			} else {
				h.versionOf(&st, data)
			}
			seen[key] = len(e.Items)
			e.Items = append(e.Items, st)
		}
		if kind != "collections" {
			return
		}
		info, err := h.Collection(name)
		if err != nil {
			e.Problems = append(e.Problems, &Problem{Kind: kind, Name: name, Err: err})
			return
		}
		for _, k := range []string{"parsers", "scenarios", "postoverflows", "collections"} {
			for _, dep := range info.Deps[k] {
				walk(k, dep, "collection "+name)
			}
		}
	}
	for _, c := range collections {
		walk("collections", c, ConfigSource)
	}
	// Installed collections: their items must be enabled too, else the
	// collection is tainted (upstream's rule); contexts they name come
	// from the hub or Rampart's built-in ones when no file provides them.
	for i := range e.Items {
		st := &e.Items[i]
		if st.Kind != "collections" {
			continue
		}
		if data, err := os.ReadFile(st.Path); err == nil {
			if u := unsupportedLists(data); len(u) > 0 {
				e.Problems = append(e.Problems, &Problem{Kind: st.Kind, Name: st.Name, File: st.Path, Err: errors.New(strings.Join(u, "; "))})
			}
		}
		deps := h.collectionDeps(*st)
		var missing []string
		for _, k := range []string{"parsers", "scenarios", "postoverflows", "collections"} {
			for _, dep := range deps[k] {
				if _, ok := seen[k+":"+dep]; !ok {
					missing = append(missing, k+"/"+dep)
				}
			}
		}
		if len(missing) > 0 {
			st.Tainted, st.Note = true, "missing "+strings.Join(missing, ", ")
		}
		for _, c := range deps["contexts"] {
			if _, ok := seen["contexts:"+c]; !ok && !slices.Contains(e.ContextRefs, c) {
				e.ContextRefs = append(e.ContextRefs, c)
			}
		}
	}
	order := map[string]int{}
	for i, k := range InstallKinds {
		order[k] = i
	}
	sort.SliceStable(e.Items, func(a, b int) bool {
		x, y := e.Items[a], e.Items[b]
		if x.Kind != y.Kind {
			return order[x.Kind] < order[y.Kind]
		}
		return x.Name < y.Name
	})
	return e
}

// collectionDeps lists what an enabled collection names: its file's
// lists, plus the index's for a hub item.
func (h *Hub) collectionDeps(st State) map[string][]string {
	deps := map[string][]string{}
	if !st.Local {
		if info, ok := h.Item("collections", st.Name); ok {
			for k, v := range info.Deps {
				deps[k] = slices.Clone(v)
			}
		}
	}
	data, err := os.ReadFile(st.Path)
	if err != nil {
		return deps
	}
	var file map[string]any
	if yaml.Unmarshal(data, &file) != nil {
		return deps
	}
	for _, k := range Kinds {
		list, _ := file[k].([]any)
		for _, v := range list {
			if s, _ := v.(string); s != "" && !slices.Contains(deps[k], s) {
				deps[k] = append(deps[k], s)
			}
		}
	}
	return deps
}

// identifier identifies installed files (identify) against one hub
// folder: where the folder really is and which item each of its files is
// are worked out once, not per file (a configuration may install hundreds).
type identifier struct {
	h *Hub
	// hubDir is h.Dir with symlinks resolved ("" when it cannot be)
	hubDir string
	// byPath names the item of each index path, by kind
	byPath map[string]map[string]string
}

func (h *Hub) newIdentifier() *identifier {
	id := &identifier{h: h, byPath: map[string]map[string]string{}}
	if d, err := filepath.EvalSymlinks(h.Dir); err == nil {
		id.hubDir = d
	}
	for kind, items := range h.index {
		m := make(map[string]string, len(items))
		for name, it := range items {
			m[filepath.Clean(it.Path)] = name
		}
		id.byPath[kind] = m
	}
	return id
}

// identify tells which item the file p (under root, the kind's folder)
// is: the hub item its symlink points at, else the hub item its name:
// field names, else the hub item its per-author path names
// (<author>/<file>, for files without a name such as contexts), else a
// local item named by its name: field or its path.
func (id *identifier) identify(kind, root, p string) (State, error) {
	h := id.h
	rel, _ := filepath.Rel(root, p)
	parts := strings.Split(filepath.ToSlash(rel), "/")
	st := State{Kind: kind, Path: p}
	if staged(kind) {
		if len(parts) < 2 {
			return st, fmt.Errorf("not in a stage folder: move it to %s", filepath.Join(root, "s01-parse", parts[0]))
		}
		st.Stage, parts = parts[0], parts[1:]
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return st, err
	}
	items := h.index[kind]
	if target, err := filepath.EvalSymlinks(p); err == nil && target != p && id.hubDir != "" {
		if r, err := filepath.Rel(id.hubDir, target); err == nil && !strings.HasPrefix(r, "..") {
			if name, ok := id.byPath[kind][r]; ok {
				st.Name, st.Linked = name, true
			}
		}
	}
	if st.Name != "" {
		// a link into the hub folder: its name: field is not needed
		return id.finish(st, data), nil
	}
	fileName := yamlName(data)
	if fileName != "" {
		if _, ok := items[fileName]; ok {
			st.Name = fileName
		}
	}
	pathName := strings.TrimSuffix(strings.TrimSuffix(strings.Join(parts, "/"), ".yaml"), ".yml")
	if st.Name == "" && fileName == "" {
		if _, ok := items[pathName]; ok {
			st.Name = pathName
		}
	}
	if st.Name == "" {
		st.Local = true
		st.Name = fileName
		if st.Name == "" {
			st.Name = pathName
		}
		return st, nil
	}
	return id.finish(st, data), nil
}

// finish fills the state of a file identified as the hub item st.Name.
func (id *identifier) finish(st State, data []byte) State {
	it := id.h.index[st.Kind][st.Name]
	st.Latest = it.Version
	if st.Stage == "" {
		st.Stage = it.Stage
	}
	id.h.versionOf(&st, data)
	return st
}

// versionOf sets st.Version to the published version whose digest data
// has, and st.Tainted when it has none. An index without digests (a hub
// folder used in place, never imported) has only the hub folder's current
// file to compare with.
func (h *Hub) versionOf(st *State, data []byte) {
	it := h.index[st.Kind][st.Name]
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if v, ok := it.Versions[it.Version]; ok && v.Digest == digest {
		st.Version = it.Version
		return
	}
	digests := false
	for name, v := range it.Versions {
		digests = digests || v.Digest != ""
		if v.Digest == digest {
			st.Version = name
			return
		}
	}
	if digests {
		st.Tainted = true
		st.Note = "differs from every published version"
		return
	}
	if hubFile, err := os.ReadFile(filepath.Join(h.Dir, it.Path)); err == nil && bytes.Equal(hubFile, data) {
		st.Version = it.Version
		return
	}
	st.Tainted = true
	st.Note = "differs from every published version"
}

// yamlName is the name: of the first YAML document that has one.
func yamlName(data []byte) string {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc struct {
			Name string `yaml:"name"`
		}
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return ""
			}
			return ""
		}
		if doc.Name != "" {
			return doc.Name
		}
	}
}
