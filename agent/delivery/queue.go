package delivery

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	log "github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/rampart-ips/rampart/models"
)

// On-disk layout of the queue directory:
//
//	lock                      flock(2)ed while a process has the queue open
//	ack                       the cursor: first undelivered sequence number
//	seg-<first seq>.log       segment files, oldest first
//
// A segment is an 8-byte header (segmentMagic) followed by records:
//
//	uint32 LE payload length | uint32 LE CRC-32C of the payload | payload
//
// The payload is one JSON-encoded models.Alert. Sequence numbers are
// implicit: the n-th record of a segment has the segment's first seq + n.
const (
	segmentPrefix  = "seg-"
	segmentSuffix  = ".log"
	segmentMagic   = "RPQ\x00\x00\x00\x00\x01" // "RPQ" + format version 1
	recordHeader   = 8
	cursorName     = "ack"
	cursorSize     = 12 // uint64 seq + CRC-32C of it
	lockName       = "lock"
	maxRecordBytes = 8 << 20
	// defaultSegmentBytes is the roll size: big enough that rolling (three
	// fsyncs) is rare, small enough that delivered data is reclaimed soon.
	defaultSegmentBytes = 4 << 20
	minSegmentBytes     = 4 << 10
)

// errQueueClosed is returned by operations on a closed queue.
var errQueueClosed = errors.New("alert queue is closed")

// queueConfig bounds a queue.
type queueConfig struct {
	dir          string
	maxBytes     int64 // segment bytes on disk, delivered or not
	maxAlerts    int   // undelivered alerts
	segmentBytes int64
	// ephemeral: the queue dies with the process (a replay's, removed at
	// exit, is never recovered), so nothing is fsynced: a sync would only
	// make the agent wait on the disk for durability nobody uses.
	ephemeral bool
	// maxDecoded bounds the alerts kept decoded (see queue.decoded); 0
	// for the default, maxDecoded.
	maxDecoded int
}

// segment is one file of records.
type segment struct {
	path    string
	f       *os.File
	first   uint64  // seq of the first record
	offsets []int64 // where each record starts
	size    int64   // bytes of valid data, header included
}

func (s *segment) end() uint64 { return s.first + uint64(len(s.offsets)) }

// record is one queued alert as peek returns it.
type record struct {
	seq uint64
	// alert is what delivery reads of it: its UUID, and for the logs its
	// scenario and source (an alert appended by this process carries
	// only those; one read back from disk is whole).
	alert *models.Alert
	// payload is the alert as it was encoded when pushed (kept in memory,
	// or read back from disk): it is sent as it is.
	payload []byte
	mem     bool // from the memory buffer: seq numbers its items, not the disk's
}

// queue is the durable, bounded FIFO of alerts waiting for the LAPI. It is
// safe for concurrent use.
type queue struct {
	cfg  queueConfig
	log  *log.Entry
	crc  *crc32.Table
	lock *os.File

	mu      sync.Mutex
	segs    []*segment // oldest first; the last one takes appends
	head    uint64     // first undelivered seq
	next    uint64     // seq of the next append
	bytes   int64      // sum of segs' sizes
	closed  bool
	corrupt uint64 // records found damaged when read back, skipped

	// Group commit: the first appender to need an fsync runs it for
	// everything written so far; those arriving meanwhile wait for the
	// next round. No timer, so a lone alert is synced at once.
	syncMu   sync.Mutex
	syncCond *sync.Cond
	syncing  bool
	synced   uint64 // every seq below is on stable storage

	ackMu      sync.Mutex // serialises cursor file writes
	ackWritten uint64

	fsyncs atomic.Uint64 // files and directories synced, for the tests

	// decoded holds, by seq, alerts appended by this process and not yet
	// delivered, as they were pushed (see record), so that peek does not
	// read back and decode what it has in memory (at most maxDecoded; the
	// rest is read from disk). Guarded by mu.
	decoded map[uint64]pushed
}

// pushed is an alert appended by this process, as record holds it.
type pushed struct {
	alert   *models.Alert
	payload []byte
}

