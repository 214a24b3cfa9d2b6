// Package daemon assembles the crowdsec daemon's agent half from its
// configuration: the rules (agent/ruleset, from the hub folder), the log
// sources (agent/acquisition, from acquis.d or a one-shot DSN), the
// delivery queue to the LAPI (agent/delivery) and the main loop
// (agent/runner). cmd/crowdsec runs it beside the LAPI, or alone with
// -no-api.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/acquisition"
	"github.com/rampart-ips/rampart/agent/delivery"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/leakybucket"
	"github.com/rampart-ips/rampart/agent/parser"
	"github.com/rampart-ips/rampart/agent/ruleset"
	"github.com/rampart-ips/rampart/agent/runner"
	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/usagereport"
	"github.com/rampart-ips/rampart/internal/version"
)

// Options are the command line's say over the configuration.
type Options struct {
	// DSN, when set, replays that source once (time-machine mode)
	// instead of the acquisition files; Labels are its labels (type=...).
	DSN    string
	Labels map[string]string
	// Registry receives the agent's metrics (nil: none).
	Registry prometheus.Registerer
	// DrainTimeout bounds how long a replay waits, once its lines are
	// processed, for the queued alerts to reach the LAPI.
	DrainTimeout time.Duration
	// Started is when the process started, for a replay's timeline (zero:
	// New's call).
	Started time.Time
}

// Agent is an assembled agent, ready to Run.
type Agent struct {
	cfg     *csconfig.Config
	opts    Options
	rules   *ruleset.Ruleset // as loaded by New; the runner owns it once built
	sources []acquisition.Source
	// live are the acquis.d sources by sourceKey, for reloads.
	live   map[string]acquisition.Source
	aopts  acquisition.Options
	pusher *delivery.Pusher
	runner *runner.Agent
	usage  *usagereport.Reporter // nil: usage metrics disabled
	// usageInfo is what the usage reports say the agent runs.
	usageInfo *usageCounts
	client    *apiclient.Client
	log       *log.Entry
	// replayQueue is a replay's own queue directory ("" live).
	replayQueue string
	// newStarted and rulesLoaded are when New began and had the rules,
	// for a replay's timeline.
	newStarted, rulesLoaded time.Time
}

