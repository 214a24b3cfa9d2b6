package acquisition

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/event"
)

// maxLineLen bounds a line: longer ones are cut to it and counted, so a
// runaway writer (a binary file, a stack trace without newlines) cannot
// make the agent hold unbounded memory.
const maxLineLen = 64 << 10

// fileTiming holds the file source's periods; tests shorten them.
type fileTiming struct {
	poll         time.Duration // stat period without inotify
	safety       time.Duration // stat period with inotify, for what events miss
	rescan       time.Duration // glob period, for files that appear later
	partialFlush time.Duration // a last line without newline waits this long
	drainGrace   time.Duration // a rotated-away file is read until quiet this long
}

func defaultFileTiming() fileTiming {
	return fileTiming{
		poll:         250 * time.Millisecond,
		safety:       time.Second,
		rescan:       5 * time.Second,
		partialFlush: 5 * time.Second,
		// Writers reopen their log when logrotate signals them, a moment
		// after the rename: until then lines still land in the old file.
		drainGrace: 5 * time.Second,
	}
}

// fileSource tails the files its globs match, like tail -F.
type fileSource struct {
	name     string
	patterns []string
	labels   map[string]string
	poll     bool
	opts     Options
	log      *log.Entry
	idle     *idleWatch
	timing   fileTiming
	state    string // positions file; "" without a state directory
	// warmed: a Run already warmed up; a Run again (a restart by the
	// supervisor) must not pour those lines twice into the same buckets.
	warmed bool
}

func newFileSource(cfg Config, opts Options) (Source, error) {
	patterns, err := filePatterns(cfg)
	if err != nil {
		return nil, err
	}
	switch {
	case len(cfg.JournalctlFilter) > 0:
		return nil, errors.New("journalctl_filter is a journalctl key, not a file one")
	case cfg.ListenAddr != "" || cfg.ListenPort != 0 || cfg.Protocol != "":
		return nil, errors.New("listen_addr, listen_port and protocol are syslog keys, not file ones")
	}
	name := "file:" + strings.Join(patterns, ",")
	var state string
	if opts.StateDir != "" {
		state = fileStatePath(opts.StateDir, patterns)
	}
	return &fileSource{
		state:    state,
		name:     name,
		patterns: patterns,
		labels:   cfg.Labels,
		poll:     cfg.PollWithoutInotify,
		opts:     opts,
		log:      opts.logger().WithFields(log.Fields{"source": name, "type": cfg.Labels["type"]}),
		idle:     newIdleWatch(name, cfg.IdlePeriod(), opts),
		timing:   defaultFileTiming(),
	}, nil
}

// filePatterns returns the cleaned, checked globs of a configuration.
func filePatterns(cfg Config) ([]string, error) {
	raw := cfg.Filenames
	if cfg.Filename != "" {
		raw = append([]string{cfg.Filename}, raw...)
	}
	if len(raw) == 0 {
		return nil, errors.New("filenames is empty: list the files (globs allowed) to read")
	}
	var out []string
	for _, p := range raw {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("filename %q: want an absolute path", p)
		}
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, fmt.Errorf("filename %q: %w", p, err)
		}
		out = append(out, filepath.Clean(p))
	}
	return out, nil
}

// Name implements Source.
func (s *fileSource) Name() string { return s.name }