// maxDecoded bounds the alerts queue keeps decoded: a few batches, the
// backlog of a LAPI that keeps up; a bigger backlog (an outage, a replay
// faster than the LAPI) is read from disk rather than held in memory.
// A bigger batch (a replay's) raises it to the batch's size.
const maxDecoded = 256

// openQueue opens or creates the queue in cfg.dir and recovers it: a torn
// record at the tail (a crash mid-append) is cut off and logged.
func openQueue(cfg queueConfig, logger *log.Entry) (_ *queue, err error) {
	if cfg.segmentBytes <= 0 {
		cfg.segmentBytes = defaultSegmentBytes
	}
	if err := os.MkdirAll(cfg.dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating alert queue directory: %w", err)
	}
	q := &queue{cfg: cfg, log: logger, crc: crc32.MakeTable(crc32.Castagnoli)}
	q.syncCond = sync.NewCond(&q.syncMu)

	// Two processes appending to the same segments would corrupt them.
	q.lock, err = os.OpenFile(filepath.Join(cfg.dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening alert queue lock: %w", err)
	}
	if err := unix.Flock(int(q.lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		q.lock.Close()
		return nil, fmt.Errorf("alert queue %s is in use by another process: %w", cfg.dir, err)
	}
	defer func() {
		if err != nil {
			q.closeFiles()
		}
	}()

	cursor, err := q.readCursor()
	if err != nil {
		return nil, err
	}
	if err := q.loadSegments(); err != nil {
		return nil, err
	}
	q.head = cursor
	q.next = cursor
	if n := len(q.segs); n > 0 {
		q.head = max(q.head, q.segs[0].first)
		q.next = max(q.next, q.segs[n-1].end())
	}
	q.ackWritten = cursor
	if !q.hasTail() || q.segs[len(q.segs)-1].size >= cfg.segmentBytes {
		// A full disk must not keep the agent from starting: the first
		// append tries again, and the Pusher keeps alerts in memory
		// meanwhile.
		if err := q.addSegment(q.next); err != nil {
			logger.WithError(err).Warn("alert queue: cannot create a segment now; appends will try again")
		}
	}
	q.removeDelivered()
	q.synced = q.next
	return q, nil
}

// loadSegments opens every segment file, checks its records and cuts a
// damaged tail off.
func (q *queue) loadSegments() error {
	entries, err := os.ReadDir(q.cfg.dir)
	if err != nil {
		return fmt.Errorf("reading alert queue directory: %w", err)
	}
	type named struct {
		name  string
		first uint64
	}
	var files []named
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, segmentPrefix) || !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segmentPrefix), segmentSuffix), 10, 64)
		if err != nil {
			q.log.WithField("file", name).Warn("ignoring a file that is not an alert queue segment")
			continue
		}
		files = append(files, named{name, first})
	}
	slices.SortFunc(files, func(a, b named) int { return cmp.Compare(a.first, b.first) })
	for i, fi := range files {
		last := i == len(files)-1
		s, err := q.openSegment(filepath.Join(q.cfg.dir, fi.name), fi.first, last)
		if err != nil {
			return err
		}
		if s == nil {
			continue
		}
		if n := len(q.segs); n > 0 && q.segs[n-1].end() > s.first {
			// Overlapping numbering cannot come from this code; keep
			// the newer file rather than deliver an alert twice.
			q.log.WithField("file", fi.name).Error("alert queue segments overlap: dropping the older one")
			old := q.segs[n-1]
			old.f.Close()
			q.bytes -= old.size
			q.segs = q.segs[:n-1]
		}
		q.segs = append(q.segs, s)
		q.bytes += s.size
	}
	return nil
}