// New loads the rules and the sources and opens the delivery queue. A
// broken rule is an error unless crowdsec_service.skip_broken_rules is set.
func New(cfg *csconfig.Config, opts Options) (_ *Agent, err error) {
	a := &Agent{cfg: cfg, opts: opts, log: log.WithField("component", "agent"), newStarted: time.Now()}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.rules, err = loadRules(cfg, a.log); err != nil {
		return nil, err
	}
	a.rulesLoaded = time.Now()
	var metrics *acquisition.Metrics
	if opts.Registry != nil {
		metrics = acquisition.NewMetrics(opts.Registry)
	}
	aopts := acquisition.Options{StateDir: cfg.Crowdsec.StateDir, Metrics: metrics, Logger: log.WithField("component", "acquisition"),
		MaxBacklogBytes: cfg.Crowdsec.MaxBacklogBytes}
	if d := cfg.Crowdsec.StateSaveInterval; d != nil {
		aopts.SaveInterval = d.Duration
	}
	if d := cfg.Crowdsec.MaxBacklogAge; d != nil {
		aopts.MaxBacklogAge = d.Duration
		if d.Duration == 0 {
			aopts.MaxBacklogAge = -1 // "0": never resume
		}
	}
	aopts.WarmupWindow = warmupWindow(cfg, a.rules)
	a.aopts, a.live = aopts, map[string]acquisition.Source{}
	// datasources counts the sources by kind, for the usage metrics.
	datasources := map[string]int{}
	if opts.DSN != "" {
		src, err := acquisition.FromDSN(opts.DSN, opts.Labels, aopts)
		if err != nil {
			return nil, fmt.Errorf("-dsn %s: %w", opts.DSN, err)
		}
		a.sources = append(a.sources, src)
		scheme, _, _ := strings.Cut(opts.DSN, "://")
		datasources[scheme]++
	} else {
		cfgs, err := acquisition.LoadDir(cfg.Crowdsec.AcquisitionDir)
		if err != nil {
			return nil, err
		}
		for key, c := range sourceKeys(cfgs) {
			// Live sources are retried when they fail, not given up.
			src, err := acquisition.NewSupervised(c, aopts)
			if err != nil {
				return nil, err
			}
			a.sources = append(a.sources, src)
			a.live[key] = src
			datasources[c.Source]++
		}
		if len(a.sources) == 0 {
			// The LAPI beside it is useful without local logs (manual
			// decisions, blocklists, remote agents): idle and say so.
			a.log.WithField("acquisition_dir", cfg.Crowdsec.AcquisitionDir).
				Warn("no log source: the agent reads nothing until a [[source]] is added to a .toml file there (cscli setup finds the services this host runs)")
		}
	}
	client, err := lapiClient(cfg, a.rules)
	if err != nil {
		return nil, err
	}
	a.client = client
	// The decision helpers of the rules ask the LAPI as this machine.
	a.rules.Helpers.SetDecisionCounter(client)
	queueDir := cfg.Crowdsec.AlertQueueDir
	if opts.DSN != "" {
		// A replay runs beside the service, which holds alert_queue_dir
		// locked: it queues in a directory of its own, removed at exit,
		// and waits for delivery before exiting (drain).
		if queueDir, err = os.MkdirTemp("", "crowdsec-replay-queue-"); err != nil {
			return nil, fmt.Errorf("creating the replay's alert queue: %w", err)
		}
		a.replayQueue = queueDir
	}
	dcfg := delivery.Config{QueueDir: queueDir, MaxQueueAlerts: cfg.Crowdsec.AlertQueueMaxAlerts}
	if opts.DSN != "" {
		// A replay has no live traffic to protect and may lose nothing: a
		// full queue holds the reading back rather than dropping alerts,
		// for as long as the replay would wait for delivery at its end.
		dcfg.Ephemeral, dcfg.WaitForRoom = true, a.drainTimeout()
		// Alerts come by thousands a second: full batches spare both
		// ends per-request work (the LAPI commits once per batch, and
		// rewrites the index pages it touched each time).
		dcfg.BatchSize, dcfg.FullBatches = replayBatchSize, true
	}
	if a.pusher, err = delivery.New(dcfg,
		client, log.WithField("component", "delivery")); err != nil {
		return nil, err
	}
	a.runner, err = runner.New(runner.Config{Rules: a.rules, Sources: a.sources, Sink: a.pusher,
		Workers: cfg.Crowdsec.ParserRoutines, Replay: opts.DSN != "", BucketLimit: bucketLimit(cfg), Logger: a.log})
	if err != nil {
		return nil, err
	}
	if iv := cfg.Crowdsec.UsageMetricsInterval; iv == nil || iv.Duration > 0 {
		interval := csconfig.DefaultUsageMetricsInterval
		if iv != nil {
			interval = iv.Duration
		}
		a.usage, a.usageInfo = newUsageReporter(client, interval, opts.DSN != "", a.runner.SourceStats, datasources,
			usageHubItems(a.rules), time.Now(), log.WithField("component", "usage-metrics"))
	}
	if opts.Registry != nil {
		if err := a.pusher.Metrics().Register(opts.Registry); err != nil {
			return nil, fmt.Errorf("registering delivery metrics: %w", err)
		}
		if err := registerStats(opts.Registry, &a.runner.Stats); err != nil {
			return nil, fmt.Errorf("registering agent metrics: %w", err)
		}
		ec := newEngineCollector(nil, nil)
		ec.current = func() (*parser.Pipeline, *leakybucket.Engine) { return a.runner.Rules().Parsers, a.runner.Engine() }
		if err := opts.Registry.Register(ec); err != nil {
			return nil, fmt.Errorf("registering parser and bucket metrics: %w", err)
		}
	}
	return a, nil
}

