package hub

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/rampart-ips/rampart/internal/atomicfile"
)

// Archive bounds: a hub is some thousands of small files (upstream's is
// about 50 MB unpacked); past these an archive is refused as not a hub.
const (
	maxArchiveBytes = 512 << 20
	maxArchiveFiles = 100_000
)

// OpenSource opens a hub to import from: a folder holding index.json or
// .index.json, a .tar.gz/.tgz/.tar or .zip archive of one (at its root or
// in a single top folder), or a file:// URL of either. Anything else,
// other URL schemes included, is an error: Rampart never fetches. The
// caller calls cleanup once done.
func OpenSource(src string) (_ *Hub, cleanup func(), err error) {
	cleanup = func() {}
	if strings.Contains(src, "://") {
		u, err := url.Parse(src)
		if err != nil {
			return nil, cleanup, fmt.Errorf("hub source %q: %w", src, err)
		}
		if u.Scheme != "file" {
			return nil, cleanup, fmt.Errorf("hub source %q: only file:// URLs (a local folder or archive) are supported; Rampart does not download", src)
		}
		src = u.Path
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, cleanup, fmt.Errorf("hub source: %w", err)
	}
	if fi.IsDir() {
		h, err := OpenHub(src)
		return h, cleanup, err
	}
	tmp, err := os.MkdirTemp("", "rampart-hub-")
	if err != nil {
		return nil, cleanup, fmt.Errorf("hub source: %w", err)
	}
	cleanup = func() { os.RemoveAll(tmp) }
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	lower := strings.ToLower(src)
	switch {
	case strings.HasSuffix(lower, ".zip"):
		err = extractZip(src, tmp)
	case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"), strings.HasSuffix(lower, ".tar"):
		err = extractTar(src, tmp)
	default:
		err = errors.New("not a folder, .tar.gz, .tgz, .tar or .zip")
	}
	if err != nil {
		return nil, cleanup, fmt.Errorf("hub archive %s: %w", src, err)
	}
	root := tmp
	if !hasIndex(root) {
		entries, _ := os.ReadDir(tmp)
		if len(entries) == 1 && entries[0].IsDir() && hasIndex(filepath.Join(tmp, entries[0].Name())) {
			root = filepath.Join(tmp, entries[0].Name())
		} else {
			return nil, cleanup, fmt.Errorf("hub archive %s: no %s or %s at its root or in its single top folder", src, IndexFile, FetchedIndexFile)
		}
	}
	h, err := OpenHub(root)
	return h, cleanup, err
}

func hasIndex(dir string) bool {
	for _, n := range []string{IndexFile, FetchedIndexFile} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return true
		}
	}
	return false
}

// archiveWriter writes an archive's members below root, refusing paths
// that leave it and bounding the total size and count.
type archiveWriter struct {
	root         string
	files, bytes int64
}

func (w *archiveWriter) file(name string, r io.Reader) error {
	slashed := strings.ReplaceAll(name, "\\", "/")
	if slices.Contains(strings.Split(slashed, "/"), "..") {
		return fmt.Errorf("member %q: path outside the archive", name)
	}
	clean := path.Clean("/" + slashed)
	if clean == "/" {
		return nil
	}
	if w.files++; w.files > maxArchiveFiles {
		return fmt.Errorf("more than %d files", maxArchiveFiles)
	}
	dst := filepath.Join(w.root, filepath.FromSlash(clean))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, maxArchiveBytes-w.bytes+1))
	w.bytes += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && w.bytes > maxArchiveBytes {
		err = fmt.Errorf("more than %d bytes unpacked", maxArchiveBytes)
	}
	return err
}

func extractTar(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if !strings.HasSuffix(strings.ToLower(src), ".tar") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	}
	tr := tar.NewReader(r)
	w := &archiveWriter{root: dst}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		// Only regular files: links and devices have no place in a hub.
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if err := w.file(hdr.Name, tr); err != nil {
			return err
		}
	}
}

