package lapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/internal/netaddr"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// postAlerts is POST /v1/alerts: store alerts, turning those without
// decisions into decisions through the profiles. The whole batch is one
// transaction, so a failure leaves nothing half-written.
func (s *Server) postAlerts(c echo.Context) error {
	ctx := c.Request().Context()
	body, status, err := readBody(c, authBodyLimit)
	if err != nil {
		return jsonError(c, status, err.Error())
	}
	alerts, err := models.DecodeAlerts(body)
	if err != nil {
		var ve *models.ValidationError
		if errors.As(err, &ve) {
			return jsonError(c, http.StatusInternalServerError, ve.Error())
		}
		return jsonError(c, http.StatusBadRequest, err.Error())
	}
	machineID, _ := c.Get(ctxMachine).(string)
	now := s.now()
	allow, err := s.allow.snapshot(ctx)
	if err != nil {
		return s.storeError(c, err)
	}
	batch := make([]store.NewAlert, 0, len(alerts))
	var notifyTo [][]string // per batch entry, when some alert has any
	for _, a := range alerts {
		na, keep, names, err := s.prepareAlert(ctx, a, machineID, now, allow, false)
		var prot *protectedError
		if errors.As(err, &prot) {
			s.log.WithFields(log.Fields{"machine": machineID, "value": prot.value, "protected": prot.hit.String()}).Warn("refusing a manual decision on a protected address")
			return jsonError(c, http.StatusBadRequest, err.Error())
		}
		if err != nil {
			// A time out of range would be stored wrapped around (a ban
			// until 2300 kept as expired in 1716): the request is wrong.
			if errors.Is(err, models.ErrTimeRange) {
				return jsonError(c, http.StatusBadRequest, err.Error())
			}
			var pe *profiles.EvalError
			if errors.As(err, &pe) {
				return jsonError(c, http.StatusInternalServerError, err.Error())
			}
			return jsonError(c, http.StatusInternalServerError, err.Error())
		}
		if keep {
			if len(names) > 0 && notifyTo == nil {
				notifyTo = make([][]string, len(batch), len(alerts))
			}
			if notifyTo != nil {
				notifyTo = append(notifyTo, names)
			}
			batch = append(batch, na)
		}
	}
	ids, err := s.store.PushAlerts(ctx, machineID, batch)
	if err != nil {
		return s.storeError(c, err)
	}
	// Stored (and so on the stream) first; the broker only queues. A
	// retried push notifies nothing again.
	for i, names := range notifyTo {
		if !batch[i].Duplicate {
			s.notify.Enqueue(names, ids[i])
		}
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.FormatInt(id, 10)
	}
	return c.JSON(http.StatusCreated, out)
}

