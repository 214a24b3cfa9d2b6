package capi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/internal/backoff"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// PAPI (the console's polling API) sends orders to enrolled instances of
// paying organizations: decisions to add or delete, lists to pull again or
// drop, a new login.
const (
	// PAPILastPullKey is the store setting holding the time of the last
	// order taken (upstream's config item).
	PAPILastPullKey = "papi:last_pull"
	// papiWait is how long PAPI may hold a poll (upstream asks for 45 s).
	papiWait = 45 * time.Second
	// papiTimeoutMessage is PAPI's answer to a poll no order came to.
	papiTimeoutMessage = "no events before timeout"
	// consoleOrigin is the origin of console decisions that name none.
	consoleOrigin = "console"
)

// ErrPAPINotEligible is a token without an organization, or of a plan
// without console management: PAPI is not polled.
var ErrPAPINotEligible = errors.New("not enrolled in the console with an ENTERPRISE or SECOPS plan: PAPI is not polled")

// ConsoleSink stores the alerts the console orders (lapi.Server).
type ConsoleSink interface {
	AddConsoleAlert(ctx context.Context, a *models.Alert) (int64, error)
}

// papiEligible says whether a token's claims open PAPI: enrolled (an
// organization) with a plan that has console management.
func papiEligible(claims map[string]any) bool {
	if _, ok := claims["organization_id"]; !ok {
		return false
	}
	sub, _ := claims["subscription_type"].(string)
	return sub == "ENTERPRISE" || sub == "SECOPS"
}

// papiLoop polls PAPI while the token allows it, checking again every
// PAPIRecheck (and at each token renewal) while it does not.
func (s *Service) papiLoop(ctx context.Context) {
	b := backoff.Backoff{Min: s.o.RetryMin, Max: max(5*time.Minute, s.o.RetryMin)}
	eligible := true
	for {
		start := time.Now()
		n, err := s.PollPAPI(ctx)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		switch {
		case errors.Is(err, ErrPAPINotEligible):
			if eligible {
				s.log.WithError(err).Info("console management (PAPI) is off")
			}
			eligible, wait = false, s.o.PAPIRecheck
		case err != nil:
			wait = b.Next()
			s.log.WithError(err).WithField("retry_in", wait.Round(time.Second)).Warn("polling PAPI failed")
		default:
			if !eligible {
				s.log.Info("console management (PAPI) is on: polling for orders")
			}
			eligible = true
			b.Reset()
			// A server answering at once with nothing is not hammered.
			if n == 0 {
				wait = time.Second - time.Since(start)
			}
		}
		if wait > 0 && !backoff.Sleep(ctx, wait) {
			return
		}
	}
}

// papiSince is the time of the last order taken (the zero time, as
// upstream, before the first).
func (s *Service) papiSince(ctx context.Context) (time.Time, error) {
	v, err := s.o.Store.GetKV(ctx, PAPILastPullKey)
	if errors.Is(err, store.ErrNotFound) || (err == nil && v == "") {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	var t time.Time
	if err := t.UnmarshalText([]byte(v)); err != nil {
		s.log.WithError(err).WithField("value", v).Warn("unreadable " + PAPILastPullKey + ": polling PAPI from the start")
		return time.Time{}, nil
	}
	return t, nil
}

// PollPAPI makes one long poll and carries out the orders it brings, in
// order, each moving papi:last_pull to its time (the server's, not this
// host's clock: a restart asks for what came after it). It returns how
// many orders came. An order that fails is logged and skipped.
func (s *Service) PollPAPI(ctx context.Context) (int, error) {
	if s.o.PAPIURL == "" {
		return 0, errors.New("no papi_url")
	}
	tok, claims, err := s.o.Client.Token(ctx)
	if err != nil {
		return 0, err
	}
	if !papiEligible(claims) {
		return 0, ErrPAPINotEligible
	}
	since, err := s.papiSince(ctx)
	if err != nil {
		return 0, err
	}
	base, err := url.Parse(s.o.PAPIURL)
	if err != nil {
		return 0, fmt.Errorf("papi_url %q: %w", s.o.PAPIURL, err)
	}
	u := base.ResolveReference(&url.URL{Path: "v1/decisions/stream/poll"})
	// Milliseconds, not upstream's seconds times 1000: with the order's
	// own time kept, a truncated one would bring the same orders again.
	ms := since.UnixMilli()
	if since.IsZero() {
		ms = since.Unix() * 1000 // upstream's first poll
	}
	u.RawQuery = url.Values{"since_time": {strconv.FormatInt(ms, 10)},
		"timeout": {strconv.Itoa(int(papiWait.Seconds()))}}.Encode()
	resp, cancel, err := s.o.Client.get(ctx, u.String(), tok, papiWait)
	if err != nil {
		return 0, err
	}
	defer cancel()
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		s.o.Client.dropToken(tok)
		return 0, fmt.Errorf("PAPI refused the token (%d): logging in again", resp.StatusCode)
	case http.StatusPaymentRequired:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, fmt.Errorf("%w (PAPI: %s)", ErrPAPINotEligible, msg)
	default:
		return 0, fmt.Errorf("polling PAPI: status %d", resp.StatusCode)
	}
	last := ms
	taken := 0
	advance := func(ms int64) error {
		if ms <= last {
			return nil
		}
		last = ms
		text, _ := time.UnixMilli(ms).UTC().MarshalText()
		return s.o.Store.PutKV(ctx, PAPILastPullKey, string(text))
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var p PAPIPoll
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return taken, nil
		} else if err != nil {
			return taken, fmt.Errorf("reading PAPI's answer: %w", err)
		}
		if p.Error == papiTimeoutMessage {
			return taken, nil
		}
		if p.Error != "" {
			return taken, fmt.Errorf("PAPI: %s", p.Error)
		}
		for _, ev := range p.Events {
			taken++
			if err := s.handleOrder(ctx, ev); err != nil {
				s.log.WithError(err).WithField("order", ev.ID).Error("failed to handle a PAPI order")
			}
			if err := advance(ev.Timestamp); err != nil {
				return taken, err
			}
		}
	}
}

