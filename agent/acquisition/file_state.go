package acquisition

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/internal/atomicfile"
)

// Defaults of the file sources' resume bounds (Options).
const (
	// DefaultMaxBacklogAge: a file source stopped for longer starts at
	// the end of its files again, as if new: what was logged meanwhile is
	// too old to act upon.
	DefaultMaxBacklogAge = time.Hour
	// DefaultMaxBacklogBytes: of a larger backlog only the last this many
	// bytes of a file are read, the newest lines mattering most.
	DefaultMaxBacklogBytes = 64 << 20
	// DefaultStateSaveInterval is how often positions are written: a
	// kill -9 makes the next start read again at most what was read in
	// that interval (duplicates, never misses).
	DefaultStateSaveInterval = time.Second
	// headBytes is how much of a file's start identifies it, besides its
	// device and inode: an inode reused by a new file after a rotation
	// deleted the old one has another first line.
	headBytes = 256
	// stateRefresh is how often unchanged positions are written anyway:
	// the file's time says how long ago the source last ran, which
	// max_backlog_age is checked against, even when its logs are idle.
	stateRefresh = time.Minute
)

// fileStateFile is the state file of one file source: where it stopped in
// each file, so that a restart reads what was written while the agent was
// down. It is JSON:
//
//	{"patterns":["/var/log/auth.log"],"saved":"...","files":[{"path":"/var/log/auth.log",
//	 "dev":2049,"ino":131,"offset":8812,"size":8812,"head_len":256,"head":"<sha256 hex>"}]}
type fileStateFile struct {
	Patterns []string       `json:"patterns"`
	Saved    time.Time      `json:"saved"`
	Files    []filePosition `json:"files"`
}

// filePosition is how far one file was read: offset is the start of the
// first line not sent on yet (a partial last line is read again), size
// how much of it was read.
type filePosition struct {
	Path    string `json:"path"`
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Offset  int64  `json:"offset"`
	Size    int64  `json:"size"`
	HeadLen int    `json:"head_len"`
	Head    string `json:"head"`
	// WarmFrom is where a start reads again, as warm-up, the lines read
	// within the warm-up window before this position; Warm the
	// checkpoints it is computed from (at the next start, with its clock).
	WarmFrom int64    `json:"warm_from"`
	Warm     fileRing `json:"warm,omitempty"`
}

// equal compares two positions, checkpoints included.
func (pos filePosition) equal(o filePosition) bool {
	return pos.Path == o.Path && pos.Dev == o.Dev && pos.Ino == o.Ino && pos.Offset == o.Offset &&
		pos.Size == o.Size && pos.HeadLen == o.HeadLen && pos.Head == o.Head && pos.WarmFrom == o.WarmFrom &&
		slices.Equal(pos.Warm, o.Warm)
}

// checkpoint says that at At a source had read up to Pos (a file offset,
// a journal cursor): everything it read after At comes at Pos or after.
type checkpoint[T comparable] struct {
	At  time.Time `json:"at"`
	Pos T         `json:"pos"`
}

// warmRingSize bounds a ring: a new checkpoint is taken at most every
// window/warmRingSize, which re-reads at most that much more.
const warmRingSize = 32

// warmRing is a source's checkpoints, oldest first, taken at each save of
// its position. Only true statements are kept, so any subset of them
// gives a warm-up start that misses nothing read within the window.
type warmRing[T comparable] []checkpoint[T]

// add records that at now the source had read up to pos and drops the
// checkpoints the window no longer needs (all but the newest one at or
// before now-window).
func (r warmRing[T]) add(now time.Time, pos T, window time.Duration) warmRing[T] {
	if window <= 0 {
		return nil
	}
	n := len(r)
	if n == 0 || pos != r[n-1].Pos && now.Sub(r[n-1].At) >= window/warmRingSize {
		r = append(r, checkpoint[T]{At: now, Pos: pos})
	}
	cut := now.Add(-window)
	i := 0
	for i+1 < len(r) && !r[i+1].At.After(cut) {
		i++
	}
	if i > 0 {
		r = append(r[:0], r[i:]...)
	}
	return r
}

// from is where to read again to see everything read since now-window:
// the newest checkpoint at or before then, else the oldest one (nothing
// older was read by this reader).
func (r warmRing[T]) from(now time.Time, window time.Duration) (T, bool) {
	c, ok := r.anchor(now, window)
	return c.Pos, ok
}

