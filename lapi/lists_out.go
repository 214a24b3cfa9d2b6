package lapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/netaddr"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// listOutParams are the query parameters of GET /v1/lists/<name>; each
// replaces the list's configured value. ipv4only and ipv6only are
// blocklist-mirror's names.
var listOutParams = map[string]bool{"origin": true, "scenario": true, "scope": true, "type": true, "ipv4only": true, "ipv6only": true}

// listOutCache keeps each served list's body until the decisions or the
// protected set change, so that firewalls polling every minute cost a map
// lookup, and remembers when each body last changed (Last-Modified).
type listOutCache struct {
	mu      sync.Mutex
	entries map[string]*listOutEntry
}

type listOutEntry struct {
	seq      int64
	gen      uint64
	body     []byte
	etag     string
	modified time.Time
}

// maxListOutCache bounds the cached bodies (distinct name and filter
// combinations); beyond it one is dropped.
const maxListOutCache = 64

// getListOut serves GET/HEAD /v1/lists/<name>: the active decisions the
// list selects, one address or CIDR a line, sorted, with an ETag and a
// Last-Modified (conditional requests answer 304).
func (s *Server) getListOut(c echo.Context) error {
	name := c.Param("name")
	lo := csconfig.ListOut{Name: "all", Type: "ban"}
	if name != "all" {
		i := slices.IndexFunc(s.cfg.ListsOut, func(l csconfig.ListOut) bool { return l.Name == name })
		if i < 0 {
			return jsonError(c, http.StatusNotFound, fmt.Sprintf("no list %q: serve all, or one named in [[lists_out]]", name))
		}
		lo = s.cfg.ListsOut[i]
	}
	q := c.QueryParams()
	for k := range q {
		if !listOutParams[k] {
			return jsonError(c, http.StatusBadRequest, fmt.Sprintf("unknown parameter %q (origin, scenario, scope, type, ipv4only, ipv6only)", k))
		}
	}
	split := func(v string) []string {
		var out []string
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
		return out
	}
	if q.Has("origin") {
		lo.Origins = split(q.Get("origin"))
	}
	if q.Has("scenario") {
		lo.Scenarios = split(q.Get("scenario"))
	}
	if q.Has("scope") {
		lo.Scopes = split(q.Get("scope"))
	}
	if q.Has("type") {
		lo.Type = q.Get("type")
	}
	only := 0
	for _, p := range []struct {
		key string
		v   int
	}{{"ipv4only", 4}, {"ipv6only", 6}} {
		if !q.Has(p.key) {
			continue
		}
		on := true // a bare ?ipv4only, as blocklist-mirror takes it
		if v := q.Get(p.key); v != "" {
			var err error
			if on, err = strconv.ParseBool(v); err != nil {
				return jsonError(c, http.StatusBadRequest, p.key+": want true or false")
			}
		}
		if on {
			if only != 0 {
				return jsonError(c, http.StatusBadRequest, "ipv4only and ipv6only exclude each other")
			}
			only = p.v
		}
	}
	if q.Has("ipv4only") || q.Has("ipv6only") {
		lo.IPVersion = only
	}
	f := store.DecisionFilter{Origins: lo.Origins, ScenariosContaining: lo.Scenarios}
	if lo.Type != "" && lo.Type != "all" {
		f.Type = lo.Type
	}
	for _, sc := range lo.Scopes {
		n := models.NormalizeScope(sc)
		if n != "Ip" && n != "Range" {
			return jsonError(c, http.StatusBadRequest, fmt.Sprintf("scope %q: a plain list holds ip and range only", sc))
		}
		f.Scopes = append(f.Scopes, n)
	}
	if len(f.Scopes) == 0 {
		f.Scopes = []string{"Ip", "Range"}
	}

	ctx := c.Request().Context()
	snap, err := s.allow.snapshot(ctx)
	if err != nil {
		return s.storeError(c, err)
	}
	key := fmt.Sprintf("%q %q %q %q %q %d", name, lo.Origins, lo.Scenarios, f.Scopes, f.Type, lo.IPVersion)
	seq := s.store.Seq()
	e := s.listsOut.get(key)
	if e == nil || e.seq != seq || e.gen != snap.gen {
		now := s.now()
		rows, err := s.store.QueryDecisions(ctx, f, now)
		if err != nil {
			return s.storeError(c, err)
		}
		body := plainList(rows, snap, lo.IPVersion)
		sum := sha256.Sum256(body)
		ne := &listOutEntry{seq: seq, gen: snap.gen, body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, modified: now}
		if e != nil && e.etag == ne.etag {
			ne.modified = e.modified
		}
		e = s.listsOut.put(key, ne)
	}
	b := c.Get(ctxBouncer).(*store.Bouncer)
	if now := s.now(); b.LastPull == nil || now.Sub(*b.LastPull) >= time.Minute {
		if err := s.store.SetBouncerPulled(ctx, b.ID, nil, now); err != nil {
			s.log.WithError(err).Warn("recording bouncer pull")
		}
	}
	w := c.Response()
	w.Header().Set("ETag", e.etag)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, c.Request(), "", e.modified, bytes.NewReader(e.body))
	return nil
}

func (lc *listOutCache) get(key string) *listOutEntry {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.entries[key]
}

func (lc *listOutCache) put(key string, e *listOutEntry) *listOutEntry {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.entries == nil {
		lc.entries = map[string]*listOutEntry{}
	}
	if _, ok := lc.entries[key]; !ok && len(lc.entries) >= maxListOutCache {
		for k := range lc.entries {
			delete(lc.entries, k)
			break
		}
	}
	lc.entries[key] = e
	return e
}

// plainList renders rows as one address or CIDR a line, each once, in
// address order, leaving out what no bouncer may get and, with ipVersion,
// the other family.
func plainList(rows []store.DecisionRow, snap *allowSnapshot, ipVersion int) []byte {
	pfx := make([]netip.Prefix, 0, len(rows))
	for i := range rows {
		if !snap.servable(&rows[i]) {
			continue
		}
		p, err := netaddr.ParsePrefix(rows[i].Value)
		if err != nil {
			continue
		}
		if ipVersion == 4 && !p.Addr().Is4() || ipVersion == 6 && !p.Addr().Is6() {
			continue
		}
		pfx = append(pfx, p)
	}
	slices.SortFunc(pfx, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	pfx = slices.Compact(pfx)
	out := make([]byte, 0, 20*len(pfx))
	for _, p := range pfx {
		if p.IsSingleIP() {
			out = p.Addr().AppendTo(out)
		} else {
			out = p.AppendTo(out)
		}
		out = append(out, '\n')
	}
	return out
}