// Run implements Source: it tails until ctx ends and then returns nil.
func (s *fileSource) Run(ctx context.Context, out chan<- event.Line) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.idle.run(ctx)

	r := &fileRun{s: s, out: out, files: map[string]*tailedFile{}, openErrs: map[string]openErr{},
		buf: make([]byte, 64<<10), typ: s.labels["type"]}
	defer r.close()
	if s.state != "" {
		r.warm = !s.warmed && s.opts.warmupWindow() > 0
		s.warmed = true
		r.loadState()
		// The last positions, at exit, before the files are closed.
		defer r.saveState()
	}
	if !s.poll {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			s.log.WithError(err).Warnf("inotify unavailable: polling every %s", s.timing.poll)
		} else {
			r.watcher = w
		}
	}
	r.watchDirs()
	// Missing files are waited for, and said so: the source itself is up.
	markUp(ctx)
	if err := r.scan(ctx, true); err != nil {
		return nil // only a cancelled send fails
	}
	if r.warmBytes > 0 {
		s.log.WithFields(log.Fields{"bytes": r.warmBytes, "window": s.opts.warmupWindow().String()}).
			Infof("warm-up: re-reading %d bytes written in the last %s to restore bucket state", r.warmBytes, s.opts.warmupWindow())
	}
	// Resuming is for the files there at start: one unreadable then and
	// readable later is read from its end, as before.
	r.saved = nil
	tick := time.NewTicker(r.tickPeriod())
	defer tick.Stop()
	rescan := time.NewTicker(s.timing.rescan)
	defer rescan.Stop()
	var saveC <-chan time.Time
	if s.state != "" {
		// Also now: a crash before the first tick must not skip the
		// lines written until the next start.
		r.saveState()
		defer r.startWriter()() // before the last save (defers run in reverse)
		save := time.NewTicker(s.opts.saveInterval())
		defer save.Stop()
		saveC = save.C
	}
	for {
		var events chan fsnotify.Event
		var errs chan error
		if r.watcher != nil {
			events, errs = r.watcher.Events, r.watcher.Errors
		}
		wasWatching := r.watcher != nil
		var err error
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			err = r.onEvents(ctx, ev)
		case werr := <-errs:
			// An overflow means events were dropped: look at everything.
			s.log.WithError(werr).Warn("inotify error: checking every file")
			err = r.checkAll(ctx)
		case <-tick.C:
			err = r.checkAll(ctx)
		case <-rescan.C:
			r.watchDirs()
			err = r.scan(ctx, false)
		case <-saveC:
			r.queueSave()
		}
		if err != nil {
			return nil
		}
		if wasWatching && r.watcher == nil {
			tick.Reset(r.tickPeriod())
		}
	}
}

// fileRun is the state of one Run: the files being tailed, owned by the
// Run goroutine alone.
type fileRun struct {
	s        *fileSource
	out      chan<- event.Line
	typ      string
	watcher  *fsnotify.Watcher // nil when polling
	files    map[string]*tailedFile
	openErrs map[string]openErr // paths that could not be opened
	buf      []byte

	// saved is what the state file held at start, to resume from; nil
	// when there is nothing to resume. lastSaved is the latest handed to
	// the writer, to skip writing the same positions again; saveErr the
	// latest failure, logged once.
	saved       *fileStateFile
	lastSaved   []filePosition
	lastSavedAt time.Time
	saveErr     string              // owned by the writer while it runs
	saveQ       chan []filePosition // to the writer (startWriter)
	// warm: this run may warm up; warmBytes is how much its first scan
	// reads again as warm-up.
	warm      bool
	warmBytes int64
}

// openErr remembers why a path could not be opened, to log it once, and
// whether it was there at the start: a file made readable later is still
// read from its end, not replayed as news.
type openErr struct {
	msg   string
	atEnd bool
}

// tailedFile is one path being tailed: the file open under that name, and
// files that were renamed away from it but may still be written to.
type tailedFile struct {
	path     string
	cur      *openFile
	draining []*openFile
	hits     prometheus.Counter
	lines    prometheus.Counter
}

// openFile is one open file (one inode) and how far it was read.
type openFile struct {
	f          *os.File
	fi         os.FileInfo // of the descriptor, to recognise the inode
	offset     int64
	lastGrowth time.Time
	split      lineSplitter
	// backlogUntil is where the lines written while the agent was
	// stopped end: those before it are marked as backlog.
	backlogUntil int64
	// headLen and head identify the file's content in the state file.
	headLen int
	head    string
	// warmUntil is where the lines read again at start to rebuild the
	// buckets end (the saved position): those before it are warm-up.
	warmUntil int64
	// ring is the checkpoints the warm-up position is computed from.
	ring fileRing
}

func (r *fileRun) tickPeriod() time.Duration {
	if r.watcher == nil {
		return r.s.timing.poll
	}
	return r.s.timing.safety
}

func (r *fileRun) close() {
	if r.watcher != nil {
		r.watcher.Close()
	}
	for _, t := range r.files {
		if t.cur != nil {
			t.cur.f.Close()
		}
		for _, of := range t.draining {
			of.f.Close()
		}
	}
}

// pollInstead drops inotify for the rest of the run.
func (r *fileRun) pollInstead(err error) {
	r.s.log.WithError(err).Warnf("inotify failed: polling every %s instead", r.s.timing.poll)
	r.watcher.Close()
	r.watcher = nil
}

