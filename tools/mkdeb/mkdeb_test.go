package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is the source tree, seen from this package's directory.
const repoRoot = "../.."

var (
	tmpRoot   string
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	var err error
	if tmpRoot, err = os.MkdirTemp("", "mkdeb-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// binaries builds the three commands once for every test that needs them.
func binaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	buildOnce.Do(func() {
		binDir = filepath.Join(tmpRoot, "bin")
		// as make build does: lintian wants them stripped
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", binDir+"/", "./cmd/crowdsec", "./cmd/cscli", "./cmd/crowdsec-firewall-bouncer")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// unitDir is systemd/ when its units exist; otherwise stand-ins, so that
// the packaging is tested before the real units land.
func unitDir(t *testing.T) string {
	t.Helper()
	real := filepath.Join(repoRoot, "systemd")
	if checkUnits(real) == nil {
		return real
	}
	t.Logf("using stand-in units: %v", checkUnits(real))
	dir := t.TempDir()
	for _, n := range []string{"crowdsec", "crowdsec-firewall-bouncer"} {
		unit := "[Service]\nExecStart=/usr/bin/" + n + "\n[Install]\nWantedBy=multi-user.target\n"
		if err := os.WriteFile(filepath.Join(dir, n+".service"), []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func needDpkgDeb(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb is not installed")
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

func TestDebianVersion(t *testing.T) {
	at := time.Date(2025, 11, 25, 21, 46, 5, 0, time.UTC)
	for _, c := range []struct{ in, want string }{
		{"v1.2.3", "1.2.3"},
		{"1.2.3", "1.2.3"},
		{"v1.2.3-dirty", "1.2.3+dirty"},
		{"v1.2.3-rc1", "1.2.3~rc1"},
		{"v1.2.3-rc.1-4-gabc1234-dirty", "1.2.3~rc.1+git4.abc1234.dirty"},
		{"v1.2.3-beta-2-12-gabc1234", "1.2.3~beta.2+git12.abc1234"},
		{"v1.2.3-4-gabc1234", "1.2.3+git4.abc1234"},
		{"v0.0.0-dev", "0.0.0~dev"},
		{"0d5c14e", "0.0.0~git20251125214605.0d5c14e"},
		{"0d5c14e-dirty\n", "0.0.0~git20251125214605.0d5c14e.dirty"},
	} {
		got, err := DebianVersion(c.in, at)
		if err != nil || got != c.want {
			t.Errorf("DebianVersion(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "release_1", "v1.2.3 foo", "main"} {
		if v, err := DebianVersion(bad, at); err == nil {
			t.Errorf("DebianVersion(%q) = %q, want an error", bad, v)
		}
	}
}

// TestDebianVersionOrder checks with dpkg that the versions sort the way
// the history goes.
func TestDebianVersionOrder(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg is not installed")
	}
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	order := []string{"abc1234", "v0.1.0-rc1", "v0.1.0-rc1-3-gabc1234", "v0.1.0", "v0.1.0-dirty", "v0.1.0-2-gabc1234", "v0.1.0-2-gabc1234-dirty", "v0.1.1"}
	for i := 1; i < len(order); i++ {
		a, _ := DebianVersion(order[i-1], at)
		b, _ := DebianVersion(order[i], at)
		if err := exec.Command("dpkg", "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("%s (%s) does not sort before %s (%s)", a, order[i-1], b, order[i])
		}
	}
}

func TestMaintainerScriptsParse(t *testing.T) {
	scripts, _ := filepath.Glob(filepath.Join(repoRoot, "packaging", "*", "*"))
	n := 0
	for _, s := range scripts {
		base := filepath.Base(s)
		if base != "preinst" && base != "postinst" && base != "prerm" && base != "postrm" && !strings.HasSuffix(base, ".sh") {
			continue
		}
		n++
		if out, err := exec.Command("sh", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", s, err, out)
		}
	}
	if n != 9 {
		t.Errorf("checked %d scripts, want 9 (4 per package and the shared part)", n)
	}
}

func TestMissingUnits(t *testing.T) {
	o := Options{Root: repoRoot, UnitDir: t.TempDir(), BinDir: t.TempDir(), OutDir: t.TempDir(), Version: "1.0", Arch: "amd64"}
	if _, err := Build(o); err == nil || !strings.Contains(err.Error(), "systemd unit") || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("Build without units: %v, want a missing-unit error", err)
	}
	for _, n := range []string{"crowdsec", "crowdsec-firewall-bouncer"} {
		unit := "[Service]\nExecStart=/usr/local/bin/" + n + "\n"
		if err := os.WriteFile(filepath.Join(o.UnitDir, n+".service"), []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Build(o); err == nil || !strings.Contains(err.Error(), "ExecStart must run /usr/bin/crowdsec") {
		t.Fatalf("Build with units running /usr/local/bin: %v", err)
	}
}

type debFile struct {
	mode string // as ls shows it
	user string
}

// contents lists a package's paths ("/etc/crowdsec/", "/usr/bin/cscli").
func contents(t *testing.T, deb string) map[string]debFile {
	t.Helper()
	out := map[string]debFile{}
	for _, line := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "--contents", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("unexpected dpkg-deb --contents line %q", line)
		}
		out[strings.TrimPrefix(f[5], ".")] = debFile{mode: f[0], user: f[1]}
	}
	return out
}

func TestPackages(t *testing.T) {
	needDpkgDeb(t)
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("package test runs on amd64 and arm64")
	}
	bin := binaries(t)
	out := t.TempDir()
	const version = "0.0.0~git20251125214605.0d5c14e"
	paths, err := Build(Options{Root: repoRoot, UnitDir: unitDir(t), BinDir: bin, OutDir: out, Version: version,
		Arch: runtime.GOARCH, MTime: time.Unix(1764107165, 0)})
	if err != nil {
		t.Fatal(err)
	}
	arch := debArch[runtime.GOARCH]
	want := []string{
		filepath.Join(out, "crowdsec_"+version+"_"+arch+".deb"),
		filepath.Join(out, "crowdsec-firewall-bouncer_"+version+"_"+arch+".deb"),
	}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Fatalf("Build wrote %v, want %v", paths, want)
	}

	t.Run("crowdsec", func(t *testing.T) {
		deb := paths[0]
		checkFields(t, deb, map[string]string{
			"Package": "crowdsec", "Version": version, "Architecture": arch,
			"Depends": "", "Recommends": "crowdsec-firewall-bouncer", "Section": "net",
		})
		files := contents(t, deb)
		checkModes(t, files, map[string]string{
			"/usr/bin/crowdsec":                                                "-rwxr-xr-x",
			"/usr/bin/cscli":                                                   "-rwxr-xr-x",
			"/etc/crowdsec/config.toml":                                        "-rw-r--r--",
			"/etc/crowdsec/profiles.toml":                                      "-rw-r--r--",
			"/etc/crowdsec/notifications/http.toml":                            "-rw-r--r--",
			"/etc/crowdsec/notifications/sentinel.toml":                        "-rw-r--r--",
			"/etc/crowdsec/acquis.d/":                                          "drwxr-xr-x",
			"/etc/crowdsec/hub":                                                "lrwxrwxrwx",
			"/usr/share/crowdsec/hub/":                                         "drwxr-xr-x",
			"/usr/share/man/man1/crowdsec.1.gz":                                "-rw-r--r--",
			"/usr/share/man/man1/cscli.1.gz":                                   "-rw-r--r--",
			"/usr/share/man/man1/cscli-decisions-list.1.gz":                    "-rw-r--r--",
			"/usr/share/doc/crowdsec/copyright":                                "-rw-r--r--",
			"/usr/share/doc/crowdsec/changelog.gz":                             "-rw-r--r--",
			"/usr/share/lintian/overrides/crowdsec":                            "-rw-r--r--",
			"/usr/share/crowdsec/hub/index.json":                               "-rw-r--r--",
			"/usr/share/crowdsec/hub/patterns/ssh":                             "-rw-r--r--",
			"/usr/share/crowdsec/hub/contexts/bf_base.yaml":                    "-rw-r--r--",
			"/usr/share/crowdsec/hub/collections/rampart/sshd.yaml":            "-rw-r--r--",
			"/usr/share/crowdsec/hub/scenarios/rampart/ssh-bf.yaml":            "-rw-r--r--",
			"/usr/share/crowdsec/hub/data/rampart-backdoors.txt":               "-rw-r--r--",
			"/usr/share/crowdsec/hub/parsers/s01-parse/rampart/sshd-logs.yaml": "-rw-r--r--",
			"/var/lib/crowdsec/data/":                                          "drwxr-x---",
			"/lib/systemd/system/crowdsec.service":                             "-rw-r--r--",
			"/etc/logrotate.d/crowdsec":                                        "-rw-r--r--",
			"/usr/share/doc/crowdsec/grafana/rampart.json":                     "-rw-r--r--",
		})
		for p, f := range files {
			if strings.Contains(p, "/.tests") || strings.HasSuffix(p, ".go") {
				t.Errorf("%s should not be packaged", p)
			}
			if f.user != "root/root" {
				t.Errorf("%s is owned by %s", p, f.user)
			}
			// One set of notification examples, TOML: upstream's YAML
			// names beside them would define each name twice.
			if (strings.HasPrefix(p, "/etc/crowdsec/notifications/") && !strings.HasSuffix(p, "/") && !strings.HasSuffix(p, ".toml")) ||
				strings.Contains(p, "/examples/notifications") {
				t.Errorf("%s should not be packaged", p)
			}
		}
		// Every rule file of rules/ is there.
		var missing []string
		_ = filepath.WalkDir(filepath.Join(repoRoot, "rules"), func(p string, d os.DirEntry, err error) error {
			rel, _ := filepath.Rel(filepath.Join(repoRoot, "rules"), p)
			if strings.HasPrefix(rel, ".tests") {
				return filepath.SkipDir
			}
			if err == nil && d.Type().IsRegular() && !strings.HasSuffix(p, ".go") {
				if _, ok := files["/usr/share/crowdsec/hub/"+filepath.ToSlash(rel)]; !ok {
					missing = append(missing, rel)
				}
			}
			return nil
		})
		if len(missing) > 0 {
			t.Errorf("rules missing from the package: %v", missing)
		}
		control := extractControl(t, deb)
		checkConffiles(t, control, "/etc/crowdsec/config.toml", "/etc/crowdsec/profiles.toml", "/etc/logrotate.d/crowdsec",
			"/etc/crowdsec/notifications/http.toml", "/etc/crowdsec/notifications/slack.toml",
			"/etc/crowdsec/notifications/email.toml", "/etc/crowdsec/notifications/file.toml",
			"/etc/crowdsec/notifications/splunk.toml", "/etc/crowdsec/notifications/sentinel.toml")
		checkScripts(t, control, "preinst", "postinst", "prerm", "postrm")
		checkSameFile(t, deb, "/etc/crowdsec/config.toml", filepath.Join(repoRoot, "config", "config.toml"))
		checkSameFile(t, deb, "/etc/crowdsec/notifications/http.toml", filepath.Join(repoRoot, "config", "notifications", "http.toml"))
		checkSameFile(t, deb, "/usr/share/crowdsec/hub/index.json", filepath.Join(repoRoot, "rules", "index.json"))
		checkSameFile(t, deb, "/usr/share/doc/crowdsec/grafana/rampart.json", filepath.Join(repoRoot, "packaging", "grafana", "rampart.json"))
		postinst := readFile(t, filepath.Join(control, "postinst"))
		for _, s := range []string{"machines add --auto --force", "setup --help", "register_bouncer()", "bouncers add"} {
			if !strings.Contains(postinst, s) {
				t.Errorf("crowdsec postinst lacks %q", s)
			}
		}
	})

	t.Run("bouncer", func(t *testing.T) {
		deb := paths[1]
		checkFields(t, deb, map[string]string{
			"Package": "crowdsec-firewall-bouncer", "Version": version, "Architecture": arch,
			"Depends": "nftables | iptables", "Recommends": "", "Suggests": "crowdsec, ipset",
		})
		files := contents(t, deb)
		checkModes(t, files, map[string]string{
			"/usr/bin/crowdsec-firewall-bouncer":                    "-rwxr-xr-x",
			"/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.toml": "-rw-------",
			"/lib/systemd/system/crowdsec-firewall-bouncer.service": "-rw-r--r--",
			"/etc/logrotate.d/crowdsec-firewall-bouncer":            "-rw-r--r--",
			"/usr/share/man/man1/crowdsec-firewall-bouncer.1.gz":    "-rw-r--r--",
			"/usr/share/doc/crowdsec-firewall-bouncer/copyright":    "-rw-r--r--",
			"/usr/share/doc/crowdsec-firewall-bouncer/changelog.gz": "-rw-r--r--",
		})
		for p := range files {
			if strings.HasPrefix(p, "/usr/share/man/man1/cscli") {
				t.Errorf("bouncer package ships %s", p)
			}
		}
		for p := range files {
			if strings.HasPrefix(p, "/usr/bin/") && p != "/usr/bin/" && p != "/usr/bin/crowdsec-firewall-bouncer" {
				t.Errorf("bouncer package ships %s", p)
			}
		}
		control := extractControl(t, deb)
		checkConffiles(t, control, "/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.toml", "/etc/logrotate.d/crowdsec-firewall-bouncer")
		checkScripts(t, control, "preinst", "postinst", "prerm", "postrm")
		prerm := readFile(t, filepath.Join(control, "prerm"))
		if !strings.Contains(prerm, `-flush`) {
			t.Error("bouncer prerm does not flush the firewall objects")
		}
	})

	t.Run("reproducible", func(t *testing.T) {
		again := t.TempDir()
		p2, err := Build(Options{Root: repoRoot, UnitDir: unitDir(t), BinDir: bin, OutDir: again, Version: version,
			Arch: runtime.GOARCH, MTime: time.Unix(1764107165, 0)})
		if err != nil {
			t.Fatal(err)
		}
		for i := range paths {
			a, b := readFile(t, paths[i]), readFile(t, p2[i])
			if a != b {
				t.Errorf("%s differs between two builds", filepath.Base(paths[i]))
			}
		}
	})
}

func checkFields(t *testing.T, deb string, want map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		got := strings.TrimSpace(run(t, "dpkg-deb", "--field", deb, k))
		if got != want[k] {
			t.Errorf("%s: %s = %q, want %q", filepath.Base(deb), k, got, want[k])
		}
	}
}

func checkModes(t *testing.T, files map[string]debFile, want map[string]string) {
	t.Helper()
	for p, mode := range want {
		f, ok := files[p]
		if !ok {
			t.Errorf("%s is not in the package", p)
			continue
		}
		if f.mode != mode {
			t.Errorf("%s has mode %s, want %s", p, f.mode, mode)
		}
	}
}

func extractControl(t *testing.T, deb string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "DEBIAN")
	run(t, "dpkg-deb", "-e", deb, dir)
	return dir
}

func checkConffiles(t *testing.T, control string, want ...string) {
	t.Helper()
	got := strings.Fields(readFile(t, filepath.Join(control, "conffiles")))
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("conffiles = %v, want %v", got, want)
	}
}

func checkScripts(t *testing.T, control string, names ...string) {
	t.Helper()
	for _, n := range names {
		p := filepath.Join(control, n)
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("maintainer script %s: %v", n, err)
			continue
		}
		if st.Mode().Perm() != 0o755 {
			t.Errorf("%s has mode %v", n, st.Mode().Perm())
		}
		text := readFile(t, p)
		if !strings.HasPrefix(text, "#!/bin/sh\n") || !strings.Contains(text, "\nset -e\n") {
			t.Errorf("%s must be a POSIX sh script with set -e", n)
		}
		if strings.Contains(text, includeMark) {
			t.Errorf("%s still has an unexpanded include", n)
		}
		if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", n, err, out)
		}
	}
}

// checkSameFile compares a packaged file with its source.
func checkSameFile(t *testing.T, deb, path, src string) {
	t.Helper()
	dir := filepath.Join(tmpRoot, "x-"+filepath.Base(deb))
	if _, err := os.Stat(dir); err != nil {
		run(t, "dpkg-deb", "-x", deb, dir)
	}
	if a, b := readFile(t, filepath.Join(dir, path)), readFile(t, src); a != b {
		t.Errorf("%s differs from %s", path, src)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// shell runs the postinst's shared part (bouncer-key.sh) with its paths
// pointed into dir, then script, and returns the output.
func shell(t *testing.T, dir, script string) (string, error) {
	t.Helper()
	snippet := filepath.Join(repoRoot, "packaging", "common", "bouncer-key.sh")
	prelude := fmt.Sprintf("set -e\n. %q\nCS_CONFIG=%q\nCS_CREDS=%q\nCSCLI=%q\nBOUNCER_TOML=%q\n",
		snippet, filepath.Join(dir, "config.toml"), filepath.Join(dir, "local_api_credentials.toml"),
		filepath.Join(binaries(t), "cscli"), filepath.Join(dir, "bouncer.toml"))
	var out bytes.Buffer
	cmd := exec.Command("sh", "-c", prelude+script)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestRegisterBouncer runs the registration the postinsts share against a
// real cscli and a SQLite database in a temporary directory.
func TestRegisterBouncer(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	cfg := strings.NewReplacer(
		"/etc/crowdsec/", dir+"/",
		"/var/lib/crowdsec/data/", dir+"/data/",
		`listen_uri = "127.0.0.1:8080"`, `listen_uri = "0.0.0.0:8181"`,
	).Replace(readFile(t, filepath.Join(repoRoot, "config", "config.toml")))
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bouncer.toml"), []byte(readFile(t, filepath.Join(repoRoot, "config", "crowdsec-firewall-bouncer.toml"))), 0o644); err != nil {
		t.Fatal(err)
	}
	bouncerTOML := filepath.Join(dir, "bouncer.toml")

	// Before crowdsec is configured (no credentials): nothing happens.
	out, err := shell(t, dir, "register_bouncer; echo REG=$BOUNCER_REGISTERED")
	if err != nil || !strings.Contains(out, "REG=0") || !strings.Contains(out, "no local crowdsec yet") {
		t.Fatalf("without credentials: %v\n%s", err, out)
	}
	if c := exec.Command(filepath.Join(bin, "cscli"), "-c", filepath.Join(dir, "config.toml"), "machines", "add", "--auto", "--force"); true {
		if o, err := c.CombinedOutput(); err != nil {
			t.Fatalf("machines add: %v\n%s", err, o)
		}
	}

	out, err = shell(t, dir, "set_top_key mode iptables; register_bouncer; echo REG=$BOUNCER_REGISTERED")
	if err != nil || !strings.Contains(out, "REG=1") {
		t.Fatalf("register: %v\n%s", err, out)
	}
	toml := readFile(t, bouncerTOML)
	if !strings.Contains(toml, "\napi_url = \"http://127.0.0.1:8181/\"\n") || strings.Contains(toml, `api_key = ""`) {
		t.Errorf("bouncer TOML after registration:\n%s", toml)
	}
	if st, _ := os.Stat(bouncerTOML); st.Mode().Perm() != 0o600 {
		t.Errorf("bouncer TOML has mode %v, want 0600", st.Mode().Perm())
	}
	check, err := exec.Command(filepath.Join(bin, "crowdsec-firewall-bouncer"), "-c", bouncerTOML, "-t").CombinedOutput()
	if err != nil || !strings.Contains(string(check), "mode iptables") {
		t.Errorf("bouncer -t after registration: %v\n%s", err, check)
	}
	list := run(t, filepath.Join(bin, "cscli"), "-c", filepath.Join(dir, "config.toml"), "bouncers", "list", "-o", "raw")
	if !strings.Contains(list, "crowdsec-firewall-bouncer") {
		t.Errorf("bouncers list:\n%s", list)
	}

	// A second run (an upgrade, or the other package's postinst) keeps the key.
	out, err = shell(t, dir, "register_bouncer; echo REG=$BOUNCER_REGISTERED")
	if err != nil || !strings.Contains(out, "REG=0") || readFile(t, bouncerTOML) != toml {
		t.Errorf("second run changed things: %v\n%s", err, out)
	}

	// An emptied key (crowdsec purged and reinstalled) is replaced.
	if err := os.WriteFile(bouncerTOML, []byte(strings.Replace(toml, "\napi_key = \"", "\napi_key = \"\"\n#\"", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = shell(t, dir, "register_bouncer; echo REG=$BOUNCER_REGISTERED")
	if err != nil || !strings.Contains(out, "REG=1") {
		t.Fatalf("re-register: %v\n%s", err, out)
	}
	if _, err := exec.Command(filepath.Join(bin, "crowdsec-firewall-bouncer"), "-c", bouncerTOML, "-t").CombinedOutput(); err != nil {
		t.Errorf("bouncer -t after re-registration: %v", err)
	}
}

func TestLAPIURL(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ conf, want string }{
		{"[api.server]\nlisten_uri = \"127.0.0.1:8080\"\n", "http://127.0.0.1:8080/"},
		{"[api.server]\nlisten_uri = \"0.0.0.0:9000\" # all\n", "http://127.0.0.1:9000/"},
		{"[api.server]\nlisten_uri = \"[::]:9000\"\n", "http://[::1]:9000/"},
		{"[api.server]\nlisten_uri = \":9000\"\n", "http://127.0.0.1:9000/"},
		{"[api.client]\nlisten_uri = \"10.0.0.1:1\"\n", "http://127.0.0.1:8080/"},
		{"[api.server]\nlisten_uri = \"10.1.2.3:8443\"\n  [api.server.tls]\n  cert_file = \"/etc/crowdsec/ssl/cert.pem\"\n", "https://10.1.2.3:8443/"},
		{"[api.server]\nlisten_uri = \"10.1.2.3:8443\"\n  [api.server.tls]\n  # cert_file = \"/x\"\n", "http://10.1.2.3:8443/"},
		{"[api.server]\nenable = false\n", "FAIL"},
	} {
		if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(c.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		snippet := filepath.Join(repoRoot, "packaging", "common", "bouncer-key.sh")
		out, _ := exec.Command("sh", "-c", fmt.Sprintf(". %q; CS_CONFIG=%q; lapi_url || echo FAIL", snippet, filepath.Join(dir, "config.toml"))).CombinedOutput()
		if got := strings.TrimSpace(string(out)); got != c.want {
			t.Errorf("lapi_url for\n%s= %q, want %q", c.conf, got, c.want)
		}
	}
}

// TestCredsURL: the postinsts read the LAPI URL of the machine
// credentials as cscli writes them (url, or urls for several LAPIs).
func TestCredsURL(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ creds, want string }{
		{"url = \"https://10.0.0.1:8080/\"\nlogin = \"a\"\npassword = \"urls = x\"\n", "https://10.0.0.1:8080/"},
		{"urls = [\"https://10.0.0.1:8080/\", \"https://10.0.0.2:8080/\"]\nlogin = \"a\"\n", "https://10.0.0.1:8080/"},
		{"login = \"a\"\nurls = [\n  \"https://10.0.0.3:8080/\",\n  \"https://10.0.0.2:8080/\",\n]\n", "https://10.0.0.3:8080/"},
		{"login = \"a\"\n", ""},
	} {
		path := filepath.Join(dir, "creds.toml")
		if err := os.WriteFile(path, []byte(c.creds), 0o600); err != nil {
			t.Fatal(err)
		}
		snippet := filepath.Join(repoRoot, "packaging", "common", "bouncer-key.sh")
		out, err := exec.Command("sh", "-c", fmt.Sprintf(". %q; CS_CREDS=%q; creds_url", snippet, path)).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != c.want {
			t.Errorf("creds_url for\n%s= %q (%v), want %q", c.creds, got, err, c.want)
		}
	}
}

// sandbox is a package "installed" by extraction under a temporary root,
// with maintainer scripts whose absolute paths are moved under that root
// and stubs for systemctl, nft, iptables, dpkg-query and the bouncer's
// -flush: the scripts' logic runs for real, and nothing outside the root
// (services, the firewall, /etc) is touched.
type sandbox struct {
	t       *testing.T
	root    string
	stubs   string
	log     string // one line per stubbed call
	scripts map[string]string
	env     []string
}

var unrewritten = regexp.MustCompile(`(^|[\s"'=(])/(etc|var|usr|run|lib|bin|sbin)/`)

func newSandbox(t *testing.T, debs []string) *sandbox {
	t.Helper()
	s := &sandbox{t: t, root: t.TempDir(), stubs: t.TempDir(), scripts: map[string]string{}}
	s.log = filepath.Join(s.stubs, "calls.log")
	stub := func(name, body string) {
		if err := os.WriteFile(filepath.Join(s.stubs, name), []byte("#!/bin/sh\necho \""+name+" $*\" >>"+s.log+"\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stub("systemctl", "case \"$*\" in *is-active*) exit ${CS_ACTIVE_RC:-0} ;; esac\nexit 0\n")
	stub("nft", "exit ${NFT_RC:-0}\n")
	stub("iptables", "exit 0\n")
	stub("dpkg-query", "echo \"${BOUNCER_STATUS:-not-installed}\"\n")
	s.env = append(os.Environ(), "PATH="+s.stubs+":"+os.Getenv("PATH"))
	if err := os.MkdirAll(filepath.Join(s.root, "run", "systemd", "system"), 0o755); err != nil {
		t.Fatal(err)
	}
	rw := strings.NewReplacer(
		"/etc/crowdsec", s.root+"/etc/crowdsec",
		"/etc/systemd/system", s.root+"/etc/systemd/system",
		"/var/lib/crowdsec", s.root+"/var/lib/crowdsec",
		"/var/log/", s.root+"/var/log/",
		"/run/systemd/system", s.root+"/run/systemd/system",
		"/run/crowdsec", s.root+"/run/crowdsec",
		"/usr/bin/", s.root+"/usr/bin/",
	)
	for _, deb := range debs {
		pkg := strings.SplitN(filepath.Base(deb), "_", 2)[0]
		control := extractControl(t, deb)
		for _, n := range []string{"preinst", "postinst", "prerm", "postrm"} {
			text := rw.Replace(readFile(t, filepath.Join(control, n)))
			for i, line := range strings.Split(text, "\n") {
				if l := strings.TrimSpace(line); !strings.HasPrefix(l, "#") && unrewritten.MatchString(l) {
					t.Fatalf("%s %s:%d keeps a system path, unsafe to run here: %s", pkg, n, i+1, l)
				}
			}
			p := filepath.Join(s.stubs, pkg+"."+n)
			if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
				t.Fatal(err)
			}
			s.scripts[pkg+"."+n] = p
		}
	}
	return s
}

// unpack extracts a package's files, as dpkg's unpack stage does.
func (s *sandbox) unpack(deb string) {
	s.t.Helper()
	run(s.t, "dpkg-deb", "-x", deb, s.root)
	if strings.HasPrefix(filepath.Base(deb), "crowdsec_") {
		p := filepath.Join(s.root, "etc", "crowdsec", "config.toml")
		// /etc/crowdsec/hub links to /usr/share/crowdsec/hub, outside the root
		cfg := strings.NewReplacer("/etc/crowdsec/hub/", s.root+"/usr/share/crowdsec/hub/", "/etc/crowdsec/", s.root+"/etc/crowdsec/", "/var/lib/crowdsec/", s.root+"/var/lib/crowdsec/").Replace(readFile(s.t, p))
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			s.t.Fatal(err)
		}
		return
	}
	// -t runs the real bouncer; -flush only leaves a trace.
	bin := filepath.Join(s.root, "usr", "bin", "crowdsec-firewall-bouncer")
	real := filepath.Join(s.stubs, "real-bouncer")
	if err := os.Rename(bin, real); err != nil {
		s.t.Fatal(err)
	}
	wrapper := "#!/bin/sh\ncase \"$*\" in *-flush*) echo \"bouncer $*\" >>" + s.log + "; exit 0 ;; esac\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(bin, []byte(wrapper), 0o755); err != nil {
		s.t.Fatal(err)
	}
}

// script runs one maintainer script and returns its output; calls holds
// the stubbed calls it made.
func (s *sandbox) script(name string, env []string, args ...string) (out string, calls []string) {
	s.t.Helper()
	os.Remove(s.log)
	cmd := exec.Command("sh", append([]string{s.scripts[name]}, args...)...)
	cmd.Env = append(append([]string{}, s.env...), env...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s %v: %v\n%s", name, args, err, b)
	}
	if l, err := os.ReadFile(s.log); err == nil {
		calls = strings.Split(strings.TrimSpace(string(l)), "\n")
	}
	return string(b), calls
}

func (s *sandbox) path(p string) string { return filepath.Join(s.root, p) }

func hasCall(calls []string, want string) bool {
	for _, c := range calls {
		if c == want {
			return true
		}
	}
	return false
}

func bouncerKey(t *testing.T, toml string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^api_key = "(.*)"$`).FindStringSubmatch(toml)
	if m == nil {
		t.Fatalf("no api_key line in\n%s", toml)
	}
	return m[1]
}

// buildForSandbox builds the packages once for every sandbox test: each
// only reads them.
func buildForSandbox(t *testing.T) (crowdsecDeb, bouncerDeb string) {
	t.Helper()
	needDpkgDeb(t)
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("package test runs on amd64 and arm64")
	}
	units, bin := unitDir(t), binaries(t)
	sandboxDebs.once.Do(func() {
		out := filepath.Join(tmpRoot, "sandbox-debs")
		sandboxDebs.paths, sandboxDebs.err = Build(Options{Root: repoRoot, UnitDir: units, BinDir: bin, OutDir: out,
			Version: "1.0.0", Arch: runtime.GOARCH, MTime: time.Unix(1764107165, 0)})
	})
	if sandboxDebs.err != nil {
		t.Fatal(sandboxDebs.err)
	}
	return sandboxDebs.paths[0], sandboxDebs.paths[1]
}

// sandboxDebs are the packages buildForSandbox built.
var sandboxDebs struct {
	once  sync.Once
	paths []string
	err   error
}

// TestLifecycleCrowdsecFirst: crowdsec configured, then the bouncer (which
// registers itself), upgrades of both, removal and purge of both.
func TestLifecycleCrowdsecFirst(t *testing.T) {
	csDeb, bDeb := buildForSandbox(t)
	s := newSandbox(t, []string{csDeb, bDeb})
	creds := s.path("etc/crowdsec/local_api_credentials.toml")
	btoml := s.path("etc/crowdsec/bouncers/crowdsec-firewall-bouncer.toml")
	cscli := func(args ...string) string {
		return run(t, s.path("usr/bin/cscli"), append([]string{"-c", s.path("etc/crowdsec/config.toml")}, args...)...)
	}

	s.unpack(csDeb)
	out, calls := s.script("crowdsec.postinst", nil, "configure", "")
	t.Logf("crowdsec postinst (first install):\n%s", out)
	if st, err := os.Stat(creds); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials after postinst: %v %v\n%s", st, err, out)
	}
	if st, err := os.Stat(s.path("var/lib/crowdsec/data")); err != nil || st.Mode().Perm() != 0o750 {
		t.Errorf("data dir: %v %v", st, err)
	}
	if !hasCall(calls, "systemctl enable crowdsec.service") || !hasCall(calls, "systemctl daemon-reload") {
		t.Errorf("crowdsec postinst calls: %q", calls)
	}
	// Started whatever cscli setup found: the LAPI serves the bouncer
	// without local logs.
	sources, _ := filepath.Glob(s.path("etc/crowdsec/acquis.d/*.toml"))
	if !hasCall(calls, "systemctl start crowdsec.service") {
		t.Errorf("crowdsec not started (log sources %v)\n%s", sources, out)
	}
	if len(sources) == 0 && !strings.Contains(out, "no log source") {
		t.Errorf("no message about missing log sources:\n%s", out)
	}
	firstCreds := readFile(t, creds)

	s.unpack(bDeb)
	// crowdsec is not running (its start failed): the bouncer, whose
	// first sync would wait for it, is not started.
	out, calls = s.script("crowdsec-firewall-bouncer.postinst", []string{"CS_ACTIVE_RC=3"}, "configure", "")
	toml := readFile(t, btoml)
	key := bouncerKey(t, toml)
	if key == "" || !strings.Contains(toml, "\nmode = \"nftables\"\n") || !strings.Contains(toml, "\napi_url = \"http://127.0.0.1:8080/\"\n") {
		t.Fatalf("bouncer TOML after its postinst:\n%s\n%s", toml, out)
	}
	if st, _ := os.Stat(btoml); st.Mode().Perm() != 0o600 {
		t.Errorf("bouncer TOML mode %v", st.Mode().Perm())
	}
	for _, c := range []string{"nft list tables", "systemctl enable crowdsec-firewall-bouncer.service", "systemctl --quiet is-active crowdsec.service"} {
		if !hasCall(calls, c) {
			t.Errorf("bouncer postinst did not call %q: %q\n%s", c, calls, out)
		}
	}
	if hasCall(calls, "systemctl start crowdsec-firewall-bouncer.service") || !strings.Contains(out, "local API (crowdsec) is not running") {
		t.Errorf("bouncer started without its local API: %q\n%s", calls, out)
	}
	if !strings.Contains(cscli("bouncers", "list", "-o", "raw"), "crowdsec-firewall-bouncer") {
		t.Error("bouncer not registered")
	}

	// Upgrades: nothing regenerated, services restarted only if running.
	_, calls = s.script("crowdsec.postinst", nil, "configure", "0.9")
	if readFile(t, creds) != firstCreds || !hasCall(calls, "systemctl try-restart crowdsec.service") || hasCall(calls, "systemctl enable crowdsec.service") {
		t.Errorf("crowdsec upgrade: calls %q", calls)
	}
	_, calls = s.script("crowdsec-firewall-bouncer.postinst", nil, "configure", "0.9")
	if readFile(t, btoml) != toml || !hasCall(calls, "systemctl try-restart crowdsec-firewall-bouncer.service") || hasCall(calls, "nft list tables") {
		t.Errorf("bouncer upgrade: calls %q", calls)
	}
	_, calls = s.script("crowdsec-firewall-bouncer.prerm", nil, "upgrade", "1.1")
	if len(calls) != 0 {
		t.Errorf("bouncer prerm upgrade made calls %q", calls)
	}

	// Removal of the bouncer flushes its objects; purge forgets its key.
	_, calls = s.script("crowdsec-firewall-bouncer.prerm", nil, "remove")
	if !hasCall(calls, "systemctl stop crowdsec-firewall-bouncer.service") || !hasCall(calls, "bouncer -c "+btoml+" -flush") {
		t.Errorf("bouncer prerm remove: calls %q", calls)
	}
	// Reinstalled with its configuration kept: started again (an upgrade
	// would only try-restart).
	s.script("crowdsec-firewall-bouncer.postrm", nil, "remove")
	s.script("crowdsec-firewall-bouncer.preinst", nil, "install", "1.0.0")
	_, calls = s.script("crowdsec-firewall-bouncer.postinst", nil, "configure", "1.0.0")
	if !hasCall(calls, "systemctl start crowdsec-firewall-bouncer.service") || readFile(t, btoml) != toml {
		t.Errorf("bouncer reinstall: calls %q", calls)
	}
	if _, err := os.Stat(s.path("run/crowdsec-firewall-bouncer.dpkg-reinstall")); err == nil {
		t.Error("reinstall mark left behind")
	}
	_, calls = s.script("crowdsec-firewall-bouncer.preinst", nil, "upgrade", "1.0.0")
	_, calls = s.script("crowdsec-firewall-bouncer.postinst", nil, "configure", "1.0.0")
	if hasCall(calls, "systemctl start crowdsec-firewall-bouncer.service") {
		t.Errorf("bouncer upgrade started it: calls %q", calls)
	}
	s.script("crowdsec-firewall-bouncer.prerm", nil, "remove")

	if err := os.Remove(btoml); err != nil { // dpkg deletes conffiles before postrm purge
		t.Fatal(err)
	}
	s.script("crowdsec-firewall-bouncer.postrm", nil, "purge")
	if strings.Contains(cscli("bouncers", "list", "-o", "raw"), "crowdsec-firewall-bouncer") {
		t.Error("bouncer still registered after purge")
	}
	if _, err := os.Stat(s.path("etc/crowdsec/bouncers")); err == nil {
		t.Error("empty bouncers/ left after purge")
	}

	_, calls = s.script("crowdsec.prerm", nil, "remove")
	if !hasCall(calls, "systemctl stop crowdsec.service") {
		t.Errorf("crowdsec prerm remove: calls %q", calls)
	}
	s.script("crowdsec.postrm", nil, "purge")
	for _, p := range []string{"etc/crowdsec", "var/lib/crowdsec"} {
		if _, err := os.Stat(s.path(p)); err == nil {
			t.Errorf("%s left after purge", p)
		}
	}
}

// TestLifecycleBouncerFirst: the bouncer configured first on a kernel
// without nftables, then crowdsec, which registers it and starts it; then
// crowdsec is purged while the bouncer stays.
func TestLifecycleBouncerFirst(t *testing.T) {
	csDeb, bDeb := buildForSandbox(t)
	s := newSandbox(t, []string{csDeb, bDeb})
	btoml := s.path("etc/crowdsec/bouncers/crowdsec-firewall-bouncer.toml")

	s.unpack(bDeb)
	s.unpack(csDeb) // unpacked, not configured: no credentials yet
	out, calls := s.script("crowdsec-firewall-bouncer.postinst", []string{"NFT_RC=1"}, "configure", "")
	toml := readFile(t, btoml)
	if bouncerKey(t, toml) != "" || !strings.Contains(toml, "\nmode = \"iptables\"\n") {
		t.Fatalf("bouncer TOML before crowdsec:\n%s\n%s", toml, out)
	}
	if hasCall(calls, "systemctl start crowdsec-firewall-bouncer.service") || !strings.Contains(out, "enabled but not started") || !strings.Contains(out, "LAPI key") {
		t.Errorf("bouncer without a key: calls %q\n%s", calls, out)
	}

	source := "[[source]]\nsource = \"file\"\nfilenames = [\"/var/log/auth.log\"]\nlabels = { type = \"syslog\" }\n"
	if err := os.WriteFile(s.path("etc/crowdsec/acquis.d/mine.toml"), []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	out, calls = s.script("crowdsec.postinst", nil, "configure", "")
	if !hasCall(calls, "systemctl start crowdsec.service") {
		t.Errorf("crowdsec with a log source not started: %q\n%s", calls, out)
	}
	toml = readFile(t, btoml)
	if bouncerKey(t, toml) == "" || !strings.Contains(toml, "\nmode = \"iptables\"\n") {
		t.Fatalf("bouncer TOML after crowdsec:\n%s\n%s", toml, out)
	}
	if !hasCall(calls, "systemctl restart crowdsec-firewall-bouncer.service") {
		t.Errorf("crowdsec postinst did not start the waiting bouncer: %q\n%s", calls, out)
	}
	check, err := exec.Command(s.path("usr/bin/crowdsec-firewall-bouncer"), "-c", btoml, "-t").CombinedOutput()
	if err != nil {
		t.Errorf("bouncer -t: %v\n%s", err, check)
	}

	// Purging crowdsec keeps the installed bouncer's TOML, with its key
	// (registered in the deleted database) emptied for the next install.
	s.script("crowdsec.prerm", nil, "remove")
	s.script("crowdsec.postrm", []string{"BOUNCER_STATUS=installed"}, "purge")
	left, _ := filepath.Glob(s.path("etc/crowdsec/*"))
	if len(left) != 1 || filepath.Base(left[0]) != "bouncers" {
		t.Errorf("after crowdsec purge /etc/crowdsec holds %v", left)
	}
	if bouncerKey(t, readFile(t, btoml)) != "" {
		t.Error("bouncer key not emptied by crowdsec purge")
	}
	if _, err := os.Stat(s.path("var/lib/crowdsec")); err == nil {
		t.Error("/var/lib/crowdsec left after purge")
	}

	// Its removal still flushes, with a stand-in key.
	_, calls = s.script("crowdsec-firewall-bouncer.prerm", nil, "remove")
	flushed := false
	for _, c := range calls {
		flushed = flushed || (strings.HasPrefix(c, "bouncer -c ") && strings.HasSuffix(c, " -flush"))
	}
	if !flushed {
		t.Errorf("bouncer prerm without a key did not flush: %q", calls)
	}
}

// TestLifecycleAgentOnly: hosts whose agent reports to a LAPI elsewhere.
// With [api.server] enable = false and no credentials, crowdsec's postinst
// creates no machine and no database, says how to register with the LAPI
// host, and does not start the agent; the registration's remote credentials
// survive upgrades; the bouncer's postinst, unable to reach that LAPI,
// says what to run there and what to write here, without failing. The
// same holds when the credentials name a remote LAPI while the local API
// is still enabled.
func TestLifecycleAgentOnly(t *testing.T) {
	csDeb, bDeb := buildForSandbox(t)
	s := newSandbox(t, []string{csDeb, bDeb})
	cfgPath := s.path("etc/crowdsec/config.toml")
	creds := s.path("etc/crowdsec/local_api_credentials.toml")
	db := s.path("var/lib/crowdsec/data/crowdsec.db")
	btoml := s.path("etc/crowdsec/bouncers/crowdsec-firewall-bouncer.toml")
	setAPI := func(enable string) {
		t.Helper()
		re := regexp.MustCompile(`(?m)^(\[api\.server\]\n(?:#.*\n)*)enable = \w+\n`)
		cfg := re.ReplaceAllString(readFile(t, cfgPath), "${1}enable = "+enable+"\n")
		if m := re.FindStringSubmatch(cfg); m == nil || !strings.HasSuffix(m[0], "enable = "+enable+"\n") {
			t.Fatalf("config.toml has no [api.server] enable line to set:\n%s", cfg)
		}
		must(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	}
	noDatabase := func(when string) {
		t.Helper()
		if _, err := os.Stat(db); !os.IsNotExist(err) {
			t.Errorf("%s: a local database exists (%v)", when, err)
		}
	}

	// A configuration management tool wrote config.toml before the install.
	s.unpack(csDeb)
	setAPI("false")
	out, calls := s.script("crowdsec.postinst", nil, "configure", "")
	t.Logf("crowdsec postinst (agent-only, first install):\n%s", out)
	if _, err := os.Stat(creds); !os.IsNotExist(err) {
		t.Errorf("agent-only first install wrote credentials: %v", err)
	}
	noDatabase("agent-only first install")
	for _, want := range []string{"cscli lapi register --url https://", "cscli machines validate", "not started until this agent is registered"} {
		if !strings.Contains(out, want) {
			t.Errorf("crowdsec postinst does not say %q:\n%s", want, out)
		}
	}
	if !hasCall(calls, "systemctl enable crowdsec.service") || hasCall(calls, "systemctl start crowdsec.service") {
		t.Errorf("agent-only without credentials: calls %q", calls)
	}

	// The bouncer: no local API to get a key from.
	s.unpack(bDeb)
	out, calls = s.script("crowdsec-firewall-bouncer.postinst", nil, "configure", "")
	t.Logf("bouncer postinst (agent-only, unregistered):\n%s", out)
	if !strings.Contains(out, "this host has no local API") || !strings.Contains(out, "cscli bouncers add crowdsec-firewall-bouncer-") ||
		!strings.Contains(out, "api_key = \"<the key printed by step 1>\"") || strings.Contains(out, "Installing crowdsec fills in") {
		t.Errorf("bouncer postinst on an agent-only host:\n%s", out)
	}
	if bouncerKey(t, readFile(t, btoml)) != "" || hasCall(calls, "systemctl start crowdsec-firewall-bouncer.service") {
		t.Errorf("bouncer got a key or was started: calls %q", calls)
	}
	noDatabase("bouncer postinst on an agent-only host")

	// Credentials for a local API the configuration disables: said so.
	must(t, os.WriteFile(creds, []byte("url = \"http://127.0.0.1:8080/\"\nlogin = \"x\"\npassword = \"y\"\n"), 0o600))
	if out, _ = s.script("crowdsec.postinst", nil, "configure", "1.0.0"); !strings.Contains(out, "names this host's local API") {
		t.Errorf("local credentials on an agent-only host:\n%s", out)
	}

	// `cscli lapi register --url https://10.0.0.1:8080/ --ca-cert ...` ran.
	remote := "url = \"https://10.0.0.1:8080/\"\nlogin = \"web1\"\npassword = \"secret\"\nca_cert_path = \"/etc/crowdsec/ssl/ca.pem\"\n"
	must(t, os.WriteFile(creds, []byte(remote), 0o600))
	must(t, os.WriteFile(s.path("etc/crowdsec/acquis.d/auth.toml"), []byte("[[source]]\nsource = \"file\"\nfilenames = [\"/var/log/auth.log\"]\nlabels = { type = \"syslog\" }\n"), 0o644))
	out, calls = s.script("crowdsec.postinst", nil, "configure", "1.0.0")
	if readFile(t, creds) != remote || !hasCall(calls, "systemctl try-restart crowdsec.service") || strings.Contains(out, "serves no one") {
		t.Errorf("agent-only upgrade: calls %q\n%s", calls, out)
	}
	noDatabase("agent-only upgrade")
	out, _ = s.script("crowdsec-firewall-bouncer.postinst", nil, "configure", "1.0.0")
	for _, want := range []string{"api_url = \"https://10.0.0.1:8080/\"", "ca_cert_path = \"/etc/crowdsec/ssl/ca.pem\"", "systemctl restart crowdsec-firewall-bouncer"} {
		if !strings.Contains(out, want) {
			t.Errorf("bouncer postinst after registration does not say %q:\n%s", want, out)
		}
	}

	// The local API left enabled beside remote credentials: still no local
	// machine, database or bouncer key, and a hint to disable it.
	setAPI("true")
	out, _ = s.script("crowdsec.postinst", nil, "configure", "1.0.0")
	if readFile(t, creds) != remote || !strings.Contains(out, "reports to the LAPI at https://10.0.0.1:8080/") {
		t.Errorf("remote credentials with the local API enabled:\n%s", out)
	}
	out, _ = s.script("crowdsec-firewall-bouncer.postinst", nil, "configure", "1.0.0")
	if bouncerKey(t, readFile(t, btoml)) != "" || !strings.Contains(out, "reports to another host: the bouncer's API key must come from the LAPI at https://10.0.0.1:8080/") {
		t.Errorf("bouncer with remote credentials:\n%s", out)
	}
	noDatabase("remote credentials, local API enabled")

	// The administrator followed the instructions: an upgrade keeps the
	// key, and removing crowdsec does not claim the bouncer lost its feed.
	configured := strings.NewReplacer("api_url = \"http://127.0.0.1:8080/\"", "api_url = \"https://10.0.0.1:8080/\"",
		"api_key = \"\"", "api_key = \"remote-key\"").Replace(readFile(t, btoml))
	must(t, os.WriteFile(btoml, []byte(configured), 0o600))
	out, _ = s.script("crowdsec-firewall-bouncer.postinst", nil, "configure", "1.0.0")
	if readFile(t, btoml) != configured || strings.Contains(out, "cscli bouncers add") {
		t.Errorf("bouncer upgrade with a remote key:\n%s\n%s", out, readFile(t, btoml))
	}
	out, _ = s.script("crowdsec.prerm", nil, "remove")
	if strings.Contains(out, "gets no new ones") {
		t.Errorf("crowdsec prerm on a host whose bouncer has no local LAPI:\n%s", out)
	}
}
