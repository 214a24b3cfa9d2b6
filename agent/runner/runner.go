// Package runner is the agent's main loop. Lines from the acquisition
// sources are parsed, and prepared against the scenarios, by N workers;
// one goroutine pours them into the buckets in arrival order, so the
// alerts do not depend on N; overflows that the postoverflows keep leave
// as alerts through a Sink (the delivery queue). Replay mode (a one-shot
// DSN) runs on the events' timestamps and returns when every source is
// done; live mode runs on the clock until its context ends.
package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/acquisition"
	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/leakybucket"
	"github.com/rampart-ips/rampart/agent/ruleset"
	"github.com/rampart-ips/rampart/models"
)

// Sink takes the alerts the agent raises (delivery.Pusher in the daemon).
type Sink interface {
	Push(ctx context.Context, alerts ...*models.Alert) error
}

// TimedSink is a Sink that also takes, per alert, when its last log line
// was read (zero if unknown), to measure the time to a decision.
type TimedSink interface {
	PushTimed(ctx context.Context, readAt []time.Time, alerts []*models.Alert) error
}

// Config is what Run needs.
type Config struct {
	Rules   *ruleset.Ruleset
	Sources []acquisition.Source
	Sink    Sink
	// Workers parse lines; 0 means GOMAXPROCS.
	Workers int
	// Replay selects time-machine mode: event timestamps drive the
	// buckets and Run returns once the sources are exhausted.
	Replay bool
	Logger *log.Entry
}

// Stats counts what the agent did; safe to read while Run runs.
type Stats struct {
	Lines, Parsed, Unparsed, Whitelisted atomic.Int64
	Overflows, Alerts, Dropped, Lost     atomic.Int64 // Dropped: whitelisted by postoverflows; Lost: refused by the sink
}

// SourceStat counts one log source's lines by outcome, as the usage
// metrics report them: Module is the datasource kind ("file"), Source
// the line's origin (a path, a journal filter, a syslog peer) and Type its
// labels.type. Read is Parsed plus Unparsed; Whitelisted lines are also
// Parsed.
type SourceStat struct {
	Module, Source, Type                string
	Read, Parsed, Unparsed, Whitelisted int64
}

type sourceKey struct{ module, source, typ string }

// sourceRun is a run of consecutive lines of one source within a batch:
// pour sums those locally and takes the lock once per batch.
type sourceRun struct {
	key                                 sourceKey
	read, parsed, unparsed, whitelisted int64
}

// batch is a run of lines parsed by one worker and poured in order.
type batch struct {
	lines []event.Line
	evts  []event.Event
	preps []leakybucket.Prepared
	done  chan struct{}
}

// maxBatch bounds a batch; a batch never waits to fill up: it takes what
// is pending when a worker is free, so a lone line is parsed at once.
const maxBatch = 256

// Agent is a running (or finished) agent; see Run.
type Agent struct {
	cfg    Config
	engine *leakybucket.Engine
	log    *log.Entry
	Stats  Stats

	runs      []sourceRun // pour's scratch, reused per batch
	sourcesMu sync.Mutex
	sources   map[sourceKey]*SourceStat
}

// New checks cfg and builds the agent's engine.
func New(cfg Config) (*Agent, error) {
	if cfg.Rules == nil {
		return nil, errors.New("runner: no rules")
	}
	if cfg.Sink == nil {
		return nil, errors.New("runner: no alert sink")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = log.WithField("component", "agent")
	}
	return &Agent{cfg: cfg, engine: cfg.Rules.NewEngine(cfg.Replay), log: cfg.Logger, sources: map[sourceKey]*SourceStat{}}, nil
}