// openSegment reads one segment; nil when the file is unusable and was
// moved aside. Only the last segment is truncated at its first bad
// record, since only it takes appends.
func (q *queue) openSegment(path string, first uint64, last bool) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("opening alert queue segment: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading alert queue segment %s: %w", path, err)
	}
	logger := q.log.WithField("segment", filepath.Base(path))
	s := &segment{path: path, f: f, first: first, size: int64(len(segmentMagic))}
	switch {
	case len(data) < len(segmentMagic) && bytes.HasPrefix([]byte(segmentMagic), data):
		// Created but the header never made it to disk: rewrite it.
		if err := q.writeHeader(f); err != nil {
			f.Close()
			return nil, err
		}
		return s, nil
	case !bytes.HasPrefix(data, []byte(segmentMagic)):
		f.Close()
		aside := path + ".corrupt"
		logger.WithField("moved_to", aside).Error("alert queue segment has an unknown header: moved aside, its alerts are lost")
		if err := os.Rename(path, aside); err != nil {
			return nil, fmt.Errorf("moving aside alert queue segment: %w", err)
		}
		return nil, nil
	}
	off := int64(len(segmentMagic))
	for off < int64(len(data)) {
		n, ok := q.checkRecord(data[off:])
		if !ok {
			break
		}
		s.offsets = append(s.offsets, off)
		off += n
	}
	s.size = off
	if bad := int64(len(data)) - off; bad > 0 {
		fields := log.Fields{"bytes": bad, "kept_alerts": len(s.offsets)}
		if !last {
			logger.WithFields(fields).Error("alert queue segment damaged in the middle: the alerts after the damage are lost")
			return s, nil
		}
		logger.WithFields(fields).Warn("alert queue: dropped a torn record at the tail (crash during an append)")
		if err := f.Truncate(off); err != nil {
			f.Close()
			return nil, fmt.Errorf("truncating alert queue segment %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("syncing alert queue segment %s: %w", path, err)
		}
	}
	return s, nil
}

// checkRecord returns the length of the valid record at the start of b.
// A zero length is invalid: zero-filled blocks after a crash must not
// read as records.
func (q *queue) checkRecord(b []byte) (int64, bool) {
	if len(b) < recordHeader {
		return 0, false
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || n > maxRecordBytes || int64(n) > int64(len(b)-recordHeader) {
		return 0, false
	}
	payload := b[recordHeader : recordHeader+int(n)]
	if crc32.Checksum(payload, q.crc) != binary.LittleEndian.Uint32(b[4:]) {
		return 0, false
	}
	return recordHeader + int64(n), true
}

// sync flushes f to stable storage, unless the queue is ephemeral.
func (q *queue) sync(f *os.File) error {
	if q.cfg.ephemeral {
		return nil
	}
	q.fsyncs.Add(1)
	return f.Sync()
}

// syncDir is syncDir for the queue's directory, unless it is ephemeral.
func (q *queue) syncDir() error {
	if q.cfg.ephemeral {
		return nil
	}
	q.fsyncs.Add(1)
	return syncDir(q.cfg.dir)
}

func (q *queue) writeHeader(f *os.File) error {
	if _, err := f.WriteAt([]byte(segmentMagic), 0); err != nil {
		return fmt.Errorf("writing alert queue segment header: %w", err)
	}
	if err := q.sync(f); err != nil {
		return fmt.Errorf("syncing alert queue segment header: %w", err)
	}
	return nil
}

// hasTail says whether the last segment takes appends: its numbering
// continues at q.next. After a cut tail that was already delivered, or
// when creating a segment failed, it does not. The caller holds q.mu (or
// has the queue to itself).
func (q *queue) hasTail() bool {
	n := len(q.segs)
	return n > 0 && q.segs[n-1].end() == q.next
}

// addSegment creates the segment that takes appends from seq first on.
// The caller holds q.mu (or has the queue to itself).
func (q *queue) addSegment(first uint64) error {
	path := filepath.Join(q.cfg.dir, fmt.Sprintf("%s%020d%s", segmentPrefix, first, segmentSuffix))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating alert queue segment: %w", err)
	}
	// A segment left behind empty would, numbered below records appended
	// later to the previous one, read as an overlap at the next start.
	fail := func(err error) error {
		f.Close()
		_ = os.Remove(path)
		return err
	}
	if err := q.writeHeader(f); err != nil {
		return fail(err)
	}
	if err := q.syncDir(); err != nil {
		return fail(err)
	}
	s := &segment{path: path, f: f, first: first, size: int64(len(segmentMagic))}
	q.segs = append(q.segs, s)
	q.bytes += s.size
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening alert queue directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing alert queue directory: %w", err)
	}
	return nil
}

