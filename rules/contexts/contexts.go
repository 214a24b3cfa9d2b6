// Package contexts holds Rampart's alert contexts, in the hub's contexts/
// format (`context: {key: [expr, ...]}`), embedded into the binary: the
// collections name them (crowdsecurity/bf_base, crowdsecurity/http_base)
// and a hub that lacks its contexts/ folder still gets them.
package contexts

import "embed"

// FS holds the context files of this directory, named <name>.yaml.
//
//go:embed *.yaml
var FS embed.FS
