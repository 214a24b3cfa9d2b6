package cscli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/agent/acquisition"
)

// setupEnv is a fake system under a temporary root: Rampart's rules as
// its hub folder and a configuration at the default path.
type setupEnv struct {
	t    *testing.T
	root string
}

func newSetupEnv(t *testing.T, config string) *setupEnv {
	t.Helper()
	e := &setupEnv{t: t, root: t.TempDir()}
	rules, err := filepath.Abs("../rules")
	if err != nil {
		t.Fatal(err)
	}
	e.write("/etc/crowdsec/config.toml", config)
	if err := os.Symlink(rules, e.path("/etc/crowdsec/hub")); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *setupEnv) path(sys string) string { return filepath.Join(e.root, sys) }

// write creates a file of the fake system, with its directories.
func (e *setupEnv) write(sys, content string) {
	e.t.Helper()
	if err := os.MkdirAll(filepath.Dir(e.path(sys)), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(e.path(sys), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *setupEnv) mkdir(sys string) {
	e.t.Helper()
	if err := os.MkdirAll(e.path(sys), 0o755); err != nil {
		e.t.Fatal(err)
	}
}

func (e *setupEnv) read(sys string) string {
	e.t.Helper()
	b, err := os.ReadFile(e.path(sys))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// setup runs `cscli setup --root <root> args...` and fails on error.
func (e *setupEnv) setup(args ...string) string {
	e.t.Helper()
	var out, errb bytes.Buffer
	root := newRootCommandWith(&out, &errb, strings.NewReader(""))
	root.SetArgs(append([]string{"setup", "--root", e.root, "--color", "no"}, args...))
	if err := root.Execute(); err != nil {
		e.t.Fatalf("cscli setup %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// sources loads the acquisition directory as the agent does, builds
// every source, and returns the tables by file name.
func (e *setupEnv) sources(dir string) map[string][]acquisition.Config {
	e.t.Helper()
	cfgs, err := acquisition.LoadDir(dir)
	if err != nil {
		e.t.Fatalf("the agent rejects what setup wrote: %v", err)
	}
	out := map[string][]acquisition.Config{}
	for _, c := range cfgs {
		if _, err := acquisition.New(c, acquisition.Options{}); err != nil {
			e.t.Fatalf("building %s: %v", c.Where(), err)
		}
		out[filepath.Base(c.File)] = append(out[filepath.Base(c.File)], c)
	}
	return out
}

const setupAcquis = "/etc/crowdsec/acquis.d"

func TestSetupSshdAuthLog(t *testing.T) {
	e := newSetupEnv(t, "")
	e.write("/usr/sbin/sshd", "")
	e.write("/var/log/auth.log", "")
	out := e.setup()
	for _, want := range []string{"sshd", "binary /usr/sbin/sshd", "/var/log/auth.log", "setup.sshd.toml: written", "rampart/sshd", "Not detected: nginx, apache2."} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	got := e.sources(e.path(setupAcquis))["setup.sshd.toml"]
	if len(got) != 1 || got[0].Source != "file" || !slices.Equal(got[0].Filenames, []string{"/var/log/auth.log"}) || got[0].Labels["type"] != "syslog" {
		t.Fatalf("setup.sshd.toml: %+v", got)
	}
	if !strings.HasPrefix(e.read(setupAcquis+"/setup.sshd.toml"), "# written by cscli setup on ") {
		t.Errorf("header:\n%s", e.read(setupAcquis+"/setup.sshd.toml"))
	}
}

// Debian 12 without rsyslog: no auth.log, sshd logs to the journal only.
func TestSetupSshdJournal(t *testing.T) {
	t.Run("unit file", func(t *testing.T) {
		e := newSetupEnv(t, "")
		e.write("/usr/sbin/sshd", "")
		e.mkdir("/var/log/journal")
		e.write("/lib/systemd/system/ssh.service", "[Service]\n")
		// Debian's alias: the journal records ssh.service, not sshd.service
		e.mkdir("/etc/systemd/system")
		if err := os.Symlink("/lib/systemd/system/ssh.service", e.path("/etc/systemd/system/sshd.service")); err != nil {
			t.Fatal(err)
		}
		out := e.setup()
		if !strings.Contains(out, "journal _SYSTEMD_UNIT=ssh.service") {
			t.Errorf("output:\n%s", out)
		}
		got := e.sources(e.path(setupAcquis))["setup.sshd.toml"]
		if len(got) != 1 || got[0].Source != "journalctl" || !slices.Equal(got[0].JournalctlFilter, []string{"_SYSTEMD_UNIT=ssh.service"}) || got[0].Labels["type"] != "syslog" {
			t.Fatalf("setup.sshd.toml: %+v", got)
		}
	})
	t.Run("no unit file", func(t *testing.T) {
		e := newSetupEnv(t, "")
		e.write("/usr/sbin/sshd", "")
		e.write("/run/systemd/journal/socket", "")
		e.setup()
		got := e.sources(e.path(setupAcquis))["setup.sshd.toml"]
		if len(got) != 1 || !slices.Equal(got[0].JournalctlFilter, []string{"_SYSTEMD_UNIT=ssh.service", "_SYSTEMD_UNIT=sshd.service"}) {
			t.Fatalf("setup.sshd.toml: %+v", got)
		}
	})
	t.Run("no journal", func(t *testing.T) {
		e := newSetupEnv(t, "")
		e.write("/usr/sbin/sshd", "")
		out := e.setup()
		if !strings.Contains(out, "no log found") || !strings.Contains(out, "no log file and no journal") {
			t.Errorf("output:\n%s", out)
		}
		if _, err := os.Stat(e.path(setupAcquis)); !os.IsNotExist(err) {
			t.Errorf("acquisition directory created: %v", err)
		}
	})
}

func TestSetupNginx(t *testing.T) {
	e := newSetupEnv(t, "")
	e.write("/usr/sbin/nginx", "")
	for _, f := range []string{"access.log", "access.log.1", "error.log", "example.com.log", "example.com-error.log"} {
		e.write("/var/log/nginx/"+f, "")
	}
	out := e.setup()
	if !strings.Contains(out, "setup.nginx.toml: written") || !strings.Contains(out, "rampart/base-http") {
		t.Errorf("output:\n%s", out)
	}
	got := e.sources(e.path(setupAcquis))["setup.nginx.toml"]
	if len(got) != 2 {
		t.Fatalf("want access and error tables, got %+v", got)
	}
	if want := []string{"/var/log/nginx/*access*.log", "/var/log/nginx/example.com.log"}; !slices.Equal(got[0].Filenames, want) {
		t.Errorf("access: %v, want %v", got[0].Filenames, want)
	}
	if want := []string{"/var/log/nginx/*error*.log"}; !slices.Equal(got[1].Filenames, want) {
		t.Errorf("error: %v, want %v", got[1].Filenames, want)
	}
	for _, c := range got {
		if c.Source != "file" || c.Labels["type"] != "nginx" {
			t.Errorf("table %+v", c)
		}
	}
}

// Rampart has no apache2 rules: the acquisition is still written, and
// the output says so.
func TestSetupApacheRedHat(t *testing.T) {
	e := newSetupEnv(t, "")
	e.write("/usr/sbin/httpd", "")
	e.write("/var/log/httpd/access_log", "")
	e.write("/var/log/httpd/ssl_error_log", "")
	out := e.setup()
	if !strings.Contains(out, "no Rampart rules for apache2") {
		t.Errorf("output:\n%s", out)
	}
	got := e.sources(e.path(setupAcquis))["setup.apache2.toml"]
	if len(got) != 2 || !slices.Equal(got[0].Filenames, []string{"/var/log/httpd/*access_log"}) ||
		!slices.Equal(got[1].Filenames, []string{"/var/log/httpd/*error_log"}) || got[0].Labels["type"] != "apache2" {
		t.Fatalf("setup.apache2.toml: %+v", got)
	}
}

func TestSetupNothingDetected(t *testing.T) {
	e := newSetupEnv(t, "")
	e.write("/var/log/auth.log", "") // logs without the service are not enough
	out := e.setup()
	if !strings.Contains(out, "No supported service detected") {
		t.Errorf("output:\n%s", out)
	}
	if _, err := os.Stat(e.path(setupAcquis)); !os.IsNotExist(err) {
		t.Errorf("acquisition directory created: %v", err)
	}
}

func TestSetupDryRun(t *testing.T) {
	e := newSetupEnv(t, "[crowdsec_service]\ncollections = []\n")
	e.write("/usr/sbin/sshd", "")
	e.write("/var/log/auth.log", "")
	out := e.setup("--dry-run")
	for _, want := range []string{"would write", "rampart/sshd (would install)", "Dry run: nothing was written."} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, d := range []string{setupAcquis, "/etc/crowdsec/collections"} {
		if _, err := os.Stat(e.path(d)); !os.IsNotExist(err) {
			t.Errorf("%s created by a dry run: %v", d, err)
		}
	}
}

func TestSetupIdempotent(t *testing.T) {
	e := newSetupEnv(t, "")
	e.write("/usr/sbin/sshd", "")
	e.write("/var/log/auth.log", "")
	e.write("/usr/sbin/nginx", "")
	e.write("/var/log/nginx/access.log", "")
	e.setup()
	first := e.read(setupAcquis + "/setup.sshd.toml")
	out := e.setup()
	if strings.Count(out, ": unchanged") != 2 || strings.Contains(out, "Restart") {
		t.Errorf("second run:\n%s", out)
	}
	if e.read(setupAcquis+"/setup.sshd.toml") != first {
		t.Error("second run rewrote setup.sshd.toml")
	}
	entries, _ := os.ReadDir(e.path(setupAcquis))
	if len(entries) != 2 {
		t.Errorf("acquisition directory holds %d entries", len(entries))
	}
	// a new log: the unedited file follows
	e.write("/var/log/secure", "")
	if out := e.setup(); !strings.Contains(out, "setup.sshd.toml: updated") {
		t.Errorf("after a new log:\n%s", out)
	}
	got := e.sources(e.path(setupAcquis))["setup.sshd.toml"]
	if len(got) != 1 || !slices.Equal(got[0].Filenames, []string{"/var/log/auth.log", "/var/log/secure"}) {
		t.Errorf("setup.sshd.toml: %+v", got)
	}
}

func TestSetupEditedKept(t *testing.T) {
	e := newSetupEnv(t, "")
	e.write("/usr/sbin/sshd", "")
	e.write("/var/log/auth.log", "")
	e.setup()
	f := setupAcquis + "/setup.sshd.toml"
	edited := strings.Replace(e.read(f), `labels = { type = "syslog" }`, `labels = { type = "syslog", env = "prod" }`, 1)
	e.write(f, edited)
	if out := e.setup(); !strings.Contains(out, "kept: edited by hand") {
		t.Errorf("output:\n%s", out)
	}
	if e.read(f) != edited {
		t.Fatal("edited file overwritten without --force")
	}
	if out := e.setup("--force"); !strings.Contains(out, "overwritten (--force)") {
		t.Errorf("output with --force:\n%s", out)
	}
	if strings.Contains(e.read(f), "prod") {
		t.Error("--force kept the edit")
	}
	if out := e.setup(); !strings.Contains(out, ": unchanged") {
		t.Errorf("after --force:\n%s", out)
	}
}

// Logs another acquisition file reads are left to it: the agent would
// read every line twice.
func TestSetupCoveredByOtherFile(t *testing.T) {
	e := newSetupEnv(t, "")
	e.write("/usr/sbin/sshd", "")
	e.write("/var/log/auth.log", "")
	e.write("/usr/sbin/nginx", "")
	e.write("/var/log/nginx/access.log", "")
	e.write("/var/log/nginx/error.log", "")
	e.write(setupAcquis+"/local.toml", "[[source]]\nsource = \"file\"\nfilenames = [\"/var/log/auth.log\", \"/var/log/nginx/access.log\"]\nlabels = { type = \"syslog\" }\n")
	out := e.setup()
	if !strings.Contains(out, "sshd: its logs are read by local.toml") || !strings.Contains(out, "nginx: some of its logs are read by local.toml") {
		t.Errorf("output:\n%s", out)
	}
	got := e.sources(e.path(setupAcquis))
	if _, ok := got["setup.sshd.toml"]; ok {
		t.Error("setup.sshd.toml written though local.toml reads auth.log")
	}
	if n := got["setup.nginx.toml"]; len(n) != 1 || !slices.Equal(n[0].Filenames, []string{"/var/log/nginx/*error*.log"}) {
		t.Errorf("setup.nginx.toml: %+v", n)
	}
}

// A collection the configuration does not list is installed from the hub
// folder, once.
func TestSetupInstallsCollections(t *testing.T) {
	e := newSetupEnv(t, "[crowdsec_service]\ncollections = [\"rampart/linux\"]\n")
	e.write("/usr/sbin/nginx", "")
	e.mkdir("/var/log/nginx")
	out := e.setup()
	if !strings.Contains(out, "rampart/nginx (installed now)") || !strings.Contains(out, "rampart/base-http (installed now)") {
		t.Errorf("output:\n%s", out)
	}
	for _, f := range []string{"collections/rampart/nginx.yaml", "collections/rampart/base-http.yaml", "parsers/s01-parse/rampart/nginx-logs.yaml"} {
		if _, err := os.Stat(e.path("/etc/crowdsec/" + f)); err != nil {
			t.Errorf("%s not installed: %v", f, err)
		}
	}
	// an empty log directory gets the standard globs
	got := e.sources(e.path(setupAcquis))["setup.nginx.toml"]
	if len(got) != 2 || !slices.Equal(got[0].Filenames, []string{"/var/log/nginx/*access*.log"}) {
		t.Errorf("setup.nginx.toml: %+v", got)
	}
	out = e.setup("-o", "json")
	var res struct {
		Services []struct {
			Service     string            `json:"service"`
			Status      string            `json:"status"`
			Collections map[string]string `json:"collections"`
		} `json:"services"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if len(res.Services) != 1 || res.Services[0].Status != "unchanged" || res.Services[0].Collections["rampart/nginx"] != "installed" {
		t.Errorf("second run: %+v", res)
	}
}

// --acquis-dir and -c are host paths, taken as given.
func TestSetupExplicitPaths(t *testing.T) {
	e := newSetupEnv(t, "")
	e.write("/usr/sbin/sshd", "")
	e.write("/var/log/secure", "")
	dir := filepath.Join(t.TempDir(), "acq")
	e.setup("-c", e.path("/etc/crowdsec/config.toml"), "--acquis-dir", dir)
	got := e.sources(dir)["setup.sshd.toml"]
	if len(got) != 1 || !slices.Equal(got[0].Filenames, []string{"/var/log/secure"}) {
		t.Errorf("setup.sshd.toml: %+v", got)
	}
}
