// Package hubtest runs the hub's .tests cases the way upstream's cscli
// hubtest does: load the listed rules from a hub folder, replay the log
// file, and check each line of parser.assert and scenario.assert as an
// expr-lang boolean over the results. It never contacts the network.
package hubtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Hub is a hub folder with its index.
type Hub struct {
	Dir   string
	index map[string]map[string]indexItem
}

type indexItem struct {
	Path    string `json:"path"`
	Stage   string `json:"stage"`
	Version string `json:"version"`
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
