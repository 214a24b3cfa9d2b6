package csconfig

import (
	"strings"
	"testing"
	"time"
)

func TestUsageMetricsInterval(t *testing.T) {
	for _, tc := range []struct {
		toml string
		want time.Duration
		err  string
	}{
		{"", DefaultUsageMetricsInterval, ""},
		{`usage_metrics_interval = "1h"`, time.Hour, ""},
		{`usage_metrics_interval = "1d"`, 24 * time.Hour, ""},
		{`usage_metrics_interval = "0s"`, 0, ""},
		{`usage_metrics_interval = "10s"`, 0, "at least 1m0s"},
		{`usage_metrics_interval = "-5m"`, 0, "at least 1m0s"},
		{`usage_metrics_interval = "soon"`, 0, "invalid duration"},
	} {
		c, err := Parse([]byte("[crowdsec_service]\n"+tc.toml+"\n"), "test.toml")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want an error with %q", tc.toml, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.toml, err)
			continue
		}
		if got := c.Crowdsec.UsageMetricsInterval.Duration; got != tc.want {
			t.Errorf("%q: interval %s, want %s", tc.toml, got, tc.want)
		}
	}
}

func TestPrometheusLevel(t *testing.T) {
	for _, l := range []string{"", "full", "aggregated", "none"} {
		if _, err := Parse([]byte("[prometheus]\nlevel = \""+l+"\"\n"), "test.toml"); err != nil {
			t.Errorf("level %q: %v", l, err)
		}
	}
	_, err := Parse([]byte("[prometheus]\nlevel = \"verbose\"\n"), "test.toml")
	if err == nil || !strings.Contains(err.Error(), `prometheus.level "verbose"`) || !strings.Contains(err.Error(), "aggregated") {
		t.Errorf("unknown level: %v", err)
	}
}