// append writes payloads (JSON alerts) as records and returns once they
// are on stable storage. appended counts the payloads, from the first,
// that are now in the queue; when the disk takes only part of them (it is
// full), those that fit are kept and err says why the rest were not
// written. A sync failure leaves every appended record in the queue,
// readable but maybe not durable. dropped counts the oldest undelivered
// alerts pushed out to stay within the bounds.
//
// alerts, when not nil, are the payloads' UUIDs, scenarios and sources
// (same order): peek hands them out with the payloads instead of reading
// the records back. bounded false leaves the
// bounds alone this once: the caller frees the room right after.
//
// framed, when not nil, is payloads already framed as records back to
// back (see frame), written as it is.
func (q *queue) append(payloads [][]byte, framed []byte, alerts []*models.Alert, bounded bool) (appended, dropped int, err error) {
	buf := framed
	if buf == nil {
		buf = make([]byte, 0, recordsSize(payloads))
		for _, p := range payloads {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(len(p)))
			buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(p, q.crc))
			buf = append(buf, p...)
		}
	} else if len(buf) != recordsSize(payloads) {
		return 0, 0, fmt.Errorf("appending to alert queue: %d bytes of records for %d bytes of payloads", len(buf), recordsSize(payloads))
	}

	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, 0, errQueueClosed
	}
	if !q.hasTail() {
		if err := q.addSegment(q.next); err != nil {
			q.mu.Unlock()
			return 0, 0, err
		}
	}
	s := q.segs[len(q.segs)-1]
	_, werr := s.f.WriteAt(buf, s.size)
	appended = len(payloads)
	if werr != nil {
		// Keep the whole records that made it and cut the rest, so the
		// next append starts on a record boundary. WriteAt does not count
		// a short write followed by a failure; the file's size does.
		written := 0
		if fi, err := s.f.Stat(); err == nil {
			written = int(min(max(fi.Size()-s.size, 0), int64(len(buf))))
		}
		kept := 0
		appended = 0
		for _, p := range payloads {
			n := recordHeader + len(p)
			if kept+n > written {
				break
			}
			kept += n
			appended++
		}
		_ = s.f.Truncate(s.size + int64(kept))
		werr = fmt.Errorf("appending to alert queue: %w", werr)
		if appended == 0 {
			q.mu.Unlock()
			return 0, 0, werr
		}
	}
	off := s.size
	for i, p := range payloads[:appended] {
		if i < len(alerts) && len(q.decoded) < max(q.cfg.maxDecoded, maxDecoded) {
			if q.decoded == nil {
				q.decoded = map[uint64]pushed{}
			}
			q.decoded[q.next+uint64(i)] = pushed{alert: alerts[i], payload: p}
		}
		s.offsets = append(s.offsets, off)
		off += recordHeader + int64(len(p))
	}
	q.bytes += off - s.size
	s.size = off
	q.next += uint64(appended)
	end := q.next
	if werr == nil && s.size >= q.cfg.segmentBytes {
		// The old segment is synced here, so a group sync that picked it
		// before the roll still covers everything it holds. A failed roll
		// leaves appends on the old segment; the next one tries again.
		if err := q.sync(s.f); err != nil {
			werr = fmt.Errorf("syncing alert queue segment: %w", err)
		} else if err := q.addSegment(q.next); err != nil {
			werr = err
		}
	}
	if bounded {
		dropped = q.enforceBounds()
	}
	if dropped > 0 {
		q.forgetDecodedLocked()
	}
	q.mu.Unlock()

	return appended, dropped, errors.Join(werr, q.waitSynced(end))
}

// recordsSize is the bytes payloads take as records.
func recordsSize(payloads [][]byte) int {
	n := 0
	for _, p := range payloads {
		n += recordHeader + len(p)
	}
	return n
}

// frame fills the header of rec, a record's header room followed by its
// payload, and returns the payload: alerts encoded straight into the
// records append writes are not copied again.
func (q *queue) frame(rec []byte) []byte {
	p := rec[recordHeader:len(rec):len(rec)]
	binary.LittleEndian.PutUint32(rec, uint32(len(p)))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(p, q.crc))
	return p
}

