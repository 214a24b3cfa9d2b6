package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"

	"github.com/rampart-ips/rampart/internal/atomicfile"
)

// Options says what to package and where from.
type Options struct {
	Root     string    // source tree: config/, rules/, packaging/
	UnitDir  string    // systemd unit files; Root/systemd when empty
	BinDir   string    // the three binaries
	OutDir   string    // receives the .deb files
	Version  string    // Debian version (see DebianVersion), with a Debian revision or without (native)
	Describe string    // git describe output, named in the changelog; optional
	Arch     string    // GOARCH of the binaries
	MTime    time.Time // stamped on every file, for reproducible packages
}

const (
	maintainer = "Rampart <rampart-ips@users.noreply.github.com>"
	homepage   = "https://github.com/rampart-ips/rampart"
	// includeMark, alone on a line of a maintainer script, is replaced by
	// the named file of packaging/common/ so both packages share one copy.
	includeMark = "#@include "
)

// debArch maps GOARCH to Debian's architecture names.
var debArch = map[string]string{
	"amd64": "amd64", "arm64": "arm64", "386": "i386", "arm": "armhf",
	"ppc64le": "ppc64el", "riscv64": "riscv64", "s390x": "s390x",
}

// elfMachine is what each GOARCH's binaries say they run on, so that a
// bin directory built for another architecture is not packaged by mistake.
var elfMachine = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM,
	"ppc64le": elf.EM_PPC64, "riscv64": elf.EM_RISCV, "s390x": elf.EM_S390,
}

// Build writes crowdsec_<version>_<arch>.deb and
// crowdsec-firewall-bouncer_<version>_<arch>.deb into o.OutDir and returns
// their paths.
func Build(o Options) ([]string, error) {
	if o.UnitDir == "" {
		o.UnitDir = filepath.Join(o.Root, "systemd")
	}
	if o.MTime.IsZero() {
		o.MTime = time.Now().UTC().Truncate(time.Second)
	}
	if !validPackageVersion.MatchString(o.Version) {
		return nil, fmt.Errorf("version %q is not a valid Debian version", o.Version)
	}
	arch, ok := debArch[o.Arch]
	if !ok {
		return nil, fmt.Errorf("architecture %q has no Debian name here", o.Arch)
	}
	if err := checkUnits(o.UnitDir); err != nil {
		return nil, err
	}
	for _, b := range []string{"crowdsec", "cscli", "crowdsec-firewall-bouncer"} {
		if err := checkBinary(filepath.Join(o.BinDir, b), o.Arch); err != nil {
			return nil, err
		}
	}
	scripts, err := os.MkdirTemp("", "mkdeb-scripts-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scripts)
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}

	var out []string
	for _, mk := range []func(Options, string) (*nfpm.Info, error){crowdsecInfo, bouncerInfo} {
		info, err := mk(o, scripts)
		if err != nil {
			return nil, err
		}
		var bins []string
		for _, c := range info.Contents {
			if b, ok := strings.CutPrefix(c.Destination, "/usr/bin/"); ok {
				bins = append(bins, b)
			}
		}
		doc, err := docContents(o, info.Name, bins, scripts)
		if err != nil {
			return nil, err
		}
		info.Contents = append(info.Contents, doc...)
		info.Arch = arch
		info.Version = o.Version
		info.VersionSchema = "none" // already a Debian version: no semver reshaping
		info.MTime = o.MTime
		info.Maintainer = maintainer
		info.Homepage = homepage
		info.Section = "net"
		info.Priority = "optional"
		info = nfpm.WithDefaults(info)
		path := filepath.Join(o.OutDir, fmt.Sprintf("%s_%s_%s.deb", info.Name, o.Version, arch))
		if err := writePackage(info, path); err != nil {
			return nil, fmt.Errorf("%s: %w", info.Name, err)
		}
		out = append(out, path)
	}
	return out, nil
}

// notificationExamples are the notification files installed, upstream's
// notification names.
var notificationExamples = []string{"http", "slack", "email", "file", "splunk", "sentinel"}

