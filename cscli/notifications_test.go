package cscli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/lapitest"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/models"
)

// webhook is a loopback endpoint keeping the bodies it receives; it
// answers status (200 when 0).
type webhook struct {
	mu     sync.Mutex
	bodies []string
	status int
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	w.bodies = append(w.bodies, string(b))
	status := w.status
	w.mu.Unlock()
	if status != 0 {
		rw.WriteHeader(status)
	}
}

func (w *webhook) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.bodies...)
}

// notifEnv is a LAPI environment whose cscli configuration has profiles
// naming "hook" (an http notification to a loopback webhook) and a
// notification folder with "hook", "spare" (in no profile) and "broken"
// (an endpoint answering 500).
func notifEnv(t *testing.T, profileNotifs string) (*lapiEnv, *webhook, *webhook) {
	t.Helper()
	env := startLAPI(t)
	hook, broken := &webhook{}, &webhook{status: 500}
	hs, bs := httptest.NewServer(hook), httptest.NewServer(broken)
	t.Cleanup(hs.Close)
	t.Cleanup(bs.Close)
	dir := filepath.Join(env.dir, "notifications")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "http.toml"), `
[[notification]]
type = "http"
name = "hook"
url = "`+hs.URL+`/in"
headers = { Authorization = "Bearer hidden-token", X-Rampart = "yes" }
format = '''{{range .}}{{.ID}} {{.Scenario}} {{.Source.IP}}{{end}}'''

[[notification]]
type = "http"
name = "broken"
url = "`+bs.URL+`"
format = "x"
`)
	write(filepath.Join(dir, "file.toml"), "type = \"file\"\nname = \"spare\"\nformat = \"x\"\nlog_path = \""+filepath.Join(env.dir, "spare.log")+"\"\n")
	prof := filepath.Join(env.dir, "profiles.toml")
	write(prof, `
[[profile]]
name = "default_ip_remediation"
filters = ["Alert.Remediation == true && Alert.GetScope() == 'Ip'"]
decisions = [{type = "ban", duration = "4h"}]
notifications = `+profileNotifs+`
on_success = "break"

[[profile]]
name = "off"
enabled = false
filters = ["true"]
notifications = ["spare"]
`)
	conf, err := os.ReadFile(env.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	c := "[config_paths]\nnotification_dir = " + strconv.Quote(dir) + "\n\n" +
		strings.Replace(string(conf), "[api.server]\n", "[api.server]\nprofiles_path = "+strconv.Quote(prof)+"\n", 1)
	write(env.cfgPath, c)
	return env, hook, broken
}

