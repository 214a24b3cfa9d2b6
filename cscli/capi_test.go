package cscli

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/capi"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/capitest"
	"github.com/rampart-ips/rampart/lapi/store"
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

// joinCAPI starts a capitest Central API knowing console-login, writes
// its credentials in dir and names them, with console.yaml in dir, in the
// configuration cfgPath (which ends in [api.server]).
func joinCAPI(t *testing.T, dir, cfgPath string) *capitest.Server {
	t.Helper()
	cs := capitest.Start(t)
	cs.AddMachine("console-login", "console-password")
	credPath := filepath.Join(dir, "online_api_credentials.yaml")
	if err := csconfig.WriteCAPICredentials(credPath, &csconfig.CAPICredentials{URL: cs.URL(), Login: "console-login", Password: "console-password"}, nil); err != nil {
		t.Fatal(err)
	}
	appendFile(t, cfgPath, "console_path = "+strconv.Quote(filepath.Join(dir, "console.yaml"))+
		"\n[api.server.online_client]\ncredentials_path = "+strconv.Quote(credPath)+"\n")
	return cs
}

// appendFile adds text at the end of the file at path.
func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// consoleEnv is an operator environment registered with a capitest
// Central API, console.yaml in its folder.
func consoleEnv(t *testing.T) (*opsEnv, *capitest.Server, string) {
	t.Helper()
	e := newOpsEnvAt(t, "127.0.0.1:0", "")
	cs := joinCAPI(t, e.dir, e.cfgPath)
	e.store().Close()
	return e, cs, filepath.Join(e.dir, "console.yaml")
}