// anchor is the checkpoint from returns the position of.
func (r warmRing[T]) anchor(now time.Time, window time.Duration) (checkpoint[T], bool) {
	if len(r) == 0 || window <= 0 {
		return checkpoint[T]{}, false
	}
	cut := now.Add(-window)
	a := r[0]
	for _, c := range r[1:] {
		if c.At.After(cut) {
			break
		}
		a = c
	}
	return a, true
}

// fileRing is a file's checkpoints, by offset.
type fileRing = warmRing[int64]

// addOffset is add for a file's ring: a smaller offset than the last (a
// truncation) starts it again, the older offsets being of content that is
// gone.
func addOffset(r fileRing, now time.Time, off int64, window time.Duration) fileRing {
	if n := len(r); n > 0 && off < r[n-1].Pos {
		r = nil
	}
	return r.add(now, off, window)
}

// stateFileName names a source's state file in stateDir: kind, a readable
// hint of its keys and a hash of them (keys hold '/', '=', anything).
func stateFileName(stateDir, kind string, keys []string, ext string) string {
	sum := sha256.Sum256([]byte(strings.Join(keys, "\x00")))
	hint := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, strings.Join(keys, "_"))
	if len(hint) > 48 {
		hint = hint[:48]
	}
	return filepath.Join(stateDir, kind+"-"+hint+"-"+hex.EncodeToString(sum[:8])+ext)
}

// fileStatePath names the state file of a file source's patterns.
func fileStatePath(stateDir string, patterns []string) string {
	return stateFileName(stateDir, "file", patterns, ".offsets")
}

// loadFileState reads a source's saved positions; nil when there are none.
func loadFileState(path string, patterns []string) (*fileStateFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading file positions: %w", err)
	}
	var st fileStateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("reading file positions %s: %w", path, err)
	}
	if !slices.Equal(st.Patterns, patterns) {
		return nil, fmt.Errorf("file positions %s were saved for filenames %q", path, st.Patterns)
	}
	return &st, nil
}

// saveFileState replaces the state file atomically: a crash leaves the old
// positions or the new ones, never half of them.
func saveFileState(path string, st *fileStateFile) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding file positions: %w", err)
	}
	data = append(data, '\n')
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	if err := atomicfile.WriteBytes(path, data, 0o600); err != nil {
		return fmt.Errorf("saving file positions: %w", err)
	}
	return nil
}

// devIno returns a file's device and inode.
func devIno(fi os.FileInfo) (dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), st.Ino, true //nolint:unconvert // Dev's type varies by platform
}

// headHash hashes the first n bytes of f (fewer if f is shorter), without
// moving its offset; n and the hash are what identify f's content.
func headHash(f *os.File, n int) (int, string, error) {
	buf := make([]byte, n)
	k, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, "", fmt.Errorf("reading the start of %s: %w", f.Name(), err)
	}
	sum := sha256.Sum256(buf[:k])
	return k, hex.EncodeToString(sum[:]), nil
}

// sameFile tells whether f, with info fi, is the file pos was saved for:
// same device and inode, and the same first bytes.
func (pos *filePosition) sameFile(f *os.File, fi os.FileInfo) bool {
	dev, ino, ok := devIno(fi)
	if !ok || dev != pos.Dev || ino != pos.Ino {
		return false
	}
	if pos.HeadLen == 0 {
		return true // it was empty: nothing more to compare
	}
	if fi.Size() < int64(pos.HeadLen) {
		return false // shorter than its saved start: truncated, a new file
	}
	_, h, err := headHash(f, pos.HeadLen)
	return err == nil && h == pos.Head
}

// loadState reads the positions to resume from, unless they are missing,
// unreadable or older than the backlog age (then the files are read from
// their end, as at a first start, and the log says why).
func (r *fileRun) loadState() {
	st, err := loadFileState(r.s.state, r.s.patterns)
	if err != nil {
		r.s.log.WithError(err).Warn("ignoring the saved file positions: reading new lines only")
		return
	}
	if st == nil {
		return
	}
	maxAge := r.s.opts.maxBacklogAge()
	if age := time.Since(st.Saved); maxAge < 0 || age > maxAge {
		if maxAge >= 0 {
			r.s.log.WithFields(log.Fields{"stopped_for": age.Round(time.Second).String(), "max_backlog_age": maxAge.String()}).
				Warn("the source was stopped longer than max_backlog_age: skipping what was written meanwhile")
		}
		return
	}
	r.saved = st
}

