package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/capitest"
	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/models"
)

// capiDaemon is a real crowdsec running only its LAPI on loopback, with
// [api.server.online_client] and no credentials yet.
type capiDaemon struct {
	t                   *testing.T
	dir, cfg, lapi, out string
	cmd                 *exec.Cmd
	done                chan struct{}
}

func startCAPIDaemon(t *testing.T, dir string, args ...string) *capiDaemon {
	t.Helper()
	d := &capiDaemon{t: t, dir: dir, cfg: filepath.Join(dir, "config.toml")}
	if _, err := os.Stat(d.cfg); err != nil {
		lapiPort, promPort := freePort(t), freePort(t)
		conf := fmt.Sprintf(`[common]
log_level = "info"
[config_paths]
config_dir = %[1]q
data_dir = %[1]q
[db_config]
db_path = %[2]q
[api.client]
credentials_path = %[3]q
[api.server]
listen_uri = "127.0.0.1:%[4]d"
profiles_path = %[5]q
allowlist_host_addresses = false
[api.server.online_client]
credentials_path = %[6]q
[prometheus]
listen_addr = "127.0.0.1"
listen_port = %[7]d
`, dir, filepath.Join(dir, "crowdsec.db"), filepath.Join(dir, "creds.toml"), lapiPort, filepath.Join(dir, "profiles.toml"),
			filepath.Join(dir, "online_api_credentials.yaml"), promPort)
		must(t, os.WriteFile(d.cfg, []byte(conf), 0o600))
		prof, err := os.ReadFile("../config/profiles.toml")
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, "profiles.toml"), prof, 0o600))
	}
	conf, err := os.ReadFile(d.cfg)
	must(t, err)
	for _, l := range strings.Split(string(conf), "\n") {
		if strings.HasPrefix(l, "listen_uri = ") {
			d.lapi = "http://" + strings.Trim(strings.TrimPrefix(l, "listen_uri = "), `"`) + "/"
		}
	}
	d.out = filepath.Join(dir, fmt.Sprintf("crowdsec-%d.out", time.Now().UnixNano()))
	log, err := os.Create(d.out)
	must(t, err)
	d.cmd = exec.Command(filepath.Join(binDir, "crowdsec"), append([]string{"-c", d.cfg, "-no-cs"}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	must(t, d.cmd.Start())
	d.done = make(chan struct{})
	go func() {
		_ = d.cmd.Wait()
		log.Close()
		close(d.done)
	}()
	t.Cleanup(d.stop)
	if !nstest.Eventually(20*time.Second, func() bool { return strings.Contains(d.log(), "local API listening") }) {
		t.Fatalf("crowdsec did not start:\n%s", d.log())
	}
	return d
}

func (d *capiDaemon) log() string {
	b, _ := os.ReadFile(d.out)
	return string(b)
}

func (d *capiDaemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.done
	if d.t.Failed() {
		d.t.Logf("crowdsec log:\n%s", d.log())
	}
}

func (d *capiDaemon) cscli(args ...string) string {
	d.t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "cscli"), append([]string{"-c", d.cfg, "--error"}, args...)...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("cscli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The daemon starts without CAPI credentials; `cscli capi register` and a
// reload turn the Central API on: the agent's alert reaches CAPI as a
// signal, the community list reaches a bouncer; -no-capi turns it off.
func TestCentralAPI(t *testing.T) {
	cs := capitest.Start(t)
	cs.SetStartup(capitest.Community("crowdsecurity/ssh-bf", 5, "24h"))
	dir := t.TempDir()
	d := startCAPIDaemon(t, dir)
	if !strings.Contains(d.log(), "push and pull to Central API disabled") {
		t.Errorf("no word that CAPI is off without credentials:\n%s", d.log())
	}
	d.cscli("capi", "register", "--url", cs.URL())
	must(t, d.cmd.Process.Signal(syscall.SIGHUP))
	if !nstest.Eventually(20*time.Second, func() bool { return len(cs.Metrics()) >= 1 }) {
		t.Fatal("no metrics reached CAPI after the reload")
	}
	if out := d.cscli("capi", "status"); !strings.Contains(out, "You can successfully interact with Central API (CAPI)") {
		t.Errorf("capi status:\n%s", out)
	}
	d.cscli("machines", "add", "agent1", "-p", "agent-password-0123456789")
	key := strings.TrimSpace(d.cscli("bouncers", "add", "fw", "-o", "raw"))
	agent, err := apiclient.New(apiclient.Config{URL: d.lapi, MachineID: "agent1", Password: "agent-password-0123456789",
		UserAgent: "crowdsec/v1.7.8-e2e-linux", Scenarios: []string{"crowdsecurity/ssh-bf"}})
	must(t, err)
	now := time.Now().UTC().Format(time.RFC3339)
	_, err = agent.PushAlerts(context.Background(), []*models.Alert{{Scenario: "crowdsecurity/ssh-bf", ScenarioHash: "h", ScenarioVersion: "0.1",
		Message: "e2e", Remediation: true, EventsCount: 1, Capacity: 1, Leakspeed: "10s", StartAt: now, StopAt: now, Labels: []string{},
		Source: &models.Source{Scope: "Ip", Value: "192.0.2.77", IP: "192.0.2.77"},
		Events: []*models.Event{{Timestamp: now, Meta: []models.Meta{{Key: "source_ip", Value: "192.0.2.77"}}}}}})
	must(t, err)
	if !nstest.Eventually(40*time.Second, func() bool { return len(cs.Signals()) == 1 }) {
		t.Fatalf("the alert did not reach CAPI: %d signals", len(cs.Signals()))
	}
	if s := cs.Signals()[0]; s.Source.Value != "192.0.2.77" || s.MachineID != "agent1" || len(s.Decisions) != 1 {
		t.Errorf("signal %+v", s)
	}
	bouncer, err := apiclient.New(apiclient.Config{URL: d.lapi, APIKey: key})
	must(t, err)
	if !nstest.Eventually(20*time.Second, func() bool {
		resp, err := bouncer.Stream(context.Background(), true, nil)
		return err == nil && len(resp.New) == 6
	}) {
		t.Fatal("the community list did not reach the bouncer")
	}
	d.stop()
	// The service is set up before the LAPI listens: with -no-capi the
	// log of a started daemon says nothing of it.
	d = startCAPIDaemon(t, dir, "-no-capi")
	if strings.Contains(d.log(), "Central API client configured") {
		t.Errorf("-no-capi still set up the Central API client:\n%s", d.log())
	}
}

// A registered daemon enrolled with `cscli console enroll`: once the
// console accepts it (with a plan that has console management) a reload
// logs in again, capi status shows the plan, and the console's orders
// over PAPI reach a bouncer.
func TestConsoleEnrollment(t *testing.T) {
	cs := capitest.Start(t)
	dir := t.TempDir()
	d := startCAPIDaemon(t, dir)
	d.cscli("capi", "register", "--url", cs.URL())
	credPath := filepath.Join(dir, "online_api_credentials.yaml")
	creds, err := csconfig.LoadCAPICredentials(credPath)
	must(t, err)
	f, err := os.OpenFile(credPath, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString("papi_url: " + cs.PAPIURL() + "\n")
	must(t, err)
	must(t, f.Close())
	must(t, d.cmd.Process.Signal(syscall.SIGHUP))
	if !nstest.Eventually(20*time.Second, func() bool { return len(cs.Metrics()) >= 1 }) {
		t.Fatal("no metrics reached CAPI after the reload")
	}
	key := strings.TrimSpace(d.cscli("bouncers", "add", "fw", "-o", "raw"))

	d.cscli("console", "enroll", "E2E-KEY", "--name", "e2e", "--tags", "lab")
	if e := cs.Enrolls(); len(e) != 1 || e[0]["attachment_key"] != "E2E-KEY" || e[0]["name"] != "e2e" {
		t.Fatalf("enroll requests %v", e)
	}
	if out := d.cscli("console", "status", "-o", "raw"); !strings.Contains(out, "manual,true\n") || !strings.Contains(out, "context,true\n") {
		t.Errorf("console status after enroll:\n%s", out)
	}
	if !cs.Accept(creds.Login, "org-e2e", "ENTERPRISE") {
		t.Fatal("no enrollment pending")
	}
	must(t, d.cmd.Process.Signal(syscall.SIGHUP))
	if !nstest.Eventually(20*time.Second, func() bool { return len(cs.Polls()) >= 1 }) {
		t.Fatal("the daemon never polled PAPI after the enrollment and a reload")
	}
	cs.Order("alert", "add", "e2e console ban", models.Alert{Decisions: []*models.Decision{
		{Type: "ban", Scope: "Ip", Value: "192.0.2.88", Duration: "4h", Origin: "console"}}})
	bouncer, err := apiclient.New(apiclient.Config{URL: d.lapi, APIKey: key})
	must(t, err)
	if !nstest.Eventually(20*time.Second, func() bool {
		resp, err := bouncer.Stream(context.Background(), true, nil)
		return err == nil && len(resp.New) == 1 && resp.New[0].Value == "192.0.2.88" && resp.New[0].Origin == "console"
	}) {
		t.Fatal("the console's decision did not reach the bouncer")
	}
	if out := d.cscli("capi", "status"); !strings.Contains(out, "Your instance is enrolled in the console") || !strings.Contains(out, "Subscription type: ENTERPRISE") {
		t.Errorf("capi status:\n%s", out)
	}
}
