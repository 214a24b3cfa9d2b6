package lapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/blocklists"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// feedServer is a blocklist feed on loopback whose answer the test sets.
type feedServer struct {
	*httptest.Server
	mu          sync.Mutex
	body, etag  string
	mode        string // "", "500", "truncate", "huge"
	requests    int
	notModified int
	headers     http.Header // of the last request
}

func newFeedServer(t *testing.T) *feedServer {
	f := &feedServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests++
		f.headers = r.Header.Clone()
		switch f.mode {
		case "500":
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		case "truncate":
			// Promises more than it sends, then drops the connection.
			w.Header().Set("Content-Length", "100000")
			w.WriteHeader(http.StatusOK)
			fmt.Fprint(w, "192.0.2.1\n")
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		case "huge":
			w.WriteHeader(http.StatusOK)
			for i := 0; i < 70000; i++ {
				fmt.Fprintf(w, "10.%d.%d.%d\n", i>>16, (i>>8)&255, i&255)
			}
			return
		}
		if f.etag != "" {
			w.Header().Set("ETag", f.etag)
			if r.Header.Get("If-None-Match") == f.etag {
				f.notModified++
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		fmt.Fprint(w, f.body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *feedServer) set(mode, body, etag string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode, f.body, f.etag = mode, body, etag
}

func (f *feedServer) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, f.notModified
}

func blocklistCfg(name, url string) csconfig.Blocklist {
	b := csconfig.Blocklist{Name: name, URL: url}
	b.SetDefaults()
	b.MaxBytes = 512 << 10
	return b
}

// refreshLists asks the LAPI for a refresh as cscli does and returns the
// status and the statuses (or the error message).
func (l *testLAPI) refreshLists(names string) (int, []blocklists.Status, string) {
	l.t.Helper()
	path := "/v1/blocklists/refresh"
	if names != "" {
		path += "?name=" + names
	}
	status, body := l.do("POST", path, l.jwtHeaders(), nil)
	if status != http.StatusOK {
		var e models.ErrorResponse
		_ = json.Unmarshal(body, &e)
		return status, nil, e.Message
	}
	var st []blocklists.Status
	if err := json.Unmarshal(body, &st); err != nil {
		l.t.Fatalf("refresh body %s: %v", body, err)
	}
	return status, st, ""
}

func sortedValues(ds []*models.Decision) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Value)
	}
	slices.Sort(out)
	return out
}

