package cscli

import (
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/csconfig"
)

// reloadMessage is upstream's reminder after a configuration change.
const reloadMessage = "Run 'sudo systemctl reload crowdsec' for the new configuration to be effective."

func newSimulationCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "simulation [command]",
		Short: "Manage simulation status of scenarios",
		Long: `Scenarios in simulation still raise alerts, and the local API still applies
its profiles to them, but their decisions are stored as simulated: no bouncer
ever receives them (neither in /v1/decisions/stream nor in /v1/decisions).
cscli decisions list and cscli alerts list show them, marked as simulated.

The setting lives in config_paths.simulation_path (/etc/crowdsec/simulation.toml):
with the global simulation on, every scenario is simulated except the listed
exclusions; with it off, only the exclusions are. The daemon reads the file at
start and on reload.`,
		Example: `cscli simulation status
cscli simulation enable rampart/ssh-bf
cscli simulation disable rampart/ssh-bf
cscli simulation enable --global
cscli simulation disable --global`,
		DisableAutoGenTag: true,
	}
	cmd.AddCommand(newSimulationStatusCmd(cli), newSimulationSetCmd(cli, true), newSimulationSetCmd(cli, false))
	return cmd
}

func newSimulationStatusCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "status",
		Short:             "Show simulation mode status",
		Example:           "cscli simulation status\ncscli simulation status -o json",
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.simulationStatus(cli.cfg.Simulation)
		},
	}
}

func (cli *CLI) simulationStatus(s *csconfig.Simulation) error {
	if s == nil {
		s = &csconfig.Simulation{}
	}
	if cli.OutputFormat() == "json" {
		ex := s.Exclusions
		if ex == nil {
			ex = []string{}
		}
		return cli.printJSON(map[string]any{"simulation": s.Simulation, "exclusions": ex, "path": cli.cfg.ConfigPaths.SimulationPath})
	}
	state, which := "disabled", "Scenarios in simulation mode :"
	if s.Simulation {
		state, which = "enabled", "Scenarios not in simulation mode :"
	}
	fmt.Fprintf(cli.Out, "global simulation: %s\n", state)
	if len(s.Exclusions) > 0 {
		fmt.Fprintln(cli.Out, which)
		for _, e := range s.Exclusions {
			fmt.Fprintf(cli.Out, "  - %s\n", e)
		}
	}
	return nil
}

func newSimulationSetCmd(cli *CLI, enable bool) *cobra.Command {
	var global bool
	use, short, ex := "enable [scenario] [-global]", "Enable the simulation, globally or on specified scenarios",
		"cscli simulation enable rampart/ssh-bf rampart/http-probing\ncscli simulation enable --global"
	if !enable {
		use, short, ex = "disable [scenario]", "Disable the simulation mode. Disable only specified scenarios",
			"cscli simulation disable rampart/ssh-bf\ncscli simulation disable --global"
	}
	cmd := &cobra.Command{
		Use:               use,
		Short:             short,
		Example:           ex,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			switch {
			case global && len(args) > 0:
				return errors.New("give scenarios or --global, not both")
			case !global && len(args) == 0:
				return errors.New("give at least one scenario, or --global")
			}
			return cli.setSimulation(enable, global, args)
		},
	}
	cmd.Flags().BoolVarP(&global, "global", "g", false, "all scenarios (clears the exclusions)")
	return cmd
}

// setSimulation changes the simulation file as upstream's cscli does and
// reminds the operator to reload.
func (cli *CLI) setSimulation(enable, global bool, scenarios []string) error {
	cfg := cli.cfg
	path := cfg.ConfigPaths.SimulationPath
	// Read afresh: the configuration's copy may be stale.
	s, err := csconfig.LoadSimulation(path)
	if err != nil {
		return err
	}
	word := map[bool]string{true: "enabled", false: "disabled"}[enable]
	changed := false
	var unknown []string
	if global {
		s.Simulation, s.Exclusions, changed = enable, nil, true
		fmt.Fprintf(cli.Out, "global simulation: %s\n", word)
	} else {
		// Names are checked against the hub folder when it can be read:
		// a typo would otherwise simulate nothing, silently.
		h, herr := hub.OpenHub(cfg.ConfigPaths.HubDir)
		if herr != nil {
			fmt.Fprintf(cli.Err, "warning: cannot check scenario names against the hub folder: %v\n", herr)
		}
		for _, sc := range scenarios {
			if h != nil {
				if _, ok := h.Item("scenarios", sc); !ok {
					fmt.Fprintf(cli.Err, "'%s' doesn't exist or is not a scenario\n", sc)
					unknown = append(unknown, sc)
					continue
				}
			}
			if s.IsSimulated(sc) == enable {
				fmt.Fprintf(cli.Out, "simulation is already %s for '%s'\n", word, sc)
				continue
			}
			if enable {
				s.Enable(sc)
			} else {
				s.Disable(sc)
			}
			changed = true
			fmt.Fprintf(cli.Out, "simulation %s for '%s'\n", word, sc)
		}
	}
	if changed {
		slices.Sort(s.Exclusions)
		if err := csconfig.WriteSimulation(path, s); err != nil {
			return err
		}
		fmt.Fprintln(cli.Out, reloadMessage)
	}
	if len(unknown) > 0 {
		return fmt.Errorf("unknown scenarios: %v (see cscli scenarios list -a)", unknown)
	}
	return nil
}