// savedFor finds the saved position of the file f is (same device, inode
// and first bytes), preferring the one saved under path.
func (r *fileRun) savedFor(path string, f *os.File, fi os.FileInfo) *filePosition {
	var found *filePosition
	for i := range r.saved.Files {
		p := &r.saved.Files[i]
		if (found == nil || p.Path == path) && p.sameFile(f, fi) {
			found = p
		}
	}
	return found
}

// resume places of, just opened at its start, where reading path must go
// on: at its saved offset when it is the file read before; at its start
// when it was truncated, or is a new file under the name (rotated while
// stopped: the rest of the old one, if still found next to it, is
// returned to be read first); at its end when it is a file never read,
// older than the state.
func (r *fileRun) resume(path string, of *openFile) (rotated *openFile, err error) {
	size := of.fi.Size()
	l := r.s.log.WithField("file", path)
	if pos := r.savedFor(path, of.f, of.fi); pos != nil {
		if size < pos.Offset {
			l.WithFields(log.Fields{"offset": pos.Offset, "size": size}).Info("file truncated while stopped: reading it from its start")
			return nil, r.seekBacklog(path, of, 0)
		}
		return nil, r.seekWarm(path, of, pos)
	}
	var old *filePosition
	for i := range r.saved.Files {
		if r.saved.Files[i].Path == path {
			old = &r.saved.Files[i]
		}
	}
	if old == nil && !of.fi.ModTime().After(r.saved.Saved) {
		// Not read before and untouched since: history, as at a first start.
		return nil, r.seekBacklog(path, of, size)
	}
	if old != nil {
		rotated = r.openRotated(path, old)
	}
	l.WithField("rotated_rest_found", rotated != nil).Info("file replaced while stopped: reading the new one from its start")
	return rotated, r.seekBacklog(path, of, 0)
}

// openRotated looks for the file that was under path, renamed by a
// rotation while the agent was stopped (path.1, or path-DATE), and opens
// it at its saved offset. A name the globs match is left alone: it has
// its own reader, which finds its position by inode.
func (r *fileRun) openRotated(path string, pos *filePosition) *openFile {
	cands := []string{path + ".1"}
	dated, _ := filepath.Glob(path + "-*")
	cands = append(cands, dated...)
	for _, c := range cands {
		if strings.HasSuffix(c, ".gz") || r.matches(c) {
			continue
		}
		of, err := r.open(c, false)
		if err != nil || of == nil {
			continue
		}
		if !pos.sameFile(of.f, of.fi) || of.fi.Size() < pos.Offset {
			of.f.Close()
			continue
		}
		if err := r.seekWarm(c, of, pos); err != nil {
			of.f.Close()
			continue
		}
		return of
	}
	return nil
}

// seekWarm moves of, the file pos was saved for, to its saved offset, and
// first back to where the lines read within the warm-up window before it
// start, to read those again marked as warm-up: the runner pours them
// only to rebuild the buckets. There is no warm-up when the backlog is
// cut by max_backlog_bytes (what it rebuilt would be older than the gap).
func (r *fileRun) seekWarm(path string, of *openFile, pos *filePosition) error {
	if err := r.seekBacklog(path, of, pos.Offset); err != nil {
		return err
	}
	window := r.s.opts.warmupWindow()
	of.ring = slices.Clone(pos.Warm)
	if len(of.ring) == 0 {
		of.ring = fileRing{{At: time.Now(), Pos: pos.Offset}}
	}
	from, ok := of.ring.from(time.Now(), window)
	if !ok || !r.warm || of.offset != pos.Offset || from >= pos.Offset || from < 0 {
		return nil
	}
	cut := false
	if floor := pos.Offset - r.s.opts.maxBacklogBytes(); from < floor {
		from, cut = floor, true
	}
	if _, err := of.f.Seek(from, io.SeekStart); err != nil {
		// Not fatal: resume without warm-up.
		r.s.log.WithError(err).WithField("file", path).Warn("seeking to the warm-up position: no warm-up")
		_, err = of.f.Seek(pos.Offset, io.SeekStart)
		if err != nil {
			return fmt.Errorf("seeking %s: %w", path, err)
		}
		return nil
	}
	of.offset, of.warmUntil = from, pos.Offset
	of.split.discarding = cut // the line the cut lands in is partial
	r.warmBytes += pos.Offset - from
	r.s.log.WithFields(log.Fields{"file": path, "from": from, "offset": pos.Offset}).Debug("warm-up")
	return nil
}