// TestBlocklistFeed follows a feed through a LAPI: its entries reach a
// bouncer (allowlisted ranges and protected addresses left out), an
// unchanged feed is asked with If-None-Match and answered 304, a change
// arrives as one delta of additions and removals, and a failing feed (500,
// a truncated body, one over max_bytes, an error page) keeps its previous
// version until a good one comes.
func TestBlocklistFeed(t *testing.T) {
	feed := newFeedServer(t)
	feed.set("", "# test feed\n192.0.2.1\n192.0.2.2\n198.51.100.0/24\n203.0.113.5 ; x\n169.254.1.1\n", `"v1"`)
	l := startLAPI(t, func(c *csconfig.Config) {
		c.Blocklists = []csconfig.Blocklist{blocklistCfg("feed", feed.URL)}
	})
	ctx := context.Background()
	if err := l.Store.CreateAllowlist(ctx, "lan", ""); err != nil {
		t.Fatal(err)
	}
	if err := l.Store.AddAllowlistItems(ctx, "lan", []string{"198.51.100.128/25"}, "", nil); err != nil {
		t.Fatal(err)
	}
	key := l.addBouncer("fw")

	if status, st, msg := l.refreshLists(""); status != 200 || len(st) != 1 || st[0].Allowlisted != 2 || st[0].Entries != 5 {
		t.Fatalf("refresh: %d %+v %s", status, st, msg)
	}
	first := l.stream(key, "&startup=true")
	if got := sortedValues(first.New); !slices.Equal(got, []string{"192.0.2.1", "192.0.2.2", "203.0.113.5"}) {
		t.Fatalf("startup: %v", got)
	}
	for _, d := range first.New {
		if d.Origin != "lists" || d.Scenario != "lists:feed" || d.Type != "ban" {
			t.Fatalf("decision %+v", d)
		}
	}

	// Unchanged: a conditional request, a 304, nothing for bouncers.
	if status, _, msg := l.refreshLists("feed"); status != 200 {
		t.Fatalf("refresh: %d %s", status, msg)
	}
	if _, nm := feed.counts(); nm == 0 {
		t.Fatal("the second fetch was not answered 304: no If-None-Match sent")
	}
	if d := l.stream(key, ""); len(d.New)+len(d.Deleted) != 0 {
		t.Fatalf("an unchanged feed sent a delta: %+v", d)
	}

	// Changed: one delta with the addition and the removal.
	feed.set("", "192.0.2.2\n198.51.100.0/24\n203.0.113.5\n192.0.2.9\n", `"v2"`)
	if status, _, msg := l.refreshLists(""); status != 200 {
		t.Fatalf("refresh: %d %s", status, msg)
	}
	d := l.stream(key, "")
	if got, gone := sortedValues(d.New), sortedValues(d.Deleted); !slices.Equal(got, []string{"192.0.2.9"}) || !slices.Equal(gone, []string{"192.0.2.1"}) {
		t.Fatalf("delta: +%v -%v", got, gone)
	}

	for _, c := range []struct{ mode, body, want string }{
		{"500", "", "500 Internal Server Error"},
		{"truncate", "", "unexpected EOF"},
		{"huge", "", "larger than max_bytes"},
		{"", "<html><body>\n<h1>Maintenance</h1>\n</body></html>\n", "not plain entries"},
	} {
		feed.set(c.mode, c.body, `"broken"`)
		status, _, msg := l.refreshLists("feed")
		if status != http.StatusBadGateway || !strings.Contains(msg, c.want) {
			t.Fatalf("%s: refresh %d %q, want 502 with %q", c.mode, status, msg, c.want)
		}
		if d := l.stream(key, ""); len(d.New)+len(d.Deleted) != 0 {
			t.Fatalf("%s: a failed refresh changed what bouncers hold: %+v", c.mode, d)
		}
	}
	var st []blocklists.Status
	status, body := l.do("GET", "/v1/blocklists", l.jwtHeaders(), nil)
	if err := json.Unmarshal(body, &st); status != 200 || err != nil || len(st) != 1 || !strings.Contains(st[0].LastError, "not plain entries") {
		t.Fatalf("status: %d %s", status, body)
	}

	// A good version again (the last one stored, under the ETag the
	// broken answer came with): read whole and applied.
	feed.set("", "192.0.2.2\n192.0.2.9\n", `"broken"`)
	if status, _, msg := l.refreshLists(""); status != 200 {
		t.Fatalf("refresh: %d %s", status, msg)
	}
	d = l.stream(key, "")
	if got, gone := sortedValues(d.New), sortedValues(d.Deleted); len(got) != 0 || !slices.Equal(gone, []string{"203.0.113.5"}) {
		t.Fatalf("delta after recovery: +%v -%v", got, gone)
	}
}

