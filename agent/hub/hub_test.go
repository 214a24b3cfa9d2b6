package hub

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/internal/testhub"
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

// TestEnabledStates: what a configuration folder holds, identified by
// symlink, name: field or per-author path, with a collection missing an
// item tainted and a second copy of an item ignored with a warning.
func TestEnabledStates(t *testing.T) {
	hubDir, conf := t.TempDir(), t.TempDir()
	testhub.WriteTree(t, hubDir, map[string]string{
		"index.json": `{"collections": {"a/col": {"path": "collections/a/col.yaml", "version": "1", "parsers": ["a/p"], "scenarios": ["a/s"]}},
			"parsers": {"a/p": {"path": "parsers/s01-parse/a/p.yaml", "stage": "s01-parse", "version": "1"}},
			"scenarios": {"a/s": {"path": "scenarios/a/s.yaml", "version": "1"}},
			"contexts": {"a/ctx": {"path": "contexts/a/ctx.yaml", "version": "1"}}}`,
		"collections/a/col.yaml":     "name: a/col\nparsers: [a/p]\nscenarios: [a/s]\ncontexts: [b/builtin]\n",
		"parsers/s01-parse/a/p.yaml": "name: a/p\n",
		"scenarios/a/s.yaml":         "name: a/s\n",
		"contexts/a/ctx.yaml":        "context:\n  k: [evt.Meta.x]\n",
	})
	h, err := OpenHub(hubDir)
	if err != nil {
		t.Fatal(err)
	}
	in := &Installer{Hub: h, ConfigDir: conf}
	if _, err := in.Install("collections", "a/col"); err != nil {
		t.Fatal(err)
	}
	testhub.WriteTree(t, conf, map[string]string{
		"contexts/a/ctx.yaml":            "context:\n  k: [evt.Meta.x]\n", // no name: found by its path
		"parsers/s01-parse/p-again.yaml": "name: a/p\n",                   // a second copy
	})
	if err := os.Remove(filepath.Join(conf, "scenarios/a/s.yaml")); err != nil {
		t.Fatal(err)
	}
	en := in.Enabled()
	got := map[string]string{}
	for _, st := range en.Items {
		got[st.Kind+" "+st.Name] = st.Status()
	}
	want := map[string]string{"collections a/col": "enabled,tainted", "parsers a/p": "enabled", "contexts a/ctx": "enabled"}
	if len(got) != len(want) {
		t.Errorf("items %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if col, _ := en.Get("collections", "a/col"); !strings.Contains(col.Note, "scenarios/a/s") {
		t.Errorf("tainted collection note %q", col.Note)
	}
	if len(en.Warnings) != 1 || !strings.Contains(en.Warnings[0], "p-again.yaml ignored") {
		t.Errorf("warnings %q", en.Warnings)
	}
	if !slices.Equal(en.ContextRefs, []string{"b/builtin"}) {
		t.Errorf("context refs %v", en.ContextRefs)
	}
	// editing through the symlink taints the item: the hub file changed
	if err := os.WriteFile(filepath.Join(hubDir, "parsers/s01-parse/a/p.yaml"), []byte("name: a/p\n# edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.importFrom(h, nil, nil); err != nil { // digests recorded, as after an update
		t.Fatal(err)
	}
	testhub.WriteTree(t, hubDir, map[string]string{"parsers/s01-parse/a/p.yaml": "name: a/p\n# edited twice\n"})
	if st, _ := in.Enabled().Get("parsers", "a/p"); st.Status() != "enabled,tainted" {
		t.Errorf("edited hub file: %q", st.Status())
	}
}

// TestOpenSourceArchives: a hub packed as .zip or .tar.gz, at the root
// or in one top folder, opens; one with a member leaving the archive is
// refused.
func TestOpenSourceArchives(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"hub-master/.index.json":        `{"scenarios": {"a/s": {"path": "scenarios/a/s.yaml", "version": "2"}}}`,
		"hub-master/scenarios/a/s.yaml": "name: a/s\n",
	}
	zpath := filepath.Join(dir, "hub.zip")
	zf, err := os.Create(zpath)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(zf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	zf.Close()
	h, cleanup, err := OpenSource("file://" + zpath)
	if err != nil {
		t.Fatal(err)
	}
	if i, ok := h.Item("scenarios", "a/s"); !ok || i.Version != "2" {
		t.Errorf("zip hub: %+v %v", i, ok)
	}
	cleanup()
	if _, err := os.Stat(h.Dir); !os.IsNotExist(err) {
		t.Errorf("cleanup left %s: %v", h.Dir, err)
	}

	evil := filepath.Join(dir, "evil.tar.gz")
	f, err := os.Create(evil)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	body := []byte("x")
	if err := tw.WriteHeader(&tar.Header{Name: "../../escaped", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	tw.Close()
	gz.Close()
	f.Close()
	if _, _, err := OpenSource(evil); err == nil || !strings.Contains(err.Error(), "outside the archive") {
		t.Errorf("archive with ../: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "..", "escaped")); err == nil {
		t.Error("a member was written outside the extraction folder")
	}
	if _, _, err := OpenSource(filepath.Join(dir, "hub.rar")); err == nil {
		t.Error("a missing file opened")
	}
}

// TestRemoveCollection: removing a collection removes the items it
// installed, as upstream's cscli does, except one another enabled
// collection still lists and a hand-edited one (kept unless Force).
func TestRemoveCollection(t *testing.T) {
	hubDir, conf := t.TempDir(), t.TempDir()
	testhub.WriteTree(t, hubDir, map[string]string{
		"index.json": `{"collections": {
				"a/one": {"path": "collections/a/one.yaml", "version": "1", "parsers": ["a/p"], "scenarios": ["a/s", "a/shared", "a/edited"]},
				"a/two": {"path": "collections/a/two.yaml", "version": "1", "scenarios": ["a/shared"]}},
			"parsers": {"a/p": {"path": "parsers/s01-parse/a/p.yaml", "stage": "s01-parse", "version": "1"}},
			"scenarios": {"a/s": {"path": "scenarios/a/s.yaml", "version": "1"},
				"a/shared": {"path": "scenarios/a/shared.yaml", "version": "1"},
				"a/edited": {"path": "scenarios/a/edited.yaml", "version": "1"}}}`,
		"collections/a/one.yaml":     "name: a/one\nparsers: [a/p]\nscenarios: [a/s, a/shared, a/edited]\n",
		"collections/a/two.yaml":     "name: a/two\nscenarios: [a/shared]\n",
		"parsers/s01-parse/a/p.yaml": "name: a/p\n",
		"scenarios/a/s.yaml":         "name: a/s\n",
		"scenarios/a/shared.yaml":    "name: a/shared\n",
		"scenarios/a/edited.yaml":    "name: a/edited\n",
	})
	h, err := OpenHub(hubDir)
	if err != nil {
		t.Fatal(err)
	}
	in := &Installer{Hub: h, ConfigDir: conf}
	for _, c := range []string{"a/one", "a/two"} {
		if _, err := in.Install("collections", c); err != nil {
			t.Fatal(err)
		}
	}
	// a local edit: the link replaced by a modified copy
	edited := filepath.Join(conf, "scenarios/a/edited.yaml")
	if err := os.Remove(edited); err != nil {
		t.Fatal(err)
	}
	testhub.WriteTree(t, conf, map[string]string{"scenarios/a/edited.yaml": "name: a/edited\n# mine\n"})

	done, err := in.Remove("collections", "a/one")
	if err != nil {
		t.Fatal(err)
	}
	en := in.Enabled()
	for _, k := range []struct {
		kind, name string
		want       bool
	}{{"collections", "a/one", false}, {"parsers", "a/p", false}, {"scenarios", "a/s", false},
		{"scenarios", "a/shared", true}, {"scenarios", "a/edited", true}, {"collections", "a/two", true}} {
		if _, ok := en.Get(k.kind, k.name); ok != k.want {
			t.Errorf("%s %s enabled = %v after removing a/one, want %v (removed: %q)", k.kind, k.name, ok, k.want, done)
		}
	}
	if !slices.ContainsFunc(done, func(s string) bool { return strings.HasPrefix(s, "scenarios/a/edited (") }) {
		t.Errorf("the kept tainted item is not reported: %q", done)
	}
	in.Force = true
	if _, err := in.Remove("collections", "a/two"); err != nil {
		t.Fatal(err)
	}
	if _, ok := in.Enabled().Get("scenarios", "a/shared"); ok {
		t.Error("a/shared still enabled once no collection lists it")
	}
}
