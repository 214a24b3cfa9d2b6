// Package bouncer is the firewall bouncer's engine: it consumes the LAPI's
// decision stream over HTTP (through apiclient, never the server's
// internals) and keeps a firewall.Backend in sync. Its own compact state is
// authoritative; it never reads the kernel's sets back to decide a change,
// never bans the host's own addresses, and never empties the firewall
// because the LAPI is unreachable.
package bouncer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/firewall"
	"github.com/rampart-ips/rampart/internal/backoff"
	"github.com/rampart-ips/rampart/internal/netaddr"
	"github.com/rampart-ips/rampart/models"
)

// Bouncer ties a LAPI client to a firewall backend.
type Bouncer struct {
	cfg     *Config
	fw      firewall.Backend
	client  *apiclient.Client
	log     *log.Entry
	guard   *guard
	metrics *Metrics
	usage   *usagePusher // nil when metrics_interval is 0

	mu       sync.Mutex // serialises state and backend changes
	st       *state
	resync   bool // the kernel may differ from st: Ensure + Replace
	longPoll time.Duration
	follow   time.Duration // the longest follow response the LAPI offers; 0: none
	// noFollowUntil: a follow response's first line was held back (a
	// buffering proxy): long-poll until then.
	noFollowUntil time.Time
	supported     map[string]bool
	repairTick    time.Duration
	now           func() time.Time
	// progressEvery is how often a pending first sync is reported.
	progressEvery time.Duration

	// The stream's position, used by Run's goroutine only: the cursor the
	// LAPI handed over with the last complete response ("" when the LAPI
	// keeps it, as upstream's does), whether the stream may have lost
	// changes (the next pull is a full one), and when the next periodic
	// full pull is due.
	cursor   string
	missed   bool
	nextFull time.Time
}

// errCursorGone: the LAPI cannot build a complete delta from this
// bouncer's cursor any more (410 Gone); only a full pull recovers.
var errCursorGone = errors.New("the LAPI can no longer serve this bouncer's stream cursor")

// New builds a bouncer; it touches neither the network nor the firewall.
func New(cfg *Config, fw firewall.Backend, client *apiclient.Client, m *Metrics) *Bouncer {
	b := &Bouncer{cfg: cfg, fw: fw, client: client, log: log.WithField("component", "bouncer"),
		metrics: m, st: newState(), supported: map[string]bool{},
		repairTick: 250 * time.Millisecond, now: time.Now, progressEvery: startupProgressEvery}
	b.guard = newGuard(cfg.neverBan, b.log)
	for _, t := range cfg.SupportedDecisionsTypes {
		b.supported[strings.ToLower(t)] = true
	}
	m.watchClient(client)
	if iv := cfg.metricsInterval(); iv > 0 {
		b.usage = newUsagePusher(b, iv, b.now())
	}
	return b
}

func (b *Bouncer) filters() url.Values {
	q := url.Values{}
	if len(b.cfg.Scopes) > 0 {
		q.Set("scopes", strings.Join(b.cfg.Scopes, ","))
	}
	if len(b.cfg.Origins) > 0 {
		q.Set("origins", strings.Join(b.cfg.Origins, ","))
	}
	if len(b.cfg.ScenariosContaining) > 0 {
		q.Set("scenarios_containing", strings.Join(b.cfg.ScenariosContaining, ","))
	}
	if len(b.cfg.ScenariosNotContaining) > 0 {
		q.Set("scenarios_not_containing", strings.Join(b.cfg.ScenariosNotContaining, ","))
	}
	return q
}

// Run enforces until ctx ends. ready is called once the first full sync is
// in the kernel. The firewall objects stay in place when Run returns.
func (b *Bouncer) Run(ctx context.Context, ready func()) error {
	if err := b.fw.Ensure(ctx); err != nil {
		return fmt.Errorf("setting up %s: %w", b.fw.Name(), err)
	}
	b.log.WithField("backend", b.fw.Name()).Info("firewall objects in place; existing elements kept until the first sync")
	if b.usage != nil {
		// Before the first sync, so drops while it loads are reported.
		b.usage.baseline(ctx)
	} else {
		b.log.Info("usage metrics disabled (metrics_interval = \"0s\")")
	}
	if err := b.startup(ctx); err != nil {
		return err
	}
	if ready != nil {
		ready()
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.repairLoop(ctx) }()
	if b.usage != nil && ctx.Err() == nil {
		wg.Add(1)
		go func() { defer wg.Done(); b.usage.rep.Run(ctx) }()
	}
	err := b.deltaLoop(ctx)
	wg.Wait()
	b.client.CloseIdleConnections()
	return err
}

