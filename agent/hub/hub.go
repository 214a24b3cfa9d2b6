// Package hub reads a CrowdSec hub folder (index.json and the items it
// lists), tells which items a configuration folder enables and in what
// state (state.go: the one resolver behind the daemon and cscli), installs
// and upgrades them the way upstream's cscli does, and imports a hub from
// a local folder or archive (update.go). It never contacts the network.
package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Hub is a hub folder with its index.
type Hub struct {
	Dir   string
	index map[string]map[string]indexItem
}

// IndexFile is the index Rampart ships with its rules; FetchedIndexFile
// (upstream's name) is the one `cscli hub update` writes. Both list paths
// relative to the hub folder; an item in both is taken from the fetched
// one.
const (
	IndexFile        = "index.json"
	FetchedIndexFile = ".index.json"
)

type indexItem struct {
	Path          string                  `json:"path"`
	Stage         string                  `json:"stage,omitempty"`
	Version       string                  `json:"version"`
	Versions      map[string]indexVersion `json:"versions,omitempty"`
	Parsers       []string                `json:"parsers,omitempty"`
	Scenarios     []string                `json:"scenarios,omitempty"`
	PostOverflows []string                `json:"postoverflows,omitempty"`
	Collections   []string                `json:"collections,omitempty"`
	Contexts      []string                `json:"contexts,omitempty"`
	// Rest keeps the keys Rampart does not use (author, description,
	// labels, ...) so an imported index is written back whole.
	Rest map[string]json.RawMessage `json:"-"`
}

// indexVersion is one published version of an item: its file's sha256.
type indexVersion struct {
	Digest     string `json:"digest"`
	Deprecated bool   `json:"deprecated"`
}

var knownIndexKeys = []string{"path", "stage", "version", "versions", "parsers", "scenarios", "postoverflows", "collections", "contexts"}

func (it *indexItem) UnmarshalJSON(b []byte) error {
	type plain indexItem
	if err := json.Unmarshal(b, (*plain)(it)); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for _, k := range knownIndexKeys {
		delete(all, k)
	}
	if len(all) > 0 {
		it.Rest = all
	}
	return nil
}

func (it indexItem) MarshalJSON() ([]byte, error) {
	type plain indexItem
	b, err := json.Marshal(plain(it))
	if err != nil || len(it.Rest) == 0 {
		return b, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k, v := range it.Rest {
		if _, ok := all[k]; !ok {
			all[k] = v
		}
	}
	return json.Marshal(all)
}

// Version returns an item's version from the index ("" for local paths).
func (h *Hub) Version(kind, ref string) string {
	return h.index[kind][ref].Version
}

// OpenHub reads DIR/index.json and DIR/.index.json (at least one must
// exist); items of the second replace those of the first.
func OpenHub(dir string) (*Hub, error) {
	h := &Hub{Dir: dir, index: map[string]map[string]indexItem{}}
	found := false
	for _, name := range []string{IndexFile, FetchedIndexFile} {
		idx, err := readIndex(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		found = true
		for kind, items := range idx {
			if h.index[kind] == nil {
				h.index[kind] = map[string]indexItem{}
			}
			maps.Copy(h.index[kind], items)
		}
	}
	if !found {
		return nil, fmt.Errorf("reading hub index: %s has neither %s nor %s: %w", dir, IndexFile, FetchedIndexFile, fs.ErrNotExist)
	}
	return h, nil
}

func readIndex(path string) (map[string]map[string]indexItem, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("reading hub index: %w", err)
	}
	var idx map[string]map[string]indexItem
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return idx, nil
}

// Resolve maps a hub name ("crowdsecurity/sshd-logs") or a path relative
// to the hub ("./parsers/s01-parse/crowdsecurity/sshd-logs.yaml") of the
// given kind ("parsers", "scenarios", "postoverflows") to a file, its item
// name and stage.
func (h *Hub) Resolve(kind, ref string) (path, name, stage string, err error) {
	if strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "/") || strings.HasSuffix(ref, ".yaml") {
		p := ref
		if !filepath.IsAbs(p) {
			p = filepath.Join(h.Dir, ref)
		}
		if _, err := os.Stat(p); err != nil {
			return "", "", "", fmt.Errorf("%s %s: %w", kind, ref, err)
		}
		// parsers/<stage>/<author>/<name>.yaml
		rel, _ := filepath.Rel(h.Dir, p)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) >= 4 {
			stage = parts[len(parts)-3]
			name = parts[len(parts)-2] + "/" + strings.TrimSuffix(parts[len(parts)-1], ".yaml")
		} else {
			name = strings.TrimSuffix(filepath.Base(p), ".yaml")
		}
		return p, name, stage, nil
	}
	items, ok := h.index[kind]
	if !ok {
		return "", "", "", fmt.Errorf("hub index has no %s", kind)
	}
	it, ok := items[ref]
	if !ok {
		return "", "", "", fmt.Errorf("%s %q is not in the hub index", kind, ref)
	}
	return filepath.Join(h.Dir, it.Path), ref, it.Stage, nil
}

