// Package memtune sets the Go garbage collector for Rampart's daemons. The
// agent's workload:
// a small live heap (tens of MB of buckets and rules) churned by millions
// of short-lived events. With the default GOGC=100 the collector runs
// every few milliseconds and takes ~15% of the CPU of a log replay;
// GOGC=300 roughly halves that, and a soft memory limit makes the
// collector work harder before the heap could approach the agent's memory
// budget, so peak RSS stays bounded either way. The LAPI's is alike (a
// small live heap; every push's body, decoded alerts and statement
// arguments are garbage once stored), and crowdsec applies the same
// settings whether it runs the agent, the LAPI or both. GOGC and
// GOMEMLIMIT set in the environment win, as an administrator expects.
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

// BouncerGCPercent is the firewall bouncer's default. Its live heap is
// its ban state (about 54 MB at 1M bans) and, once loaded, it makes little
// garbage (a few KB per poll); with GOGC=100 that garbage piles up until
// the heap doubles, so an idle bouncer's RSS grew by its live heap (1M bans:
// 101 -> 144 MB in two minutes of polls). 25 bounds the heap to a quarter
// above live, for a collection every few hundred polls.
const BouncerGCPercent = 25

// Apply sets the agent defaults unless the environment sets them.
func Apply() Settings { return apply(AgentGCPercent, AgentMemoryLimit) }

// ConnectionMemory is the limit a LAPI gets for each connection it holds
// open: a long-polling bouncer's keeps two goroutines' stacks, 4 KiB read
// and write buffers and its request, about 40 KB of RSS each at 5,000.
const ConnectionMemory = 48 << 10

// Connections sets the soft memory limit Apply chose plus ConnectionMemory
// for each of open connections (unless GOMEMLIMIT came from the
// environment). Under a limit below what its connections hold the collector
// runs back to back: 5,000 long-polling bouncers under 200 MiB spent a
// third of the LAPI's CPU in it.
func (s Settings) Connections(open int) {
	if s.MemoryLimit < 0 {
		return
	}
	debug.SetMemoryLimit(s.MemoryLimit + int64(max(open, 0))*ConnectionMemory)
}

// ApplyBouncer sets the bouncer's GOGC unless the environment sets it; it
// sets no memory limit (the ban state is as large as the LAPI makes it).
func ApplyBouncer() Settings { return apply(BouncerGCPercent, -1) }

func apply(gcPercent int, limit int64) Settings {
	s := Settings{GCPercent: -1, MemoryLimit: -1}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
		s.GCPercent = gcPercent
	}
	if limit >= 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
		s.MemoryLimit = limit
	}
	return s
}
