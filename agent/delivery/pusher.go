package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/internal/backoff"
	"github.com/rampart-ips/rampart/models"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxQueueBytes     = 64 << 20
	DefaultMaxQueueAlerts    = 10000
	DefaultMaxMemoryAlerts   = 10000
	DefaultBatchSize         = 50
	DefaultHeartbeatInterval = 60 * time.Second // upstream's agent heartbeat
	DefaultRetryMin          = 100 * time.Millisecond
	DefaultRetryMax          = 10 * time.Second

	// suspectStrikes is how often an alert must fail alone with a 5xx
	// before the LAPI's acceptance of the alerts behind it convicts it.
	suspectStrikes = 3
	// maxMoved bounds the memory of alerts moved behind the others.
	maxMoved = 1024
)

// Config tunes a Pusher. Zero values take the defaults above.
type Config struct {
	// QueueDir holds the queue, e.g. /var/lib/crowdsec/data/alert-queue.
	QueueDir string
	// MaxQueueBytes bounds the segment files on disk; MaxQueueAlerts the
	// alerts waiting. Past either, the oldest undelivered alerts go.
	MaxQueueBytes  int64
	MaxQueueAlerts int
	// MaxMemoryAlerts bounds the alerts kept in memory while the queue's
	// disk refuses writes (full, read-only, failing), and MaxQueueBytes
	// their encoded size. Past either the OLDEST go, as on disk.
	MaxMemoryAlerts int
	// BatchSize is the most alerts per POST /v1/alerts.
	BatchSize int
	// FlushInterval, when positive, waits that long after an alert is
	// queued before pushing, to fill bigger batches. 0 pushes at once,
	// batching whatever accumulated during the previous push.
	FlushInterval time.Duration
	// HeartbeatInterval is the GET /v1/heartbeat period; negative
	// disables the heartbeat.
	HeartbeatInterval time.Duration
	// RetryMin and RetryMax bound the exponential backoff while the LAPI
	// fails.
	RetryMin, RetryMax time.Duration
	// Ephemeral says the queue dies with the process (a replay's): its
	// writes are never fsynced, as no later run recovers it.
	Ephemeral bool
	// FullBatches holds queued alerts back until BatchSize of them wait,
	// so that every POST is a full one: a replay's alerts come by
	// thousands a second, and each POST costs the LAPI a request, a
	// transaction and the index pages it rewrites, whatever its size. A
	// smaller batch goes once Flush was called (the end of the input,
	// WaitEmpty calls it) or while a Push waits for room.
	FullBatches bool
	// WaitForRoom, when positive, makes a full queue push back instead of
	// dropping its oldest alerts: Push waits for the LAPI to take enough
	// of them. A replay sets it, since unlike a live agent it has no
	// newer traffic to protect and may lose nothing. If no room comes for
	// that long, Push fails with ErrStalled, and so does every later Push.
	WaitForRoom time.Duration
}

// ErrStalled is Push's error once a queue with Config.WaitForRoom stayed
// full for that long: the LAPI is taking nothing.
var ErrStalled = errors.New("alert queue stalled")

func (c *Config) setDefaults() error {
	if c.QueueDir == "" {
		return errors.New("delivery: no queue directory")
	}
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if c.MaxQueueAlerts == 0 {
		c.MaxQueueAlerts = DefaultMaxQueueAlerts
	}
	if c.MaxMemoryAlerts == 0 {
		c.MaxMemoryAlerts = DefaultMaxMemoryAlerts
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(DefaultRetryMax, c.RetryMin)
	}
	switch {
	case c.MaxQueueBytes < 4*minSegmentBytes:
		return fmt.Errorf("delivery: max queue bytes %d is below %d", c.MaxQueueBytes, 4*minSegmentBytes)
	case c.MaxQueueAlerts < 0 || c.MaxMemoryAlerts < 0 || c.BatchSize < 0 || c.FlushInterval < 0 || c.WaitForRoom < 0:
		return errors.New("delivery: negative queue bound, batch size or flush interval")
	case c.RetryMin < 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("delivery: retry backoff %s..%s is not a range", c.RetryMin, c.RetryMax)
	}
	return nil
}

// Stats are a Pusher's counts since New.
type Stats struct {
	Queued    int    // alerts waiting now, on disk or in memory
	InMemory  int    // of which kept in memory: the disk would not take them
	Delivered uint64 // acknowledged by the LAPI
	Dropped   uint64 // queue full, rejected by the LAPI, or damaged on disk
	// Refused are alerts Push failed to queue while waiting for room
	// (Config.WaitForRoom): the queue stalled or the push was cancelled.
	Refused uint64
	// LastError is the latest failed delivery or heartbeat ("" if none);
	// it stays after a success, LastErrorAt says when.
	LastError   string
	LastErrorAt time.Time
}

