package capi

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/internal/backoff"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// Upstream's schedules.
const (
	DefaultPushInterval    = 10 * time.Second
	DefaultPullInterval    = 2 * time.Hour
	DefaultMetricsInterval = 30 * time.Minute
	// recentPull: a pull that is not forced is skipped when the last one
	// stored its decisions less than this ago (a restart loop must not
	// hammer CAPI).
	recentPull = 90 * time.Minute
	// signalBatch is how many signals go in one POST, as upstream.
	signalBatch = 50
	// pushLockStale and pullLockStale: a lock older than this is taken
	// to belong to a LAPI that died holding it (upstream: 10 min for pulls).
	pushLockStale = 2 * time.Minute
	pullLockStale = 10 * time.Minute
	// defaultApplyChunk: a 5000-decision transaction holds the database
	// writer for tens of milliseconds.
	defaultApplyChunk = 5000
)

// FilterFunc gives what says whether an allowlist covers a pulled decision
// of scope on r, which is then dropped (lapi.Server.FilterPulled).
type FilterFunc func(context.Context) (func(scope string, r store.Range) bool, error)

// Options configure a Service. Zero durations take upstream's values.
type Options struct {
	Client *Client
	Store  *store.Store
	Filter FilterFunc
	// Sharing pushes queued signals (online_client.sharing).
	Sharing bool
	// PullCommunity and PullBlocklists are online_client.pull.*.
	PullCommunity, PullBlocklists bool
	// QueueMax bounds the queued signals (online_client.signal_queue_max).
	QueueMax int

	PushInterval    time.Duration // between pushes (first one jittered ±70%)
	PullInterval    time.Duration // between pulls (first one jittered ±5 min)
	MetricsInterval time.Duration
	// MachineCheck is how often the metrics routine looks for a new or
	// deleted machine (reported at once); 0 means 20 s.
	MachineCheck time.Duration
	// RetryMin is the first wait after a failed push or pull (doubling up
	// to the push or pull interval); 0 means the push interval.
	RetryMin time.Duration
	// MinPullGap: a pull that is not forced is skipped when the last one
	// stored its decisions less than this ago; 0 means 1 h 30 (upstream),
	// negative never skips.
	MinPullGap time.Duration
	// ApplyChunk is how many pulled decisions are stored per transaction
	// (the agents' pushes wait for each); 0 means 5000, negative all at once.
	ApplyChunk int
	// ScenarioPoll is how often the pull checks that an agent has logged
	// in (no scenarios, no pull); 0 means 1 s.
	ScenarioPoll time.Duration
	Version      string // the LAPI's, sent with the metrics
	// UsageMetrics sends the components' usage reports every
	// MetricsInterval (api.server.disable_usage_metrics_export turns it off).
	UsageMetrics bool
	// ConsoleOptions is upstream's console_options item of the usage
	// metrics ("custom,tainted").
	ConsoleOptions string
	// PAPIURL is the console's polling API (papi_url); "" never polls it.
	PAPIURL string
	// PAPIRecheck is how often, while the token does not open PAPI, it
	// is looked at again; 0 means 5 min.
	PAPIRecheck time.Duration
	// Console stores the alerts PAPI orders (the LAPI).
	Console ConsoleSink
	// ShareDeletions tells the console of the decisions ended here
	// (share_manual_decisions or console_management).
	ShareDeletions bool
	Log            *log.Entry
}

// Stats count what the service did, for logs, metrics and tests.
type Stats struct {
	SignalsSent, SignalsDropped, SignalsRejected       atomic.Int64
	DeletionsSent, DeletionsDropped, DeletionsRejected atomic.Int64
	Pulls, PullFailures                                atomic.Int64
	ListsFailed                                        atomic.Int64
}

// Service runs the push, pull, metrics and PAPI routines. They are independent:
// one failing never stops the others (upstream's kill one another).
type Service struct {
	o     Options
	log   *log.Entry
	Stats Stats

	pullMu  sync.Mutex // one pull at a time
	stored  int        // decisions the current pull stored (under pullMu)
	startup atomic.Bool
	// owner names this service in the database locks that keep the LAPIs
	// of one database (a fleet) from pulling, or sending the same queued
	// signals or deletions, at the same time.
	owner string
}

