package bouncer

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/firewall"
	"github.com/rampart-ips/rampart/firewall/nftables"
	"github.com/rampart-ips/rampart/internal/nstest"
)

// fakeLAPI is a real HTTP server on loopback answering the stream with
// scripted bodies, like an upstream LAPI would (no long-poll or cursor
// header); a delta "HTTP <code>" answers that status. Any other route is a
// 404, as on an upstream LAPI older than usage metrics.
type fakeLAPI struct {
	mu      sync.Mutex
	startup string
	deltas  []string
	pulls   atomic.Int64
	usage   atomic.Int64 // POST /v1/usage-metrics received
	srv     *httptest.Server
}

func newFakeLAPI(t *testing.T, startup string, deltas ...string) *fakeLAPI {
	f := &fakeLAPI{startup: startup, deltas: deltas}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "key" {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"message":"access forbidden"}`)
			return
		}
		if r.URL.Path != "/v1/decisions/stream" {
			if r.Method == http.MethodPost && r.URL.Path == "/v1/usage-metrics" {
				f.usage.Add(1)
			}
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message":"Page or Method not found"}`)
			return
		}
		if r.URL.Query().Has("wait") {
			t.Errorf("wait= sent to a LAPI that did not announce long-poll")
		}
		f.pulls.Add(1)
		f.mu.Lock()
		defer f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("startup") == "true" {
			fmt.Fprint(w, f.startup)
			return
		}
		if len(f.deltas) == 0 {
			fmt.Fprint(w, `{"new":[],"deleted":[]}`)
			return
		}
		d := f.deltas[0]
		f.deltas = f.deltas[1:]
		if code, ok := strings.CutPrefix(d, "HTTP "); ok { // a scripted failure
			n, _ := strconv.Atoi(code)
			w.WriteHeader(n)
			fmt.Fprint(w, `{"message":"scripted failure"}`)
			return
		}
		fmt.Fprint(w, d)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func dj(value, scope, typ, duration string, id int) string {
	return fmt.Sprintf(`{"duration":%q,"id":%d,"origin":"crowdsec","scenario":"s","scope":%q,"type":%q,"value":%q}`, duration, id, scope, typ, value)
}

// runReady runs b until the test ends and waits for its first sync; stop
// ends it early (the kernel keeps what it holds) and reports Run's error.
func runReady(t testing.TB, b *Bouncer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- b.Run(ctx, func() { close(ready) }) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run ended before the first sync: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("bouncer never became ready")
	}
	return stop
}

// nftInNS builds a real nftables backend inside a namespace the test owns.
func nftInNS(t testing.TB) (*nftables.Backend, string) {
	t.Helper()
	nstest.Require(t, "nft")
	name := fmt.Sprintf("rbt-%d", time.Now().UnixNano()%1e9)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return nftIn(t, name), name
}

