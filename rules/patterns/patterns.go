// Package patterns is Rampart's own grok pattern library: plain-text
// pattern files (NAME regex per line) embedded into the binary. Load it with
// grok.Library.LoadFS(patterns.FS, "."); the file "approximations" holds
// small supersets of the heavy definitions that speed up matching.
package patterns

import "embed"

// FS holds the pattern files of this directory.
//
//go:embed base linux-syslog ssh nginx http approximations
var FS embed.FS
