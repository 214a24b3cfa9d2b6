package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Sync compares dir/index.json with the files: each item's digest of its
// current version must be the file's sha256, and every YAML file under
// parsers/, scenarios/, postoverflows/ and collections/ must be listed.
// With write, stale digests are fixed in index.json; unlisted files stay
// problems (an item needs its name and metadata written by a person).
func Sync(dir string, write bool) ([]string, error) {
	path := filepath.Join(dir, "index.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var idx map[string]map[string]map[string]any
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var problems []string
	listed := map[string]bool{}
	kinds := make([]string, 0, len(idx))
	for k := range idx {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	changed := false
	for _, kind := range kinds {
		names := make([]string, 0, len(idx[kind]))
		for n := range idx[kind] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			item := idx[kind][name]
			rel, _ := item["path"].(string)
			listed[filepath.ToSlash(rel)] = true
			data, err := os.ReadFile(filepath.Join(dir, rel))
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s %s: %v", kind, name, err))
				continue
			}
			sum := sha256.Sum256(data)
			digest := hex.EncodeToString(sum[:])
			version, _ := item["version"].(string)
			versions, _ := item["versions"].(map[string]any)
			v, _ := versions[version].(map[string]any)
			if v == nil {
				problems = append(problems, fmt.Sprintf("%s %s: no versions[%q] entry", kind, name, version))
				continue
			}
			if v["digest"] != digest {
				problems = append(problems, fmt.Sprintf("%s %s: stale digest for %s", kind, name, rel))
				v["digest"] = digest
				changed = true
			}
		}
	}
	for _, sub := range []string{"parsers", "scenarios", "postoverflows", "collections"} {
		root := filepath.Join(dir, sub)
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				return nil
			}
			rel, _ := filepath.Rel(dir, p)
			if !listed[filepath.ToSlash(rel)] {
				problems = append(problems, fmt.Sprintf("%s is not in index.json", rel))
			}
			return nil
		})
	}
	if write && changed {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(idx); err != nil {
			return problems, err
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			return problems, err
		}
	}
	return problems, nil
}