// New builds a service; Run starts it.
func New(o Options) *Service {
	if o.PushInterval <= 0 {
		o.PushInterval = DefaultPushInterval
	}
	if o.PullInterval <= 0 {
		o.PullInterval = DefaultPullInterval
	}
	if o.MetricsInterval <= 0 {
		o.MetricsInterval = DefaultMetricsInterval
	}
	if o.MachineCheck <= 0 {
		o.MachineCheck = 20 * time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = o.PushInterval
	}
	if o.MinPullGap == 0 {
		o.MinPullGap = recentPull
	}
	if o.ApplyChunk == 0 {
		o.ApplyChunk = defaultApplyChunk
	}
	if o.ScenarioPoll <= 0 {
		o.ScenarioPoll = time.Second
	}
	if o.PAPIRecheck <= 0 {
		o.PAPIRecheck = 5 * time.Minute
	}
	if o.QueueMax <= 0 {
		o.QueueMax = 100000
	}
	lg := o.Log
	if lg == nil {
		lg = log.WithField("component", "capi")
	}
	s := &Service{o: o, log: lg, owner: models.NewAlertUUID()}
	s.startup.Store(true)
	return s
}

// Run runs until ctx ends. Nothing here blocks the LAPI: a CAPI that is
// down is retried in the background.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if s.o.Sharing {
		wg.Go(func() { s.pushLoop(ctx) })
	} else {
		s.log.Info("signal sharing is off (online_client.sharing): no signal is sent to the Central API")
	}
	wg.Go(func() { s.pullLoop(ctx) })
	wg.Go(func() { s.metricsLoop(ctx) })
	if s.o.UsageMetrics {
		wg.Go(func() { s.usageLoop(ctx) })
	}
	if s.o.PAPIURL != "" {
		wg.Go(func() { s.papiLoop(ctx) })
	}
	if s.o.ShareDeletions {
		wg.Go(func() { s.deleteLoop(ctx) })
	}
	wg.Wait()
}

// jitter spreads the first tick by ±delta, as upstream.
func jitter(d, delta time.Duration) time.Duration {
	if delta <= 0 {
		return d
	}
	return max(d-delta+rand.N(2*delta), time.Nanosecond)
}

func (s *Service) pushLoop(ctx context.Context) {
	s.sendLoop(ctx, jitter(s.o.PushInterval, s.o.PushInterval*7/10), "signals", s.PushSignals)
}

// sendLoop calls send after first, then every PushInterval; after a
// failure it waits from RetryMin doubling up to 5 min, what was to go
// staying queued.
func (s *Service) sendLoop(ctx context.Context, first time.Duration, what string, send func(context.Context) error) {
	wait := first
	b := backoff.Backoff{Min: s.o.RetryMin, Max: max(5*time.Minute, s.o.RetryMin)}
	for {
		if !backoff.Sleep(ctx, wait) {
			return
		}
		if err := send(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = b.Next()
			s.log.WithError(err).WithField("retry_in", wait.Round(time.Second)).Warn("sending " + what + " to the Central API failed: they stay queued")
			continue
		}
		b.Reset()
		wait = s.o.PushInterval
	}
}

// PushSignals bounds the queue, then sends the queued signals in batches
// of 50 until none is left; each batch leaves the queue only once CAPI
// took it. A batch CAPI refuses as invalid (400, 422) can never be taken:
// it is dropped, counted and logged.
func (s *Service) PushSignals(ctx context.Context) error {
	// An idle queue costs one read every push tick, no write.
	queued, err := s.o.Store.SignalQueueLen(ctx)
	if err != nil || queued == 0 {
		return err
	}
	ok, release, err := s.pushLock(ctx, "pushCAPI")
	if err != nil || !ok {
		return err // another LAPI of the database sends them
	}
	defer release()
	if queued <= int64(s.o.QueueMax) {
		// within the bound
	} else if n, err := s.o.Store.TrimSignals(ctx, s.o.QueueMax); err != nil {
		return err
	} else if n > 0 {
		s.Stats.SignalsDropped.Add(n)
		s.log.WithFields(log.Fields{"dropped": n, "total_dropped": s.Stats.SignalsDropped.Load(), "bound": s.o.QueueMax}).
			Warn("the signal queue is full (online_client.signal_queue_max): the oldest signals were dropped")
	}
	for first := true; ; first = false {
		if !first { // refreshed per batch: a long drain keeps its lock
			if ok, _, err := s.pushLock(ctx, "pushCAPI"); err != nil || !ok {
				return err
			}
		}
		batch, err := s.o.Store.PendingSignals(ctx, signalBatch)
		if err != nil || len(batch) == 0 {
			return err
		}
		var body bytes.Buffer
		body.WriteByte('[')
		ids := make([]int64, len(batch))
		for i, q := range batch {
			if i > 0 {
				body.WriteByte(',')
			}
			body.Write(q.Body)
			ids[i] = q.ID
		}
		body.WriteByte(']')
		status, err := s.o.Client.do(ctx, http.MethodPost, "v3/signals", nil, body.Bytes(), nil)
		if err != nil {
			if status != http.StatusBadRequest && status != http.StatusUnprocessableEntity {
				return err
			}
			s.Stats.SignalsRejected.Add(int64(len(batch)))
			s.log.WithError(err).WithField("signals", len(batch)).Error("the Central API refused signals as invalid: dropped")
		} else {
			s.Stats.SignalsSent.Add(int64(len(batch)))
		}
		// Taken: removed even if ctx ends now, or they would go twice.
		if err := s.o.Store.AckSignals(context.WithoutCancel(ctx), ids); err != nil {
			return fmt.Errorf("removing sent signals from the queue: %w", err)
		}
	}
}

