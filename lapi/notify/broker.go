package notify

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/internal/backoff"
	"github.com/rampart-ips/rampart/models"
)

// QueueSize is how many alerts wait for each notification; more are
// dropped (and counted) rather than ever slowing the LAPI down.
const QueueSize = 1024

// Retry spacing, upstream's: from 1 s, doubling, up to 30 s.
const (
	retryMin = time.Second
	retryMax = 30 * time.Second
)

// RecentDeliveries is how many message outcomes each notification keeps
// for the dashboard and cscli notifications list.
const RecentDeliveries = 20

// dropLogEvery bounds the overflow warnings: a flood would otherwise log
// one line per alert.
const dropLogEvery = 10 * time.Second

// AlertSource reads a stored alert with its decisions (the LAPI's store).
type AlertSource interface {
	GetAlert(ctx context.Context, id int64, now time.Time) (*models.Alert, error)
}

// sender delivers one rendered message.
type sender interface {
	send(ctx context.Context, text string) error
	close() error
}

// permanentError is a failure no retry can fix (a template that does not
// render, a file format the text does not fit).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Stats are one notification's delivery figures since start.
type Stats struct {
	Name, Type string
	// Sent and Failed count messages (a message carries one group or
	// chunk of alerts); Failed ones were given up after their retries.
	Sent, Failed uint64
	// Dropped counts alerts lost before any message: the queue was full
	// or the alert could not be read back.
	Dropped uint64
	// Queued is how many alerts wait now, those of a message being
	// retried included.
	Queued int
	// Retrying is how many alerts the message being retried holds: an
	// attempt failed, and it is neither sent nor given up yet (0: none).
	Retrying int
	// LastSent is when a message last got through; LastError says why
	// the last failed attempt failed, and when (zero: none yet).
	LastSent, LastErrorAt time.Time
	LastError             string
	// Recent are the outcomes of the last RecentDeliveries messages,
	// newest first.
	Recent []Delivery
}

// Delivery is the outcome of one message: sent (Error empty) or given up.
type Delivery struct {
	At       time.Time
	Alerts   int // in the message
	Attempts int // the rendering failing counts as one
	Error    string
}

// Broker delivers alerts to notifications: one bounded queue and one
// worker per notification. Enqueue never blocks. Set replaces the
// notifications while it runs (a reload).
type Broker struct {
	log      *log.Entry
	src      AlertSource
	retryMin time.Duration // tests shorten the backoff
	retryMax time.Duration
	now      func() time.Time

	// state is read by Enqueue on the alert path, without a lock.
	state atomic.Pointer[brokerState]
	mu    sync.Mutex      // serializes Set and Run's start and end
	ctx   context.Context // Run's, once it runs
	ended bool            // Run's context ended: Set starts no worker
	wg    sync.WaitGroup  // running workers
}

// brokerState is one set of notifications, never changed once stored.
type brokerState struct {
	workers map[string]*worker
	order   []string
}

type worker struct {
	b      *Broker
	cfg    *Config
	sender sender
	queue  chan int64
	log    *log.Entry
	stop   context.CancelFunc // set when it starts
	// tally outlives the worker when a reload changes its notification:
	// the next worker takes over its figures and its queue.
	*tally
}

// tally is a notification's figures.
type tally struct {
	sent, failed, dropped atomic.Uint64
	// waiting counts the alerts queued or grouped, not yet sent or given
	// up: raised before the queue takes one, so it is never short.
	waiting     atomic.Int64
	retrying    atomic.Int64 // alerts of the message being retried
	lastDropLog atomic.Int64 // unix nanoseconds

	mu          sync.Mutex // guards the fields below
	lastSent    time.Time
	lastErr     string
	lastErrTime time.Time
	recent      [RecentDeliveries]Delivery // a ring; recentN entries, the next at recentN % len
	recentN     int
}

// note records the outcome of an attempt for Stats.
func (w *worker) note(err error) {
	now := w.b.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		w.lastSent = now
		return
	}
	w.lastErr, w.lastErrTime = err.Error(), now
}

// record keeps the outcome of a message among the recent ones.
func (w *worker) record(d Delivery) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.recent[w.recentN%len(w.recent)] = d
	w.recentN++
}

// NewBroker prepares a worker for every notification that can send (see
// Config.Problem); src reads the alerts back from the store. Run starts
// them.
func NewBroker(configs []*Config, src AlertSource) (*Broker, error) {
	b := &Broker{log: log.WithField("component", "notifications"), src: src,
		retryMin: retryMin, retryMax: retryMax, now: time.Now}
	b.state.Store(&brokerState{workers: map[string]*worker{}})
	if err := b.Set(configs); err != nil {
		return nil, err
	}
	return b, nil
}

