// Package memtune sets the Go garbage collector for the agent's workload:
// a small live heap (tens of MB of buckets and rules) churned by millions
// of short-lived events. With the default GOGC=100 the collector runs
// every few milliseconds and takes ~15% of the CPU of a log replay;
// GOGC=300 roughly halves that, and a soft memory limit makes the
// collector work harder before the heap could approach the agent's memory
// budget, so peak RSS stays bounded either way. GOGC and GOMEMLIMIT set
// in the environment win, as an administrator expects.
package memtune

import (
	"os"
	"runtime/debug"
)

// Agent defaults: see the package comment.
const (
	AgentGCPercent   = 300
	AgentMemoryLimit = 200 << 20
)

// Settings is what Apply decided.
type Settings struct {
	GCPercent   int   // -1 when GOGC came from the environment
	MemoryLimit int64 // -1 when GOMEMLIMIT came from the environment
}

// Apply sets the agent defaults unless the environment sets them.
func Apply() Settings {
	s := Settings{GCPercent: -1, MemoryLimit: -1}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(AgentGCPercent)
		s.GCPercent = AgentGCPercent
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(AgentMemoryLimit)
		s.MemoryLimit = AgentMemoryLimit
	}
	return s
}
