package lapi

import (
	"embed"
	"net/http"
	"path"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-ips/rampart/lapi/store"
)

//go:embed ui/index.html ui/app.js ui/style.css
var uiFiles embed.FS

// Bounds on what one summary may cost; the page refreshes every 10 s.
const (
	uiMaxDecisions = 200
	uiTop          = 10
	uiHours        = 24
	uiMaxBouncers  = 100
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
	Now       time.Time         `json:"now"`
	Decisions []uiDecision      `json:"decisions"`
	HourStart time.Time         `json:"hour_start"`
	PerHour   []int64           `json:"alerts_per_hour"`
	Scenarios []store.UICount   `json:"top_scenarios"`
	Sources   []store.UICount   `json:"top_sources"`
	Bouncers  []store.UIBouncer `json:"bouncers"`
	Truncated bool              `json:"decisions_truncated"`
}

type uiDecision struct {
	store.UIDecision
	ExpiresIn int64 `json:"expires_in"` // seconds, so the page needs no clock of its own
}

func (s *Server) uiSummary(c echo.Context) error {
	ctx := c.Request().Context()
	now := s.now()
	out := uiSummary{Now: now.UTC()}
	ds, err := s.store.UIActiveDecisions(ctx, now, uiMaxDecisions+1)
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
	if out.Bouncers, err = s.store.UIBouncers(ctx, uiMaxBouncers); err != nil {
		return s.storeError(c, err)
	}
	return c.JSON(http.StatusOK, out)
}
