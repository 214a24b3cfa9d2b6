package lapi

import (
	"cmp"
	"context"
	"embed"
	"fmt"
	"math"
	"net/http"
	"path"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/lapi/usage"
	"github.com/rampart-ips/rampart/models"
)

//go:embed ui/index.html ui/app.js ui/style.css ui/favicon.svg
var uiFiles embed.FS

// Bounds on what one summary may cost; the page refreshes every 10 s.
const (
	uiMaxDecisions = 200
	uiTop          = 10
	uiHours        = 24
	uiMaxBouncers  = 100
	uiMaxAgents    = 100
	uiMaxSources   = 50  // per agent
	uiMaxFilter    = 256 // bytes of an origin or list name in the decision filter
)

// uiRoutes registers the read-only status page. It has no login of its own,
// so it is limited to the same trusted addresses as the admin deletions.
func (s *Server) uiRoutes(e *echo.Echo) {
	g := e.Group("/ui", s.uiTrusted)
	g.GET("", s.uiAsset)
	g.GET("/", s.uiAsset)
	g.GET("/api/summary", s.uiSummary)
	g.GET("/*", s.uiAsset)
}

func (s *Server) uiTrusted(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.isTrusted(c) {
			return s.forbiddenIP(c)
		}
		// The page only ever talks to itself: a strict policy makes an
		// escaping slip in app.js far less exploitable.
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}

var uiTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

func (s *Server) uiAsset(c echo.Context) error {
	name := path.Base(c.Param("*"))
	if name == "" || name == "." || name == "/" {
		name = "index.html"
	}
	data, err := uiFiles.ReadFile("ui/" + name)
	if err != nil {
		return echo.ErrNotFound
	}
	// A fixed table: the host's mime.types must not change what we send.
	ct, ok := uiTypes[path.Ext(name)]
	if !ok {
		return echo.ErrNotFound
	}
	return c.Blob(http.StatusOK, ct, data)
}

// uiSummary is what the page shows, gathered in one request so the page
// makes a single round trip per refresh.
type uiSummary struct {
	Now       time.Time       `json:"now"`
	Decisions []uiDecision    `json:"decisions"`
	HourStart time.Time       `json:"hour_start"`
	PerHour   []int64         `json:"alerts_per_hour"`
	Scenarios []store.UICount `json:"top_scenarios"`
	Sources   []store.UICount `json:"top_sources"`
	Bouncers  []uiBouncer     `json:"bouncers"`
	Agents    []uiAgent       `json:"agents"`
	Truncated bool            `json:"decisions_truncated"`
	// Filter is the decision list's filter (?origin=&list=), as applied.
	Filter store.UIOriginFilter `json:"decisions_filter"`
	// Origins counts every active decision by where it came from.
	Origins []store.UIOrigin `json:"decision_origins"`
	// Notifications are the deliveries since the LAPI started.
	Notifications []models.NotificationStatus `json:"notifications"`
}

// notificationStatuses is every notification's deliveries, for the page
// and GET /v1/notifications alike.
func (s *Server) notificationStatuses() []models.NotificationStatus {
	out := []models.NotificationStatus{}
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return new(t.UTC())
	}
	for _, st := range s.notify.Stats() {
		n := models.NotificationStatus{Name: st.Name, Type: st.Type, Sent: st.Sent, Failed: st.Failed,
			Dropped: st.Dropped, Queued: st.Queued, Retrying: st.Retrying, LastSent: opt(st.LastSent),
			LastError: st.LastError, LastErrorAt: opt(st.LastErrorAt), Recent: make([]models.NotificationDelivery, len(st.Recent))}
		for i, d := range st.Recent {
			n.Recent[i] = models.NotificationDelivery{At: d.At.UTC(), Alerts: d.Alerts, Attempts: d.Attempts, Error: d.Error}
		}
		out = append(out, n)
	}
	return out
}

// listNotifications reports the notifications' deliveries (GET
// /v1/notifications, cscli notifications list).
func (s *Server) listNotifications(c echo.Context) error {
	return c.JSON(http.StatusOK, s.notificationStatuses())
}

// uiBouncer adds the traffic a bouncer reported dropping (usage metrics,
// summed over the retention window). The totals are null when the bouncer
// never reported, so the page can tell "dropped nothing" from "did not say".
type uiBouncer struct {
	store.UIBouncer
	DroppedPackets *int64 `json:"dropped_packets"`
	DroppedBytes   *int64 `json:"dropped_bytes"`
}

// uiAgent is one machine's log sources as its usage reports count them.
type uiAgent struct {
	Machine          string     `json:"machine"`
	Version          string     `json:"version"`
	LastReport       *time.Time `json:"last_report"` // null when no report could be read
	Sources          []uiSource `json:"sources"`
	SourcesTruncated bool       `json:"sources_truncated"`
}

// uiSource is one acquisition source: lines read, and how many of them the
// parsers took or left.
type uiSource struct {
	Type     string `json:"type"`
	Source   string `json:"source"`
	Read     int64  `json:"read"`
	Parsed   int64  `json:"parsed"`
	Unparsed int64  `json:"unparsed"`
}

type uiDecision struct {
	store.UIDecision
	ExpiresIn int64 `json:"expires_in"` // seconds, so the page needs no clock of its own
}