// Pusher queues alerts on disk and delivers them to the LAPI.
type Pusher struct {
	cfg      Config
	client   *apiclient.Client
	log      *log.Entry
	q        *queue
	mem      *memQueue // what the disk would not take
	metrics  *Metrics
	maxAlert int // largest encoded alert accepted
	wake     chan struct{}
	running  atomic.Bool
	// room is signalled when alerts leave the queue, for Pushes waiting
	// for room (Config.WaitForRoom); stalled is closed once one waited
	// in vain. roomMu makes a waiting Push's check for room and its
	// append one step, so that another Push cannot take the room between.
	room    chan struct{}
	stalled chan struct{}
	// left is signalled, as room is, when alerts leave the queue, for
	// WaitEmpty.
	left   chan struct{}
	roomMu sync.Mutex
	// flushing (Flush) and roomWaiters (Pushes waiting for room) end
	// Config.FullBatches' hold on a partial batch.
	flushing    atomic.Bool
	roomWaiters atomic.Int32
	// onAck, when set (tests, benchmarks), is called after each ack of
	// delivered alerts with their count.
	onAck  func(n int)
	timing timing

	// readAt holds, per queued alert UUID, when its last log line was
	// read, for the time-to-decision histogram. In memory only: alerts
	// recovered from disk after a restart are not timed.
	readMu sync.Mutex
	readAt map[string]time.Time

	mu        sync.Mutex // guards the counts and states below
	delivered uint64
	dropped   uint64
	refused   uint64
	stallErr  error
	lastErr   string
	lastErrAt time.Time
	// diskFailing is on from a failed write to the queue until writes
	// work again with nothing left in memory: one episode, logged once at
	// each end. memDropLogged says the memory bound was logged in it.
	diskFailing  bool
	diskFailedAt time.Time
	// diskOKs counts the writes that worked since the last failure: a
	// nearly full disk still takes a small write now and then, and one
	// such write is no end of the episode (the log would flap)
	diskOKs       int
	memDropLogged bool
}

// New opens (or recovers) the queue in cfg.QueueDir. It does not contact
// the LAPI.
func New(cfg Config, client *apiclient.Client, logger *log.Entry) (*Pusher, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("delivery: no LAPI client")
	}
	if logger == nil {
		logger = log.WithField("component", "delivery")
	}
	segBytes := min(int64(defaultSegmentBytes), max(cfg.MaxQueueBytes/8, minSegmentBytes))
	decoded := cfg.BatchSize
	if cfg.FullBatches {
		// the batch posted, and the next one filling meanwhile
		decoded *= 2
	}
	q, err := openQueue(queueConfig{dir: cfg.QueueDir, maxBytes: cfg.MaxQueueBytes, maxAlerts: cfg.MaxQueueAlerts, segmentBytes: segBytes, ephemeral: cfg.Ephemeral,
		maxDecoded: decoded}, logger)
	if err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	p := &Pusher{cfg: cfg, client: client, log: logger, q: q, mem: &memQueue{max: cfg.MaxMemoryAlerts, maxBytes: cfg.MaxQueueBytes}, metrics: newMetrics(client),
		maxAlert: int(min(int64(maxRecordBytes), cfg.MaxQueueBytes/4)), wake: make(chan struct{}, 1),
		room: make(chan struct{}, 1), stalled: make(chan struct{}), left: make(chan struct{}, 1)}
	st := q.stats()
	p.metrics.queued.Set(float64(st.pending))
	if st.pending > 0 {
		logger.WithField("alerts", st.pending).Info("undelivered alerts found in the queue")
	}
	return p, nil
}

// Metrics returns the Pusher's Prometheus series, to Register.
func (p *Pusher) Metrics() *Metrics { return p.metrics }

// Push queues alerts and returns once they are on stable storage; it never
// waits for the LAPI. An alert without a UUID is given one (on the queued
// copy; the caller's alert is not modified). A full queue drops its oldest
// alerts, never these, or with Config.WaitForRoom waits for room (and
// fails once it waited that long, or ctx ended). Alerts the disk does not take (it is full or
// failing) are kept in memory and delivered from there: Push fails only
// on bad alerts, a closed Pusher and, with WaitForRoom, no room.
func (p *Pusher) Push(ctx context.Context, alerts ...*models.Alert) error {
	return p.PushTimed(ctx, nil, alerts)
}

// maxTimed bounds readAt: alerts the full queue dropped never reach ack,
// so past this many the map is reset rather than grown.
const maxTimed = 20_000