// Set replaces the notifications: a new one starts, a removed one stops
// (the alerts it holds are dropped and counted), a changed one restarts
// with its queue and figures, an unchanged one goes on untouched. Those
// with a Problem are left out. On error nothing changes.
func (b *Broker) Set(configs []*Config) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.state.Load()
	next := &brokerState{workers: map[string]*worker{}}
	var started []*worker
	for _, c := range configs {
		if c.Problem != nil {
			continue
		}
		prev := old.workers[c.Name]
		if prev != nil && sameConfig(prev.cfg, c) {
			next.workers[c.Name] = prev
			next.order = append(next.order, c.Name)
			continue
		}
		s, err := newSender(c)
		if err != nil {
			for _, w := range started {
				_ = w.sender.close()
			}
			return fmt.Errorf("notification %q: %w", c.Name, err)
		}
		w := &worker{b: b, cfg: c, sender: s, queue: make(chan int64, QueueSize), tally: &tally{},
			log: b.log.WithFields(log.Fields{"notification": c.Name, "type": c.Type})}
		if prev != nil {
			w.queue, w.tally = prev.queue, prev.tally
		}
		next.workers[c.Name] = w
		next.order = append(next.order, c.Name)
		started = append(started, w)
	}
	b.state.Store(next)
	running := b.ctx != nil && !b.ended
	for _, w := range old.workers {
		switch {
		case next.workers[w.cfg.Name] == w:
		case w.stop != nil:
			w.stop() // its run closes the sender
		case !running:
			_ = w.sender.close()
		}
	}
	if !running {
		return nil
	}
	for _, w := range started {
		b.start(w)
	}
	return nil
}

// sameConfig reports whether two notifications are written alike.
func sameConfig(a, b *Config) bool {
	x, y := *a, *b
	x.tmpl, y.tmpl, x.Source, y.Source = nil, nil, "", ""
	return reflect.DeepEqual(x, y)
}

// start runs w until Run's context ends or a Set stops it; b.mu held.
func (b *Broker) start(w *worker) {
	ctx, cancel := context.WithCancel(b.ctx)
	w.stop = cancel
	b.wg.Go(func() { w.run(ctx) })
}

func newSender(c *Config) (sender, error) {
	switch c.Type {
	case TypeHTTP, TypeSlack, TypeSplunk, TypeSentinel:
		return newHTTPSender(c)
	case TypeEmail:
		return &emailSender{cfg: c}, nil
	case TypeFile:
		return newFileSender(c), nil
	}
	return nil, fmt.Errorf("type %q is not built in", c.Type)
}

// Has reports whether a notification is configured and can send.
func (b *Broker) Has(name string) bool {
	if b == nil {
		return false
	}
	_, ok := b.state.Load().workers[name]
	return ok
}

// Len is how many notifications can send.
func (b *Broker) Len() int {
	if b == nil {
		return 0
	}
	return len(b.state.Load().order)
}

// Configs returns the notifications, in load order.
func (b *Broker) Configs() []*Config {
	if b == nil {
		return nil
	}
	st := b.state.Load()
	out := make([]*Config, 0, len(st.order))
	for _, n := range st.order {
		out = append(out, st.workers[n].cfg)
	}
	return out
}

// Enqueue queues the stored alert id for each named notification, without
// ever blocking: a full queue drops the alert for that notification and
// counts it. Unknown names are ignored (profiles are checked at load).
func (b *Broker) Enqueue(names []string, id int64) {
	if b == nil {
		return
	}
	workers := b.state.Load().workers
	for _, n := range names {
		w, ok := workers[n]
		if !ok {
			continue
		}
		w.waiting.Add(1)
		select {
		case w.queue <- id:
		default:
			w.waiting.Add(-1)
			w.drop(b.now(), "queue full", id)
		}
	}
}

// drop counts a lost alert and warns, at most once per dropLogEvery.
func (w *worker) drop(now time.Time, why string, id int64) {
	total := w.dropped.Add(1)
	last := w.lastDropLog.Load()
	if now.UnixNano()-last < int64(dropLogEvery) || !w.lastDropLog.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	w.log.WithFields(log.Fields{"alert_id": id, "dropped_total": total, "queue_size": QueueSize}).
		Warnf("alert not notified: %s (further drops logged at most every %s)", why, dropLogEvery)
}

