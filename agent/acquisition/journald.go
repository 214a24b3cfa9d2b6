package acquisition

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/internal/backoff"
)

// journalMaxEntry bounds one JSON entry. Without --all journalctl writes
// fields over 4096 bytes as null, so real entries stay far below it.
const journalMaxEntry = 1 << 20

// journalTiming holds the journalctl source's periods; tests shorten them.
type journalTiming struct {
	minBackoff time.Duration // first wait before restarting journalctl
	maxBackoff time.Duration // the wait doubles up to this
	healthy    time.Duration // a run this long resets the wait
	saveEvery  time.Duration // the cursor is written at most this often
	stopGrace  time.Duration // journalctl gets this long to exit on SIGTERM
}

func defaultJournalTiming() journalTiming {
	return journalTiming{
		minBackoff: time.Second,
		maxBackoff: time.Minute,
		healthy:    time.Minute,
		saveEvery:  time.Second,
		stopGrace:  5 * time.Second,
	}
}

// journalSource reads the journal through journalctl's JSON output,
// following it (live) or once (replay). journalctl rather than
// sd-journal through cgo: it keeps the binary static and is what
// upstream runs.
type journalSource struct {
	name    string
	src     string // Line.Src, upstream's "journalctl-<filters joined by .>"
	filters []string
	labels  map[string]string
	bin     string // the journalctl to run; tests point it at a fake
	follow  bool
	state   string // cursor file; "" when there is no state directory
	log     *log.Entry
	idle    *idleWatch
	lines   prometheus.Counter
	hits    prometheus.Counter // upstream's per-source counter, by Src
	timing  journalTiming

	// started is when the live source started: entries logged before it
	// (read from the saved cursor) are backlog. Set before journalctl runs.
	started time.Time

	mu     sync.Mutex
	cursor string // of the last entry sent on
	saved  string // what the state file holds

	// window is the warm-up window (Options.WarmupWindow); ring the
	// checkpoints a next start's warm-up begins at, owned by whoever
	// saves the cursor; warmed that a Run already warmed up (a restarted
	// Run must not pour those entries twice into the same buckets).
	window time.Duration
	ring   journalRing
	warmed bool
}

func newJournalSource(cfg Config, opts Options) (Source, error) {
	s, err := newJournalSourceWith(cfg, opts, "journalctl")
	if err != nil {
		return nil, err // not a nil *journalSource inside a non-nil Source
	}
	return s, nil
}

// newJournalSourceWith is newJournalSource with the journalctl to run.
func newJournalSourceWith(cfg Config, opts Options, bin string) (*journalSource, error) {
	switch {
	case cfg.Filename != "" || len(cfg.Filenames) > 0 || cfg.PollWithoutInotify:
		return nil, errors.New("filenames and poll_without_inotify are file keys, not journalctl ones")
	case cfg.ListenAddr != "" || cfg.ListenPort != 0 || cfg.Protocol != "":
		return nil, errors.New("listen_addr, listen_port and protocol are syslog keys, not journalctl ones")
	}
	s, err := newJournal(cfg.JournalctlFilter, cfg.Labels, opts, bin)
	if err != nil {
		return nil, err
	}
	s.follow = true
	if opts.StateDir != "" {
		s.state = journalCursorPath(opts.StateDir, s.filters)
		s.window = opts.warmupWindow()
	}
	s.idle = newIdleWatch(s.name, cfg.IdlePeriod(), opts)
	return s, nil
}

// newJournalReplay reads what the journal holds for filters, once
// (journalctl://filters=... DSNs).
func newJournalReplay(filters []string, labels map[string]string, opts Options) (Source, error) {
	s, err := newJournalReplayWith(filters, labels, opts, "journalctl")
	if err != nil {
		return nil, err
	}
	return s, nil
}

func newJournalReplayWith(filters []string, labels map[string]string, opts Options, bin string) (*journalSource, error) {
	s, err := newJournal(filters, labels, opts, bin)
	if err != nil {
		return nil, err
	}
	s.idle = newIdleWatch(s.name, 0, opts) // a replay ends; it is never idle
	return s, nil
}

