package daemon

import (
	"context"
	"errors"
	"net/http"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/ruleset"
	"github.com/rampart-ips/rampart/agent/runner"
	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/internal/backoff"
	"github.com/rampart-ips/rampart/internal/version"
	"github.com/rampart-ips/rampart/models"
)

const (
	usageSendTimeout = 10 * time.Second
	// The last report is sent while the agent stops: a LAPI that does not
	// answer must not hold the shutdown up.
	usageFinalTimeout = 2 * time.Second
	// A failed report is retried from this delay, doubling up to the
	// interval, so that the first report lands soon after the LAPI comes
	// up rather than one interval later.
	usageRetryMin = 10 * time.Second
)

// usagePusher sends the agent's usage metrics (POST /v1/usage-metrics, a
// log_processors item): what it is (version, OS, datasources, hub items)
// and, per log source, the lines read, parsed and unparsed since the last
// report the LAPI accepted. The baseline only moves on success, so a
// failed report is covered by the next one and nothing is lost.
type usagePusher struct {
	client   *apiclient.Client
	log      *log.Entry
	interval time.Duration
	retryMin time.Duration
	// replay: a one-shot -dsn run reports once, when it ends.
	replay bool
	stats  func() []runner.SourceStat

	version     string
	os          models.UsageOS
	startup     int64
	datasources map[string]int
	hubItems    map[string][]models.UsageHubItem

	// Owned by run's goroutine.
	prev      map[string]float64 // cumulative values at the last accepted report
	prevAt    int64              // unix seconds the current window starts at
	warned404 bool
	failing   bool
}

func newUsagePusher(client *apiclient.Client, interval time.Duration, replay bool, stats func() []runner.SourceStat,
	datasources map[string]int, hubItems map[string][]models.UsageHubItem, start time.Time, l *log.Entry) *usagePusher {
	name, ver := version.DetectOS()
	return &usagePusher{client: client, log: l, interval: interval, retryMin: usageRetryMin, replay: replay, stats: stats,
		version: version.Version, os: models.UsageOS{Name: name, Version: ver}, startup: start.Unix(),
		datasources: datasources, hubItems: hubItems, prev: map[string]float64{}, prevAt: start.Unix()}
}

// run reports at once (live mode), then every interval, retrying sooner
// after a failure, and a last time when ctx ends.
func (u *usagePusher) run(ctx context.Context) {
	if u.replay {
		<-ctx.Done()
	} else {
		retry := backoff.Backoff{Min: u.retryMin, Max: u.interval}
		t := time.NewTimer(0) // the first report goes at once
		defer t.Stop()
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-t.C:
			}
			if u.failed(ctx, u.push(ctx, usageSendTimeout)) {
				t.Reset(min(retry.Next(), u.interval))
			} else {
				t.Reset(u.interval)
				retry.Reset()
			}
		}
	}
	// ctx is over: the last report gets a context of its own.
	if err := u.push(context.WithoutCancel(ctx), usageFinalTimeout); err != nil && !u.is404(err) {
		u.log.WithError(err).Warn("last usage report failed: the lines read since the previous one are not reported")
	}
}

// failed logs the outcome of a report and says whether to retry early.
// A 404 is an older LAPI: said once, then the normal interval.
func (u *usagePusher) failed(ctx context.Context, err error) bool {
	switch {
	case err == nil:
		if u.failing {
			u.log.Info("usage metrics accepted again; the report covered the failed ones")
			u.failing = false
		}
		return false
	case u.is404(err):
		if !u.warned404 {
			u.log.WithError(err).Warn("LAPI does not accept usage metrics (older LAPI?)")
			u.warned404 = true
		}
		return false
	case ctx.Err() != nil:
		return false // stopping: the last report follows
	case !u.failing:
		u.failing = true
		u.log.WithError(err).Warn("sending usage metrics failed; retrying, the next report covers this one")
	default:
		u.log.WithError(err).Debug("sending usage metrics failed again")
	}
	return true
}

