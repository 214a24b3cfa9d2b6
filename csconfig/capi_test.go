package csconfig

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCAPICredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "online_api_credentials.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := LoadCAPICredentials(write("url: https://api.example.net\nlogin: me\npassword: secret\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "https://api.example.net/" || c.PAPIURL != DefaultPAPIURL || c.Login != "me" {
		t.Errorf("credentials %+v", c)
	}
	for body, field := range map[string]string{"": "login", "login: me\npassword: x\n": "url", "url: https://a/\nlogin: me\n": "password"} {
		_, err := LoadCAPICredentials(write(body))
		var inc *IncompleteCAPICredentialsError
		if !errors.As(err, &inc) || inc.Field != field {
			t.Errorf("%q: %v, want a missing %s", body, err, field)
		}
	}
	if _, err := LoadCAPICredentials(write("url: https://a/\nlogin: me\npassword: x\nextra: 1\n")); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := LoadCAPICredentials(write("url: ftp://a/\nlogin: me\npassword: x\n")); err == nil {
		t.Error("an ftp URL was accepted")
	}
	out := filepath.Join(dir, "sub", "out.yaml")
	if err := WriteCAPICredentials(out, &CAPICredentials{URL: "https://a/", Login: "l", Password: "p"}, nil); err != nil {
		t.Fatal(err)
	}
	if back, err := LoadCAPICredentials(out); err != nil || back.Login != "l" || back.Password != "p" || back.URL != "https://a/" {
		t.Errorf("round trip %+v, %v", back, err)
	}
}

func TestConsoleDefaults(t *testing.T) {
	dir := t.TempDir()
	o, err := LoadConsole(filepath.Join(dir, "missing.yaml"))
	if err != nil || o != (ConsoleOptions{Custom: true, Tainted: true}) {
		t.Errorf("missing file: %+v, %v", o, err)
	}
	p := filepath.Join(dir, "console.yaml")
	if err := os.WriteFile(p, []byte("share_manual_decisions: true\nshare_tainted: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if o, err = LoadConsole(p); err != nil || o != (ConsoleOptions{Manual: true, Custom: true}) {
		t.Errorf("console.yaml: %+v, %v", o, err)
	}
}

func TestOnlineClientConfig(t *testing.T) {
	c, err := Parse([]byte("[api.server.online_client]\n[api.server.online_client.pull]\ncommunity = false\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	oc := c.API.Server.OnlineClient
	if oc == nil || oc.CredentialsPath != "/etc/crowdsec/online_api_credentials.yaml" || oc.SignalQueueMax != DefaultSignalQueueMax ||
		!Bool(oc.Sharing, true) || Bool(oc.Pull.Community, true) || !Bool(oc.Pull.Blocklists, true) {
		t.Errorf("online_client %+v", oc)
	}
	if c, err := Parse(nil, "t.toml"); err != nil || c.API.Server.OnlineClient != nil {
		t.Errorf("without the section: %v, %v", c.API.Server.OnlineClient, err)
	}
	if _, err := Parse([]byte("[api.server.online_client]\nsignal_queue_max = -1\n"), "t.toml"); err == nil {
		t.Error("a negative signal_queue_max was accepted")
	}
}

// cscli's rewrite of console.yaml reads back the same, every key written.
func TestWriteConsole(t *testing.T) {
	p := filepath.Join(t.TempDir(), "etc", "console.yaml")
	want := ConsoleOptions{Manual: true, Tainted: true, Context: true}
	if err := WriteConsole(p, want); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadConsole(p); err != nil || got != want {
		t.Errorf("read back %+v, %v; want %+v", got, err, want)
	}
	data, _ := os.ReadFile(p)
	for _, k := range []string{"share_manual_decisions: true", "share_custom: false", "share_tainted: true", "share_context: true", "console_management: false"} {
		if !strings.Contains(string(data), k) {
			t.Errorf("console.yaml lacks %q:\n%s", k, data)
		}
	}
	var o ConsoleOptions
	for _, n := range ConsoleOptionNames {
		*o.Option(n) = true
	}
	if o != (ConsoleOptions{Manual: true, Custom: true, Tainted: true, Context: true, Management: true}) || o.Option("bogus") != nil {
		t.Errorf("options by name: %+v", o)
	}
}
