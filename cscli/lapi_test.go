package cscli

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/testdb/storecfg"
	"github.com/rampart-ips/rampart/internal/testpki"
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

	if _, _, err := e.run("", "lapi", "register", "--machine", "agent1", "-u", "https://"+addr); err == nil || !strings.Contains(err.Error(), "serves plain http") {
		t.Fatalf("https URL to a plain listener: want a scheme hint, got %v", err)
	}
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

	// Credentials listing several LAPIs of one database: registering on
	// one of them, with or without --url, keeps the list.
	fleet := []string{"http://" + addr + "/", "http://127.0.0.1:1/"}
	if err := csconfig.WriteCredentials(e.credPath, &csconfig.Credentials{URLs: fleet, Login: "old", Password: "old"}); err != nil {
		t.Fatal(err)
	}
	e.mustRun("lapi", "register", "--machine", "agent4")
	e.mustRun("lapi", "register", "--machine", "agent5", "-u", addr)
	if creds, err := csconfig.LoadCredentials(e.credPath); err != nil || creds.Login != "agent5" || !slices.Equal(creds.URLs, fleet) {
		t.Fatalf("credentials after registering with urls: %+v %v", creds, err)
	}
	for _, m := range []string{"agent4", "agent5"} {
		if _, err := st.GetMachine(ctx, m); err != nil {
			t.Errorf("%s not registered: %v", m, err)
		}
	}
}

// TestLapiRegisterTLS: registration with a LAPI serving TLS. The LAPI's
// certificate is verified: an unknown CA or a wrong name fail with a hint;
// --ca-cert trusts the CA, makes a bare host:port https and is written to
// the credentials, with which the machine, once validated, logs in.
func TestLapiRegisterTLS(t *testing.T) {
	pki := testpki.New(t)
	srv := pki.Issue("lapi", "lapi", nil, true, time.Now().Add(time.Hour))
	e, addr := newLapiOpsEnv(t, func(c *csconfig.Config) {
		c.API.Server.TLS = &csconfig.TLS{CertFile: srv.CertFile, KeyFile: srv.KeyFile}
	})
	_, port, _ := net.SplitHostPort(addr)

	_, _, err := e.run("", "lapi", "register", "--machine", "remote1", "-u", "https://"+addr)
	if err == nil || !strings.Contains(err.Error(), "--ca-cert") {
		t.Fatalf("unknown CA: want an error naming --ca-cert, got %v", err)
	}
	_, _, err = e.run("", "lapi", "register", "--machine", "remote1", "-u", "https://localhost:"+port, "--ca-cert", pki.File)
	if err == nil || !strings.Contains(err.Error(), "not for this address") {
		t.Fatalf("certificate for another name: want a hostname hint, got %v", err)
	}
	if _, _, err := e.run("", "lapi", "register", "--machine", "remote1", "-u", "http://"+addr, "--ca-cert", pki.File); err == nil {
		t.Fatal("--ca-cert with an http URL should be refused")
	}
	if _, _, err := e.run("", "lapi", "register", "--machine", "remote1", "-u", "http://"+addr); err == nil || !strings.Contains(err.Error(), "use an https:// URL") {
		t.Fatalf("http URL to a TLS listener: want a scheme hint, got %v", err)
	}
	if _, err := os.Stat(e.credPath); err == nil {
		t.Fatal("a failed registration wrote credentials")
	}

	_, errs := e.mustRun("lapi", "register", "--machine", "remote1", "-u", addr, "--ca-cert", pki.File)
	creds, err := csconfig.LoadCredentials(e.credPath)
	if err != nil {
		t.Fatal(err)
	}
	if creds.URL != "https://"+addr+"/" || creds.CACert != pki.File || creds.Login != "remote1" {
		t.Fatalf("credentials: %+v", creds)
	}
	if !strings.Contains(errs, "cscli machines validate remote1") {
		t.Errorf("no validation hint:\n%s", errs)
	}
	_, _, err = e.run("", "lapi", "status")
	if err == nil || !strings.Contains(err.Error(), "run 'cscli machines validate remote1' on the LAPI host") {
		t.Fatalf("status while pending: want the validation hint, got %v", err)
	}
	e.mustRun("machines", "validate", "remote1")
	if out, _ := e.mustRun("lapi", "status"); !strings.Contains(out, "https://"+addr+"/") {
		t.Errorf("status:\n%s", out)
	}

	// Registering again with the same URL keeps the CA of the credentials.
	e.mustRun("lapi", "register", "--machine", "remote2", "-u", "https://"+addr+"/")
	if creds, err := csconfig.LoadCredentials(e.credPath); err != nil || creds.CACert != pki.File || creds.Login != "remote2" {
		t.Fatalf("credentials after a second registration: %+v %v", creds, err)
	}

	// Without the CA, only when the configuration asks not to verify.
	if err := os.Remove(e.credPath); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.run("", "lapi", "register", "--machine", "remote3", "-u", "https://"+addr); err == nil {
		t.Fatal("registered without the CA")
	}
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	insecure := strings.Replace(string(cfg), "[api.client]\n", "[api.client]\ninsecure_skip_verify = true\n", 1)
	if err := os.WriteFile(e.cfgPath, []byte(insecure), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun("lapi", "register", "--machine", "remote3", "-u", "https://"+addr)
}

// TestAgentOnlyHostRefusesDatabaseCommands: with [api.server] enable =
// false the commands working on the LAPI's database say where to run them
// and create no database here.
func TestAgentOnlyHostRefusesDatabaseCommands(t *testing.T) {
	e := newOpsEnvAt(t, "127.0.0.1:1", "")
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.cfgPath, append(cfg, "enable = false\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := csconfig.WriteCredentials(e.credPath, &csconfig.Credentials{URL: "https://10.0.0.1:8080/", Login: "web1", Password: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"bouncers", "add", "fw"},
		{"machines", "list"},
		{"machines", "validate", "web1"},
		{"allowlists", "list"},
		{"alerts", "flush"},
	} {
		_, _, err := e.run("", args...)
		if err == nil || !strings.Contains(err.Error(), "local API is disabled on this host") || !strings.Contains(err.Error(), "https://10.0.0.1:8080/") {
			t.Errorf("cscli %s: want the agent-only refusal, got %v", strings.Join(args, " "), err)
		}
	}
	if _, err := os.Stat(e.dbPath); !os.IsNotExist(err) {
		t.Errorf("a database was created on an agent-only host: %v", err)
	}
}
