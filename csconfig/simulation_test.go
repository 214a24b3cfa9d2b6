package csconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimulationSemantics(t *testing.T) {
	for _, c := range []struct {
		s    *Simulation
		name string
		want bool
	}{
		{nil, "a/x", false},
		{&Simulation{}, "a/x", false},
		{&Simulation{Exclusions: []string{"a/x"}}, "a/x", true}, // global off: exclusions ARE simulated
		{&Simulation{Exclusions: []string{"a/x"}}, "a/y", false},
		{&Simulation{Simulation: true}, "a/y", true},
		{&Simulation{Simulation: true, Exclusions: []string{"a/x"}}, "a/x", false}, // global on: exclusions are NOT
		{&Simulation{Simulation: true, Exclusions: []string{"a/x"}}, "a/y", true},
	} {
		if got := c.s.IsSimulated(c.name); got != c.want {
			t.Errorf("%+v IsSimulated(%s) = %v", c.s, c.name, got)
		}
	}
	s := &Simulation{}
	s.Enable("a/x")
	s.Enable("a/x")
	if len(s.Exclusions) != 1 || !s.IsSimulated("a/x") {
		t.Errorf("enable twice: %+v", s)
	}
	s.Disable("a/x")
	if len(s.Exclusions) != 0 || s.IsSimulated("a/x") {
		t.Errorf("disable: %+v", s)
	}
	s = &Simulation{Simulation: true}
	s.Disable("a/x")
	if s.IsSimulated("a/x") || !s.IsSimulated("a/y") || len(s.Exclusions) != 1 {
		t.Errorf("global on, disable one: %+v", s)
	}
}

func TestLoadSimulation(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.toml")
	simPath := filepath.Join(dir, "sim", "simulation.toml")
	if err := os.WriteFile(cfgPath, []byte("[config_paths]\nconfig_dir = "+`"`+dir+`"`+"\nsimulation_path = \""+simPath+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// no file: nothing simulated
	c, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if c.Simulation == nil || c.Simulation.IsSimulated("a/x") {
		t.Fatalf("missing file: %+v", c.Simulation)
	}
	if err := WriteSimulation(simPath, &Simulation{Simulation: true, Exclusions: []string{"a/x"}}); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(cfgPath); err != nil {
		t.Fatal(err)
	}
	if c.Simulation.IsSimulated("a/x") || !c.Simulation.IsSimulated("a/y") {
		t.Errorf("written then loaded: %+v", c.Simulation)
	}
	// the default path is in config_dir
	def, err := Parse([]byte("[config_paths]\nconfig_dir = \"/srv/cs\"\n"), "x")
	if err != nil || def.ConfigPaths.SimulationPath != "/srv/cs/simulation.toml" {
		t.Errorf("default simulation_path %q %v", def.ConfigPaths.SimulationPath, err)
	}
	// a broken file is an error naming it: the daemon keeps its old config
	for _, bad := range []string{"simulation = \"yes\"\n", "simulaton = true\n", "exclusions = [\"\"]\n"} {
		if err := os.WriteFile(simPath, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(cfgPath); err == nil || !strings.Contains(err.Error(), simPath) {
			t.Errorf("%q: error %v, want one naming %s", bad, err, simPath)
		}
	}
}
