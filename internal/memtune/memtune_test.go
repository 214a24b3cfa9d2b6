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
	s := Apply(0)
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
	s = Apply(1000)
	if s.GCPercent != -1 || s.MemoryLimit != -1 {
		t.Fatalf("environment overridden: %+v", s)
	}
	if debug.SetGCPercent(-1) != 150 || debug.SetMemoryLimit(-1) != 1<<30 {
		t.Fatal("environment values changed")
	}
}

// TestApplyConnections: the LAPI's open connections raise the limit.
func TestApplyConnections(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	want := int64(AgentMemoryLimit + 5000*ConnectionMemory)
	if s := Apply(5000); s.MemoryLimit != want || debug.SetMemoryLimit(-1) != want {
		t.Fatalf("memory limit %+v (runtime %d), want %d", s, debug.SetMemoryLimit(-1), want)
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
