package bouncer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/firewall"
	"github.com/rampart-ips/rampart/internal/lapitest"
	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/internal/testdb/storecfg"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// banBatch stores one alert carrying a ban for each value, straight into
// the LAPI's store (as the LAPI itself would after a POST /v1/alerts).
func banBatch(t *testing.T, st *store.Store, tag string, values []string) {
	t.Helper()
	now := time.Now()
	var ds []store.NewDecision
	for _, v := range values {
		r, err := store.ParseRange(v)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, store.NewDecision{UUID: "u-" + v, Until: now.Add(time.Hour), Scenario: "test/stream", Type: "ban",
			Scope: "Ip", Value: v, Origin: "cscli", Range: r})
	}
	a := &models.Alert{Scenario: "test/stream", Source: &models.Source{Scope: "Ip", Value: values[0]}}
	if _, err := st.CreateAlerts(context.Background(), []store.NewAlert{{Alert: a, UUID: "a-" + tag, StartAt: now, StopAt: now, Decisions: ds}}); err != nil {
		t.Fatalf("storing bans: %v", err)
	}
}

var testNetV4 = regexp.MustCompile(`198\.18\.\d+\.\d+`)

// kernelBans counts the 198.18.0.0/15 addresses the namespace's sets hold.
func kernelBans(t *testing.T, ns string) int {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range testNetV4.FindAllString(ruleset(t, ns), -1) {
		seen[m] = true
	}
	return len(seen)
}

// runBouncer starts a bouncer on its own nftables namespace against url
// with key and extra TOML lines; it stops when the test ends.
func runBouncer(t *testing.T, url, key, extra string) (*Bouncer, string) {
	t.Helper()
	fw, ns := nftInNS(t)
	cfg, err := ParseConfig([]byte(fmt.Sprintf("mode = \"nftables\"\napi_key = %q\napi_url = %q\nrequest_timeout = \"5s\"\n%s", key, url, extra)), "t")
	if err != nil {
		t.Fatal(err)
	}
	client, err := apiclient.New(apiclient.Config{URL: cfg.APIURL, APIKey: cfg.APIKey, Timeout: cfg.RequestTimeout.Duration})
	if err != nil {
		t.Fatal(err)
	}
	b := New(cfg, fw, client, nil)
	runReady(t, b)
	return b, ns
}

func (b *Bouncer) held() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.len()
}

// TestTwoBouncersShareOneKey runs two bouncer processes on one host with
// one API key (same address, same User-Agent) against a real LAPI while 400
// decisions arrive in batches: each must end up enforcing all 400, polling
// or long-polling, or following (Rampart's follow mode; and against a
// LAPI with it off, where they fall back to long-polling). They used to
// share one server-side stream cursor, so each pull stole the other's
// delta. The periodic full resync is off: per-process cursors alone must
// deliver everything.
func TestTwoBouncersShareOneKey(t *testing.T) {
	for _, mode := range []string{"poll", "long-poll", "follow", "follow off at the LAPI"} {
		t.Run(mode, func(t *testing.T) {
			followOff := mode == "follow off at the LAPI"
			l := lapitest.StartWith(t, storecfg.At(t, filepath.Join(t.TempDir(), "crowdsec.db")), "", func(c *csconfig.Config) {
				if followOff {
					c.API.Server.Follow = new(bool)
				}
			})
			key := l.AddBouncer("fw")
			extra := fmt.Sprintf("update_frequency = \"15ms\"\nlong_poll = %v\nfollow = %v\nresync_interval = \"0s\"\n",
				mode != "poll", mode != "long-poll")
			b1, ns1 := runBouncer(t, l.URL(), key, extra)
			b2, ns2 := runBouncer(t, l.URL(), key, extra)
			const batches, per = 20, 20
			for i := range batches {
				var vs []string
				for j := range per {
					vs = append(vs, fmt.Sprintf("198.18.%d.%d", i, j+1))
				}
				banBatch(t, l.Store, fmt.Sprint(i), vs)
				time.Sleep(20 * time.Millisecond) // let pulls interleave with the inserts
			}
			want := batches * per
			for _, bc := range []struct {
				name string
				b    *Bouncer
				ns   string
			}{{"first", b1, ns1}, {"second", b2, ns2}} {
				if !nstest.Eventually(5*time.Second, func() bool { return bc.b.held() == want && kernelBans(t, bc.ns) == want }) {
					t.Errorf("%s bouncer holds %d decisions, its kernel %d; want %d", bc.name, bc.b.held(), kernelBans(t, bc.ns), want)
				}
			}
			// Both follow when the LAPI offers it, and only then.
			if mode == "follow" {
				if !nstest.Eventually(5*time.Second, func() bool { return l.Server.Follows() == 2 }) {
					t.Errorf("%d follow responses open, want the 2 bouncers'", l.Server.Follows())
				}
			} else if n := l.Server.Follows(); n != 0 {
				t.Errorf("%d follow responses open; want none in mode %s", n, mode)
			}
		})
	}
}