// waitSynced returns once every seq below end is on stable storage.
func (q *queue) waitSynced(end uint64) error {
	q.syncMu.Lock()
	defer q.syncMu.Unlock()
	for q.synced < end {
		if q.syncing {
			q.syncCond.Wait()
			continue
		}
		q.syncing = true
		q.syncMu.Unlock()

		q.mu.Lock()
		target := q.next
		var f *os.File
		if n := len(q.segs); n > 0 {
			f = q.segs[n-1].f
		}
		q.mu.Unlock()
		var err error
		if f != nil {
			err = q.sync(f)
		}
		// A closed file was synced by a roll or by Close before it was
		// closed.
		if errors.Is(err, os.ErrClosed) {
			err = nil
		}

		q.syncMu.Lock()
		q.syncing = false
		q.syncCond.Broadcast()
		if err != nil {
			return fmt.Errorf("syncing alert queue: %w", err)
		}
		q.synced = max(q.synced, target)
	}
	return nil
}

// forgetDecodedLocked drops the decoded alerts behind the head. The
// caller holds q.mu.
func (q *queue) forgetDecodedLocked() {
	for seq := range q.decoded {
		if seq < q.head {
			delete(q.decoded, seq)
		}
	}
}

// enforceBounds drops the oldest undelivered alerts beyond maxAlerts, then
// whole segments, oldest first, until the files fit in maxBytes. The
// caller holds q.mu.
func (q *queue) enforceBounds() int {
	dropped := 0
	if q.cfg.maxAlerts > 0 {
		if over := q.pendingLocked() - q.cfg.maxAlerts; over > 0 {
			dropped += q.skipLocked(over)
		}
	}
	for q.cfg.maxBytes > 0 && q.bytes > q.cfg.maxBytes && len(q.segs) > 1 {
		s := q.segs[0]
		if s.end() > q.head {
			dropped += int(s.end() - max(q.head, s.first))
		}
		q.head = max(q.head, q.segs[1].first)
		q.removeFirstSegment()
	}
	return dropped
}

// pendingLocked counts undelivered records. Numbering may have gaps (a
// damaged segment), so it sums per segment.
func (q *queue) pendingLocked() int {
	n := 0
	for _, s := range q.segs {
		if s.end() > q.head {
			n += int(s.end() - max(q.head, s.first))
		}
	}
	return n
}

// skipLocked moves the head past n undelivered records and says how many
// it passed.
func (q *queue) skipLocked(n int) int {
	done := 0
	for _, s := range q.segs {
		if done == n {
			break
		}
		if s.end() <= q.head {
			continue
		}
		q.head = max(q.head, s.first)
		take := min(int(s.end()-q.head), n-done)
		q.head += uint64(take)
		done += take
	}
	return done
}

func (q *queue) removeFirstSegment() {
	s := q.segs[0]
	q.segs = q.segs[1:]
	q.bytes -= s.size
	s.f.Close()
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		q.log.WithError(err).WithField("segment", filepath.Base(s.path)).Warn("removing delivered alert queue segment")
	}
}

// removeDelivered deletes the segments whose records are all delivered or
// dropped; the last segment stays, it takes the appends.
func (q *queue) removeDelivered() {
	for len(q.segs) > 1 && q.segs[0].end() <= q.head {
		q.removeFirstSegment()
	}
}

// peek returns up to n undelivered records, oldest first, without
// removing them. A record damaged on disk since it was written is skipped
// (and counted) when it reaches the head.
func (q *queue) peek(n int) ([]record, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, errQueueClosed
	}
	var out []record
	for _, s := range q.segs {
		if len(out) == n {
			break
		}
		if s.end() <= q.head {
			continue
		}
		seq := max(q.head, s.first)
		if len(out) > 0 && seq != out[len(out)-1].seq+1 {
			// A gap in the numbering: keep each batch contiguous so an
			// ack never passes an unsent record.
			break
		}
		for ; seq < s.end() && len(out) < n; seq++ {
			if d, ok := q.decoded[seq]; ok {
				out = append(out, record{seq: seq, alert: d.alert, payload: d.payload})
				continue
			}
			a, payload, err := q.readLocked(s, int(seq-s.first))
			if err != nil {
				if len(out) > 0 {
					return out, nil
				}
				q.log.WithError(err).WithField("segment", filepath.Base(s.path)).Error("alert queue record damaged on disk: alert dropped")
				q.corrupt++
				q.head = seq + 1
				continue
			}
			out = append(out, record{seq: seq, alert: a, payload: payload})
		}
	}
	return out, nil
}