// watchDirs puts an inotify watch on every existing directory the globs
// can match files in; events there tell about writes, renames and new
// files without one watch per file.
func (r *fileRun) watchDirs() {
	if r.watcher == nil {
		return
	}
	watched := map[string]bool{}
	for _, d := range r.watcher.WatchList() {
		watched[d] = true
	}
	for _, p := range r.s.patterns {
		dirs := []string{filepath.Dir(p)}
		if hasMeta(dirs[0]) {
			dirs, _ = filepath.Glob(dirs[0]) // the pattern was checked at load
		}
		for _, d := range dirs {
			if watched[d] {
				continue
			}
			if err := r.watcher.Add(d); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // the rescan looks again
				}
				r.pollInstead(fmt.Errorf("watching %s: %w", d, err))
				return
			}
			watched[d] = true
		}
	}
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

func (r *fileRun) matches(path string) bool {
	for _, p := range r.s.patterns {
		if ok, _ := filepath.Match(p, path); ok {
			return true
		}
	}
	return false
}

// scan expands the globs and starts tailing new matches: at their end on
// the first scan (what was there is history), from their start afterwards
// (all of a new file is news).
func (r *fileRun) scan(ctx context.Context, first bool) error {
	found := 0
	for _, p := range r.s.patterns {
		paths, _ := filepath.Glob(p) // the pattern was checked at load
		for _, path := range paths {
			found++
			if _, ok := r.files[path]; ok {
				continue
			}
			t, err := r.track(ctx, path, first)
			if err != nil {
				return err
			}
			if t != nil && (!first || t.cur != nil && t.cur.offset < t.cur.backlogUntil) {
				if err := r.check(ctx, t); err != nil {
					return err
				}
			}
		}
	}
	if first && found == 0 {
		r.s.log.Warn("no file matches yet: waiting for one to appear")
	}
	return nil
}

// track starts tailing path; nil when it cannot (yet). It fails only
// when ctx ends.
func (r *fileRun) track(ctx context.Context, path string, atEnd bool) (*tailedFile, error) {
	if prev, ok := r.openErrs[path]; ok {
		atEnd = atEnd || prev.atEnd
	}
	resuming := atEnd && r.saved != nil
	of, err := r.open(path, atEnd && !resuming)
	if err != nil {
		r.openFailed(path, err, atEnd)
		return nil, nil
	}
	if of == nil {
		return nil, nil
	}
	delete(r.openErrs, path)
	var rotated *openFile // the rest of the file rotated away while stopped
	if resuming {
		if rotated, err = r.resume(path, of); err != nil {
			of.f.Close()
			return nil, nil
		}
	}
	// The same inode under another name: a rotated file the globs also
	// match (auth.log.1 for /var/log/*) or a link. Reading it again would
	// repeat its lines, so continue where its reader is.
	for _, other := range r.files {
		if other.cur != nil && os.SameFile(other.cur.fi, of.fi) {
			// Most likely other's path was just rotated to this name and
			// other has not noticed yet: let it.
			if err := r.check(ctx, other); err != nil {
				of.f.Close()
				return nil, err
			}
			if other.cur != nil && os.SameFile(other.cur.fi, of.fi) {
				of.f.Close() // a link: one reader is enough
				return nil, nil
			}
		}
		for i, d := range other.draining {
			if os.SameFile(d.fi, of.fi) {
				of.f.Close()
				of = d
				other.draining = append(other.draining[:i], other.draining[i+1:]...)
				break
			}
		}
	}
	t := r.add(path, of)
	if rotated != nil {
		// Read it now, before the file that replaced it.
		rotated.lastGrowth = time.Now()
		t.draining = append(t.draining, rotated)
		if _, err := r.read(ctx, t, rotated); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// openFailed logs that path cannot be opened, once per distinct error.
func (r *fileRun) openFailed(path string, err error, atEnd bool) {
	if prev, ok := r.openErrs[path]; ok && prev.msg == err.Error() {
		return
	}
	r.openErrs[path] = openErr{msg: err.Error(), atEnd: atEnd}
	r.s.log.WithError(err).WithField("file", path).Warn("cannot read file: will retry")
}

func (r *fileRun) add(path string, of *openFile) *tailedFile {
	t := &tailedFile{path: path, cur: of, hits: r.s.opts.Metrics.hitCounter("file", path, r.typ),
		lines: r.s.opts.Metrics.lineCounter(path, r.typ)}
	r.files[path] = t
	r.s.log.WithFields(log.Fields{"file": path, "offset": of.offset}).Info("tailing file")
	return t
}

// adoptRenamed hands a rotated-away file whose grace ended to a new
// reader when the globs match its new name (auth.log.1 for /var/log/*):
// the rescan would otherwise read it again from its start.
func (r *fileRun) adoptRenamed(of *openFile) bool {
	for _, p := range r.s.patterns {
		paths, _ := filepath.Glob(p) // the pattern was checked at load
		for _, path := range paths {
			if _, ok := r.files[path]; ok {
				continue
			}
			if fi, err := os.Stat(path); err == nil && os.SameFile(fi, of.fi) {
				r.add(path, of)
				return true
			}
		}
	}
	return false
}

// open opens a regular file at its start or end; nil, nil for anything
// that is not a regular file.
func (r *fileRun) open(path string, atEnd bool) (*openFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat of open file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil
	}
	of := &openFile{f: f, fi: fi, lastGrowth: time.Now()}
	if atEnd {
		if of.offset, err = f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, fmt.Errorf("seeking to end: %w", err)
		}
	}
	// Nothing before its opening offset was read by this reader.
	of.ring = fileRing{{At: time.Now(), Pos: of.offset}}
	return of, nil
}