// A failed pull is retried after retryMin, doubling up to startupRetryMax
// while starting; while streaming, up to update_frequency but at least
// startupRetryMax and at most deltaRetryMax.
const (
	retryMin        = time.Second
	startupRetryMax = 30 * time.Second
	deltaRetryMax   = 64 * time.Second
)

// startupProgressEvery is how often the bouncer says it is still waiting
// for its first sync.
const startupProgressEvery = 15 * time.Second

// startup pulls the full state, retrying with backoff unless
// retry_initial_connect is false; the kernel keeps whatever it holds
// meanwhile (a LAPI down at boot never opens a gap). It says at once that
// it waits, and then every startupProgressEvery, so that a LAPI that
// accepts connections but never answers is visible in the log.
func (b *Bouncer) startup(ctx context.Context) error {
	retry := backoff.Backoff{Min: retryMin, Max: startupRetryMax}
	lapis := strings.Join(b.cfg.LAPIURLs(), ", ")
	lg := b.log.WithField("lapi", lapis)
	lg.Infof("waiting for the local API at %s (first sync)", lapis)
	start := b.now()
	for attempt := 1; ; attempt++ {
		stop := b.waitProgress(ctx, lg, start, attempt)
		err := b.pullFull(ctx, "")
		stop()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if !b.cfg.retryInitialConnect() {
			return fmt.Errorf("first sync with the local API at %s failed, and retry_initial_connect is false: %w", lapis, err)
		}
		wait := retry.Next()
		lg := lg.WithError(err).WithFields(log.Fields{"attempt": attempt, "retry_in": wait.Round(time.Millisecond),
			"waited": b.now().Sub(start).Round(time.Second)})
		var apiErr *apiclient.APIError
		if errors.As(err, &apiErr) && apiErr.Status == 403 {
			lg.Error("the LAPI refuses this bouncer's key; check api_key (retrying)")
		} else {
			lg.Warn("first sync with the LAPI failed; keeping the firewall as it is and retrying")
		}
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
	}
}