func crowdsecInfo(o Options, scripts string) (*nfpm.Info, error) {
	sc, err := prepareScripts(o.Root, "crowdsec", scripts)
	if err != nil {
		return nil, err
	}
	// Notification examples in TOML, their configuration commented out:
	// they define nothing until the operator uncomments one. A CrowdSec
	// user's upstream YAML files (http.yaml, defining http_default...),
	// which dpkg keeps as obsolete conffiles, are read beside them
	// without any name defined twice.
	var notifications files.Contents
	for _, n := range notificationExamples {
		notifications = append(notifications,
			conffile(filepath.Join(o.Root, "config", "notifications", n+".toml"), "/etc/crowdsec/notifications/"+n+".toml", 0o644))
	}
	contents := files.Contents{
		binary(o, "crowdsec"),
		binary(o, "cscli"),
		conffile(filepath.Join(o.Root, "config", "config.toml"), "/etc/crowdsec/config.toml", 0o644),
		conffile(filepath.Join(o.Root, "config", "profiles.toml"), "/etc/crowdsec/profiles.toml", 0o644),
		conffile(filepath.Join(o.Root, "packaging", "crowdsec", "logrotate"), "/etc/logrotate.d/crowdsec", 0o644),
		dir("/etc/crowdsec/acquis.d", 0o755),
		// The database, with every machine's password hash and bouncer key
		// hash, lives here. 0750 on both, as crowdsec.service's
		// StateDirectoryMode sets /var/lib/crowdsec at each start: dpkg
		// and systemd then agree.
		dir("/var/lib/crowdsec", 0o750),
		dir("/var/lib/crowdsec/data", 0o750),
		plain(filepath.Join(o.UnitDir, "crowdsec.service"), "/lib/systemd/system/crowdsec.service", 0o644),
		// for the operator to import into Grafana; nothing reads it here
		plain(filepath.Join(o.Root, "packaging", "grafana", "rampart.json"), "/usr/share/doc/crowdsec/grafana/rampart.json", 0o644),
	}
	// The rules belong to the package, so they live under /usr/share
	// (files in /etc must be conffiles); /etc/crowdsec/hub, the hub_dir of
	// config.toml and upstream's place, points there.
	hub, err := hubContents(filepath.Join(o.Root, "rules"), "/usr/share/crowdsec/hub")
	if err != nil {
		return nil, err
	}
	contents = append(contents, &files.Content{Source: "/usr/share/crowdsec/hub", Destination: "/etc/crowdsec/hub", Type: files.TypeSymlink,
		FileInfo: &files.ContentFileInfo{Mode: 0o777}})
	info := &nfpm.Info{
		Name: "crowdsec",
		Description: "intrusion detection compatible with CrowdSec: agent, local API, cscli\n" +
			"Rampart's crowdsec reads logs, detects attacks with hub-format rules\n" +
			"(Rampart's own rules are installed in /usr/share/crowdsec/hub, seen\n" +
			"as /etc/crowdsec/hub) and serves the CrowdSec local API, with its\n" +
			"SQLite database, to bouncers.",
	}
	info.Contents = append(append(contents, notifications...), hub...)
	// Decisions only reach the firewall through a bouncer.
	info.Recommends = []string{"crowdsec-firewall-bouncer"}
	info.Scripts = sc
	return info, nil
}

func bouncerInfo(o Options, scripts string) (*nfpm.Info, error) {
	sc, err := prepareScripts(o.Root, "crowdsec-firewall-bouncer", scripts)
	if err != nil {
		return nil, err
	}
	info := &nfpm.Info{
		Name: "crowdsec-firewall-bouncer",
		Description: "CrowdSec-compatible firewall bouncer (nftables or iptables)\n" +
			"Rampart's firewall bouncer follows a CrowdSec local API's decisions\n" +
			"and keeps nftables sets, or ipset sets with iptables rules, in step.",
	}
	info.Contents = files.Contents{
		binary(o, "crowdsec-firewall-bouncer"),
		// It holds the bouncer's API key.
		conffile(filepath.Join(o.Root, "config", "crowdsec-firewall-bouncer.toml"),
			"/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.toml", 0o600),
		conffile(filepath.Join(o.Root, "packaging", "crowdsec-firewall-bouncer", "logrotate"),
			"/etc/logrotate.d/crowdsec-firewall-bouncer", 0o644),
		plain(filepath.Join(o.UnitDir, "crowdsec-firewall-bouncer.service"),
			"/lib/systemd/system/crowdsec-firewall-bouncer.service", 0o644),
	}
	// nftables mode talks netlink and needs no binary; iptables mode runs
	// the iptables binaries (its ipset sets also go through netlink, so the
	// ipset tool is optional). Either package makes one mode work, and
	// postinst uses nft, when present, to see whether the kernel has
	// nf_tables. apt picks the first alternative when neither is installed.
	info.Depends = []string{"nftables | iptables"}
	// crowdsec: the local API, unless the bouncer talks to a remote one;
	// ipset: to look at the sets of iptables mode.
	info.Suggests = []string{"crowdsec", "ipset"}
	info.Scripts = sc
	return info, nil
}

func binary(o Options, name string) *files.Content {
	return plain(filepath.Join(o.BinDir, name), "/usr/bin/"+name, 0o755)
}

