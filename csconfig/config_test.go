package csconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		{"unknown key", `url = "http://127.0.0.1:8080/"` + "\nlogin = \"m\"\ncert = \"x\"\n", "unknown configuration key cert"},
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
			if ac.URL != creds.URL || ac.MachineID != creds.Login || ac.Password != creds.Password {
				t.Errorf("client config %+v from %+v", ac, creds)
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