// registerStats exposes the runner's counters.
func registerStats(reg prometheus.Registerer, st *runner.Stats) error {
	lines := func(result string, v interface{ Load() int64 }) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rampart_agent_lines_total",
			Help: "Log lines the agent processed, by outcome.", ConstLabels: prometheus.Labels{"result": result}},
			func() float64 { return float64(v.Load()) })
	}
	for _, c := range []prometheus.Collector{
		lines("parsed", &st.Parsed), lines("unparsed", &st.Unparsed), lines("whitelisted", &st.Whitelisted),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rampart_agent_alerts_total", Help: "Alerts the agent raised."},
			func() float64 { return float64(st.Alerts.Load()) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Check loads what New would, without opening the alert queue or starting
// anything: the rules and the log sources (crowdsec -t).
func Check(cfg *csconfig.Config) (rules, sources int, err error) {
	rs, err := loadRules(cfg, log.WithField("component", "agent"))
	if err != nil {
		return 0, 0, err
	}
	defer rs.Close()
	cfgs, err := acquisition.LoadDir(cfg.Crowdsec.AcquisitionDir)
	if err != nil {
		return 0, 0, err
	}
	for _, c := range cfgs {
		if _, err := acquisition.New(c, acquisition.Options{StateDir: cfg.Crowdsec.StateDir}); err != nil {
			return 0, 0, err
		}
	}
	return len(rs.Scenarios), len(cfgs), nil
}

// loadRules loads what the configuration enables (hub.Hub.Enabled, the
// resolver cscli lists with): every item file under config_dir's
// parsers/, scenarios/, postoverflows/, collections/ and contexts/, plus
// the collections crowdsec_service.collections names, from the hub folder.
func loadRules(cfg *csconfig.Config, l *log.Entry) (*ruleset.Ruleset, error) {
	start := time.Now()
	h, err := hub.OpenHub(cfg.ConfigPaths.HubDir)
	if err != nil {
		return nil, fmt.Errorf("opening the rules folder (config_paths.hub_dir): %w", err)
	}
	enabled := h.Enabled(cfg.ConfigPaths.ConfigDir, cfg.Crowdsec.Collections)
	policy := ruleset.FailFast
	if cfg.Crowdsec.SkipBrokenRules {
		policy = ruleset.SkipBroken
	}
	rs, err := ruleset.Load(h, ruleset.Spec{Enabled: enabled, Policy: policy, DataDir: filepath.Join(cfg.ConfigPaths.HubDir, "data")})
	if err != nil {
		return nil, fmt.Errorf("loading rules (set crowdsec_service.skip_broken_rules to start without a broken one): %w", err)
	}
	rs.Simulated = cfg.Simulation.IsSimulated
	for _, e := range rs.Skipped {
		l.WithError(e).Error("rule skipped")
	}
	for _, w := range enabled.Warnings {
		l.Warn(w)
	}
	for _, st := range enabled.Items {
		if st.Tainted || st.Local {
			l.WithFields(log.Fields{"item": st.Kind + "/" + st.Name, "file": st.Path, "status": st.Status()}).Info("loading a local or modified rule")
		}
	}
	simulated := 0
	for _, sc := range rs.Items.Scenarios {
		if rs.IsSimulated(sc) {
			simulated++
		}
	}
	// took and the grok figures (its share of took) tell where a slow
	// start goes: grok compilation is most of it with a large hub.
	gs := rs.Grok.Stats()
	l.WithFields(log.Fields{"collections": len(rs.Items.Collections), "parsers": len(rs.Items.Parsers), "scenarios": len(rs.Scenarios),
		"postoverflows": len(rs.Items.PostOverflows), "simulated": simulated, "skipped": len(rs.Skipped),
		"took": time.Since(start).Round(time.Millisecond), "grok_compiled": gs.Compiled, "grok_took": gs.Took.Round(time.Millisecond)}).Info("rules loaded")
	return rs, nil
}

// lapiClient reads the machine credentials the agent logs in with.
func lapiClient(cfg *csconfig.Config, rs *ruleset.Ruleset) (*apiclient.Client, error) {
	creds, err := csconfig.LoadCredentials(cfg.API.Client.CredentialsPath)
	if err != nil {
		return nil, fmt.Errorf("machine credentials (create them with `cscli machines add --auto` on the LAPI's host, or `cscli lapi register --url` here for a LAPI on another host): %w", err)
	}
	ac, err := cfg.LAPIClient(creds)
	if err != nil {
		return nil, err
	}
	ac.UserAgent, ac.Scenarios = "crowdsec/"+version.Version+" (Rampart)", rs.Items.Scenarios
	// A LAPI on this host gets its alerts plain: gzip would cost both
	// processes CPU (as much as encoding the alerts) for no gain.
	ac.Uncompressed = apiclient.LocalAll(creds.LAPIURLs())
	return apiclient.New(ac)
}

// Run runs the agent until ctx ends or, replaying, until every line is
// processed and its alerts delivered (or DrainTimeout passed).
func (a *Agent) Run(ctx context.Context) error {
	pctx, stopPusher := context.WithCancel(context.WithoutCancel(ctx))
	uctx, stopUsage := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUsage()
	var wg sync.WaitGroup
	var perr error
	wg.Go(func() { perr = a.pusher.Run(pctx) })
	if a.usage != nil {
		// Stopped once the runner is done, so that its last report holds
		// every line; a replay's goes while its last alerts are
		// delivered, not after.
		wg.Go(func() { a.usage.Run(uctx) })
	}
	rctx, stopRunner := context.WithCancelCause(ctx)
	defer stopRunner(nil)
	if a.opts.DSN != "" {
		// A stalled queue takes no more alerts: reading on would only
		// raise alerts to discard.
		go func() {
			select {
			case <-a.pusher.Stalled():
				stopRunner(delivery.ErrStalled)
			case <-rctx.Done():
			}
		}()
	}
	err := a.runner.Run(rctx)
	// No more alerts come: a replay's partial last batch goes now
	// (delivery.Config.FullBatches), whatever ended the run.
	a.pusher.Flush()
	stopUsage()
	switch {
	case a.opts.DSN == "":
	case a.stalled() && ctx.Err() == nil:
		// The runner may have ended by itself meanwhile: the queue says.
		err = errors.Join(err, a.undelivered(ctx, "the replay stopped once its queue was full"))
	case err == nil:
		err = a.drain(ctx)
	}
	drained := time.Now()
	stopPusher()
	wg.Wait()
	if a.opts.DSN != "" {
		a.replayTimeline(drained)
	}
	a.client.CloseIdleConnections()
	if perr != nil && !errors.Is(perr, context.Canceled) {
		err = errors.Join(err, perr)
	}
	st := &a.runner.Stats
	a.log.WithFields(log.Fields{"lines": st.Lines.Load(), "parsed": st.Parsed.Load(), "unparsed": st.Unparsed.Load(),
		"whitelisted": st.Whitelisted.Load(), "alerts": st.Alerts.Load()}).Info("agent stopped")
	return err
}

// drain waits for a replay's queue to empty, and fails when some of its
// alerts did not reach the LAPI: the exit code must tell an administrator
// whether the replay's verdicts are in the LAPI.
func (a *Agent) drain(ctx context.Context) error {
	a.pusher.WaitEmpty(ctx, a.drainTimeout())
	return a.undelivered(ctx, "")
}

// stalled says whether the replay's queue stopped taking alerts.
func (a *Agent) stalled() bool {
	select {
	case <-a.pusher.Stalled():
		return true
	default:
		return false
	}
}

// drainTimeout is Options.DrainTimeout or its default.
func (a *Agent) drainTimeout() time.Duration {
	if a.opts.DrainTimeout > 0 {
		return a.opts.DrainTimeout
	}
	return 30 * time.Second
}

// undelivered reports a replay's alerts that did not reach the LAPI
// (queued still, or never queued: the queue was full and the LAPI took
// nothing), and those the LAPI refused; more says what else happened.
func (a *Agent) undelivered(ctx context.Context, more string) error {
	st := a.pusher.Stats()
	var errs []error
	if lost := st.Queued + int(st.Refused); lost > 0 {
		why := "the replay was interrupted"
		if ctx.Err() == nil {
			why = fmt.Sprintf("the LAPI at %s did not take them within %s", a.client.URL(), a.drainTimeout())
			if st.LastError != "" {
				why += " (last error: " + st.LastError + ")"
			}
		}
		if more != "" {
			why += "; " + more
		}
		errs = append(errs, fmt.Errorf("replay: %d of %d alerts not delivered: %s; they are discarded with the replay's queue, run the replay again once the LAPI answers",
			lost, lost+int(st.Delivered+st.Dropped), why))
	}
	if st.Dropped > 0 {
		errs = append(errs, fmt.Errorf("replay: the LAPI refused %d alerts (see the errors above)", st.Dropped))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	a.log.WithField("alerts", st.Delivered).Info("replay: every alert delivered to the LAPI")
	return nil
}

// Sources is the number of log sources the agent reads.
func (a *Agent) Sources() int { return len(a.sources) }

// Stats are the runner's counters.
func (a *Agent) Stats() *runner.Stats { return &a.runner.Stats }

// Close releases the queue and the rules' resources, and removes a
// replay's queue.
func (a *Agent) Close() {
	if a.pusher != nil {
		if err := a.pusher.Close(); err != nil {
			a.log.WithError(err).Warn("closing the alert queue")
		}
	}
	if a.replayQueue != "" {
		if err := os.RemoveAll(a.replayQueue); err != nil {
			a.log.WithError(err).Warn("removing the replay's alert queue")
		}
	}
	switch {
	case a.runner != nil:
		a.runner.Rules().Close()
	case a.rules != nil:
		a.rules.Close()
	}
}

// ParseLabels reads -label/-type style "key:value" pairs.
func ParseLabels(typ string, pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, ":")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key:value", p)
		}
		out[k] = v
	}
	if typ != "" {
		out["type"] = typ
	}
	if out["type"] == "" {
		return nil, errors.New("-dsn needs -type (e.g. -type syslog) to select the parsers")
	}
	return out, nil
}

