package version

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// DetectOS names the operating system as upstream's usage metrics report
// it: NAME and VERSION_ID of os-release ("Ubuntu", "24.04"); "linux" and
// an empty version when no os-release file is readable.
func DetectOS() (name, version string) {
	return osRelease("/etc/os-release", "/usr/lib/os-release")
}

// osRelease reads the first of paths that exists and names an OS.
func osRelease(paths ...string) (string, string) {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		var name, ver string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
			if !ok {
				continue
			}
			if uq, err := strconv.Unquote(v); err == nil {
				v = uq
			} else {
				v = strings.Trim(v, `"'`)
			}
			switch k {
			case "NAME":
				name = v
			case "VERSION_ID":
				ver = v
			}
		}
		_ = f.Close()
		if name != "" {
			return name, ver
		}
	}
	return "linux", ""
}
