// Command mkdeb builds Rampart's two Debian packages, crowdsec and
// crowdsec-firewall-bouncer, from binaries already built (make build) and
// the files of the source tree, with the nfpm library (no dpkg tooling
// needed on the build machine).
//
//	go -C tools run ./mkdeb -root .. -version "$(git describe --tags --always --dirty)" -bin ../build/bin -out ../build/deb
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	var o Options
	var describe, revision string
	flag.StringVar(&describe, "version", "", "git describe --tags --always --dirty output (run here when empty)")
	flag.StringVar(&o.Root, "root", ".", "source tree: config/, rules/, packaging/, systemd/")
	flag.StringVar(&o.BinDir, "bin", "build/bin", "directory holding crowdsec, cscli and crowdsec-firewall-bouncer")
	flag.StringVar(&o.OutDir, "out", "build/deb", "where the .deb files go")
	flag.StringVar(&o.Arch, "arch", runtime.GOARCH, "Go architecture the binaries were built for")
	flag.StringVar(&revision, "revision", "1", "Debian revision: the packaging's own version, after the upstream one")
	flag.Parse()

	if describe == "" {
		out, err := exec.Command("git", "-C", o.Root, "describe", "--tags", "--always", "--dirty").Output()
		if err != nil {
			fatal(fmt.Errorf("git describe failed (%v): pass -version", err))
		}
		describe = strings.TrimSpace(string(out))
	}
	o.MTime = commitTime(o.Root)
	v, err := DebianVersion(describe, o.MTime)
	if err != nil {
		fatal(err)
	}
	if !validDebian.MatchString(revision) {
		fatal(fmt.Errorf("revision %q is not a valid Debian revision", revision))
	}
	o.Version = v + "-" + revision
	o.Describe = describe
	paths, err := Build(o)
	if err != nil {
		fatal(err)
	}
	for _, p := range paths {
		fmt.Println(p)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "mkdeb:", err)
	os.Exit(1)
}

// commitTime is the time of the checked-out commit: it dates snapshot
// versions and stamps every file, so a rebuild of the same commit gives the
// same packages. SOURCE_DATE_EPOCH wins, as reproducible builds expect.
func commitTime(root string) time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	out, err := exec.Command("git", "-C", root, "log", "-1", "--format=%ct").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	return time.Now().UTC().Truncate(time.Second)
}
