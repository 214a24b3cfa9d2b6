package acquisition

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/internal/backoff"
)

// superviseTiming paces a supervised source's restarts; tests shorten it.
type superviseTiming struct {
	minRetry, maxRetry time.Duration
	healthy            time.Duration // a run this long starts the backoff over
	warnFirst          int           // failures in a row warned one by one
	warnEvery          time.Duration // then at most one warning this often
}

func defaultSuperviseTiming() superviseTiming {
	return superviseTiming{minRetry: time.Second, maxRetry: time.Minute, healthy: time.Minute, warnFirst: 5, warnEvery: 10 * time.Minute}
}

// NewSupervised builds the live source cfg describes, as New does, and
// keeps it running: a source that cannot start (its port is taken,
// journalctl is not installed) or that stops is started again, with a
// jittered backoff from 1s to 1m, for as long as the agent runs. Each
// failure is logged (one by one at first, then at most every ten
// minutes), rampart_acquisition_source_up says whether it reads and
// rampart_acquisition_source_retries_total counts the restarts. Only a
// configuration that can never work is an error, here, at start.
func NewSupervised(cfg Config, opts Options) (Source, error) {
	src, err := New(cfg, opts)
	if err != nil {
		return nil, err
	}
	return supervise(src, cfg.Labels["type"], opts), nil
}

func supervise(src Source, typ string, opts Options) *supervised {
	s := &supervised{src: src, timing: defaultSuperviseTiming(), state: &sourceState{
		log:     opts.logger().WithFields(log.Fields{"source": src.Name(), "type": typ}),
		up:      opts.Metrics.upGauge(src.Name(), typ),
		retries: opts.Metrics.retriesCounter(src.Name(), typ),
	}}
	s.state.up.Set(0) // the series exist, down, until the source starts
	return s
}

// supervised runs a source again whenever it fails.
type supervised struct {
	src    Source
	timing superviseTiming
	state  *sourceState
}

// Name implements Source.
func (s *supervised) Name() string { return s.src.Name() }

// Run implements Source: it returns nil once ctx ends, and never before.
func (s *supervised) Run(ctx context.Context, out chan<- event.Line) error {
	st := s.state
	st.warnFirst, st.warnEvery = s.timing.warnFirst, s.timing.warnEvery
	defer st.up.Set(0)
	ctx = context.WithValue(ctx, sourceStateKey{}, st)
	b := backoff.Backoff{Min: s.timing.minRetry, Max: s.timing.maxRetry}
	for {
		started := time.Now()
		err := s.src.Run(ctx, out)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("the source stopped reading")
		}
		if time.Since(started) >= s.timing.healthy {
			b.Reset()
		}
		delay := b.Next()
		st.failed(err, delay, "log source failed: starting it again")
		if !backoff.Sleep(ctx, delay) {
			return nil
		}
	}
}

// sourceState is what a supervised source reports. The source reaches it
// through its Run context (markUp, markDown), so that Source stays one
// method for sources and replays alike.
type sourceState struct {
	log       *log.Entry
	up        prometheus.Gauge
	retries   prometheus.Counter
	warnFirst int
	warnEvery time.Duration

	mu        sync.Mutex
	failures  int       // in a row, since the source last came up
	downSince time.Time // of the first of them
	lastWarn  time.Time
}

type sourceStateKey struct{}

// markUp tells the supervisor, if any, that the source reads: its port is
// bound, journalctl started, the files are watched.
func markUp(ctx context.Context) {
	if st, ok := ctx.Value(sourceStateKey{}).(*sourceState); ok {
		st.markUp()
	}
}

// markDown tells the supervisor, if any, that the source stopped reading
// and restarts by itself after delay (journalctl exited); the source logs
// why itself.
func markDown(ctx context.Context, err error, delay time.Duration) {
	if st, ok := ctx.Value(sourceStateKey{}).(*sourceState); ok {
		st.failed(err, delay, "")
	}
}

func (st *sourceState) markUp() {
	st.up.Set(1)
	st.mu.Lock()
	failures, since := st.failures, st.downSince
	st.failures = 0
	st.mu.Unlock()
	if failures > 0 {
		st.log.WithFields(log.Fields{"failures": failures, "down_for": time.Since(since).Round(time.Second).String()}).
			Info("log source reads again")
	}
}

// failed records a failure before a restart after delay. With msg, it
// logs a warning for each of the first failures in a row, then at most
// one per warnEvery (the others at debug level): a source down for days
// must not flood the log.
func (st *sourceState) failed(err error, delay time.Duration, msg string) {
	st.up.Set(0)
	st.retries.Inc()
	now := time.Now()
	st.mu.Lock()
	if st.failures == 0 {
		st.downSince = now
	}
	st.failures++
	failures, since := st.failures, st.downSince
	warn := failures <= st.warnFirst || now.Sub(st.lastWarn) >= st.warnEvery
	if warn {
		st.lastWarn = now
	}
	st.mu.Unlock()
	if msg == "" {
		return
	}
	l := st.log.WithError(err).WithFields(log.Fields{"failures": failures, "retry_in": delay.Round(time.Millisecond).String()})
	if failures > 1 {
		l = l.WithField("down_for", now.Sub(since).Round(time.Second).String())
	}
	if !warn {
		l.Debug(msg)
		return
	}
	if failures == st.warnFirst {
		msg += " (further failures are logged every " + st.warnEvery.String() + ")"
	}
	l.Warn(msg)
}