// Stats returns each notification's figures, in load order.
func (b *Broker) Stats() []Stats {
	if b == nil {
		return nil
	}
	state := b.state.Load()
	out := make([]Stats, 0, len(state.order))
	for _, n := range state.order {
		w := state.workers[n]
		st := Stats{Name: n, Type: w.cfg.Type, Sent: w.sent.Load(), Failed: w.failed.Load(),
			Dropped: w.dropped.Load(), Queued: int(w.waiting.Load()), Retrying: int(w.retrying.Load())}
		w.mu.Lock()
		st.LastSent, st.LastError, st.LastErrorAt = w.lastSent, w.lastErr, w.lastErrTime
		n := min(w.recentN, len(w.recent))
		st.Recent = make([]Delivery, 0, n)
		for i := 1; i <= n; i++ {
			st.Recent = append(st.Recent, w.recent[(w.recentN-i)%len(w.recent)])
		}
		w.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// Run runs the workers until ctx ends. Alerts still waiting then are not
// sent: like upstream, nothing is persisted (the alerts stay in the
// database, and cscli notifications reinject can send them).
func (b *Broker) Run(ctx context.Context) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.ctx = ctx
	for _, w := range b.state.Load().workers {
		b.start(w)
	}
	b.mu.Unlock()
	<-ctx.Done()
	// From here no Set starts a worker: the wait covers them all.
	b.mu.Lock()
	b.ended = true
	b.mu.Unlock()
	b.wg.Wait()
}

// run groups alerts as the configuration says and sends them:
//   - neither group_wait nor group_threshold: each alert on its own;
//   - group_threshold: as soon as that many wait, in messages of that many;
//   - group_wait: group_wait after the first alert of a group, every
//     alert waiting then in one message (upstream sends one per alert),
//     or in messages of group_threshold when both are set.
//
// A group never holds more than QueueSize alerts (read back in memory):
// reaching that sends it early.
func (w *worker) run(ctx context.Context) {
	var group []*models.Alert
	defer func() {
		if err := w.sender.close(); err != nil {
			w.log.WithError(err).Warn("closing notification")
		}
		if w.b.ctx.Err() == nil {
			// Replaced or removed by a reload: the queue (if any) goes to
			// the next worker, the alerts read already are lost.
			for _, a := range group {
				w.waiting.Add(-1)
				w.drop(w.b.now(), "notification reloaded", a.ID)
			}
			return
		}
		if n := w.waiting.Load(); n > 0 {
			w.log.WithField("alerts", n).Warn("stopping with alerts not notified")
		}
	}()
	c := w.cfg
	var timer *time.Timer
	var fire <-chan time.Time
	flush := func() {
		if timer != nil {
			timer.Stop()
			timer, fire = nil, nil
		}
		size := len(group)
		if c.GroupThreshold > 0 {
			size = c.GroupThreshold
		}
		for len(group) > 0 && ctx.Err() == nil {
			n := min(size, len(group))
			w.send(ctx, group[:n])
			w.waiting.Add(-int64(n))
			group = group[n:]
		}
		if len(group) == 0 {
			group = nil
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-fire:
			flush()
		case id := <-w.queue:
			a, err := w.read(ctx, id)
			if err != nil {
				w.waiting.Add(-1)
				if ctx.Err() == nil {
					w.drop(w.b.now(), "reading the alert: "+err.Error(), id)
				}
				continue
			}
			group = append(group, a)
			switch {
			case c.GroupWait.Duration == 0 && c.GroupThreshold == 0:
				flush()
			case c.GroupThreshold > 0 && len(group) >= c.GroupThreshold, len(group) >= QueueSize:
				flush()
			case c.GroupWait.Duration > 0 && timer == nil:
				timer = time.NewTimer(c.GroupWait.Duration)
				fire = timer.C
			}
		}
	}
}

// read fetches a stored alert, with its decisions and their ids.
func (w *worker) read(ctx context.Context, id int64) (*models.Alert, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return w.b.src.GetAlert(ctx, id, w.b.now())
}

// send renders and delivers one message, counting and recording the
// outcome.
func (w *worker) send(ctx context.Context, alerts []*models.Alert) {
	attempts := 0
	note := func(err error) {
		attempts++
		w.note(err)
		if err != nil {
			// Cleared below when no retry follows.
			w.retrying.Store(int64(len(alerts)))
		}
	}
	err := deliverNoting(ctx, w.cfg, w.sender, alerts, w.cfg.policy(w.b.retryMin, w.b.retryMax), w.log, note)
	w.retrying.Store(0)
	d := Delivery{At: w.b.now(), Alerts: len(alerts), Attempts: attempts}
	switch {
	case err == nil:
		w.sent.Add(1)
		w.record(d)
	case ctx.Err() != nil:
		// Stopping: neither sent nor given up.
	default:
		w.failed.Add(1)
		d.Error = err.Error()
		w.record(d)
		w.log.WithError(err).WithField("alerts", len(alerts)).Error("notification not delivered")
	}
}

// retryPolicy spaces and bounds the attempts of one message.
type retryPolicy struct {
	attempts int // at most this many; 0: for retryFor (max_retry = 0)
	min, max time.Duration
}

// policy is the retry policy of c's broker deliveries: max_retry more
// attempts, or for 5 minutes when max_retry is 0 (upstream's rule).
func (c *Config) policy(minWait, maxWait time.Duration) retryPolicy {
	p := retryPolicy{min: minWait, max: maxWait}
	if c.MaxRetry > 0 {
		p.attempts = c.MaxRetry + 1
	}
	return p
}

// deliver renders alerts and sends them, with a timeout per attempt and
// retries spaced by backoff as p says.
func deliver(ctx context.Context, c *Config, s sender, alerts []*models.Alert, p retryPolicy, l *log.Entry) error {
	return deliverNoting(ctx, c, s, alerts, p, l, func(error) {})
}

// deliverNoting is deliver telling note the outcome of each attempt
// (the rendering counting as one).
func deliverNoting(ctx context.Context, c *Config, s sender, alerts []*models.Alert, p retryPolicy, l *log.Entry, note func(error)) error {
	text, err := c.Render(alerts)
	if err != nil {
		note(err)
		return &permanentError{err}
	}
	bo := backoff.Backoff{Min: p.min, Max: p.max}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, c.Timeout.Duration)
		err = s.send(actx, text)
		timedOut := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil {
			note(nil)
			if attempt > 1 {
				l.WithField("attempts", attempt).Info("notification delivered after retries")
			}
			return nil
		}
		if timedOut {
			err = fmt.Errorf("timeout exceeded (%s): %w", c.Timeout.Duration, err)
		}
		if ctx.Err() == nil {
			note(err)
		}
		var perm *permanentError
		if errors.As(err, &perm) || ctx.Err() != nil {
			return err
		}
		if p.attempts > 0 && attempt >= p.attempts {
			if attempt == 1 {
				return err
			}
			return fmt.Errorf("after %d attempts: %w", attempt, err)
		}
		if p.attempts == 0 && time.Since(start) >= retryFor {
			return fmt.Errorf("after %d attempts in %s: %w", attempt, retryFor, err)
		}
		d := bo.Next()
		l.WithError(err).WithFields(log.Fields{"attempt": attempt, "retry_in": d.Round(time.Millisecond)}).Warn("notification failed, retrying")
		if !backoff.Sleep(ctx, d) {
			return err
		}
	}
}