// onEvents handles ev and every event already queued behind it, checking
// each file once: a busy writer makes one event per write.
func (r *fileRun) onEvents(ctx context.Context, ev fsnotify.Event) error {
	dirty := map[string]bool{}
	newDir := false
	add := func(ev fsnotify.Event) {
		if _, ok := r.files[ev.Name]; ok {
			dirty[ev.Name] = true
			return
		}
		if r.matches(ev.Name) && !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) {
			dirty[ev.Name] = true
			return
		}
		if ev.Has(fsnotify.Create) {
			if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
				newDir = true // a directory a glob may match: watch it
			}
		}
	}
	add(ev)
	for more := true; more && r.watcher != nil; {
		select {
		case ev := <-r.watcher.Events:
			add(ev)
		default:
			more = false
		}
	}
	names := make([]string, 0, len(dirty))
	for n := range dirty {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t, ok := r.files[n]
		if !ok {
			var err error
			if t, err = r.track(ctx, n, false); err != nil {
				return err
			} else if t == nil {
				continue
			}
		}
		if err := r.check(ctx, t); err != nil {
			return err
		}
	}
	if newDir {
		r.watchDirs()
		return r.scan(ctx, false)
	}
	return nil
}

func (r *fileRun) checkAll(ctx context.Context) error {
	for _, t := range r.files {
		if err := r.check(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// check reads what is new in t and follows rotations: a shorter file was
// truncated (copytruncate), another inode under the path was renamed and
// recreated (the old one is read until quiet, the new one from its start).
// It fails only when ctx ends.
func (r *fileRun) check(ctx context.Context, t *tailedFile) error {
	now := time.Now()
	fi, statErr := os.Stat(t.path)
	if of := t.cur; of != nil {
		if cfi, err := of.f.Stat(); err == nil && cfi.Size() < of.offset {
			r.s.log.WithFields(log.Fields{"file": t.path, "offset": of.offset, "size": cfi.Size()}).
				Info("file truncated: reading from its start")
			if err := r.flush(ctx, t, of); err != nil {
				return err
			}
			if _, err := of.f.Seek(0, io.SeekStart); err != nil {
				r.s.log.WithError(err).WithField("file", t.path).Warn("seeking to start after truncation")
			}
			of.offset, of.warmUntil = 0, 0
		}
		if _, err := r.read(ctx, t, of); err != nil {
			return err
		}
		if statErr != nil || !os.SameFile(fi, of.fi) {
			r.s.log.WithField("file", t.path).Info("file rotated or removed: finishing the old one")
			of.lastGrowth = now
			t.draining = append(t.draining, of)
			t.cur = nil
		}
	}
	if t.cur == nil && statErr == nil {
		of, err := r.open(t.path, false)
		if err != nil {
			r.openFailed(t.path, err, false)
		} else if of != nil {
			delete(r.openErrs, t.path)
			t.cur = of
			if _, err := r.read(ctx, t, of); err != nil {
				return err
			}
		}
	}
	keep := t.draining[:0]
	for _, of := range t.draining {
		grew, err := r.read(ctx, t, of)
		if err != nil {
			return err
		}
		if grew {
			of.lastGrowth = now
		}
		if now.Sub(of.lastGrowth) < r.s.timing.drainGrace {
			keep = append(keep, of)
			continue
		}
		if r.adoptRenamed(of) {
			continue
		}
		if err := r.flush(ctx, t, of); err != nil {
			return err
		}
		of.f.Close()
	}
	t.draining = keep
	if of := t.cur; of != nil && of.split.pending() && now.Sub(of.split.since) >= r.s.timing.partialFlush {
		if err := r.flush(ctx, t, of); err != nil {
			return err
		}
	}
	if t.cur == nil && len(t.draining) == 0 {
		delete(r.files, t.path) // gone: a file of that name is new again
	}
	return nil
}

// read sends the complete lines of what of holds past its offset.
func (r *fileRun) read(ctx context.Context, t *tailedFile, of *openFile) (grew bool, err error) {
	backlog, warm := false, false
	emit := func(b []byte, cut bool) error { return r.emitLine(ctx, t, b, cut, backlog, warm) }
	for {
		// By read: a chunk across the end of the backlog marks its
		// newest lines too, which only gives them their own time. A
		// chunk never crosses the end of the warm-up: the overflows of
		// warm-up lines are dropped, so no new line may be one.
		backlog = of.offset < of.backlogUntil
		buf := r.buf
		if warm = of.offset < of.warmUntil; warm && int64(len(buf)) > of.warmUntil-of.offset {
			buf = buf[:of.warmUntil-of.offset]
		}
		n, rerr := of.f.Read(buf)
		if n > 0 {
			grew = true
			of.offset += int64(n)
			if err := of.split.feed(r.buf[:n], emit); err != nil {
				return grew, err
			}
		}
		if rerr != nil {
			if rerr != io.EOF {
				r.s.log.WithError(rerr).WithField("file", t.path).Warn("reading file")
			}
			return grew, nil
		}
	}
}

func (r *fileRun) flush(ctx context.Context, t *tailedFile, of *openFile) error {
	return of.split.flush(func(b []byte, cut bool) error { return r.emit(ctx, t, b, cut) })
}

func (r *fileRun) emit(ctx context.Context, t *tailedFile, b []byte, cut bool) error {
	return r.emitLine(ctx, t, b, cut, false, false)
}

// emitLine sends a line on. Warm-up lines are counted as read (they are),
// not as new by the runner.
func (r *fileRun) emitLine(ctx context.Context, t *tailedFile, b []byte, cut, backlog, warm bool) error {
	if cut {
		r.s.opts.Metrics.truncatedCounter(t.path).Inc()
	}
	// Labels is shared by every line of the source: events never change it.
	ev := event.Line{Raw: string(b), Src: t.path, Module: "file", Labels: r.s.labels, Time: time.Now(), Backlog: backlog, Warmup: warm}
	select {
	case r.out <- ev:
	case <-ctx.Done():
		return ctx.Err()
	}
	t.hits.Inc()
	t.lines.Inc()
	r.s.idle.seen()
	return nil
}

// lineSplitter cuts a byte stream into lines. A last line without newline
// is held (pending) until its newline arrives or the caller flushes it.
type lineSplitter struct {
	partial    []byte
	since      time.Time // when partial last grew
	discarding bool      // the rest of a line already cut to maxLineLen
}

func (s *lineSplitter) pending() bool { return len(s.partial) > 0 }

// feed splits data and calls emit for each complete, non-empty line
// (without its "\n" or "\r\n"); cut tells that the line was longer than
// maxLineLen and was cut to it.
func (s *lineSplitter) feed(data []byte, emit func(line []byte, cut bool) error) error {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if s.discarding {
				return nil
			}
			if room := maxLineLen - len(s.partial); len(data) > room {
				s.partial = append(s.partial, data[:room]...)
				s.discarding = true
				return s.flushCut(emit, true)
			}
			s.partial = append(s.partial, data...)
			s.since = time.Now()
			return nil
		}
		piece := data[:i]
		data = data[i+1:]
		if s.discarding {
			s.discarding = false
			continue
		}
		if len(s.partial) > 0 {
			s.partial = append(s.partial, piece...)
			piece = s.partial
			s.partial = s.partial[:0]
		}
		if err := sendLine(piece, emit); err != nil {
			return err
		}
	}
	return nil
}

// flush sends the pending partial line, if any, as a line of its own.
func (s *lineSplitter) flush(emit func([]byte, bool) error) error {
	s.discarding = false
	if len(s.partial) == 0 {
		return nil
	}
	return s.flushCut(emit, false)
}

func (s *lineSplitter) flushCut(emit func([]byte, bool) error, cut bool) error {
	line := s.partial
	s.partial = s.partial[:0]
	if cut {
		return emit(line, true)
	}
	return sendLine(line, emit)
}

// sendLine drops a CR of a CRLF ending (grok patterns anchored at the end
// would not match with it), skips empty lines and cuts long ones.
func sendLine(b []byte, emit func([]byte, bool) error) error {
	b = bytes.TrimSuffix(b, []byte{'\r'})
	if len(b) == 0 {
		return nil
	}
	if len(b) > maxLineLen {
		return emit(b[:maxLineLen], true)
	}
	return emit(b, false)
}

// fileReplay reads whole files once, from their start: the -dsn file://
// mode. Files ending in .gz are decompressed, for rotated logs.
type fileReplay struct {
	name   string
	paths  []string
	labels map[string]string
	opts   Options
	log    *log.Entry
}

func fileReplayFromDSN(dsn string, labels map[string]string, opts Options) (Source, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing file DSN: %w", err)
	}
	if u.Host != "" {
		return nil, fmt.Errorf("host %q in a file DSN: want file:///absolute/path", u.Host)
	}
	if len(u.Query()) > 0 {
		return nil, fmt.Errorf("file DSN takes no parameters, got %q", u.RawQuery)
	}
	pattern := u.Path
	if !filepath.IsAbs(pattern) {
		return nil, fmt.Errorf("path %q: want file:///absolute/path", pattern)
	}
	paths, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", pattern, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no file matches %s", pattern)
	}
	name := "file:" + pattern
	return &fileReplay{name: name, paths: paths, labels: labels, opts: opts,
		log: opts.logger().WithFields(log.Fields{"source": name, "type": labels["type"]})}, nil
}

