// Package version carries the build's version, stamped by the Makefile.
package version

import "runtime"

// Version is set at link time (-X); "dev" in plain go builds.
var Version = "v0.0.0-dev"

// UserAgent returns crowdsec's User-Agent form: "<name>/<version>-<os>".
func UserAgent(name string) string { return name + "/" + Version + "-" + runtime.GOOS }
