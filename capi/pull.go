package capi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/internal/backoff"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// maxListBytes bounds one blocklist download (a few million lines).
const maxListBytes = 256 << 20

// listSlack: a list whose decisions end sooner than the pull interval plus
// this is fetched whole, without If-Modified-Since, as upstream.
const listSlack = 15 * time.Minute

func (s *Service) pullLoop(ctx context.Context) {
	logged := false
	for {
		sc, err := s.o.Store.MachineScenarios(ctx)
		if err == nil && len(sc) > 0 {
			break
		}
		if !logged {
			s.log.Info("scenario list is empty, will not pull yet (no agent has logged in)")
			logged = true
		}
		if !backoff.Sleep(ctx, s.o.ScenarioPoll) {
			return
		}
	}
	b := backoff.Backoff{Min: s.o.RetryMin, Max: max(s.o.PullInterval, s.o.RetryMin)}
	wait, first := time.Duration(0), true
	for {
		if !backoff.Sleep(ctx, wait) {
			return
		}
		if err := s.Pull(ctx, false); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = b.Next()
			s.log.WithError(err).WithField("retry_in", wait.Round(time.Second)).Warn("pulling from the Central API failed: the decisions already pulled stay in force")
			continue
		}
		b.Reset()
		wait = s.o.PullInterval
		if first {
			wait, first = jitter(s.o.PullInterval, min(5*time.Minute, s.o.PullInterval/24)), false
		}
	}
}

// Pull gets the community blocklist (startup, then deltas) and the lists it
// links to, and stores them. Unless force, it does nothing when the last
// pull is less than 1 h 30 old. A failure changes nothing already stored.
func (s *Service) Pull(ctx context.Context, force bool) error {
	s.pullMu.Lock()
	defer s.pullMu.Unlock()
	ok, err := s.o.Store.TryLock(ctx, "pullCAPI", s.owner, pullLockStale)
	if err != nil {
		return err
	}
	if !ok {
		s.log.Info("PullCAPI is already running (another LAPI of this database), skipping")
		return nil
	}
	defer func() {
		if err := s.o.Store.Unlock(context.WithoutCancel(ctx), "pullCAPI", s.owner); err != nil {
			s.log.WithError(err).Warn("releasing the pull lock")
		}
	}()
	if !force && s.o.MinPullGap > 0 {
		last, err := s.o.Store.LastAlertCreated(ctx, store.CommunitySourceScope)
		if err != nil {
			return err
		}
		if !last.IsZero() && time.Since(last) < s.o.MinPullGap {
			s.log.WithField("last_pull", last.Format(time.RFC3339)).Info("last CAPI pull is newer than 1h30, skip.")
			return nil
		}
	}
	q := url.Values{}
	if s.startup.Load() {
		q.Set("startup", "true")
	}
	if !s.o.PullCommunity {
		q.Set("community_pull", "false")
	}
	if !s.o.PullBlocklists {
		q.Set("additional_pull", "false")
	}
	var resp pullAnswer
	if _, err = s.o.Client.do(ctx, http.MethodGet, "v3/decisions/stream", q, nil, &resp); err != nil {
		s.Stats.PullFailures.Add(1)
		return err
	}
	s.Stats.Pulls.Add(1)
	s.stored = 0
	err = s.apply(ctx, &resp, force)
	if s.stored >= releaseAfter {
		// The pull's memory is garbage now: hand it back to the system
		// rather than keep a heap sized for it (under GOGC=300, four
		// times the pull's live data) until collections shrink it.
		resp = pullAnswer{}
		debug.FreeOSMemory()
	}
	if err != nil {
		return err // startup=true again next time: the full list is asked for again
	}
	s.startup.Store(false)
	return nil
}

// releaseAfter is how many stored decisions make a pull return its
// memory to the system at once: the community list's startup pull (tens
// of thousands) does, its deltas every two hours (hundreds) do not.
const releaseAfter = 10000

