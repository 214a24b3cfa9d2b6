package csconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/BurntSushi/toml"

	"github.com/rampart-ips/rampart/internal/atomicfile"
	"github.com/rampart-ips/rampart/internal/stricttoml"
)

// Simulation says which scenarios run in simulation: their alerts are
// raised and stored with simulated decisions that no bouncer ever gets.
// Upstream's simulation.yaml semantics: with Simulation on, every scenario
// is simulated except the Exclusions; with it off, only the Exclusions are.
type Simulation struct {
	Simulation bool     `toml:"simulation"`
	Exclusions []string `toml:"exclusions"`
}

// IsSimulated reports whether scenario's alerts are simulated. A nil
// Simulation simulates nothing.
func (s *Simulation) IsSimulated(scenario string) bool {
	if s == nil {
		return false
	}
	return s.Simulation != slices.Contains(s.Exclusions, scenario)
}

// Enable puts scenario in simulation; Disable takes it out. Each keeps the
// exclusion list minimal (no duplicates, nothing that is the default).
func (s *Simulation) Enable(scenario string)  { s.set(scenario, true) }
func (s *Simulation) Disable(scenario string) { s.set(scenario, false) }

func (s *Simulation) set(scenario string, on bool) {
	s.Exclusions = slices.DeleteFunc(s.Exclusions, func(e string) bool { return e == scenario })
	if on != s.Simulation {
		s.Exclusions = append(s.Exclusions, scenario)
	}
}

// LoadSimulation reads the simulation file; a missing file simulates
// nothing. Unknown keys are errors, as in every configuration file.
func LoadSimulation(path string) (*Simulation, error) {
	s := &Simulation{}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading simulation configuration: %w", err)
	}
	if _, err := stricttoml.Decode(data, path, s); err != nil {
		return nil, err
	}
	for _, e := range s.Exclusions {
		if e == "" {
			return nil, fmt.Errorf("%s: exclusions: an empty scenario name", path)
		}
	}
	return s, nil
}

// WriteSimulation replaces the simulation file atomically.
func WriteSimulation(path string, s *Simulation) error {
	var buf bytes.Buffer
	buf.WriteString("# Scenarios in simulation raise alerts with simulated decisions that\n" +
		"# bouncers never get. simulation = true simulates every scenario except\n" +
		"# the exclusions; false simulates only the exclusions. Managed by\n" +
		"# `cscli simulation`; the daemon reads it at start and reload.\n")
	out := struct {
		Simulation bool     `toml:"simulation"`
		Exclusions []string `toml:"exclusions"`
	}{s.Simulation, s.Exclusions}
	if out.Exclusions == nil {
		out.Exclusions = []string{}
	}
	if err := toml.NewEncoder(&buf).Encode(out); err != nil {
		return fmt.Errorf("encoding simulation configuration: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := atomicfile.WriteBytes(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