func (s *Server) uiSummary(c echo.Context) error {
	ctx := c.Request().Context()
	now := s.now()
	out := uiSummary{Now: now.UTC()}
	out.Filter = store.UIOriginFilter{Origin: c.QueryParam("origin"), List: c.QueryParam("list")}
	if len(out.Filter.Origin) > uiMaxFilter || len(out.Filter.List) > uiMaxFilter {
		return jsonError(c, http.StatusBadRequest, fmt.Sprintf("origin and list are at most %d bytes", uiMaxFilter))
	}
	if out.Filter.Origin == "" {
		out.Filter.List = ""
	}
	var err error
	if out.Origins, err = s.store.UIDecisionOrigins(ctx, now); err != nil {
		return s.storeError(c, err)
	}
	ds, err := s.store.UIActiveDecisions(ctx, now, out.Filter, uiMaxDecisions+1)
	if err != nil {
		return s.storeError(c, err)
	}
	if len(ds) > uiMaxDecisions {
		ds, out.Truncated = ds[:uiMaxDecisions], true
	}
	out.Decisions = make([]uiDecision, len(ds))
	for i, d := range ds {
		out.Decisions[i] = uiDecision{UIDecision: d, ExpiresIn: int64(d.Until.Sub(now).Seconds())}
	}
	start, counts, err := s.store.UIAlertsPerHour(ctx, now, uiHours)
	if err != nil {
		return s.storeError(c, err)
	}
	out.HourStart, out.PerHour = start.UTC(), counts
	since := now.Add(-uiHours * time.Hour)
	if out.Scenarios, err = s.store.UITopAlerts(ctx, "scenario", since, uiTop); err != nil {
		return s.storeError(c, err)
	}
	if out.Sources, err = s.store.UITopAlerts(ctx, "source", since, uiTop); err != nil {
		return s.storeError(c, err)
	}
	if out.Bouncers, err = s.uiBouncers(ctx); err != nil {
		return s.storeError(c, err)
	}
	if out.Agents, err = s.uiAgents(ctx); err != nil {
		return s.storeError(c, err)
	}
	out.Notifications = s.notificationStatuses()
	return c.JSON(http.StatusOK, out)
}

// uiBouncers lists the bouncers with the traffic they reported dropping,
// from the cached summaries of their usage reports.
func (s *Server) uiBouncers(ctx context.Context) ([]uiBouncer, error) {
	bs, err := s.store.UIBouncers(ctx, uiMaxBouncers)
	if err != nil {
		return nil, err
	}
	comps, err := s.usageSummary(ctx, "remediation_component")
	if err != nil {
		return nil, err
	}
	byName := map[string]*usage.Component{}
	for _, c := range comps {
		byName[c.Name] = c
	}
	out := make([]uiBouncer, len(bs))
	for i, b := range bs {
		out[i].UIBouncer = b
		if c := byName[b.Name]; c != nil {
			out[i].DroppedPackets = new(usageCount(c.Total(models.UsageDropped, models.UsageUnitPacket, nil)))
			out[i].DroppedBytes = new(usageCount(c.Total(models.UsageDropped, models.UsageUnitByte, nil)))
		}
	}
	return out, nil
}

// uiAgents lists the machines that sent usage reports, with their sources.
func (s *Server) uiAgents(ctx context.Context) ([]uiAgent, error) {
	comps, err := s.usageSummary(ctx, "log_processor")
	if err != nil {
		return nil, err
	}
	if len(comps) > uiMaxAgents {
		comps = slices.Clone(comps) // the cached order stays by name
		// Keep the agents that reported last: they are the ones running.
		slices.SortStableFunc(comps, func(a, b *usage.Component) int { return b.LastReport.Compare(a.LastReport) })
		comps = comps[:uiMaxAgents]
		slices.SortFunc(comps, func(a, b *usage.Component) int { return cmp.Compare(a.Name, b.Name) })
	}
	out := make([]uiAgent, 0, len(comps))
	for _, c := range comps {
		a := uiAgent{Machine: c.Name, Version: c.Version, Sources: []uiSource{}}
		if !c.LastReport.IsZero() {
			a.LastReport = new(c.LastReport.UTC())
		}
		type key struct{ typ, src string }
		idx := map[key]int{}
		for _, v := range c.Values {
			// Upstream agents also send parsed/unparsed per parser node
			// (parser_name): those would count a line once per node.
			_, perNode := v.Labels["parser_name"]
			switch {
			case v.Unit != models.UsageUnitLine || perNode:
				continue
			case v.Name != models.UsageRead && v.Name != models.UsageParsed && v.Name != models.UsageUnparsed &&
				v.Name != models.UsageGlobalParsed && v.Name != models.UsageGlobalUnparsed:
				continue
			}
			k := key{v.Labels["datasource_type"], v.Labels["source"]}
			i, ok := idx[k]
			if !ok {
				i = len(a.Sources)
				idx[k] = i
				a.Sources = append(a.Sources, uiSource{Type: k.typ, Source: k.src})
			}
			switch n := usageCount(v.Value); v.Name {
			case models.UsageRead:
				a.Sources[i].Read += n
			case models.UsageParsed, models.UsageGlobalParsed:
				a.Sources[i].Parsed += n
			case models.UsageUnparsed, models.UsageGlobalUnparsed:
				a.Sources[i].Unparsed += n
			}
		}
		slices.SortFunc(a.Sources, func(x, y uiSource) int {
			return cmp.Or(cmp.Compare(x.Type, y.Type), cmp.Compare(x.Source, y.Source))
		})
		if len(a.Sources) > uiMaxSources {
			a.Sources, a.SourcesTruncated = a.Sources[:uiMaxSources], true
		}
		out = append(out, a)
	}
	return out, nil
}

// usageCount turns a summed metric into a whole number for display; a
// component can send any float, so out-of-range values are clamped.
func usageCount(v float64) int64 {
	switch {
	case math.IsNaN(v) || v < 0:
		return 0
	case v >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(math.Round(v))
}
