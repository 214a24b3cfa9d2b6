package daemon

import (
	"context"
	"sync"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/ruleset"
	"github.com/rampart-ips/rampart/agent/runner"
	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/internal/usagereport"
	"github.com/rampart-ips/rampart/models"
)

// usageCounts builds the agent's usage reports (a log_processors item):
// what it is (datasources, hub items) and, per log source, the lines read,
// parsed, unparsed and whitelisted since the last report the LAPI accepted
// (prev moves only then).
type usageCounts struct {
	stats func() []runner.SourceStat
	// mu guards datasources and hubItems, which a reload replaces.
	mu          sync.Mutex
	datasources map[string]int
	hubItems    map[string][]models.UsageHubItem
	prev        map[string]float64 // cumulative values at the last accepted report
}

// setInfo replaces what the agent runs (after a reload).
func (c *usageCounts) setInfo(datasources map[string]int, hubItems map[string][]models.UsageHubItem) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.datasources, c.hubItems = datasources, hubItems
}

// newUsageReporter reports every interval; a one-shot -dsn run (replay)
// reports once, when it ends.
func newUsageReporter(client *apiclient.Client, interval time.Duration, replay bool, stats func() []runner.SourceStat,
	datasources map[string]int, hubItems map[string][]models.UsageHubItem, start time.Time, l *log.Entry) (*usagereport.Reporter, *usageCounts) {
	c := &usageCounts{stats: stats, datasources: datasources, hubItems: hubItems, prev: map[string]float64{}}
	if replay {
		interval = 0
	}
	return usagereport.New(usagereport.Config{Client: client, Interval: interval, Build: c.build, Start: start, Log: l}), c
}

// build makes one report with the counts that moved since the baseline.
func (c *usageCounts) build(_ context.Context, w usagereport.Window) (*models.UsageMetrics, func()) {
	cur := usageCounters(c.stats())
	items := make([]*models.UsageItem, 0, len(cur))
	for _, uc := range cur {
		d := uc.value - c.prev[uc.key]
		if d < 0 {
			d = uc.value // counters only grow; a smaller one is a new one
		}
		if d == 0 {
			continue
		}
		it := uc.item
		it.Value = d
		items = append(items, &it)
	}
	c.mu.Lock()
	hubItems, datasources := c.hubItems, c.datasources
	c.mu.Unlock()
	body := &models.UsageMetrics{LogProcessors: []*models.LogProcessorUsage{{
		BaseUsage:   w.Base(items),
		HubItems:    hubItems,
		Datasources: datasources,
	}}}
	return body, func() {
		for _, uc := range cur {
			c.prev[uc.key] = uc.value
		}
	}
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
// the hub index has them (with the version loaded), "tainted" when the
// file is no published version, "custom" for local files.
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
			if st, ok := rs.State(kind, ref); ok {
				// as the daemon loaded it: the file's own version, and
				// upstream's tainted for a modified hub item
				switch {
				case st.Tainted:
					it.Version, it.Status = st.Latest, "tainted"
				case !st.Local:
					it.Version, it.Status = st.Version, "official"
				}
			} else if info, ok := rs.Hub.Item(kind, ref); ok {
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
