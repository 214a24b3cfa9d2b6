package testhub

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDirFromPackage finds the hub from this package's directory, two
// levels below the module root.
func TestDirFromPackage(t *testing.T) {
	dir := Dir(t)
	if !filepath.IsAbs(dir) || filepath.Base(dir) != "hub" {
		t.Fatalf("Dir = %q, want an absolute path ending in /hub", dir)
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(root), "shared", "hub"); dir != want {
		t.Errorf("Dir = %q, want %q", dir, want)
	}
}

// TestMissingHub runs this test binary from a folder with no module above
// it: without RAMPART_REQUIRE_HUB the probe skips, with it the probe fails
// and says why.
func TestMissingHub(t *testing.T) {
	if os.Getenv("TESTHUB_PROBE") == "1" {
		Dir(t)
		t.Log("probe: hub found")
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	run := func(require string) (string, error) {
		cmd := exec.Command(exe, "-test.run=^TestMissingHub$", "-test.v")
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "TESTHUB_PROBE=1", RequireEnv+"="+require)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("")
	if err != nil || !strings.Contains(out, "--- SKIP") || !strings.Contains(out, RequireEnv) {
		t.Errorf("without %s: err %v, want a skip naming the variable:\n%s", RequireEnv, err, out)
	}
	out, err = run("1")
	if err == nil || !strings.Contains(out, "--- FAIL") || !strings.Contains(out, "no go.mod of module") {
		t.Errorf("with %s=1: err %v, want a failure saying what is missing:\n%s", RequireEnv, err, out)
	}
}
