package hub

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCollection: a collection's dependencies are the index's plus what
// its file lists (here, contexts the index does not carry).
func TestCollection(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"index.json":             `{"collections": {"a/col": {"path": "collections/a/col.yaml", "parsers": ["a/p"]}}}`,
		"collections/a/col.yaml": "name: a/col\nparsers: [a/p, a/q]\ncontexts: [a/ctx]\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h, err := OpenHub(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := h.Collection("a/col")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.Deps["parsers"], []string{"a/p", "a/q"}) || !slices.Equal(info.Deps["contexts"], []string{"a/ctx"}) {
		t.Errorf("deps %v", info.Deps)
	}
	if idx, _ := h.Item("collections", "a/col"); len(idx.Deps["parsers"]) != 1 {
		t.Errorf("index changed: %v", idx.Deps)
	}
	if _, err := h.Collection("a/nope"); err == nil {
		t.Error("no error for a missing collection")
	}
}
