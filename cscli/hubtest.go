package cscli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/hubtest"
)

func newHubtestCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hubtest",
		Short: "Run the hub's functional tests (.tests folders)",
	}
	var hubDir string
	var all bool
	run := &cobra.Command{
		Use:   "run [--all | NAME...]",
		Short: "Run hub tests and check parser.assert and scenario.assert",
		Example: `cscli hubtest run --hub ../shared/hub --all
cscli hubtest run --hub ../shared/hub sshd-logs`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cli.bindIO(cmd)
			h, err := hub.OpenHub(hubDir)
			if err != nil {
				return err
			}
			names := args
			if all {
				entries, err := os.ReadDir(filepath.Join(hubDir, ".tests"))
				if err != nil {
					return fmt.Errorf("listing tests: %w", err)
				}
				names = names[:0]
				for _, e := range entries {
					if e.IsDir() {
						names = append(names, e.Name())
					}
				}
				sort.Strings(names)
			}
			if len(names) == 0 {
				return fmt.Errorf("give test names or --all")
			}
			r := &hubtest.Runner{Hub: h}
			failed, skipped := 0, 0
			for _, n := range names {
				res := r.Run(n)
				switch {
				case res.Failure != "":
					failed++
					fmt.Fprintf(cli.Out, "FAIL  %s: %s\n", n, res.Failure)
				case res.Skipped != "":
					skipped++
					fmt.Fprintf(cli.Out, "SKIP  %s: %s (%d parser assertions held)\n", n, res.Skipped, res.ParserChecks)
				default:
					fmt.Fprintf(cli.Out, "PASS  %s (%d parser and %d scenario assertions)\n", n, res.ParserChecks, res.ScenarioChecks)
				}
			}
			fmt.Fprintf(cli.Out, "%d tests: %d passed, %d failed, %d not run\n", len(names), len(names)-failed-skipped, failed, skipped)
			if failed > 0 || skipped > 0 {
				return fmt.Errorf("%d hub tests failed, %d not run", failed, skipped)
			}
			return nil
		},
	}
	run.Flags().StringVar(&hubDir, "hub", "/etc/crowdsec/hub", "hub folder (with index.json and .tests)")
	run.Flags().BoolVar(&all, "all", false, "run every test of the hub")
	cmd.AddCommand(run)
	return cmd
}
