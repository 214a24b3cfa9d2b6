package systemd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/bouncer"
	"github.com/rampart-ips/rampart/csconfig"
)

const (
	agentUnit   = "crowdsec.service"
	bouncerUnit = "crowdsec-firewall-bouncer.service"
	modulePath  = "github.com/rampart-ips/rampart"
)

var allUnits = []string{agentUnit, bouncerUnit}

// unitFile is a parsed unit: section, key, then every assignment in file
// order. An empty assignment resets the key, as systemd does for lists.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section, pending := "", ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			pending += s + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not a setting in a section: %q", path, n, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if v == "" {
			delete(u[section], k)
			continue
		}
		u[section][k] = append(u[section][k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// last is the effective value of a single-valued setting.
func (u unitFile) last(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// words joins every assignment of a list setting.
func (u unitFile) words(section, key string) []string {
	var w []string
	for _, v := range u[section][key] {
		w = append(w, strings.Fields(v)...)
	}
	return w
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// writable reports whether the unit lets the service write path under
// ProtectSystem=strict.
func (u unitFile) writable(path string) bool {
	var roots []string
	for _, p := range u.words("Service", "ReadWritePaths") {
		roots = append(roots, strings.TrimLeft(p, "-+"))
	}
	for key, base := range map[string]string{"StateDirectory": "/var/lib", "LogsDirectory": "/var/log", "CacheDirectory": "/var/cache", "RuntimeDirectory": "/run"} {
		for _, d := range u.words("Service", key) {
			roots = append(roots, filepath.Join(base, d))
		}
	}
	if u.last("Service", "PrivateTmp") == "yes" {
		roots = append(roots, "/tmp", "/var/tmp")
	}
	path = filepath.Clean(path)
	for _, r := range roots {
		r = filepath.Clean(r)
		if path == r || strings.HasPrefix(path, r+"/") {
			return true
		}
	}
	return false
}

// handlesSIGHUP reports whether a command's sources mention SIGHUP at all:
// a unit may only offer ExecReload when they do.
func handlesSIGHUP(t *testing.T, cmd string) bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "cmd", cmd, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no sources for cmd/%s: %v", cmd, err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "SIGHUP") {
			return true
		}
	}
	return false
}

// checkCommon asserts what both daemons share: readiness, the -t check
// before start, restarts and the sandbox.
func checkCommon(t *testing.T, u unitFile, cmd, cfgPath string) {
	t.Helper()
	want := func(key, val string) {
		t.Helper()
		if got := u.last("Service", key); got != val {
			t.Errorf("%s=%q, want %q", key, got, val)
		}
	}
	want("Type", "notify")
	want("NotifyAccess", "main")
	start := "/usr/bin/" + cmd + " -c " + cfgPath
	want("ExecStart", start)
	if !slices.Contains(u["Service"]["ExecStartPre"], start+" -t") {
		t.Errorf("ExecStartPre %q lacks the config check %q", u["Service"]["ExecStartPre"], start+" -t")
	}
	want("Restart", "on-failure")
	if d, err := time.ParseDuration(u.last("Service", "RestartSec")); err != nil || d <= 0 {
		t.Errorf("RestartSec=%q: want a positive duration", u.last("Service", "RestartSec"))
	}
	// Before the handler is installed Go exits on SIGHUP, and systemd
	// counts that as a clean exit.
	if !slices.Contains(u.words("Service", "RestartForceExitStatus"), "SIGHUP") {
		t.Errorf("RestartForceExitStatus=%q lacks SIGHUP", u.words("Service", "RestartForceExitStatus"))
	}
	if hup, reload := handlesSIGHUP(t, cmd), len(u["Service"]["ExecReload"]) > 0; hup != reload {
		t.Errorf("cmd/%s handles SIGHUP: %v, but the unit has ExecReload: %v", cmd, hup, reload)
	}
	// A reload validates first, so a broken file fails `systemctl reload`
	// without reaching the daemon, then signals it.
	if r := u["Service"]["ExecReload"]; len(r) > 0 && !slices.Equal(r, []string{start + " -t", "/bin/kill -HUP $MAINPID"}) {
		t.Errorf("ExecReload=%q, want the -t check then /bin/kill -HUP $MAINPID", r)
	}
	for key, val := range map[string]string{
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"RestrictNamespaces":      "yes",
		"RestrictSUIDSGID":        "yes",
		"RestrictRealtime":        "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
	} {
		want(key, val)
	}
	if fams := u.words("Service", "RestrictAddressFamilies"); !sameSet(fams, []string{"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}) {
		t.Errorf("RestrictAddressFamilies=%q", fams)
	}
	if f := u["Service"]["SystemCallFilter"]; len(f) == 0 || f[0] != "@system-service" {
		t.Errorf("SystemCallFilter=%q: want an @system-service allow list first", f)
	}
	// Root with a bounded set: a User= would need AmbientCapabilities.
	if usr := u.last("Service", "User"); usr != "" && usr != "root" {
		t.Errorf("User=%q: the capability choices assume root", usr)
	}
	if !slices.Contains(u.words("Install", "WantedBy"), "multi-user.target") {
		t.Errorf("WantedBy=%q lacks multi-user.target", u.words("Install", "WantedBy"))
	}
	for _, p := range []string{"/etc", "/etc/crowdsec", "/usr", "/"} {
		if u.writable(p) {
			t.Errorf("%s is writable", p)
		}
	}
}

func TestAgentUnit(t *testing.T) {
	u := parseUnit(t, agentUnit)
	checkCommon(t, u, "crowdsec", csconfig.DefaultPath)
	for _, key := range []string{"Wants", "After"} {
		if !slices.Contains(u.words("Unit", key), "network-online.target") {
			t.Errorf("%s=%q lacks network-online.target", key, u.words("Unit", key))
		}
	}
	if caps := u.words("Service", "CapabilityBoundingSet"); !sameSet(caps, []string{"CAP_DAC_READ_SEARCH", "CAP_NET_BIND_SERVICE"}) {
		t.Errorf("CapabilityBoundingSet=%q", caps)
	}
	if n, err := strconv.Atoi(u.last("Service", "LimitNOFILE")); err != nil || n < 16384 {
		t.Errorf("LimitNOFILE=%q: want at least 16384 for many tailed files", u.last("Service", "LimitNOFILE"))
	}
	// Everything the shipped configuration makes the daemon write, and
	// nothing it only reads.
	cfg, err := csconfig.Load(filepath.Join("..", "config", "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for what, p := range map[string]string{
		"data_dir":        cfg.ConfigPaths.DataDir,
		"db_path":         cfg.DBConfig.DBPath,
		"state_dir":       cfg.Crowdsec.StateDir,
		"alert_queue_dir": cfg.Crowdsec.AlertQueueDir,
		"log_dir":         cfg.Common.LogDir,
	} {
		if !u.writable(p) {
			t.Errorf("%s %s is not writable", what, p)
		}
	}
	for what, p := range map[string]string{
		"config_dir":      cfg.ConfigPaths.ConfigDir,
		"hub_dir":         cfg.ConfigPaths.HubDir,
		"acquisition_dir": cfg.Crowdsec.AcquisitionDir,
	} {
		if u.writable(p) {
			t.Errorf("%s %s is writable; the daemon only reads it", what, p)
		}
	}
}

func TestBouncerUnit(t *testing.T) {
	u := parseUnit(t, bouncerUnit)
	checkCommon(t, u, "crowdsec-firewall-bouncer", bouncer.DefaultConfigPath)
	if !slices.Contains(u.words("Unit", "Before"), "docker.service") {
		t.Errorf("Before=%q lacks docker.service", u.words("Unit", "Before"))
	}
	for _, key := range []string{"Wants", "After"} {
		if !slices.Contains(u.words("Unit", key), "crowdsec.service") {
			t.Errorf("%s=%q lacks crowdsec.service", key, u.words("Unit", key))
		}
	}
	// A hard dependency would stop enforcement with crowdsec.
	for _, key := range []string{"Requires", "Requisite", "BindsTo", "PartOf"} {
		if slices.Contains(u.words("Unit", key), "crowdsec.service") {
			t.Errorf("%s=crowdsec.service: the bouncer must outlive crowdsec restarts", key)
		}
	}
	if caps := u.words("Service", "CapabilityBoundingSet"); !sameSet(caps, []string{"CAP_NET_ADMIN", "CAP_NET_RAW"}) {
		t.Errorf("CapabilityBoundingSet=%q", caps)
	}
	// Flushing on stop would open a gap on every restart.
	for _, key := range []string{"ExecStop", "ExecStopPost"} {
		if v := u["Service"][key]; len(v) > 0 {
			t.Errorf("%s=%q: the firewall objects must stay across stops", key, v)
		}
	}
	for key, vals := range u["Service"] {
		for _, v := range vals {
			if strings.HasPrefix(key, "Exec") && strings.Contains(v, "-flush") {
				t.Errorf("%s=%q flushes the firewall", key, v)
			}
		}
	}
	if d, err := time.ParseDuration(u.last("Service", "TimeoutStartSec")); err != nil || d <= 0 {
		t.Errorf("TimeoutStartSec=%q: want a bound on the wait for the first sync", u.last("Service", "TimeoutStartSec"))
	}
	// The log file is the only thing it writes; a read-only one would
	// stop it from starting.
	data, err := os.ReadFile(filepath.Join("..", "config", "crowdsec-firewall-bouncer.toml"))
	if err != nil {
		t.Fatal(err)
	}
	data = regexp.MustCompile(`(?m)^api_key = ""`).ReplaceAll(data, []byte(`api_key = "x"`))
	// Top-level keys go before the first table.
	cfg, err := bouncer.ParseConfig(append([]byte("log_mode = \"file\"\n"), data...), "crowdsec-firewall-bouncer.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !u.writable(filepath.Join(cfg.LogDir, "crowdsec-firewall-bouncer.log")) {
		t.Errorf("log_dir %s is not writable", cfg.LogDir)
	}
}

// ourBinary matches the /usr/bin paths of the units; those naming one of
// this module's commands are rewritten to freshly built copies.
var ourBinary = regexp.MustCompile(`/usr/bin/([A-Za-z0-9_.-]+)`)

func isCommand(name string) bool {
	st, err := os.Stat(filepath.Join("..", "cmd", name))
	return err == nil && st.IsDir()
}

// stageUnits builds the commands the units run into dir and writes the
// units there with only those paths changed, since verify checks that
// every Exec binary exists.
func stageUnits(t *testing.T, dir string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not in PATH")
	}
	var cmds, staged []string
	for _, name := range allUnits {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out := ourBinary.ReplaceAllStringFunc(string(data), func(m string) string {
			cmd := strings.TrimPrefix(m, "/usr/bin/")
			if !isCommand(cmd) {
				return m
			}
			if !slices.Contains(cmds, cmd) {
				cmds = append(cmds, cmd)
			}
			return filepath.Join(dir, cmd)
		})
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		staged = append(staged, p)
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	for _, c := range cmds {
		args = append(args, modulePath+"/cmd/"+c)
	}
	if out, err := exec.Command(goBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return staged
}

// analyze runs systemd-analyze; warnings are logged at warning level, so
// the level is pinned in case the environment raises it.
func analyze(analyzer string, args ...string) (string, error) {
	c := exec.Command(analyzer, args...)
	c.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=info", "SYSTEMD_LOG_COLOR=0", "SYSTEMD_PAGER=")
	out, err := c.CombinedOutput()
	return string(out), err
}

// verifyProblems runs systemd-analyze verify on units and returns the
// output lines naming one of them: unknown settings, bad values, missing
// binaries. Lines about other units come from this machine's own unit
// files and are only logged.
func verifyProblems(t *testing.T, analyzer string, units ...string) []string {
	t.Helper()
	args := []string{"verify"}
	help, _ := analyze(analyzer, "--help")
	if strings.Contains(help, "--man") {
		args = append(args, "--man=no") // Documentation= is a URL, not a man page
	}
	if strings.Contains(help, "--recursive-errors") {
		args = append(args, "--recursive-errors=no") // dependencies are this machine's business
	}
	out, err := analyze(analyzer, append(args, units...)...)
	var bad []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		mine := false
		for _, u := range units {
			mine = mine || strings.Contains(line, filepath.Base(u))
		}
		if mine {
			bad = append(bad, line)
		} else {
			t.Logf("systemd-analyze (other unit): %s", line)
		}
	}
	if err != nil && len(bad) == 0 {
		bad = append(bad, "systemd-analyze verify: "+err.Error()+": "+out)
	}
	return bad
}

func TestSystemdAnalyze(t *testing.T) {
	analyzer, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	if testing.Short() {
		t.Skip("builds the daemons")
	}
	dir := t.TempDir()
	staged := stageUnits(t, dir)

	t.Run("verify", func(t *testing.T) {
		for _, line := range verifyProblems(t, analyzer, staged...) {
			t.Error(line)
		}
	})

	// The check above is only worth something if this systemd-analyze
	// reports a unit's mistakes in a way it recognises.
	t.Run("verify catches mistakes", func(t *testing.T) {
		data, err := os.ReadFile(staged[0])
		if err != nil {
			t.Fatal(err)
		}
		broken := filepath.Join(dir, "zz-canary.service")
		data = append(data, "\n[Service]\nNoSuchSetting=1\nExecStartPost="+filepath.Join(dir, "missing-binary")+"\n"...)
		if err := os.WriteFile(broken, data, 0o644); err != nil {
			t.Fatal(err)
		}
		bad := verifyProblems(t, analyzer, broken)
		found := strings.Join(bad, "\n")
		if !strings.Contains(found, "NoSuchSetting") || !strings.Contains(found, "missing-binary") {
			t.Errorf("verify did not report both mistakes:\n%s", found)
		}
	})

	t.Run("security", func(t *testing.T) {
		help, _ := analyze(analyzer, "--help")
		if !strings.Contains(help, "--offline") {
			t.Skip("systemd-analyze security has no --offline")
		}
		overall := regexp.MustCompile(`Overall exposure level for (\S+): ([0-9.]+) (\S+)`)
		for _, p := range staged {
			out, err := analyze(analyzer, "security", "--offline=yes", "--no-pager", p)
			if m := overall.FindStringSubmatch(out); m != nil {
				t.Logf("exposure %s: %s %s", m[1], m[2], m[3])
			} else {
				t.Logf("systemd-analyze security %s: %v\n%s", filepath.Base(p), err, out)
			}
		}
	})
}
