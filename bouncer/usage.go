package bouncer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/firewall"
	"github.com/rampart-ips/rampart/internal/version"
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
	usageSendTimeout   = 10 * time.Second
	// The last report is sent while the process stops: a LAPI that does not
	// answer must not hold the shutdown up.
	usageFinalTimeout = 2 * time.Second
)

// counterSnapshot is what the rule counters held at one moment, per
// family. processed is nil when the backend does not count it.
type counterSnapshot struct {
	dropped, processed map[firewall.Family]firewall.Counter
}

// usagePusher sends the bouncer's usage metrics (POST /v1/usage-metrics):
// active bans as gauges, dropped and processed traffic as deltas since the
// last report the LAPI accepted. The baseline only moves on success, so a
// failed report is covered by the next window and nothing is lost.
type usagePusher struct {
	b        *Bouncer
	log      *log.Entry
	interval time.Duration
	startup  int64 // unix seconds, utc_startup_timestamp
	os       models.UsageOS

	prev   *counterSnapshot // counters at the last accepted report; nil = none read yet
	prevAt int64            // unix seconds the current window starts at

	warned404 bool
	failing   bool
	sent      atomic.Int64 // reports the LAPI accepted
	failed    atomic.Int64 // reports that failed
}

func newUsagePusher(b *Bouncer, interval time.Duration, start time.Time) *usagePusher {
	name, ver := version.DetectOS()
	return &usagePusher{b: b, log: b.log.WithField("task", "usage-metrics"), interval: interval,
		startup: start.Unix(), os: models.UsageOS{Name: name, Version: ver}, prevAt: start.Unix()}
}

// baseline reads the counters the first window starts from. The kernel
// objects outlive restarts, so their counters hold what earlier runs
// already reported; without a baseline they would be reported again.
func (u *usagePusher) baseline(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, usageSendTimeout)
	defer cancel()
	u.prevAt = u.b.now().Unix()
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

// run pushes once right away (the LAPI learns the version and OS as soon as
// the bouncer is in sync), then every interval, and once more when ctx ends.
func (u *usagePusher) run(ctx context.Context) {
	u.push(ctx, usageSendTimeout)
	t := time.NewTicker(u.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// ctx is over: the last report gets a context of its own.
			u.push(context.WithoutCancel(ctx), usageFinalTimeout)
			return
		case <-t.C:
			u.push(ctx, usageSendTimeout)
		}
	}
}

// push sends one report; errors are logged, never returned: usage metrics
// must not disturb enforcement.
func (u *usagePusher) push(ctx context.Context, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	now := u.b.now().Unix()
	u.b.mu.Lock()
	n4, n6 := u.b.st.n4, u.b.st.n6
	u.b.mu.Unlock()
	cur, err := u.read(ctx)
	if err != nil {
		// Still report the bans; the counters' baseline stays, so the next
		// readable window carries their whole delta.
		u.log.WithError(err).Warn("usage metrics without traffic counters")
	}
	items := u.items(n4, n6, cur)
	window := max(now-u.prevAt, 0)
	body := &models.UsageMetrics{RemediationComponents: []*models.RemediationComponentUsage{{
		Type:      usageType,
		BaseUsage: models.NewBaseUsage(version.Version, &u.os, u.startup, window, now, items),
	}}}
	err = u.b.client.UsageMetrics(ctx, body)
	if err != nil {
		u.failed.Add(1)
		u.logFailure(err, window)
		return
	}
	u.sent.Add(1)
	u.prevAt = now
	if cur != nil {
		u.prev = cur
	}
	if u.failing {
		u.log.WithField("window_seconds", window).Info("usage metrics accepted again; the window covers the failed reports")
		u.failing = false
	}
	u.log.WithFields(log.Fields{"items": len(items), "window_seconds": window}).Debug("usage metrics sent")
}

func (u *usagePusher) logFailure(err error, window int64) {
	var apiErr *apiclient.APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound {
		// An upstream LAPI from before usage metrics has no such route: say it once,
		// keep trying in case it is upgraded.
		if !u.warned404 {
			u.log.WithError(err).Warn("LAPI does not accept usage metrics (older LAPI?)")
			u.warned404 = true
		}
		return
	}
	u.failing = true
	lg := u.log.WithError(err).WithField("window_seconds", window)
	if errors.Is(err, context.DeadlineExceeded) {
		lg.Warn("timeout sending usage metrics; the next report covers this window")
		return
	}
	lg.Warn("sending usage metrics failed; the next report covers this window")
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
