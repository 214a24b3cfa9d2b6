package lapi

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	log "github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// registerWatcher is POST /v1/watchers (cscli lapi register).
func (s *Server) registerWatcher(c echo.Context) error {
	ctx := c.Request().Context()
	body, status, err := readBody(c, unauthBodyLimit)
	if err != nil {
		return jsonError(c, status, err.Error())
	}
	var req models.WatcherRegistrationRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return jsonError(c, http.StatusBadRequest, err.Error())
	}
	var problems []string
	if req.MachineID == nil || *req.MachineID == "" {
		problems = append(problems, "machine_id in body is required")
	}
	if req.Password == nil || *req.Password == "" {
		problems = append(problems, "password in body is required")
	}
	if req.RegistrationToken != "" && (len(req.RegistrationToken) < 32 || len(req.RegistrationToken) > 255) {
		problems = append(problems, "registration_token in body should be between 32 and 255 characters long")
	}
	if len(problems) > 0 {
		return jsonError(c, http.StatusUnprocessableEntity, "validation failure list:\n"+strings.Join(problems, "\n"))
	}
	addr := s.clientAddr(c)
	if s.cfg.API.Server.DisableRemoteLAPIRegistration && !addr.IsLoopback() {
		return forbidden(c)
	}
	validated := false
	statusOK := http.StatusCreated
	if req.RegistrationToken != "" {
		ar := s.cfg.API.Server.AutoRegistration
		// constant time: the token is a shared secret
		if ar == nil || !ar.Enabled || subtle.ConstantTimeCompare([]byte(req.RegistrationToken), []byte(ar.Token)) != 1 {
			return jsonError(c, http.StatusUnauthorized, "invalid token for auto registration")
		}
		inRange := false
		for _, p := range s.autoRanges {
			if p.Contains(addr) {
				inRange = true
			}
		}
		if !inRange {
			return jsonError(c, http.StatusUnauthorized, "IP not in allowed range for auto registration")
		}
		validated, statusOK = true, http.StatusAccepted
	}
	// A name that exists is refused before the costly hash; upstream says
	// so in its answer anyway.
	if _, err := s.store.GetMachine(ctx, *req.MachineID); err == nil {
		return jsonError(c, http.StatusForbidden, "user '"+*req.MachineID+"': user already exist")
	} else if !errors.Is(err, store.ErrNotFound) {
		return s.storeError(c, err)
	}
	if wait := s.logins.registration(addr, s.now()); wait > 0 {
		s.log.WithField("ip", addr.String()).Debug("registration refused: too many attempts")
		return tooManyLogins(c, wait)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(*req.Password), bcrypt.DefaultCost)
	if err != nil {
		return jsonError(c, http.StatusBadRequest, "hashing password: "+err.Error())
	}
	err = s.store.CreateMachine(ctx, store.Machine{MachineID: *req.MachineID, PasswordHash: string(hash), IPAddress: addr.String(), IsValidated: validated}, false)
	if errors.Is(err, store.ErrExists) {
		return jsonError(c, http.StatusForbidden, "user '"+*req.MachineID+"': user already exist")
	}
	if err != nil {
		return s.storeError(c, err)
	}
	s.log.WithFields(log.Fields{"machine": *req.MachineID, "ip": addr.String(), "validated": validated}).Info("machine registered")
	return c.NoContent(statusOK)
}

// deleteSelf is DELETE /v1/watchers/self.
func (s *Server) deleteSelf(c echo.Context) error {
	id := c.Get(ctxMachine).(string)
	if err := s.store.DeleteMachine(c.Request().Context(), id); err != nil {
		return s.storeError(c, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// heartbeat is GET /v1/heartbeat.
func (s *Server) heartbeat(c echo.Context) error {
	if err := s.store.MachineHeartbeat(c.Request().Context(), c.Get(ctxMachine).(string)); err != nil {
		return s.storeError(c, err)
	}
	return c.NoContent(http.StatusOK)
}

// usageMetrics is POST /v1/usage-metrics: checked for shape, stored.
func (s *Server) usageMetrics(c echo.Context) error {
	body, status, err := readBody(c, usageBodyLimit)
	if err != nil {
		return jsonError(c, status, err.Error())
	}
	var payload struct {
		RemediationComponents []map[string]json.RawMessage `json:"remediation_components"`
		LogProcessors         []map[string]json.RawMessage `json:"log_processors"`
	}
	if err := json.Unmarshal(body, &payload); err != nil {
		return jsonError(c, http.StatusBadRequest, err.Error())
	}
	b, isBouncer := c.Get(ctxBouncer).(*store.Bouncer)
	items, kind, by := payload.LogProcessors, "log_processor", ""
	if isBouncer {
		items, kind, by = payload.RemediationComponents, "remediation_component", b.Name
		if len(payload.LogProcessors) > 0 {
			return jsonError(c, http.StatusBadRequest, "bouncers can only send remediation_components")
		}
	} else {
		by, _ = c.Get(ctxMachine).(string)
		if len(payload.RemediationComponents) > 0 {
			return jsonError(c, http.StatusBadRequest, "machines can only send log_processors")
		}
	}
	if len(items) != 1 {
		return jsonError(c, http.StatusBadRequest, "exactly one item is expected")
	}
	item := items[0]
	for _, k := range []string{"version", "utc_startup_timestamp"} {
		if v, ok := item[k]; !ok || string(v) == "null" {
			return jsonError(c, http.StatusUnprocessableEntity, "validation failure list:\n"+k+" in body is required")
		}
	}
	var version string
	if json.Unmarshal(item["version"], &version) != nil || len(version) > 255 {
		return jsonError(c, http.StatusUnprocessableEntity, "validation failure list:\nversion in body must be a string of at most 255 characters")
	}
	var ts int64
	if json.Unmarshal(item["utc_startup_timestamp"], &ts) != nil {
		return jsonError(c, http.StatusUnprocessableEntity, "validation failure list:\nutc_startup_timestamp in body must be of type integer")
	}
	var meta struct {
		OS struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"os"`
		FeatureFlags []string `json:"feature_flags"`
	}
	raw, _ := json.Marshal(item)
	if json.Unmarshal(raw, &meta) == nil && meta.OS.Name != "" {
		if err := s.store.SetComponentOS(c.Request().Context(), isBouncer, by, meta.OS.Name, meta.OS.Version, strings.Join(meta.FeatureFlags, ",")); err != nil {
			s.log.WithError(err).Warn("recording component OS")
		}
	}
	if err := s.store.StoreUsageMetrics(c.Request().Context(), kind, by, string(raw)); err != nil {
		return s.storeError(c, err)
	}
	s.usage.invalidate()
	return c.NoContent(http.StatusCreated)
}
