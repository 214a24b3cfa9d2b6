package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestInstallCycleDebian12 installs, upgrades, removes and purges both
// packages for real with dpkg inside a Debian 12 root made by debootstrap.
// Services cannot run in a chroot; the maintainer scripts see no systemd
// and skip starting them. Every command in the root runs in a network
// namespace of its own, so what the scripts do to netfilter (probing
// nftables, -flush on remove) never reaches the host's firewall.
func TestInstallCycleDebian12(t *testing.T) {
	needDpkgDeb(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root (debootstrap, chroot, network namespaces)")
	}
	for _, tool := range []string{"debootstrap", "chroot", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("the Debian root is amd64")
	}
	bin := binaries(t)
	// The booted test's root (nftables included), unpacked afresh: one
	// debootstrap for both tests.
	root := debianRoot(t)

	var debs [2][]string
	for i, v := range []string{"0.1.0", "0.1.1"} {
		out := t.TempDir()
		paths, err := Build(Options{Root: repoRoot, UnitDir: unitDir(t), BinDir: bin, OutDir: out, Version: v,
			Arch: runtime.GOARCH, MTime: time.Unix(1764107165, 0)})
		must(t, err)
		for _, p := range paths {
			dst := filepath.Join("/tmp", v+"-"+filepath.Base(p))
			data, err := os.ReadFile(p)
			must(t, err)
			must(t, os.WriteFile(filepath.Join(root, dst), data, 0o644))
			debs[i] = append(debs[i], dst)
		}
	}

	ns := "rdeb-" + strings.ReplaceAll(filepath.Base(t.TempDir()), "0", "")
	if len(ns) > 15 {
		ns = ns[:15]
	}
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	_ = exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()
	in := func(args ...string) (string, error) {
		cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "chroot", root}, args...)...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LANG=C"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mustIn := func(args ...string) string {
		t.Helper()
		out, err := in(args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	path := func(p string) string { return filepath.Join(root, p) }
	bouncerTOML := "/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.toml"
	key := func() string {
		t.Helper()
		b, err := os.ReadFile(path(bouncerTOML))
		must(t, err)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "api_key = "); ok {
				return strings.Trim(v, `"`)
			}
		}
		return ""
	}

	// install, the bouncer first: whichever is configured second registers it
	mustIn("dpkg", "-i", debs[0][1], debs[0][0])
	for _, p := range []string{"/usr/bin/crowdsec", "/usr/bin/cscli", "/usr/bin/crowdsec-firewall-bouncer",
		"/etc/crowdsec/config.toml", "/etc/crowdsec/local_api_credentials.toml", "/usr/share/crowdsec/hub/index.json",
		"/lib/systemd/system/crowdsec.service", "/lib/systemd/system/crowdsec-firewall-bouncer.service"} {
		if _, err := os.Stat(path(p)); err != nil {
			t.Errorf("after install: %v", err)
		}
	}
	if st, err := os.Stat(path(bouncerTOML)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("bouncer config: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	k := key()
	if len(k) < 16 {
		t.Fatalf("bouncer key not written into its config: %q", k)
	}
	if b, _ := os.ReadFile(path(bouncerTOML)); !strings.Contains(string(b), `mode = "nftables"`) {
		t.Errorf("bouncer mode not nftables although the kernel has it:\n%s", b)
	}
	var bouncers []struct {
		Name string `json:"name"`
	}
	must(t, json.Unmarshal([]byte(mustIn("cscli", "bouncers", "list", "-o", "json")), &bouncers))
	if len(bouncers) != 1 || bouncers[0].Name != "crowdsec-firewall-bouncer" {
		t.Errorf("registered bouncers %+v", bouncers)
	}
	if out := mustIn("crowdsec", "-c", "/etc/crowdsec/config.toml", "-t"); !strings.Contains(out, "is valid") {
		t.Errorf("crowdsec -t in the installed root:\n%s", out)
	}
	// what the daemon runs is what cscli lists: the four collections the
	// shipped config.toml names, and their items
	var items map[string][]struct{ Name, Status string }
	must(t, json.Unmarshal([]byte(mustIn("cscli", "--error", "hub", "list", "-o", "json")), &items))
	enabled := map[string]string{}
	for kind, list := range items {
		for _, it := range list {
			enabled[kind+" "+it.Name] = it.Status
		}
	}
	for _, want := range []string{"collections rampart/linux", "collections rampart/sshd", "collections rampart/nginx",
		"collections rampart/base-http", "parsers rampart/sshd-logs", "scenarios rampart/ssh-bf"} {
		if enabled[want] != "enabled" {
			t.Errorf("cscli hub list after install: %s is %q", want, enabled[want])
		}
	}

	// upgrade: configs and key kept
	f, err := os.OpenFile(path("/etc/crowdsec/config.toml"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString("# edited by the administrator\n")
	must(t, err)
	f.Close()
	mustIn("dpkg", "-i", "--force-confold", debs[1][0], debs[1][1])
	if b, _ := os.ReadFile(path("/etc/crowdsec/config.toml")); !strings.Contains(string(b), "# edited by the administrator") {
		t.Error("upgrade lost the administrator's config edit")
	}
	if key() != k {
		t.Error("upgrade changed the bouncer key")
	}
	if out := mustIn("dpkg-query", "-W", "-f", "${Version}", "crowdsec"); out != "0.1.1" {
		t.Errorf("installed version %q after upgrade", out)
	}

	// remove keeps configuration; purge removes everything
	mustIn("dpkg", "-r", "crowdsec-firewall-bouncer", "crowdsec")
	if _, err := os.Stat(path("/usr/bin/crowdsec")); err == nil {
		t.Error("binaries left after remove")
	}
	if _, err := os.Stat(path("/etc/crowdsec/config.toml")); err != nil {
		t.Errorf("remove deleted the configuration: %v", err)
	}
	mustIn("dpkg", "-P", "crowdsec-firewall-bouncer", "crowdsec")
	for _, p := range []string{"/etc/crowdsec", "/var/lib/crowdsec"} {
		if _, err := os.Stat(path(p)); err == nil {
			t.Errorf("%s left after purge", p)
		}
	}
	// The bouncer alone (no cscli yet): it installs, says how it will get
	// its key, and the crowdsec package configured after it registers it.
	out := mustIn("dpkg", "-i", debs[1][1])
	if !strings.Contains(out, "no local crowdsec yet") {
		t.Errorf("bouncer installed without crowdsec did not say how it gets its key:\n%s", out)
	}
	if key() != "" {
		t.Error("bouncer has a key without any LAPI")
	}
	mustIn("dpkg", "-i", debs[1][0])
	if len(key()) < 16 {
		t.Error("crowdsec configured after the bouncer did not register it")
	}
	mustIn("dpkg", "-P", "crowdsec-firewall-bouncer", "crowdsec")

	if out, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "tables").CombinedOutput(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("firewall objects left in the test namespace:\n%s", out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