// prepareAlert normalises one alert and computes its decisions, and the
// notifications it goes to once stored. keep=false drops the alert
// (allowlisted source, or every decision invalid). keepUUIDs keeps the
// decisions' own UUIDs (the console's, which its later orders name).
func (s *Server) prepareAlert(ctx context.Context, a *models.Alert, machineID string, now time.Time, allow *allowSnapshot, keepUUIDs bool) (store.NewAlert, bool, []string, error) {
	// Built only when something is logged: most alerts log nothing, and
	// building the fields' map for each showed in a replay's LAPI profile.
	alertLog := func() *log.Entry { return s.log.WithFields(log.Fields{"scenario": a.Scenario, "machine": machineID}) }
	a.Source.Scope = models.NormalizeScope(a.Source.Scope)
	for _, d := range a.Decisions {
		d.Scope = models.NormalizeScope(d.Scope)
	}
	// The agent's UUID identifies a retried push; anything else gets one.
	var id string
	if u, err := uuid.Parse(a.UUID); err == nil {
		id = u.String()
	} else {
		id = models.NewAlertUUID()
	}
	na := store.NewAlert{Alert: a, UUID: id, MachineID: machineID,
		StartAt: models.TimeOrNow(a.StartAt, now), StopAt: models.TimeOrNow(a.StopAt, now)}
	if err := models.CheckTime(na.StartAt); err != nil {
		return na, false, nil, fmt.Errorf("start_at: %w", err)
	}
	if err := models.CheckTime(na.StopAt); err != nil {
		return na, false, nil, fmt.Errorf("stop_at: %w", err)
	}
	decisions := a.Decisions
	fromProfiles := false
	var notifyTo []string
	if len(decisions) == 0 {
		if store.IsAddressScope(a.Source.Scope) {
			if ok, reason := allow.check(a.Source.Value); ok {
				alertLog().WithFields(map[string]any{"value": a.Source.Value, "allowlist": reason}).Info("alert source is allowlisted: alert ignored")
				return na, false, nil, nil
			}
		}
		o, err := s.profiles.Load().Apply(ctx, a, s.store)
		if err != nil {
			return na, false, nil, err
		}
		decisions, notifyTo = o.Decisions, o.Notify
		fromProfiles = true
	} else if s.notify.Len() > 0 {
		// As upstream, an alert with its own decisions still goes to the
		// notifications of the profiles it matches; a filter failing on
		// it costs the notification only.
		var err error
		if notifyTo, err = s.profiles.Load().Notify(ctx, a, s.store); err != nil {
			alertLog().WithError(err).Warn("evaluating profiles for notifications")
		}
	}
	hadDecisions := len(decisions) > 0
	var kept []*models.Decision // those stored, for the signal
	for _, d := range decisions {
		// Upstream's swagger only asks for the key; an empty type is a
		// decision no bouncer can apply, dropped like an invalid address.
		if strings.TrimSpace(d.Type) == "" {
			alertLog().WithField("value", d.Value).Warn("dropping decision without a type")
			continue
		}
		// cscli decisions add: one alert, one decision, answered with a
		// 400 rather than silently dropped.
		manual := d.Origin == "cscli" && a.Kind == "cscli"
		dur, err := models.ParseDuration(d.Duration)
		if err != nil {
			return na, false, nil, fmt.Errorf("decision on %s: %w", d.Value, err)
		}
		until, err := models.Expiry(na.StopAt, dur)
		if err != nil {
			return na, false, nil, fmt.Errorf("decision on %s: duration %q from stop_at: %w", d.Value, d.Duration, err)
		}
		id := ""
		if keepUUIDs {
			if u, err := uuid.Parse(d.UUID); err == nil {
				id = u.String()
			}
		}
		if id == "" {
			id = uuid.NewString()
		}
		nd := store.NewDecision{UUID: id, Until: until, Scenario: d.Scenario, Type: d.Type,
			Scope: d.Scope, Value: d.Value, Origin: d.Origin, Simulated: a.Simulated || (d.Simulated != nil && *d.Simulated)}
		if store.IsAddressScope(d.Scope) {
			p, err := netaddr.ParsePrefix(d.Value)
			if err != nil {
				alertLog().WithError(err).WithField("value", d.Value).Warn("dropping decision with an invalid address")
				continue
			}
			nd.Range = store.RangeOf(p)
			// The protected set binds everyone: kind and origin are the
			// sender's word, not a credential.
			if hit, ok := netaddr.Overlapping(allow.protected, p); ok {
				if manual {
					return na, false, nil, &protectedError{value: d.Value, p: p, hit: hit}
				}
				alertLog().WithFields(map[string]any{"value": d.Value, "protected": hit.String(), "origin": d.Origin}).Warn("refusing decision on a protected address")
				continue
			}
			// Operators may force a manual ban past the user allowlists
			// (cscli -B); nothing else may target an allowlisted address.
			if !manual {
				if ok, reason := allow.checkUser(nd.Range); ok {
					alertLog().WithFields(map[string]any{"value": d.Value, "allowlist": reason, "origin": d.Origin}).Warn("refusing decision on an allowlisted address")
					continue
				}
			}
		}
		na.Decisions = append(na.Decisions, nd)
		kept = append(kept, d)
	}
	if hadDecisions && len(na.Decisions) == 0 && !fromProfiles {
		alertLog().Warn("every decision of the alert was dropped: alert ignored")
		return na, false, nil, nil
	}
	if p := s.share.Load(); p != nil {
		na.Signal = p.Encode(a, kept, machineID, id, now)
	}
	return na, true, notifyTo, nil
}

var alertFilterKeys = map[string]bool{"scope": true, "value": true, "scenario": true, "ip": true, "range": true, "contains": true,
	"since": true, "until": true, "created_before": true, "decision_type": true, "origin": true, "include_capi": true,
	"has_active_decision": true, "simulated": true, "kind": true, "with_decisions": true, "limit": true, "sort": true,
	"machine_id": true}

// alertFilter parses the GET/DELETE /v1/alerts parameters; unknown ones
// are errors, as upstream.
func alertFilter(q url.Values, now time.Time, forDelete bool) (store.AlertFilter, error) {
	f := store.AlertFilter{Contains: true, Limit: 100}
	for k, vs := range q {
		if !alertFilterKeys[k] || (forDelete && (k == "with_decisions" || k == "sort")) {
			return f, fmt.Errorf("filter parameter '%s' is unknown (=%s): invalid filter", k, vs[0])
		}
		v := vs[0]
		dur := func() (*time.Time, error) {
			d, err := models.ParseDuration(v)
			if err != nil {
				return nil, fmt.Errorf("while parsing duration '%s': %w", v, err)
			}
			t := now.Add(-d)
			if err := models.CheckTime(t); err != nil {
				return nil, fmt.Errorf("while parsing duration '%s': %w", v, err)
			}
			return &t, nil
		}
		var err error
		switch k {
		case "scope":
			f.Scope = models.NormalizeScope(v)
		case "value":
			f.Value = v
		case "scenario":
			f.Scenario = v
		case "ip", "range":
			var r store.Range
			r, err = store.ParseRange(v)
			if err != nil {
				return f, fmt.Errorf("unable to convert '%s' to int: %w", v, err)
			}
			f.Range = &r
		case "contains":
			f.Contains, err = parseBoolParam(v)
		case "since":
			f.Since, err = dur()
		case "until":
			f.Until, err = dur()
		case "created_before":
			f.CreatedBefore, err = dur()
		case "decision_type":
			f.DecisionType = v
		case "origin":
			f.Origin = v
		case "include_capi":
			f.IncludeCAPI, err = parseBoolParam(v)
		case "has_active_decision":
			var b bool
			b, err = parseBoolParam(v)
			f.HasActiveDecision = &b
		case "simulated":
			f.ExcludeSimulated = v == "false"
		case "kind":
			f.Kind = v
		case "machine_id":
			f.MachineID = v
		case "with_decisions":
			var b bool
			b, err = parseBoolParam(v)
			f.WithoutDecisions = !b
		case "limit":
			f.Limit, err = strconv.Atoi(v)
		case "sort":
			f.SortAsc = v == "ASC" || v == "asc"
		}
		if err != nil {
			return f, err
		}
	}
	if !q.Has("include_capi") {
		f.IncludeCAPI = true
	}
	return f, nil
}

