// Package testhub finds, for tests, the reference CrowdSec hub and the
// whole-hub corpus kept beside the repository (../shared/hub and
// ../shared/hub-corpus, relative to the root of module
// github.com/rampart-ips/rampart). It is the one place tests look for them,
// so that a check reading the hub runs in every checkout that has the hub
// beside it, whatever the test's package directory.
//
// Without the hub a test skips on a developer's machine; with
// RAMPART_REQUIRE_HUB=1 (set by .ci/run) it fails instead, so that CI
// cannot pass by silently skipping every hub check.
package testhub

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RequireEnv is the environment variable that turns a missing hub from a
// skip into a failure.
const RequireEnv = "RAMPART_REQUIRE_HUB"

// modulePath is the main module, whose root the shared folder sits beside;
// the tools module (its own go.mod below the root) finds the same root.
const modulePath = "github.com/rampart-ips/rampart"

// Dir returns the absolute path of the reference hub (../shared/hub). It
// skips the test when the hub is not there, or fails it when RequireEnv is
// set to 1.
func Dir(tb testing.TB) string {
	tb.Helper()
	return find(tb, "hub", true)
}

// Corpus returns the absolute path of the whole-hub corpus
// (../shared/hub-corpus), skipping or failing like Dir.
func Corpus(tb testing.TB) string {
	tb.Helper()
	return find(tb, "hub-corpus", true)
}

// DirIfPresent is Dir for a test that also runs without the hub (a fuzz
// test taking seeds from it): "" when the hub is absent, unless RequireEnv
// is set, which fails the test as Dir does.
func DirIfPresent(tb testing.TB) string {
	tb.Helper()
	return find(tb, "hub", false)
}

// Reference returns ../shared/reference/<name> (a reference document such
// as hub-format.md), skipping or failing like Dir when it is absent.
func Reference(tb testing.TB, name string) string {
	tb.Helper()
	root, err := moduleRoot()
	if err == nil {
		path := filepath.Join(filepath.Dir(root), "shared", "reference", name)
		if _, err = os.Stat(path); err == nil {
			return path
		}
	}
	if os.Getenv(RequireEnv) == "1" {
		tb.Fatalf("%s=1 but reference %s is missing: %v", RequireEnv, name, err)
	}
	tb.Skipf("skipped: no reference %s beside the repository (%v); set %s=1 to make this a failure", name, err, RequireEnv)
	return ""
}

func find(tb testing.TB, name string, skip bool) string {
	tb.Helper()
	dir, err := locate(name)
	if err == nil {
		return dir
	}
	if os.Getenv(RequireEnv) == "1" {
		tb.Fatalf("%s=1 but the %s is missing: %v", RequireEnv, name, err)
	}
	if skip {
		tb.Skipf("skipped: no %s beside the repository (%v); set %s=1 to make this a failure", name, err, RequireEnv)
	}
	return ""
}

// locate returns <module root>/../shared/<name>, checked to hold an
// index.json (both the hub and the corpus have one).
func locate(name string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(filepath.Dir(root), "shared", name)
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		return "", fmt.Errorf("%s has no index.json: %w", dir, err)
	}
	return dir, nil
}

// moduleRoot walks up from the working directory (a test runs in its
// package's directory) to the folder whose go.mod declares modulePath.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		mod, err := modulePathOf(filepath.Join(dir, "go.mod"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		if mod == modulePath {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod of module %s above %s", modulePath, wd)
		}
	}
}

// modulePathOf reads the module directive of a go.mod file.
func modulePathOf(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading %s: %w", gomod, err)
	}
	return "", nil
}

// WriteTree writes files (slash path relative to dir -> body) under dir,
// creating folders: the fixture hubs and configuration folders of tests.
func WriteTree(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// WriteHub writes a fixture hub in a fresh temporary folder: index (which
// is marshalled to index.json) and files, and returns the folder.
func WriteHub(tb testing.TB, index any, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	data, err := json.Marshal(index)
	if err != nil {
		tb.Fatal(err)
	}
	WriteTree(tb, dir, files)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}
