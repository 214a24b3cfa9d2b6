package lapi

import (
	"context"
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
)

// hook is a webhook endpoint on loopback; while hang is open, requests
// wait for it to close.
type hook struct {
	mu     sync.Mutex
	bodies []string
	hang   chan struct{}
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies = append(h.bodies, string(b))
	hang := h.hang
	h.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *hook) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// notifyLAPI starts a LAPI whose profile bans every IP alert for 4h and
// notifies "hook", an http notification posting to url; mutate adjusts
// the rest of its configuration.
func notifyLAPI(t *testing.T, url string, extra string, mutate ...func(*csconfig.Config)) *testLAPI {
	t.Helper()
	dir := t.TempDir()
	prof := filepath.Join(dir, "profiles.toml")
	writeFile(t, prof, `
[[profile]]
name = "default_ip_remediation"
filters = ["Alert.Remediation == true && Alert.GetScope() == 'Ip'"]
decisions = [{type = "ban", duration = "4h"}]
notifications = ["hook"]
on_success = "break"
`)
	writeFile(t, filepath.Join(dir, "notifications", "http.toml"), `
type = "http"
name = "hook"
url = "`+url+`"
format = '''{{range .}}{{.Scenario}} from {{.Source.IP}}: {{range .Decisions}}{{.Type}} {{.Value}} id={{.ID}}{{end}}{{end}}'''
`+extra)
	return startLAPIAt(t, filepath.Join(dir, "crowdsec.db"), func(c *csconfig.Config) {
		c.API.Server.ProfilesPath = prof
		c.ConfigPaths.NotificationDir = filepath.Join(dir, "notifications")
		for _, m := range mutate {
			m(c)
		}
	})
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestNotificationEndToEnd(t *testing.T) {
	h := &hook{}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	l := notifyLAPI(t, srv.URL, "")
	ids := l.push(agentAlert("203.0.113.5", "crowdsecurity/ssh-bf"))
	deadline := time.Now().Add(10 * time.Second)
	for len(h.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := h.got()
	if len(got) != 1 {
		t.Fatalf("webhook received %d messages, want 1", len(got))
	}
	// Rendered after the insert: the decision has its id.
	if want := "crowdsecurity/ssh-bf from 203.0.113.5: ban 203.0.113.5 id="; !strings.HasPrefix(got[0], want) || strings.HasSuffix(got[0], "id=0") {
		t.Errorf("webhook body %q, want %q and an id", got[0], want)
	}
	id, err := strconv.ParseInt(ids[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	a, err := l.Store.GetAlert(context.Background(), id, time.Now())
	if err != nil || !strings.HasSuffix(got[0], "id="+strconv.FormatInt(a.Decisions[0].ID, 10)) {
		t.Errorf("body %q, stored decision %+v (%v)", got[0], a.Decisions, err)
	}
	// A manual decision (alert with its own decision) matching the
	// profile is notified too, as upstream; an agent's retried push (the
	// same UUIDs) is not notified again, nor a UUID twice in one push.
	retried := agentAlert("203.0.113.7", "crowdsecurity/ssh-bf")
	retried.UUID = "0b7d5c4e-1f2a-4b3c-9d8e-7f6a5b4c3d2e"
	l.push(retried, retried)
	l.push(retried)
	l.push(manualAlert("203.0.113.6", "Ip", "1h", "cscli"))
	for len(h.got()) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// The broker sends in queue order: the manual one comes last.
	if got := h.got(); len(got) != 3 || !strings.Contains(got[1], "ban 203.0.113.7") || !strings.Contains(got[2], "ban 203.0.113.6") {
		t.Errorf("after a retried push and a manual decision: %q", got)
	}
	// The deliveries are counted beside the LAPI's other metrics (the
	// webhook has the message a moment before the broker counts it).
	reg := prometheus.NewRegistry()
	if err := l.Server.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	want := `# HELP cs_lapi_notifications_sent_total Notification messages delivered.
# TYPE cs_lapi_notifications_sent_total counter
cs_lapi_notifications_sent_total{notification="hook",type="http"} 3
# HELP cs_lapi_notifications_dropped_total Alerts not notified: the notification's queue was full, or the alert could not be read back.
# TYPE cs_lapi_notifications_dropped_total counter
cs_lapi_notifications_dropped_total{notification="hook",type="http"} 0
`
	var err2 error
	for time.Now().Before(deadline) {
		if err2 = testutil.GatherAndCompare(reg, strings.NewReader(want), "cs_lapi_notifications_sent_total", "cs_lapi_notifications_dropped_total"); err2 == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err2 != nil {
		t.Error(err2)
	}
	// And on the dashboard.
	ns := l.uiSummary().Notifications
	if len(ns) != 1 || ns[0].Name != "hook" || ns[0].Type != "http" || ns[0].Sent != 3 || ns[0].LastSent == nil || ns[0].LastErrorAt != nil {
		t.Errorf("dashboard notifications: %+v", ns)
	}
}

// A hanging endpoint delays nothing: the push is answered and the ban is
// on the stream while the notification waits.
func TestNotificationNeverDelaysBan(t *testing.T) {
	h := &hook{hang: make(chan struct{})}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { close(h.hang); srv.Close() })
	l := notifyLAPI(t, srv.URL, "timeout = \"1h\"\n")
	key := l.addBouncer("fw")
	l.stream(key, "&startup=true")
	l.push(agentAlert("203.0.113.9", "crowdsecurity/ssh-bf"))
	// The broker is stuck in the webhook...
	deadline := time.Now().Add(10 * time.Second)
	for len(h.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(h.got()) != 1 {
		t.Fatal("the webhook was never called")
	}
	// ...and the bouncer gets the ban, as do the pushes after it.
	r := l.stream(key, "")
	if len(r.New) != 1 || r.New[0].Value != "203.0.113.9" {
		t.Fatalf("stream while the webhook hangs: %+v", r.New)
	}
	l.push(agentAlert("203.0.113.10", "crowdsecurity/ssh-bf"))
	if r := l.stream(key, ""); len(r.New) != 1 || r.New[0].Value != "203.0.113.10" {
		t.Fatalf("second ban while the webhook hangs: %+v", r.New)
	}
	if st := l.Server.Notifications().Stats(); len(st) != 1 || st[0].Queued != 2 || st[0].Sent != 0 {
		t.Errorf("stats %+v, want 2 waiting", st)
	}
}

func TestUnknownNotificationStopsStart(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "profiles.toml")
	writeFile(t, prof, "[[profile]]\nname = \"p1\"\nfilters = [\"true\"]\nnotifications = [\"slack_default\"]\n")
	set, err := profiles.Load(prof)
	if err != nil {
		t.Fatal(err)
	}
	cfg := csconfig.Default()
	cfg.ConfigPaths.NotificationDir = filepath.Join(dir, "notifications")
	st, err := store.Open(context.Background(), testStoreConfig(t, filepath.Join(dir, "crowdsec.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = New(context.Background(), cfg, st, set)
	if err == nil || !strings.Contains(err.Error(), `profile "p1" names notification "slack_default"`) {
		t.Errorf("New: %v, want an error naming the profile and the notification", err)
	}
}

// waitBodies waits until h has n messages (or 10 s), and returns them.
func waitBodies(h *hook, n int) []string {
	deadline := time.Now().Add(10 * time.Second)
	for len(h.got()) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return h.got()
}

// A reload (LoadNotifications, then SetNotifications and SetProfiles)
// adds a notification written in upstream's YAML beside the TOML one and
// keeps the unchanged one running; a broken file or a profile naming an
// unknown notification is refused and leaves the running set alone.
func TestNotificationReload(t *testing.T) {
	h1, h2 := &hook{}, &hook{}
	s1, s2 := httptest.NewServer(h1), httptest.NewServer(h2)
	t.Cleanup(s1.Close)
	t.Cleanup(s2.Close)
	l := notifyLAPI(t, s1.URL, "")
	l.push(agentAlert("203.0.113.20", "crowdsecurity/ssh-bf"))
	if got := waitBodies(h1, 1); len(got) != 1 {
		t.Fatalf("before the reload: %q", got)
	}
	dir := l.Cfg.ConfigPaths.NotificationDir
	profDir := t.TempDir()
	reload := func(profilesTOML string) error {
		t.Helper()
		p := filepath.Join(profDir, "profiles.toml")
		writeFile(t, p, profilesTOML)
		set, err := profiles.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := LoadNotifications(l.Cfg, set)
		if err != nil {
			return err
		}
		if err := l.Server.SetNotifications(nc); err != nil {
			return err
		}
		l.Server.SetProfiles(set)
		return nil
	}
	both := `[[profile]]
name = "p"
filters = ["Alert.Remediation == true && Alert.GetScope() == 'Ip'"]
decisions = [{type = "ban", duration = "4h"}]
notifications = ["hook", "hook2"]
`
	writeFile(t, filepath.Join(dir, "second.yaml"), "type: http\nname: hook2\nformat: |\n  {{range .}}{{.Source.IP}}{{end}}\nurl: "+s2.URL+"\nmethod: PUT\n")
	if err := reload(both); err != nil {
		t.Fatalf("reload: %v", err)
	}
	l.push(agentAlert("203.0.113.21", "crowdsecurity/ssh-bf"))
	if got := waitBodies(h2, 1); len(got) != 1 || got[0] != "203.0.113.21\n" {
		t.Errorf("new notification after the reload: %q", got)
	}
	if got := waitBodies(h1, 2); len(got) != 2 || !strings.Contains(got[1], "203.0.113.21") {
		t.Errorf("kept notification after the reload: %q", got)
	}
	// Unchanged, hook kept its worker and its figures.
	for _, st := range l.Server.Notifications().Stats() {
		if st.Name == "hook" && st.Sent != 2 {
			t.Errorf("hook stats after the reload %+v, want 2 sent", st)
		}
	}

	// A broken file: refused, naming the file and line; nothing changes.
	writeFile(t, filepath.Join(dir, "third.yaml"), "type: http\nname: hook3\nformat: x\nurl: http://127.0.0.1:1/\nurl_typo: 1\n")
	err := reload(both)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "third.yaml")+":5: url_typo: unknown key") {
		t.Errorf("reload with a broken file: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "third.yaml")); err != nil {
		t.Fatal(err)
	}
	// A profile naming a notification nobody defines: refused.
	if err := reload(strings.Replace(both, `"hook2"]`, `"hook2", "teams"]`, 1)); err == nil || !strings.Contains(err.Error(), `notification "teams"`) {
		t.Errorf("reload naming an unknown notification: %v", err)
	}
	l.push(agentAlert("203.0.113.22", "crowdsecurity/ssh-bf"))
	if got := waitBodies(h2, 2); len(got) != 2 || got[1] != "203.0.113.22\n" {
		t.Errorf("after the refused reloads: %q", got)
	}

	// Removed again: hook2 stops, hook goes on.
	if err := os.Remove(filepath.Join(dir, "second.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := reload(strings.Replace(both, `, "hook2"`, "", 1)); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if cs := l.Server.Notifications().Configs(); len(cs) != 1 || cs[0].Name != "hook" {
		t.Errorf("after removing hook2: %d notifications", len(cs))
	}
	l.push(agentAlert("203.0.113.23", "crowdsecurity/ssh-bf"))
	if got := waitBodies(h1, 4); len(got) != 4 || !strings.Contains(got[3], "203.0.113.23") {
		t.Errorf("after removing hook2: %q", got)
	}
	if got := h2.got(); len(got) != 2 {
		t.Errorf("hook2 still notified: %q", got)
	}
}