// PushTimed is Push with, for each alert, when its last log line was read
// (zero: unknown), so that delivery can time the whole path to a decision.
func (p *Pusher) PushTimed(ctx context.Context, readAt []time.Time, alerts []*models.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		if p.cfg.WaitForRoom > 0 {
			// Counted, as when the context ends during the wait: a
			// replay reports every alert it did not deliver.
			p.addRefused(len(alerts))
		}
		return fmt.Errorf("queueing alerts: %w", err)
	}
	payloads := make([][]byte, 0, len(alerts))
	queued := make([]*models.Alert, 0, len(alerts))
	// Each alert is encoded once, straight into its record of the batch
	// the queue writes as it is (see queue.append); its payload is that
	// record's slice of it.
	var framed []byte
	ends := make([]int, 0, len(alerts)) // of each record in framed
	for i, a := range alerts {
		if a == nil || a.Source == nil {
			return fmt.Errorf("queueing alert %d: no source", i)
		}
		c := *a
		if c.UUID == "" {
			c.UUID = models.NewAlertUUID()
		}
		if c.Events == nil {
			// The LAPI refuses a null events list; an empty one is fine.
			c.Events = []*models.Event{}
		}
		if i == 1 {
			// room for the others, sized on the first: growing by
			// doubling would copy them again
			framed = slices.Grow(framed, len(framed)*(len(alerts)-1)*5/4)
		}
		start := len(framed)
		framed = append(framed, make([]byte, recordHeader)...)
		var err error
		framed, err = models.AppendAlertJSON(framed, &c)
		if err != nil {
			return fmt.Errorf("queueing alert %d (%s): encoding: %w", i, c.Scenario, err)
		}
		if n := len(framed) - start - recordHeader; n > p.maxAlert {
			return fmt.Errorf("queueing alert %d (%s): %d bytes encoded, more than the %d a queued alert may take", i, c.Scenario, n, p.maxAlert)
		}
		ends = append(ends, len(framed))
		if i < len(readAt) && !readAt[i].IsZero() {
			p.noteRead(c.UUID, readAt[i])
		}
		// What delivery reads of a queued alert besides its payload (the
		// UUID, and for its logs the scenario and source): the events
		// are not held while the alert waits.
		queued = append(queued, &models.Alert{UUID: c.UUID, Scenario: c.Scenario, Source: c.Source})
	}
	// framed has its final array now: the payloads are cut from it
	start := 0
	for _, end := range ends {
		payloads = append(payloads, p.q.frame(framed[start:end]))
		start = end
	}
	if p.cfg.WaitForRoom > 0 {
		return p.storeWaiting(ctx, payloads, framed, queued)
	}
	if err := p.store(payloads, framed, queued, true); err != nil {
		return fmt.Errorf("queueing alerts: %w", err)
	}
	p.kick()
	return nil
}

// kick wakes the delivery loop.
func (p *Pusher) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// storeWaiting stores payloads as room appears in the queue, waiting for
// the LAPI to take queued alerts instead of dropping them. What it could
// not queue is counted as refused.
func (p *Pusher) storeWaiting(ctx context.Context, payloads [][]byte, framed []byte, alerts []*models.Alert) error {
	p.roomMu.Lock()
	defer p.roomMu.Unlock()
	for len(payloads) > 0 {
		n, err := p.waitRoom(ctx, payloads)
		if err == nil {
			err = p.store(payloads[:n], framed[:recordsSize(payloads[:n])], alerts[:n], true)
		}
		if err != nil {
			p.addRefused(len(payloads))
			return fmt.Errorf("queueing alerts: %w", err)
		}
		p.kick()
		framed = framed[recordsSize(payloads[:n]):]
		payloads, alerts = payloads[n:], alerts[n:]
	}
	return nil
}

// waitRoom returns how many of payloads, from the first, the queue takes
// now without dropping any alert, waiting until it takes at least one.
// It fails when ctx ends, or with ErrStalled when no room came within
// WaitForRoom (and at once after that).
func (p *Pusher) waitRoom(ctx context.Context, payloads [][]byte) (int, error) {
	var timer *time.Timer
	for {
		if err := p.stallError(); err != nil {
			return 0, err
		}
		if n := p.fits(payloads); n > 0 {
			return n, nil
		}
		if timer == nil {
			timer = time.NewTimer(p.cfg.WaitForRoom)
			defer timer.Stop()
			// The delivery loop must not hold a partial batch back
			// (Config.FullBatches) while this Push waits for it.
			p.roomWaiters.Add(1)
			defer p.roomWaiters.Add(-1)
			p.kick()
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for room in the alert queue: %w", ctx.Err())
		case <-p.room:
			// The LAPI took alerts: a slow LAPI is not a stalled one,
			// even when what it took is not yet room enough (bytes).
			timer.Reset(p.cfg.WaitForRoom)
		case <-timer.C:
			return 0, p.stall()
		}
	}
}