// waitProgress logs, every b.progressEvery until stop is called, that the
// attempt-th first sync is still under way and when it will be given up.
func (b *Bouncer) waitProgress(ctx context.Context, lg *log.Entry, start time.Time, attempt int) (stop func()) {
	attemptStart := b.now()
	limit := b.cfg.RequestTimeout.Duration + startupBodyTime
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(b.progressEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-t.C:
				in := b.now().Sub(attemptStart)
				lg.WithFields(log.Fields{"attempt": attempt, "waited": b.now().Sub(start).Round(time.Second),
					"gives_up_in": (limit - in).Round(time.Second)}).Info("still waiting for the local API's first answer (or its full state)")
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// startupBodyTime is what a full pull may take beyond request_timeout: a
// 1M-decision body takes a few seconds to stream and load.
const startupBodyTime = 2 * time.Minute

func (b *Bouncer) reqCtx(ctx context.Context, extra time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.cfg.RequestTimeout.Duration+extra)
}

// emptier is implemented by backends that can tell cheaply that their sets
// hold nothing (a first boot, or after -flush).
type emptier interface {
	Empty(ctx context.Context) (bool, error)
}

// loadBatch is how many elements go to the kernel at once while a first
// state streams in.
const loadBatch = 65536

// pullFull pulls the full state (startup=true). The first one (resync "")
// loads the kernel (Replace: whatever a previous run left is reconciled);
// later ones (resync says why) change only the prefixes that differ from
// the bouncer's state, so bans both hold stay enforced throughout.
func (b *Bouncer) pullFull(ctx context.Context, resync string) error {
	first := resync == ""
	// A startup body makes mostly short-lived garbage: collect it sooner so
	// the peak RSS stays near the live state, and hand it back afterwards.
	defer debug.SetGCPercent(debug.SetGCPercent(40))
	defer debug.FreeOSMemory()
	start := b.now()
	// With empty sets nothing can be stale, so elements go to the kernel
	// while the body still streams (one core reads, the other loads)
	// instead of in one Replace at the end.
	fresh := false
	if em, ok := b.fw.(emptier); ok && first {
		if empty, err := em.Empty(ctx); err == nil && empty {
			fresh = true
		}
	}
	var batches chan []firewall.Element
	applied := make(chan error, 1)
	var batch []firewall.Element
	if fresh {
		batches = make(chan []firewall.Element, 2)
		go func() {
			var first error
			for bt := range batches {
				if first == nil {
					first = b.fw.Apply(ctx, bt, nil)
				}
			}
			applied <- first
		}()
	}
	st := newState()
	skipped := 0
	rctx, cancel := b.reqCtx(ctx, startupBodyTime)
	defer cancel()
	// cursor= (empty): this process keeps its own cursor, so bouncers
	// sharing a key never move each other's; upstream LAPIs ignore it.
	q := b.filters()
	q.Set("cursor", "")
	hdr, err := b.client.StreamScan(rctx, true, q, func(deleted bool, d *models.Decision) error {
		if deleted {
			return nil // the full state below replaces whatever the kernel holds
		}
		p, until, ok := b.accept(d, start)
		if !ok {
			skipped++
			return nil
		}
		if st.add(p, d.ID, until) && fresh {
			batch = append(batch, firewall.Element{Prefix: p, Timeout: time.Duration(until-b.now().Unix()) * time.Second})
			if len(batch) == loadBatch {
				batches <- batch
				batch = make([]firewall.Element, 0, loadBatch)
			}
		}
		return nil
	})
	b.metrics.lapiRequest(err)
	var loadErr error
	if fresh {
		if err == nil && len(batch) > 0 {
			batches <- batch
		}
		close(batches)
		loadErr = <-applied
	}
	if err != nil {
		return err
	}
	b.noteModes(hdr)
	b.mu.Lock()
	defer b.mu.Unlock()
	n := st.len()
	if !first {
		b.reconcileWith(ctx, resync, st, start, skipped)
		b.cursor = hdr.Get(models.CursorHeader)
		return nil
	}
	if !fresh || loadErr != nil {
		want := st.elements(b.now())
		if err := b.fw.Replace(ctx, want); err != nil {
			b.resync = true
			return fmt.Errorf("loading %d elements into %s: %w", len(want), b.fw.Name(), err)
		}
	}
	b.st = st
	b.cursor = hdr.Get(models.CursorHeader)
	b.metrics.setBanned(st)
	b.log.WithFields(log.Fields{"elements": n, "skipped": skipped, "took": b.now().Sub(start).Round(time.Millisecond),
		"long_poll": b.longPoll, "follow": b.follow, "streamed": fresh && loadErr == nil, "own_cursor": b.cursor != ""}).Info("first sync in the kernel")
	return nil
}

// reconcileWith makes st, a full state just pulled, the bouncer's state and
// brings the kernel to it: missing prefixes added, stale ones removed,
// changed timeouts rewritten, the rest untouched. The caller holds b.mu. A
// kernel failure leaves the state right and the repair loop reloads it.
func (b *Bouncer) reconcileWith(ctx context.Context, reason string, st *state, start time.Time, skipped int) {
	adds, dels := reconcile(b.st, st, b.now())
	b.st = st
	b.metrics.setBanned(st)
	lg := b.log.WithFields(log.Fields{"reason": reason, "elements": st.len(), "skipped": skipped, "added": len(adds), "removed": len(dels),
		"took": b.now().Sub(start).Round(time.Millisecond)})
	if len(adds) == 0 && len(dels) == 0 {
		lg.Info("full resync: the firewall already matched the LAPI")
		return
	}
	if err := b.fw.Apply(ctx, adds, dels); err != nil {
		b.resync = true
		lg.WithError(err).Warn("full resync: changing the firewall failed; reloading it")
		return
	}
	lg.Warn("full resync corrected the firewall: the decision stream had lost these changes")
}

// fullDue says whether the periodic full resync is due.
func (b *Bouncer) fullDue() bool {
	return !b.nextFull.IsZero() && !b.now().Before(b.nextFull)
}

// scheduleFull sets the next periodic full resync, jittered by ±10% so
// bouncers started together do not pull together.
func (b *Bouncer) scheduleFull() {
	iv := b.cfg.resyncInterval()
	if iv <= 0 {
		b.nextFull = time.Time{}
		return
	}
	b.nextFull = b.now().Add(iv - iv/10 + time.Duration(rand.Int64N(int64(iv/5)+1)))
}

// resyncFull pulls the full state and reconciles the firewall with it.
func (b *Bouncer) resyncFull(ctx context.Context, reason string) error {
	b.log.WithField("reason", reason).Debug("pulling the full state to reconcile the firewall")
	if err := b.pullFull(ctx, reason); err != nil {
		return fmt.Errorf("full resync (%s): %w", reason, err)
	}
	b.missed = false
	b.scheduleFull()
	return nil
}

// noteModes reads what the LAPI offers beyond polling: long-poll, and the
// follow mode, which is used when offered unless follow = false (and
// neither when long_poll = false).
func (b *Bouncer) noteModes(hdr http.Header) {
	b.longPoll, b.follow = 0, 0
	if b.cfg.LongPoll != nil && !*b.cfg.LongPoll {
		return
	}
	if d, err := time.ParseDuration(hdr.Get(models.LongPollHeader)); err == nil && d > 0 {
		b.longPoll = min(d, 30*time.Second)
	}
	if b.cfg.Follow != nil && !*b.cfg.Follow || b.now().Before(b.noFollowUntil) {
		return
	}
	if d, err := time.ParseDuration(hdr.Get(models.FollowHeader)); err == nil && d > 0 {
		b.follow = d
	}
}

// accept validates a decision and returns its prefix and end time. A bad or
// unwanted decision is skipped with a log line, never a crash.
func (b *Bouncer) accept(d *models.Decision, now time.Time) (netip.Prefix, int64, bool) {
	lg := func() *log.Entry {
		return b.log.WithFields(log.Fields{"id": d.ID, "value": d.Value, "type": d.Type, "scope": d.Scope, "origin": d.Origin})
	}
	if d.Value == "" || d.Type == "" || d.Duration == "" {
		lg().Warn("skipping a decision with missing fields")
		return netip.Prefix{}, 0, false
	}
	if !b.supported[strings.ToLower(d.Type)] {
		lg().Debug("skipping a decision of an unsupported type")
		return netip.Prefix{}, 0, false
	}
	switch strings.ToLower(d.Scope) {
	case "ip", "range":
	default:
		lg().Debug("skipping a decision of an unsupported scope")
		return netip.Prefix{}, 0, false
	}
	p, err := netaddr.ParsePrefix(d.Value)
	if err != nil {
		lg().WithError(err).Warn("skipping a decision with an invalid address")
		return netip.Prefix{}, 0, false
	}
	if (p.Addr().Is4() && b.cfg.DisableIPv4) || (p.Addr().Is6() && b.cfg.DisableIPv6) {
		return netip.Prefix{}, 0, false
	}
	dur, err := time.ParseDuration(d.Duration)
	if err != nil {
		lg().WithError(err).Warn("skipping a decision with an invalid duration")
		return netip.Prefix{}, 0, false
	}
	if q, hit := b.guard.blocks(p); hit {
		lg().WithField("protected", q.String()).Warn("refusing to ban a protected address (loopback, link-local, multicast, this host or never_ban)")
		b.metrics.refusedBan()
		return netip.Prefix{}, 0, false
	}
	return p, now.Add(dur).Unix(), true
}

// op is one decision of a delta, kept compact until the batch is applied.
type op struct {
	deleted bool
	p       netip.Prefix
	id      int64
	until   int64
}

// deltaLoop pulls and applies deltas: long-poll against Rampart's LAPI,
// otherwise every update_frequency; failures back off with jitter and the
// last good state stays enforced.
func (b *Bouncer) deltaLoop(ctx context.Context) error {
	failures := 0
	retry := backoff.Backoff{Min: retryMin, Max: min(max(b.cfg.UpdateFrequency.Duration, startupRetryMax), deltaRetryMax)}
	lastGC := b.now()
	b.scheduleFull()
	for {
		wait := b.longPoll
		follow := b.follow > 0 && b.cursor != ""
		if wait == 0 && !follow {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(b.cfg.UpdateFrequency.Duration):
			}
		}
		var err error
		if b.missed {
			err = b.resyncFull(ctx, "gap")
		} else {
			if follow {
				err = b.followDelta(ctx)
			} else {
				err = b.pullDelta(ctx, wait)
			}
			switch {
			case errors.Is(err, errCursorGone):
				b.log.WithError(err).WithField("lapi", b.client.URL()).Warn("the LAPI cannot send this bouncer's missed changes " +
					"(database restored, changes purged while it was away, or a LAPI of another database in api_urls); pulling the full state")
				b.missed = true
				err = b.resyncFull(ctx, "gap")
			case err == nil && b.fullDue():
				// Right after a delta, so what differs is what the
				// stream lost, not what it has yet to send.
				err = b.resyncFull(ctx, "periodic")
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			failures++
			if b.cursor == "" {
				// The LAPI keeps the cursor (upstream's): it may have
				// moved past a response that never arrived whole.
				b.missed = true
			}
			b.log.WithError(err).WithField("failures", failures).Warn("pulling decisions failed; the firewall keeps its current state")
			if !backoff.Sleep(ctx, retry.Next()) {
				return nil
			}
			continue
		}
		if failures > 0 {
			b.log.WithField("after_failures", failures).Info("LAPI reachable again; caught up")
			failures = 0
			retry.Reset()
		}
		if b.now().Sub(lastGC) > time.Minute {
			b.mu.Lock()
			n := b.st.gc(b.now().Unix())
			b.metrics.setBanned(b.st)
			b.mu.Unlock()
			b.guard.refresh()
			lastGC = b.now()
			if n > 0 {
				b.log.WithField("expired", n).Debug("forgot expired bans")
			}
		}
	}
}

func (b *Bouncer) pullDelta(ctx context.Context, wait time.Duration) error {
	q := b.filters()
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	if b.cursor != "" {
		q.Set("cursor", b.cursor)
	}
	var ops []op
	rctx, cancel := b.reqCtx(ctx, wait)
	defer cancel()
	hdr, err := b.client.StreamScan(rctx, false, q, b.collect(&ops))
	b.metrics.lapiRequest(err)
	if err != nil {
		return deltaErr(err)
	}
	// apply records ops in the state before touching the kernel, so the
	// cursor may move even if the kernel refuses (the repair loop reloads).
	b.cursor = hdr.Get(models.CursorHeader)
	// Read at every pull: after a failover the LAPI answering may be
	// another (an upstream one would ignore wait= and answer at once).
	b.noteModes(hdr)
	if len(ops) == 0 {
		return nil
	}
	return b.apply(ctx, ops)
}

// collect returns a stream callback gathering a delta's decisions in ops.
func (b *Bouncer) collect(ops *[]op) func(deleted bool, d *models.Decision) error {
	return func(deleted bool, d *models.Decision) error {
		if deleted {
			if s := strings.ToLower(d.Scope); s != "ip" && s != "range" {
				return nil
			}
			p, err := netaddr.ParsePrefix(d.Value)
			if err != nil {
				b.log.WithError(err).WithFields(log.Fields{"id": d.ID, "value": d.Value, "scope": d.Scope}).
					Warn("skipping a deleted decision with an invalid address")
				return nil
			}
			*ops = append(*ops, op{deleted: true, p: p, id: d.ID})
			return nil
		}
		p, until, ok := b.accept(d, b.now())
		if ok {
			*ops = append(*ops, op{p: p, id: d.ID, until: until})
		}
		return nil
	}
}

// deltaErr marks a 410 Gone as errCursorGone.
func deltaErr(err error) error {
	var apiErr *apiclient.APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusGone {
		return fmt.Errorf("%w: %w", errCursorGone, err)
	}
	return err
}

// followRetry is how long the bouncer long-polls a LAPI whose follow
// responses were held back before trying follow again.
const followRetry = time.Hour

// followDelta follows the stream (Rampart's follow mode) until the LAPI
// ends the response: each chunk is applied as it comes and moves the
// cursor, so a response that breaks resumes from its last whole chunk.
func (b *Bouncer) followDelta(ctx context.Context) error {
	q := b.filters()
	q.Set("cursor", b.cursor)
	var ops []op
	start := b.now()
	// The LAPI ends a response after b.follow; a silent one is given up
	// by the client after apiclient.FollowIdle.
	rctx, cancel := b.reqCtx(ctx, b.follow+apiclient.FollowIdle)
	defer cancel()
	hdr, err := b.client.StreamFollow(rctx, q, b.collect(&ops), func(cursor int64) error {
		b.cursor = strconv.FormatInt(cursor, 10)
		if len(ops) == 0 {
			return nil
		}
		err := b.apply(ctx, ops)
		ops = ops[:0]
		return err
	})
	b.metrics.lapiRequest(err)
	if errors.Is(err, apiclient.ErrFollowHeldBack) && b.longPoll > 0 {
		// Long-polls get through a buffering proxy: each is a whole
		// response. Follow is tried again after followRetry.
		b.log.WithError(err).WithFields(log.Fields{"lapi": b.client.URL(), "retry_in": followRetry}).
			Warn("follow mode held back; long-polling this LAPI instead (a proxy should pass responses on unbuffered, e.g. nginx proxy_buffering off)")
		b.noFollowUntil, b.follow = b.now().Add(followRetry), 0
		return nil
	}
	if err != nil {
		return deltaErr(err)
	}
	b.noteModes(hdr)
	if b.now().Sub(start) < time.Second && ctx.Err() == nil {
		// A response ended at once (the LAPI stopping, or its follow
		// mode turned off): no tight loop of requests.
		select {
		case <-ctx.Done():
		case <-time.After(b.cfg.UpdateFrequency.Duration):
		}
	}
	return nil
}

// apply runs a delta: deletions first, then additions, as upstream's
// bouncer does, through one backend call.
func (b *Bouncer) apply(ctx context.Context, ops []op) error {
	start := b.now()
	now := start.Unix()
	b.mu.Lock()
	defer b.mu.Unlock()
	touched := map[key]bool{}
	for _, o := range ops {
		if !o.deleted {
			continue
		}
		gone, changed, _ := b.st.remove(o.p, o.id, now)
		if gone || changed {
			touched[keyOf(o.p)] = true
		}
	}
	for _, o := range ops {
		if o.deleted {
			continue
		}
		if b.st.add(o.p, o.id, o.until) {
			touched[keyOf(o.p)] = true
		}
	}
	var adds []firewall.Element
	var dels []netip.Prefix
	for k := range touched {
		if u := b.st.until(k); u > now {
			adds = append(adds, firewall.Element{Prefix: k.prefix(), Timeout: time.Duration(u-now) * time.Second})
		} else {
			dels = append(dels, k.prefix())
		}
	}
	b.metrics.setBanned(b.st)
	if len(adds) == 0 && len(dels) == 0 {
		return nil
	}
	if err := b.fw.Apply(ctx, adds, dels); err != nil {
		b.resync = true // the repair loop reloads the full state
		return fmt.Errorf("applying %d additions and %d deletions: %w", len(adds), len(dels), err)
	}
	took := b.now().Sub(start)
	b.metrics.applied(took)
	b.log.WithFields(log.Fields{"added": len(adds), "deleted": len(dels), "took": took.Round(time.Microsecond)}).Info("decisions applied")
	return nil
}

// repairLoop restores the firewall when someone flushed or deleted part of
// it (nft flush ruleset, a firewalld reload, iptables -F) or when a change
// failed half-way: Ensure, then reload the full state.
func (b *Bouncer) repairLoop(ctx context.Context) {
	t := time.NewTicker(b.repairTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, err := b.fw.Intact(ctx)
		if ctx.Err() != nil {
			return
		}
		b.mu.Lock()
		need := b.resync || !ok || err != nil
		b.mu.Unlock()
		if !need {
			continue
		}
		if err != nil {
			b.log.WithError(err).Warn("checking firewall objects failed; repairing")
		} else if !ok {
			b.log.Warn("firewall objects were removed or flushed by something else; restoring them")
		}
		b.repair(ctx)
	}
}

func (b *Bouncer) repair(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	start := b.now()
	if err := b.fw.Ensure(ctx); err != nil {
		b.log.WithError(err).Error("restoring firewall objects failed")
		return
	}
	want := b.st.elements(start)
	if err := b.fw.Replace(ctx, want); err != nil {
		b.log.WithError(err).Error("reloading the firewall state failed")
		b.resync = true
		return
	}
	b.resync = false
	b.metrics.repairs.Inc()
	b.log.WithFields(log.Fields{"elements": len(want), "took": b.now().Sub(start).Round(time.Millisecond)}).Info("firewall restored")
}
