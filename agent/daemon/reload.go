package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/acquisition"
	"github.com/rampart-ips/rampart/csconfig"
)

// ReloadSummary says what a reload changed.
type ReloadSummary struct {
	Scenarios, KeptScenarios, KeptBuckets int
	Sources, SourcesAdded, SourcesRemoved int
}

// Reload loads the rules and the log sources again, with the same code
// as New, and switches the running agent to them: the buckets of
// scenarios whose definition is unchanged (leakybucket.Scenario.Identity)
// are kept, sources whose configuration is unchanged keep reading where
// they are, new ones start and removed ones stop. If anything fails to
// load, the agent keeps running exactly as before and the error says
// what is wrong. Settings other than rules and sources (the LAPI client,
// the alert queue, parser_routines) keep their values until a restart.
// Reload and Run's other callers must not call it concurrently.
func (a *Agent) Reload(ctx context.Context, cfg *csconfig.Config) (ReloadSummary, error) {
	if a.opts.DSN != "" {
		return ReloadSummary{}, errors.New("a replay (-dsn) cannot be reloaded")
	}
	rules, err := loadRules(cfg, a.log)
	if err != nil {
		return ReloadSummary{}, err
	}
	rules.Helpers.SetDecisionCounter(a.client)
	handed := false
	defer func() {
		if !handed {
			rules.Close()
		}
	}()
	cfgs, err := acquisition.LoadDir(cfg.Crowdsec.AcquisitionDir)
	if err != nil {
		return ReloadSummary{}, err
	}
	if len(cfgs) == 0 {
		a.log.WithField("dir", cfg.Crowdsec.AcquisitionDir).
			Warn("no log source: the agent reads nothing until a [[source]] is added to a .toml file there (cscli setup finds the services this host runs)")
	}
	// A source added by a reload does not warm up: one with the patterns
	// of a source it replaces would pour again lines whose buckets the
	// reload kept.
	aopts := a.aopts
	aopts.WarmupWindow = 0
	next := map[string]acquisition.Source{}
	var add []acquisition.Source
	for key, c := range sourceKeys(cfgs) {
		if src, ok := a.live[key]; ok {
			next[key] = src
			continue
		}
		src, err := acquisition.NewSupervised(c, aopts)
		if err != nil {
			return ReloadSummary{}, err
		}
		next[key] = src
		add = append(add, src)
	}
	var remove []acquisition.Source
	for key, src := range a.live {
		if _, ok := next[key]; !ok {
			remove = append(remove, src)
		}
	}
	handed = true
	res, err := a.runner.Reload(ctx, rules, bucketLimit(cfg), add, remove)
	if err != nil {
		return ReloadSummary{}, err
	}
	a.live, a.cfg = next, cfg
	if a.usageInfo != nil {
		datasources := map[string]int{}
		for _, c := range cfgs {
			datasources[c.Source]++
		}
		a.usageInfo.setInfo(datasources, usageHubItems(rules))
	}
	sum := ReloadSummary{Scenarios: len(rules.Scenarios), KeptScenarios: res.KeptScenarios, KeptBuckets: res.KeptBuckets,
		Sources: len(next), SourcesAdded: len(add), SourcesRemoved: len(remove)}
	a.log.WithFields(log.Fields{"scenarios": sum.Scenarios, "kept_scenarios": sum.KeptScenarios, "kept_buckets": sum.KeptBuckets,
		"sources": sum.Sources, "sources_added": sum.SourcesAdded, "sources_removed": sum.SourcesRemoved}).Info("rules and log sources reloaded")
	return sum, nil
}

// sourceKeys yields each source configuration with a key that is the same
// across reloads exactly when the configuration is: its settings, not
// where in acquis.d it is written. Identical tables get #2, #3...
func sourceKeys(cfgs []acquisition.Config) iter.Seq2[string, acquisition.Config] {
	return func(yield func(string, acquisition.Config) bool) {
		seen := map[string]int{}
		for _, c := range cfgs {
			k := c
			k.File, k.Line = "", 0
			b, err := json.Marshal(k)
			key := string(b)
			if err != nil {
				key = fmt.Sprintf("%#v", k)
			}
			seen[key]++
			if n := seen[key]; n > 1 {
				key += "#" + strconv.Itoa(n)
			}
			if !yield(key, c) {
				return
			}
		}
	}
}