// cscli console enroll sends upstream's request (tags [] when none,
// overwrite only when true, no key with --quick), turns on manual, tainted
// and context, honours 200 = already enrolled, and capi status then shows
// the enrollment from the token.
func TestConsoleEnroll(t *testing.T) {
	e, cs, consolePath := consoleEnv(t)
	host, _ := os.Hostname()

	// A bad option is refused before anything is sent.
	if _, _, err := e.run("", "console", "enroll", "KEY", "-e", "bogus"); err == nil || !strings.Contains(err.Error(), "option bogus doesn't exist") {
		t.Errorf("bad option: %v", err)
	}
	if _, _, err := e.run("", "console", "enroll"); err == nil {
		t.Error("enroll without a key nor --quick succeeded")
	}
	if n := len(cs.Enrolls()); n != 0 {
		t.Fatalf("%d enroll requests after refusals", n)
	}

	_, errs := e.mustRun("console", "enroll", "KEY-1", "--name", "web1", "--tags", "a", "-t", "b", "-d", "context")
	for _, want := range []string{"Enabled manual : ", "Enabled tainted : ", "Disabled context : ",
		"Watcher successfully enrolled. Visit https://app.crowdsec.net to accept it.", "Please restart crowdsec after accepting the enrollment."} {
		if !strings.Contains(errs, want) {
			t.Errorf("enroll said %q, lacks %q", errs, want)
		}
	}
	got, err := csconfig.LoadConsole(consolePath)
	if want := (csconfig.ConsoleOptions{Manual: true, Custom: true, Tainted: true}); err != nil || got != want {
		t.Errorf("console.yaml after enroll: %+v, %v; want %+v", got, err, want)
	}
	out, _ := e.mustRun("console", "enroll", "--quick", "-n", "web1")
	if !strings.Contains(out, cs.URL()+"enroll/console-login") {
		t.Errorf("--quick printed %q", out)
	}
	if !cs.Accept("console-login", "org-1", "ENTERPRISE") {
		t.Fatal("no enrollment pending in the console")
	}
	e.mustRun("console", "enroll", "KEY-2") // no tags, default name: already enrolled
	_, errs = e.mustRun("console", "enroll", "KEY-3", "--overwrite")
	if !strings.Contains(errs, "Watcher successfully enrolled") {
		t.Errorf("overwrite said %q", errs)
	}
	want := []map[string]any{
		{"attachment_key": "KEY-1", "name": "web1", "tags": []any{"a", "b"}, "autoenroll": false},
		{"name": "web1", "tags": []any{}, "autoenroll": true},
		{"attachment_key": "KEY-2", "name": host, "tags": []any{}, "autoenroll": false},
		{"attachment_key": "KEY-3", "name": host, "tags": []any{}, "overwrite": true, "autoenroll": false},
	}
	if got := cs.Enrolls(); !reflect.DeepEqual(got, want) {
		t.Errorf("enroll requests:\n got %v\nwant %v", got, want)
	}
	st := e.store()
	if tok, err := st.GetKV(context.Background(), capi.TokenKey); err != nil || tok != "" {
		t.Errorf("the LAPI's token was kept after enrolling: %q, %v", tok, err)
	}
	st.Close()

	// The second enroll answered 200: it said so and wrote nothing.
	if err := csconfig.WriteConsole(consolePath, csconfig.ConsoleOptions{}); err != nil {
		t.Fatal(err)
	}
	_, errs = e.mustRun("console", "enroll", "KEY-4")
	if !strings.Contains(errs, "Instance already enrolled. You can use '--overwrite' to force enroll") {
		t.Errorf("already enrolled said %q", errs)
	}
	if got, _ := csconfig.LoadConsole(consolePath); got != (csconfig.ConsoleOptions{}) {
		t.Errorf("an enroll answered 200 changed the options: %+v", got)
	}

	out, _ = e.mustRun("capi", "status")
	for _, w := range []string{"Your instance is enrolled in the console", "Subscription type: ENTERPRISE"} {
		if !strings.Contains(out, w) {
			t.Errorf("capi status lacks %q:\n%s", w, out)
		}
	}

	// A refused login is the enroll's failure, with upstream's words.
	cs.Fail("/v3/watchers/login", 403, 403, 403)
	st = e.store()
	if err := capi.ForgetToken(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, _, err := e.run("", "console", "enroll", "KEY-5"); err == nil || !strings.Contains(err.Error(), "could not enroll instance") {
		t.Errorf("enroll with a refused login: %v", err)
	}
}

// console enable/disable rewrite console.yaml and say what changed;
// status prints the options as a table, JSON and CSV.
func TestConsoleOptions(t *testing.T) {
	e, _, consolePath := consoleEnv(t)
	out, _ := e.mustRun("console", "status", "-o", "raw")
	if want := "option,enabled\nmanual,false\ncustom,true\ntainted,true\ncontext,false\nconsole_management,false\n"; out != want {
		t.Errorf("defaults, raw:\n%s\nwant:\n%s", out, want)
	}
	_, errs := e.mustRun("console", "enable", "manual", "context", "custom")
	for _, w := range []string{"manual set to true", "context set to true", "[manual context custom] have been enabled", reloadMessage} {
		if !strings.Contains(errs, w) {
			t.Errorf("enable said %q, lacks %q", errs, w)
		}
	}
	if strings.Contains(errs, "custom set to") {
		t.Errorf("enable reported an option already on: %q", errs)
	}
	if got, _ := csconfig.LoadConsole(consolePath); got != (csconfig.ConsoleOptions{Manual: true, Custom: true, Tainted: true, Context: true}) {
		t.Errorf("after enable: %+v", got)
	}
	_, errs = e.mustRun("console", "disable", "--all")
	if !strings.Contains(errs, "All features have been disabled") {
		t.Errorf("disable --all said %q", errs)
	}
	e.mustRun("console", "enable", "console_management")
	out, _ = e.mustRun("console", "status", "-o", "json")
	var js map[string]bool
	if err := json.Unmarshal([]byte(out), &js); err != nil || !reflect.DeepEqual(js, map[string]bool{"manual": false, "custom": false,
		"tainted": false, "context": false, "console_management": true}) {
		t.Errorf("status json %s: %v", out, err)
	}
	out, _ = e.mustRun("console", "status")
	for _, w := range []string{"Option Name", "Activated", "Description", "| console_management | ✅ ", "| manual             | ❌ "} {
		if !strings.Contains(out, w) {
			t.Errorf("status table lacks %q:\n%s", w, out)
		}
	}
	for _, bad := range [][]string{{"console", "enable"}, {"console", "enable", "nope"}, {"console", "disable", "--all", "manual"}} {
		if _, _, err := e.run("", bad...); err == nil {
			t.Errorf("cscli %v succeeded", bad)
		}
	}
}

// The console options decide what the LAPI shares: a decision added with
// cscli is a signal only once `cscli console enable manual` and a reload
// turned manual sharing on, and it then reaches the Central API as
// scenario_trust manual.
func TestConsoleOptionsGateSignals(t *testing.T) {
	env := startLAPI(t)
	cs := joinCAPI(t, env.dir, env.cfgPath)
	cs.SetEnrolled("console-login", "org-1", "COMMUNITY")
	ctx := context.Background()
	// The service logs apart: cscli's runs point the standard logger at
	// their own buffers.
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	r := &capi.Runner{St: env.lapi.Store, Filter: env.lapi.Server.FilterPulled, Share: env.lapi.Server, Log: logrus.NewEntry(quiet)}
	defer r.Stop()
	reload := func() {
		t.Helper()
		cfg, err := csconfig.Load(env.cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Apply(ctx, cfg); err != nil || r.Service() == nil {
			t.Fatalf("applying the configuration: %v, %v", r.Service(), err)
		}
	}
	reload()
	queued := func() int64 {
		t.Helper()
		n, err := env.st.SignalQueueLen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	uuidOf := func(v string) string {
		t.Helper()
		rows, err := env.st.QueryDecisions(ctx, store.DecisionFilter{Value: v}, time.Now())
		if err != nil || len(rows) != 1 {
			t.Fatalf("decisions on %s: %d, %v", v, len(rows), err)
		}
		return rows[0].UUID
	}
	env.mustRun(t, "decisions", "add", "-i", "192.0.2.10")
	if n := queued(); n != 0 {
		t.Errorf("a manual decision was queued as a signal with manual sharing off (%d)", n)
	}
	off := uuidOf("192.0.2.10")
	env.mustRun(t, "decisions", "delete", "-i", "192.0.2.10")
	if err := r.Service().PushDeletions(ctx); err != nil || len(cs.Deleted()) != 0 {
		t.Errorf("a deletion with manual sharing off was told to the console: %v, %v", cs.Deleted(), err)
	}
	env.mustRun(t, "console", "enable", "manual")
	reload()
	env.mustRun(t, "decisions", "add", "-i", "192.0.2.11")
	if n := queued(); n != 1 {
		t.Fatalf("%d signals queued with manual sharing on, want 1", n)
	}
	deadline := time.Now().Add(time.Minute)
	for len(cs.Signals()) == 0 {
		// The running service may hold the push lock: then it sends them.
		if err := r.Service().PushSignals(ctx); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the signal never reached the Central API")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Its deletion is told to the console too, a reload in between; the
	// one made with manual sharing off never is.
	on := uuidOf("192.0.2.11")
	env.mustRun(t, "decisions", "delete", "-i", "192.0.2.11")
	reload()
	for !slices.Contains(cs.Deleted(), on) {
		if err := r.Service().PushDeletions(ctx); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the deletion never reached the Central API")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if slices.Contains(cs.Deleted(), off) {
		t.Error("a deletion made with manual sharing off was told to the console")
	}
	sigs := cs.Signals()
	if len(sigs) != 1 || sigs[0].ScenarioTrust != capi.TrustManual || sigs[0].Source.Value != "192.0.2.11" ||
		len(sigs[0].Decisions) != 1 || sigs[0].Decisions[0].Origin != "cscli" {
		t.Errorf("signals %+v", sigs)
	}
}

// cscli papi status shows the plan and categories PAPI grants, and the
// last order taken; without a plan that has console management it fails
// with PAPI's word.
func TestPapiStatus(t *testing.T) {
	e, cs, _ := consoleEnv(t)
	appendFile(t, filepath.Join(e.dir, "online_api_credentials.yaml"), "papi_url: "+cs.PAPIURL()+"\n")
	if _, _, err := e.run("", "papi", "status"); err == nil || !strings.Contains(err.Error(), "unable to get PAPI permissions") ||
		!strings.Contains(err.Error(), "(402)") {
		t.Errorf("not enrolled: %v", err)
	}
	cs.SetEnrolled("console-login", "org-1", "SECOPS")
	st := e.store()
	// The token kept by the first try predates the enrollment.
	if err := capi.ForgetToken(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	st.Close()
	out, _ := e.mustRun("papi", "status")
	for _, w := range []string{"You can successfully interact with Polling API (PAPI)", "Console plan: SECOPS", "Last order received: never",
		"PAPI subscriptions:\n - decision\n - management\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("papi status lacks %q:\n%s", w, out)
		}
	}
}
