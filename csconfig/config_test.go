package csconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/internal/testpki"
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

func TestMaxBucketsPerScenario(t *testing.T) {
	for _, tc := range []struct {
		toml string
		want int
		err  string
	}{
		{"", DefaultMaxBucketsPerScenario, ""},
		{"max_buckets_per_scenario = 5000", 5000, ""},
		{"max_buckets_per_scenario = 0", 0, ""},
		{"max_buckets_per_scenario = -1", 0, "max_buckets_per_scenario -1"},
		{`max_buckets_per_scenario = "many"`, 0, "max_buckets_per_scenario"},
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
		if got := *c.Crowdsec.MaxBucketsPerScenario; got != tc.want {
			t.Errorf("%q: %d, want %d", tc.toml, got, tc.want)
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

// A credentials file holds a login, a client certificate or both; the
// LAPI client built from it carries its TLS.
func TestCredentials(t *testing.T) {
	pki := testpki.New(t)
	leaf := pki.Issue("agent", "agent1", []string{"agent"}, false, time.Now().Add(time.Hour))
	dir := t.TempDir()
	for _, tc := range []struct {
		name, toml, err string
	}{
		{"login", `url = "http://127.0.0.1:8080/"` + "\nlogin = \"m\"\npassword = \"p\"\n", ""},
		{"certificate only", fmt.Sprintf("url = \"https://127.0.0.1:8080/\"\nca_cert_path = %q\ncert_path = %q\nkey_path = %q\n", pki.File, leaf.CertFile, leaf.KeyFile), ""},
		{"no url", "login = \"m\"\npassword = \"p\"\n", "url is required"},
		{"neither", `url = "http://127.0.0.1:8080/"` + "\n", "login and password, or cert_path and key_path"},
		{"certificate without key", fmt.Sprintf("url = \"https://127.0.0.1:8080/\"\ncert_path = %q\n", leaf.CertFile), "cert_path and key_path go together"},
		{"unknown key", `url = "http://127.0.0.1:8080/"` + "\nlogin = \"m\"\ncert = \"x\"\n", "cert: unknown key"},
		{"several LAPIs", `urls = ["https://a:8080/", "https://b:8080"]` + "\nlogin = \"m\"\npassword = \"p\"\n", ""},
		{"url and urls", `url = "https://a:8080/"` + "\n" + `urls = ["https://b:8080/"]` + "\nlogin = \"m\"\n", "url and urls are both set"},
		{"empty urls", "urls = []\nlogin = \"m\"\n", "urls is empty: list at least one LAPI URL"},
		{"bad urls", `urls = ["https://a:8080/", "a:8080"]` + "\nlogin = \"m\"\n", `urls: entry 2: LAPI URL "a:8080": scheme must be http or https`},
		{"urls twice", `urls = ["https://a:8080/", "https://a:8080"]` + "\nlogin = \"m\"\n", `urls: entry 2: "https://a:8080" is listed twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".toml")
			if err := os.WriteFile(path, []byte(tc.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			creds, err := LoadCredentials(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ac, err := Default().LAPIClient(creds)
			if err != nil {
				t.Fatal(err)
			}
			if ac.URL != creds.URL || fmt.Sprint(ac.URLs) != fmt.Sprint(creds.URLs) || ac.MachineID != creds.Login || ac.Password != creds.Password {
				t.Errorf("client config %+v from %+v", ac, creds)
			}
			if _, err := apiclient.New(ac); err != nil {
				t.Errorf("apiclient.New: %v", err)
			}
			if hasCert := ac.TLS != nil && len(ac.TLS.Certificates) == 1 && ac.TLS.RootCAs != nil; hasCert != (creds.CertPath != "") {
				t.Errorf("client TLS %+v from %+v", ac.TLS, creds)
			}
		})
	}

	// insecure_skip_verify alone makes a TLS configuration; a certificate
	// file gone since the credentials were written is named.
	c, err := Parse([]byte("[api.client]\ninsecure_skip_verify = true\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	ac, err := c.LAPIClient(&Credentials{URL: "https://h/", Login: "m"})
	if err != nil || ac.TLS == nil || !ac.TLS.InsecureSkipVerify {
		t.Errorf("insecure_skip_verify: %+v, %v", ac.TLS, err)
	}
	gone := filepath.Join(dir, "gone.pem")
	if _, err := c.LAPIClient(&Credentials{URL: "https://h/", CertPath: gone, KeyPath: leaf.KeyFile}); err == nil || !strings.Contains(err.Error(), "cert_path") {
		t.Errorf("missing certificate: %v, want an error naming cert_path", err)
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

func TestFilePositionKeys(t *testing.T) {
	for _, tc := range []struct {
		toml string
		err  string
	}{
		{"", ""},
		{"state_save_interval = \"5s\"\nmax_backlog_age = \"0\"\nmax_backlog_bytes = 1048576", ""},
		{`state_save_interval = "0s"`, "state_save_interval 0s: want a positive duration"},
		{`max_backlog_age = "-1h"`, "max_backlog_age -1h0m0s must not be negative"},
		{`max_backlog_bytes = -1`, "max_backlog_bytes -1 must not be negative"},
	} {
		_, err := Parse([]byte("[crowdsec_service]\n"+tc.toml+"\n"), "test.toml")
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: got %v, want %q", tc.toml, err, tc.err)
		}
	}
}