// fits counts the payloads, from the first, that the queue (disk and
// memory) takes without going past a bound. An empty queue takes one
// whatever its size, so that nothing waits for ever.
func (p *Pusher) fits(payloads [][]byte) int {
	qs := p.q.stats()
	inMem := p.mem.len()
	limit := p.cfg.MaxQueueAlerts
	if p.cfg.MaxMemoryAlerts > 0 {
		limit = min(limit, p.cfg.MaxMemoryAlerts)
	}
	room := limit - qs.pending - inMem
	// A new segment's header may come with the append.
	bytesRoom := p.cfg.MaxQueueBytes - qs.bytes - int64(len(segmentMagic))
	n := 0
	for _, b := range payloads {
		need := int64(recordHeader + len(b))
		if n >= room || need > bytesRoom {
			break
		}
		bytesRoom -= need
		n++
	}
	if n == 0 && qs.pending+inMem == 0 {
		n = 1
	}
	return n
}

// stall records that a Push waited WaitForRoom in vain; every Push fails
// from then on.
func (p *Pusher) stall() error {
	qs := p.q.stats()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stallErr == nil {
		p.stallErr = fmt.Errorf("%w: it holds %d alerts, its bound, and the LAPI took none of them for %s", ErrStalled, qs.pending+p.mem.len(), p.cfg.WaitForRoom)
		close(p.stalled)
		p.log.WithError(p.stallErr).WithField("last_error", p.lastErr).Error("alert queue full and the LAPI takes nothing: no more alerts are queued")
	}
	return p.stallErr
}

func (p *Pusher) stallError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stallErr
}

// Stalled is closed once a Push waited Config.WaitForRoom for room in
// vain (see ErrStalled).
func (p *Pusher) Stalled() <-chan struct{} { return p.stalled }

// freed tells Pushes waiting for room that alerts left the queue.
func (p *Pusher) freed() {
	select {
	case p.room <- struct{}{}:
	default:
	}
	select {
	case p.left <- struct{}{}:
	default:
	}
}

// Flush ends Config.FullBatches' hold: from now on the delivery loop
// sends what is queued without waiting for a full batch. A replay's
// input is over.
func (p *Pusher) Flush() {
	p.flushing.Store(true)
	p.kick()
}

// holding says whether the delivery loop should wait for more alerts than
// pending before it sends them (Config.FullBatches).
func (p *Pusher) holding(pending int) bool {
	return p.cfg.FullBatches && pending < p.cfg.BatchSize && !p.flushing.Load() && p.roomWaiters.Load() == 0
}

// WaitEmpty waits until no alert is queued (delivered, or dropped), ctx
// ends or timeout passes, and says whether the queue is empty. It wakes
// as each batch leaves the queue, not on a timer: a replay waits for its
// last batch with it, after a Flush (which it does). One caller at a time.
func (p *Pusher) WaitEmpty(ctx context.Context, timeout time.Duration) bool {
	p.Flush()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for p.Stats().Queued > 0 {
		select {
		case <-p.left:
		case <-ctx.Done():
			return false
		case <-timer.C:
			return p.Stats().Queued == 0
		}
	}
	return true
}

// store appends payloads to the queue on disk (framed and alerts: the
// same as records and decoded, or nil, see queue.append); what the disk
// does not take waits in memory. It fails only once the queue is closed.
func (p *Pusher) store(payloads [][]byte, framed []byte, alerts []*models.Alert, bounded bool) error {
	appended, dropped, err := p.q.append(payloads, framed, alerts, bounded)
	p.boundDropped(dropped)
	if errors.Is(err, errQueueClosed) {
		return err
	}
	if rest := payloads[appended:]; len(rest) > 0 {
		p.keepInMemory(rest)
	}
	p.diskResult(err)
	p.updateQueued()
	return nil
}

// spill moves the alerts kept in memory to the queue on disk, as many as
// it takes; the delivery loop calls it while the LAPI cannot take them, so
// that they survive a restart once the disk has room again.
func (p *Pusher) spill() {
	items := p.mem.peek(0)
	if len(items) == 0 {
		return
	}
	payloads := make([][]byte, len(items))
	for i, it := range items {
		payloads[i] = it.payload
	}
	appended, dropped, err := p.q.append(payloads, nil, nil, true)
	p.boundDropped(dropped)
	if appended > 0 {
		p.mem.ack(items[appended-1].seq + 1)
	}
	if errors.Is(err, errQueueClosed) {
		return
	}
	oks := 1
	if err == nil && appended == len(items) {
		oks = diskRecoveredAfter
	}
	p.diskResultOf(err, oks)
	p.updateQueued()
}

