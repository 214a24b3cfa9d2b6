package blocklists

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/backoff"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// AllowFunc returns, for one refresh, the check of the allowlists (the
// host's protected addresses and the user allowlists): whether a value
// overlaps one, and which.
type AllowFunc func(ctx context.Context) (func(value string) (bool, string), error)

// Status is what a feed did last (GET /v1/blocklists).
type Status = models.BlocklistStatus

// Runner refreshes the configured feeds.
type Runner struct {
	st    *store.Store
	allow AllowFunc
	log   *log.Entry
	now   func() time.Time

	mu    sync.Mutex
	feeds map[string]*feed
	wg    sync.WaitGroup
	ctx   context.Context // Run's, for feeds started by Set
}

type feed struct {
	cfg     csconfig.Blocklist
	src     *source
	kick    chan chan error // a refresh asked for now; answered with its error
	stop    context.CancelFunc
	mu      sync.Mutex
	status  Status
	running sync.Mutex // one refresh of this feed at a time
	last    *Parsed    // the content last stored, before allowlisting (under running)
	// claimKey names the feed and its settings in the store's refresh
	// claims (ClaimListRefresh).
	claimKey string
}

// New prepares a runner; Run starts it.
func New(st *store.Store, allow AllowFunc) *Runner {
	return &Runner{st: st, allow: allow, log: log.WithField("component", "blocklists"), now: time.Now, feeds: map[string]*feed{}}
}

// Run refreshes the feeds until ctx ends: each at once, then on its
// interval, sooner (with backoff) after a failure. A failing feed never
// stops the others or the LAPI. Feeds set before Run start with it.
func (r *Runner) Run(ctx context.Context, lists []csconfig.Blocklist) {
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	if err := r.Set(lists); err != nil {
		r.log.WithError(err).Error("blocklists not started")
	}
	<-ctx.Done()
	r.wg.Wait()
}

// Set replaces the subscriptions (start, reload): new feeds start, removed
// ones stop and their decisions end, changed ones start over. The decisions
// of lists no longer configured (a subscription removed while stopped) end
// too. A feed left as it was keeps running untouched.
func (r *Runner) Set(lists []csconfig.Blocklist) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctx == nil {
		return errors.New("blocklists runner is not running")
	}
	keep, current := map[string]bool{}, map[string]bool{}
	var start []csconfig.Blocklist
	for _, l := range lists {
		keep[l.Name], current[claimKey(l)] = true, true
		if f, ok := r.feeds[l.Name]; ok && sameConfig(f.cfg, l) {
			continue
		}
		start = append(start, l)
	}
	for name, f := range r.feeds {
		if !keep[name] || slices.ContainsFunc(start, func(l csconfig.Blocklist) bool { return l.Name == name }) {
			f.stop()
			delete(r.feeds, name)
		}
	}
	for _, l := range start {
		src, err := newSource(l)
		if err != nil {
			r.log.WithError(err).Error("blocklist not started")
			continue
		}
		fctx, cancel := context.WithCancel(r.ctx)
		f := &feed{cfg: l, src: src, kick: make(chan chan error), stop: cancel, claimKey: claimKey(l)}
		f.status = Status{Name: l.Name, Source: redactURL(l.URL) + l.File, Format: l.Format, Interval: l.Interval.Duration.String()}
		r.feeds[l.Name] = f
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.loop(fctx, f)
		}()
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.endUnconfigured(r.ctx, keep, current)
	}()
	return nil
}

// claimKey is the feed's name and a digest of its settings.
func claimKey(b csconfig.Blocklist) string {
	j, _ := json.Marshal(b)
	sum := sha256.Sum256(j)
	return b.Name + ":" + hex.EncodeToString(sum[:8])
}

func sameConfig(a, b csconfig.Blocklist) bool { return reflect.DeepEqual(a, b) }

// endUnconfigured ends the decisions of the feeds this database's LAPIs
// refreshed that are no longer subscribed, and forgets the claims of
// former settings. Only feeds with a claim are ended: list decisions
// stored by anything else are not this runner's.
func (r *Runner) endUnconfigured(ctx context.Context, keep map[string]bool, current map[string]bool) {
	keys, err := r.st.ListClaims(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.WithError(err).Warn("looking for unsubscribed blocklists")
		}
		return
	}
	ended := map[string]bool{}
	for _, k := range keys {
		if current[k] {
			continue
		}
		name := k[:max(strings.LastIndexByte(k, ':'), 0)]
		if !keep[name] && !ended[name] {
			ended[name] = true
			n, err := r.st.EndList(ctx, name)
			if err != nil {
				r.log.WithError(err).WithField("list", name).Warn("ending the decisions of an unsubscribed blocklist")
				continue
			}
			r.log.WithFields(log.Fields{"list": name, "ended": n}).Info("blocklist no longer subscribed: its decisions ended")
		}
		if err := r.st.DropListClaim(ctx, k); err != nil {
			r.log.WithError(err).WithField("list", name).Warn("forgetting a former blocklist claim")
		}
	}
}

func (r *Runner) loop(ctx context.Context, f *feed) {
	retry := backoff.Backoff{Min: 10 * time.Second, Max: f.cfg.Interval.Duration}
	wait := time.Duration(0)
	for {
		var reply chan error
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case reply = <-f.kick:
			t.Stop()
		}
		err := r.refresh(ctx, f, reply != nil)
		if reply != nil {
			reply <- err
		}
		if err != nil {
			wait = retry.Next()
		} else {
			retry.Reset()
			wait = f.cfg.Interval.Duration
		}
	}
}