// pushLock takes (or refreshes) the named lock that keeps the LAPIs of
// one database from sending the same queued rows; false when another LAPI
// holds it. release, deferred by the first taker, gives it back.
func (s *Service) pushLock(ctx context.Context, name string) (bool, func(), error) {
	ok, err := s.o.Store.TryLock(ctx, name, s.owner, pushLockStale)
	if err != nil || !ok {
		return false, nil, err
	}
	return true, func() {
		if err := s.o.Store.Unlock(context.WithoutCancel(ctx), name, s.owner); err != nil {
			s.log.WithError(err).WithField("lock", name).Warn("releasing a Central API push lock")
		}
	}, nil
}

// metricsLoop sends the metrics at once, then every MetricsInterval (the
// first one jittered), and as soon as the set of machines changes (checked
// every MachineCheck), as upstream.
func (s *Service) metricsLoop(ctx context.Context) {
	check := min(s.o.MachineCheck, s.o.MetricsInterval)
	next := time.Now().Add(time.Millisecond)
	interval := jitter(s.o.MetricsInterval, s.o.MetricsInterval/2)
	var sent string
	for {
		if !backoff.Sleep(ctx, min(check, max(time.Until(next), time.Millisecond))) {
			return
		}
		machines := s.machineSet(ctx)
		if time.Now().Before(next) && machines == sent {
			continue
		}
		if err := s.SendMetrics(ctx); err != nil && ctx.Err() == nil {
			s.log.WithError(err).Warn("sending metrics to the Central API failed")
		}
		sent = machines
		next = time.Now().Add(interval)
		interval = s.o.MetricsInterval
	}
}

// usageLoop sends the usage metrics every MetricsInterval, the first
// after MetricsInterval ± half of it.
func (s *Service) usageLoop(ctx context.Context) {
	wait := jitter(s.o.MetricsInterval, s.o.MetricsInterval/2)
	for {
		if !backoff.Sleep(ctx, wait) {
			return
		}
		if err := s.SendUsageMetrics(ctx); err != nil && ctx.Err() == nil {
			s.log.WithError(err).Warn("sending usage metrics to the Central API failed: they are sent with the next ones")
		}
		wait = s.o.MetricsInterval
	}
}

// machineSet names the machines, to notice a change ("" on error).
func (s *Service) machineSet(ctx context.Context) string {
	ms, err := s.o.Store.ListMachines(ctx)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, m := range ms {
		b.WriteString(m.MachineID)
		b.WriteByte(0)
	}
	return b.String()
}

// SendMetrics posts the machines and bouncers (POST /v3/metrics/).
func (s *Service) SendMetrics(ctx context.Context) error {
	machines, err := s.o.Store.ListMachines(ctx)
	if err != nil {
		return err
	}
	bouncers, err := s.o.Store.ListBouncers(ctx)
	if err != nil {
		return err
	}
	m := MetricsRequest{ApilVersion: s.o.Version, Machines: []MetricMachine{}, Bouncers: []MetricBouncer{}}
	for _, mc := range machines {
		mm := MetricMachine{Name: mc.MachineID, Version: mc.Version, LastUpdate: mc.UpdatedAt.UTC().Format(time.RFC3339),
			LastPush: time.Time{}.Format(time.RFC3339)}
		if mc.LastPush != nil {
			mm.LastPush = mc.LastPush.UTC().Format(time.RFC3339)
		}
		m.Machines = append(m.Machines, mm)
	}
	for _, b := range bouncers {
		mb := MetricBouncer{CustomName: b.Name, Name: b.Type, Version: b.Version}
		if b.LastPull != nil {
			mb.LastPull = b.LastPull.UTC().Format(time.RFC3339)
		}
		m.Bouncers = append(m.Bouncers, mb)
	}
	_, err = s.o.Client.do(ctx, http.MethodPost, "v3/metrics/", nil, m, nil)
	return err
}
