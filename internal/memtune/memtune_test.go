package memtune

import (
	"runtime/debug"
	"testing"
)

func TestApplyRespectsEnvironment(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	s := Apply()
	if s.GCPercent != AgentGCPercent || debug.SetGCPercent(-1) != AgentGCPercent {
		t.Fatalf("GC percent not applied: %+v", s)
	}
	if got := debug.SetMemoryLimit(-1); got != AgentMemoryLimit {
		t.Fatalf("memory limit = %d, want %d", got, AgentMemoryLimit)
	}

	debug.SetGCPercent(150)
	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	s = Apply()
	if s.GCPercent != -1 || s.MemoryLimit != -1 {
		t.Fatalf("environment overridden: %+v", s)
	}
	if debug.SetGCPercent(-1) != 150 || debug.SetMemoryLimit(-1) != 1<<30 {
		t.Fatal("environment values changed")
	}
}

// TestConnections: open connections raise the limit Apply chose, not one
// from the environment.
func TestConnections(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	s := Apply()
	s.Connections(5000)
	if got, want := debug.SetMemoryLimit(-1), int64(AgentMemoryLimit+5000*ConnectionMemory); got != want {
		t.Fatalf("memory limit %d, want %d", got, want)
	}
	s.Connections(0)
	if got := debug.SetMemoryLimit(-1); got != AgentMemoryLimit {
		t.Fatalf("memory limit %d once the connections closed, want %d", got, AgentMemoryLimit)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	s = Apply()
	s.Connections(5000)
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Fatalf("environment's limit changed to %d", got)
	}
}

func TestApplyBouncer(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetMemoryLimit(-1)
	s := ApplyBouncer()
	if s.GCPercent != BouncerGCPercent || debug.SetGCPercent(-1) != BouncerGCPercent {
		t.Fatalf("GC percent not applied: %+v", s)
	}
	if s.MemoryLimit != -1 || debug.SetMemoryLimit(-1) != before {
		t.Fatalf("the bouncer got a memory limit: %+v", s)
	}
	debug.SetGCPercent(150)
	t.Setenv("GOGC", "150")
	if s := ApplyBouncer(); s.GCPercent != -1 || debug.SetGCPercent(-1) != 150 {
		t.Fatalf("environment overridden: %+v", s)
	}
}
