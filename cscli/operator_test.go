package cscli

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/testdb/storecfg"
	"github.com/rampart-ips/rampart/internal/version"
	"github.com/rampart-ips/rampart/lapi/store"
)

// operatorSecrets are the secrets of operatorEnv's files: none may ever
// be printed by config show nor put in a support dump.
var operatorSecrets = map[string]string{
	"db password":        "dbPassw0rd-4d1f9a",
	"autoreg token":      "autoRegToken-77c0e3b2a9",
	"machine password":   "machinePassw0rd-93be0a",
	"bouncer key":        "bouncerKey-5f2e81c9d4a7",
	"TLS key file":       "TLSKEYMATERIAL-0b7d",
	"acquisition secret": "kafkaPassw0rd-e11a",
	"smtp password":      "smtpPassw0rd-2c7e",
	"slack webhook":      "SlackHookT0ken-91ab",
	"webhook header":     "hookBearer-5d0f3a",
	"splunk token":       "splunkHecT0ken-3a9d",
	"sentinel key":       "c2VudGluZWxLZXktOGYzMQ==",
}

// operatorEnv is a full configuration under a temporary folder: config
// with secrets, credentials, a bouncer file, acquisition, a log folder and
// a database with a machine and a bouncer.
type operatorEnv struct {
	*opsEnv
	logDir string
}