// apply stores a pull in upstream's order: explicit deletions, console
// allowlists, the community decisions (filtered by every allowlist), each
// linked blocklist, then the ending of what the console allowlists cover.
func (s *Service) apply(ctx context.Context, resp *pullAnswer, force bool) error {
	deleted := int64(0)
	for _, g := range resp.deleted {
		n, err := s.o.Store.ExpirePulled(ctx, store.OriginCAPI, models.NormalizeScope(g.Scope), g.Decisions)
		if err != nil {
			return fmt.Errorf("expiring decisions CAPI deleted: %w", err)
		}
		deleted += n
	}
	if deleted > 0 {
		s.log.WithField("deleted", deleted).Info("capi/community-blocklist: explicit deletions")
	}
	var allowed []store.Range // the console allowlists' entries
	if resp.links != nil {
		for _, l := range resp.links.Allowlists {
			rs, err := s.pullAllowlist(ctx, l)
			if err != nil {
				s.Stats.ListsFailed.Add(1)
				s.log.WithError(err).WithField("allowlist", l.Name).Warn("fetching a console allowlist failed: it stays as it was")
				continue
			}
			allowed = append(allowed, rs...)
		}
	}
	p := &resp.community
	for _, err := range p.errs {
		s.log.WithError(err).Warn("skipping a community decision")
	}
	if p.Len() == 0 && p.bad == 0 {
		s.log.Info("received 0 new entries (expected if you just installed crowdsec)")
	} else {
		added, err := s.store(ctx, p, store.CommunitySourceScope, int(deleted), resp.now)
		if err != nil {
			return err
		}
		s.log.WithFields(log.Fields{"added": added, "invalid": p.bad}).Info("capi/community-blocklist: decisions stored")
	}
	*p = pulled{} // its strings are garbage once stored
	if resp.links != nil {
		for _, l := range resp.links.Blocklists {
			if err := s.pullList(ctx, l, force); err != nil {
				// Unlike upstream, one failing list does not keep the
				// others from being fetched.
				s.Stats.ListsFailed.Add(1)
				s.log.WithError(err).WithField("list", l.Name).Warn("fetching a blocklist failed: its decisions stay as they were")
			}
		}
	}
	return s.endAllowed(ctx, allowed)
}

// endAllowed ends what the console allowlists' entries cover, whatever
// its origin.
func (s *Service) endAllowed(ctx context.Context, allowed []store.Range) error {
	var ended int64
	for i := range allowed {
		n, err := s.o.Store.DeleteDecisions(ctx, store.DecisionFilter{Range: &allowed[i]})
		if err != nil {
			return fmt.Errorf("applying the console allowlists to active decisions: %w", err)
		}
		ended += n
	}
	if ended > 0 {
		s.log.WithField("decisions", ended).Info("decisions ended by the console allowlists")
	}
	return nil
}

// allowEntry is one line of a console allowlist (NDJSON).
type allowEntry struct {
	Value       string `json:"value"`
	Description string `json:"description"`
	Expiration  string `json:"expiration"`
	CreatedAt   string `json:"created_at"`
}

// pullAllowlist fetches one console allowlist and replaces the local
// allowlist of that name with it; it returns the entries in force.
func (s *Service) pullAllowlist(ctx context.Context, l AllowlistLink) ([]store.Range, error) {
	if l.Name == "" || l.URL == "" {
		return nil, nil // as upstream: skipped
	}
	body, err := s.fetch(ctx, l.URL, "")
	if err != nil {
		return nil, err
	}
	defer body.Close()
	var items []store.AllowItem
	var ranges []store.Range
	now := time.Now()
	dec := json.NewDecoder(body)
	for {
		var e allowEntry
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("allowlist %s: %w", l.Name, err)
		}
		r, err := store.ParseRange(e.Value)
		if err != nil {
			s.log.WithField("allowlist", l.Name).WithField("value", e.Value).Warn("skipping an allowlist entry that is not an address or range")
			continue
		}
		it := store.AllowItem{Value: e.Value, Description: e.Description}
		if t, err := time.Parse(time.RFC3339, e.Expiration); err == nil && !t.IsZero() && t.Year() > 1 {
			if t.Before(now) {
				continue
			}
			it.Expires = &t
		}
		items = append(items, it)
		ranges = append(ranges, r)
	}
	if err := s.o.Store.ReplaceAllowlist(ctx, l.Name, l.Description, items); err != nil {
		return nil, fmt.Errorf("allowlist %s: %w", l.Name, err)
	}
	s.log.WithFields(log.Fields{"allowlist": l.Name, "entries": len(items)}).Info("console allowlist stored")
	return ranges, nil
}

