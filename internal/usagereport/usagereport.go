// Package usagereport sends a component's usage metrics to the LAPI
// (POST /v1/usage-metrics, through apiclient), by one rule for the agent
// and the bouncer: a report at start, every interval and at stop.
//
// Each report covers what moved since the last report the LAPI accepted:
// the component's baseline, and the window's start, move only once the
// LAPI took a report, so an outage loses nothing. A failed report is
// retried with backoff, sooner than the interval, so the LAPI hears from
// the component soon after it is back. A LAPI without the route (404, one
// older than usage metrics) is said once and offered a report every
// interval in case it is upgraded.
package usagereport

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/internal/backoff"
	"github.com/rampart-ips/rampart/internal/version"
	"github.com/rampart-ips/rampart/models"
)

const (
	// SendTimeout bounds one report.
	SendTimeout = 10 * time.Second
	// FinalTimeout bounds the last report, sent while the component stops:
	// a LAPI that does not answer must not hold the shutdown up.
	FinalTimeout = 2 * time.Second
	// DefaultRetryMin is the first delay after a failed report; it doubles
	// up to the interval.
	DefaultRetryMin = 10 * time.Second
)

// Window is what one report covers, [From, To] in Unix seconds, and what
// every report says about its sender.
type Window struct {
	From, To int64
	Version  string
	OS       models.UsageOS
	Startup  int64 // Unix seconds the component started
}

// Base is the part of a report every component fills the same way: who
// sends it and one window holding items.
func (w Window) Base(items []*models.UsageItem) models.BaseUsage {
	return models.NewBaseUsage(w.Version, &w.OS, w.Startup, max(w.To-w.From, 0), w.To, items)
}

// Build makes the report of window w: the component's counters as they
// moved since its baseline. commit moves the baseline to what the body
// counted; it is called only once the LAPI accepted the body, and nil
// means nothing to move. Build and commit run on one goroutine at a time.
type Build func(ctx context.Context, w Window) (body *models.UsageMetrics, commit func())

// Config is what a Reporter needs. Its fields may be changed until Run.
type Config struct {
	Client *apiclient.Client
	// Interval between reports; 0 sends only the last one, at stop (a
	// one-shot run).
	Interval time.Duration
	// RetryMin is the first delay after a failure (DefaultRetryMin if 0).
	RetryMin time.Duration
	Build    Build
	// Start is when the component started: the startup timestamp and the
	// first window's start.
	Start time.Time
	Log   *log.Entry
}

// Reporter sends one component's reports. Run's goroutine owns it; Sent
// and Failed may be read from anywhere.
type Reporter struct {
	Config

	version   string
	os        models.UsageOS
	from      int64 // Unix seconds the next window starts at
	warned404 bool
	failing   bool
	sent      atomic.Int64
	failed    atomic.Int64
}

// New makes a reporter; it sends nothing until Run or Push.
func New(cfg Config) *Reporter {
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.Log == nil {
		cfg.Log = log.WithField("component", "usage-metrics")
	}
	name, ver := version.DetectOS()
	return &Reporter{Config: cfg, version: version.Version, os: models.UsageOS{Name: name, Version: ver}, from: cfg.Start.Unix()}
}

// StartWindow starts the first window at t instead of Start, for a
// component that reads its baseline after it started.
func (r *Reporter) StartWindow(t time.Time) { r.from = t.Unix() }

// Sent counts the reports the LAPI accepted.
func (r *Reporter) Sent() int64 { return r.sent.Load() }

// Failed counts the reports that failed, a 404 included.
func (r *Reporter) Failed() int64 { return r.failed.Load() }

// Run reports at once, then every interval (sooner after a failure),
// and a last time once ctx ended. With no interval, only the last one.
func (r *Reporter) Run(ctx context.Context) {
	if r.Interval > 0 {
		r.loop(ctx)
	} else {
		<-ctx.Done()
	}
	// ctx is over: the last report gets a context of its own.
	if err := r.Push(context.WithoutCancel(ctx), FinalTimeout); err != nil && !is404(err) {
		r.Log.WithError(err).Warn("last usage report failed: what moved since the previous accepted one is not reported")
	}
}

func (r *Reporter) loop(ctx context.Context) {
	retry := backoff.Backoff{Min: min(r.RetryMin, r.Interval), Max: r.Interval}
	t := time.NewTimer(0) // the first report goes at once
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.retryEarly(ctx, r.pushInLoop(ctx)) {
			t.Reset(min(retry.Next(), r.Interval))
		} else {
			retry.Reset()
			t.Reset(r.Interval)
		}
	}
}

// pushInLoop sends an interval's report. A stop does not cut it short at
// once: the LAPI may already have stored it, and a client that saw an
// error would send the same counts again in the last report. It gets
// FinalTimeout after the stop to finish, as the last report does.
func (r *Reporter) pushInLoop(ctx context.Context) error {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(FinalTimeout, cancel) })
	defer stop()
	return r.Push(rctx, SendTimeout)
}

// Push builds and sends one report within timeout; the baseline moves
// only when the LAPI accepted it.
func (r *Reporter) Push(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	w := Window{From: r.from, To: max(time.Now().Unix(), r.from), Version: r.version, OS: r.os, Startup: r.Start.Unix()}
	body, commit := r.Build(ctx, w)
	if err := r.Client.UsageMetrics(ctx, body); err != nil {
		r.failed.Add(1)
		return err
	}
	r.sent.Add(1)
	if commit != nil {
		commit()
	}
	r.from = w.To
	r.Log.WithFields(log.Fields{"items": countItems(body), "window_seconds": w.To - w.From}).Debug("usage metrics sent")
	return nil
}

// retryEarly logs the outcome of a report and says whether to retry
// before the interval: after a failure, but neither after a 404 nor when
// stopping (the last report follows).
func (r *Reporter) retryEarly(ctx context.Context, err error) bool {
	switch {
	case err == nil:
		if r.failing {
			r.Log.Info("usage metrics accepted again; the report covered the failed ones")
			r.failing = false
		}
		return false
	case is404(err):
		if !r.warned404 {
			r.Log.WithError(err).Warn("LAPI does not accept usage metrics (older LAPI?)")
			r.warned404 = true
		}
		return false
	case ctx.Err() != nil:
		return false
	case !r.failing:
		r.failing = true
		r.Log.WithError(err).Warn("sending usage metrics failed; retrying, the next report covers this one")
	default:
		r.Log.WithError(err).Debug("sending usage metrics failed again")
	}
	return true
}

func is404(err error) bool {
	var apiErr *apiclient.APIError
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound
}

func countItems(body *models.UsageMetrics) int {
	n := 0
	add := func(b models.BaseUsage) {
		for _, w := range b.Metrics {
			n += len(w.Items)
		}
	}
	for _, c := range body.LogProcessors {
		add(c.BaseUsage)
	}
	for _, c := range body.RemediationComponents {
		add(c.BaseUsage)
	}
	return n
}
