package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/internal/testpki"
	"github.com/rampart-ips/rampart/models"
)

// host is one machine of a multi-host test: a network namespace with its
// own configuration directory.
type host struct {
	t   *testing.T
	ns  *nstest.Pair
	net string // the namespace
	dir string
	cfg string
}

func (h *host) start(name string, args ...string) *exec.Cmd {
	h.t.Helper()
	cmd := h.ns.Command(context.Background(), h.net, args...)
	f, err := os.Create(filepath.Join(h.dir, name+".out"))
	must(h.t, err)
	h.t.Cleanup(func() { f.Close() })
	cmd.Stdout, cmd.Stderr = f, f
	must(h.t, cmd.Start())
	h.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	return cmd
}

func (h *host) readLog(name string) string {
	b, _ := os.ReadFile(filepath.Join(h.dir, name+".out"))
	return string(b)
}

// cscli runs cscli on this host with its configuration.
func (h *host) cscli(args ...string) (string, error) {
	out, err := h.ns.Command(context.Background(), h.net, append([]string{filepath.Join(binDir, "cscli"), "-c", h.cfg}, args...)...).CombinedOutput()
	return string(out), err
}

func (h *host) mustCscli(args ...string) string {
	h.t.Helper()
	out, err := h.cscli(args...)
	if err != nil {
		h.t.Fatalf("cscli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestRemoteAgent: two hosts. The central one runs the local API only
// ([crowdsec_service] enable = false) over TLS on its network address; the
// other runs the agent only ([api.server] enable = false, no profiles, no
// database), registered from there with `cscli lapi register --url
// --ca-cert`. Its alert waits while the machine is pending, the agent says
// what to run and keeps retrying; once `cscli machines validate` runs on
// the central host the alert arrives and its decision is served to a
// bouncer key from the remote host, without restarting anything.
func TestRemoteAgent(t *testing.T) {
	ns := nstest.NewPair(t, 61)
	dir := t.TempDir()
	central := &host{t: t, ns: ns, net: ns.Defender, dir: filepath.Join(dir, "central")}
	remote := &host{t: t, ns: ns, net: ns.Attacker, dir: filepath.Join(dir, "remote")}
	lapiAddr := net.JoinHostPort(ns.DefIP4.String(), "8080")
	pki := testpki.New(t)
	srv := pki.IssueServerFor("lapi", time.Now().Add(24*time.Hour), ns.DefIP4.String())
	rules, err := filepath.Abs("../rules")
	must(t, err)

	// The central host: LAPI only, TLS, listening on its address.
	must(t, os.MkdirAll(filepath.Join(central.dir, "data"), 0o755))
	central.cfg = filepath.Join(central.dir, "config.toml")
	must(t, os.WriteFile(central.cfg, fmt.Appendf(nil, `[config_paths]
config_dir = %q
data_dir = %q
hub_dir = %q
[crowdsec_service]
enable = false
[db_config]
db_path = %q
[api.server]
listen_uri = %q
profiles_path = %q
  [api.server.tls]
  cert_file = %q
  key_file = %q
[prometheus]
enabled = false
`, central.dir, filepath.Join(central.dir, "data"), rules, filepath.Join(central.dir, "data", "crowdsec.db"), lapiAddr,
		filepath.Join(central.dir, "profiles.toml"), srv.CertFile, srv.KeyFile), 0o600))
	prof, err := os.ReadFile("../config/profiles.toml")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(central.dir, "profiles.toml"), prof, 0o600))
	// crowdsec.service's ExecStartPre, then its ExecStart: the same
	// command line on every host, the configuration says what runs.
	checkConfig := func(h *host, want string) {
		t.Helper()
		out, err := h.ns.Command(context.Background(), h.net, filepath.Join(binDir, "crowdsec"), "-c", h.cfg, "-t").CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Fatalf("crowdsec -t on %s: %v\n%s", filepath.Base(h.dir), err, out)
		}
	}
	checkConfig(central, "(local API: ")
	central.start("crowdsec", filepath.Join(binDir, "crowdsec"), "-c", central.cfg)
	if !nstest.Eventually(20*time.Second, func() bool { return ns.Dial(ns.Defender, lapiAddr, 200*time.Millisecond) == nil }) {
		t.Fatalf("central LAPI did not start:\n%s", central.readLog("crowdsec"))
	}

	// The remote host: agent only, no profiles file, no database.
	must(t, os.MkdirAll(filepath.Join(remote.dir, "acquis.d"), 0o755))
	remote.cfg = filepath.Join(remote.dir, "config.toml")
	authLog := filepath.Join(remote.dir, "auth.log")
	must(t, os.WriteFile(remote.cfg, fmt.Appendf(nil, `[config_paths]
config_dir = %q
data_dir = %q
hub_dir = %q
[crowdsec_service]
acquisition_dir = %q
[db_config]
db_path = %q
[api.server]
enable = false
[prometheus]
enabled = false
`, remote.dir, filepath.Join(remote.dir, "data"), rules, filepath.Join(remote.dir, "acquis.d"), filepath.Join(remote.dir, "data", "crowdsec.db")), 0o600))
	must(t, os.WriteFile(filepath.Join(remote.dir, "acquis.d", "auth.toml"),
		fmt.Appendf(nil, "[[source]]\nsource = \"file\"\nfilenames = [%q]\nlabels = { type = \"syslog\" }\nidle_warning = \"0\"\n", authLog), 0o600))
	must(t, os.WriteFile(authLog, nil, 0o600))

	// Its certificate is verified: without the CA the registration fails
	// and says how to fix it.
	out, err := remote.cscli("lapi", "register", "--machine", "web1", "-u", "https://"+lapiAddr)
	if err == nil || !strings.Contains(out, "--ca-cert") {
		t.Fatalf("register without the CA: %v\n%s", err, out)
	}
	out = remote.mustCscli("lapi", "register", "--machine", "web1", "-u", lapiAddr, "--ca-cert", pki.File)
	if !strings.Contains(out, "cscli machines validate web1") {
		t.Errorf("register says nothing of the validation:\n%s", out)
	}
	// The database commands belong to the central host.
	if out, err := remote.cscli("bouncers", "add", "fw"); err == nil || !strings.Contains(out, "https://"+lapiAddr+"/") {
		t.Errorf("bouncers add on the agent-only host: %v\n%s", err, out)
	}

	checkConfig(remote, "(agent: ")
	agent := remote.start("crowdsec", filepath.Join(binDir, "crowdsec"), "-c", remote.cfg)
	if !nstest.Eventually(20*time.Second, func() bool { return strings.Contains(remote.readLog("crowdsec"), "tailing file") }) {
		t.Fatalf("remote agent did not start:\n%s", remote.readLog("crowdsec"))
	}
	if ns.Dial(ns.Attacker, "127.0.0.1:8080", 200*time.Millisecond) == nil {
		t.Error("the agent-only host listens on the LAPI port")
	}

	// A brute force on the remote host, while its machine is pending.
	const attacker = "203.0.113.77"
	f, err := os.OpenFile(authLog, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	for i := range 10 {
		_, err := fmt.Fprintf(f, "%s web1 sshd[%d]: Failed password for root from %s port %d ssh2\n", time.Now().Format(time.Stamp), 4000+i, attacker, 50000+i)
		must(t, err)
	}
	must(t, f.Close())
	hint := "run 'cscli machines validate web1' on the LAPI host"
	if !nstest.Eventually(30*time.Second, func() bool { return strings.Contains(remote.readLog("crowdsec"), hint) }) {
		t.Fatalf("the pending agent's log lacks %q:\n%s", hint, remote.readLog("crowdsec"))
	}

	if !nstest.Eventually(30*time.Second, func() bool { return strings.Contains(remote.readLog("crowdsec"), "LAPI refuses this machine") }) {
		t.Errorf("the pending agent's delivery does not say the LAPI refuses it:\n%s", remote.readLog("crowdsec"))
	}

	// A bouncer key made on the central host, used from the remote one.
	key := strings.TrimSpace(central.mustCscli("--error", "bouncers", "add", "fw-web1", "-o", "raw"))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: pki.ClientConfig(),
		DialContext: func(_ context.Context, _, addr string) (net.Conn, error) {
			return ns.DialConn(ns.Attacker, addr, 5*time.Second)
		},
	}}
	defer client.CloseIdleConnections()
	bans := func() []*models.Decision {
		req, err := http.NewRequest("GET", "https://"+lapiAddr+"/v1/decisions?ip="+attacker, nil)
		must(t, err)
		req.Header.Set("X-Api-Key", key)
		resp, err := client.Do(req)
		must(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		must(t, err)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/decisions: %d %s", resp.StatusCode, body)
		}
		var ds []*models.Decision
		must(t, json.Unmarshal(body, &ds))
		return ds
	}
	if ds := bans(); len(ds) != 0 {
		t.Fatalf("a decision before the machine was validated: %+v", ds)
	}

	central.mustCscli("machines", "validate", "web1")
	if !nstest.Eventually(30*time.Second, func() bool { return len(bans()) > 0 }) {
		t.Fatalf("no decision at the central LAPI after validation\nagent:\n%s\nLAPI:\n%s", remote.readLog("crowdsec"), central.readLog("crowdsec"))
	}
	if ds := bans(); !strings.HasPrefix(ds[0].Scenario, "rampart/ssh") || ds[0].Type != "ban" {
		t.Errorf("decision %s %s, want a ban from an ssh scenario", ds[0].Type, ds[0].Scenario)
	}
	// cscli on the agent-only host works through the central LAPI.
	if out := remote.mustCscli("lapi", "status"); !strings.Contains(out, "You can successfully interact") {
		t.Errorf("cscli lapi status on the remote host:\n%s", out)
	}
	if out := remote.mustCscli("decisions", "list", "-o", "json"); !strings.Contains(out, attacker) {
		t.Errorf("cscli decisions list on the remote host lacks %s:\n%s", attacker, out)
	}
	// Delivered by the agent started before the validation.
	if err := agent.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the agent is no longer running: %v", err)
	}
	if strings.Contains(central.readLog("crowdsec"), "rules loaded") {
		t.Error("the LAPI-only host loaded an agent's rules")
	}
	if _, err := os.Stat(filepath.Join(remote.dir, "data", "crowdsec.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the agent-only host has a database: %v", err)
	}
}