func (p *Pusher) boundDropped(n int) {
	if n == 0 {
		return
	}
	p.addDropped(n)
	p.log.WithFields(log.Fields{"dropped": n, "max_alerts": p.cfg.MaxQueueAlerts, "max_bytes": p.cfg.MaxQueueBytes}).
		Warn("alert queue full: dropped the oldest undelivered alerts")
}

// keepInMemory holds payloads the disk did not take. Past the bound the
// oldest go, logged once per episode and counted.
func (p *Pusher) keepInMemory(payloads [][]byte) {
	n := p.mem.add(payloads)
	if n == 0 {
		return
	}
	p.addDropped(n)
	p.mu.Lock()
	first := !p.memDropLogged
	p.memDropLogged = true
	p.mu.Unlock()
	if first {
		p.log.WithFields(log.Fields{"dropped": n, "max_in_memory": p.cfg.MaxMemoryAlerts, "max_bytes": p.cfg.MaxQueueBytes}).
			Error("alerts kept in memory reached their bound while the disk refuses writes: dropping the oldest (counted in rampart_delivery_alerts_total{result=\"dropped\"})")
	}
}

// diskResult counts a failed write to the queue (append, sync or cursor)
// and logs where an episode of them begins and ends, not each failure.
// diskRecoveredAfter is how many writes in a row must work for a disk
// episode to end: an alert's append and its cursor's write after delivery.
const diskRecoveredAfter = 2

func (p *Pusher) diskResult(err error) { p.diskResultOf(err, 1) }

// diskResultOf is diskResult for a write that counts as oks writes in a
// row (a spill that moved every alert kept in memory to disk proves the
// disk takes writes again on its own).
func (p *Pusher) diskResultOf(err error, oks int) {
	if err != nil {
		p.metrics.persistFailures.Inc()
	}
	p.mu.Lock()
	if err != nil {
		p.diskOKs = 0
	} else {
		p.diskOKs += oks
	}
	switch {
	case err != nil && !p.diskFailing:
		p.diskFailing, p.diskFailedAt = true, time.Now()
		p.mu.Unlock()
		p.log.WithError(err).WithFields(log.Fields{"in_memory": p.mem.len(), "max_in_memory": p.cfg.MaxMemoryAlerts}).
			Warn("alert queue cannot write to its disk: alerts the disk does not take are kept in memory and delivered from there, but lost if the agent stops before the LAPI has them")
	case err != nil:
		p.mu.Unlock()
		p.log.WithError(err).Debug("alert queue still cannot write to its disk")
	case p.diskFailing && p.diskOKs >= diskRecoveredAfter && p.mem.len() == 0:
		p.diskFailing, p.memDropLogged = false, false
		since := p.diskFailedAt
		p.mu.Unlock()
		p.log.WithField("after", time.Since(since).Round(time.Millisecond).String()).Info("alert queue writes to its disk again")
	default:
		p.mu.Unlock()
	}
}

func (p *Pusher) noteRead(id string, t time.Time) {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	if p.readAt == nil || len(p.readAt) >= maxTimed {
		p.readAt = map[string]time.Time{}
	}
	p.readAt[id] = t
}

// settled observes the time to decision of delivered alerts and forgets
// the read times of all of them.
func (p *Pusher) settled(recs []record, delivered bool) {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	if len(p.readAt) == 0 {
		return
	}
	now := time.Now()
	for _, r := range recs {
		t, ok := p.readAt[r.alert.UUID]
		if !ok {
			continue
		}
		delete(p.readAt, r.alert.UUID)
		// A syslog line's time is its sender's clock: one from the future
		// says nothing about the delay.
		if d := now.Sub(t); delivered && d >= 0 {
			p.metrics.toDecision.Observe(d.Seconds())
		}
	}
}

// Stats returns the current counts.
func (p *Pusher) Stats() Stats {
	qs := p.q.stats()
	inMem := p.mem.len()
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Queued: qs.pending + inMem, InMemory: inMem, Delivered: p.delivered, Dropped: p.dropped + qs.corrupt,
		Refused: p.refused, LastError: p.lastErr, LastErrorAt: p.lastErrAt}
}

// Close syncs and closes the queue. Stop Run (cancel its context) first;
// undelivered alerts stay on disk for the next New. Alerts still kept in
// memory are written to disk if it now takes them; the rest are lost,
// logged and counted as dropped.
func (p *Pusher) Close() error {
	p.spill()
	if n := p.mem.len(); n > 0 {
		p.mem.ack(math.MaxUint64)
		p.addDropped(n)
		p.log.WithField("alerts", n).Error("alerts kept in memory are lost: the agent stops and the disk still refuses them")
	}
	if err := p.q.close(); err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	return nil
}

func (p *Pusher) addDropped(n int) {
	p.mu.Lock()
	p.dropped += uint64(n)
	p.mu.Unlock()
	p.metrics.dropped.Add(float64(n))
}

