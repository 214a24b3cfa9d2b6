package cscli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// pushUsage stores one report as the LAPI does after POST /v1/usage-metrics.
func pushUsage(t *testing.T, st *store.Store, bouncer string, now int64, items ...*models.UsageItem) {
	t.Helper()
	item := models.RemediationComponentUsage{Type: "crowdsec-firewall-bouncer", BaseUsage: models.BaseUsage{
		Version: "v1.2.3", OS: &models.UsageOS{Name: "debian", Version: "12"}, UtcStartupTimestamp: 1,
		Metrics: []*models.UsageWindow{{Meta: models.UsageWindowMeta{WindowSizeSeconds: 900, UtcNowTimestamp: now}, Items: items}},
	}}
	raw, err := json.Marshal(item)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.StoreUsageMetrics(context.Background(), "remediation_component", bouncer, string(raw)); err != nil {
		t.Fatal(err)
	}
}

func usageItem(name, unit, ipType string, v float64) *models.UsageItem {
	return &models.UsageItem{Name: name, Unit: unit, Value: v, Labels: map[string]string{"ip_type": ipType}}
}

func TestMetricsShowBouncers(t *testing.T) {
	e := newOpsEnv(t, "http://127.0.0.1:8080")
	e.mustRun("bouncers", "add", "fw1", "-k", "0123456789abcdef0123456789abcdef")
	st := e.store()
	const t0 = 1_780_000_000
	pushUsage(t, st, "fw1", t0,
		usageItem("active_decisions", "ip", "ipv4", 7), usageItem("active_decisions", "ip", "ipv6", 1),
		usageItem("dropped", "packet", "ipv4", 100), usageItem("dropped", "byte", "ipv4", 6000),
		usageItem("processed", "packet", "ipv4", 5000))
	// The second window adds drops and replaces the active count.
	pushUsage(t, st, "fw1", t0+900,
		usageItem("active_decisions", "ip", "ipv4", 5),
		usageItem("dropped", "packet", "ipv4", 23), usageItem("dropped", "byte", "ipv4", 1380),
		usageItem("processed", "packet", "ipv4", 1000))

	out, _ := e.mustRun("metrics", "show", "bouncers", "--no-unit")
	for _, want := range []string{"Bouncer Metrics (fw1) since 2026-05-28T20:11:40Z:",
		"Active decisions (IPs)", "Dropped (bytes)", "Dropped (packets)", "Processed (packets)"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	// ipv6 had no ban left in the latest window: 5 active, not 6.
	total := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "Total") {
			total = strings.Join(strings.Fields(strings.ReplaceAll(l, "|", " ")), " ")
		}
	}
	if total != "Total 5 7380 123 6000" {
		t.Errorf("total row %q in\n%s", total, out)
	}

	var got map[string]map[string]map[string]any
	js, _ := e.mustRun("-o", "json", "metrics", "show", "bouncers")
	if err := json.Unmarshal([]byte(js), &got); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	tot, _ := json.Marshal(got["bouncers"]["fw1"]["total"])
	if string(tot) != `{"active_decisions":{"ip":5},"dropped":{"byte":7380,"packet":123},"processed":{"packet":6000}}` {
		t.Errorf("json total %s", tot)
	}

	out, _ = e.mustRun("bouncers", "inspect", "fw1")
	if !strings.Contains(out, "Bouncer Metrics (fw1)") || !strings.Contains(out, "7.38k") {
		t.Errorf("inspect lacks usage metrics:\n%s", out)
	}
	var info map[string]any
	js, _ = e.mustRun("-o", "json", "bouncers", "inspect", "fw1")
	if err := json.Unmarshal([]byte(js), &info); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	if um, ok := info["usage_metrics"].(map[string]any); !ok || um["type"] != "crowdsec-firewall-bouncer" {
		t.Errorf("inspect json usage_metrics: %v", info["usage_metrics"])
	}

	// A bouncer that never reported: the explicit section says so.
	e2 := newOpsEnv(t, "http://127.0.0.1:8080")
	out, _ = e2.mustRun("metrics", "show", "bouncers")
	if !strings.Contains(out, "no bouncer has reported usage metrics") {
		t.Errorf("empty bouncers section:\n%s", out)
	}
}
