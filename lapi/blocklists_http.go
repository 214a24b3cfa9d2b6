package lapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-ips/rampart/lapi/blocklists"
)

// listBlocklists reports the subscriptions and what each did last (GET
// /v1/blocklists, cscli blocklists list).
func (s *Server) listBlocklists(c echo.Context) error {
	st := s.lists.Statuses()
	if st == nil {
		st = []blocklists.Status{}
	}
	return c.JSON(http.StatusOK, st)
}

// refreshBlocklists refreshes the feeds now (POST /v1/blocklists/refresh,
// ?name=a,b for some) and answers when they are done, with their errors.
// A machine may ask from the trusted addresses only, as for the admin
// deletions: a refresh costs downloads and a write.
func (s *Server) refreshBlocklists(c echo.Context) error {
	if !s.isTrusted(c) {
		return jsonError(c, http.StatusForbidden, "blocklist refresh is allowed from api.server.trusted_ips only")
	}
	var names []string
	if v := c.QueryParam("name"); v != "" {
		names = strings.Split(v, ",")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Minute)
	defer cancel()
	if err := s.lists.Refresh(ctx, names...); err != nil {
		return jsonError(c, http.StatusBadGateway, err.Error())
	}
	return s.listBlocklists(c)
}
