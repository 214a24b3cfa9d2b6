package cscli

import (
	"strings"
	"testing"
)

func TestIsSecretKey(t *testing.T) {
	for k, want := range map[string]bool{
		"password": true, "sasl_password": true, "api_key": true, "key": true, "token": true, "jwt_secret": true,
		"Authorization": true, "X-Api-Key": true, "secret_access_key": true, "private_key": true, "apikey": true,
		"key_path": false, "key_file": false, "cert_path": false, "credentials_path": false, "login": false,
		"listen_uri": false, "max_header_bytes": false, "bouncers_allowed_ou": false, "skip_broken_rules": false,
	} {
		if got := isSecretKey(k); got != want {
			t.Errorf("isSecretKey(%q) = %v", k, got)
		}
	}
}

func TestRedactTOML(t *testing.T) {
	in := `api_key = "k-123456"
empty_password = ""
[[source]]
source = "loki"
password = "p-123456"
headers = { Authorization = "Bearer b-123456", X-Other = "fine" }
`
	var found []string
	out, err := redactTOML([]byte(in), &found)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"k-123456", "p-123456", "b-123456"} {
		if strings.Contains(string(out), s) {
			t.Errorf("%s left in:\n%s", s, out)
		}
	}
	if len(found) != 3 || !strings.Contains(string(out), `X-Other = "fine"`) || !strings.Contains(string(out), `empty_password = ""`) {
		t.Errorf("found %v\n%s", found, out)
	}
	if _, err := redactTOML([]byte("not = [toml"), nil); err == nil {
		t.Error("broken TOML: no error")
	}
}
