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
	// BucketLimit caps each scenario's live buckets; 0 for no cap (see
	// leakybucket.Engine.SetLimit).
	BucketLimit int
	Logger      *log.Entry
}

// Stats counts what the agent did; safe to read while Run runs.
type Stats struct {
	Lines, Parsed, Unparsed, Whitelisted atomic.Int64
	Overflows, Alerts, Dropped, Lost     atomic.Int64 // Dropped: whitelisted by postoverflows; Lost: refused by the sink
	// Warmup counts the lines read again at start to rebuild the buckets
	// (event.Line.Warmup), which the counters above leave out: they were
	// counted before the stop. WarmupOverflows counts the overflows they
	// caused, dropped: they were raised before the stop.
	Warmup, WarmupOverflows atomic.Int64
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
	// gen is the rules the batch is parsed and poured with.
	gen *generation
	// reload, on a batch without lines, makes gen the pourer's from there
	// on: every batch before it went to the old engine, every one after
	// it was parsed by the new rules.
	reload *reloadReq
}

// generation is one set of rules and the bucket engine over its
// scenarios. A reload replaces both at a batch boundary.
type generation struct {
	rules  *ruleset.Ruleset
	engine *leakybucket.Engine
}

// reloadReq asks the running agent to switch to new rules.
type reloadReq struct {
	gen  *generation
	done chan ReloadResult
}

// ReloadResult says what a rules switch kept.
type ReloadResult struct {
	// Scenarios kept (same Identity), and their live buckets moved over.
	KeptScenarios, KeptBuckets int
}

// maxBatch bounds a batch; a batch never waits to fill up: it takes what
// is pending when a worker is free, so a lone line is parsed at once.
const maxBatch = 256

// maxWaitingAlerts bounds the alerts a replay's pourer holds back to push
// them together (see pour): more would only grow the heap, which the GC
// settings (internal/memtune) multiply into RSS.
const maxWaitingAlerts = 128

// Agent is a running (or finished) agent; see Run.
type Agent struct {
	cfg Config
	// gen is the generation the pourer uses (metrics read it).
	gen     atomic.Pointer[generation]
	reloads chan *reloadReq
	srcs    sourceSet
	log     *log.Entry
	Stats   Stats
	// Timing says where the run's time went (see Timing).
	Timing Timing

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
	a := &Agent{cfg: cfg, log: cfg.Logger, sources: map[sourceKey]*SourceStat{}, reloads: make(chan *reloadReq)}
	engine := cfg.Rules.NewEngine(cfg.Replay)
	engine.SetLimit(cfg.BucketLimit)
	a.gen.Store(&generation{rules: cfg.Rules, engine: engine})
	return a, nil
}

// Run reads every source until ctx ends or, in replay mode, until they are
// all done and every line has been processed. A source that fails (the
// daemon's live sources retry by themselves and fail only when they can
// never work) ends the run with its error, as does, live, the end of every
// source: an agent that reads nothing must not look healthy.
func (a *Agent) Run(ctx context.Context) error {
	// Live without sources (a host whose services were not detected) is
	// not a failure: the run idles, and a reload can add sources later.
	if len(a.cfg.Sources) == 0 && a.cfg.Replay {
		return errors.New("runner: no log source configured")
	}
	mark(&a.Timing.Started)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan event.Line, 4*maxBatch)
	// Sources that read faster than the agent parses (replays) send
	// whole batches: one channel operation per batch, not per line.
	chunks := make(chan []event.Line, 2)
	a.srcs.start(ctx, cancel, lines, chunks, a.log, a.cfg.Replay)
	for _, src := range a.cfg.Sources {
		a.srcs.add(src)
	}
	// In replay, the end of every source is the end of input; live, the
	// context's end is.
	go func() {
		if !a.cfg.Replay {
			<-ctx.Done()
		}
		a.srcs.wait()
		mark(&a.Timing.SourcesDone)
		close(lines)
		close(chunks)
	}()

	work := make(chan *batch, a.cfg.Workers)
	// Workers may run this many batches ahead of the pourer: when the one
	// parsing the next batch to pour is off its CPU (the LAPI of a replay
	// takes a core for each batch of alerts it stores), the others go on
	// rather than wait for room. At 2 per worker, a 1M-line sshd replay
	// left its processors idle 1.3-3.5 s on a loaded machine; at 4,
	// 0.4-1.1 s.
	ordered := make(chan *batch, 4*a.cfg.Workers)
	go a.batches(ctx, lines, chunks, work, ordered)
	var wg sync.WaitGroup
	for range a.cfg.Workers {
		wg.Go(func() { a.parse(work) })
	}
	err := a.pour(ctx, ordered)
	mark(&a.Timing.LastPoured)
	cancel()
	wg.Wait()
	return errors.Join(err, a.srcs.failure())
}

