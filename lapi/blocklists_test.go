package lapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/blocklists"
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
	// Unsubscribed: the good list's decisions end.
	if err := l.Server.SetBlocklists([]csconfig.Blocklist{blocklistCfg("dead", feed.URL)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unsubscribed list's decisions to end", func() bool {
		d := l.stream(key, "")
		return slices.Equal(sortedValues(d.Deleted), []string{"192.0.2.50"})
	})
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