func plain(src, dst string, mode os.FileMode) *files.Content {
	return &files.Content{Source: src, Destination: dst, Type: files.TypeFile, FileInfo: &files.ContentFileInfo{Mode: mode}}
}

func conffile(src, dst string, mode os.FileMode) *files.Content {
	return &files.Content{Source: src, Destination: dst, Type: files.TypeConfig, FileInfo: &files.ContentFileInfo{Mode: mode}}
}

func dir(dst string, mode os.FileMode) *files.Content {
	return &files.Content{Destination: dst, Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: mode}}
}

// hubContents lists the rules folder as plain files: the rules belong to
// the package and are replaced on upgrade, not merged like conffiles;
// local rules go in other folders. The hubtest fixtures (.tests) and the
// Go files that embed patterns and contexts into the binaries stay out.
// Modes are fixed so that the source checkout's umask does not leak in.
func hubContents(src, dst string) (files.Contents, error) {
	var out files.Contents
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if rel == "." {
			out = append(out, dir(dst, 0o755))
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := dst + "/" + filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			out = append(out, dir(target, 0o755))
		case d.Type().IsRegular() && !strings.HasSuffix(d.Name(), ".go"):
			out = append(out, plain(path, target, 0o644))
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: only regular files and directories can be packaged", path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rules folder: %w", err)
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("rules folder %s is empty", src)
	}
	return out, nil
}

// checkUnits fails clearly when the systemd units are not written yet or
// would start binaries from somewhere the packages do not install them.
func checkUnits(unitDir string) error {
	for _, name := range []string{"crowdsec", "crowdsec-firewall-bouncer"} {
		path := filepath.Join(unitDir, name+".service")
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("systemd unit %s is missing: the packages need systemd/crowdsec.service and systemd/crowdsec-firewall-bouncer.service", path)
		}
		if err != nil {
			return err
		}
		want := "/usr/bin/" + name
		found := false
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
				// Prefixes such as "-" or "!" come before the path.
				f := strings.Fields(strings.TrimLeft(v, "-@:+!"))
				if len(f) > 0 && f[0] == want {
					found = true
				}
			}
		}
		if !found {
			return fmt.Errorf("systemd unit %s: ExecStart must run %s, where the package installs it", path, want)
		}
	}
	return nil
}

func checkBinary(path, goarch string) error {
	f, err := elf.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("binary %s is missing: run make build first", path)
	}
	if err != nil {
		return fmt.Errorf("binary %s: %w", path, err)
	}
	defer f.Close()
	if want := elfMachine[goarch]; f.Machine != want {
		return fmt.Errorf("binary %s is built for %s, not %s (GOARCH=%s)", path, f.Machine, want, goarch)
	}
	return nil
}

// prepareScripts writes the package's maintainer scripts into dir with
// their includes expanded and returns them for nfpm.
func prepareScripts(root, pkg, dir string) (nfpm.Scripts, error) {
	var sc nfpm.Scripts
	for _, s := range []struct {
		name string
		dst  *string
	}{{"preinst", &sc.PreInstall}, {"postinst", &sc.PostInstall}, {"prerm", &sc.PreRemove}, {"postrm", &sc.PostRemove}} {
		src := filepath.Join(root, "packaging", pkg, s.name)
		data, err := os.ReadFile(src)
		if err != nil {
			return sc, fmt.Errorf("maintainer script: %w", err)
		}
		text, err := expandIncludes(string(data), filepath.Join(root, "packaging", "common"))
		if err != nil {
			return sc, fmt.Errorf("%s: %w", src, err)
		}
		dst := filepath.Join(dir, pkg+"."+s.name)
		if err := os.WriteFile(dst, []byte(text), 0o755); err != nil {
			return sc, err
		}
		*s.dst = dst
	}
	return sc, nil
}

func expandIncludes(text, commonDir string) (string, error) {
	var b strings.Builder
	for _, line := range strings.SplitAfter(text, "\n") {
		name, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), includeMark)
		if !ok {
			b.WriteString(line)
			continue
		}
		if name == "" || strings.ContainsAny(name, `/\`) {
			return "", fmt.Errorf("bad include %q", line)
		}
		inc, err := os.ReadFile(filepath.Join(commonDir, name))
		if err != nil {
			return "", err
		}
		b.Write(inc)
		if len(inc) > 0 && inc[len(inc)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.String(), nil
}

// writePackage writes through a temporary file so that a failed build
// leaves no truncated .deb behind.
func writePackage(info *nfpm.Info, path string) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return deb.Default.Package(info, w) })
}