func (p *Pusher) addRefused(n int) {
	p.mu.Lock()
	p.refused += uint64(n)
	p.mu.Unlock()
}

func (p *Pusher) addDelivered(n int) {
	p.mu.Lock()
	p.delivered += uint64(n)
	p.mu.Unlock()
	p.metrics.delivered.Add(float64(n))
}

func (p *Pusher) noteError(err error) {
	p.mu.Lock()
	p.lastErr, p.lastErrAt = err.Error(), time.Now()
	p.mu.Unlock()
}

func (p *Pusher) updateQueued() {
	inMem := p.mem.len()
	p.metrics.queued.Set(float64(p.q.stats().pending + inMem))
	p.metrics.inMemory.Set(float64(inMem))
}

// Run delivers queued alerts and sends heartbeats until ctx ends (then it
// returns nil). Only one Run may be active at a time.
func (p *Pusher) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("delivery: Run is already running")
	}
	defer p.running.Store(false)

	var wg sync.WaitGroup
	defer wg.Wait()
	if p.cfg.HeartbeatInterval > 0 {
		wg.Go(func() { p.heartbeat(ctx) })
	}
	l := &loop{p: p, backoff: backoff.Backoff{Min: p.cfg.RetryMin, Max: p.cfg.RetryMax}, moved: map[string]uint64{}}
	return l.run(ctx)
}