// batches groups pending lines, and splits the sources' batches to
// maxBatch, and hands each batch both to a worker and, in the same order,
// to the pourer.
func (a *Agent) batches(ctx context.Context, lines <-chan event.Line, chunks <-chan []event.Line, work, ordered chan<- *batch) {
	defer close(work)
	defer close(ordered)
	gen := a.gen.Load()
	send := func(b *batch) bool {
		t0 := time.Now()
		select {
		case ordered <- b:
		case <-ctx.Done():
			return false
		}
		work <- b
		since(t0, &a.Timing.BatcherBlocked)
		a.Timing.Batches.Add(1)
		return true
	}
	for lines != nil || chunks != nil {
		var first event.Line
		var ok bool
		t0 := time.Now()
		select {
		case first, ok = <-lines:
			since(t0, &a.Timing.BatcherIdle)
			if !ok {
				lines = nil
				continue
			}
			markOnce(&a.Timing.FirstLine)
		case chunk, ok := <-chunks:
			since(t0, &a.Timing.BatcherIdle)
			if !ok {
				chunks = nil
				continue
			}
			markOnce(&a.Timing.FirstLine)
			for len(chunk) > 0 {
				k := min(len(chunk), maxBatch)
				if !send(&batch{lines: chunk[:k:k], done: make(chan struct{}), gen: gen}) {
					return
				}
				chunk = chunk[k:]
			}
			continue
		case req := <-a.reloads:
			// A marker in the pourer's order: batches already sent are
			// poured with the old engine, those after with the new one.
			gen = req.gen
			m := &batch{gen: gen, reload: req, done: make(chan struct{})}
			close(m.done)
			select {
			case ordered <- m:
			case <-ctx.Done():
				return
			}
			continue
		case <-ctx.Done():
			return
		}
		// sized for the lines already waiting, which it takes: growing it
		// line by line cost more than the copy
		buf := make([]event.Line, 1, min(1+len(lines), maxBatch))
		buf[0] = first
		b := &batch{lines: buf, done: make(chan struct{}), gen: gen}
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
		if !send(b) {
			return
		}
	}
}

