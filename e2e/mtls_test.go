package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/internal/testpki"
)

// TestMTLSOnly: the LAPI takes only verified client certificates (no
// password, no API key exists anywhere), and the agent pushes its alert,
// cscli reads it and the bouncer streams and enforces the decision, each
// with its own certificate; a revoked certificate is refused.
func TestMTLSOnly(t *testing.T) {
	ns := nstest.NewPublicPair(t, 46)
	nstest.Require(t, "nft", "curl")
	s := &story{t: t, ns: ns, dir: t.TempDir(), port: 8000}
	pki := testpki.New(t)
	day := time.Now().Add(24 * time.Hour)
	server := pki.Issue("lapi", "127.0.0.1", nil, true, day)
	agent := pki.Issue("agent", "agent1", []string{"agent"}, false, day)
	bouncerCert := pki.Issue("bouncer", "fw", []string{"bouncer"}, false, day)
	revokedAgent := pki.Issue("revoked-agent", "stolen-agent", []string{"agent"}, false, day)
	revokedBouncer := pki.Issue("revoked-bouncer", "stolen-fw", []string{"bouncer"}, false, day)
	crl := pki.CRL(revokedAgent.Cert, revokedBouncer.Cert)

	rules, err := filepath.Abs("../rules")
	must(t, err)
	for _, d := range []string{"acquis.d", "data"} {
		must(t, os.MkdirAll(filepath.Join(s.dir, d), 0o755))
	}
	s.cfg = filepath.Join(s.dir, "config.toml")
	conf := fmt.Sprintf(`[common]
log_level = "info"
[config_paths]
config_dir = %q
data_dir = %q
hub_dir = %q
[crowdsec_service]
acquisition_dir = %q
[db_config]
db_path = %q
[api.client]
credentials_path = %q
[api.server]
listen_uri = "127.0.0.1:8080"
profiles_path = %q
[api.server.tls]
cert_file = %q
key_file = %q
ca_cert_path = %q
client_verification = "RequireAndVerifyClientCert"
agents_allowed_ou = ["agent"]
bouncers_allowed_ou = ["bouncer"]
crl_path = %q
`, s.dir, filepath.Join(s.dir, "data"), rules, filepath.Join(s.dir, "acquis.d"), filepath.Join(s.dir, "crowdsec.db"),
		filepath.Join(s.dir, "creds.toml"), filepath.Join(s.dir, "profiles.toml"),
		server.CertFile, server.KeyFile, pki.File, crl)
	must(t, os.WriteFile(s.cfg, []byte(conf), 0o600))
	prof, err := os.ReadFile("../config/profiles.toml")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(s.dir, "profiles.toml"), prof, 0o600))
	acq := fmt.Sprintf("[[source]]\nsource = \"file\"\nfilenames = [%q]\nlabels = { type = \"syslog\" }\nidle_warning = \"0\"\n", s.path("auth"))
	must(t, os.WriteFile(filepath.Join(s.dir, "acquis.d", "auth.toml"), []byte(acq), 0o600))
	must(t, os.WriteFile(s.path("auth"), nil, 0o600))

	// The agent's and cscli's credentials: a certificate, no login.
	writeCreds := func(path string, leaf testpki.Leaf) {
		must(t, os.WriteFile(path, fmt.Appendf(nil, "url = \"https://127.0.0.1:8080/\"\nca_cert_path = %q\ncert_path = %q\nkey_path = %q\n",
			pki.File, leaf.CertFile, leaf.KeyFile), 0o600))
	}
	writeCreds(filepath.Join(s.dir, "creds.toml"), agent)

	s.crowdsec = s.start("crowdsec", filepath.Join(binDir, "crowdsec"), "-c", s.cfg)
	t.Cleanup(func() { s.stop(s.crowdsec) })
	if !nstest.Eventually(20*time.Second, func() bool {
		return ns.Dial(ns.Defender, "127.0.0.1:8080", 200*time.Millisecond) == nil && strings.Contains(s.readLog("crowdsec"), "rules loaded")
	}) {
		t.Fatalf("crowdsec did not start:\n%s", s.readLog("crowdsec"))
	}

	// The bouncer: a certificate, no api_key.
	bconf := fmt.Sprintf("mode = \"nftables\"\napi_url = \"https://127.0.0.1:8080/\"\nca_cert_path = %q\ncert_path = %q\nkey_path = %q\n"+
		"update_frequency = \"1s\"\nlog_level = \"debug\"\n", pki.File, bouncerCert.CertFile, bouncerCert.KeyFile)
	bconfPath := filepath.Join(s.dir, "bouncer.toml")
	must(t, os.WriteFile(bconfPath, []byte(bconf), 0o600))
	s.bouncer = s.start("bouncer", filepath.Join(binDir, "crowdsec-firewall-bouncer"), "-c", bconfPath)
	t.Cleanup(func() {
		s.stop(s.bouncer)
		_ = ns.Command(context.Background(), ns.Defender, filepath.Join(binDir, "crowdsec-firewall-bouncer"), "-c", bconfPath, "-flush").Run()
		if t.Failed() {
			t.Logf("crowdsec log:\n%s\nbouncer log:\n%s", s.readLog("crowdsec"), s.readLog("bouncer"))
		}
	})
	if !nstest.Eventually(15*time.Second, func() bool { return strings.Contains(s.readLog("bouncer"), "first sync in the kernel") }) {
		t.Fatalf("bouncer never synced:\n%s", s.readLog("bouncer"))
	}
	s.serveHTTP()

	// The agent reads a brute force and pushes its alert; cscli lists it.
	att := ns.AttIP4.String()
	s.sshFailures(att, 10)
	if scenario := s.waitBan(att, 15*time.Second); !strings.HasPrefix(scenario, "rampart/ssh") {
		t.Errorf("ban from scenario %q, want one of Rampart's ssh scenarios", scenario)
	}
	if !s.hasAlert(att, "rampart/ssh") {
		t.Errorf("cscli alerts list shows no ssh alert for %s", att)
	}
	// The bouncer streamed it into the kernel.
	if !nstest.Eventually(10*time.Second, s.curlTimesOut) {
		t.Fatalf("attacker's curl still connects after the ban\nnft:\n%s", s.ruleset())
	}

	// A revoked agent certificate: cscli cannot log in.
	revokedCfg := filepath.Join(s.dir, "revoked.toml")
	must(t, os.WriteFile(revokedCfg, []byte(strings.Replace(conf, filepath.Join(s.dir, "creds.toml"), filepath.Join(s.dir, "revoked-creds.toml"), 1)), 0o600))
	writeCreds(filepath.Join(s.dir, "revoked-creds.toml"), revokedAgent)
	out, err := ns.Command(context.Background(), ns.Defender, filepath.Join(binDir, "cscli"), "-c", revokedCfg, "alerts", "list").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), "401") || !strings.Contains(string(out), "revoked") {
		t.Errorf("cscli with a revoked certificate: %v\n%s", err, out)
	}
	// A revoked bouncer certificate: the stream answers 403, where the
	// same request with a valid certificate gets its decisions.
	stream := func(cert tls.Certificate) int {
		tr := &http.Transport{TLSClientConfig: pki.ClientConfig(cert), DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return ns.DialConn(ns.Defender, addr, 5*time.Second)
		}}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequest("GET", "https://127.0.0.1:8080/v1/decisions/stream?startup=true", nil)
		must(t, err)
		req.Header.Set("User-Agent", "crowdsec-firewall-bouncer/v0.0.31")
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		must(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := stream(revokedBouncer.Pair); code != http.StatusForbidden {
		t.Errorf("revoked bouncer certificate: stream answered %d, want 403", code)
	}
	if code := stream(bouncerCert.Pair); code != http.StatusOK {
		t.Errorf("valid bouncer certificate: stream answered %d, want 200", code)
	}
	// Only certificate identities exist, none for the revoked ones: the
	// agent's machine (cscli shares its credentials) and the bouncer, whose
	// usage report went through with its certificate too.
	var machines []struct {
		MachineID string `json:"machineId"`
		AuthType  string `json:"auth_type"`
	}
	must(t, json.Unmarshal([]byte(s.cscli("machines", "list", "-o", "json")), &machines))
	if len(machines) != 1 || machines[0].MachineID != "agent1@127.0.0.1" || machines[0].AuthType != "tls" {
		t.Errorf("machines = %+v, want only agent1@127.0.0.1 with tls", machines)
	}
	var bouncer struct {
		Name         string `json:"name"`
		AuthType     string `json:"auth_type"`
		UsageMetrics any    `json:"usage_metrics"`
	}
	if !nstest.Eventually(10*time.Second, func() bool {
		bouncer.UsageMetrics = nil
		must(t, json.Unmarshal([]byte(s.cscli("bouncers", "inspect", "fw@127.0.0.1", "-o", "json")), &bouncer))
		return bouncer.UsageMetrics != nil
	}) {
		t.Errorf("the certificate bouncer's usage metrics never arrived: %+v\n%s", bouncer, s.readLog("bouncer"))
	}
	if bouncer.AuthType != "tls" {
		t.Errorf("bouncer auth_type = %q, want tls", bouncer.AuthType)
	}
	var bouncers []json.RawMessage
	must(t, json.Unmarshal([]byte(s.cscli("bouncers", "list", "-o", "json")), &bouncers))
	if len(bouncers) != 1 {
		t.Errorf("%d bouncers, want the certificate's only:\n%s", len(bouncers), s.cscli("bouncers", "list", "-o", "json"))
	}
}
