package capi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ips/rampart/internal/version"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// usageSentKey is the store setting holding the last usage report sent.
const usageSentKey = "capi_usage_sent"

// UsageOS is an operating system in the usage metrics.
type UsageOS struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Family  string `json:"family,omitempty"`
}

// UsageComponent is one component of POST /v3/usage-metrics.
type UsageComponent struct {
	Name                string                           `json:"name,omitempty"`
	Type                string                           `json:"type,omitempty"`
	Version             string                           `json:"version"`
	OS                  *UsageOS                         `json:"os,omitempty"`
	FeatureFlags        []string                         `json:"feature_flags"`
	LastPush            int64                            `json:"last_push,omitempty"`
	LastUpdate          int64                            `json:"last_update,omitempty"`
	LastPull            int64                            `json:"last_pull,omitempty"`
	Datasources         map[string]int                   `json:"datasources,omitempty"`
	HubItems            map[string][]models.UsageHubItem `json:"hub_items,omitempty"`
	ConsoleOptions      []string                         `json:"console_options,omitempty"`
	UtcStartupTimestamp *int64                           `json:"utc_startup_timestamp"`
	Metrics             []*models.UsageWindow            `json:"metrics"`
}

// UsageRequest is POST /v3/usage-metrics.
type UsageRequest struct {
	LAPI                  UsageComponent    `json:"lapi"`
	LogProcessors         []*UsageComponent `json:"log_processors"`
	RemediationComponents []*UsageComponent `json:"remediation_components"`
}

// usageWindow is the LAPI's own report window, as upstream's.
const usageWindow = 30 * time.Minute

// SendUsageMetrics posts the usage reports the components sent the LAPI
// since the last call, with the LAPI's own. They are marked sent after a
// success, or after a 422 (CAPI will never take them); any other failure
// keeps them for the next run.
func (s *Service) SendUsageMetrics(ctx context.Context) error {
	after := int64(0)
	if v, err := s.o.Store.GetKV(ctx, usageSentKey); err == nil {
		after, _ = strconv.ParseInt(v, 10, 64)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	reports, last, err := s.o.Store.UsageReportsAfter(ctx, after)
	if err != nil {
		return err
	}
	now := time.Now()
	osName, osVersion := version.DetectOS()
	req := UsageRequest{
		LAPI: UsageComponent{Version: s.o.Version, OS: &UsageOS{Name: osName, Version: osVersion, Family: runtime.GOOS}, FeatureFlags: []string{},
			ConsoleOptions: []string{s.o.ConsoleOptions},
			Metrics: []*models.UsageWindow{{Meta: models.UsageWindowMeta{UtcNowTimestamp: now.Unix(), WindowSizeSeconds: int64(usageWindow.Seconds())},
				Items: []*models.UsageItem{}}}},
		LogProcessors: []*UsageComponent{}, RemediationComponents: []*UsageComponent{},
	}
	type key struct{ kind, by string }
	byComp := map[key]*UsageComponent{}
	for _, r := range reports {
		k := key{r.Kind, r.By}
		c := byComp[k]
		var base models.BaseUsage
		var extra struct {
			Type        string                           `json:"type"`
			HubItems    map[string][]models.UsageHubItem `json:"hub_items"`
			Datasources map[string]int                   `json:"datasources"`
		}
		if json.Unmarshal([]byte(r.Payload), &base) != nil || json.Unmarshal([]byte(r.Payload), &extra) != nil {
			continue // stored as received and validated: not expected
		}
		if c == nil {
			c = &UsageComponent{Name: r.By, FeatureFlags: []string{}, Metrics: []*models.UsageWindow{}}
			byComp[k] = c
			if r.Kind == "remediation_component" {
				req.RemediationComponents = append(req.RemediationComponents, c)
			} else {
				req.LogProcessors = append(req.LogProcessors, c)
			}
		}
		// The newest report describes the component.
		c.Version, c.Type, c.HubItems, c.Datasources = base.Version, extra.Type, extra.HubItems, extra.Datasources
		if base.OS != nil {
			c.OS = &UsageOS{Name: base.OS.Name, Version: base.OS.Version}
		}
		if base.FeatureFlags != nil {
			c.FeatureFlags = base.FeatureFlags
		}
		if base.UtcStartupTimestamp > 0 {
			ts := base.UtcStartupTimestamp
			c.UtcStartupTimestamp = &ts
		}
		c.Metrics = append(c.Metrics, base.Metrics...)
	}
	if err := s.fillLastSeen(ctx, req.LogProcessors, req.RemediationComponents); err != nil {
		return err
	}
	status, err := s.o.Client.do(ctx, http.MethodPost, "v3/usage-metrics", nil, req, nil)
	if err != nil && status != http.StatusUnprocessableEntity {
		return err
	}
	if err != nil {
		s.log.WithError(err).Warn("the Central API refused the usage metrics as invalid: not sent again")
	}
	if last > after {
		return s.o.Store.PutKV(ctx, usageSentKey, strconv.FormatInt(last, 10))
	}
	return nil
}

// fillLastSeen adds the machines' last push and update and the bouncers'
// last pull.
func (s *Service) fillLastSeen(ctx context.Context, procs, bouncers []*UsageComponent) error {
	if len(procs) > 0 {
		ms, err := s.o.Store.ListMachines(ctx)
		if err != nil {
			return err
		}
		for _, c := range procs {
			for _, m := range ms {
				if m.MachineID == c.Name {
					c.LastUpdate = m.UpdatedAt.Unix()
					if m.LastPush != nil {
						c.LastPush = m.LastPush.Unix()
					}
				}
			}
		}
	}
	if len(bouncers) > 0 {
		bs, err := s.o.Store.ListBouncers(ctx)
		if err != nil {
			return err
		}
		for _, c := range bouncers {
			for _, b := range bs {
				if b.Name == c.Name && b.LastPull != nil {
					c.LastPull = b.LastPull.Unix()
				}
			}
		}
	}
	return nil
}

// consoleOptions is upstream's one-element list: the enabled console
// options joined with ",", in its order.
func consoleOptions(p *SharePolicy, management bool) string {
	var on []string
	if p != nil {
		for _, o := range []struct {
			name string
			on   bool
		}{{"custom", p.Console.Custom}, {"tainted", p.Console.Tainted}, {"manual", p.Console.Manual}, {"console_management", management}, {"context", p.Console.Context}} {
			if o.on {
				on = append(on, o.name)
			}
		}
	}
	return strings.Join(on, ",")
}