// heartbeat calls GET /v1/heartbeat now and every HeartbeatInterval.
func (p *Pusher) heartbeat(ctx context.Context) {
	t := time.NewTicker(p.cfg.HeartbeatInterval)
	defer t.Stop()
	failing := false
	for {
		hctx, cancel := context.WithTimeout(ctx, max(p.cfg.HeartbeatInterval, time.Second))
		err := p.client.Heartbeat(hctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			failing = true
			p.noteError(err)
			p.log.WithError(err).Warn("LAPI heartbeat failed")
		case err != nil:
			p.noteError(err)
			p.log.WithError(err).Debug("LAPI heartbeat failed")
		case failing:
			failing = false
			p.log.Info("LAPI heartbeat works again")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// loop is the delivery loop's state, owned by Run's goroutine.
type loop struct {
	p       *Pusher
	backoff backoff.Backoff // jittered, so agents do not hit a recovering LAPI in lockstep

	down       bool      // the last push failed
	downSince  time.Time // when the outage began
	recovering bool      // an outage happened and the queue has not drained since
	backlog    int       // alerts delivered while recovering, reported when the queue drains

	// suspect is the head alert that failed alone with a 5xx; strikes
	// counts those failures.
	suspect struct {
		seq     uint64
		mem     bool
		strikes int
	}
	// moved maps the UUIDs of alerts moved to the back of the queue to
	// the delivered count at the time.
	moved map[string]uint64
}

func (l *loop) run(ctx context.Context) error {
	p := l.p
	for {
		if ctx.Err() != nil {
			return nil
		}
		if n := p.q.stats().pending + p.mem.len(); n > 0 && p.holding(n) {
			select {
			case <-ctx.Done():
				return nil
			case <-p.wake:
			}
			continue
		}
		recs, err := p.q.peek(p.cfg.BatchSize)
		if err != nil {
			return fmt.Errorf("delivery: %w", err)
		}
		if len(recs) == 0 {
			// Memory holds what the disk would not take: sent once the
			// disk's queue is empty, straight from there.
			recs = l.memBatch()
		}
		if len(recs) == 0 {
			if l.recovering && !l.down {
				p.log.WithField("alerts", l.backlog).Info("delivered the alerts queued during the LAPI outage")
				l.recovering, l.backlog = false, 0
			}
			select {
			case <-ctx.Done():
				return nil
			case <-p.wake:
			}
			if p.cfg.FlushInterval > 0 && !backoff.Sleep(ctx, p.cfg.FlushInterval) {
				return nil
			}
			continue
		}
		err = l.deliver(ctx, recs)
		p.updateQueued()
		if err == nil {
			l.backoff.Reset()
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		l.failed(err, classify(err))
		// While the LAPI cannot take them, alerts kept in memory are
		// better on disk, if it has room again.
		p.spill()
		if !backoff.Sleep(ctx, l.backoff.Next()) {
			return nil
		}
	}
}

// failed records a failed push; an outage is logged once, when it begins.
func (l *loop) failed(err error, kind failKind) {
	p := l.p
	p.noteError(err)
	if l.down {
		p.log.WithError(err).Debug("LAPI still failing")
		return
	}
	l.down, l.downSince, l.recovering = true, time.Now(), true
	msg := "LAPI unreachable: alerts stay queued and are retried"
	var ae *apiclient.APIError
	switch {
	case kind != failTransient:
		msg = "LAPI fails on an alert: it stays queued and is retried"
	case errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden):
		// a pending, deleted or misconfigured machine: the error says which
		msg = "LAPI refuses this machine: alerts stay queued and are retried"
	}
	p.log.WithError(err).WithField("queued", p.Stats().Queued).Warn(msg)
}

// succeeded records n alerts acknowledged by the LAPI.
func (l *loop) succeeded(n int) {
	if l.down {
		l.down = false
		l.p.log.WithFields(log.Fields{"outage": time.Since(l.downSince).Round(time.Millisecond), "queued": l.p.Stats().Queued}).
			Info("LAPI reachable again: delivering the queued alerts")
	}
	if l.recovering {
		l.backlog += n
	}
}

// deliver pushes recs and acknowledges what the LAPI took or what it will
// never take. A non-nil error means the rest (from the first record not
// acknowledged) should be retried later.
func (l *loop) deliver(ctx context.Context, recs []record) error {
	if l.suspect.strikes > 0 {
		if recs[0].seq == l.suspect.seq && recs[0].mem == l.suspect.mem {
			return l.retrySuspect(ctx, recs)
		}
		l.suspect.strikes = 0
	}
	return l.split(ctx, recs)
}

// split pushes recs; when the LAPI refuses the batch itself (rather than
// being unavailable), it pushes each half on its own so that one bad
// alert cannot hold back the others.
func (l *loop) split(ctx context.Context, recs []record) error {
	_, err := l.push(ctx, recs)
	if err == nil {
		l.ack(recs, true)
		return nil
	}
	kind := classify(err)
	switch {
	case kind == failTransient:
		return err
	case len(recs) > 1:
		mid := len(recs) / 2
		if err := l.split(ctx, recs[:mid]); err != nil {
			return err
		}
		return l.split(ctx, recs[mid:])
	case kind == failRejected:
		l.drop(recs[0], err)
		return nil
	default:
		l.suspect.seq, l.suspect.mem, l.suspect.strikes = recs[0].seq, recs[0].mem, 1
		return err
	}
}

// retrySuspect pushes the suspect head alone. After suspectStrikes
// failures it moves it behind the other queued alerts, so that it holds
// nobody back; if it fails that often again after the LAPI took other
// alerts in between, it is the alert's fault and the alert goes.
func (l *loop) retrySuspect(ctx context.Context, recs []record) error {
	head := recs[0]
	_, err := l.push(ctx, recs[:1])
	if err == nil {
		l.suspect.strikes = 0
		l.ack(recs[:1], true)
		return nil
	}
	switch classify(err) {
	case failRejected:
		l.suspect.strikes = 0
		l.drop(head, err)
		return nil
	case failTransient:
		return err
	}
	l.suspect.strikes++
	if l.suspect.strikes < suspectStrikes {
		return err
	}
	l.suspect.strikes = 0
	if mark, ok := l.moved[head.alert.UUID]; ok && l.p.Stats().Delivered > mark {
		delete(l.moved, head.alert.UUID)
		l.drop(head, err)
		return nil
	}
	// Appended before its old place is freed: in a full queue that waits
	// for room rather than dropping (a replay's), the bound would push
	// out the oldest alert, this one, for a moment.
	if merr := l.p.store([][]byte{head.payload}, nil, nil, l.p.cfg.WaitForRoom == 0); merr != nil {
		l.p.log.WithError(merr).Error("moving a failing alert to the back of the queue")
		return err
	}
	l.ack(recs[:1], false)
	if len(l.moved) >= maxMoved {
		// Entries of moved alerts later dropped by the queue bound are
		// never deleted; forgetting them all costs at most one more move
		// each.
		clear(l.moved)
	}
	l.moved[head.alert.UUID] = l.p.Stats().Delivered
	l.p.log.WithError(err).WithFields(log.Fields{"scenario": head.alert.Scenario, "source": head.alert.GetValue(), "uuid": head.alert.UUID}).
		Warn("LAPI keeps failing on this alert: moved it behind the other queued alerts")
	return err
}

// ack removes recs from the queue (delivered or dropped). The cursor is
// written right after the LAPI's answer, which keeps the window for a
// duplicate (a crash between the two) as short as one fsync.
func (l *loop) ack(recs []record, delivered bool) {
	p := l.p
	upto := recs[len(recs)-1].seq + 1
	if delivered {
		// counted before the queue lets them go, so whoever sees the
		// queue empty also sees them delivered
		p.addDelivered(len(recs))
		now := time.Now().UnixNano()
		p.timing.firstAck.CompareAndSwap(0, now)
		p.timing.lastAck.Store(now)
	}
	if recs[0].mem {
		p.mem.ack(upto)
	} else if err := p.q.ack(upto); !errors.Is(err, errQueueClosed) {
		// On failure the queue head moved in memory only; a crash before
		// the next successful ack would bring these alerts back, as
		// duplicates. It is one more failed write to the disk.
		p.diskResult(err)
	}
	p.freed()
	p.settled(recs, delivered)
	if delivered {
		if len(l.moved) > 0 {
			for _, r := range recs {
				delete(l.moved, r.alert.UUID)
			}
		}
		l.succeeded(len(recs))
		if p.onAck != nil {
			p.onAck(len(recs))
		}
	}
}

// memBatch returns the oldest alerts kept in memory, up to a batch. An
// alert that does not decode (Push encoded it: it cannot happen) is
// dropped with an error.
func (l *loop) memBatch() []record {
	p := l.p
	for {
		items := p.mem.peek(p.cfg.BatchSize)
		var recs []record
		for _, it := range items {
			var a models.Alert
			if err := json.Unmarshal(it.payload, &a); err != nil {
				if len(recs) > 0 {
					break // it leads the next batch
				}
				p.log.WithError(err).Error("an alert kept in memory does not decode: dropped")
				p.mem.ack(it.seq + 1)
				p.addDropped(1)
				recs = nil
				break
			}
			recs = append(recs, record{seq: it.seq, alert: &a, payload: it.payload, mem: true})
		}
		if len(recs) > 0 || len(items) == 0 {
			return recs
		}
	}
}

// drop removes one alert the LAPI refuses for good.
func (l *loop) drop(r record, cause error) {
	l.p.log.WithError(cause).WithFields(log.Fields{"scenario": r.alert.Scenario, "source": r.alert.GetValue(), "uuid": r.alert.UUID}).
		Error("LAPI rejects this alert: dropped it so the alerts queued behind it get through")
	l.ack([]record{r}, false)
	l.p.addDropped(1)
}

type failKind int

const (
	failTransient failKind = iota // LAPI down or busy, auth: retry the same batch later
	failRejected                  // this payload can never succeed: isolate and drop
	failSuspect                   // a server error that may be the payload's fault
)

// classify sorts a PushAlerts error. Rampart's LAPI, like upstream's,
// answers a schema violation with 500 "validation failure list", so that
// 500 is a rejection; other 5xx may be the server's fault or the payload's.
func classify(err error) failKind {
	var ae *apiclient.APIError
	if !errors.As(err, &ae) || strings.HasSuffix(ae.Path, "/watchers/login") {
		return failTransient
	}
	switch {
	case ae.Status == http.StatusBadRequest, ae.Status == http.StatusRequestEntityTooLarge,
		ae.Status == http.StatusUnprocessableEntity:
		return failRejected
	case ae.Status == http.StatusInternalServerError && strings.HasPrefix(ae.Message, "validation failure list"):
		return failRejected
	case ae.Status >= 500 && ae.Status != http.StatusBadGateway &&
		ae.Status != http.StatusServiceUnavailable && ae.Status != http.StatusGatewayTimeout:
		return failSuspect
	}
	// 401/403 after a fresh login, 404 (wrong URL), 408, 429, 502-504:
	// nothing about this batch, so retrying it is right.
	return failTransient
}

// push sends recs to the LAPI, each alert as Push encoded it (encoding it
// again cost as much CPU as the first time).
func (l *loop) push(ctx context.Context, recs []record) ([]string, error) {
	payloads := make([][]byte, len(recs))
	for i, r := range recs {
		payloads[i] = r.payload
	}
	// the client's error already names the request; classify reads it
	t0 := time.Now()
	ids, err := l.p.client.PushAlertsEncoded(ctx, payloads)
	l.p.timing.posts.Add(1)
	l.p.timing.posting.Add(int64(time.Since(t0)))
	return ids, err
}

// timing is what Timing reports.
type timing struct {
	posts, posting, firstAck, lastAck atomic.Int64
}

// Timing says how the delivery spent its time: for a replay's summary.
type Timing struct {
	// Posts counts the POSTs of alerts, Posting is their time summed (a
	// first one includes the login).
	Posts   int64
	Posting time.Duration
	// FirstAck and LastAck are when the LAPI took alerts first and last
	// (zero: never).
	FirstAck, LastAck time.Time
}

// Timing returns the delivery's timing so far.
func (p *Pusher) Timing() Timing {
	t := Timing{Posts: p.timing.posts.Load(), Posting: time.Duration(p.timing.posting.Load())}
	if n := p.timing.firstAck.Load(); n != 0 {
		t.FirstAck = time.Unix(0, n)
	}
	if n := p.timing.lastAck.Load(); n != 0 {
		t.LastAck = time.Unix(0, n)
	}
	return t
}
