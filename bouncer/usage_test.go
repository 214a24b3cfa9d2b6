package bouncer

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/firewall"
	"github.com/rampart-ips/rampart/firewall/nftables"
	"github.com/rampart-ips/rampart/internal/lapitest"
	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/internal/version"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/lapi/usage"
	"github.com/rampart-ips/rampart/models"
)

func TestCounterDelta(t *testing.T) {
	c := func(p, b uint64) firewall.Counter { return firewall.Counter{Packets: p, Bytes: b} }
	for _, tc := range []struct {
		name            string
		cur, prev, want firewall.Counter
	}{
		{"moved", c(15, 1500), c(10, 1000), c(5, 500)},
		{"still", c(10, 1000), c(10, 1000), c(0, 0)},
		{"no baseline", c(7, 700), c(0, 0), c(7, 700)},
		{"reset", c(3, 300), c(10, 1000), c(3, 300)},
		{"bytes went back", c(12, 900), c(10, 1000), c(12, 900)},
	} {
		if got := counterDelta(tc.cur, tc.prev); got != tc.want {
			t.Errorf("%s: delta(%v, %v) = %v, want %v", tc.name, tc.cur, tc.prev, got, tc.want)
		}
	}
}

// TestUsageItems builds a report from a baseline: gauges are absolute,
// counters deltas (a reset counter counts whole), a family the baseline
// lacks counts from zero, processed only when the backend counts it.
func TestUsageItems(t *testing.T) {
	cfg, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"k\"\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	u := New(cfg, nil, nil, nil).usage
	u.prev = &counterSnapshot{
		dropped:   map[firewall.Family]firewall.Counter{firewall.IPv4: {Packets: 10, Bytes: 600}},
		processed: map[firewall.Family]firewall.Counter{firewall.IPv4: {Packets: 100, Bytes: 9000}, firewall.IPv6: {Packets: 50, Bytes: 5000}},
	}
	cur := &counterSnapshot{
		dropped:   map[firewall.Family]firewall.Counter{firewall.IPv4: {Packets: 14, Bytes: 840}, firewall.IPv6: {Packets: 2, Bytes: 160}},
		processed: map[firewall.Family]firewall.Counter{firewall.IPv4: {Packets: 130, Bytes: 12000}, firewall.IPv6: {Packets: 4, Bytes: 400}},
	}
	got := map[string]float64{}
	var order []string
	for _, it := range u.items(3, 1, cur) {
		k := it.Name + "/" + it.Unit + "/" + it.Labels["ip_type"]
		got[k] = it.Value
		order = append(order, k)
	}
	want := map[string]float64{
		"active_decisions/ip/ipv4": 3, "active_decisions/ip/ipv6": 1,
		"dropped/packet/ipv4": 4, "dropped/byte/ipv4": 240, "dropped/packet/ipv6": 2, "dropped/byte/ipv6": 160,
		"processed/packet/ipv4": 30, "processed/byte/ipv4": 3000, "processed/packet/ipv6": 4, "processed/byte/ipv6": 400,
	}
	if len(got) != len(want) {
		t.Errorf("items %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if order[0] != "active_decisions/ip/ipv4" || order[2] != "dropped/byte/ipv4" || order[6] != "processed/byte/ipv4" {
		t.Errorf("items not in a stable order: %v", order)
	}
	// Drop counters only (iptables without processed), IPv6 disabled.
	cfg.DisableIPv6 = true
	for _, it := range u.items(3, 0, &counterSnapshot{dropped: cur.dropped}) {
		if it.Name == models.UsageProcessed || (it.Name == models.UsageActiveDecisions && it.Labels["ip_type"] == "ipv6") {
			t.Errorf("unexpected item %+v", it)
		}
	}
	// Counters unreadable: the bans are still reported.
	if its := u.items(3, 0, nil); len(its) != 1 || its[0].Name != models.UsageActiveDecisions {
		t.Errorf("items without counters: %+v", its)
	}
}

// usageLAPI is a real LAPI on loopback over a SQLite file; stopping and
// starting it again on the same address and file is a LAPI outage.
type usageLAPI struct {
	*lapitest.LAPI
	t *testing.T
}

func startUsageLAPI(t *testing.T, dbPath, addr string) *usageLAPI {
	t.Helper()
	return &usageLAPI{LAPI: lapitest.Start(t, dbPath, addr), t: t}
}

func (l *usageLAPI) ban(values ...string) {
	l.t.Helper()
	now := time.Now()
	var ds []store.NewDecision
	for _, v := range values {
		r, err := store.ParseRange(v)
		if err != nil {
			l.t.Fatal(err)
		}
		ds = append(ds, store.NewDecision{UUID: "u-" + v, Until: now.Add(time.Hour), Scenario: "test/usage", Type: "ban",
			Scope: "Ip", Value: v, Origin: "cscli", Range: r})
	}
	a := &models.Alert{Scenario: "test/usage", Source: &models.Source{Scope: "Ip", Value: values[0]}}
	if _, err := l.Store.CreateAlerts(context.Background(), []store.NewAlert{{Alert: a, UUID: "a-" + values[0], StartAt: now, StopAt: now, Decisions: ds}}); err != nil {
		l.t.Fatalf("storing bans: %v", err)
	}
}

// reports reads back what the bouncer pushed: the raw windows and their sum.
func (l *usageLAPI) reports(name string) ([]models.RemediationComponentUsage, *usage.Component) {
	l.t.Helper()
	rs, err := l.Store.UsageReports(context.Background(), "remediation_component", name)
	if err != nil {
		l.t.Fatalf("reading usage reports: %v", err)
	}
	out := make([]models.RemediationComponentUsage, len(rs))
	for i, r := range rs {
		if err := json.Unmarshal([]byte(r.Payload), &out[i]); err != nil {
			l.t.Fatalf("report %d: %v", i, err)
		}
	}
	sum := usage.Summarize(rs)
	if len(sum) == 0 {
		return out, &usage.Component{}
	}
	return out, sum[0]
}

// usageLab is a defender namespace whose real nftables backend a bouncer
// drives against a real LAPI, and an attacker namespace whose address is
// banned.
type usageLab struct {
	t      *testing.T
	ns     *nstest.Pair
	fw     *nftables.Backend
	lapi   *usageLAPI
	b      *Bouncer
	target string // defender address:port the attacker knocks on
	cancel context.CancelFunc
	done   chan error
}

const usageBouncer = "fw-usage"

func newUsageLab(t *testing.T, subnet int, interval time.Duration) *usageLab {
	t.Helper()
	nstest.Require(t, "nft")
	ns := nstest.NewPair(t, subnet)
	fw := nftIn(t, ns.Defender)
	ln := ns.Listen(t, ns.Defender, net.JoinHostPort(ns.DefIP4.String(), "0"))
	l := startUsageLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	key := l.AddBouncer(usageBouncer)
	// The attacker, a second IPv4 and an IPv6 address nobody uses.
	l.ban(ns.AttIP4.String(), "192.0.2.10", "2001:db8:ffff::99")
	cfg, err := ParseConfig([]byte(fmt.Sprintf("mode = \"nftables\"\napi_key = %q\napi_url = \"http://%s/\"\nupdate_frequency = \"100ms\"\nlong_poll = false\nrequest_timeout = \"2s\"\n", key, l.Addr)), "t")
	if err != nil {
		t.Fatal(err)
	}
	client, err := apiclient.New(apiclient.Config{URL: cfg.APIURL, APIKey: cfg.APIKey, Timeout: cfg.RequestTimeout.Duration})
	if err != nil {
		t.Fatal(err)
	}
	b := New(cfg, fw, client, nil)
	b.usage.rep.Interval = interval
	lab := &usageLab{t: t, ns: ns, fw: fw, lapi: l, b: b, target: ln.Addr().String(), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	lab.cancel = cancel
	ready := make(chan struct{})
	go func() { lab.done <- b.Run(ctx, func() { close(ready) }) }()
	t.Cleanup(lab.stop)
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("bouncer never became ready")
	}
	return lab
}

func (lab *usageLab) stop() {
	if lab.cancel == nil {
		return
	}
	lab.cancel()
	if err := <-lab.done; err != nil {
		lab.t.Errorf("Run: %v", err)
	}
	lab.cancel = nil
}

// knock sends n SYNs from the banned attacker; each must be dropped.
func (lab *usageLab) knock(n int) {
	lab.t.Helper()
	for range n {
		c, err := lab.ns.DialFrom(lab.ns.Attacker, lab.ns.AttIP4, lab.target, 100*time.Millisecond)
		if err == nil {
			c.Close()
			lab.t.Fatal("the banned attacker got through")
		}
	}
}

// dropped reads the ban rules' counters straight from the kernel.
func (lab *usageLab) dropped() map[firewall.Family]firewall.Counter {
	lab.t.Helper()
	d, err := lab.fw.Counters(context.Background())
	if err != nil {
		lab.t.Fatalf("reading counters: %v", err)
	}
	return d
}

var v4, v6 = map[string]string{"ip_type": "ipv4"}, map[string]string{"ip_type": "ipv6"}

// waitDropped waits until the drops the LAPI summed equal the rule
// counter, which has moved past after.
func (lab *usageLab) waitDropped(after uint64) firewall.Counter {
	lab.t.Helper()
	var want firewall.Counter
	var c *usage.Component
	if !nstest.Eventually(5*time.Second, func() bool {
		want = lab.dropped()[firewall.IPv4]
		_, c = lab.lapi.reports(usageBouncer)
		return want.Packets > after && c.Total(models.UsageDropped, models.UsageUnitPacket, v4) == float64(want.Packets) &&
			c.Total(models.UsageDropped, models.UsageUnitByte, v4) == float64(want.Bytes)
	}) {
		lab.t.Fatalf("LAPI sums dropped ipv4 %v packets / %v bytes, the rule counter says %+v (must pass %d packets)",
			c.Total(models.UsageDropped, models.UsageUnitPacket, v4), c.Total(models.UsageDropped, models.UsageUnitByte, v4), want, after)
	}
	return want
}

// checkWindows asserts the windows tile time: each starts where the
// previous accepted one ended, so nothing is counted twice or lost.
func checkWindows(t *testing.T, rs []models.RemediationComponentUsage) {
	t.Helper()
	for i := 1; i < len(rs); i++ {
		prev, cur := rs[i-1].Metrics[0].Meta, rs[i].Metrics[0].Meta
		if cur.UtcNowTimestamp-cur.WindowSizeSeconds != prev.UtcNowTimestamp {
			t.Errorf("report %d covers [%d-%d, %d], the previous one ended at %d", i, cur.UtcNowTimestamp, cur.WindowSizeSeconds,
				cur.UtcNowTimestamp, prev.UtcNowTimestamp)
		}
	}
}

// TestUsageMetricsPushed: the bouncer reports its bans, and the drops its
// rules counted, to a real LAPI; the sums match the kernel's counters
// across several pushes and across a LAPI outage.
func TestUsageMetricsPushed(t *testing.T) {
	lab := newUsageLab(t, 187, 250*time.Millisecond)
	var c *usage.Component
	if !nstest.Eventually(5*time.Second, func() bool {
		_, c = lab.lapi.reports(usageBouncer)
		return c.LastReport.After(time.Time{})
	}) {
		t.Fatal("no usage report reached the LAPI")
	}
	if got := c.Total(models.UsageActiveDecisions, models.UsageUnitIP, v4); got != 2 {
		t.Errorf("active_decisions ipv4 = %v, want 2", got)
	}
	if got := c.Total(models.UsageActiveDecisions, models.UsageUnitIP, v6); got != 1 {
		t.Errorf("active_decisions ipv6 = %v, want 1", got)
	}
	if c.Type != usageType || c.Version != version.Version || c.OS == "" || c.FeatureFlags == nil {
		t.Errorf("component: type %q version %q os %q flags %v", c.Type, c.Version, c.OS, c.FeatureFlags)
	}

	// Drops are deltas: two rounds of traffic sum to the rule counter.
	lab.knock(4)
	first := lab.waitDropped(0)
	lab.knock(3)
	second := lab.waitDropped(first.Packets)

	// A LAPI outage: reports fail, the baseline stays, and the first report
	// after it carries everything dropped meanwhile.
	failedBefore := lab.b.usage.rep.Failed()
	addr, db := lab.lapi.Addr, lab.lapi.DBPath
	lab.lapi.Stop()
	lab.knock(5)
	if !nstest.Eventually(5*time.Second, func() bool { return lab.b.usage.rep.Failed() >= failedBefore+2 }) {
		t.Fatal("no report failed while the LAPI was down")
	}
	lab.lapi = startUsageLAPI(t, db, addr)
	third := lab.waitDropped(second.Packets)
	if third.Packets < second.Packets+5 {
		t.Errorf("counter %d after 5 more drops from %d", third.Packets, second.Packets)
	}

	rs, c := lab.lapi.reports(usageBouncer)
	checkWindows(t, rs)
	if got := c.Total(models.UsageDropped, models.UsageUnitPacket, v6); got != float64(lab.dropped()[firewall.IPv6].Packets) {
		t.Errorf("dropped ipv6 = %v, counter %d", got, lab.dropped()[firewall.IPv6].Packets)
	}
	// The processed counter sits before the ban rules: it saw every drop.
	if p, d := c.Total(models.UsageProcessed, models.UsageUnitPacket, v4), c.Total(models.UsageDropped, models.UsageUnitPacket, v4); p < d {
		t.Errorf("processed ipv4 %v packets < dropped %v", p, d)
	}
	if c.Total(models.UsageActiveDecisions, models.UsageUnitIP, v4) != 2 {
		t.Errorf("active_decisions after the outage: %+v", c.Values)
	}
	lab.stop()
}

// TestUsageFirstAndLastReport: with a long interval the LAPI still hears
// from the bouncer right after its first sync, and once more on stop with
// what was dropped since.
func TestUsageFirstAndLastReport(t *testing.T) {
	lab := newUsageLab(t, 188, time.Hour)
	if !nstest.Eventually(5*time.Second, func() bool { return lab.b.usage.rep.Sent() == 1 }) {
		t.Fatal("no report after the first sync")
	}
	lab.knock(3)
	want := lab.dropped()[firewall.IPv4]
	lab.stop()
	rs, c := lab.lapi.reports(usageBouncer)
	if len(rs) != 2 {
		t.Fatalf("%d reports, want the first and the last", len(rs))
	}
	if got := c.Total(models.UsageDropped, models.UsageUnitPacket, v4); want.Packets < 3 || got != float64(want.Packets) {
		t.Errorf("dropped ipv4 = %v, counter %+v", got, want)
	}
	checkWindows(t, rs)
}

// TestUsageOlderLAPI: a LAPI without the route (404) is warned about once;
// the bouncer keeps enforcing and keeps offering reports.
func TestUsageOlderLAPI(t *testing.T) {
	fw, _ := nftInNS(t)
	f := newFakeLAPI(t, `{"new":[`+dj("198.51.100.60", "Ip", "ban", "1h", 1)+`],"deleted":[]}`)
	cfg, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"key\"\napi_url = \""+f.srv.URL+"\"\nupdate_frequency = \"100ms\"\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	client, _ := apiclient.New(apiclient.Config{URL: cfg.APIURL, APIKey: cfg.APIKey})
	b := New(cfg, fw, client, nil)
	b.usage.rep.Interval = 50 * time.Millisecond
	hook := logtest.NewGlobal()
	defer logrus.StandardLogger().ReplaceHooks(logrus.LevelHooks{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, nil) }()
	if !nstest.Eventually(5*time.Second, func() bool { return f.usage.Load() >= 4 }) {
		t.Fatalf("%d reports offered, want several", f.usage.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	warned := 0
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "usage metrics") {
			if e.Level != logrus.WarnLevel || !strings.Contains(e.Message, "older LAPI?") {
				t.Errorf("unexpected log %s: %s %v", e.Level, e.Message, e.Data)
			}
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("%d warnings about usage metrics, want 1", warned)
	}
	if b.usage.rep.Sent() != 0 {
		t.Errorf("reports counted as sent to a LAPI that refused them")
	}
}

// TestUsageRetriedEarly: a report the LAPI failed (503) is retried with
// backoff, long before the interval, like the agent's: the LAPI learns of
// the bouncer soon after a hiccup, not an interval later.
func TestUsageRetriedEarly(t *testing.T) {
	fw, _ := nftInNS(t)
	var offered, accepted atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("X-Api-Key") != "key":
			w.WriteHeader(http.StatusForbidden)
		case r.URL.Path == "/v1/decisions/stream":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"new":[],"deleted":[]}`)
		case r.Method == http.MethodPost && r.URL.Path == "/v1/usage-metrics":
			if offered.Add(1) == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `{"message":"busy"}`)
				return
			}
			accepted.Add(1)
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	cfg, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"key\"\napi_url = \""+srv.URL+"\"\nupdate_frequency = \"100ms\"\nlong_poll = false\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	client, err := apiclient.New(apiclient.Config{URL: cfg.APIURL, APIKey: cfg.APIKey})
	if err != nil {
		t.Fatal(err)
	}
	b := New(cfg, fw, client, nil)
	b.usage.rep.Interval = time.Hour
	b.usage.rep.RetryMin = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, nil) }()
	if !nstest.Eventually(10*time.Second, func() bool { return accepted.Load() == 1 }) {
		t.Errorf("the failed report was not retried before the interval (%d offered)", offered.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if b.usage.rep.Failed() != 1 || b.usage.rep.Sent() != 2 {
		t.Errorf("%d failed, %d sent; want the first failed, its retry and the last sent", b.usage.rep.Failed(), b.usage.rep.Sent())
	}
}