func newOperatorEnv(t *testing.T, metricsAddr string) *operatorEnv {
	t.Helper()
	e := &operatorEnv{opsEnv: newOpsEnv(t, "127.0.0.1:1")}
	dir := e.dir
	e.logDir = filepath.Join(dir, "log")
	host, port := "127.0.0.1", "1"
	if metricsAddr != "" {
		var err error
		if host, port, err = net.SplitHostPort(metricsAddr); err != nil {
			t.Fatal(err)
		}
	}
	rules, err := filepath.Abs("../rules")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("tls/key.pem", "-----BEGIN PRIVATE KEY-----\n"+operatorSecrets["TLS key file"]+"\n-----END PRIVATE KEY-----\n")
	write("config.toml", fmt.Sprintf(`[common]
log_dir = %q
[config_paths]
config_dir = %q
data_dir = %q
hub_dir = %q
[db_config]
db_path = %q
password = %q
[api.client]
credentials_path = %q
[api.server]
listen_uri = "127.0.0.1:1"
  [api.server.tls]
  cert_file = %q
  key_file = %q
  [api.server.auto_registration]
  enabled = true
  token = %q
[prometheus]
listen_addr = %q
listen_port = %s
`, e.logDir, dir, filepath.Join(dir, "data"), rules, e.dbPath, operatorSecrets["db password"], e.credPath,
		filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem"), operatorSecrets["autoreg token"], host, port))
	write("local_api_credentials.toml", fmt.Sprintf("url = \"http://127.0.0.1:1/\"\nlogin = \"m1\"\npassword = %q\n", operatorSecrets["machine password"]))
	write("profiles.toml", "[[profile]]\nname = \"default_ip_remediation\"\nfilters = [\"Alert.Remediation == true && Alert.GetScope() == 'Ip'\"]\ndecisions = [{ type = \"ban\", duration = \"4h\" }]\non_success = \"break\"\n")
	write("acquis.d/ssh.toml", fmt.Sprintf("[[source]]\nsource = \"file\"\nfilenames = [\"/var/log/auth.log\"]\nlabels = { type = \"syslog\" }\n\n[[source]]\nsource = \"kafka\"\nsasl_password = %q\n", operatorSecrets["acquisition secret"]))
	write("notifications/mail.toml", fmt.Sprintf("type = \"email\"\nname = \"mail\"\nformat = \"x\"\nsmtp_host = \"mail.example.test\"\nreceiver_emails = [\"a@example.test\"]\nsmtp_username = \"u\"\nsmtp_password = %q\n", operatorSecrets["smtp password"]))
	write("notifications/hooks.toml", fmt.Sprintf("[[notification]]\ntype = \"slack\"\nname = \"slack\"\nformat = \"x\"\nwebhook = \"https://hooks.slack.com/services/T0/B0/%s\"\n\n[[notification]]\ntype = \"http\"\nname = \"hook\"\nformat = \"x\"\nurl = \"https://hook.example.test/\"\nheaders = { Authorization = \"Bearer %s\" }\n",
		operatorSecrets["slack webhook"], operatorSecrets["webhook header"]))
	write("notifications/siem.yaml", fmt.Sprintf("type: splunk\nname: splunk\nformat: x\nurl: https://splunk.example.test/\ntoken: %s\n---\n# an empty document\n---\ntype: sentinel\nname: sentinel\nformat: x\ncustomer_id: c\nshared_key: %s\nlog_type: crowdsec\n",
		operatorSecrets["splunk token"], operatorSecrets["sentinel key"]))
	write("bouncers/crowdsec-firewall-bouncer.toml", fmt.Sprintf("mode = \"nftables\"\napi_url = \"http://127.0.0.1:1/\"\napi_key = %q\n", operatorSecrets["bouncer key"]))
	// a log line that leaked a secret: the dump must scrub it anyway
	write("log/crowdsec.log", "time=x level=info msg=\"started\"\ntime=x level=debug msg=\"oops\" key="+operatorSecrets["bouncer key"]+"\n")
	write("log/other.log", "not ours\n")
	e.mustRun("machines", "add", "m1", "-p", operatorSecrets["machine password"], "-f", filepath.Join(dir, "unused-creds.toml"))
	e.mustRun("bouncers", "add", "fw", "-k", operatorSecrets["bouncer key"])
	return e
}

func TestVersionCommand(t *testing.T) {
	e := newOperatorEnv(t, "")
	out, _ := e.mustRun("version")
	for _, want := range []string{"version: " + version.Version, "GoVersion: " + runtime.Version(), "Platform: linux/", "Constraint_parser:",
		"Config: " + e.cfgPath, "DBPath: " + e.dbPath, "SimulationPath: " + filepath.Join(e.dir, "simulation.toml")} {
		if !strings.Contains(out, want) {
			t.Errorf("cscli version lacks %q:\n%s", want, out)
		}
	}
	out, _ = e.mustRun("version", "-o", "json")
	var v version.Info
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version != version.Version || v.Constraint["Constraint_api"] != "v1" {
		t.Errorf("cscli version -o json: %v\n%s", err, out)
	}
	// without a readable configuration it still answers
	var errb strings.Builder
	root := newRootCommandWith(&errb, &errb, strings.NewReader(""))
	root.SetArgs([]string{"-c", filepath.Join(e.dir, "missing.toml"), "version"})
	if err := root.Execute(); err != nil || !strings.Contains(errb.String(), "unreadable") {
		t.Errorf("version without a config: %v\n%s", err, errb.String())
	}
}

func TestConfigShow(t *testing.T) {
	e := newOperatorEnv(t, "")
	full, _ := e.mustRun("config", "show")
	jsonOut, _ := e.mustRun("config", "show", "-o", "json")
	for name, s := range operatorSecrets {
		if strings.Contains(full, s) || strings.Contains(jsonOut, s) {
			t.Errorf("config show prints the %s", name)
		}
	}
	// defaults merged in: values absent from the file
	for _, want := range []string{"max_connections = 1024", "long_poll_max = \"1m0s\"", "enable = true", "token = \"********\"", "password = \"********\""} {
		if !strings.Contains(full, want) {
			t.Errorf("config show lacks %q:\n%s", want, full)
		}
	}
	var tree map[string]any
	if err := json.Unmarshal([]byte(jsonOut), &tree); err != nil {
		t.Fatalf("config show -o json: %v\n%s", err, jsonOut)
	}
	for _, c := range []struct{ key, want string }{
		{"Config.API.Server.ListenURI", "127.0.0.1:1"},
		{"api.server.listen_uri", "127.0.0.1:1"},
		{"Config.DbConfig.DbPath", e.dbPath},
		{"db_config.db_path", e.dbPath},
		{"Config.Crowdsec.AcquisitionDirPath", filepath.Join(e.dir, "acquis.d")},
		{"Config.ConfigPaths.SimulationFilePath", filepath.Join(e.dir, "simulation.toml")},
		{"api.server.max_connections", "1024"},
		{"Config.API.Server.TLS.KeyFilePath", filepath.Join(e.dir, "tls", "key.pem")},
		{"db_config.password", redacted},
		{"prometheus.enabled", "true"},
	} {
		out, _ := e.mustRun("config", "show", "--key", c.key)
		if strings.TrimSpace(out) != c.want {
			t.Errorf("--key %s = %q, want %q", c.key, strings.TrimSpace(out), c.want)
		}
	}
	out, _ := e.mustRun("config", "show", "--key", "api.server.listen_uri", "-o", "json")
	if strings.TrimSpace(out) != `"127.0.0.1:1"` {
		t.Errorf("--key -o json = %s", out)
	}
	out, _ = e.mustRun("config", "show", "--key", "db_config.flush")
	if !strings.Contains(out, "max_items = 5000") {
		t.Errorf("--key on a table:\n%s", out)
	}
	if _, _, err := e.run("", "config", "show", "--key", "api.server.nope"); err == nil || !strings.Contains(err.Error(), "listen_uri") {
		t.Errorf("unknown key: %v; want an error listing the keys", err)
	}
	if _, _, err := e.run("", "config", "show", "--key", "api.server.listen_uri.x"); err == nil {
		t.Error("a key below a value: no error")
	}
}

func TestSimulationCommands(t *testing.T) {
	e := newOperatorEnv(t, "")
	simPath := filepath.Join(e.dir, "simulation.toml")
	load := func() *csconfig.Simulation {
		t.Helper()
		s, err := csconfig.LoadSimulation(simPath)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	out, _ := e.mustRun("simulation", "status")
	if out != "global simulation: disabled\n" {
		t.Errorf("status without a file: %q", out)
	}
	out, _ = e.mustRun("simulation", "enable", "rampart/ssh-bf", "rampart/http-probing")
	if !strings.Contains(out, "simulation enabled for 'rampart/ssh-bf'") || !strings.Contains(out, reloadMessage) {
		t.Errorf("enable:\n%s", out)
	}
	if s := load(); s.Simulation || !s.IsSimulated("rampart/ssh-bf") || !s.IsSimulated("rampart/http-probing") || s.IsSimulated("rampart/ssh-slow-bf") {
		t.Errorf("after enable: %+v", s)
	}
	out, _ = e.mustRun("simulation", "status")
	if !strings.Contains(out, "Scenarios in simulation mode :\n  - rampart/http-probing\n  - rampart/ssh-bf\n") {
		t.Errorf("status:\n%s", out)
	}
	out, _ = e.mustRun("simulation", "enable", "rampart/ssh-bf")
	if !strings.Contains(out, "already enabled") || strings.Contains(out, reloadMessage) {
		t.Errorf("enable again:\n%s", out)
	}
	e.mustRun("simulation", "disable", "rampart/http-probing")
	if s := load(); s.IsSimulated("rampart/http-probing") || len(s.Exclusions) != 1 {
		t.Errorf("after disable: %+v", s)
	}
	// global on clears the list; disabling one then excludes it
	e.mustRun("simulation", "enable", "--global")
	e.mustRun("simulation", "disable", "rampart/ssh-bf")
	if s := load(); !s.Simulation || s.IsSimulated("rampart/ssh-bf") || !s.IsSimulated("rampart/ssh-slow-bf") {
		t.Errorf("global on, ssh-bf excluded: %+v", s)
	}
	out, _ = e.mustRun("simulation", "status", "-o", "json")
	var st struct {
		Simulation bool     `json:"simulation"`
		Exclusions []string `json:"exclusions"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || !st.Simulation || len(st.Exclusions) != 1 {
		t.Errorf("status -o json: %v %s", err, out)
	}
	e.mustRun("simulation", "disable", "--global")
	if s := load(); s.Simulation || len(s.Exclusions) != 0 {
		t.Errorf("global off: %+v", s)
	}
	// typos are refused, the valid names still applied
	_, errs, err := e.run("", "simulation", "enable", "rampart/ssh-bf", "nope/nothing")
	if err == nil || !strings.Contains(errs, "'nope/nothing' doesn't exist") || !load().IsSimulated("rampart/ssh-bf") {
		t.Errorf("unknown scenario: %v\n%s", err, errs)
	}
	for _, args := range [][]string{{"simulation", "enable"}, {"simulation", "disable", "--global", "rampart/ssh-bf"}} {
		if _, _, err := e.run("", args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// TestSupportDump makes a dump of a full configuration, with the daemon's
// and the bouncer's metrics served on loopback, and checks what the zip
// holds and that no secret appears anywhere in it.
func TestSupportDump(t *testing.T) {
	metrics := func(body string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/metrics" {
				http.NotFound(w, r)
				return
			}
			io.WriteString(w, body)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	cs := metrics("# TYPE cs_info gauge\ncs_info{version=\"test\"} 1\n")
	fw := metrics("# TYPE fw_bouncer_banned_ips gauge\nfw_bouncer_banned_ips 42\n")
	e := newOperatorEnv(t, strings.TrimPrefix(cs.URL, "http://"))
	_, fwPort, _ := net.SplitHostPort(strings.TrimPrefix(fw.URL, "http://"))
	bouncerCfg := filepath.Join(e.dir, "bouncers", "crowdsec-firewall-bouncer.toml")
	b, err := os.ReadFile(bouncerCfg)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, []byte("[prometheus]\nenabled = true\nlisten_addr = \"127.0.0.1\"\nlisten_port = "+fwPort+"\n")...)
	if err := os.WriteFile(bouncerCfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun("simulation", "enable", "rampart/ssh-bf")
	// the LAPI's JWT secret lives in the database
	st, err := store.Open(context.Background(), storecfg.At(t, e.dbPath))
	if err != nil {
		t.Fatal(err)
	}
	jwt, err := st.GetOrCreateKV(context.Background(), "jwt_secret", func() (string, error) { return "jwtSecret-c0ffee-1234", nil })
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"JWT secret": jwt}
	for k, v := range operatorSecrets {
		secrets[k] = v
	}

	out := filepath.Join(e.dir, "dump", "support.zip")
	stdout, _ := e.mustRun("support", "dump", "-f", out, "--journal-lines", "50")
	if !strings.Contains(stdout, "Written zip file to "+out) {
		t.Errorf("stdout: %s", stdout)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("zip: %v %v; want mode 0600", fi, err)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name] = string(data)
		for name, s := range secrets {
			if strings.Contains(string(data), s) {
				t.Errorf("%s holds the %s", f.Name, name)
			}
		}
	}
	for name, want := range map[string]string{
		"version.txt":                                    "version: " + version.Version,
		"os.txt":                                         "platform: linux/",
		"config/config.toml":                             "password = \"********\"",
		"config/config.effective.toml":                   "max_connections = 1024",
		"config/local_api_credentials.toml":              "login = \"m1\"",
		"config/profiles.toml":                           "default_ip_remediation",
		"config/simulation.toml":                         "rampart/ssh-bf",
		"config/acquis.d/ssh.toml":                       "/var/log/auth.log",
		"config/notifications/mail.toml":                 "smtp_host = \"mail.example.test\"",
		"config/notifications/hooks.toml":                "webhook = \"********\"",
		"config/notifications/siem.yaml":                 "shared_key: '********'",
		"config/bouncers/crowdsec-firewall-bouncer.toml": "api_key = \"********\"",
		"metrics/crowdsec.prom":                          "cs_info",
		"metrics/crowdsec-firewall-bouncer.prom":         "fw_bouncer_banned_ips 42",
		"logs/crowdsec.log":                              "msg=\"started\"",
		"cscli/bouncers-list.txt":                        "fw",
		"cscli/machines-list.txt":                        "m1",
		"cscli/simulation-status.txt":                    "rampart/ssh-bf",
		"cscli/hub-list.txt":                             "",
		"cscli/lapi-status.txt":                          "Loaded credentials from",
	} {
		got, ok := files[name]
		if !ok {
			t.Errorf("the dump lacks %s", name)
			continue
		}
		if !strings.Contains(got, want) {
			t.Errorf("%s lacks %q:\n%s", name, want, got)
		}
	}
	if _, ok := files["logs/other.log"]; ok {
		t.Error("the dump holds a log that is not crowdsec's")
	}
	// the LAPI is down: said in errors.txt, the dump still made
	if !strings.Contains(files["errors.txt"], "lapi status") {
		t.Errorf("errors.txt:\n%s", files["errors.txt"])
	}
	if _, err := strconv.Atoi(fwPort); err != nil {
		t.Fatal(err)
	}
}
