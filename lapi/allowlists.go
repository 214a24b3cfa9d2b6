package lapi

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/internal/netaddr"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// allowChecker caches the allowlists, reloading when the store's allowlist
// version moves (cscli edits the database directly) and refreshing the host
// addresses periodically.
type allowChecker struct {
	st       *store.Store
	withHost bool // api.server.allowlist_host_addresses: off only in test rigs
	log      *log.Entry
	version  func(context.Context) (int64, error) // the allowlists' version, read for every stream

	mu            sync.Mutex
	loadedVersion int64
	loaded        time.Time
	snap          *allowSnapshot
	gen           uint64 // snapshots made so far
}

type allowEntry struct {
	list    string
	value   string
	r       store.Range
	expires *time.Time
	desc    string
}

type allowSnapshot struct {
	gen       uint64 // which snapshot this is, for keys of shared answers
	protected []netaddr.Protected
	protRange []store.Range // protected's, for the per-row check of streams
	entries   []allowEntry  // user allowlists
	lists     []*store.AllowlistRow
}

// newAllowChecker reads the allowlists' version with version.
func newAllowChecker(st *store.Store, withHost bool, lg *log.Entry, version func(context.Context) (int64, error)) *allowChecker {
	return &allowChecker{st: st, withHost: withHost, log: lg, version: version, loadedVersion: -1}
}

func (a *allowChecker) snapshot(ctx context.Context) (*allowSnapshot, error) {
	v, err := a.version(ctx)
	if err != nil {
		return nil, err
	}
	return a.snapshotAt(ctx, v)
}

// snapshotAt is snapshot when the allowlists' version v was just read.
func (a *allowChecker) snapshotAt(ctx context.Context, v int64) (*allowSnapshot, error) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.snap != nil && v == a.loadedVersion && now.Sub(a.loaded) < 30*time.Second {
		return a.snap, nil
	}
	lists, err := a.st.ListAllowlists(ctx)
	if err != nil {
		return nil, err
	}
	a.gen++
	snap := &allowSnapshot{lists: lists, gen: a.gen}
	if a.withHost {
		if snap.protected, err = netaddr.ProtectedSet(); err != nil {
			a.log.WithError(err).Warn("protecting loopback, link-local and multicast only")
		}
	} else {
		// Test rigs use loopback and their own addresses as attackers;
		// link-local and multicast stay protected: no rig needs them and
		// banning them breaks neighbour discovery.
		for _, e := range netaddr.BuiltinProtected() {
			if e.Reason != "loopback" {
				snap.protected = append(snap.protected, e)
			}
		}
	}
	for _, e := range snap.protected {
		snap.protRange = append(snap.protRange, store.RangeOf(e.Prefix))
	}
	for _, l := range lists {
		for _, it := range l.Items {
			snap.entries = append(snap.entries, allowEntry{list: l.Name, value: it.Value, r: it.Range, expires: it.ExpiresAt, desc: it.Description})
		}
	}
	a.snap, a.loadedVersion, a.loaded = snap, v, now
	return snap, nil
}

// check reports whether value (an IP or range) overlaps the protected set
// or an allowlisted entry. Overlap, not containment: banning a range that
// holds an allowlisted address would lock that address out too.
func (s *allowSnapshot) check(value string) (bool, string) {
	p, err := netaddr.ParsePrefix(value)
	if err != nil {
		return false, ""
	}
	if e, hit := netaddr.Overlapping(s.protected, p); hit {
		return true, e.Prefix.String() + " from " + store.HostAllowlistName
	}
	return s.checkUser(store.RangeOf(p))
}

// overlaps is check for a parsed range.
func (s *allowSnapshot) overlaps(q store.Range) bool {
	for _, r := range s.protRange {
		if r.Contains(q) || q.Contains(r) {
			return true
		}
	}
	ok, _ := s.checkUser(q)
	return ok
}

// checkUser is check against the user allowlists only.
func (s *allowSnapshot) checkUser(q store.Range) (bool, string) {
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

// servable tells whether a stored decision may go to bouncers: not when it
// covers a protected address (an older version may have stored one), nor
// when its address cannot be read, since then that cannot be ruled out.
func (s *allowSnapshot) servable(d *store.DecisionRow) bool {
	if len(s.protected) == 0 || !store.IsAddressScope(d.Scope) {
		return true
	}
	p, err := netaddr.ParsePrefix(d.Value)
	if err != nil {
		return false
	}
	// Integer bounds: this runs for every row of a 1M-row stream.
	q := store.RangeOf(p)
	for _, r := range s.protRange {
		if r.Contains(q) || q.Contains(r) {
			return false
		}
	}
	return true
}

// protectedError refuses a manual decision on a protected address.
type protectedError struct {
	value string
	p     netip.Prefix
	hit   netaddr.Protected
}

func (e *protectedError) Error() string {
	how := "covers"
	if e.hit.Prefix.Bits() <= e.p.Bits() {
		how = "is in"
	}
	return fmt.Sprintf("decision on %s refused: it %s %s, which no decision may cover "+
		"(loopback, link-local, multicast and this host's addresses; --bypass-allowlist skips user allowlists only)", e.value, how, e.hit)
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
