package main

import (
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/goreleaser/nfpm/v2/files"

	"github.com/rampart-ips/rampart/internal/manpage"
)

// docContents is what Debian expects of every package beside its
// programs: man pages for its binaries (written by the binaries
// themselves, from the options and commands they parse), the copyright
// file, the changelog, and lintian overrides with their reasons. tmp
// receives the generated files.
func docContents(o Options, pkg string, bins []string, tmp string) (files.Contents, error) {
	dir := filepath.Join(tmp, pkg)
	if err := os.MkdirAll(filepath.Join(dir, "man"), 0o755); err != nil {
		return nil, err
	}
	var out files.Contents
	pages, err := manPages(o, bins, filepath.Join(dir, "man"))
	if err != nil {
		return nil, err
	}
	for _, p := range pages {
		out = append(out, plain(p, "/usr/share/man/man1/"+filepath.Base(p), 0o644))
	}

	doc := "/usr/share/doc/" + pkg + "/"
	var paths []string
	for _, b := range bins {
		paths = append(paths, filepath.Join(o.BinDir, b))
	}
	text, err := os.ReadFile(filepath.Join(o.Root, "packaging", "copyright"))
	if err != nil {
		return nil, fmt.Errorf("copyright: %w", err)
	}
	cp, err := packageCopyright(string(text), paths)
	if err != nil {
		return nil, fmt.Errorf("packaging/copyright for %s: %w", pkg, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "copyright"), []byte(cp), 0o644); err != nil {
		return nil, err
	}
	out = append(out, plain(filepath.Join(dir, "copyright"), doc+"copyright", 0o644))

	// A native package (no Debian revision) names its changelog
	// changelog.gz, any other changelog.Debian.gz (Policy 12.7).
	name := "changelog.gz"
	if strings.Contains(o.Version, "-") {
		name = "changelog.Debian.gz"
	}
	cl := filepath.Join(dir, name)
	if err := writeGzip(cl, []byte(changelog(o, pkg))); err != nil {
		return nil, err
	}
	out = append(out, plain(cl, doc+name, 0o644))

	ov := filepath.Join(o.Root, "packaging", pkg, "lintian-overrides")
	if _, err := os.Stat(ov); err == nil {
		out = append(out, plain(ov, "/usr/share/lintian/overrides/"+pkg, 0o644))
	}
	return out, nil
}

// manPages runs each binary with --manpage.FlagName (flag and cobra alike) and compresses what it
// wrote, as Debian wants man pages (gzip -9n: no name, no time stamp).
// The pages carry the source's date (SOURCE_DATE_EPOCH), so a rebuild of
// the same commit gives the same bytes.
func manPages(o Options, bins []string, dir string) ([]string, error) {
	raw := filepath.Join(dir, "raw")
	for _, b := range bins {
		cmd := exec.Command(filepath.Join(o.BinDir, b), "--"+manpage.FlagName, raw)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(o.MTime.Unix(), 10))
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("man pages: %s (run on this machine, so packages are built where the binaries run): %v\n%s", b, err, out)
		}
	}
	entries, err := os.ReadDir(raw)
	if err != nil {
		return nil, fmt.Errorf("man pages: %w", err)
	}
	var out []string
	for _, e := range entries {
		src, err := os.ReadFile(filepath.Join(raw, e.Name()))
		if err != nil {
			return nil, err
		}
		dst := filepath.Join(dir, e.Name()+".gz")
		if err := writeGzip(dst, src); err != nil {
			return nil, err
		}
		out = append(out, dst)
	}
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(dir, b+".1.gz")); err != nil {
			return nil, fmt.Errorf("man pages: %s wrote no %s.1", b, b)
		}
	}
	return out, nil
}

// writeGzip compresses as gzip -9n does: the best compression, and no
// file name or time in the header.
func writeGzip(path string, data []byte) error {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// changelog is the package's Debian changelog: one entry for the version
// built, dated like its files (the commit's time).
func changelog(o Options, pkg string) string {
	what := "Rampart's source tree"
	if o.Describe != "" {
		what = "git " + o.Describe
	}
	return fmt.Sprintf("%s (%s) unstable; urgency=medium\n\n"+
		"  * Built by tools/mkdeb from %s.\n"+
		"    Changes: %s/commits\n\n"+
		" -- %s  %s\n", pkg, o.Version, what, homepage, maintainer, o.MTime.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
}

// packageCopyright keeps, of the DEP-5 file text, the paragraphs that
// apply to the binaries at paths: the header, Rampart's and the Go
// standard library's, each Go module they link (read from their build
// information) and the license texts those use. A linked module without a
// paragraph is an error, so a new dependency cannot ship unrecorded.
func packageCopyright(text string, paths []string) (string, error) {
	linked := map[string]bool{}
	for _, p := range paths {
		bi, err := buildinfo.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		for _, d := range bi.Deps {
			if d.Replace != nil {
				d = d.Replace
			}
			linked[d.Path] = true
		}
	}
	paras := strings.Split(strings.TrimSpace(text), "\n\n")
	field := func(para, name string) string {
		for _, l := range strings.Split(para, "\n") {
			if v, ok := strings.CutPrefix(l, name+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	var keep []string
	used := map[string]bool{}
	listed := map[string]bool{}
	for i, p := range paras {
		files := field(p, "Files")
		if i == 0 || files == "" {
			continue
		}
		want := true
		for _, pat := range strings.Fields(files) {
			mod := strings.TrimSuffix(pat, "/*")
			// a module path starts with a domain name
			if first, _, _ := strings.Cut(mod, "/"); strings.Contains(first, ".") {
				listed[mod] = true
				want = linked[mod]
			}
		}
		if !want {
			continue
		}
		keep = append(keep, p)
		for _, l := range strings.FieldsFunc(field(p, "License"), func(r rune) bool { return r == ' ' || r == ',' }) {
			if l != "and" && l != "or" {
				used[l] = true
			}
		}
	}
	var missing []string
	for m := range linked {
		if !listed[m] {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return "", fmt.Errorf("linked Go modules without a Files paragraph (add their copyright and license): %s", strings.Join(missing, ", "))
	}
	out := []string{paras[0]}
	out = append(out, keep...)
	for _, p := range paras[1:] {
		if field(p, "Files") == "" && used[field(p, "License")] {
			out = append(out, p)
		}
	}
	return strings.Join(out, "\n\n") + "\n", nil
}
