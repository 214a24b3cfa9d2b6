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
	"strings"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/internal/backoff"
	"github.com/rampart-ips/rampart/internal/netaddr"
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
	var resp StreamResponse
	if _, err := s.o.Client.do(ctx, http.MethodGet, "v3/decisions/stream", q, nil, &resp); err != nil {
		s.Stats.PullFailures.Add(1)
		return err
	}
	s.Stats.Pulls.Add(1)
	if err := s.apply(ctx, &resp, force); err != nil {
		return err // startup=true again next time: the full list is asked for again
	}
	s.startup.Store(false)
	return nil
}

// apply stores a pull in upstream's order: explicit deletions, console
// allowlists, the community decisions (filtered by every allowlist), each
// linked blocklist, then the ending of what the console allowlists cover.
func (s *Service) apply(ctx context.Context, resp *StreamResponse, force bool) error {
	now := time.Now()
	deleted := int64(0)
	for _, g := range resp.Deleted {
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
	if resp.Links != nil {
		for _, l := range resp.Links.Allowlists {
			rs, err := s.pullAllowlist(ctx, l)
			if err != nil {
				s.Stats.ListsFailed.Add(1)
				s.log.WithError(err).WithField("allowlist", l.Name).Warn("fetching a console allowlist failed: it stays as it was")
				continue
			}
			allowed = append(allowed, rs...)
		}
	}
	total := 0
	for _, g := range resp.New {
		total += len(g.Decisions)
	}
	ds := make([]store.NewDecision, 0, total)
	bad := 0
	for _, g := range resp.New {
		scope := models.NormalizeScope(g.Scope)
		for _, d := range g.Decisions {
			nd, err := newDecision(g.Scenario, scope, "ban", store.OriginCAPI, d.Value, d.Duration, now)
			if err != nil {
				bad++
				if bad <= 5 {
					s.log.WithError(err).Warn("skipping a community decision")
				}
				continue
			}
			ds = append(ds, nd)
		}
	}
	if len(ds) == 0 && bad == 0 {
		s.log.Info("received 0 new entries (expected if you just installed crowdsec)")
	} else {
		added, err := s.store(ctx, ds, store.OriginCAPI, store.CommunitySourceScope, int(deleted), now)
		if err != nil {
			return err
		}
		s.log.WithFields(log.Fields{"added": added, "invalid": bad}).Info("capi/community-blocklist: decisions stored")
	}
	if resp.Links != nil {
		for _, l := range resp.Links.Blocklists {
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

// store filters ds through the allowlists and saves them as one alert of
// origin, replacing that origin's decisions on the same values.
func (s *Service) store(ctx context.Context, ds []store.NewDecision, origin, sourceScope string, deleted int, now time.Time) (int, error) {
	dropped := 0
	if s.o.Filter != nil && len(ds) > 0 {
		var err error
		if ds, dropped, err = s.o.Filter(ctx, ds); err != nil {
			return 0, fmt.Errorf("checking pulled decisions against the allowlists: %w", err)
		}
	}
	if dropped > 0 {
		s.log.WithFields(log.Fields{"dropped": dropped, "source": sourceScope}).Info("pulled decisions on allowlisted addresses were dropped")
	}
	if len(ds) == 0 {
		return 0, nil
	}
	ts := now.UTC().Format(time.RFC3339)
	a := &models.Alert{Scenario: fmt.Sprintf("update : +%d/-%d IPs", len(ds), deleted), Kind: "capi", Remediation: true,
		StartAt: ts, StopAt: ts, Source: &models.Source{Scope: sourceScope}}
	na := store.NewAlert{Alert: a, UUID: models.NewAlertUUID(), StartAt: now, StopAt: now, Decisions: ds}
	if _, err := s.o.Store.ReplacePulled(ctx, na, origin, s.o.ApplyChunk); err != nil {
		return 0, fmt.Errorf("storing %s decisions: %w", sourceScope, err)
	}
	return len(ds), nil
}

// newDecision checks one pulled value.
func newDecision(scenario, scope, typ, origin, value, duration string, now time.Time) (store.NewDecision, error) {
	dur, err := models.ParseDuration(duration)
	if err != nil || dur <= 0 {
		return store.NewDecision{}, fmt.Errorf("%s: duration %q is not a positive duration", value, duration)
	}
	nd := store.NewDecision{UUID: models.NewAlertUUID(), Until: now.Add(dur), Scenario: scenario, Type: typ, Scope: scope,
		Value: value, Origin: origin}
	if store.IsAddressScope(scope) {
		p, err := netaddr.ParsePrefix(value)
		if err != nil {
			return store.NewDecision{}, fmt.Errorf("%s: %w", value, err)
		}
		nd.Range = store.RangeOf(p)
	}
	return nd, nil
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
	if _, err := newDecision(l.Name, scope, typ, store.OriginLists, "0.0.0.0", l.Duration, now); err != nil && store.IsAddressScope(scope) {
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
	var ds []store.NewDecision
	bad := 0
	sc := bufio.NewScanner(io.LimitReader(body, maxListBytes))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		v := strings.TrimSpace(sc.Text())
		if v == "" || v[0] == '#' {
			continue
		}
		nd, err := newDecision(l.Name, scope, typ, store.OriginLists, v, l.Duration, now)
		if err != nil {
			bad++ // one bad line no longer throws the whole list away
			continue
		}
		ds = append(ds, nd)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("list %s: reading: %w", l.Name, err)
	}
	added, err := s.store(ctx, ds, store.OriginLists, store.ListSourcePrefix+l.Name, 0, now)
	if err != nil {
		return err
	}
	if err := s.o.Store.PutKV(ctx, listKey(l.Name), now.UTC().Format(http.TimeFormat)); err != nil {
		return err
	}
	s.log.WithFields(log.Fields{"list": l.Name, "added": added, "invalid": bad}).Info("blocklist stored")
	return nil
}