// Name implements Source.
func (s *fileReplay) Name() string { return s.name }

// Run implements Source: it returns nil once every file was read, or when
// ctx ends.
func (s *fileReplay) Run(ctx context.Context, out chan<- event.Line) error {
	return s.run(ctx, func(ls []event.Line) error {
		for _, l := range ls {
			select {
			case out <- l:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
}

// RunBatches implements BatchSource.
func (s *fileReplay) RunBatches(ctx context.Context, out chan<- []event.Line) error {
	return s.run(ctx, func(ls []event.Line) error {
		select {
		case out <- ls:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

func (s *fileReplay) run(ctx context.Context, emit func([]event.Line) error) error {
	for _, path := range s.paths {
		hits := s.opts.Metrics.hitCounter("file", path, s.labels["type"])
		lines := s.opts.Metrics.lineCounter(path, s.labels["type"])
		truncated := s.opts.Metrics.truncatedCounter(path)
		n, err := ReadFile(ctx, path, s.labels, truncated.Inc, func(ls []event.Line) error {
			if err := emit(ls); err != nil {
				return err
			}
			hits.Add(float64(len(ls)))
			lines.Add(float64(len(ls)))
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s.log.WithFields(log.Fields{"file": path, "bytes": n}).Info("replay file read")
	}
	return nil
}

// ReadFile reads the file at path once, from its start (decompressing it
// if its name ends in .gz), and hands its lines, cut as the tailing
// source cuts them, to emit in batches of at most ReplayBatch, each the
// receiver's; cut, if not nil, is called for each line cut to the maximum
// length. It is the replay of a -dsn file://, and how the benchmarks read
// their logs, so that both pay the same. It returns the bytes read, and
// emit's error if it fails.
func ReadFile(ctx context.Context, path string, labels map[string]string, cut func(), emit func([]event.Line) error) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("opening replay file: %w", err)
	}
	defer f.Close()
	var rd io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return 0, fmt.Errorf("reading %s: %w", path, err)
		}
		defer gz.Close()
		rd = gz
	}
	// readAt is when the buffer being split was read: the time of each of
	// its lines (one clock read per buffer, not per line).
	var readAt time.Time
	batch := make([]event.Line, 0, ReplayBatch)
	add := func(b []byte, c bool) error {
		if c && cut != nil {
			cut()
		}
		batch = append(batch, event.Line{Raw: string(b), Src: path, Module: "file", Labels: labels, Time: readAt})
		if len(batch) < ReplayBatch {
			return nil
		}
		full := batch
		batch = make([]event.Line, 0, ReplayBatch)
		return emit(full)
	}
	var split lineSplitter
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, rerr := rd.Read(buf)
		readAt = time.Now()
		n += int64(k)
		if err := split.feed(buf[:k], add); err != nil {
			return n, err
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, fmt.Errorf("reading %s: %w", path, rerr)
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
	}
	if err := split.flush(add); err != nil {
		return n, err
	}
	if len(batch) > 0 {
		return n, emit(batch)
	}
	return n, nil
}