// Kinds are the item kinds cscli manages.
var Kinds = []string{"collections", "parsers", "scenarios", "postoverflows", "contexts"}

// Info describes one hub item.
type Info struct {
	Kind, Name, Path, Stage, Version string
	Deps                             map[string][]string // collections: kind -> names
	// Unsupported says, for a collection, which of its lists name items
	// Rampart cannot run (AppSec rules and configs), with their lines;
	// loading refuses such a collection rather than run it partly.
	Unsupported []string
}

// unsupportedKinds are collection lists of item kinds Rampart does not
// implement.
var unsupportedKinds = map[string]string{
	"appsec-rules":   "AppSec rules are not supported by Rampart",
	"appsec-configs": "AppSec configurations are not supported by Rampart",
}

// unsupportedLists names, with their lines, the non-empty lists of a
// collection file that name items of unsupportedKinds.
func unsupportedLists(data []byte) []string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	var out []string
	m := doc.Content[0].Content
	for i := 0; i+1 < len(m); i += 2 {
		if why, ok := unsupportedKinds[m[i].Value]; ok && len(m[i+1].Content) > 0 {
			out = append(out, fmt.Sprintf("line %d: %s: %s", m[i].Line, m[i].Value, why))
		}
	}
	return out
}

// Items returns the names of kind in the index, sorted.
func (h *Hub) Items(kind string) []string {
	out := make([]string, 0, len(h.index[kind]))
	for n := range h.index[kind] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Item returns one item's description.
func (h *Hub) Item(kind, name string) (Info, bool) {
	it, ok := h.index[kind][name]
	if !ok {
		return Info{}, false
	}
	return Info{Kind: kind, Name: name, Path: filepath.Join(h.Dir, it.Path), Stage: it.Stage, Version: it.Version,
		Deps: map[string][]string{"parsers": it.Parsers, "scenarios": it.Scenarios, "postoverflows": it.PostOverflows,
			"collections": it.Collections, "contexts": it.Contexts}}, true
}

// Collection returns a collection's description with its dependencies: the
// index's, plus whatever the collection file lists that the index leaves
// out (an index may carry no contexts, for one).
func (h *Hub) Collection(name string) (Info, error) {
	info, ok := h.Item("collections", name)
	if !ok {
		return Info{}, fmt.Errorf("collection %q is not in the hub index", name)
	}
	data, err := os.ReadFile(info.Path)
	if err != nil {
		return Info{}, fmt.Errorf("reading collection %s: %w", name, err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(data, &file); err != nil {
		return Info{}, fmt.Errorf("parsing collection %s (%s): %w", name, info.Path, err)
	}
	info.Unsupported = unsupportedLists(data)
	for _, kind := range Kinds {
		info.Deps[kind] = slices.Clone(info.Deps[kind]) // the index's own slices stay untouched
		list, _ := file[kind].([]any)
		for _, v := range list {
			s, _ := v.(string)
			if s != "" && !slices.Contains(info.Deps[kind], s) {
				info.Deps[kind] = append(info.Deps[kind], s)
			}
		}
	}
	return info, nil
}