// Refresh refreshes the named feeds now (all when none is named) and
// returns their errors joined.
func (r *Runner) Refresh(ctx context.Context, names ...string) error {
	r.mu.Lock()
	var fs []*feed
	for name, f := range r.feeds {
		if len(names) == 0 || slices.Contains(names, name) {
			fs = append(fs, f)
		}
	}
	r.mu.Unlock()
	for _, n := range names {
		if !slices.ContainsFunc(fs, func(f *feed) bool { return f.cfg.Name == n }) {
			return fmt.Errorf("blocklist %s is not configured", n)
		}
	}
	var errs []error
	for _, f := range fs {
		reply := make(chan error, 1)
		select {
		case f.kick <- reply:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case err := <-reply:
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f.cfg.Name, err))
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.Join(errs...)
}

// Statuses reports every feed, by name.
func (r *Runner) Statuses() []Status {
	r.mu.Lock()
	out := make([]Status, 0, len(r.feeds))
	for _, f := range r.feeds {
		f.mu.Lock()
		out = append(out, f.status)
		f.mu.Unlock()
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Status) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// refresh fetches, parses and stores one feed. Any failure keeps what is
// stored.
func (r *Runner) refresh(ctx context.Context, f *feed, forced bool) error {
	f.running.Lock()
	defer f.running.Unlock()
	lg := r.log.WithField("list", f.cfg.Name)
	start := r.now()
	// LAPIs sharing the database take turns: a scheduled refresh that
	// another one (or this one before a restart) made less than most of
	// an interval ago is skipped. cscli's refresh always runs.
	minAge := f.cfg.Interval.Duration * 9 / 10
	if forced {
		minAge = 0
	}
	claimed, err := r.st.ClaimListRefresh(ctx, f.claimKey, start, minAge)
	if err != nil {
		return err
	}
	if !claimed {
		lg.Debug("blocklist refreshed recently by another LAPI (or before a restart): skipped")
		f.mu.Lock()
		f.status.LastAttempt, f.status.LastError, f.status.LastFetch = start, "", "refreshed by another LAPI"
		f.mu.Unlock()
		return nil
	}
	err = r.refreshOnce(ctx, f, lg)
	if err != nil {
		if uerr := r.st.UnclaimListRefresh(context.WithoutCancel(ctx), f.claimKey, start); uerr != nil {
			lg.WithError(uerr).Warn("releasing the blocklist refresh claim")
		}
	}
	f.mu.Lock()
	f.status.LastAttempt = start
	f.status.LastError = ""
	if err != nil {
		f.status.LastError = err.Error()
	}
	f.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		lg.WithError(err).Warn("blocklist refresh failed: its previous version stays enforced")
	}
	return err
}

func (r *Runner) refreshOnce(ctx context.Context, f *feed, lg *log.Entry) error {
	body, err := f.src.fetch(ctx)
	var p Parsed
	notModified := false
	switch {
	case errors.Is(err, errNotModified) && f.last != nil:
		// The same content again: applied anyway, so that allowlist
		// changes and decisions deleted by hand are caught up with; an
		// unchanged result costs one read and no change number.
		lg.Debug("blocklist not modified")
		p, notModified = *f.last, true
	case errors.Is(err, errNotModified):
		// Not modified since a content this process never stored: read
		// it whole.
		f.src.forget()
		if body, err = f.src.fetch(ctx); err != nil {
			return err
		}
		fallthrough
	case err == nil:
		if p, err = Parse(body, f.cfg.Format); err != nil {
			f.src.forget()
			return fmt.Errorf("parsing: %w", err)
		}
		if p.Bad > 0 {
			lg.WithFields(log.Fields{"bad": p.Bad, "lines": lineList(p.BadAt, p.Bad)}).Warn("blocklist lines skipped: not an IP address or CIDR")
		}
	default:
		return err
	}
	check, err := r.allow(ctx)
	if err != nil {
		f.src.forget()
		return fmt.Errorf("reading the allowlists: %w", err)
	}
	kept := make([]store.ListEntry, 0, len(p.Entries))
	allowed := 0
	for _, e := range p.Entries {
		if hit, why := check(e.Value); hit {
			allowed++
			if allowed <= maxBadShown {
				lg.WithFields(log.Fields{"value": e.Value, "allowlist": why}).Info("blocklist entry left out: allowlisted")
			}
			continue
		}
		kept = append(kept, e)
	}
	res, err := r.st.ReplaceList(ctx, store.ListUpdate{Name: f.cfg.Name, Type: f.cfg.Type, Duration: f.cfg.Duration.Duration, Entries: kept}, r.now())
	if err != nil {
		// Read whole next time: a 304 would otherwise keep the failure.
		f.src.forget()
		return err
	}
	f.last = &p
	f.mu.Lock()
	f.status.LastFetch = "content"
	if notModified {
		f.status.LastFetch = "not modified"
	}
	f.status.Format, f.status.LastApplied = p.Format, r.now()
	f.status.Entries, f.status.Allowlisted, f.status.BadLines = len(kept)+allowed, allowed, p.Bad
	f.mu.Unlock()
	fields := lg.WithFields(log.Fields{"entries": len(kept), "added": res.Added, "removed": res.Removed, "renewed": res.Renewed,
		"allowlisted": allowed, "bad_lines": p.Bad})
	if res.Added+res.Removed+res.Renewed == 0 {
		fields.Debug("blocklist unchanged")
	} else {
		fields.Info("blocklist refreshed")
	}
	return nil
}

// redactURL hides a password in a feed's URL from the status machines
// read.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return raw
	}
	return u.Redacted()
}