// Send renders alerts with the notification c and delivers them now, with
// c's timeout and at most attempts attempts (at least one), for cscli
// notifications test and reinject: the error says whether the message
// got through.
func Send(ctx context.Context, c *Config, alerts []*models.Alert, attempts int) error {
	s, err := newSender(c)
	if err != nil {
		return err
	}
	defer s.close()
	p := retryPolicy{attempts: max(attempts, 1), min: retryMin, max: retryMax}
	return deliver(ctx, c, s, alerts, p, log.WithField("notification", c.Name))
}

// TestAlert is the alert cscli notifications test sends, upstream's.
func TestAlert(now time.Time) *models.Alert {
	ts := now.UTC().Format(time.RFC3339)
	sim := false
	return &models.Alert{
		Scenario: "test alert", Message: "test alert", Kind: "cscli", Capacity: 0, EventsCount: 1,
		Leakspeed: "0", ScenarioHash: "", ScenarioVersion: "", Remediation: true, StartAt: ts, StopAt: ts, CreatedAt: ts,
		Source: &models.Source{IP: "10.10.10.10", Scope: "Ip", Value: "10.10.10.10"},
		Decisions: []*models.Decision{{Type: "ban", Duration: "4h", Origin: "cscli", Scenario: "test alert",
			Scope: "Ip", Value: "10.10.10.10", Simulated: &sim}},
		Events: []*models.Event{},
	}
}
