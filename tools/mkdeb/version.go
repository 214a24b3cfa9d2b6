package main

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

var (
	// v1.2.3, v1.2.3-rc1, v1.2.3-4-gabc1234, v1.2.3-rc.1-4-gabc1234-dirty ...
	tagged = regexp.MustCompile(`^v?([0-9]+(?:\.[0-9]+)*)(?:-([0-9A-Za-z][0-9A-Za-z.-]*?))??(?:-([0-9]+)-g([0-9a-f]+))?(-dirty)?$`)
	// a bare abbreviated hash: no tag reachable
	untagged = regexp.MustCompile(`^([0-9a-f]{4,40})(-dirty)?$`)
	// Debian upstream_version without a revision: no hyphen allowed.
	validDebian = regexp.MustCompile(`^[0-9][0-9A-Za-z.+~]*$`)
	// a package's whole version: upstream_version, then an optional
	// Debian revision (a native package has none)
	validPackageVersion = regexp.MustCompile(`^[0-9][0-9A-Za-z.+~]*(-[0-9A-Za-z.+~]+)?$`)
)

// DebianVersion turns `git describe --tags --always --dirty` output into a
// Debian version that sorts the way the history goes:
//
//	v1.2.3                 -> 1.2.3
//	v1.2.3-rc1             -> 1.2.3~rc1               (before 1.2.3)
//	v1.2.3-4-gabc1234      -> 1.2.3+git4.abc1234      (after 1.2.3)
//	abc1234-dirty (no tag) -> 0.0.0~git<commit time>.abc1234.dirty
//
// The commit time orders untagged snapshots, whose hashes do not sort.
func DebianVersion(describe string, commit time.Time) (string, error) {
	d := strings.TrimSpace(describe)
	var v string
	if m := untagged.FindStringSubmatch(d); m != nil {
		v = "0.0.0~git" + commit.UTC().Format("20060102150405") + "." + m[1]
		if m[2] != "" {
			v += ".dirty"
		}
	} else if m := tagged.FindStringSubmatch(d); m != nil {
		v = m[1]
		if m[2] != "" {
			v += "~" + strings.ReplaceAll(m[2], "-", ".")
		}
		var local []string
		if m[3] != "" {
			local = append(local, "git"+m[3], m[4])
		}
		if m[5] != "" {
			local = append(local, "dirty")
		}
		if len(local) > 0 {
			v += "+" + strings.Join(local, ".")
		}
	} else {
		return "", fmt.Errorf("version %q is not git describe output (vX.Y.Z[-pre][-N-gHASH][-dirty] or HASH[-dirty])", describe)
	}
	if !validDebian.MatchString(v) {
		return "", fmt.Errorf("version %q gives %q, which is not a valid Debian version", describe, v)
	}
	return v, nil
}