func newJournal(filters []string, labels map[string]string, opts Options, bin string) (*journalSource, error) {
	if err := checkJournalFilters(filters); err != nil {
		return nil, err
	}
	filters = append([]string(nil), filters...)
	name := "journalctl:" + strings.Join(filters, " ")
	src := "journalctl-" + strings.Join(filters, ".")
	return &journalSource{
		name:    name,
		src:     src,
		filters: filters,
		labels:  labels,
		bin:     bin,
		log:     opts.logger().WithFields(log.Fields{"source": name, "type": labels["type"]}),
		lines:   opts.Metrics.lineCounter(name, labels["type"]),
		hits:    opts.Metrics.hitCounter("journalctl", src, labels["type"]),
		timing:  defaultJournalTiming(),
	}, nil
}

// journalMatch recognises FIELD=value: field names are upper-case
// letters, digits and '_', not starting with a digit (journal-file rules).
var journalMatch = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`)

// journalOption tells the journalctl options a filter may hold: those
// that select entries. Those that choose the output or the position
// (--output, --lines, --since, --cursor ...) are ours to set.
func journalOption(opt string) (takesValue, ok bool) {
	switch opt {
	case "--unit", "--user-unit", "--identifier", "--priority", "--facility", "--grep",
		"--namespace", "--directory", "--file", "--machine",
		"-u", "-t", "-p", "-g", "-D", "-M":
		return true, true
	case "--boot", "--case-sensitive", // their value is optional: --boot=-1
		"--dmesg", "--system", "--user", "--merge", "-b", "-k", "-m":
		return false, true
	}
	return false, false
}

// checkJournalFilters accepts journalctl matches (FIELD=value), the "+"
// that ORs groups of them, executable paths (journalctl matches on
// _EXE), and options that narrow the selection (--unit=ssh.service, or
// "-u" and "ssh.service" as two items).
func checkJournalFilters(filters []string) error {
	if len(filters) == 0 {
		return errors.New("journalctl_filter is empty: list journal matches, e.g. [\"_SYSTEMD_UNIT=ssh.service\"]")
	}
	for i := 0; i < len(filters); i++ {
		f := filters[i]
		switch {
		case f == "+", journalMatch.MatchString(f), strings.HasPrefix(f, "/"):
			continue
		case strings.HasPrefix(f, "-"):
			opt, _, hasValue := strings.Cut(f, "=")
			takesValue, ok := journalOption(opt)
			if !ok {
				return fmt.Errorf("journalctl_filter %q: option not allowed (matches such as _SYSTEMD_UNIT=ssh.service, or --unit=, --identifier=, --priority=, --grep= ...)", f)
			}
			if takesValue && !hasValue {
				if strings.HasPrefix(opt, "--") || i+1 == len(filters) {
					return fmt.Errorf("journalctl_filter %q: needs a value (%s=...)", f, opt)
				}
				i++ // "-u", "ssh.service"
			}
		default:
			return fmt.Errorf("journalctl_filter %q: want FIELD=value (e.g. _SYSTEMD_UNIT=ssh.service), \"+\" or an option such as --unit=", f)
		}
	}
	return nil
}

// Name implements Source.
func (s *journalSource) Name() string { return s.name }

// Run implements Source. Live, it follows the journal until ctx ends,
// restarting journalctl when it exits; a replay returns once journalctl
// has printed everything.
func (s *journalSource) Run(ctx context.Context, out chan<- event.Line) error {
	if _, err := exec.LookPath(s.bin); err != nil {
		return fmt.Errorf("journalctl source: cannot run %s (is systemd's journalctl installed?): %w", s.bin, err)
	}
	if !s.follow {
		return s.replay(ctx, out)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.idle.run(ctx)
	s.started = time.Now()

	if s.state != "" {
		st, err := loadJournalState(s.state, s.filters)
		if err != nil {
			s.log.WithError(err).Warn("ignoring the saved journal cursor: reading new entries only")
		}
		c := st.Cursor
		s.mu.Lock()
		s.cursor, s.saved = c, c
		s.mu.Unlock()
		switch {
		case c == "":
			// Read from the journal's end as it is now: a checkpoint
			// without cursor, at the start time.
			s.ring = journalRing{{At: s.started}}
		case len(st.Warm) > 0:
			s.ring = st.Warm
		default:
			s.ring = journalRing{{At: st.Saved, Pos: c}}
		}
		if !s.warmed && c != "" {
			s.warmup(ctx, c, st.Saved, out)
		}
		s.warmed = true
		saverDone := make(chan struct{})
		go func() {
			defer close(saverDone)
			s.saveLoop(ctx)
		}()
		defer func() {
			cancel()
			<-saverDone
			if err := s.saveCursor(); err != nil { // the last position, at exit
				s.log.WithError(err).Warn("cannot save the journal cursor: the next start reads new entries only")
			}
		}()
	}

	retry := backoff.Backoff{Min: s.timing.minBackoff, Max: s.timing.maxBackoff}
	for {
		cursor := s.lastCursor()
		started := time.Now()
		res := s.runJournalctl(ctx, s.followArgs(cursor), out)
		if ctx.Err() != nil {
			return nil
		}
		if cursor != "" && res.lines == 0 && strings.Contains(res.stderr, "cursor") {
			// The state file holds a cursor journalctl rejects (edited,
			// or from another machine's journal): start afresh.
			s.log.WithField("stderr", res.stderr).Warn("journalctl rejected the saved cursor: reading new entries only")
			s.forgetCursor()
			continue
		}
		if res.lines > 0 || time.Since(started) >= s.timing.healthy {
			retry.Reset()
		}
		delay := retry.Next()
		markDown(ctx, res.err, delay)
		s.log.WithError(res.err).WithFields(log.Fields{"stderr": res.stderr, "retry_in": delay.Round(time.Millisecond).String()}).
			Warn("journalctl exited: restarting it")
		if !backoff.Sleep(ctx, delay) {
			return nil
		}
	}
}

// followArgs resumes after cursor, or starts at the end of the journal.
// --lines=all goes with the cursor because --follow alone shows only the
// last 10 entries first: the rest of the backlog would wait for the next
// new entry.
//
// --merge: since systemd 250 --follow implies --boot, a match on the boot
// id journalctl reads from /proc/sys/kernel/random/boot_id. In a container
// (nspawn, LXC) that file is the manager's overmount, which the unit's
// fresh /proc (ProtectKernelTunables, ProtectControlGroups, ProtectProc
// each mount one) does not have: journalctl sees the host's boot id and
// matches none of the container's entries. --merge drops that implied
// match (the journal files read are the same: this host's, plus remote
// ones only where systemd-journal-remote writes them); it also lets a
// cursor from before a reboot resume into the current boot.
func (s *journalSource) followArgs(cursor string) []string {
	args := []string{"--follow", "--merge", "--output=json"}
	if cursor != "" {
		args = append(args, "--after-cursor="+cursor, "--lines=all")
	} else {
		args = append(args, "--lines=0")
	}
	return append(args, s.filters...)
}

func (s *journalSource) replay(ctx context.Context, out chan<- event.Line) error {
	args := append([]string{"--output=json", "--no-pager"}, s.filters...)
	res := s.runJournalctl(ctx, args, out)
	if ctx.Err() != nil {
		return nil
	}
	if res.err != nil {
		if res.stderr != "" {
			return fmt.Errorf("journalctl %s: %w: %s", strings.Join(args, " "), res.err, res.stderr)
		}
		return fmt.Errorf("journalctl %s: %w", strings.Join(args, " "), res.err)
	}
	s.log.WithField("lines", res.lines).Info("journal replay done")
	return nil
}

// journalRun is how one journalctl process went.
type journalRun struct {
	lines  int    // entries sent on
	stderr string // its last line of complaint
	err    error  // why it could not start, or its exit status
}

// runJournalctl runs journalctl once and sends its entries on until it
// exits or ctx ends (then it is stopped).
func (s *journalSource) runJournalctl(ctx context.Context, args []string, out chan<- event.Line) journalRun {
	var res journalRun
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = s.timing.stopGrace
	stderr := &journalStderr{log: s.log}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		res.err = fmt.Errorf("starting journalctl: %w", err)
		return res
	}
	s.log.WithField("args", strings.Join(args, " ")).Debug("starting journalctl")
	if err := cmd.Start(); err != nil {
		res.err = fmt.Errorf("starting journalctl: %w", err)
		return res
	}
	markUp(ctx)
	br := bufio.NewReaderSize(stdout, 64<<10)
	var buf []byte
	for {
		line, tooLong, rerr := readJournalLine(br, buf[:0], journalMaxEntry)
		buf = line
		if tooLong {
			s.log.WithField("max", journalMaxEntry).Warn("journal entry too large: skipped")
		} else if len(bytes.TrimSpace(line)) > 0 {
			if !s.entry(ctx, line, out) {
				break
			}
			res.lines++
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) && ctx.Err() == nil {
				// Unreadable output: stop this journalctl rather than
				// wait for it with nobody reading.
				s.log.WithError(rerr).Warn("reading journalctl output")
				_ = cmd.Process.Kill()
			}
			break
		}
	}
	// Once ctx is done, CommandContext sends SIGTERM and kills journalctl
	// after stopGrace, so Wait returns.
	werr := cmd.Wait()
	res.stderr = stderr.last()
	if ctx.Err() != nil {
		return res
	}
	res.err = werr
	if res.err == nil && s.follow {
		res.err = errors.New("journalctl exited with status 0")
	}
	return res
}

// entry sends one JSON line on; it returns false once ctx has ended.
func (s *journalSource) entry(ctx context.Context, line []byte, out chan<- event.Line) bool {
	if line[0] != '{' {
		// journalctl may print "-- No entries --" or boot separators
		// around the JSON, depending on its version.
		s.log.WithField("line", string(syslogPrefix(line, 80))).Debug("journalctl printed a non-JSON line: skipped")
		return true
	}
	r, err := decodeJournalEntry(line)
	if err != nil {
		s.log.WithError(err).Debug("unreadable journal entry: skipped")
		return true
	}
	if !r.HasMsg {
		// journalctl writes MESSAGE as null when it is over 4096 bytes.
		s.log.WithField("cursor", r.Cursor).Debug("journal entry without MESSAGE (absent or over 4096 bytes): skipped")
		s.setCursor(r.Cursor)
		return true
	}
	ev := s.line(r)
	select {
	case out <- ev:
	case <-ctx.Done():
		return false
	}
	s.setCursor(r.Cursor)
	s.lines.Inc()
	s.hits.Inc()
	s.idle.seen()
	return true
}

// line is the event.Line of an entry.
func (s *journalSource) line(r journalRecord) event.Line {
	now := time.Now()
	t := r.Time
	if t.IsZero() {
		t = now
	}
	return event.Line{
		Raw:    journalRaw(r, now),
		Src:    s.src,
		Module: "journalctl",
		Labels: s.labels, // shared by every line of the source: events never change it
		Time:   t,
		// Logged while the agent was stopped, resumed from the cursor.
		Backlog: s.follow && !r.Time.IsZero() && r.Time.Before(s.started),
	}
}

// warmup reads again, marked as warm-up, the entries read within the
// warm-up window before the saved cursor: the runner pours them only to
// rebuild the buckets. journalctl cannot stop at a cursor, so the read
// stops at the entry with the saved cursor, or failing it (the journal
// was vacuumed) at the first entry logged after the cursor was saved:
// that one and those after it were never read, the follow reads them.
// Failures only cost the warm-up.
func (s *journalSource) warmup(ctx context.Context, until string, savedAt time.Time, out chan<- event.Line) {
	a, ok := s.ring.anchor(time.Now(), s.window)
	if !ok || a.Pos == until {
		return
	}
	args := []string{"--output=json", "--no-pager"}
	if a.Pos == "" {
		args = append(args, fmt.Sprintf("--since=@%d", a.At.Unix()))
	} else {
		args = append(args, "--after-cursor="+a.Pos)
	}
	args = append(args, s.filters...)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = s.timing.stopGrace
	cmd.Stderr = &journalStderr{log: s.log}
	stdout, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		s.log.WithError(err).Warn("warm-up: cannot run journalctl: no warm-up")
		return
	}
	br := bufio.NewReaderSize(stdout, 64<<10)
	var buf []byte
	n := 0
	for {
		line, tooLong, rerr := readJournalLine(br, buf[:0], journalMaxEntry)
		buf = line
		if !tooLong && len(line) > 0 && line[0] == '{' {
			r, err := decodeJournalEntry(line)
			switch {
			case err != nil:
			case r.Time.After(savedAt):
				rerr = io.EOF // never read before
			case a.Pos == "" && r.Time.Before(a.At):
				// logged before the source first started: never read
			case r.HasMsg:
				ev := s.line(r)
				ev.Backlog, ev.Warmup = false, true
				select {
				case out <- ev:
				case <-ctx.Done():
					rerr = ctx.Err()
				}
				n++
				s.lines.Inc()
				s.hits.Inc()
			}
			if err == nil && r.Cursor == until {
				rerr = io.EOF
			}
		}
		if rerr != nil {
			break
		}
	}
	cancel()
	_ = cmd.Wait() // stopped by cancel once past the saved cursor
	if n > 0 {
		s.log.WithFields(log.Fields{"entries": n, "window": s.window.String()}).
			Infof("warm-up: re-reading %d entries logged in the last %s to restore bucket state", n, s.window)
	}
}

// readJournalLine reads one line into buf (without its "\n"). A line
// over max is consumed but not kept: tooLong reports it.
func readJournalLine(br *bufio.Reader, buf []byte, max int) (line []byte, tooLong bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if !tooLong && len(buf)+len(frag) <= max+1 {
			buf = append(buf, frag...)
		} else {
			tooLong, buf = true, buf[:0]
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimSuffix(buf, []byte("\n")), tooLong, err
	}
}

func (s *journalSource) lastCursor() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursor
}

func (s *journalSource) setCursor(c string) {
	if !s.follow {
		return // a replay has no position to keep
	}
	s.mu.Lock()
	s.cursor = c
	s.mu.Unlock()
}

func (s *journalSource) forgetCursor() {
	s.mu.Lock()
	s.cursor, s.saved = "", ""
	s.mu.Unlock()
	if s.state != "" {
		if err := os.Remove(s.state); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.WithError(err).Warn("removing the rejected journal cursor")
		}
	}
}

// saveLoop writes the cursor when it moved, at most every saveEvery: a
// busy journal must not cost a file write per entry.
func (s *journalSource) saveLoop(ctx context.Context) {
	t := time.NewTicker(s.timing.saveEvery)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.saveCursor(); err != nil {
				// Once per distinct failure, not once a second.
				if err.Error() != lastErr {
					s.log.WithError(err).Warn("cannot save the journal cursor: a restart will skip entries logged meanwhile")
				}
				lastErr = err.Error()
			} else {
				lastErr = ""
			}
		}
	}
}

// saveCursor writes the cursor if it changed since the last write.
func (s *journalSource) saveCursor() error {
	s.mu.Lock()
	c, saved := s.cursor, s.saved
	s.mu.Unlock()
	if c == "" {
		return nil
	}
	now := time.Now()
	s.ring = s.ring.add(now, c, s.window)
	if c == saved {
		return nil
	}
	err := saveJournalState(s.state, journalCursorFile{Filters: s.filters, Cursor: c, Saved: now.UTC(), Warm: s.ring})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.saved = c
	s.mu.Unlock()
	return nil
}

// journalStderr logs what journalctl says on stderr, a line at a time,
// and keeps the last line for the error report. exec writes to it from
// one goroutine, done when Wait returns.
type journalStderr struct {
	log     *log.Entry
	partial []byte
	mu      sync.Mutex
	lastMsg string
}

func (w *journalStderr) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.emit(w.partial[:i])
		w.partial = w.partial[i+1:]
	}
	if len(w.partial) > 4096 { // a runaway line without newline
		w.emit(w.partial)
		w.partial = w.partial[:0]
	}
	return len(p), nil
}

func (w *journalStderr) emit(b []byte) {
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		return
	}
	w.lastMsg = msg
	w.log.WithField("stderr", msg).Warn("journalctl says")
}

func (w *journalStderr) last() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.emit(w.partial)
		w.partial = nil
	}
	return w.lastMsg
}
