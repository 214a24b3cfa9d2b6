package cscli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/testdb/storecfg"
	"github.com/rampart-ips/rampart/lapi"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
)

// startOpsLAPI serves a LAPI on loopback over dbPath and returns its
// address; it stops with the test.
func startOpsLAPI(t *testing.T, dbPath string, mutate func(*csconfig.Config)) string {
	t.Helper()
	cfg := csconfig.Default()
	cfg.DBConfig.DBPath = dbPath
	cfg.API.Server.ListenURI = "127.0.0.1:0"
	if mutate != nil {
		mutate(cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, storecfg.At(t, dbPath))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	srv, err := lapi.New(ctx, cfg, st, profiles.Default())
	if err != nil {
		cancel()
		st.Close()
		t.Fatal(err)
	}
	ln, err := srv.Listen()
	if err != nil {
		cancel()
		st.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, ln, nil)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	return ln.Addr().String()
}

// newLapiOpsEnv starts a LAPI and a cscli configuration pointing at it.
func newLapiOpsEnv(t *testing.T, mutate func(*csconfig.Config)) (*opsEnv, string) {
	t.Helper()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "crowdsec.db")
	addr := startOpsLAPI(t, dbPath, mutate)
	return newOpsEnvAt(t, addr, dbPath), addr
}

func TestLapiStatus(t *testing.T) {
	e, addr := newLapiOpsEnv(t, nil)

	e.mustRun("machines", "add", "local", "-p", "good-password")
	out, _ := e.mustRun("lapi", "status")
	for _, want := range []string{
		"Loaded credentials from " + e.credPath,
		"Trying to authenticate with username local on http://" + addr + "/",
		"You can successfully interact with Local API (LAPI)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lapi status lacks %q:\n%s", want, out)
		}
	}

	if err := csconfig.WriteCredentials(e.credPath, &csconfig.Credentials{URL: "http://" + addr + "/", Login: "local", Password: "bad-password"}); err != nil {
		t.Fatal(err)
	}
	out, _, err := e.run("", "lapi", "status")
	if err == nil || !strings.Contains(err.Error(), "failed to authenticate to Local API (LAPI)") {
		t.Fatalf("bad password: want an authentication error, got %v\n%s", err, out)
	}
	if strings.Contains(out, "You can successfully interact") {
		t.Fatalf("bad password reported as success:\n%s", out)
	}

	if err := csconfig.WriteCredentials(e.credPath, &csconfig.Credentials{URL: "http://127.0.0.1:1/", Login: "local", Password: "good-password"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.run("", "lapi", "status"); err == nil {
		t.Fatal("unreachable LAPI reported as success")
	}
}

func TestLapiRegister(t *testing.T) {
	token := strings.Repeat("t0k3n", 8)
	e, addr := newLapiOpsEnv(t, func(c *csconfig.Config) {
		c.API.Server.AutoRegistration = &csconfig.AutoRegistration{Enabled: true, Token: token, AllowedRanges: []string{"127.0.0.1/32"}}
	})
	ctx := context.Background()
	st := e.store()

	_, errs := e.mustRun("lapi", "register", "--machine", "agent1", "-u", addr)
	if !strings.Contains(errs, "cscli machines validate agent1") {
		t.Fatalf("register should tell how to validate the machine:\n%s", errs)
	}
	creds, err := csconfig.LoadCredentials(e.credPath)
	if err != nil {
		t.Fatal(err)
	}
	if creds.Login != "agent1" || creds.URL != "http://"+addr+"/" || len(creds.Password) != machinePasswordLength {
		t.Fatalf("written credentials: %+v", creds)
	}
	m := checkMachinePassword(t, st, "agent1", creds.Password)
	if m.IsValidated {
		t.Fatal("a machine registered without token must wait for validation")
	}
	if _, _, err := e.run("", "lapi", "status"); err == nil || !strings.Contains(err.Error(), "not validated") {
		t.Fatalf("status before validation: %v", err)
	}
	e.mustRun("machines", "validate", "agent1")
	e.mustRun("lapi", "status")

	// the same name again: the LAPI refuses it
	if _, _, err := e.run("", "lapi", "register", "--machine", "agent1", "-f", "-"); err == nil || !strings.Contains(err.Error(), "already exist") {
		t.Fatalf("registering an existing name: %v", err)
	}

	// with the auto-registration token the machine is validated at once
	other := filepath.Join(e.dir, "agent2.toml")
	_, errs = e.mustRun("lapi", "register", "--machine", "agent2", "--token", token, "-f", other)
	if strings.Contains(errs, "machines validate") {
		t.Fatalf("no validation step with a token:\n%s", errs)
	}
	if m, err := st.GetMachine(ctx, "agent2"); err != nil || !m.IsValidated {
		t.Fatalf("agent2 after token registration: %+v %v", m, err)
	}
	if creds, err := csconfig.LoadCredentials(other); err != nil || creds.Login != "agent2" {
		t.Fatalf("agent2 credentials: %+v %v", creds, err)
	}

	if _, _, err := e.run("", "lapi", "register", "--machine", "agent3", "--token", strings.Repeat("x", 32), "-f", "-"); err == nil {
		t.Fatal("a wrong token should be refused")
	}
}
