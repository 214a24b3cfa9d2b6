package csconfig

import (
	"os"
	"path/filepath"
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

// Decoding problems name the file, the line and the key, in the same
// format as every other TOML file Rampart reads.
func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{"[api.server]\nlisten_uri = \"127.0.0.1:8080\"\nlisten_url = \"x\"\n", "test.toml:3: api.server.listen_url: unknown key"},
		{"[prometheus]\n\nlisten_port = \"many\"\n", "test.toml:3: prometheus.listen_port: incompatible types"},
		{"[db_config]\ntype = \n", "test.toml:2: db_config.type: expected value"},
	} {
		_, err := Parse([]byte(tc.toml), "test.toml")
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q...", tc.toml, err, tc.want)
		}
	}
}

func TestLoadCredentialsErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.toml")
	if err := os.WriteFile(path, []byte("url = \"http://127.0.0.1:8080/\"\nlogin = \"m\"\npasword = \"p\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredentials(path); err == nil || err.Error() != path+":3: pasword: unknown key" {
		t.Errorf("unknown key: %v", err)
	}
	if err := os.WriteFile(path, []byte("url = \"http://127.0.0.1:8080/\"\nlogin = \"m\"\npassword = \"p\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := LoadCredentials(path); err != nil || c.Password != "p" {
		t.Errorf("valid file: %+v, %v", c, err)
	}
}
