package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/manpage"
)

// TestLintian builds both packages as make deb does (a Debian revision, so
// changelog.Debian.gz) and has lintian check them at every level, overrides
// shipped in packaging/<package>/lintian-overrides: any tag fails. Then
// every man page must render without a groff warning. Without lintian it
// skips, except in CI (CI=true), where .ci/run installs it.
func TestLintian(t *testing.T) {
	needDpkgDeb(t)
	if _, err := exec.LookPath("lintian"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("lintian is not installed (.ci/run installs it)")
		}
		t.Skip("lintian is not installed: apt-get install lintian")
	}
	const version = "0.0.0~git20251125214605.0d5c14e-1"
	paths, err := Build(Options{Root: repoRoot, UnitDir: unitDir(t), BinDir: binaries(t), OutDir: t.TempDir(), Version: version,
		Describe: "0d5c14e", Arch: runtime.GOARCH, MTime: time.Unix(1764107165, 0)})
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--display-level", ">=pedantic", "--display-experimental", "--info",
		"--fail-on", "error,warning,info,pedantic,experimental"}, paths...)
	out, err := exec.Command("lintian", args...).CombinedOutput()
	var tags []string
	for _, l := range strings.Split(string(out), "\n") {
		// N: lines explain tags; lintian also warns that it runs as root
		if l != "" && !strings.HasPrefix(l, "N:") && !strings.Contains(l, "root privileges") {
			tags = append(tags, l)
		}
	}
	if err != nil || len(tags) > 0 {
		t.Errorf("lintian: %v\n%s", err, strings.Join(tags, "\n"))
	}

	for _, deb := range paths {
		pkg := strings.SplitN(filepath.Base(deb), "_", 2)[0]
		root := t.TempDir()
		run(t, "dpkg-deb", "-x", deb, root)
		for _, f := range []string{"copyright", "changelog.Debian.gz"} {
			if _, err := os.Stat(filepath.Join(root, "usr/share/doc", pkg, f)); err != nil {
				t.Errorf("%s: %v", pkg, err)
			}
		}
		pages, _ := filepath.Glob(filepath.Join(root, "usr/share/man/man1/*.1.gz"))
		if len(pages) == 0 {
			t.Errorf("%s has no man page", pkg)
		}
		for _, p := range pages {
			text, err := manpage.Render(p)
			if err == manpage.ErrNoMan {
				t.Logf("%v: pages not rendered", err)
				break
			}
			if err != nil {
				t.Error(err)
			} else if name := strings.TrimSuffix(filepath.Base(p), ".1.gz"); !strings.Contains(text, name+" - ") {
				t.Errorf("%s: no NAME line for %s:\n%s", filepath.Base(p), name, text)
			}
		}
	}
}

// TestCopyrightListsEveryModule checks that a Go module linked into a
// binary but missing from packaging/copyright stops the build.
func TestCopyrightListsEveryModule(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(repoRoot, "packaging", "copyright"))
	if err != nil {
		t.Fatal(err)
	}
	bouncer := filepath.Join(binaries(t), "crowdsec-firewall-bouncer")
	got, err := packageCopyright(string(text), []string{bouncer})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Files: github.com/google/nftables/*", "Files: GOROOT/src/*", "License: Apache-2.0\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("bouncer copyright lacks %q", want)
		}
	}
	// crowdsec's modules and unused license texts stay out
	for _, unwanted := range []string{"modernc.org/sqlite", "License: ISC\n", "License: public-domain"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("bouncer copyright has %q", unwanted)
		}
	}
	cut := strings.Replace(string(text), "Files: github.com/google/nftables/*", "Files: example.org/other/*", 1)
	if _, err := packageCopyright(cut, []string{bouncer}); err == nil || !strings.Contains(err.Error(), "github.com/google/nftables") {
		t.Errorf("a module without a paragraph: err = %v", err)
	}
}