func TestNotificationsListInspect(t *testing.T) {
	env, _, _ := notifEnv(t, `["hook"]`)
	out := env.mustRun(t, "notifications", "list")
	for _, want := range []string{"Active", "Profile name", markCheck, "hook", "default_ip_remediation", markProhibited, "spare", "file"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	// The most used first.
	if strings.Index(out, "hook") > strings.Index(out, "spare") {
		t.Errorf("order:\n%s", out)
	}
	raw := env.mustRun(t, "notifications", "list", "-o", "raw")
	// The delivery columns are dashes: this LAPI was started without the
	// notifications (TestNotificationsListDeliveries has them).
	if want := "Name,Type,Profile name,Sent,Failed,Waiting,Last sent,Last error\nhook,http,default_ip_remediation,-,-,-,-,\n" +
		"broken,http,,-,-,-,-,\nspare,file,,-,-,-,-,\n"; raw != want {
		t.Errorf("raw:\n%s\nwant\n%s", raw, want)
	}
	var list map[string]struct {
		Config   map[string]any `json:"plugin_config"`
		Profiles []string       `json:"associated_profiles"`
	}
	if err := json.Unmarshal([]byte(env.mustRun(t, "notifications", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	h := list["hook"]
	if h.Config["Name"] != "hook" || h.Config["Type"] != "http" || len(h.Profiles) != 1 || list["spare"].Profiles == nil {
		t.Errorf("json list: %+v", list)
	}
	if hdr := h.Config["Headers"].(map[string]any); hdr["Authorization"] != redacted || hdr["X-Rampart"] != "yes" {
		t.Errorf("headers shown %v", hdr)
	}

	out = env.mustRun(t, "notifications", "inspect", "hook")
	for _, want := range []string{"Type", "http", "Name", "Timeout", "5s", "Format", "{{range .}}", "url", "/in", "method", "POST"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden-token") {
		t.Errorf("inspect shows a secret:\n%s", out)
	}
	// -o json is the notification (upstream prints its whole cscli
	// configuration instead).
	var one struct {
		Config map[string]any `json:"plugin_config"`
	}
	if err := json.Unmarshal([]byte(env.mustRun(t, "notifications", "inspect", "spare", "-o", "json")), &one); err != nil {
		t.Fatal(err)
	}
	if one.Config["Name"] != "spare" || one.Config["LogPath"] == "" {
		t.Errorf("inspect -o json: %+v", one)
	}
	if _, _, err := env.run(t, nil, "notifications", "inspect", "nope"); err == nil || !strings.Contains(err.Error(), `"nope" not found`) {
		t.Errorf("inspect of an unknown name: %v", err)
	}
}

func TestNotificationsUnknownInProfile(t *testing.T) {
	env, _, _ := notifEnv(t, `["hook", "mattermost"]`)
	_, _, err := env.run(t, nil, "notifications", "list")
	if err == nil || !strings.Contains(err.Error(), `profile "default_ip_remediation" names notification "mattermost"`) {
		t.Errorf("list with an unknown notification: %v", err)
	}
}

func TestNotificationsTest(t *testing.T) {
	env, hook, broken := notifEnv(t, `["hook"]`)
	out := env.mustRun(t, "notifications", "test", "hook")
	if !strings.Contains(out, `notification "hook" delivered`) {
		t.Errorf("output %q", out)
	}
	if got := hook.got(); len(got) != 1 || got[0] != "0 test alert 10.10.10.10" {
		t.Errorf("webhook got %q", got)
	}
	env.mustRun(t, "notifications", "test", "hook", "-a", `{"scenario": "custom/scenario", "source": {"ip": "192.0.2.44", "scope": "Ip", "value": "192.0.2.44"}}`)
	if got := hook.got(); len(got) != 2 || got[1] != "0 custom/scenario 192.0.2.44" {
		t.Errorf("with --alert, webhook got %q", got)
	}
	if _, _, err := env.run(t, nil, "notifications", "test", "hook", "-a", `{"scenaro": "x"}`); err == nil || !strings.Contains(err.Error(), "scenaro") {
		t.Errorf("misspelt override: %v", err)
	}
	// Unlike upstream, a failed delivery is a failure of the command.
	_, _, err := env.run(t, nil, "notifications", "test", "broken")
	if err == nil || !strings.Contains(err.Error(), "HTTP status 500") {
		t.Errorf("test of a broken endpoint: %v", err)
	}
	if len(broken.got()) != 1 {
		t.Errorf("broken endpoint called %d times, want 1 (max_retry = 0)", len(broken.got()))
	}
}

func TestNotificationsReinject(t *testing.T) {
	env, hook, _ := notifEnv(t, `["hook"]`)
	id := pushAgentAlert(t, env, "192.0.2.60", true)
	out := env.mustRun(t, "notifications", "reinject", strconv.FormatInt(id, 10))
	if !strings.Contains(out, `sent to notification "hook"`) {
		t.Errorf("output %q", out)
	}
	want := strconv.FormatInt(id, 10) + " crowdsecurity/ssh-bf 192.0.2.60"
	if got := hook.got(); len(got) != 1 || got[0] != want {
		t.Errorf("webhook got %q, want %q (the stored alert, with its id)", got, want)
	}
	// An override that makes the profile miss: nothing is sent.
	out = env.mustRun(t, "notifications", "reinject", strconv.FormatInt(id, 10), "-a", `{"remediation": false}`)
	if !strings.Contains(out, "matches no profile") || len(hook.got()) != 1 {
		t.Errorf("override: %q, %d messages", out, len(hook.got()))
	}
	if _, _, err := env.run(t, nil, "notifications", "reinject", "999999"); err == nil {
		t.Error("reinject of a missing alert succeeded")
	}
}

// TestNotificationsListDeliveries lists what the LAPI's notification did:
// a message refused once, then delivered on its retry.
func TestNotificationsListDeliveries(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(hs.Close)
	dir := t.TempDir()
	notifDir, profPath := filepath.Join(dir, "notifications"), filepath.Join(dir, "profiles.toml")
	if err := os.MkdirAll(notifDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(notifDir, "http.toml"), "type = \"http\"\nname = \"flaky\"\nformat = \"x\"\nmax_retry = 3\nurl = \""+hs.URL+"\"\n")
	write(profPath, `
[[profile]]
name = "default_ip_remediation"
filters = ["Alert.Remediation == true && Alert.GetScope() == 'Ip'"]
decisions = [{type = "ban", duration = "4h"}]
notifications = ["flaky"]
on_success = "break"
`)
	prof, err := profiles.Load(profPath)
	if err != nil {
		t.Fatal(err)
	}
	l := lapitest.StartNotifying(t, filepath.Join(dir, "crowdsec.db"), prof, notifDir)
	env := newLAPIEnv(t, dir, l)
	conf, err := os.ReadFile(env.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	write(env.cfgPath, "[config_paths]\nnotification_dir = "+strconv.Quote(notifDir)+"\n\n"+
		strings.Replace(string(conf), "[api.server]\n", "[api.server]\nprofiles_path = "+strconv.Quote(profPath)+"\n", 1))

	pushAgentAlert(t, env, "192.0.2.70", true)
	deadline := time.Now().Add(30 * time.Second)
	for st := l.Server.Notifications().Stats(); st[0].Sent == 0; st = l.Server.Notifications().Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("never delivered: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var list map[string]struct {
		Deliveries *models.NotificationStatus `json:"deliveries"`
	}
	if err := json.Unmarshal([]byte(env.mustRun(t, "notifications", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	d := list["flaky"].Deliveries
	if d == nil || d.Sent != 1 || d.Failed != 0 || d.Queued != 0 || d.LastSent == nil || d.LastErrorAt == nil ||
		d.LastError != "HTTP status 503: busy" || len(d.Recent) != 1 || d.Recent[0].Attempts != 2 || d.Recent[0].Error != "" {
		t.Fatalf("deliveries: %+v", d)
	}
	raw := env.mustRun(t, "notifications", "list", "-o", "raw")
	want := "Name,Type,Profile name,Sent,Failed,Waiting,Last sent,Last error\nflaky,http,default_ip_remediation,1,0,0," +
		d.LastSent.UTC().Format(time.RFC3339) + "," + d.LastErrorAt.UTC().Format(time.RFC3339) + ": HTTP status 503: busy\n"
	if raw != want {
		t.Errorf("raw:\n%s\nwant\n%s", raw, want)
	}
	if out := env.mustRun(t, "notifications", "list"); !strings.Contains(out, "Last error") || !strings.Contains(out, "HTTP status 503: busy") {
		t.Errorf("table:\n%s", out)
	}
}

// Upstream's YAML files beside the TOML ones: listed and sent alike; one
// still holding upstream's placeholder is listed with why it cannot send,
// and test refuses it.
func TestNotificationsUpstreamYAML(t *testing.T) {
	env, _, _ := notifEnv(t, `["hook"]`)
	splunk := &webhook{}
	ss := httptest.NewServer(splunk)
	t.Cleanup(ss.Close)
	dir := filepath.Join(env.dir, "notifications")
	yaml := "type: splunk\nname: splunk_default\nformat: |\n  {{range .}}{{.Source.IP}}{{end}}\nurl: " + ss.URL +
		"\ntoken: hec-secret\n---\n# type: splunk\n# name: splunk_second_notification\n"
	if err := os.WriteFile(filepath.Join(dir, "splunk.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	placeholder := "type: http\nname: http_default\nformat: |\n  {{.|toJson}}\nurl: <HTTP_url>\nmethod: POST\n"
	if err := os.WriteFile(filepath.Join(dir, "http.yaml"), []byte(placeholder), 0o644); err != nil {
		t.Fatal(err)
	}
	out := env.mustRun(t, "notifications", "list")
	for _, want := range []string{"splunk_default", "splunk", "http_default", `http_default cannot send: `, `url "<HTTP_url>"`} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	out = env.mustRun(t, "notifications", "inspect", "splunk_default")
	if !strings.Contains(out, "token") || strings.Contains(out, "hec-secret") {
		t.Errorf("inspect shows no token or the secret:\n%s", out)
	}
	env.mustRun(t, "notifications", "test", "splunk_default")
	if got := splunk.got(); len(got) != 1 || got[0] != `{"event":"10.10.10.10\n"}` {
		t.Errorf("splunk got %q", got)
	}
	if _, _, err := env.run(t, nil, "notifications", "test", "http_default"); err == nil || !strings.Contains(err.Error(), "cannot send") {
		t.Errorf("test of a notification with a placeholder url: %v", err)
	}
	// A name defined twice (a kept YAML file and an uncommented TOML
	// example, say): list says which and where, before any restart does.
	if err := os.WriteFile(filepath.Join(dir, "webhook.yaml"), []byte("type: http\nname: hook\nformat: x\nurl: http://127.0.0.1/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := env.run(t, nil, "notifications", "list")
	if want := `notification "hook" is defined twice: in ` + filepath.Join(dir, "http.toml") + " and in " + filepath.Join(dir, "webhook.yaml") + "; "; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("list with a name defined twice: %v, want %q", err, want)
	}
}

// A fresh install: the shipped examples, all commented out, define no
// notification, and list says how to make one.
func TestNotificationsShippedExamples(t *testing.T) {
	env := startLAPI(t)
	dir := filepath.Join(env.dir, "notifications")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shipped, err := filepath.Glob(filepath.Join("..", "config", "notifications", "*.toml"))
	if err != nil || len(shipped) == 0 {
		t.Fatalf("shipped examples: %v %v", shipped, err)
	}
	for _, p := range shipped {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// With the shipped profiles too.
	prof, err := filepath.Abs(filepath.Join("..", "config", "profiles.toml"))
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(env.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	c := "[config_paths]\nnotification_dir = " + strconv.Quote(dir) + "\n\n" +
		strings.Replace(string(conf), "[api.server]\n", "[api.server]\nprofiles_path = "+strconv.Quote(prof)+"\n", 1)
	if err := os.WriteFile(env.cfgPath, []byte(c), 0o600); err != nil {
		t.Fatal(err)
	}
	out := env.mustRun(t, "notifications", "list")
	if !strings.Contains(out, "No notification configured in "+dir) || !strings.Contains(out, "commented out") {
		t.Errorf("list:\n%s", out)
	}
}
