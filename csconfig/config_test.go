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

func TestLoginLimit(t *testing.T) {
	c, err := Parse(nil, "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if ll := c.API.Server.LoginLimit; ll.SourceBurst != 10 || ll.SourceRefill.Duration != 10*time.Second ||
		ll.MachineBurst != 20 || ll.MachineRefill.Duration != 30*time.Second || ll.MaxTracked != 10000 {
		t.Errorf("defaults: %+v", ll)
	}
	c, err = Parse([]byte("[api.server.login_limit]\nsource_burst = 3\nmachine_refill = \"1h\"\n"), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if ll := c.API.Server.LoginLimit; ll.SourceBurst != 3 || ll.MachineRefill.Duration != time.Hour || ll.MachineBurst != 20 {
		t.Errorf("partial settings: %+v", ll)
	}
	if _, err := Parse([]byte("[api.server.login_limit]\nenabled = false\n"), "test.toml"); err != nil {
		t.Errorf("disabled: %v", err)
	}
	for _, bad := range []string{"source_burst = -1", `machine_refill = "-1s"`, "max_tracked = -5"} {
		_, err := Parse([]byte("[api.server.login_limit]\n"+bad+"\n"), "test.toml")
		if err == nil || !strings.Contains(err.Error(), "api.server.login_limit") {
			t.Errorf("%s: got %v, want a login_limit error", bad, err)
		}
	}
}

func TestAPIServerClientBounds(t *testing.T) {
	c, err := Parse([]byte("[api.server]\n"), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := c.API.Server
	if s.ReadHeaderTimeout.Duration != DefaultReadHeaderTimeout || s.ReadTimeout.Duration != DefaultReadTimeout ||
		s.IdleTimeout.Duration != DefaultIdleTimeout || s.MaxHeaderBytes != DefaultMaxHeaderBytes ||
		s.MaxConnections != DefaultMaxConnections || s.MaxConnectionsPerSource != DefaultMaxConnectionsPerSource {
		t.Errorf("defaults not applied: %+v", s)
	}
	c, err = Parse([]byte(`[api.server]
read_header_timeout = "2s"
read_timeout = "1m30s"
idle_timeout = "1h"
max_header_bytes = 4096
max_connections = 10
max_connections_per_source = 2
`), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	s = c.API.Server
	if s.ReadHeaderTimeout.Duration != 2*time.Second || s.ReadTimeout.Duration != 90*time.Second || s.IdleTimeout.Duration != time.Hour ||
		s.MaxHeaderBytes != 4096 || s.MaxConnections != 10 || s.MaxConnectionsPerSource != 2 {
		t.Errorf("configured bounds not kept: %+v", s)
	}
	for _, bad := range []string{`read_timeout = "-1s"`, `max_connections = -1`, `max_connections_per_source = -5`} {
		if _, err := Parse([]byte("[api.server]\n"+bad+"\n"), "test.toml"); err == nil || !strings.Contains(err.Error(), "must not be negative") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