// TestBlocklistDeadAtStart: a feed that cannot be reached does not keep
// the LAPI from serving, and one removed from the configuration ends its
// decisions at the next reload.
func TestBlocklistDeadAtStart(t *testing.T) {
	feed := newFeedServer(t)
	feed.set("500", "", "")
	good := newFeedServer(t)
	good.set("", "192.0.2.50\n", "")
	l := startLAPI(t, func(c *csconfig.Config) {
		c.Blocklists = []csconfig.Blocklist{blocklistCfg("dead", feed.URL), blocklistCfg("good", good.URL)}
	})
	key := l.addBouncer("fw")
	status, st, msg := l.refreshLists("")
	if status != http.StatusBadGateway || !strings.Contains(msg, "dead: GET") || strings.Contains(msg, "good") {
		t.Fatalf("refresh: %d %+v %q", status, st, msg)
	}
	if got := sortedValues(l.stream(key, "&startup=true").New); !slices.Equal(got, []string{"192.0.2.50"}) {
		t.Fatalf("startup: %v", got)
	}
	if status, _, _ := l.refreshLists("nosuch"); status == 200 {
		t.Fatal("refreshing an unknown list succeeded")
	}
	// List decisions stored by something else (the Central API's lists)
	// are not this runner's to end.
	if _, err := l.Store.ReplaceList(context.Background(), store.ListUpdate{Name: "capi-list", Type: "ban", Duration: time.Hour,
		Entries: []store.ListEntry{{Value: "203.0.113.1", Scope: "Ip", Range: store.RangeOf(netip.MustParsePrefix("203.0.113.1/32"))}}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	l.stream(key, "")
	// Unsubscribed: the good list's decisions end.
	if err := l.Server.SetBlocklists([]csconfig.Blocklist{blocklistCfg("dead", feed.URL)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unsubscribed list's decisions to end", func() bool {
		d := l.stream(key, "")
		return slices.Equal(sortedValues(d.Deleted), []string{"192.0.2.50"})
	})
	if rows, err := l.Store.QueryDecisions(context.Background(), store.DecisionFilter{Scenario: "lists:capi-list"}, time.Now()); err != nil || len(rows) != 1 {
		t.Fatalf("another list's decisions: %+v %v", rows, err)
	}
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get sends a GET with headers and returns the status, the body and the
// response headers.
func (l *testLAPI) get(path string, headers map[string]string) (int, string, http.Header) {
	l.t.Helper()
	req, err := http.NewRequest("GET", l.URL+path, nil)
	if err != nil {
		l.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		l.t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// TestListsOut: /v1/lists/<name> serves the active decisions on addresses
// as plain text for bouncer keys, filtered by the list and the query, with
// an ETag that answers 304 until the decisions change.
func TestListsOut(t *testing.T) {
	l := startLAPI(t, func(c *csconfig.Config) {
		c.ListsOut = []csconfig.ListOut{{Name: "v4lists", Origins: []string{"lists"}, IPVersion: 4}}
	})
	l.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"), manualAlert("192.0.2.1", "Ip", "2h", "cscli"),
		manualAlert("198.51.100.0/24", "Range", "4h", "cscli"), manualAlert("2001:db8::1", "Ip", "4h", "cscli"),
		manualAlert("FR", "Country", "4h", "cscli"))
	captcha := manualAlert("192.0.2.2", "Ip", "4h", "cscli")
	captcha.Decisions[0].Type = "captcha"
	l.push(captcha)
	if _, err := l.Store.ReplaceList(context.Background(), store.ListUpdate{Name: "feed", Type: "ban", Duration: time.Hour,
		Entries: []store.ListEntry{{Value: "203.0.113.7", Scope: "Ip", Range: store.RangeOf(netip.MustParsePrefix("203.0.113.7/32"))},
			{Value: "2001:db8:1::/48", Scope: "Range", Range: store.RangeOf(netip.MustParsePrefix("2001:db8:1::/48"))}}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	key := keyHeaders(l.addBouncer("fw"))

	if status, _, _ := l.get("/v1/lists/all", nil); status != http.StatusForbidden && status != http.StatusUnauthorized {
		t.Fatalf("no key: %d", status)
	}
	for _, c := range []struct{ path, want string }{
		{"/v1/lists/all", "192.0.2.1\n198.51.100.0/24\n203.0.113.7\n2001:db8::1\n2001:db8:1::/48\n"},
		{"/v1/lists/all?ipv6only", "2001:db8::1\n2001:db8:1::/48\n"},
		{"/v1/lists/all?ipv4only=true&origin=cscli", "192.0.2.1\n198.51.100.0/24\n"},
		{"/v1/lists/all?type=captcha", "192.0.2.2\n"},
		{"/v1/lists/all?scope=range", "198.51.100.0/24\n2001:db8:1::/48\n"},
		{"/v1/lists/all?scenario=lists:", "203.0.113.7\n2001:db8:1::/48\n"},
		{"/v1/lists/v4lists", "203.0.113.7\n"},
		{"/v1/lists/v4lists?ipv4only=false", "203.0.113.7\n2001:db8:1::/48\n"},
	} {
		status, body, h := l.get(c.path, key)
		if status != 200 || body != c.want || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
			t.Fatalf("%s: %d %q, want %q", c.path, status, body, c.want)
		}
	}
	for path, want := range map[string]int{"/v1/lists/nosuch": 404, "/v1/lists/all?bogus=1": 400, "/v1/lists/all?scope=country": 400,
		"/v1/lists/all?ipv4only&ipv6only": 400} {
		if status, body, _ := l.get(path, key); status != want {
			t.Fatalf("%s: %d %s, want %d", path, status, body, want)
		}
	}

	_, _, h := l.get("/v1/lists/all", key)
	etag, lm := h.Get("ETag"), h.Get("Last-Modified")
	if etag == "" || lm == "" {
		t.Fatalf("no validators: %v", h)
	}
	cond := map[string]string{"If-None-Match": etag}
	for k, v := range key {
		cond[k] = v
	}
	if status, body, _ := l.get("/v1/lists/all", cond); status != http.StatusNotModified || body != "" {
		t.Fatalf("If-None-Match: %d %q", status, body)
	}
	l.push(manualAlert("192.0.2.99", "Ip", "4h", "cscli"))
	status, body, h := l.get("/v1/lists/all", cond)
	if status != 200 || !strings.Contains(body, "192.0.2.99\n") || h.Get("ETag") == etag {
		t.Fatalf("after a change: %d %q %v", status, body, h)
	}
}

// TestListsOutSubscribed: a second Rampart subscribes to the first one's
// /v1/lists/all with a bouncer key; what the first bans reaches the second
// one's bouncers as list decisions, removals included, and an unchanged
// feed is answered 304.
func TestListsOutSubscribed(t *testing.T) {
	a := startLAPI(t, nil)
	a.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"), manualAlert("198.51.100.0/24", "Range", "4h", "cscli"))
	keyA := a.addBouncer("rampart-b")
	b := startLAPI(t, func(c *csconfig.Config) {
		bl := blocklistCfg("upstream", a.URL+"/v1/lists/all?ipv4only")
		bl.Headers = map[string]string{"X-Api-Key": keyA}
		c.Blocklists = []csconfig.Blocklist{bl}
	})
	keyB := b.addBouncer("fw")
	if status, st, msg := b.refreshLists(""); status != 200 || st[0].Entries != 2 {
		t.Fatalf("refresh: %d %+v %s", status, st, msg)
	}
	first := b.stream(keyB, "&startup=true")
	if got := sortedValues(first.New); !slices.Equal(got, []string{"192.0.2.1", "198.51.100.0/24"}) {
		t.Fatalf("B's bouncer: %v", got)
	}
	for _, d := range first.New {
		if d.Origin != "lists" || d.Scenario != "lists:upstream" {
			t.Fatalf("B's decision %+v", d)
		}
	}
	// Unchanged: B's conditional request is answered 304 by A.
	if status, st, _ := b.refreshLists(""); status != 200 || st[0].LastFetch != "not modified" {
		t.Fatalf("refresh: %d %+v", status, st)
	}
	if d := b.stream(keyB, ""); len(d.New)+len(d.Deleted) != 0 {
		t.Fatalf("unchanged upstream sent %+v", d)
	}
	// A lifts one ban and adds another: B's bouncer gets both in one delta.
	if status, body := a.do("DELETE", "/v1/decisions?ip=192.0.2.1", a.jwtHeaders(), nil); status != 200 {
		t.Fatalf("delete on A: %d %s", status, body)
	}
	a.push(manualAlert("203.0.113.9", "Ip", "4h", "cscli"))
	if status, _, msg := b.refreshLists(""); status != 200 {
		t.Fatal(status, msg)
	}
	d := b.stream(keyB, "")
	if got, gone := sortedValues(d.New), sortedValues(d.Deleted); !slices.Equal(got, []string{"203.0.113.9"}) || !slices.Equal(gone, []string{"192.0.2.1"}) {
		t.Fatalf("B's delta: +%v -%v", got, gone)
	}
}

// TestBlocklistFleet: two LAPIs on one database subscribed to the same
// feed fetch it once between them, and both serve its decisions.
func TestBlocklistFleet(t *testing.T) {
	feed := newFeedServer(t)
	feed.set("", "192.0.2.1\n192.0.2.2\n", `"v1"`)
	path := filepath.Join(t.TempDir(), "crowdsec.db")
	with := func(c *csconfig.Config) { c.Blocklists = []csconfig.Blocklist{blocklistCfg("feed", feed.URL)} }
	la := startLAPIAt(t, path, with)
	lb := startLAPIAt(t, path, with)
	attempted := func(l *testLAPI) bool {
		status, body := l.do("GET", "/v1/blocklists", l.jwtHeaders(), nil)
		var st []blocklists.Status
		return status == 200 && json.Unmarshal(body, &st) == nil && len(st) == 1 && !st[0].LastAttempt.IsZero()
	}
	waitFor(t, "both LAPIs to try the feed", func() bool { return attempted(la) && attempted(lb) })
	if n, _ := feed.counts(); n != 1 {
		t.Fatalf("the feed was fetched %d times by two LAPIs at start, want once", n)
	}
	for _, l := range []*testLAPI{la, lb} {
		key := l.addBouncer("fw-" + l.URL[len(l.URL)-5:])
		if got := sortedValues(l.stream(key, "&startup=true").New); !slices.Equal(got, []string{"192.0.2.1", "192.0.2.2"}) {
			t.Fatalf("%s serves %v", l.URL, got)
		}
	}
}
