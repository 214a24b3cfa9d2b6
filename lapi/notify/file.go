package notify

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// File formats.
const (
	fileText = "text"
	fileJSON = "json"
)

// rotateStamp names rotated files, as upstream: <path>.YYYYMMDD-HHMMSS.
const rotateStamp = "20060102-150405"

// checkFile validates a file notification.
func (c *Config) checkFile() error {
	if c.LogPath == "" {
		return errors.New("missing log_path")
	}
	if !filepath.IsAbs(c.LogPath) {
		return fmt.Errorf("log_path %q must be absolute", c.LogPath)
	}
	if c.FileFormat == "" {
		c.FileFormat = fileText
	}
	if c.FileFormat != fileText && c.FileFormat != fileJSON {
		return fmt.Errorf("file_format must be %s or %s, not %q", fileText, fileJSON, c.FileFormat)
	}
	r := c.Rotate
	if r.MaxSize < 0 || r.MaxFiles < 0 || r.MaxAge < 0 {
		return errors.New("rotate: max_size, max_files and max_age must not be negative")
	}
	return nil
}

// fileSender appends rendered texts to a file, rotating it by size, and
// reopens it when something else moved or removed it (logrotate).
type fileSender struct {
	cfg      *Config
	maxBytes int64 // rotate before the file grows past this; 0: never
	now      func() time.Time

	mu   sync.Mutex
	f    *os.File
	size int64
}

func newFileSender(c *Config) *fileSender {
	s := &fileSender{cfg: c, now: time.Now}
	if c.Rotate.Enabled && c.Rotate.MaxSize > 0 {
		s.maxBytes = int64(c.Rotate.MaxSize) << 20
	}
	return s
}

func (s *fileSender) send(_ context.Context, text string) error {
	data := []byte(text)
	if s.cfg.FileFormat == fileJSON {
		var err error
		if data, err = jsonLines(data); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.open(); err != nil {
		return err
	}
	if s.maxBytes > 0 && s.size > 0 && s.size+int64(len(data)) > s.maxBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(data)
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("writing %s: %w", s.cfg.LogPath, err)
	}
	return nil
}

// jsonLines turns the JSON values of a rendered text into JSON lines.
func jsonLines(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var out bytes.Buffer
	for {
		var v json.RawMessage
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &permanentError{fmt.Errorf("file_format json: the rendered text is not JSON: %w", err)}
		}
		if err := json.Compact(&out, v); err != nil {
			return nil, &permanentError{err}
		}
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}

// open makes s.f the file at the path, opening it again when the path
// now names another file or none (rotated or removed from outside).
func (s *fileSender) open() error {
	path := s.cfg.LogPath
	if s.f != nil {
		cur, err1 := s.f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(cur, now) {
			return nil
		}
		s.f.Close()
		s.f = nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening %s: %w", path, err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

// rotate moves the file aside (compressing it if asked), starts a new
// one, and prunes the rotated files beyond max_files and max_age.
func (s *fileSender) rotate() error {
	path := s.cfg.LogPath
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", path, err)
	}
	s.f = nil
	base := path + "." + s.now().UTC().Format(rotateStamp)
	dst := base
	for i := 1; exists(dst) || exists(dst+".gz"); i++ {
		dst = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("rotating %s: %w", path, err)
	}
	if s.cfg.Rotate.Compress {
		if err := gzipFile(dst); err != nil {
			return err
		}
	}
	s.prune()
	return s.open()
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// gzipFile replaces p by p.gz.
func gzipFile(p string) error {
	in, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("compressing %s: %w", p, err)
	}
	defer in.Close()
	out, err := os.OpenFile(p+".gz", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("compressing %s: %w", p, err)
	}
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p + ".gz")
		return fmt.Errorf("compressing %s: %w", p, err)
	}
	return os.Remove(p)
}

// prune removes rotated files past max_files (the oldest first) and older
// than max_age days. Failures are left for the next rotation.
func (s *fileSender) prune() {
	r := s.cfg.Rotate
	if r.MaxFiles == 0 && r.MaxAge == 0 {
		return
	}
	rotated := s.rotated()
	if r.MaxFiles > 0 && len(rotated) > r.MaxFiles {
		for _, p := range rotated[:len(rotated)-r.MaxFiles] {
			os.Remove(p)
		}
		rotated = rotated[len(rotated)-r.MaxFiles:]
	}
	if r.MaxAge > 0 {
		limit := s.now().Add(-time.Duration(r.MaxAge) * 24 * time.Hour)
		for _, p := range rotated {
			if st, err := os.Stat(p); err == nil && st.ModTime().Before(limit) {
				os.Remove(p)
			}
		}
	}
}

// rotated lists the rotated files of the path, oldest first (their
// names sort by time).
func (s *fileSender) rotated() []string {
	dir, name := filepath.Split(s.cfg.LogPath)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), name+".")
		if !ok || len(rest) < len(rotateStamp) {
			continue
		}
		if _, err := time.Parse(rotateStamp, rest[:len(rotateStamp)]); err != nil {
			continue
		}
		out = append(out, filepath.Join(dir, e.Name()))
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(rotatedKey(a), rotatedKey(b)) })
	return out
}

// rotatedKey orders rotated names by stamp, then by their -N counter.
func rotatedKey(p string) string {
	p = strings.TrimSuffix(p, ".gz")
	i := strings.LastIndexByte(p, '-')
	stampEnd := strings.LastIndexByte(p, '.') + 1 + len(rotateStamp)
	if i < stampEnd {
		return p + "-000000"
	}
	n, _ := strconv.Atoi(p[i+1:])
	return fmt.Sprintf("%s-%06d", p[:i], n)
}

func (s *fileSender) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
