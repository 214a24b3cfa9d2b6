package cscli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/hubtest"
)

// maxFailuresShown bounds the failed assertions printed per test in
// human output: the rest are counted (json output has them all).
const maxFailuresShown = 20

func newHubtestCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hubtest",
		Short: "Run the hub's functional tests (.tests folders)",
	}
	var hubDir string
	var all bool
	var parallel int
	var knownFile string
	run := &cobra.Command{
		Use:   "run [--all | NAME...]",
		Short: "Run hub tests and check parser.assert and scenario.assert",
		Example: `cscli hubtest run --hub ../shared/hub --all
cscli hubtest run --hub ../shared/hub sshd-logs
cscli hubtest run --hub ../shared/hub --all --parallel 1 -o json
cscli hubtest run --hub ../shared/hub-corpus --all --known-failures testdata/hub-corpus.known-failures`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cli.bindIO(cmd)
			if parallel < 1 {
				return fmt.Errorf("--parallel must be at least 1, not %d", parallel)
			}
			h, err := hub.OpenHub(hubDir)
			if err != nil {
				return err
			}
			known, err := readKnownFailures(knownFile)
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
			asJSON := cli.OutputFormat() == "json"
			r := &hubtest.Runner{Hub: h}
			var results []hubtest.Result
			failed, skipped, xfailed := 0, 0, 0
			var xpassed []string
			r.RunAll(cmd.Context(), names, parallel, func(res hubtest.Result) {
				why, isKnown := known[res.Name]
				switch {
				case res.Failed() && isKnown:
					xfailed++
				case res.Failed():
					failed++
				case res.Skipped != "":
					skipped++
				case isKnown:
					xpassed = append(xpassed, res.Name)
				}
				if asJSON {
					results = append(results, res)
					return
				}
				if res.Failed() && isKnown {
					fmt.Fprintf(cli.Out, "XFAIL %s: known failure: %s\n", res.Name, why)
					return
				}
				printHubtestResult(cli.Out, res)
			})
			if asJSON {
				if err := cli.printJSON(results); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cli.Out, "%d tests: %d passed, %d failed, %d skipped", len(names), len(names)-failed-skipped-xfailed, failed, skipped)
				if len(known) > 0 {
					fmt.Fprintf(cli.Out, ", %d known failures", xfailed)
				}
				fmt.Fprintln(cli.Out)
			}
			if failed > 0 {
				return fmt.Errorf("%d hub tests failed", failed)
			}
			if len(xpassed) > 0 {
				// a list that no longer matches hides nothing: keep it true
				return fmt.Errorf("listed as known failures but passed (remove them from %s): %s", knownFile, strings.Join(xpassed, ", "))
			}
			return nil
		},
	}
	run.Flags().StringVar(&hubDir, "hub", "/etc/crowdsec/hub", "hub folder (with index.json and .tests)")
	run.Flags().BoolVar(&all, "all", false, "run every test of the hub")
	run.Flags().IntVar(&parallel, "parallel", runtime.NumCPU(), "how many tests run at once")
	run.Flags().StringVar(&knownFile, "known-failures", "", "file of tests expected to fail (\"NAME reason\" per line): reported as XFAIL, and an error if one passes")
	cmd.AddCommand(run, newHubtestCoverageCmd(cli))
	return cmd
}

// readKnownFailures reads a known-failures file: one "NAME reason" per
// line, # comments and blank lines ignored. "" is no file.
func readKnownFailures(path string) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("known failures: %w", err)
	}
	known := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, why, _ := strings.Cut(line, " ")
		if why = strings.TrimSpace(why); why == "" {
			return nil, fmt.Errorf("known failures %s:%d: %q gives no reason", path, i+1, name)
		}
		known[name] = why
	}
	return known, nil
}

func printHubtestResult(w io.Writer, res hubtest.Result) {
	switch {
	case res.Error != "":
		fmt.Fprintf(w, "FAIL  %s: %s\n", res.Name, res.Error)
	case len(res.Failures) > 0:
		fmt.Fprintf(w, "FAIL  %s: %d assertions failed (%d parser and %d scenario assertions held)\n",
			res.Name, len(res.Failures), res.ParserChecks, res.ScenarioChecks)
		for i, f := range res.Failures {
			if i == maxFailuresShown {
				fmt.Fprintf(w, "      ... and %d more\n", len(res.Failures)-maxFailuresShown)
				break
			}
			// an expr error spans lines (the snippet and its caret)
			fmt.Fprintf(w, "      %s\n", strings.ReplaceAll(f.String(), "\n", "\n      "))
		}
	case res.Skipped != "":
		fmt.Fprintf(w, "SKIP  %s: %s\n", res.Name, res.Skipped)
	default:
		fmt.Fprintf(w, "PASS  %s (%d parser and %d scenario assertions)\n", res.Name, res.ParserChecks, res.ScenarioChecks)
	}
}

func newHubtestCoverageCmd(cli *CLI) *cobra.Command {
	var hubDir string
	var parsers, scenarios bool
	cmd := &cobra.Command{
		Use:   "coverage",
		Short: "Show which parsers and scenarios of the hub some test loads",
		Example: `cscli hubtest coverage --hub ../shared/hub
cscli hubtest coverage --hub ../shared/hub --scenarios -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cli.bindIO(cmd)
			h, err := hub.OpenHub(hubDir)
			if err != nil {
				return err
			}
			cov, err := hubtest.CoverageOf(h)
			if err != nil {
				return err
			}
			if !parsers && !scenarios {
				parsers, scenarios = true, true
			}
			if !parsers {
				cov.Parsers = nil
			}
			if !scenarios {
				cov.Scenarios = nil
			}
			if cli.OutputFormat() == "json" {
				type kindJSON struct {
					Percent float64                `json:"percent"`
					Items   []hubtest.ItemCoverage `json:"items"`
				}
				out := map[string]kindJSON{}
				if parsers {
					out["parsers"] = kindJSON{hubtest.Percent(cov.Parsers), cov.Parsers}
				}
				if scenarios {
					out["scenarios"] = kindJSON{hubtest.Percent(cov.Scenarios), cov.Scenarios}
				}
				return cli.printJSON(out)
			}
			for _, k := range []struct {
				kind  string
				items []hubtest.ItemCoverage
				on    bool
			}{{"parsers", cov.Parsers, parsers}, {"scenarios", cov.Scenarios, scenarios}} {
				if !k.on {
					continue
				}
				rows := make([][]string, 0, len(k.items))
				for _, it := range k.items {
					mark := "no"
					if len(it.Tests) > 0 {
						mark = "yes"
					}
					rows = append(rows, []string{it.Name, mark, fmt.Sprint(len(it.Tests))})
				}
				renderTable(cli.Out, []string{strings.TrimSuffix(k.kind, "s"), "tested", "tests"}, rows)
				tested := 0
				for _, it := range k.items {
					if len(it.Tests) > 0 {
						tested++
					}
				}
				fmt.Fprintf(cli.Out, "%s coverage: %d/%d (%.0f%%)\n\n", k.kind, tested, len(k.items), hubtest.Percent(k.items))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&hubDir, "hub", "/etc/crowdsec/hub", "hub folder (with index.json and .tests)")
	cmd.Flags().BoolVar(&parsers, "parsers", false, "show parser coverage only")
	cmd.Flags().BoolVar(&scenarios, "scenarios", false, "show scenario coverage only")
	return cmd
}