// handleOrder carries out one PAPI order.
func (s *Service) handleOrder(ctx context.Context, ev PAPIEvent) error {
	var m PAPIMessage
	if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
		return fmt.Errorf("polling papi message format is not compatible: %w", err)
	}
	if m.Header == nil {
		return errors.New("no header in message, skipping")
	}
	if m.Header.Source == nil {
		return errors.New("no source user in header message, skipping")
	}
	h := m.Header
	lg := s.log.WithFields(log.Fields{"order": h.UUID, "user": h.Source.User, "operation": h.OperationType + " " + h.OperationCmd})
	bad := func(err error) error {
		return fmt.Errorf("message for '%s' contains bad data format: %w", h.OperationType, err)
	}
	switch h.OperationType + " " + h.OperationCmd {
	case "decision delete":
		var d PAPIDecisionDelete
		if err := json.Unmarshal(m.Data, &d); err != nil {
			return bad(err)
		}
		// An empty filter would end every decision.
		if len(d.Decisions) == 0 {
			return bad(errors.New("no decision UUID"))
		}
		// Told back to the console, as a local deletion is.
		del := s.o.Store.DeleteDecisions
		if s.o.ShareDeletions {
			del = s.o.Store.DeleteDecisionsShared
		}
		ended, err := del(ctx, store.DecisionFilter{UUIDs: d.Decisions})
		if err != nil {
			return fmt.Errorf("unable to expire decisions %v: %w", d.Decisions, err)
		}
		lg.WithField("deleted", ended).Info("decisions deleted from the console")
	case "alert add":
		if s.o.Console == nil {
			return errors.New("no LAPI to store console alerts in")
		}
		var a models.Alert
		if err := json.Unmarshal(m.Data, &a); err != nil {
			return fmt.Errorf("message for '%s' contains bad alert format: %w", h.OperationType, err)
		}
		lg.WithField("decisions", len(a.Decisions)).Info("Received order from PAPI")
		if len(a.Decisions) == 0 {
			// Upstream stores it anyway; here the profiles would turn it
			// into decisions on the console user's name.
			return errors.New("no decision in the console's alert")
		}
		consoleAlert(&a, h)
		id, err := s.o.Console.AddConsoleAlert(ctx, &a)
		if err != nil {
			return fmt.Errorf("storing the console's alert: %w", err)
		}
		if id == 0 {
			// The host allowlist and the user allowlists win here too.
			lg.Warn("every decision of the console's alert was refused (allowlisted or protected addresses, or invalid)")
			return nil
		}
		lg.WithField("alert_id", id).Info("console decisions added")
	case "management reauth":
		lg.Info("Received reauth command from PAPI, resetting token")
		s.o.Client.ResetToken()
	case "management force_pull":
		var fp PAPIForcePull
		if err := json.Unmarshal(m.Data, &fp); err != nil {
			return bad(err)
		}
		return s.forcePull(ctx, lg, fp)
	case "management blocklist_unsubscribe":
		var u PAPIUnsubscribe
		if err := json.Unmarshal(m.Data, &u); err != nil {
			return bad(err)
		}
		if u.Name == "" {
			return bad(errors.New("missing blocklist name"))
		}
		n, err := s.o.Store.DeleteDecisions(ctx, store.DecisionFilter{Origins: []string{store.OriginLists}, Scenario: u.Name})
		if err != nil {
			return fmt.Errorf("unable to expire decisions for list %s: %w", u.Name, err)
		}
		lg.WithFields(log.Fields{"list": u.Name, "deleted": n}).Info("unsubscribed from a blocklist")
	case "management allowlist_unsubscribe":
		var u PAPIUnsubscribe
		if err := json.Unmarshal(m.Data, &u); err != nil {
			return bad(err)
		}
		if u.Name == "" || u.ID == "" {
			return bad(errors.New("missing allowlist name or id"))
		}
		if err := s.o.Store.DeleteAllowlist(ctx, u.Name); errors.Is(err, store.ErrNotFound) {
			lg.WithField("allowlist", u.Name).Warn("Allowlist not found")
		} else if err != nil {
			return err
		}
		lg.WithField("allowlist", u.Name).Info("unsubscribed from an allowlist")
	default:
		return fmt.Errorf("unknown command '%s' for operation type '%s'", h.OperationCmd, h.OperationType)
	}
	return nil
}

