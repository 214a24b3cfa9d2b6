// Package patterns is Rampart's own grok pattern library: plain-text
// pattern files (NAME regex per line) embedded into the binary. Load it with
// grok.Library.LoadFS(patterns.FS, ".").
package patterns

import "embed"

// FS holds the pattern files of this directory.
//
//go:embed base linux-syslog ssh nginx http
var FS embed.FS
