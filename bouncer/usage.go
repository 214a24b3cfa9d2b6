package bouncer

import (
	"context"
	"fmt"
	"slices"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/firewall"
	"github.com/rampart-ips/rampart/internal/usagereport"
	"github.com/rampart-ips/rampart/models"
)

// usageType is the remediation component type upstream's bouncer reports;
// cscli and the console group bouncers by it.
const usageType = "crowdsec-firewall-bouncer"

const (
	defaultMetricsInterval = 15 * time.Minute
	// A report is a row the LAPI keeps for a week: anything shorter than a
	// minute only fills its database.
	minMetricsInterval = time.Minute
)

// counterSnapshot is what the rule counters held at one moment, per
// family. processed is nil when the backend does not count it.
type counterSnapshot struct {
	dropped, processed map[firewall.Family]firewall.Counter
}

// usagePusher builds the bouncer's usage reports, which rep sends: active
// bans as gauges, dropped and processed traffic as deltas since the last
// report the LAPI accepted (prev moves only then).
type usagePusher struct {
	b    *Bouncer
	log  *log.Entry
	rep  *usagereport.Reporter
	prev *counterSnapshot // counters at the last accepted report; nil = none read yet
}

func newUsagePusher(b *Bouncer, interval time.Duration, start time.Time) *usagePusher {
	u := &usagePusher{b: b, log: b.log.WithField("task", "usage-metrics")}
	u.rep = usagereport.New(usagereport.Config{Client: b.client, Interval: interval, Build: u.build, Start: start, Log: u.log})
	return u
}

// baseline reads the counters the first window starts from. The kernel
// objects outlive restarts, so their counters hold what earlier runs
// already reported; without a baseline they would be reported again.
func (u *usagePusher) baseline(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, usagereport.SendTimeout)
	defer cancel()
	u.rep.StartWindow(u.b.now())
	snap, err := u.read(ctx)
	if err != nil {
		u.log.WithError(err).Warn("reading the rule counters failed; the first usage report will hold their whole value")
		return
	}
	u.prev = snap
}

func (u *usagePusher) read(ctx context.Context) (*counterSnapshot, error) {
	if tc, ok := u.b.fw.(firewall.TrafficCounter); ok {
		d, p, err := tc.TrafficCounters(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading %s traffic counters: %w", u.b.fw.Name(), err)
		}
		return &counterSnapshot{dropped: d, processed: p}, nil
	}
	d, err := u.b.fw.Counters(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading %s drop counters: %w", u.b.fw.Name(), err)
	}
	return &counterSnapshot{dropped: d}, nil
}

// build makes one report. Counters that cannot be read leave the bans
// reported and the baseline where it is, so the next readable window
// carries their whole delta.
func (u *usagePusher) build(ctx context.Context, w usagereport.Window) (*models.UsageMetrics, func()) {
	u.b.mu.Lock()
	n4, n6 := u.b.st.n4, u.b.st.n6
	u.b.mu.Unlock()
	cur, err := u.read(ctx)
	if err != nil {
		u.log.WithError(err).Warn("usage metrics without traffic counters")
	}
	body := &models.UsageMetrics{RemediationComponents: []*models.RemediationComponentUsage{{
		Type:      usageType,
		BaseUsage: w.Base(u.items(n4, n6, cur)),
	}}}
	return body, func() {
		if cur != nil {
			u.prev = cur
		}
	}
}

// items builds the report: bans per family as gauges, dropped and processed
// packets and bytes per family as deltas against the baseline.
func (u *usagePusher) items(n4, n6 int, cur *counterSnapshot) []*models.UsageItem {
	var out []*models.UsageItem
	if !u.b.cfg.DisableIPv4 {
		out = append(out, usageItem(models.UsageActiveDecisions, models.UsageUnitIP, firewall.IPv4, float64(n4)))
	}
	if !u.b.cfg.DisableIPv6 {
		out = append(out, usageItem(models.UsageActiveDecisions, models.UsageUnitIP, firewall.IPv6, float64(n6)))
	}
	if cur == nil {
		return out
	}
	var prev counterSnapshot
	if u.prev != nil {
		prev = *u.prev
	}
	out = append(out, deltaItems(models.UsageDropped, cur.dropped, prev.dropped)...)
	if cur.processed != nil {
		out = append(out, deltaItems(models.UsageProcessed, cur.processed, prev.processed)...)
	}
	return out
}

func usageItem(name, unit string, f firewall.Family, v float64) *models.UsageItem {
	return &models.UsageItem{Name: name, Unit: unit, Value: v, Labels: map[string]string{"ip_type": familyLabel(f)}}
}

// deltaItems reports, per family, the bytes and packets a counter moved
// since prev (families in a stable order).
func deltaItems(name string, cur, prev map[firewall.Family]firewall.Counter) []*models.UsageItem {
	fams := make([]firewall.Family, 0, len(cur))
	for f := range cur {
		fams = append(fams, f)
	}
	slices.Sort(fams)
	out := make([]*models.UsageItem, 0, 2*len(fams))
	for _, f := range fams {
		d := counterDelta(cur[f], prev[f])
		out = append(out,
			usageItem(name, models.UsageUnitByte, f, float64(d.Bytes)),
			usageItem(name, models.UsageUnitPacket, f, float64(d.Packets)))
	}
	return out
}

// counterDelta is what a counter moved since prev. A counter that went
// backwards was recreated (a repair after a flush, a reboot), so all of its
// current value is new; what the old one counted after prev is lost.
func counterDelta(cur, prev firewall.Counter) firewall.Counter {
	if cur.Packets < prev.Packets || cur.Bytes < prev.Bytes {
		return cur
	}
	return firewall.Counter{Packets: cur.Packets - prev.Packets, Bytes: cur.Bytes - prev.Bytes}
}
