package cscli

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/capi"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/capitest"
)

// cscli capi register writes credentials CAPI accepts; capi status logs
// in with them, keeps the token for the LAPI and says what is enabled.
func TestCapiRegisterStatus(t *testing.T) {
	cs := capitest.Start(t)
	e := newOpsEnvAt(t, "127.0.0.1:0", "")
	credPath := filepath.Join(e.dir, "online_api_credentials.yaml")
	f, err := os.OpenFile(e.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("\n[api.server.online_client]\ncredentials_path = " + strconv.Quote(credPath) + "\n[api.server.online_client.pull]\nblocklists = false\n")
	f.Close()
	st := e.store()
	st.Close()

	_, errs := e.mustRun("capi", "register", "--url", strings.TrimSuffix(cs.URL(), "/"))
	if !strings.Contains(errs, "Successfully registered to Central API (CAPI)") {
		t.Errorf("register said %q", errs)
	}
	creds, err := csconfig.LoadCAPICredentials(credPath)
	if err != nil {
		t.Fatal(err)
	}
	if creds.URL != cs.URL() || len(creds.Password) != 64 || strings.ContainsRune(creds.Password, 'Z') || len(creds.Login) != 48 {
		t.Errorf("credentials %+v", creds)
	}
	if fi, err := os.Stat(credPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %v, %v", fi.Mode(), err)
	}

	out, _ := e.mustRun("capi", "status")
	for _, want := range []string{"Loaded credentials from " + credPath, "Trying to authenticate with username " + creds.Login,
		"You can successfully interact with Central API (CAPI)", "Sharing signals is enabled",
		"Pulling community blocklist is enabled", "Pulling blocklists from the console is disabled"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	st = e.store()
	defer st.Close()
	if tok, err := st.GetKV(context.Background(), capi.TokenKey); err != nil || tok == "" {
		t.Errorf("token not kept in the database: %q, %v", tok, err)
	}

	// Wrong password: a clear failure.
	if err := os.WriteFile(credPath, []byte("url: "+cs.URL()+"\nlogin: "+creds.Login+"\npassword: wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.run("", "capi", "status"); err == nil || !strings.Contains(err.Error(), "failed to authenticate to Central API (CAPI)") {
		t.Errorf("status with a wrong password: %v", err)
	}
}
