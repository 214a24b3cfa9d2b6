package hubtest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/ruleset"
)

// ItemCoverage is one hub item and the tests that load it.
type ItemCoverage struct {
	Name  string   `json:"name"`
	Tests []string `json:"tests"`
}

// Coverage tells which parsers and scenarios of a hub some test loads
// (listed in its config.yaml, directly or through a collection).
type Coverage struct {
	Parsers   []ItemCoverage `json:"parsers"`
	Scenarios []ItemCoverage `json:"scenarios"`
}

// Percent is the share of items with at least one test (100 for none).
func Percent(items []ItemCoverage) float64 {
	if len(items) == 0 {
		return 100
	}
	n := 0
	for _, it := range items {
		if len(it.Tests) > 0 {
			n++
		}
	}
	return 100 * float64(n) / float64(len(items))
}

// CoverageOf reads every test of h's .tests folder. A test naming an item
// the hub lacks still counts for the others; a config.yaml that does not
// parse is an error.
func CoverageOf(h *hub.Hub) (Coverage, error) {
	entries, err := os.ReadDir(filepath.Join(h.Dir, ".tests"))
	if err != nil {
		return Coverage{}, fmt.Errorf("listing tests: %w", err)
	}
	// item files by path, so a test naming a parser by its path
	// ("./parsers/s01-parse/x/y.yaml") covers the item too
	byPath := map[string]string{}
	for _, kind := range []string{"parsers", "scenarios"} {
		for _, name := range h.Items(kind) {
			if it, ok := h.Item(kind, name); ok {
				byPath[kind+":"+filepath.Clean(it.Path)] = name
			}
		}
	}
	tested := map[string][]string{} // kind:name -> tests
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(h.Dir, ".tests", e.Name(), "config.yaml"))
		if err != nil {
			continue // not a test folder
		}
		var cfg Config
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			return Coverage{}, fmt.Errorf("test %s: config.yaml: %w", e.Name(), err)
		}
		items, _ := ruleset.Resolve(h, ruleset.Spec{
			Collections: nonEmpty(cfg.Collections),
			Parsers:     nonEmpty(cfg.Parsers),
			Scenarios:   nonEmpty(cfg.Scenarios),
			Policy:      ruleset.SkipBroken,
		})
		for kind, refs := range map[string][]string{"parsers": items.Parsers, "scenarios": items.Scenarios} {
			seen := map[string]bool{}
			for _, ref := range refs {
				path, _, _, err := h.Resolve(kind, ref)
				if err != nil {
					continue
				}
				name, ok := byPath[kind+":"+filepath.Clean(path)]
				if !ok || seen[name] {
					continue
				}
				seen[name] = true
				tested[kind+":"+name] = append(tested[kind+":"+name], e.Name())
			}
		}
	}
	list := func(kind string) []ItemCoverage {
		out := []ItemCoverage{}
		for _, name := range h.Items(kind) {
			tests := tested[kind+":"+name]
			sort.Strings(tests)
			if tests == nil {
				tests = []string{}
			}
			out = append(out, ItemCoverage{Name: name, Tests: tests})
		}
		return out
	}
	return Coverage{Parsers: list("parsers"), Scenarios: list("scenarios")}, nil
}
