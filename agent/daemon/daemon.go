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
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	log "github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"

	"github.com/rampart-ips/rampart/agent/acquisition"
	"github.com/rampart-ips/rampart/agent/delivery"
	"github.com/rampart-ips/rampart/agent/hub"
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
}

// Agent is an assembled agent, ready to Run.
type Agent struct {
	cfg     *csconfig.Config
	opts    Options
	rules   *ruleset.Ruleset
	sources []acquisition.Source
	pusher  *delivery.Pusher
	runner  *runner.Agent
	usage   *usagereport.Reporter // nil: usage metrics disabled
	client  *apiclient.Client
	log     *log.Entry
}

// New loads the rules and the sources and opens the delivery queue. A
// broken rule is an error unless crowdsec_service.skip_broken_rules is set.
func New(cfg *csconfig.Config, opts Options) (_ *Agent, err error) {
	a := &Agent{cfg: cfg, opts: opts, log: log.WithField("component", "agent")}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.rules, err = loadRules(cfg, a.log); err != nil {
		return nil, err
	}
	var metrics *acquisition.Metrics
	if opts.Registry != nil {
		metrics = acquisition.NewMetrics(opts.Registry)
	}
	aopts := acquisition.Options{StateDir: cfg.Crowdsec.StateDir, Metrics: metrics, Logger: log.WithField("component", "acquisition")}
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
		for _, c := range cfgs {
			// Live sources are retried when they fail, not given up.
			src, err := acquisition.NewSupervised(c, aopts)
			if err != nil {
				return nil, err
			}
			a.sources = append(a.sources, src)
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
	if a.pusher, err = delivery.New(delivery.Config{QueueDir: cfg.Crowdsec.AlertQueueDir, MaxQueueAlerts: cfg.Crowdsec.AlertQueueMaxAlerts},
		client, log.WithField("component", "delivery")); err != nil {
		return nil, err
	}
	a.runner, err = runner.New(runner.Config{Rules: a.rules, Sources: a.sources, Sink: a.pusher,
		Workers: cfg.Crowdsec.ParserRoutines, Replay: opts.DSN != "", Logger: a.log})
	if err != nil {
		return nil, err
	}
	if iv := cfg.Crowdsec.UsageMetricsInterval; iv == nil || iv.Duration > 0 {
		interval := csconfig.DefaultUsageMetricsInterval
		if iv != nil {
			interval = iv.Duration
		}
		a.usage = newUsageReporter(client, interval, opts.DSN != "", a.runner.SourceStats, datasources,
			usageHubItems(a.rules), time.Now(), log.WithField("component", "usage-metrics"))
	}
	if opts.Registry != nil {
		if err := a.pusher.Metrics().Register(opts.Registry); err != nil {
			return nil, fmt.Errorf("registering delivery metrics: %w", err)
		}
		if err := registerStats(opts.Registry, &a.runner.Stats); err != nil {
			return nil, fmt.Errorf("registering agent metrics: %w", err)
		}
		if err := opts.Registry.Register(newEngineCollector(a.rules.Parsers, a.runner.Engine())); err != nil {
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

// loadRules loads the configured collections plus the installed ones.
func loadRules(cfg *csconfig.Config, l *log.Entry) (*ruleset.Ruleset, error) {
	h, err := hub.OpenHub(cfg.ConfigPaths.HubDir)
	if err != nil {
		return nil, fmt.Errorf("opening the rules folder (config_paths.hub_dir): %w", err)
	}
	cols := append([]string(nil), cfg.Crowdsec.Collections...)
	cols = append(cols, installedCollections(filepath.Join(cfg.ConfigPaths.ConfigDir, "collections"))...)
	policy := ruleset.FailFast
	if cfg.Crowdsec.SkipBrokenRules {
		policy = ruleset.SkipBroken
	}
	rs, err := ruleset.Load(h, ruleset.Spec{Collections: cols, Policy: policy, DataDir: filepath.Join(cfg.ConfigPaths.HubDir, "data")})
	if err != nil {
		return nil, fmt.Errorf("loading rules (set crowdsec_service.skip_broken_rules to start without a broken one): %w", err)
	}
	for _, e := range rs.Skipped {
		l.WithError(e).Error("rule skipped")
	}
	l.WithFields(log.Fields{"collections": len(rs.Items.Collections), "parsers": len(rs.Items.Parsers), "scenarios": len(rs.Scenarios)}).Info("rules loaded")
	return rs, nil
}

// installedCollections names the collections `cscli collections install`
// put in dir (the name: field of each file).
func installedCollections(dir string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	sort.Strings(files)
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var c struct {
			Name string `yaml:"name"`
		}
		if yaml.Unmarshal(data, &c) == nil && c.Name != "" {
			out = append(out, c.Name)
		}
	}
	return out
}

// lapiClient reads the machine credentials the agent logs in with.
func lapiClient(cfg *csconfig.Config, rs *ruleset.Ruleset) (*apiclient.Client, error) {
	creds, err := csconfig.LoadCredentials(cfg.API.Client.CredentialsPath)
	if err != nil {
		return nil, fmt.Errorf("machine credentials (create them with `cscli machines add --auto`): %w", err)
	}
	ac, err := cfg.LAPIClient(creds)
	if err != nil {
		return nil, err
	}
	ac.UserAgent, ac.Scenarios = "crowdsec/"+version.Version+" (Rampart)", rs.Items.Scenarios
	return apiclient.New(ac)
}

// Run runs the agent until ctx ends or, replaying, until every line is
// processed and its alerts delivered (or DrainTimeout passed).
func (a *Agent) Run(ctx context.Context) error {
	pctx, stopPusher := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	var perr error
	wg.Go(func() { perr = a.pusher.Run(pctx) })
	if a.usage != nil {
		// Stopped with the delivery, once the runner is done: its last
		// report then holds every line.
		wg.Go(func() { a.usage.Run(pctx) })
	}
	err := a.runner.Run(ctx)
	if a.opts.DSN != "" && ctx.Err() == nil {
		a.drain(ctx)
	}
	stopPusher()
	wg.Wait()
	a.client.CloseIdleConnections()
	if perr != nil && !errors.Is(perr, context.Canceled) {
		err = errors.Join(err, perr)
	}
	st := &a.runner.Stats
	a.log.WithFields(log.Fields{"lines": st.Lines.Load(), "parsed": st.Parsed.Load(), "unparsed": st.Unparsed.Load(),
		"whitelisted": st.Whitelisted.Load(), "alerts": st.Alerts.Load()}).Info("agent stopped")
	return err
}

// drain waits for the delivery queue to empty after a replay.
func (a *Agent) drain(ctx context.Context) {
	timeout := a.opts.DrainTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if a.pusher.Stats().Queued == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	if q := a.pusher.Stats().Queued; q > 0 {
		a.log.WithField("alerts", q).Warn("replay done but alerts still wait for the LAPI: they stay queued for the next start")
	}
}

// Sources is the number of log sources the agent reads.
func (a *Agent) Sources() int { return len(a.sources) }

// Stats are the runner's counters.
func (a *Agent) Stats() *runner.Stats { return &a.runner.Stats }

// Close releases the queue and the rules' resources.
func (a *Agent) Close() {
	if a.pusher != nil {
		if err := a.pusher.Close(); err != nil {
			a.log.WithError(err).Warn("closing the alert queue")
		}
	}
	if a.rules != nil {
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