func (u *usagePusher) is404(err error) bool {
	var apiErr *apiclient.APIError
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound
}

// push sends one report with the counts since the last accepted one.
func (u *usagePusher) push(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	now := time.Now().Unix()
	cur := usageCounters(u.stats())
	items := make([]*models.UsageItem, 0, len(cur))
	for _, c := range cur {
		d := c.value - u.prev[c.key]
		if d < 0 {
			d = c.value // counters only grow; a smaller one is a new one
		}
		if d == 0 {
			continue
		}
		it := c.item
		it.Value = d
		items = append(items, &it)
	}
	window := max(now-u.prevAt, 0)
	body := &models.UsageMetrics{LogProcessors: []*models.LogProcessorUsage{{
		BaseUsage:   models.NewBaseUsage(u.version, &u.os, u.startup, window, now, items),
		HubItems:    u.hubItems,
		Datasources: u.datasources,
	}}}
	if err := u.client.UsageMetrics(ctx, body); err != nil {
		return err
	}
	for _, c := range cur {
		u.prev[c.key] = c.value
	}
	u.prevAt = now
	u.log.WithFields(log.Fields{"items": len(items), "window_seconds": window}).Debug("usage metrics sent")
	return nil
}

// usageCounter is one cumulative count and the item that reports it.
type usageCounter struct {
	key   string
	value float64
	item  models.UsageItem
}

// usageCounters turns the runner's per-source totals into upstream's
// items: read, parsed, unparsed and whitelisted lines, labelled with the
// datasource kind, the source and its labels.type.
func usageCounters(stats []runner.SourceStat) []usageCounter {
	out := make([]usageCounter, 0, 4*len(stats))
	for _, s := range stats {
		labels := map[string]string{"datasource_type": s.Module, "source": s.Source, "acquis_type": s.Type}
		id := s.Module + "\x00" + s.Source + "\x00" + s.Type
		for _, c := range []struct {
			name string
			v    int64
		}{
			{models.UsageRead, s.Read},
			{models.UsageParsed, s.Parsed},
			{models.UsageUnparsed, s.Unparsed},
			{models.UsageWhitelisted, s.Whitelisted},
		} {
			out = append(out, usageCounter{key: c.name + "\x00" + id, value: float64(c.v),
				item: models.UsageItem{Name: c.name, Unit: models.UsageUnitLine, Labels: labels}})
		}
	}
	return out
}

// usageHubItems lists the rules the agent runs, by kind: "official" when
// the hub index has them (with its version), "custom" for local files.
// Items skipped as broken are left out: the agent does not run them.
func usageHubItems(rs *ruleset.Ruleset) map[string][]models.UsageHubItem {
	skipped := map[string]bool{}
	for _, e := range rs.Skipped {
		skipped[e.Kind+"\x00"+e.Name] = true
	}
	// Every kind is listed, empty or not: an empty list says "none", a
	// missing key would say "unknown".
	kinds := []struct {
		kind string
		refs []string
	}{
		{"collections", rs.Items.Collections},
		{"parsers", rs.Items.Parsers},
		{"scenarios", rs.Items.Scenarios},
		{"postoverflows", rs.Items.PostOverflows},
	}
	out := make(map[string][]models.UsageHubItem, len(kinds))
	for _, k := range kinds {
		kind := k.kind
		items := []models.UsageHubItem{}
		for _, ref := range k.refs {
			it := models.UsageHubItem{Name: ref, Status: "custom"}
			if info, ok := rs.Hub.Item(kind, ref); ok {
				it.Version, it.Status = info.Version, "official"
			} else if _, name, _, err := rs.Hub.Resolve(kind, ref); err == nil {
				it.Name = name
			}
			if skipped[kind+"\x00"+ref] || skipped[kind+"\x00"+it.Name] {
				continue
			}
			items = append(items, it)
		}
		out[kind] = items
	}
	return out
}