// bucketLimit is the cap on each scenario's live buckets.
func bucketLimit(cfg *csconfig.Config) int {
	if n := cfg.Crowdsec.MaxBucketsPerScenario; n != nil {
		return *n
	}
	return csconfig.DefaultMaxBucketsPerScenario
}

// DefaultWarmupWindow caps crowdsec_service.warmup_window when unset.
const DefaultWarmupWindow = 30 * time.Minute

// warmupWindow is how far back file sources read again at start to
// rebuild the buckets: as long as a loaded scenario can keep state, at
// most warmup_window.
func warmupWindow(cfg *csconfig.Config, rules *ruleset.Ruleset) time.Duration {
	limit := DefaultWarmupWindow
	if d := cfg.Crowdsec.WarmupWindow; d != nil {
		limit = d.Duration
	}
	return min(limit, leakybucket.StateWindow(rules.Scenarios))
}

// replayBatchSize is the alerts per POST in a replay (they wait for a
// full batch): about 1 MB of JSON for sshd's, far below the LAPI's body
// limit. The LAPI's cost per POST (a transaction, the index pages it
// rewrites, the request) took a third of its CPU at 100 alerts per POST;
// 500 saved little more than 300 and held more of the agent's heap,
// which its GC settings multiply into RSS.
const replayBatchSize = 300
