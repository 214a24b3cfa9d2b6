package capi

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/store"
)

// console.yaml reaches the service: the usage metrics' console_options
// in upstream's order, and decision deletions told to the console only
// with manual or console_management on.
func TestSetupConsoleOptions(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), store.Config{Path: filepath.Join(dir, "crowdsec.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	creds := filepath.Join(dir, "online_api_credentials.yaml")
	if err := os.WriteFile(creds, []byte("url: https://a/\nlogin: l\npassword: p\npapi_url: https://p/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := csconfig.Default()
	cfg.API.Server.ConsolePath = filepath.Join(dir, "console.yaml")
	cfg.API.Server.OnlineClient = &csconfig.OnlineClient{CredentialsPath: creds}
	for _, c := range []struct {
		opts      csconfig.ConsoleOptions
		want      string
		deletions bool
	}{
		{csconfig.ConsoleOptions{Custom: true, Tainted: true}, "custom,tainted", false},
		{csconfig.ConsoleOptions{Manual: true, Custom: true, Tainted: true, Context: true, Management: true}, "custom,tainted,manual,console_management,context", true},
		{csconfig.ConsoleOptions{Management: true}, "console_management", true},
		{csconfig.ConsoleOptions{Manual: true, Context: true}, "manual,context", true},
	} {
		if err := csconfig.WriteConsole(cfg.API.Server.ConsolePath, c.opts); err != nil {
			t.Fatal(err)
		}
		svc, _, err := Setup(cfg, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		if svc.o.ConsoleOptions != c.want || svc.o.ShareDeletions != c.deletions || svc.o.PAPIURL != "https://p/x/" {
			t.Errorf("%+v: console_options %q, deletions %v, papi %q; want %q, %v", c.opts, svc.o.ConsoleOptions, svc.o.ShareDeletions, svc.o.PAPIURL, c.want, c.deletions)
		}
	}
}
