package usage

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

func report(t *testing.T, by string, at time.Time, window int64, items ...*models.UsageItem) store.UsageReport {
	t.Helper()
	raw, err := json.Marshal(models.RemediationComponentUsage{Type: "crowdsec-firewall-bouncer",
		BaseUsage: models.NewBaseUsage("v1", &models.UsageOS{Name: "debian", Version: "12"}, 1, window, at.Unix(), items)})
	if err != nil {
		t.Fatal(err)
	}
	return store.UsageReport{Kind: "remediation_component", By: by, ReceivedAt: at, Payload: string(raw)}
}

func item(name, unit string, v float64, labels ...string) *models.UsageItem {
	l := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		l[labels[i]] = labels[i+1]
	}
	return &models.UsageItem{Name: name, Unit: unit, Value: v, Labels: l}
}

func TestSummarize(t *testing.T) {
	t0 := time.Unix(1_780_000_000, 0)
	comps := Summarize([]store.UsageReport{
		report(t, "fw", t0, 900,
			item("active_decisions", "ip", 4, "ip_type", "ipv4"), item("active_decisions", "ip", 2, "ip_type", "ipv6"),
			item("dropped", "packet", 10, "ip_type", "ipv4", "origin", "crowdsec"), item("dropped", "packet", 1, "ip_type", "ipv6")),
		{Kind: "remediation_component", By: "fw", ReceivedAt: t0.Add(time.Minute), Payload: "{not json"},
		report(t, "fw", t0.Add(900*time.Second), 900,
			item("active_decisions", "ip", 3, "ip_type", "ipv4"),
			item("dropped", "packet", 5, "ip_type", "ipv4", "origin", "crowdsec")),
		report(t, "other", t0, 60, item("dropped", "byte", 7, "ip_type", "ipv4")),
	})
	if len(comps) != 2 || comps[0].Name != "fw" || comps[1].Name != "other" {
		t.Fatalf("components %+v", comps)
	}
	fw := comps[0]
	checks := []struct {
		what string
		got  float64
		want float64
	}{
		// counters: every window's delta adds up
		{"dropped ipv4", fw.Total("dropped", "packet", map[string]string{"ip_type": "ipv4"}), 15},
		{"dropped all", fw.Total("dropped", "packet", nil), 16},
		{"dropped by origin", fw.Total("dropped", "packet", map[string]string{"origin": "crowdsec"}), 15},
		// gauges: the latest window only; ipv6 had none left in it
		{"active ipv4", fw.Total("active_decisions", "ip", map[string]string{"ip_type": "ipv4"}), 3},
		{"active all", fw.Total("active_decisions", "ip", nil), 3},
		{"unknown unit", fw.Total("dropped", "byte", nil), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if fw.Skipped != 1 {
		t.Errorf("%d unreadable reports counted, want 1", fw.Skipped)
	}
	if want := t0.Add(-900 * time.Second); !fw.Since.Equal(want) {
		t.Errorf("since %v, want the first window's start %v", fw.Since, want)
	}
	if !fw.LastReport.Equal(t0.Add(900*time.Second)) || fw.Type != "crowdsec-firewall-bouncer" || fw.OS != "debian 12" || fw.Version != "v1" {
		t.Errorf("component details %+v", fw)
	}
}