func extractZip(src, dst string) error {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return err
	}
	defer zr.Close()
	w := &archiveWriter{root: dst}
	for _, zf := range zr.File {
		if !zf.Mode().IsRegular() {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return err
		}
		err = w.file(zf.Name, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// ImportReport says what Import changed.
type ImportReport struct {
	Items    int      // items in the imported index
	New      []string // kind/name not known before
	Upgraded []string // kind/name: old -> new version
	Skipped  []string // items left out, with why
}

// Changed reports whether the index differs from before.
func (r ImportReport) Changed() bool { return len(r.New)+len(r.Upgraded) > 0 }

// Import brings src's items into the hub folder: their files at the index's
// paths, the data files and grok patterns, and their index entries into
// .index.json, each version's digest recorded (computed from the file
// when src's index has none) with the digests of the versions h knew
// before, so that an installed copy of an older version shows as
// "update-available" and not as "tainted". With only nil, every item is
// imported and .index.json is replaced (cscli hub update); otherwise only
// those kind:name keys are, merged into it (cscli install --hub).
//
// A hub file in use (the target of an installed symlink, or an item the
// configuration's collections enable) is not replaced: its new version
// waits in PendingDir until Upgrade, so that update only tells and
// upgrade changes what runs, as upstream's.
func (in *Installer) Import(src *Hub, only map[string]bool) (ImportReport, error) {
	inUse := map[string]bool{}
	for _, st := range in.Enabled().Items {
		if st.Linked {
			if i, ok := in.Hub.Item(st.Kind, st.Name); ok {
				inUse[filepath.Clean(i.Path)] = true
			}
		}
	}
	return in.Hub.importFrom(src, only, inUse)
}

// PendingDir holds, inside the hub folder, new versions of files in use
// until `cscli hub upgrade`.
const PendingDir = ".pending"

// applyPending moves i's pending file, if any, into place.
func (h *Hub) applyPending(i Info) error {
	rel, err := filepath.Rel(h.Dir, i.Path)
	if err != nil {
		return err
	}
	pending := filepath.Join(h.Dir, PendingDir, rel)
	if _, err := os.Stat(pending); err != nil {
		return nil
	}
	if err := os.Rename(pending, i.Path); err != nil {
		return fmt.Errorf("upgrading %s: %w", i.Name, err)
	}
	return nil
}

func (h *Hub) importFrom(src *Hub, only map[string]bool, inUse map[string]bool) (ImportReport, error) {
	var rep ImportReport
	fetched, err := readIndex(filepath.Join(h.Dir, FetchedIndexFile))
	if errors.Is(err, fs.ErrNotExist) {
		fetched, err = map[string]map[string]indexItem{}, nil
	}
	if err != nil {
		return rep, err
	}
	if only == nil {
		fetched = map[string]map[string]indexItem{}
	}
	type copyJob struct{ from, to string }
	var jobs []copyJob
	kinds := make([]string, 0, len(src.index))
	for k := range src.index {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, kind := range kinds {
		names := make([]string, 0, len(src.index[kind]))
		for n := range src.index[kind] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			if only != nil && !only[kind+":"+name] {
				continue
			}
			it := src.index[kind][name]
			rel := filepath.Clean(filepath.FromSlash(it.Path))
			if it.Path == "" || filepath.IsAbs(rel) || strings.HasPrefix(rel, "..") {
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s/%s: path %q is outside the hub folder", kind, name, it.Path))
				continue
			}
			data, err := os.ReadFile(filepath.Join(src.Dir, rel))
			if err != nil {
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s/%s: %v", kind, name, err))
				continue
			}
			sum := sha256.Sum256(data)
			digest := hex.EncodeToString(sum[:])
			versions := map[string]indexVersion{}
			for v, d := range it.Versions {
				versions[v] = d
			}
			if cur, ok := versions[it.Version]; ok && cur.Digest != "" && cur.Digest != digest {
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s/%s: %s does not match the index's digest of version %s", kind, name, it.Path, it.Version))
				continue
			} else {
				cur.Digest = digest
				versions[it.Version] = cur
			}
			old, known := h.index[kind][name]
			if known {
				for v, d := range old.Versions {
					if _, ok := versions[v]; !ok && d.Digest != "" {
						versions[v] = d
					}
				}
				if _, ok := versions[old.Version]; !ok {
					if b, err := os.ReadFile(filepath.Join(h.Dir, old.Path)); err == nil {
						s := sha256.Sum256(b)
						versions[old.Version] = indexVersion{Digest: hex.EncodeToString(s[:])}
					}
				}
			}
			it.Versions = versions
			it.Path = filepath.ToSlash(rel)
			if fetched[kind] == nil {
				fetched[kind] = map[string]indexItem{}
			}
			fetched[kind][name] = it
			rep.Items++
			switch {
			case !known:
				rep.New = append(rep.New, kind+"/"+name)
			case old.Version != it.Version:
				rep.Upgraded = append(rep.Upgraded, fmt.Sprintf("%s/%s: %s -> %s", kind, name, old.Version, it.Version))
			}
			jobs = append(jobs, copyJob{filepath.Join(src.Dir, rel), filepath.Join(h.Dir, rel)})
			refs, err := dataFiles(data)
			if err != nil {
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s/%s: %v", kind, name, err))
			}
			for _, d := range refs {
				d = filepath.Clean(d)
				if filepath.IsAbs(d) || strings.HasPrefix(d, "..") {
					continue
				}
				from := filepath.Join(src.Dir, "data", d)
				if _, err := os.Stat(from); err == nil {
					jobs = append(jobs, copyJob{from, filepath.Join(h.Dir, "data", d)})
				}
			}
		}
	}
	// Grok patterns: upstream's hub keeps them beside the items.
	pdir := filepath.Join(src.Dir, "patterns")
	_ = filepath.WalkDir(pdir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			rel, _ := filepath.Rel(src.Dir, p)
			jobs = append(jobs, copyJob{p, filepath.Join(h.Dir, rel)})
		}
		return nil
	})
	sameDir := false
	if a, err := filepath.EvalSymlinks(src.Dir); err == nil {
		if b, err := filepath.EvalSymlinks(h.Dir); err == nil && a == b {
			sameDir = true
		}
	}
	if !sameDir {
		seen := map[string]bool{}
		for _, j := range jobs {
			if seen[j.to] {
				continue
			}
			seen[j.to] = true
			to := j.to
			rel, _ := filepath.Rel(h.Dir, to)
			pending := filepath.Join(h.Dir, PendingDir, rel)
			if inUse[filepath.Clean(to)] && !sameContent(j.from, to) {
				to = pending
			} else {
				_ = os.Remove(pending)
			}
			if err := copyFile(j.from, to); err != nil {
				return rep, fmt.Errorf("importing into %s: %w", h.Dir, err)
			}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(fetched); err != nil {
		return rep, err
	}
	if err := atomicfile.WriteBytes(filepath.Join(h.Dir, FetchedIndexFile), buf.Bytes(), 0o644); err != nil {
		return rep, fmt.Errorf("writing the hub index: %w", err)
	}
	slices.Sort(rep.Skipped)
	// The folder now has the new index: read it as OpenHub would.
	fresh, err := OpenHub(h.Dir)
	if err != nil {
		return rep, err
	}
	h.index = fresh.index
	return rep, nil
}

func sameContent(a, b string) bool {
	x, err := os.ReadFile(a)
	if err != nil {
		return false
	}
	y, err := os.ReadFile(b)
	return err == nil && bytes.Equal(x, y)
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteBytes(to, data, 0o644)
}