// copyFiles copies the database and its WAL files that exist from one
// prefix to another, removing the destination's others.
func copyFiles(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(to + suffix)
		data, err := os.ReadFile(from + suffix)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to+suffix, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestResyncWhenLAPIRestoredFromBackup: the LAPI's database goes back to
// a backup taken before a ban the bouncer enforces. The bouncer's cursor is
// then ahead of the database; the LAPI says so (410) and the bouncer pulls
// the full state and drops the ban the LAPI no longer knows, keeping the
// other. It used to keep the vanished ban until it expired.
func TestResyncWhenLAPIRestoredFromBackup(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "crowdsec.db")
	l := lapitest.Start(t, db, "")
	addr := l.Addr
	key := l.AddBouncer("fw")
	banBatch(t, l.Store, "kept", []string{"198.18.0.1"})
	b, ns := runBouncer(t, l.URL(), key, "update_frequency = \"20ms\"\nlong_poll = false\nresync_interval = \"0s\"\n")
	l.Stop()
	copyFiles(t, db, filepath.Join(dir, "backup.db"))
	l = lapitest.Start(t, db, addr)
	banBatch(t, l.Store, "lost", []string{"198.18.0.2"})
	if !nstest.Eventually(5*time.Second, func() bool { return kernelBans(t, ns) == 2 }) {
		t.Fatalf("the second ban never reached the kernel:\n%s", ruleset(t, ns))
	}
	l.Stop()
	copyFiles(t, filepath.Join(dir, "backup.db"), db)
	lapitest.Start(t, db, addr)
	if !nstest.Eventually(10*time.Second, func() bool { return b.held() == 1 && kernelBans(t, ns) == 1 }) {
		t.Fatalf("after the restore the bouncer holds %d bans, want 1:\n%s", b.held(), ruleset(t, ns))
	}
	if rs := ruleset(t, ns); !strings.Contains(rs, "198.18.0.1") {
		t.Errorf("the ban the backup holds was lost:\n%s", rs)
	}
}

// recordingFW is the real backend, noting every removal asked of it.
type recordingFW struct {
	firewall.Backend
	mu       sync.Mutex
	removed  []netip.Prefix
	replaced int
}

func (r *recordingFW) Apply(ctx context.Context, adds []firewall.Element, dels []netip.Prefix) error {
	r.mu.Lock()
	r.removed = append(r.removed, dels...)
	r.mu.Unlock()
	return r.Backend.Apply(ctx, adds, dels)
}

func (r *recordingFW) Replace(ctx context.Context, want []firewall.Element) error {
	r.mu.Lock()
	r.replaced++
	r.mu.Unlock()
	return r.Backend.Replace(ctx, want)
}

// startFake runs a bouncer on fw against an upstream-like LAPI (no cursor
// header) with a resync period below what the configuration allows.
func startFake(t *testing.T, fw firewall.Backend, lapi *fakeLAPI, resync time.Duration) *Bouncer {
	t.Helper()
	cfg, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"key\"\napi_url = \""+lapi.srv.URL+"\"\nupdate_frequency = \"20ms\"\nrequest_timeout = \"1s\"\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ResyncInterval = &Duration{Duration: resync}
	client, err := apiclient.New(apiclient.Config{URL: cfg.APIURL, APIKey: cfg.APIKey})
	if err != nil {
		t.Fatal(err)
	}
	b := New(cfg, fw, client, nil)
	runReady(t, b)
	return b
}

