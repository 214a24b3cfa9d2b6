package lapi

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// histogramCount reads the sample count of the series of name with labels.
func histogramCount(g prometheus.Gatherer, name string, labels map[string]string, out *uint64) error {
	mfs, err := g.Gather()
	if err != nil {
		return err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			*out = m.GetHistogram().GetSampleCount()
			return nil
		}
	}
	return fmt.Errorf("no series %s%v", name, labels)
}

func TestMetrics(t *testing.T) {
	l := startLAPI(t, nil)
	reg := prometheus.NewRegistry()
	if err := l.Server.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	const ssh = "crowdsecurity/ssh-bf"
	l.push(agentAlert("1.2.3.4", ssh), agentAlert("1.2.3.5", ssh), agentAlert("1.2.3.6", ssh))
	l.push(manualAlert("5.6.7.8", "Ip", "4h", "cscli"))
	if st, _ := l.do("GET", "/v1/alerts", l.jwtHeaders(), nil); st != 200 {
		t.Fatalf("GET /v1/alerts: %d", st)
	}
	key := l.addBouncer("fw")
	l.stream(key, "&startup=true")
	l.stream(key, "")
	if st, _ := l.do("GET", "/v1/decisions?ip=1.2.3.4", keyHeaders(key), nil); st != 200 {
		t.Fatalf("GET /v1/decisions: %d", st)
	}
	if st, _ := l.do("GET", "/v1/heartbeat", l.jwtHeaders(), nil); st != 200 {
		t.Fatalf("GET /v1/heartbeat: %d", st)
	}
	beat := time.Now()
	// Scanner noise: unknown paths and methods must not become labels.
	l.do("GET", "/wp-login.php", nil, nil)
	l.do("GET", "/v1/x/1", nil, nil)
	l.do("FOO", "/v1/alerts", nil, nil)

	counter := func(name string, labels ...string) float64 {
		t.Helper()
		switch name {
		case "route":
			return testutil.ToFloat64(l.Server.metrics.Load().routeReqs.WithLabelValues(labels...))
		case "machine":
			return testutil.ToFloat64(l.Server.metrics.Load().machineReqs.WithLabelValues(labels...))
		}
		return testutil.ToFloat64(l.Server.metrics.Load().bouncerReqs.WithLabelValues(labels...))
	}
	checks := []struct {
		kind   string
		labels []string
		want   float64
	}{
		{"bouncer", []string{"fw", "/v1/decisions/stream", "GET"}, 2},
		{"bouncer", []string{"fw", "/v1/decisions", "GET"}, 1},
		{"machine", []string{testMachine, "/v1/alerts", "POST"}, 2},
		{"machine", []string{testMachine, "/v1/alerts", "GET"}, 1},
		{"route", []string{"/v1/decisions/stream", "GET"}, 2},
		{"route", []string{"/v1/alerts", "POST"}, 2},
		{"route", []string{"/v1/watchers/login", "POST"}, 1},
		{"route", []string{unknownLabel, "GET"}, 2},
		{"route", []string{"/v1/alerts", unknownLabel}, 1},
	}
	for _, c := range checks {
		if got := counter(c.kind, c.labels...); got != c.want {
			t.Errorf("%s %v = %v, want %v", c.kind, c.labels, got, c.want)
		}
	}
	// The startup stream and GET ?ip=1.2.3.4 carried decisions; the delta
	// after startup carried none.
	m := l.Server.metrics.Load()
	if ok, ko := testutil.ToFloat64(m.nonEmpty.WithLabelValues("fw")), testutil.ToFloat64(m.empty.WithLabelValues("fw")); ok != 2 || ko != 1 {
		t.Errorf("decision answers: %v non-empty, %v empty; want 2 and 1", ok, ko)
	}

	// The whole exposition: no raw URL leaked into a label, and the
	// database gauges carry upstream's labels.
	want := `
# HELP cs_active_decisions Number of active decisions.
# TYPE cs_active_decisions gauge
cs_active_decisions{action="ban",origin="cscli",reason="manual 'ban' from 'test'"} 1
cs_active_decisions{action="ban",origin="crowdsec",reason="crowdsecurity/ssh-bf"} 3
# HELP cs_alerts Number of alerts (excluding CAPI).
# TYPE cs_alerts gauge
cs_alerts{reason="crowdsecurity/ssh-bf"} 3
cs_alerts{reason="manual 'ban' from 'test'"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cs_active_decisions", "cs_alerts"); err != nil {
		t.Fatal(err)
	}
	if hb := testutil.ToFloat64(gaugeOf(t, reg, "cs_machines_last_heartbeat_timestamp", testMachine)); hb < float64(beat.Unix()-2) || hb > float64(time.Now().Unix()+1) {
		t.Errorf("last heartbeat %v, want about %d", hb, beat.Unix())
	}
	// Every counted request was timed, under its route's label.
	if n := testutil.CollectAndCount(m.duration, "cs_lapi_request_duration_seconds"); n < 5 {
		t.Errorf("%d duration series, want one per route and method seen", n)
	}
	var pushes uint64
	if err := histogramCount(reg, "cs_lapi_request_duration_seconds", map[string]string{"endpoint": "/v1/alerts", "method": "POST"}, &pushes); err != nil || pushes != 2 {
		t.Errorf("POST /v1/alerts timed %d times (%v), want 2", pushes, err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v := lp.GetValue(); strings.Contains(v, "wp-login") || v == "/v1/x/1" || v == "FOO" {
					t.Errorf("%s leaks request data in label %s=%q", mf.GetName(), lp.GetName(), v)
				}
			}
		}
	}

	// Within the TTL a scrape reuses the cached counts; after it, they move.
	l.push(agentAlert("1.2.3.7", ssh))
	db := l.Server.metrics.Load().db
	if got := testutil.ToFloat64(gaugeOf(t, reg, "cs_active_decisions", "crowdsecurity/ssh-bf")); got != 3 {
		t.Fatalf("cached gauge = %v, want 3", got)
	}
	db.mu.Lock()
	db.now = func() time.Time { return time.Now().Add(dbMetricsTTL) }
	db.mu.Unlock()
	if got := testutil.ToFloat64(gaugeOf(t, reg, "cs_active_decisions", "crowdsecurity/ssh-bf")); got != 4 {
		t.Fatalf("refreshed gauge = %v, want 4", got)
	}
}

// gaugeOf gathers reg and returns the named metric's sample whose reason is
// reason, as a collector testutil.ToFloat64 reads.
// gaugeOf finds the gauge of name whose reason (or machine) label is reason.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name, reason string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if (lp.GetName() == "reason" || lp.GetName() == "machine") && lp.GetValue() == reason {
					g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
					g.Set(m.GetGauge().GetValue())
					return g
				}
			}
		}
	}
	t.Fatalf("no %s{reason=%q}", name, reason)
	return nil
}
