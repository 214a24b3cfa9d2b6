// Package hub reads a CrowdSec hub folder (index.json and the items it
// lists) and installs items into a configuration folder the way upstream's
// cscli does. It never contacts the network.
package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

type indexItem struct {
	Path          string   `json:"path"`
	Stage         string   `json:"stage"`
	Version       string   `json:"version"`
	Parsers       []string `json:"parsers"`
	Scenarios     []string `json:"scenarios"`
	PostOverflows []string `json:"postoverflows"`
	Collections   []string `json:"collections"`
	Contexts      []string `json:"contexts"`
}

// Version returns an item's version from the index ("" for local paths).
func (h *Hub) Version(kind, ref string) string {
	return h.index[kind][ref].Version
}

// OpenHub reads DIR/index.json.
func OpenHub(dir string) (*Hub, error) {
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("reading hub index: %w", err)
	}
	h := &Hub{Dir: dir}
	if err := json.Unmarshal(data, &h.index); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", filepath.Join(dir, "index.json"), err)
	}
	return h, nil
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

// Installer copies hub items into a configuration folder.
type Installer struct {
	Hub       *Hub
	ConfigDir string // e.g. /etc/crowdsec
	DataDir   string // e.g. /var/lib/crowdsec/data
}

// dest is where an item lives once installed: parsers and postoverflows
// by stage, the others flat, as upstream lays them out.
func (in *Installer) dest(i Info) string {
	base := filepath.Base(i.Path)
	if i.Stage != "" {
		return filepath.Join(in.ConfigDir, i.Kind, i.Stage, base)
	}
	return filepath.Join(in.ConfigDir, i.Kind, base)
}

// Install installs an item, its data files and, for a collection, every
// item it lists (recursively). It returns what it installed.
func (in *Installer) Install(kind, name string) ([]string, error) {
	seen := map[string]bool{}
	var done []string
	var walk func(kind, name string) error
	walk = func(kind, name string) error {
		key := kind + ":" + name
		if seen[key] || name == "" {
			return nil
		}
		seen[key] = true
		i, ok := in.Hub.Item(kind, name)
		if !ok {
			return fmt.Errorf("%s %q is not in the hub", kind, name)
		}
		data, err := os.ReadFile(i.Path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", i.Path, err)
		}
		dst := in.dest(i)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("installing %s: %w", name, err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return fmt.Errorf("installing %s: %w", name, err)
		}
		if err := in.copyData(data); err != nil {
			return fmt.Errorf("installing %s: %w", name, err)
		}
		done = append(done, kind+"/"+name)
		for _, k := range []string{"parsers", "scenarios", "postoverflows", "collections", "contexts"} {
			for _, dep := range i.Deps[k] {
				if _, ok := in.Hub.Item(k, dep); !ok {
					continue // not in this hub folder (e.g. appsec items)
				}
				if err := walk(k, dep); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := walk(kind, name)
	return done, err
}

// copyData copies the data files an item declares (data: dest_file).
func (in *Installer) copyData(item []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(item))
	for {
		var doc struct {
			Data []struct {
				DestFile string `yaml:"dest_file"`
			} `yaml:"data"`
		}
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading data references: %w", err)
		}
		for _, d := range doc.Data {
			if d.DestFile == "" {
				continue
			}
			src := filepath.Join(in.Hub.Dir, "data", d.DestFile)
			b, err := os.ReadFile(src)
			if errors.Is(err, os.ErrNotExist) {
				continue // e.g. GeoIP databases, not shipped in the hub
			}
			if err != nil {
				return err
			}
			if err := os.MkdirAll(in.DataDir, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(in.DataDir, d.DestFile), b, 0o644); err != nil {
				return err
			}
		}
	}
}

// Remove deletes an installed item (not its dependencies).
func (in *Installer) Remove(kind, name string) error {
	i, ok := in.Hub.Item(kind, name)
	if !ok {
		return fmt.Errorf("%s %q is not in the hub", kind, name)
	}
	if err := os.Remove(in.dest(i)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s %q is not installed", kind, name)
		}
		return fmt.Errorf("removing %s: %w", name, err)
	}
	return nil
}

// Installed reports whether an item is installed and whether its file
// differs from the hub's ("tainted", in upstream's words).
func (in *Installer) Installed(kind, name string) (installed, tainted bool) {
	i, ok := in.Hub.Item(kind, name)
	if !ok {
		return false, false
	}
	got, err := os.ReadFile(in.dest(i))
	if err != nil {
		return false, false
	}
	want, err := os.ReadFile(i.Path)
	return true, err != nil || !bytes.Equal(got, want)
}
