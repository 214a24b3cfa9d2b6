// Package usage turns the usage-metrics reports that bouncers and agents
// push to the LAPI (POST /v1/usage-metrics) into the totals cscli and the
// dashboard show: counters arrive as per-window deltas and are summed,
// gauges (active decisions) keep their latest value.
package usage

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// Value is one metric total for one label set.
type Value struct {
	Name   string
	Unit   string
	Labels map[string]string
	Value  float64
}

// Component is everything one bouncer or agent reported.
type Component struct {
	Name         string // bouncer name or machine id
	Type         string // bouncer type, empty for agents
	Version      string
	OS           string
	FeatureFlags []string
	Since        time.Time // start of the oldest window kept
	LastReport   time.Time // when the LAPI received the latest report
	Datasources  map[string]int
	HubItems     map[string][]models.UsageHubItem
	Values       []Value // sorted by name, unit, labels
	Skipped      int     // stored reports that could not be read
}

// gauge says whether a metric is absolute rather than a delta.
func gauge(name string) bool { return name == models.UsageActiveDecisions }

func labelKey(name, unit string, labels map[string]string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte(0)
	b.WriteString(unit)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(labels[k])
	}
	return b.String()
}

// Summarize groups reports (oldest first, as the store returns them) by
// component, sorted by name.
func Summarize(reports []store.UsageReport) []*Component {
	byName := map[string]*Component{}
	values := map[string]map[string]*Value{}
	// A gauge's latest window replaces all its label sets, so a label set
	// that disappeared (an origin with no bans left) reads as gone.
	gaugeWindow := map[string]int64{}
	for _, r := range reports {
		c := byName[r.By]
		if c == nil {
			c = &Component{Name: r.By}
			byName[r.By] = c
			values[r.By] = map[string]*Value{}
		}
		var item struct {
			models.BaseUsage
			Type        string                           `json:"type"`
			HubItems    map[string][]models.UsageHubItem `json:"hub_items"`
			Datasources map[string]int                   `json:"datasources"`
		}
		if err := json.Unmarshal([]byte(r.Payload), &item); err != nil {
			c.Skipped++
			continue
		}
		c.LastReport = r.ReceivedAt
		c.Type, c.Version, c.FeatureFlags = item.Type, item.Version, item.FeatureFlags
		if item.OS != nil {
			c.OS = strings.TrimSpace(item.OS.Name + " " + item.OS.Version)
		}
		if item.HubItems != nil {
			c.HubItems = item.HubItems
		}
		if item.Datasources != nil {
			c.Datasources = item.Datasources
		}
		vals := values[r.By]
		for _, w := range item.Metrics {
			if w == nil {
				continue
			}
			start := time.Unix(w.Meta.UtcNowTimestamp-w.Meta.WindowSizeSeconds, 0)
			if c.Since.IsZero() || start.Before(c.Since) {
				c.Since = start
			}
			for _, it := range w.Items {
				if it == nil || it.Name == "" {
					continue
				}
				k := labelKey(it.Name, it.Unit, it.Labels)
				if gauge(it.Name) {
					gk := r.By + "\x00" + it.Name
					if w.Meta.UtcNowTimestamp > gaugeWindow[gk] {
						gaugeWindow[gk] = w.Meta.UtcNowTimestamp
						for vk, v := range vals {
							if v.Name == it.Name {
								delete(vals, vk)
							}
						}
					}
					vals[k] = &Value{Name: it.Name, Unit: it.Unit, Labels: it.Labels, Value: it.Value}
					continue
				}
				v := vals[k]
				if v == nil {
					v = &Value{Name: it.Name, Unit: it.Unit, Labels: it.Labels}
					vals[k] = v
				}
				v.Value += it.Value
			}
		}
	}
	out := make([]*Component, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		c := byName[name]
		vals := values[name]
		for _, k := range slices.Sorted(maps.Keys(vals)) {
			c.Values = append(c.Values, *vals[k])
		}
		out = append(out, c)
	}
	return out
}

// Total sums the values of a metric and unit whose labels include match.
func (c *Component) Total(name, unit string, match map[string]string) float64 {
	var sum float64
	for _, v := range c.Values {
		if v.Name != name || v.Unit != unit {
			continue
		}
		ok := true
		for k, want := range match {
			if v.Labels[k] != want {
				ok = false
				break
			}
		}
		if ok {
			sum += v.Value
		}
	}
	return sum
}