func (a *Agent) parse(work <-chan *batch) {
	// Most lines of many logs are never poured (sshd: 80% match no
	// parser): their maps serve the next line, and the maps of the lines
	// poured are sized from those before them.
	var mk event.Maker
	var idle time.Duration
	defer func() { a.Timing.WorkersIdle.Add(int64(idle)) }()
	for {
		t0 := time.Now()
		b, ok := <-work
		idle += time.Since(t0)
		if !ok {
			return
		}
		b.evts = make([]event.Event, len(b.lines))
		b.preps = make([]leakybucket.Prepared, len(b.lines))
		for i, l := range b.lines {
			evt := &b.evts[i]
			*evt = mk.New(l)
			if err := b.gen.rules.Parse(evt, nil); err != nil {
				// Parse already made the line unparsed; say why once per
				// line (a warm-up line was said so before the stop).
				if l.Warmup {
					a.log.WithError(err).Debug("warm-up line not parsed")
				} else {
					a.log.WithError(err).Warn("line not parsed")
				}
			}
			if evt.Process && !evt.Whitelisted {
				b.preps[i] = b.gen.engine.Prepare(evt)
				mk.Kept(evt)
			} else {
				// pour only counts it: nothing reads its maps
				mk.Drop(evt)
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
	g := a.gen.Load()
	// warming: a warm-up line was poured since the last tick, so more may
	// follow, timed in the past. The clock's tick waits (a tick at most):
	// it would end buckets that are empty now but that the next warm-up
	// lines, older, still fill.
	warming := false
	// A replay's alerts wait while the next batch is ready already, up to
	// maxWaitingAlerts: fewer, bigger pushes (each one writes the queue).
	// Live, they go at once.
	var alerts []*models.Alert
	var readAt []time.Time
	flush := func() {
		if len(alerts) > 0 {
			t0 := time.Now()
			a.push(ctx, alerts, readAt)
			since(t0, &a.Timing.PourPush)
			mark(&a.Timing.LastPush)
		}
		alerts, readAt = nil, nil
	}
	for {
		t0 := time.Now()
		select {
		case b, ok := <-ordered:
			since(t0, &a.Timing.PourIdle)
			if !ok {
				flush()
				return nil
			}
			t0 = time.Now()
			<-b.done
			since(t0, &a.Timing.PourParse)
			if b.reload != nil {
				g = a.switchTo(g, b.reload)
				continue
			}
			a.runs = a.runs[:0]
			var run *sourceRun
			for i := range b.evts {
				evt := &b.evts[i]
				if evt.Line.Warmup {
					warming = true
					a.warmup(g, evt, b.preps[i])
					continue
				}
				k := sourceKey{evt.Line.Module, evt.Line.Src, evt.Line.Labels["type"]}
				if run == nil || run.key != k {
					a.runs = append(a.runs, sourceRun{key: k})
					run = &a.runs[len(a.runs)-1]
				}
				run.read++
				switch {
				case !evt.Process:
					run.unparsed++
					continue
				case evt.Whitelisted:
					run.parsed++
					run.whitelisted++
					continue
				}
				run.parsed++
				alerts, readAt = a.overflows(g, g.engine.PourPrepared(evt, b.preps[i]), alerts, readAt)
			}
			a.addSourceRuns(a.runs)
			if !a.cfg.Replay || len(ordered) == 0 || len(alerts) >= maxWaitingAlerts {
				flush()
			}
		case now := <-tick:
			if warming {
				warming = false // once: the warm-up may be over
				continue
			}
			alerts, readAt = a.overflows(g, g.engine.Tick(now), alerts, readAt)
			flush()
		case <-ctx.Done():
			// a replay's waiting alerts: its queue counts those it
			// refuses now as undelivered, rather than their vanishing
			flush()
			return nil
		}
	}
}

// warmup pours a line read again at start only for the bucket state it
// leaves (blackholes included): what it overflows was raised before the
// stop, from the same line, and is dropped without a word at info level.
func (a *Agent) warmup(g *generation, evt *event.Event, p leakybucket.Prepared) {
	a.Stats.Warmup.Add(1)
	if !evt.Process || evt.Whitelisted {
		return
	}
	for _, ov := range g.engine.PourPrepared(evt, p) {
		a.Stats.WarmupOverflows.Add(1)
		a.log.WithFields(log.Fields{"scenario": ov.GetScenario(), "source": ov.GetValue()}).Debug("warm-up overflow dropped: raised before the stop")
	}
}

// overflows runs the postoverflows and appends the alerts that survive.
func (a *Agent) overflows(g *generation, ovs []event.Event, out []*models.Alert, readAt []time.Time) ([]*models.Alert, []time.Time) {
	for i := range ovs {
		ov := &ovs[i]
		a.Stats.Overflows.Add(1)
		if ov.Overflow.Alert == nil {
			continue
		}
		keep, err := g.rules.PostOverflow(ov)
		if err != nil {
			a.log.WithError(err).WithField("scenario", ov.GetScenario()).Warn("postoverflow failed: keeping the alert")
			keep = true
		}
		if !keep {
			a.Stats.Dropped.Add(1)
			a.log.WithFields(log.Fields{"scenario": ov.GetScenario(), "source": ov.GetValue(), "reason": ov.WhitelistReason}).Info("overflow whitelisted")
			continue
		}
		// As upstream: a simulated scenario's alert goes to the LAPI
		// marked, which stores its decisions as simulated and never
		// serves them to bouncers.
		if a.cfg.Rules.IsSimulated(ov.Overflow.Alert.Scenario) {
			ov.Overflow.Alert.Simulated = true
		}
		a.log.WithFields(log.Fields{"scenario": ov.GetScenario(), "source": ov.GetValue(), "events": ov.Overflow.Alert.EventsCount,
			"simulated": ov.Overflow.Alert.Simulated}).Info("alert")
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

// addSourceRuns adds a batch's per-source counts to the totals, and to
// Stats: once per batch, not per line.
func (a *Agent) addSourceRuns(runs []sourceRun) {
	var read, parsed, unparsed, whitelisted int64
	for _, r := range runs {
		read += r.read
		parsed += r.parsed
		unparsed += r.unparsed
		whitelisted += r.whitelisted
	}
	a.Stats.Lines.Add(read)
	a.Stats.Parsed.Add(parsed)
	a.Stats.Unparsed.Add(unparsed)
	a.Stats.Whitelisted.Add(whitelisted)
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

// Engine is the agent's current bucket engine, for its counters
// (ScenarioStats); a reload replaces it.
func (a *Agent) Engine() *leakybucket.Engine { return a.gen.Load().engine }

// Rules are the rules the agent runs now; a reload replaces them.
func (a *Agent) Rules() *ruleset.Ruleset { return a.gen.Load().rules }

// switchTo makes req's generation the pourer's: the buckets of unchanged
// scenarios move to its engine, and the old rules are released (no worker
// uses them any more: every batch parsed with them was poured).
func (a *Agent) switchTo(old *generation, req *reloadReq) *generation {
	kept, buckets := req.gen.engine.Adopt(old.engine)
	a.gen.Store(req.gen)
	if old.rules != req.gen.rules {
		if err := old.rules.Close(); err != nil {
			a.log.WithError(err).Warn("releasing the previous rules")
		}
	}
	req.done <- ReloadResult{KeptScenarios: kept, KeptBuckets: buckets}
	return req.gen
}

// Reload switches the running agent to rules, between two batches of
// lines: lines read before it are parsed and poured with the old rules,
// lines after it with the new ones; the buckets of scenarios whose
// Identity did not change are kept. Then it stops the sources in remove
// and starts those in add. The agent owns rules from then on (it closes
// them when they are replaced). It fails only when the agent is not
// running; the caller has checked rules and sources already. bucketLimit
// is the new cap on each scenario's live buckets (0 for none).
func (a *Agent) Reload(ctx context.Context, rules *ruleset.Ruleset, bucketLimit int, add, remove []acquisition.Source) (ReloadResult, error) {
	if a.cfg.Replay {
		return ReloadResult{}, errors.New("a replay cannot be reloaded")
	}
	engine := rules.NewEngine(false)
	engine.SetLimit(bucketLimit)
	req := &reloadReq{gen: &generation{rules: rules, engine: engine}, done: make(chan ReloadResult, 1)}
	select {
	case a.reloads <- req:
	case <-a.srcs.ended():
		return ReloadResult{}, errors.New("the agent is not running")
	case <-ctx.Done():
		return ReloadResult{}, ctx.Err()
	}
	var res ReloadResult
	select {
	case res = <-req.done:
	case <-a.srcs.ended():
		return ReloadResult{}, errors.New("the agent stopped during the reload")
	case <-ctx.Done():
		return ReloadResult{}, ctx.Err()
	}
	for _, src := range remove {
		a.srcs.remove(src)
	}
	for _, src := range add {
		a.srcs.add(src)
	}
	return res, nil
}
