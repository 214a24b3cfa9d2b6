package cscli

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/agent/daemon"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/testhub"
)

// hubEnv is cscli over a configuration folder and a writable copy of
// Rampart's rules as its hub folder.
type hubEnv struct {
	*opsEnv
	conf, hubDir string
	collections  string // crowdsec_service.collections, TOML
}

func newHubEnv(t *testing.T, collections string) *hubEnv {
	t.Helper()
	e := &hubEnv{opsEnv: newOpsEnv(t, "127.0.0.1:8080"), collections: collections}
	e.conf = filepath.Join(e.dir, "etc")
	e.hubDir = filepath.Join(e.conf, "hub")
	copyTree(t, "../rules", e.hubDir)
	acquis := filepath.Join(e.conf, "acquis.d")
	if err := os.MkdirAll(acquis, 0o755); err != nil {
		t.Fatal(err)
	}
	src := "[[source]]\nsource = \"file\"\nfilenames = [" + strconv.Quote(filepath.Join(e.dir, "auth.log")) + "]\nlabels = { type = \"syslog\" }\n"
	if err := os.WriteFile(filepath.Join(acquis, "a.toml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(e.cfgPath)
	head := "[config_paths]\nconfig_dir = " + strconv.Quote(e.conf) + "\ndata_dir = " + strconv.Quote(filepath.Join(e.dir, "data")) +
		"\nhub_dir = " + strconv.Quote(e.hubDir) + "\n\n[crowdsec_service]\nacquisition_dir = " + strconv.Quote(acquis) +
		"\ncollections = " + collections + "\n\n"
	if err := os.WriteFile(e.cfgPath, append([]byte(head), cfg...), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// copyTree copies the regular files under src to dst, leaving out dot
// folders (the hub tests) and Go files.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && rel != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || strings.HasSuffix(p, ".go") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// states runs `cscli hub list -a -o json`: kind -> name -> status and
// local version.
func (e *hubEnv) states() map[string]map[string][2]string {
	e.t.Helper()
	out, _ := e.mustRun("hub", "list", "-a", "-o", "json")
	var got map[string][]map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		e.t.Fatalf("hub list -o json: %v\n%s", err, out)
	}
	res := map[string]map[string][2]string{}
	for kind, items := range got {
		res[kind] = map[string][2]string{}
		for _, it := range items {
			res[kind][it["name"]] = [2]string{it["status"], it["local_version"]}
		}
	}
	return res
}

func (e *hubEnv) want(kind, name, status, version string) {
	e.t.Helper()
	if got := e.states()[kind][name]; got != [2]string{status, version} {
		e.t.Errorf("%s %s: %q version %q, want %q version %q", kind, name, got[0], got[1], status, version)
	}
}

// scenarios is what the daemon loads, by the code `crowdsec -t` runs.
func (e *hubEnv) scenarios() int {
	e.t.Helper()
	cfg, err := csconfig.Load(e.cfgPath)
	if err != nil {
		e.t.Fatal(err)
	}
	n, _, err := daemon.Check(cfg)
	if err != nil {
		e.t.Fatalf("the daemon does not load the rules: %v", err)
	}
	return n
}

func (e *hubEnv) put(rel, body string) {
	e.t.Helper()
	p := filepath.Join(e.conf, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A fresh install: the configuration's four collections, their parsers
// and scenarios are listed as what runs (the list was empty).
func TestHubListShowsConfiguredCollections(t *testing.T) {
	e := newHubEnv(t, `["rampart/linux", "rampart/sshd", "rampart/nginx", "rampart/base-http"]`)
	st := e.states()
	for _, c := range []string{"rampart/linux", "rampart/sshd", "rampart/nginx", "rampart/base-http"} {
		if st["collections"][c][0] != "enabled" {
			t.Errorf("collection %s: %q", c, st["collections"][c][0])
		}
	}
	for kind, names := range map[string][]string{"parsers": {"rampart/sshd-logs", "rampart/syslog-logs"}, "scenarios": {"rampart/ssh-bf", "rampart/http-probing"}} {
		for _, n := range names {
			if st[kind][n] != [2]string{"enabled", "0.1"} {
				t.Errorf("%s %s: %v", kind, n, st[kind][n])
			}
		}
	}
	out, _ := e.mustRun("collections", "list")
	if !strings.Contains(out, "rampart/sshd") || strings.Contains(out, "disabled") {
		t.Errorf("collections list:\n%s", out)
	}
	// removing one the configuration enables says where to do it
	if _, _, err := e.run("", "collections", "remove", "rampart/sshd"); err == nil || !strings.Contains(err.Error(), "crowdsec_service.collections") {
		t.Errorf("remove of a configured collection: %v", err)
	}

	// crowdsecurity/sshd beside rampart/sshd: two items, neither tainted
	shared := testhub.Dir(t)
	before := e.scenarios()
	e.mustRun("collections", "install", "crowdsecurity/sshd", "--hub", shared)
	e.want("collections", "crowdsecurity/sshd", "enabled", "0.9")
	e.want("collections", "rampart/sshd", "enabled", "0.1")
	e.want("parsers", "crowdsecurity/sshd-logs", "enabled", "3.1")
	e.want("parsers", "rampart/sshd-logs", "enabled", "0.1")
	if after := e.scenarios(); after <= before {
		t.Errorf("the daemon loads %d scenarios after installing crowdsecurity/sshd, %d before", after, before)
	}
}

// Items put in place by hand load and list with upstream's states;
// update-available after a hub update, and upgrade applies, leaving the
// tainted item unless --force.
func TestHubStatesUpdateUpgrade(t *testing.T) {
	e := newHubEnv(t, `["rampart/linux"]`)
	base := e.scenarios()
	if base != 0 {
		t.Fatalf("rampart/linux alone loads %d scenarios", base)
	}
	// a parser and two scenarios installed by hand, upstream's flat way
	copyRule := func(from, to string) {
		t.Helper()
		e.put(to, read(t, filepath.Join(e.hubDir, from)))
	}
	copyRule("parsers/s01-parse/rampart/sshd-logs.yaml", "parsers/s01-parse/sshd-logs.yaml")
	copyRule("scenarios/rampart/ssh-bf.yaml", "scenarios/ssh-bf.yaml")
	copyRule("scenarios/rampart/ssh-user-enum.yaml", "scenarios/ssh-user-enum.yaml")
	e.put("scenarios/me/ssh-any.yaml", "type: trigger\nname: me/ssh-any\ndescription: any failed login\n"+
		"filter: \"evt.Meta.log_type == 'ssh_failed-auth'\"\ngroupby: evt.Meta.source_ip\nblackhole: 1m\nlabels:\n  remediation: true\n")
	if n := e.scenarios(); n != 3 {
		t.Errorf("the daemon loads %d scenarios, want the 3 in place", n)
	}
	// and one installed by cscli: a symlink into the hub folder
	e.mustRun("scenarios", "install", "rampart/ssh-probing")
	probing := filepath.Join(e.conf, "scenarios/rampart/ssh-probing.yaml")
	if fi, err := os.Lstat(probing); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("ssh-probing is not installed as a symlink: %v", err)
	}
	if n := e.scenarios(); n != 4 {
		t.Errorf("the daemon loads %d scenarios, want 4", n)
	}
	e.want("parsers", "rampart/sshd-logs", "enabled", "0.1")
	e.want("scenarios", "rampart/ssh-bf", "enabled", "0.1")
	e.want("scenarios", "me/ssh-any", "enabled,local", "")
	e.want("scenarios", "rampart/http-probing", "disabled", "")
	e.want("collections", "rampart/linux", "enabled", "0.1")

	// an administrator's edit taints the item; it still loads
	bf := filepath.Join(e.conf, "scenarios/ssh-bf.yaml")
	e.put("scenarios/ssh-bf.yaml", read(t, bf)+"# tuned here\n")
	e.want("scenarios", "rampart/ssh-bf", "enabled,tainted", "")
	if n := e.scenarios(); n != 4 {
		t.Errorf("the daemon loads %d scenarios with one tainted", n)
	}

	// a newer hub: sshd-logs and ssh-bf at 0.2, as an archive
	newHub := filepath.Join(e.dir, "newhub", "hub-master")
	copyTree(t, e.hubDir, newHub)
	idx := map[string]map[string]map[string]any{}
	if err := json.Unmarshal([]byte(read(t, filepath.Join(newHub, "index.json"))), &idx); err != nil {
		t.Fatal(err)
	}
	for _, kn := range [][2]string{{"parsers", "rampart/sshd-logs"}, {"scenarios", "rampart/ssh-bf"}, {"scenarios", "rampart/ssh-probing"}, {"parsers", "rampart/syslog-logs"}} {
		it := idx[kn[0]][kn[1]]
		p := filepath.Join(newHub, it["path"].(string))
		if err := os.WriteFile(p, []byte(read(t, p)+"# 0.2: better\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		it["version"] = "0.2"
		delete(it, "versions") // no digests: update computes them
	}
	b, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(newHub, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(e.dir, "hub-master.tar.gz")
	writeTarGz(t, filepath.Join(e.dir, "newhub"), archive)
	out, _ := e.mustRun("hub", "update", "--from", archive)
	if !strings.Contains(out, "new version parsers/rampart/sshd-logs: 0.1 -> 0.2") || !strings.Contains(out, "can be upgraded") {
		t.Errorf("hub update:\n%s", out)
	}
	e.want("parsers", "rampart/sshd-logs", "enabled,update-available", "0.1")
	e.want("scenarios", "rampart/ssh-bf", "enabled,tainted", "")
	e.want("scenarios", "rampart/ssh-user-enum", "enabled", "0.1")
	e.want("scenarios", "me/ssh-any", "enabled,local", "")
	// what runs does not change before the upgrade, linked or not
	e.want("scenarios", "rampart/ssh-probing", "enabled,update-available", "0.1")
	e.want("parsers", "rampart/syslog-logs", "enabled,update-available", "0.1") // by crowdsec_service.collections
	if strings.Contains(read(t, probing), "# 0.2") {
		t.Error("hub update changed an installed item")
	}
	out, _ = e.mustRun("hub", "update", "--from", archive)
	if !strings.Contains(out, "Nothing to do") {
		t.Errorf("second hub update:\n%s", out)
	}

	// one item alone
	out, _ = e.mustRun("scenarios", "upgrade", "rampart/ssh-probing")
	if !strings.Contains(out, "scenarios: rampart/ssh-probing (0.1 -> 0.2)") || strings.Contains(out, "sshd-logs") {
		t.Errorf("scenarios upgrade rampart/ssh-probing:\n%s", out)
	}
	e.want("scenarios", "rampart/ssh-probing", "enabled", "0.2")
	e.want("parsers", "rampart/sshd-logs", "enabled,update-available", "0.1")
	if _, _, err := e.run("", "scenarios", "upgrade", "rampart/http-probing"); err == nil {
		t.Error("upgrading an item that is not installed succeeded")
	}

	out, _ = e.mustRun("hub", "upgrade")
	if !strings.Contains(out, "parsers: rampart/sshd-logs (0.1 -> 0.2)") || !strings.Contains(out, "not upgraded\n scenarios: rampart/ssh-bf: tainted") {
		t.Errorf("hub upgrade:\n%s", out)
	}
	e.want("parsers", "rampart/sshd-logs", "enabled", "0.2")
	e.want("scenarios", "rampart/ssh-probing", "enabled", "0.2")
	e.want("parsers", "rampart/syslog-logs", "enabled", "0.2")
	if !strings.HasSuffix(read(t, probing), "# 0.2: better\n") {
		t.Error("the linked scenario is not the new version")
	}
	if got := read(t, filepath.Join(e.conf, "parsers/s01-parse/sshd-logs.yaml")); !strings.HasSuffix(got, "# 0.2: better\n") {
		t.Error("the installed parser is not the new version")
	}
	if !strings.HasSuffix(read(t, bf), "# tuned here\n") {
		t.Error("upgrade overwrote the tainted scenario without --force")
	}
	e.mustRun("hub", "upgrade", "--force")
	e.want("scenarios", "rampart/ssh-bf", "enabled", "0.2")
	if n := e.scenarios(); n != 4 {
		t.Errorf("the daemon loads %d scenarios after the upgrade", n)
	}
	out, _ = e.mustRun("hub", "upgrade")
	if !strings.Contains(out, "Nothing to do") {
		t.Errorf("upgrade with everything current:\n%s", out)
	}

	// inspect says the same as list
	out, _ = e.mustRun("parsers", "inspect", "rampart/sshd-logs", "-o", "json")
	var ins map[string]any
	if err := json.Unmarshal([]byte(out), &ins); err != nil || ins["status"] != "enabled" || ins["local_version"] != "0.2" ||
		ins["local_path"] != filepath.Join(e.conf, "parsers/s01-parse/sshd-logs.yaml") {
		t.Errorf("inspect: %v\n%s", err, out)
	}
}

// `hub update` without a source says how to give one, and refuses URLs
// it would have to download.
func TestHubUpdateSource(t *testing.T) {
	e := newHubEnv(t, `[]`)
	if _, _, err := e.run("", "hub", "update"); err == nil || !strings.Contains(err.Error(), "--from") {
		t.Errorf("hub update without a source: %v", err)
	}
	if _, _, err := e.run("", "hub", "update", "--from", "https://hub.example/index.json"); err == nil || !strings.Contains(err.Error(), "file://") {
		t.Errorf("hub update from https: %v", err)
	}
	if _, _, err := e.run("", "hub", "update", "--from", "file://"+filepath.Join(e.dir, "nope")); err == nil {
		t.Error("hub update from a missing folder succeeded")
	}
}

// writeTarGz packs dir's files (paths relative to dir) into a .tar.gz.
func writeTarGz(t *testing.T, dir, dst string) {
	t.Helper()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	for _, c := range []func() error{tw.Close, gz.Close, f.Close} {
		if cerr := c(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}