// nftIn builds a real nftables backend inside the existing namespace name.
func nftIn(t testing.TB, name string) *nftables.Backend {
	t.Helper()
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	enabled := nftables.Family{Enabled: true}
	fw, err := nftables.New(nftables.Config{IPv4: enabled, IPv6: enabled, NetNS: int(h)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	return fw
}

func ruleset(t *testing.T, ns string) string {
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v %s", err, out)
	}
	return string(out)
}

// TestHostileDecisionsAreSkipped feeds malformed and unwanted decisions:
// each is skipped, the valid ones reach the kernel, nothing crashes; an
// upstream-style LAPI is polled, never long-polled.
func TestHostileDecisionsAreSkipped(t *testing.T) {
	fw, ns := nftInNS(t)
	startup := `{"new":[` + strings.Join([]string{
		dj("198.51.100.100", "Ip", "ban", "1h", 1),
		dj("198.51.100.0/28", "Range", "ban", "1h", 2),
		dj("2001:db8::5", "ip", "ban", "2h", 3),
		`{"id":4,"value":"198.51.100.20"}`,               // missing type, duration, scope
		`{"id":5,"type":null,"value":null,"scope":null}`, // nulls
		dj("not-an-ip", "Ip", "ban", "1h", 6),
		dj("198.51.100.7", "Ip", "ban", "forever", 7),
		dj("198.51.100.8", "Ip", "captcha", "1h", 8),
		dj("FR", "Country", "ban", "1h", 9),
		dj("127.0.0.1", "Ip", "ban", "1h", 10),
		dj("0.0.0.0/0", "Range", "ban", "1h", 11),
		dj("203.0.113.9", "Ip", "ban", "1h", 12), // never_ban
		`{"unexpected":{"nested":[1,2,3]},"id":13,"duration":"1h","type":"ban","scope":"Ip","value":"198.51.100.30","origin":"x","scenario":"y"}`,
	}, ",") + `],"deleted":[{"id":99}]}`
	delta := `{"new":[` + dj("198.51.100.40", "Ip", "ban", "1h", 20) + `],"deleted":[` + dj("198.51.100.100", "Ip", "ban", "0s", 1) + `]}`
	lapi := newFakeLAPI(t, startup, delta)
	cfg, err := ParseConfig([]byte(`mode = "nftables"
api_key = "key"
api_url = "`+lapi.srv.URL+`"
update_frequency = "100ms"
never_ban = ["203.0.113.0/24"]
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	client, err := apiclient.New(apiclient.Config{URL: cfg.APIURL, APIKey: cfg.APIKey})
	if err != nil {
		t.Fatal(err)
	}
	b := New(cfg, fw, client, NewMetrics(fw))
	stop := runReady(t, b)
	rs := ruleset(t, ns)
	for _, want := range []string{"198.51.100.100", "198.51.100.0/28", "2001:db8::5", "198.51.100.30"} {
		if !strings.Contains(rs, want) {
			t.Errorf("valid decision %s missing from the kernel:\n%s", want, rs)
		}
	}
	for _, bad := range []string{"198.51.100.20", "198.51.100.7", "198.51.100.8", "127.0.0.1", "0.0.0.0/0", "203.0.113.9"} {
		if strings.Contains(rs, bad+" ") || strings.Contains(rs, bad+",") {
			t.Errorf("skipped decision %s reached the kernel:\n%s", bad, rs)
		}
	}
	// the delta is polled (no long-poll header) and applied
	if !nstest.Eventually(5*time.Second, func() bool {
		rs := ruleset(t, ns)
		return strings.Contains(rs, "198.51.100.40") && !strings.Contains(rs, "198.51.100.100 ")
	}) {
		t.Errorf("delta not applied:\n%s", ruleset(t, ns))
	}
	if b.longPoll != 0 {
		t.Errorf("long-poll enabled against a LAPI that never announced it")
	}
	stop()
	if !strings.Contains(ruleset(t, ns), "198.51.100.40") {
		t.Error("stopping the bouncer removed the bans")
	}
}

// TestLAPIDownAtBoot keeps what the kernel holds and syncs once the LAPI
// answers.
func TestLAPIDownAtBoot(t *testing.T) {
	fw, ns := nftInNS(t)
	ctx := context.Background()
	if err := fw.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	// a previous run left a ban in the kernel
	old := netip.MustParsePrefix("198.51.100.99/32")
	if err := fw.Replace(ctx, []firewall.Element{{Prefix: old, Timeout: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	lapi := newFakeLAPI(t, `{"new":[`+dj("198.51.100.50", "Ip", "ban", "1h", 1)+`],"deleted":[]}`)
	url := lapi.srv.URL
	lapi.srv.Close() // down at boot
	cfg, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"key\"\napi_url = \""+url+"\"\nrequest_timeout = \"1s\"\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	client, _ := apiclient.New(apiclient.Config{URL: cfg.APIURL, APIKey: cfg.APIKey})
	b := New(cfg, fw, client, nil)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go b.Run(rctx, nil)
	time.Sleep(1500 * time.Millisecond)
	if !strings.Contains(ruleset(t, ns), "198.51.100.99") {
		t.Fatal("the LAPI being down emptied the firewall")
	}
}
