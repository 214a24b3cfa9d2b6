package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Rampart's rules and their index agree: edit a rule, run
// `go run ./internal/hubindex -dir rules`.
func TestRulesIndexIsCurrent(t *testing.T) {
	problems, err := Sync("../../rules", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("rules/index.json is stale (go run ./internal/hubindex -dir rules):\n%s", strings.Join(problems, "\n"))
	}
}

// A changed rule file is reported, fixed with write, and an unlisted one
// stays reported.
func TestSyncFindsAndFixes(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "scenarios", "me"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "scenarios", "me", "a.yaml"), []byte("name: me/a\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "scenarios", "me", "b.yaml"), []byte("name: me/b\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"scenarios":{"me/a":{"path":"scenarios/me/a.yaml","version":"0.1","versions":{"0.1":{"digest":"old"}}}}}`), 0o644))
	problems, err := Sync(dir, true)
	must(err)
	if len(problems) != 2 {
		t.Fatalf("problems %q, want a stale digest and an unlisted file", problems)
	}
	problems, err = Sync(dir, false)
	must(err)
	if len(problems) != 1 || !strings.Contains(problems[0], "b.yaml is not in index.json") {
		t.Fatalf("after the fix: %q", problems)
	}
}
