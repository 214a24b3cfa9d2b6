package lapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// allowChecker caches the allowlists, reloading when the store's allowlist
// version moves (cscli edits the database directly) and refreshing the host
// addresses periodically.
type allowChecker struct {
	st       *store.Store
	withHost bool

	mu      sync.Mutex
	version int64
	loaded  time.Time
	snap    *allowSnapshot
}

type allowEntry struct {
	list    string
	value   string
	r       store.Range
	expires *time.Time
	desc    string
}

type allowSnapshot struct {
	entries []allowEntry
	lists   []*store.AllowlistRow
}

func newAllowChecker(st *store.Store, withHost bool) *allowChecker {
	return &allowChecker{st: st, withHost: withHost, version: -1}
}

func hostEntries() []allowEntry {
	items := store.HostAllowItems()
	out := make([]allowEntry, 0, len(items))
	for _, it := range items {
		out = append(out, allowEntry{list: store.HostAllowlistName, value: it.Value, r: it.Range, desc: it.Description})
	}
	return out
}

func (a *allowChecker) snapshot(ctx context.Context) (*allowSnapshot, error) {
	v, err := a.st.AllowlistsVersion(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.snap != nil && v == a.version && now.Sub(a.loaded) < 30*time.Second {
		return a.snap, nil
	}
	lists, err := a.st.ListAllowlists(ctx)
	if err != nil {
		return nil, err
	}
	snap := &allowSnapshot{lists: lists}
	if a.withHost {
		snap.entries = hostEntries()
	}
	for _, l := range lists {
		for _, it := range l.Items {
			snap.entries = append(snap.entries, allowEntry{list: l.Name, value: it.Value, r: it.Range, expires: it.ExpiresAt, desc: it.Description})
		}
	}
	a.snap, a.version, a.loaded = snap, v, now
	return snap, nil
}

// check reports whether value (an IP or range) overlaps an allowlisted
// entry. Overlap, not containment: banning a range that holds an
// allowlisted address would lock that address out too.
func (s *allowSnapshot) check(value string) (bool, string) {
	q, err := store.ParseRange(value)
	if err != nil {
		return false, ""
	}
	now := time.Now()
	for _, e := range s.entries {
		if e.expires != nil && e.expires.Before(now) {
			continue
		}
		if e.r.Contains(q) || q.Contains(e.r) {
			return true, e.value + " from " + e.list
		}
	}
	return false, ""
}

func (s *Server) checkAllowlist(c echo.Context) error {
	raw := c.Param("*")
	v, err := url.PathUnescape(raw)
	if err != nil {
		v = raw
	}
	snap, err := s.allow.snapshot(c.Request().Context())
	if err != nil {
		return s.storeError(c, err)
	}
	ok, reason := snap.check(v)
	if c.Request().Method == http.MethodHead {
		if ok {
			return c.NoContent(http.StatusOK)
		}
		return c.NoContent(http.StatusNoContent)
	}
	return c.JSON(http.StatusOK, models.CheckAllowlistResponse{Allowlisted: ok, Reason: reason})
}

func (s *Server) bulkCheckAllowlist(c echo.Context) error {
	body, status, err := readBody(c, authBodyLimit)
	if err != nil {
		return jsonError(c, status, err.Error())
	}
	var req models.BulkCheckAllowlistRequest
	if err := jsonUnmarshal(body, &req); err != nil {
		return jsonError(c, http.StatusBadRequest, err.Error())
	}
	if len(req.Targets) == 0 {
		return jsonError(c, http.StatusBadRequest, "targets list is empty")
	}
	snap, err := s.allow.snapshot(c.Request().Context())
	if err != nil {
		return s.storeError(c, err)
	}
	resp := models.BulkCheckAllowlistResponse{Results: []models.BulkCheckAllowlistResult{}}
	for _, t := range req.Targets {
		if ok, reason := snap.check(t); ok {
			resp.Results = append(resp.Results, models.BulkCheckAllowlistResult{Target: t, Allowlists: []string{reason}})
		}
	}
	return c.JSON(http.StatusOK, resp)
}

func wireAllowlist(l *store.AllowlistRow, withContent bool) *models.Allowlist {
	out := &models.Allowlist{Name: l.Name, AllowlistID: strconv.FormatInt(l.ID, 10), Description: l.Description,
		CreatedAt: l.CreatedAt.UTC().Format(time.RFC3339), UpdatedAt: l.UpdatedAt.UTC().Format(time.RFC3339), Items: []*models.AllowlistItem{}}
	if withContent {
		for _, it := range l.Items {
			wi := &models.AllowlistItem{Value: it.Value, Description: it.Description, CreatedAt: it.CreatedAt.UTC().Format(time.RFC3339)}
			if it.ExpiresAt != nil {
				wi.Expiration = it.ExpiresAt.UTC().Format(time.RFC3339)
			}
			out.Items = append(out.Items, wi)
		}
	}
	return out
}

func (s *Server) listAllowlists(c echo.Context) error {
	lists, err := s.store.ListAllowlists(c.Request().Context())
	if err != nil {
		return s.storeError(c, err)
	}
	with := c.QueryParam("with_content") == "true"
	out := []*models.Allowlist{}
	for _, l := range lists {
		out = append(out, wireAllowlist(l, with))
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getAllowlist(c echo.Context) error {
	lists, err := s.store.ListAllowlists(c.Request().Context())
	if err != nil {
		return s.storeError(c, err)
	}
	for _, l := range lists {
		if l.Name == c.Param("name") {
			return c.JSON(http.StatusOK, wireAllowlist(l, c.QueryParam("with_content") != "false"))
		}
	}
	return jsonError(c, http.StatusNotFound, "allowlist not found")
}