// consoleAlert fills a console alert as upstream does: no bucket, the
// order's message as scenario, the first decision as source.
func consoleAlert(a *models.Alert, h *PAPIHeader) {
	now := time.Now().UTC().Format(time.RFC3339)
	if a.StartAt == "" {
		a.StartAt = now
	}
	if a.StopAt == "" {
		a.StopAt = now
	}
	a.EventsCount, a.Capacity, a.Leakspeed, a.Simulated = 0, 0, "", false
	a.ScenarioHash, a.ScenarioVersion, a.Message, a.Scenario = "", "", "", h.Message
	a.Source = &models.Source{Scope: a.Decisions[0].Scope, Value: a.Decisions[0].Value}
	// The alert's UUID makes an order taken twice (a restart before
	// papi:last_pull moved) one alert.
	if a.UUID == "" {
		a.UUID = h.UUID
	}
	for _, d := range a.Decisions {
		if d.Scenario == "" {
			d.Scenario = h.Message
		}
		if d.Origin == "" {
			d.Origin = consoleOrigin
		}
	}
}

// forcePull pulls at once, skipping the freshness checks: one list, or
// the whole pull.
func (s *Service) forcePull(ctx context.Context, lg *log.Entry, fp PAPIForcePull) error {
	switch {
	case fp.Blocklist != nil:
		lg.WithField("list", fp.Blocklist.Name).Info("Received blocklist force_pull command from PAPI")
		s.pullMu.Lock()
		defer s.pullMu.Unlock()
		return s.pullList(ctx, *fp.Blocklist, true)
	case fp.Allowlist != nil:
		lg.WithField("allowlist", fp.Allowlist.Name).Info("Received allowlist force_pull command from PAPI")
		s.pullMu.Lock()
		defer s.pullMu.Unlock()
		ranges, err := s.pullAllowlist(ctx, *fp.Allowlist)
		if err != nil {
			return err
		}
		return s.endAllowed(ctx, ranges)
	}
	lg.Info("Received force_pull command from PAPI, pulling community, 3rd-party blocklists and allowlists")
	return s.Pull(ctx, true)
}

// PAPIPermissions is GET <papi_url>v1/permissions: the plan and the
// categories of orders this instance receives.
type PAPIPermissions struct {
	Status     string   `json:"status"`
	Plan       string   `json:"plan"`
	Categories []string `json:"categories"`
}

// GetPAPIPermissions asks PAPI what this instance may receive (cscli papi
// status).
func (c *Client) GetPAPIPermissions(ctx context.Context, papiURL string) (PAPIPermissions, error) {
	var perms PAPIPermissions
	base, err := url.Parse(papiURL)
	if err != nil {
		return perms, fmt.Errorf("papi_url %q: %w", papiURL, err)
	}
	u := base.ResolveReference(&url.URL{Path: "v1/permissions"}).String()
	for attempt := 0; ; attempt++ {
		tok, err := c.validToken(ctx)
		if err != nil {
			return perms, err
		}
		resp, cancel, err := c.get(ctx, u, tok, 0)
		if err != nil {
			return perms, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		cancel()
		if err != nil {
			return perms, fmt.Errorf("reading PAPI's permissions: %w", err)
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			if err := json.Unmarshal(body, &perms); err != nil {
				return perms, fmt.Errorf("decoding PAPI's permissions: %w", err)
			}
			return perms, nil
		case (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) && attempt < authRetries:
			c.dropToken(tok)
			continue
		}
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return perms, fmt.Errorf("unable to query PAPI : %s (%d)", e.Error, resp.StatusCode)
	}
}