// TestPeriodicResyncRepairsLostChanges: an upstream LAPI whose deltas lost
// a new ban and a deletion (a poll landing during a large insert loses
// decisions for good there). The periodic full pull adds the missing ban
// and removes the stale one, and never removes, even briefly, a ban the
// LAPI still holds. Without it the bouncer never converged.
func TestPeriodicResyncRepairsLostChanges(t *testing.T) {
	nft, ns := nftInNS(t)
	fw := &recordingFW{Backend: nft}
	kept, stale, missing := dj("198.18.1.1", "Ip", "ban", "1h", 1), dj("198.18.1.2", "Ip", "ban", "1h", 2), dj("198.18.1.3", "Ip", "ban", "1h", 3)
	lapi := newFakeLAPI(t, `{"new":[`+kept+`,`+stale+`],"deleted":[]}`)
	b := startFake(t, fw, lapi, 300*time.Millisecond)
	if rs := ruleset(t, ns); !strings.Contains(rs, "198.18.1.2") {
		t.Fatalf("first sync missing:\n%s", rs)
	}
	fw.mu.Lock()
	fw.replaced = 0
	fw.mu.Unlock()
	// Behind the bouncer's back: .2 deleted, .3 added; no delta says so.
	lapi.mu.Lock()
	lapi.startup = `{"new":[` + kept + `,` + missing + `],"deleted":[]}`
	lapi.mu.Unlock()
	if !nstest.Eventually(10*time.Second, func() bool {
		rs := ruleset(t, ns)
		return strings.Contains(rs, "198.18.1.3") && !strings.Contains(rs, "198.18.1.2") && b.held() == 2
	}) {
		t.Fatalf("the resync did not reconcile the firewall:\n%s", ruleset(t, ns))
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for _, p := range fw.removed {
		if p.String() == "198.18.1.1/32" {
			t.Errorf("the resync removed a ban the LAPI still holds")
		}
	}
	if fw.replaced != 0 {
		t.Errorf("the resync reloaded the whole set %d times instead of changing the difference", fw.replaced)
	}
}

// TestResyncAfterFailedDeltaUpstream: against an upstream LAPI, which keeps
// the cursor itself, a failed delta may have moved that cursor past changes
// the bouncer never received; once the LAPI answers again the bouncer pulls
// the full state (the periodic resync is off here).
func TestResyncAfterFailedDeltaUpstream(t *testing.T) {
	fw, ns := nftInNS(t)
	first := dj("198.18.2.1", "Ip", "ban", "1h", 1)
	lapi := newFakeLAPI(t, `{"new":[`+first+`],"deleted":[]}`, "HTTP 500")
	startFake(t, fw, lapi, 0)
	// The ban the failed delta would have carried is in the full state only.
	lapi.mu.Lock()
	lapi.startup = `{"new":[` + first + `,` + dj("198.18.2.2", "Ip", "ban", "1h", 2) + `],"deleted":[]}`
	lapi.mu.Unlock()
	if !nstest.Eventually(10*time.Second, func() bool { return kernelBans(t, ns) == 2 }) {
		t.Fatalf("no full pull after the failed delta:\n%s", ruleset(t, ns))
	}
}

// TestFollowThroughBufferingProxy: a proxy between the bouncer and the LAPI
// that buffers whole responses holds a follow response back for minutes.
// The bouncer notices the missing first line and long-polls instead, so a
// ban still arrives, within apiclient.FollowFirstLine and a pull.
func TestFollowThroughBufferingProxy(t *testing.T) {
	l := lapitest.StartWith(t, storecfg.At(t, filepath.Join(t.TempDir(), "crowdsec.db")), "", nil)
	key := l.AddBouncer("fw")
	target, err := url.Parse(l.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		// Buffer the body whole before passing anything on.
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return err
	}
	proxy := httptest.NewServer(rp)
	t.Cleanup(proxy.Close)
	b, ns := runBouncer(t, proxy.URL+"/", key, "update_frequency = \"50ms\"\nresync_interval = \"0s\"\n")
	banBatch(t, l.Store, "late", []string{"198.18.7.7"})
	if !nstest.Eventually(apiclient.FollowFirstLine+10*time.Second, func() bool { return b.held() == 1 && kernelBans(t, ns) == 1 }) {
		t.Fatalf("the bouncer behind a buffering proxy holds %d decisions, its kernel %d; want 1", b.held(), kernelBans(t, ns))
	}
}