// seekBacklog moves of to from, and marks what lies past it as backlog,
// at most MaxBacklogBytes of it: of a larger backlog the oldest part is
// skipped (and the line cut by the skip dropped).
func (r *fileRun) seekBacklog(path string, of *openFile, from int64) error {
	size := of.fi.Size()
	backlog := size - from
	if maxBytes := r.s.opts.maxBacklogBytes(); backlog > maxBytes {
		r.s.log.WithFields(log.Fields{"file": path, "backlog_bytes": backlog, "skipped_bytes": backlog - maxBytes}).
			Warn("backlog larger than max_backlog_bytes: reading only its newest part")
		from = size - maxBytes
		of.split.discarding = from > 0
	}
	if _, err := of.f.Seek(from, io.SeekStart); err != nil {
		r.s.log.WithError(err).WithField("file", path).Warn("seeking to the saved position")
		return fmt.Errorf("seeking %s: %w", path, err)
	}
	of.offset, of.backlogUntil = from, size
	of.ring = fileRing{{At: time.Now(), Pos: from}}
	if from < size {
		r.s.log.WithFields(log.Fields{"file": path, "offset": from, "backlog_bytes": size - from}).
			Info("reading what was written while the agent was stopped")
	}
	return nil
}

// positions lists where each tailed file is: the start of its first line
// not sent on, so that a partial line is read whole next time.
func (r *fileRun) positions() []filePosition {
	now, window := time.Now(), r.s.opts.warmupWindow()
	out := make([]filePosition, 0, len(r.files))
	for path, t := range r.files {
		of := t.cur
		if of == nil {
			continue
		}
		dev, ino, ok := devIno(of.fi)
		if !ok {
			continue
		}
		off := of.offset - int64(len(of.split.partial))
		if of.split.discarding {
			off = of.offset // inside a line already cut: no use reading it again
		}
		// Stopped during a warm-up: those lines were processed already.
		off = max(off, of.warmUntil)
		if of.headLen < headBytes && off > int64(of.headLen) {
			// Identify the file by as much of its start as exists now.
			if n, h, err := headHash(of.f, headBytes); err == nil {
				of.headLen, of.head = n, h
			}
		}
		of.ring = addOffset(of.ring, now, off, window)
		warmFrom, ok := of.ring.from(now, window)
		if !ok {
			warmFrom = off
		}
		// A copy: the writer goroutine encodes it while the ring changes.
		out = append(out, filePosition{Path: path, Dev: dev, Ino: ino, Offset: off, Size: of.offset,
			HeadLen: of.headLen, Head: of.head, WarmFrom: warmFrom, Warm: slices.Clone(of.ring)})
	}
	slices.SortFunc(out, func(a, b filePosition) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// saveState writes the positions at once, moved or not (their time is
// when the source last ran): at start and at exit, with no writer running.
func (r *fileRun) saveState() {
	pos := r.positions()
	if r.writeState(pos) {
		r.lastSaved, r.lastSavedAt = pos, time.Now()
	}
}

// queueSave hands the positions, if they moved, to the writer: tailing
// never waits for the fsyncs. A writer still busy with the previous ones
// gets these at the next tick.
func (r *fileRun) queueSave() {
	pos := r.positions()
	if r.lastSaved != nil && slices.EqualFunc(pos, r.lastSaved, filePosition.equal) && time.Since(r.lastSavedAt) < stateRefresh {
		return
	}
	select {
	case r.saveQ <- pos:
		r.lastSaved, r.lastSavedAt = pos, time.Now()
	default:
	}
}

// startWriter runs the writer queueSave feeds; the returned func stops it
// once it has written what it was handed.
func (r *fileRun) startWriter() (stop func()) {
	r.saveQ = make(chan []filePosition, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for pos := range r.saveQ {
			r.writeState(pos)
		}
	}()
	return func() {
		close(r.saveQ)
		<-done
	}
}

// writeState writes pos to the state file and reports whether it did.
func (r *fileRun) writeState(pos []filePosition) bool {
	err := saveFileState(r.s.state, &fileStateFile{Patterns: r.s.patterns, Saved: time.Now().UTC(), Files: pos})
	if err != nil {
		// Once per distinct failure, not once a second.
		if err.Error() != r.saveErr {
			r.s.log.WithError(err).Warn("cannot save the file positions: a restart will skip lines written meanwhile")
		}
		r.saveErr = err.Error()
		return false
	}
	r.saveErr = ""
	return true
}