// readLocked reads record i of s back: the alert decoded, and its
// payload, which is sent as it is (a replay faster than its LAPI reads
// most of its alerts back: encoding/json's decoding and encoding again
// cost more than the rest of delivery).
func (q *queue) readLocked(s *segment, i int) (*models.Alert, []byte, error) {
	end := s.size
	if i+1 < len(s.offsets) {
		end = s.offsets[i+1]
	}
	buf := make([]byte, end-s.offsets[i])
	if _, err := s.f.ReadAt(buf, s.offsets[i]); err != nil {
		return nil, nil, fmt.Errorf("reading alert queue record: %w", err)
	}
	if _, ok := q.checkRecord(buf); !ok {
		return nil, nil, errors.New("bad length or checksum")
	}
	a, err := models.DecodeAlert(buf[recordHeader:])
	if err != nil {
		return nil, nil, fmt.Errorf("decoding queued alert: %w", err)
	}
	return a, buf[recordHeader:], nil
}

// ack marks every record below upto delivered (or deliberately dropped):
// it moves the cursor, persists it, and deletes whole segments behind it.
func (q *queue) ack(upto uint64) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return errQueueClosed
	}
	q.head = max(q.head, upto)
	head := q.head
	q.forgetDecodedLocked()
	q.removeDelivered()
	q.mu.Unlock()
	return q.writeCursor(head)
}

// writeCursor persists head atomically: temp file, fsync, rename, fsync
// of the directory. A crash leaves either the old or the new cursor. An
// ephemeral queue is never reopened, so its cursor is not written at all
// (four file operations per acknowledged batch of a replay, for nothing).
func (q *queue) writeCursor(head uint64) error {
	q.ackMu.Lock()
	defer q.ackMu.Unlock()
	if head <= q.ackWritten {
		return nil
	}
	if q.cfg.ephemeral {
		q.ackWritten = head
		return nil
	}
	var b [cursorSize]byte
	binary.LittleEndian.PutUint64(b[:], head)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], q.crc))
	tmp := filepath.Join(q.cfg.dir, cursorName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing alert queue cursor: %w", err)
	}
	_, err = f.Write(b[:])
	if err == nil {
		err = q.sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing alert queue cursor: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(q.cfg.dir, cursorName)); err != nil {
		return fmt.Errorf("writing alert queue cursor: %w", err)
	}
	if err := q.syncDir(); err != nil {
		return err
	}
	q.ackWritten = head
	return nil
}

// readCursor returns the persisted head, 0 when there is none. A damaged
// cursor (it cannot be torn: it is renamed into place) means redelivering
// what is still on disk rather than losing it.
func (q *queue) readCursor() (uint64, error) {
	b, err := os.ReadFile(filepath.Join(q.cfg.dir, cursorName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading alert queue cursor: %w", err)
	}
	if len(b) != cursorSize || crc32.Checksum(b[:8], q.crc) != binary.LittleEndian.Uint32(b[8:]) {
		q.log.Warn("alert queue cursor is damaged: queued alerts may be delivered a second time")
		return 0, nil
	}
	return binary.LittleEndian.Uint64(b), nil
}

// queueStats is a snapshot of the queue's counts.
type queueStats struct {
	pending int
	bytes   int64
	corrupt uint64
}

func (q *queue) stats() queueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return queueStats{pending: q.pendingLocked(), bytes: q.bytes, corrupt: q.corrupt}
}

// close syncs and closes the files; later calls fail with errQueueClosed.
func (q *queue) close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	var err error
	if n := len(q.segs); n > 0 {
		if serr := q.sync(q.segs[n-1].f); serr != nil {
			err = fmt.Errorf("syncing alert queue: %w", serr)
		}
	}
	q.closeFiles()
	return err
}

func (q *queue) closeFiles() {
	for _, s := range q.segs {
		s.f.Close()
	}
	if q.lock != nil {
		q.lock.Close() // releases the flock
	}
}