// Run reads every source until ctx ends or, in replay mode, until they are
// all done and every line has been processed. A source that fails (the
// daemon's live sources retry by themselves and fail only when they can
// never work) ends the run with its error, as does, live, the end of every
// source: an agent that reads nothing must not look healthy.
func (a *Agent) Run(ctx context.Context) error {
	if len(a.cfg.Sources) == 0 {
		if a.cfg.Replay {
			return errors.New("runner: no log source configured")
		}
		// Live without sources (a host whose services were not detected):
		// nothing to read, but not a failure either.
		<-ctx.Done()
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		failMu  sync.Mutex
		srcFail error
	)
	lines := make(chan event.Line, 4*maxBatch)
	var srcWG sync.WaitGroup
	for _, src := range a.cfg.Sources {
		srcWG.Go(func() {
			l := a.log.WithField("source", src.Name())
			l.Info("reading")
			if err := src.Run(ctx, lines); err != nil && ctx.Err() == nil {
				l.WithError(err).Error("log source stopped")
				failMu.Lock()
				if srcFail == nil {
					srcFail = fmt.Errorf("log source %s: %w", src.Name(), err)
				}
				failMu.Unlock()
				cancel()
				return
			}
			l.Debug("source done")
		})
	}
	// In replay, the end of every source is the end of input; live, the
	// context's end is.
	go func() {
		srcWG.Wait()
		close(lines)
	}()

	work := make(chan *batch, a.cfg.Workers)
	ordered := make(chan *batch, 2*a.cfg.Workers)
	go a.batches(ctx, lines, work, ordered)
	var wg sync.WaitGroup
	for range a.cfg.Workers {
		wg.Go(func() { a.parse(work) })
	}
	err := a.pour(ctx, ordered)
	wg.Wait()
	failMu.Lock()
	defer failMu.Unlock()
	if srcFail == nil && !a.cfg.Replay && ctx.Err() == nil {
		srcFail = errors.New("every log source stopped")
	}
	return errors.Join(err, srcFail)
}

// batches groups pending lines and hands each batch both to a worker and,
// in the same order, to the pourer.
func (a *Agent) batches(ctx context.Context, lines <-chan event.Line, work, ordered chan<- *batch) {
	defer close(work)
	defer close(ordered)
	for {
		var first event.Line
		var ok bool
		select {
		case first, ok = <-lines:
			if !ok {
				return
			}
		case <-ctx.Done():
			return
		}
		b := &batch{lines: []event.Line{first}, done: make(chan struct{})}
	fill:
		for len(b.lines) < maxBatch {
			select {
			case l, ok := <-lines:
				if !ok {
					break fill
				}
				b.lines = append(b.lines, l)
			default:
				break fill
			}
		}
		select {
		case ordered <- b:
		case <-ctx.Done():
			return
		}
		work <- b
	}
}

func (a *Agent) parse(work <-chan *batch) {
	for b := range work {
		b.evts = make([]event.Event, len(b.lines))
		b.preps = make([]leakybucket.Prepared, len(b.lines))
		for i, l := range b.lines {
			evt := &b.evts[i]
			*evt = event.New(l)
			if err := a.cfg.Rules.Parse(evt, nil); err != nil {
				// Parse already made the line unparsed; say why once per line.
				a.log.WithError(err).Warn("line not parsed")
			}
			if evt.Process && !evt.Whitelisted {
				b.preps[i] = a.engine.Prepare(evt)
			}
		}
		close(b.done)
	}
}

// pour runs the buckets: the only goroutine touching the engine.
func (a *Agent) pour(ctx context.Context, ordered <-chan *batch) error {
	var tick <-chan time.Time
	if !a.cfg.Replay {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case b, ok := <-ordered:
			if !ok {
				return nil
			}
			<-b.done
			var alerts []*models.Alert
			var readAt []time.Time
			a.runs = a.runs[:0]
			var run *sourceRun
			for i := range b.evts {
				evt := &b.evts[i]
				a.Stats.Lines.Add(1)
				k := sourceKey{evt.Line.Module, evt.Line.Src, evt.Line.Labels["type"]}
				if run == nil || run.key != k {
					a.runs = append(a.runs, sourceRun{key: k})
					run = &a.runs[len(a.runs)-1]
				}
				run.read++
				switch {
				case !evt.Process:
					a.Stats.Unparsed.Add(1)
					run.unparsed++
					continue
				case evt.Whitelisted:
					a.Stats.Parsed.Add(1)
					a.Stats.Whitelisted.Add(1)
					run.parsed++
					run.whitelisted++
					continue
				}
				a.Stats.Parsed.Add(1)
				run.parsed++
				alerts, readAt = a.overflows(a.engine.PourPrepared(evt, b.preps[i]), alerts, readAt)
			}
			a.addSourceRuns(a.runs)
			a.push(ctx, alerts, readAt)
		case now := <-tick:
			alerts, readAt := a.overflows(a.engine.Tick(now), nil, nil)
			a.push(ctx, alerts, readAt)
		case <-ctx.Done():
			return nil
		}
	}
}