// fetch GETs a list link (no token: the links are signed); a 304 gives
// a nil body and no error, any status but 200 an error.
func (s *Service) fetch(ctx context.Context, u, ifModifiedSince string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", s.o.Client.ua)
	if ifModifiedSince != "" {
		req.Header.Set("If-Modified-Since", ifModifiedSince)
	}
	resp, err := s.o.Client.lists.Do(req)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Body, nil
	case http.StatusNotModified:
		resp.Body.Close()
		return nil, nil
	}
	resp.Body.Close()
	return nil, fmt.Errorf("%s answered %d", u, resp.StatusCode)
}

// store filters p through the allowlists and saves it as one alert of
// p's origin, replacing that origin's decisions on the same values.
func (s *Service) store(ctx context.Context, p *pulled, sourceScope string, deleted int, now time.Time) (int, error) {
	dropped, err := s.filterPulled(ctx, p)
	if err != nil {
		return 0, err
	}
	if dropped > 0 {
		s.log.WithFields(log.Fields{"dropped": dropped, "source": sourceScope}).Info("pulled decisions on allowlisted addresses were dropped")
	}
	if p.Len() == 0 {
		return 0, nil
	}
	ts := now.UTC().Format(time.RFC3339)
	a := &models.Alert{Scenario: fmt.Sprintf("update : +%d/-%d IPs", p.Len(), deleted), Kind: "capi", Remediation: true,
		StartAt: ts, StopAt: ts, Source: &models.Source{Scope: sourceScope}}
	na := store.NewAlert{Alert: a, UUID: models.NewAlertUUID(), StartAt: now, StopAt: now}
	if _, err := s.o.Store.ReplacePulled(ctx, na, p.origin, p, s.o.ApplyChunk); err != nil {
		return 0, fmt.Errorf("storing %s decisions: %w", sourceScope, err)
	}
	s.stored += p.Len()
	return p.Len(), nil
}

func listKey(name string) string { return "blocklist:" + name + ":last_pull" }

// pullList fetches one linked blocklist (one value per line) and stores
// it, origin lists, scenario the list's name. The request is conditional
// (If-Modified-Since) unless force or the list's decisions end within the
// pull interval and some slack.
func (s *Service) pullList(ctx context.Context, l BlocklistLink, force bool) error {
	if l.Name == "" || l.URL == "" {
		return fmt.Errorf("link without a name or url")
	}
	now := time.Now()
	scope := models.NormalizeScope(l.Scope)
	typ := l.Remediation
	if typ == "" {
		typ = "ban"
	}
	// Checked before the download: a list of bad links costs nothing.
	if _, err := checkDuration("0.0.0.0", l.Duration); err != nil && store.IsAddressScope(scope) {
		return fmt.Errorf("list %s: %w", l.Name, err)
	}
	if !force {
		until, err := s.o.Store.LatestUntil(ctx, store.OriginLists, l.Name)
		if err != nil {
			return err
		}
		force = until.Before(now.Add(s.o.PullInterval + listSlack))
	}
	var ims string
	if !force {
		if last, err := s.o.Store.GetKV(ctx, listKey(l.Name)); err == nil {
			ims = last
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	body, err := s.fetch(ctx, l.URL, ims)
	if err != nil {
		return fmt.Errorf("list %s: %w", l.Name, err)
	}
	if body == nil {
		s.log.WithField("list", l.Name).Debug("blocklist not modified")
		return nil
	}
	defer body.Close()
	p := &pulled{origin: store.OriginLists}
	kind := p.kind(l.Name, typ, scope)
	sc := bufio.NewScanner(io.LimitReader(body, maxListBytes))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		v := strings.TrimSpace(sc.Text())
		if v == "" || v[0] == '#' {
			continue
		}
		p.add(kind, v, l.Duration, now) // one bad line no longer throws the whole list away
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("list %s: reading: %w", l.Name, err)
	}
	added, err := s.store(ctx, p, store.ListSourcePrefix+l.Name, 0, now)
	if err != nil {
		return err
	}
	if err := s.o.Store.PutKV(ctx, listKey(l.Name), now.UTC().Format(http.TimeFormat)); err != nil {
		return err
	}
	s.log.WithFields(log.Fields{"list": l.Name, "added": added, "invalid": p.bad}).Info("blocklist stored")
	return nil
}