// getAlerts is GET/HEAD /v1/alerts.
func (s *Server) getAlerts(c echo.Context) error {
	now := s.now()
	f, err := alertFilter(c.QueryParams(), now, false)
	if err != nil {
		return jsonError(c, http.StatusInternalServerError, err.Error())
	}
	if c.Request().Method == http.MethodHead {
		return c.String(http.StatusOK, "")
	}
	alerts, err := s.store.QueryAlerts(c.Request().Context(), f, now)
	if err != nil {
		return s.storeError(c, err)
	}
	if len(alerts) == 0 {
		return c.JSONBlob(http.StatusOK, []byte("null"))
	}
	return c.JSON(http.StatusOK, alerts)
}

// getAlert is GET/HEAD /v1/alerts/{id}.
func (s *Server) getAlert(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("alert_id"), 10, 64)
	if err != nil {
		return jsonError(c, http.StatusBadRequest, "alert_id must be valid integer")
	}
	a, err := s.store.GetAlert(c.Request().Context(), id, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return jsonError(c, http.StatusNotFound, "object not found")
	}
	if err != nil {
		return s.storeError(c, err)
	}
	if c.Request().Method == http.MethodHead {
		return c.String(http.StatusOK, "")
	}
	return c.JSON(http.StatusOK, a)
}

func (s *Server) forbiddenIP(c echo.Context) error {
	return jsonError(c, http.StatusForbidden, fmt.Sprintf("access forbidden from this IP (%s)", c.RealIP()))
}

// deleteAlerts is DELETE /v1/alerts (trusted IPs only). The alerts'
// decisions end and reach bouncers as deleted, unlike upstream.
func (s *Server) deleteAlerts(c echo.Context) error {
	if !s.isTrusted(c) {
		return s.forbiddenIP(c)
	}
	f, err := alertFilter(c.QueryParams(), s.now(), true)
	if err != nil {
		return jsonError(c, http.StatusInternalServerError, err.Error())
	}
	f.Limit = 0
	n, err := s.store.DeleteAlerts(c.Request().Context(), f)
	if err != nil {
		return s.storeError(c, err)
	}
	s.log.WithFields(log.Fields{"count": n, "machine": c.Get(ctxMachine)}).Info("alerts deleted")
	return c.JSON(http.StatusOK, models.DeleteResponse{NbDeleted: strconv.FormatInt(n, 10)})
}

// deleteAlert is DELETE /v1/alerts/{id} (trusted IPs only).
func (s *Server) deleteAlert(c echo.Context) error {
	if !s.isTrusted(c) {
		return s.forbiddenIP(c)
	}
	id, err := strconv.ParseInt(c.Param("alert_id"), 10, 64)
	if err != nil {
		return jsonError(c, http.StatusBadRequest, "alert_id must be valid integer")
	}
	n, err := s.store.DeleteAlerts(c.Request().Context(), store.AlertFilter{ID: id, IncludeCAPI: true})
	if err != nil {
		return s.storeError(c, err)
	}
	if n == 0 {
		return jsonError(c, http.StatusInternalServerError, fmt.Sprintf("alert with id '%d' doesn't exist", id))
	}
	return c.JSON(http.StatusOK, models.DeleteResponse{NbDeleted: "1"})
}

// AddConsoleAlert stores an alert the console ordered (a PAPI "alert add")
// as an agent's would be, allowlists and signal included, keeping its
// decisions' UUIDs: the console deletes them by UUID later. It returns
// the alert's id, 0 when nothing was kept.
func (s *Server) AddConsoleAlert(ctx context.Context, a *models.Alert) (int64, error) {
	allow, err := s.allow.snapshot(ctx)
	if err != nil {
		return 0, err
	}
	if a.Source == nil {
		a.Source = &models.Source{}
	}
	na, keep, names, err := s.prepareAlert(ctx, a, "", s.now(), allow, true)
	if err != nil || !keep {
		return 0, err
	}
	batch := []store.NewAlert{na}
	ids, err := s.store.CreateAlerts(ctx, batch)
	if err != nil {
		return 0, err
	}
	if len(names) > 0 && !batch[0].Duplicate {
		s.notify.Enqueue(names, ids[0])
	}
	return ids[0], nil
}