// overflows runs the postoverflows and appends the alerts that survive.
func (a *Agent) overflows(ovs []event.Event, out []*models.Alert, readAt []time.Time) ([]*models.Alert, []time.Time) {
	for i := range ovs {
		ov := &ovs[i]
		a.Stats.Overflows.Add(1)
		if ov.Overflow.Alert == nil {
			continue
		}
		keep, err := a.cfg.Rules.PostOverflow(ov)
		if err != nil {
			a.log.WithError(err).WithField("scenario", ov.GetScenario()).Warn("postoverflow failed: keeping the alert")
			keep = true
		}
		if !keep {
			a.Stats.Dropped.Add(1)
			a.log.WithFields(log.Fields{"scenario": ov.GetScenario(), "source": ov.GetValue(), "reason": ov.WhitelistReason}).Info("overflow whitelisted")
			continue
		}
		a.log.WithFields(log.Fields{"scenario": ov.GetScenario(), "source": ov.GetValue(), "events": ov.Overflow.Alert.EventsCount}).Info("alert")
		out = append(out, ov.Overflow.Alert)
		readAt = append(readAt, ov.Line.Time)
	}
	return out, readAt
}

// push hands alerts to the sink. A sink that refuses them (its disk is
// full, say) costs those alerts, loudly, but not the agent: detection
// goes on and the next alerts may get through.
func (a *Agent) push(ctx context.Context, alerts []*models.Alert, readAt []time.Time) {
	if len(alerts) == 0 {
		return
	}
	a.Stats.Alerts.Add(int64(len(alerts)))
	var err error
	if ts, ok := a.cfg.Sink.(TimedSink); ok {
		err = ts.PushTimed(ctx, readAt, alerts)
	} else {
		err = a.cfg.Sink.Push(ctx, alerts...)
	}
	if err != nil && ctx.Err() == nil {
		a.Stats.Lost.Add(int64(len(alerts)))
		a.log.WithError(err).WithField("alerts", len(alerts)).Error("alerts lost: the delivery queue refused them")
	}
}

// addSourceRuns adds a batch's per-source counts to the totals.
func (a *Agent) addSourceRuns(runs []sourceRun) {
	a.sourcesMu.Lock()
	defer a.sourcesMu.Unlock()
	for _, r := range runs {
		st := a.sources[r.key]
		if st == nil {
			st = &SourceStat{Module: r.key.module, Source: r.key.source, Type: r.key.typ}
			a.sources[r.key] = st
		}
		st.Read += r.read
		st.Parsed += r.parsed
		st.Unparsed += r.unparsed
		st.Whitelisted += r.whitelisted
	}
}

// SourceStats returns the per-source totals since New, sorted by module,
// source and type. Safe to call while Run runs.
func (a *Agent) SourceStats() []SourceStat {
	a.sourcesMu.Lock()
	out := make([]SourceStat, 0, len(a.sources))
	for _, st := range a.sources {
		out = append(out, *st)
	}
	a.sourcesMu.Unlock()
	slices.SortFunc(out, func(x, y SourceStat) int {
		return cmp.Or(cmp.Compare(x.Module, y.Module), cmp.Compare(x.Source, y.Source), cmp.Compare(x.Type, y.Type))
	})
	return out
}

// Engine is the agent's bucket engine, for its counters (ScenarioStats).
func (a *Agent) Engine() *leakybucket.Engine { return a.engine }
