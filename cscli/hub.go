package cscli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/agent/hub"
)

// hubInstaller opens the hub folder (--hub, else config_paths.hub_dir) and
// targets the configuration and data folders of the config file.
func (cli *CLI) hubInstaller(hubDir string) (*hub.Installer, error) {
	cfg, err := cli.Config()
	if err != nil {
		return nil, err
	}
	if hubDir == "" {
		hubDir = cfg.ConfigPaths.HubDir
	}
	h, err := hub.OpenHub(hubDir)
	if err != nil {
		return nil, err
	}
	return &hub.Installer{Hub: h, ConfigDir: filepath.Clean(cfg.ConfigPaths.ConfigDir), DataDir: filepath.Clean(cfg.ConfigPaths.DataDir)}, nil
}

func newHubCmd(cli *CLI) *cobra.Command {
	var hubDir string
	cmd := &cobra.Command{Use: "hub", Short: "Manage hub items (from a local hub folder)"}
	cmd.PersistentFlags().StringVar(&hubDir, "hub", "", "hub folder (default: config_paths.hub_dir)")
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List installed items of every kind",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cli.bindIO(cmd)
			in, err := cli.hubInstaller(hubDir)
			if err != nil {
				return err
			}
			for _, kind := range hub.Kinds {
				if err := listItems(cli, in, kind, false); err != nil {
					return err
				}
			}
			return nil
		},
	})
	return cmd
}

func listItems(cli *CLI, in *hub.Installer, kind string, all bool) error {
	var rows [][]string
	for _, n := range in.Hub.Items(kind) {
		inst, tainted := in.Installed(kind, n)
		if !inst && !all {
			continue
		}
		status := "disabled"
		switch {
		case inst && tainted:
			status = "enabled,tainted"
		case inst:
			status = "enabled"
		}
		i, _ := in.Hub.Item(kind, n)
		rows = append(rows, []string{n, status, i.Version, i.Path})
	}
	switch cli.OutputFormat() {
	case "json":
		out := make([]map[string]string, 0, len(rows))
		for _, r := range rows {
			out = append(out, map[string]string{"name": r[0], "status": r[1], "local_version": r[2], "local_path": r[3]})
		}
		return cli.printJSON(map[string]any{kind: out})
	case "raw":
		return writeCSV(cli.Out, []string{"name", "status", "version", "description"}, rows)
	}
	fmt.Fprintf(cli.Out, "%s\n", kind)
	renderTable(cli.Out, []string{"Name", "Status", "Version", "Local Path"}, rows)
	return nil
}

// newItemsCmd builds "cscli collections|parsers|scenarios|postoverflows".
func newItemsCmd(kind string) func(*CLI) *cobra.Command {
	return func(cli *CLI) *cobra.Command {
		var hubDir string
		cmd := &cobra.Command{Use: kind, Short: "Manage hub " + kind}
		cmd.PersistentFlags().StringVar(&hubDir, "hub", "", "hub folder (default: config_paths.hub_dir)")
		var all bool
		list := &cobra.Command{
			Use:   "list",
			Short: "List " + kind + " (installed; -a for all)",
			RunE: func(cmd *cobra.Command, _ []string) error {
				cli.bindIO(cmd)
				in, err := cli.hubInstaller(hubDir)
				if err != nil {
					return err
				}
				return listItems(cli, in, kind, all)
			},
		}
		list.Flags().BoolVarP(&all, "all", "a", false, "list every item of the hub")
		install := &cobra.Command{
			Use:   "install NAME...",
			Short: "Install " + kind + " (collections bring their items)",
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				cli.bindIO(cmd)
				in, err := cli.hubInstaller(hubDir)
				if err != nil {
					return err
				}
				for _, n := range args {
					done, err := in.Install(kind, n)
					if err != nil {
						return err
					}
					for _, d := range done {
						fmt.Fprintf(cli.Out, "enabled %s\n", d)
					}
				}
				fmt.Fprintln(cli.Out, "Run 'sudo systemctl reload crowdsec' for the new configuration to be effective.")
				return nil
			},
		}
		remove := &cobra.Command{
			Use:   "remove NAME...",
			Short: "Remove installed " + kind,
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				cli.bindIO(cmd)
				in, err := cli.hubInstaller(hubDir)
				if err != nil {
					return err
				}
				for _, n := range args {
					if err := in.Remove(kind, n); err != nil {
						return err
					}
					fmt.Fprintf(cli.Out, "disabled %s/%s\n", kind, n)
				}
				return nil
			},
		}
		inspect := &cobra.Command{
			Use:   "inspect NAME",
			Short: "Show one of the " + kind,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				cli.bindIO(cmd)
				in, err := cli.hubInstaller(hubDir)
				if err != nil {
					return err
				}
				i, ok := in.Hub.Item(kind, args[0])
				if !ok {
					return fmt.Errorf("%s %q is not in the hub", kind, args[0])
				}
				inst, tainted := in.Installed(kind, i.Name)
				if cli.OutputFormat() == "json" {
					return cli.printJSON(map[string]any{"name": i.Name, "type": kind, "stage": i.Stage, "version": i.Version,
						"path": i.Path, "installed": inst, "tainted": tainted, "dependencies": i.Deps})
				}
				rows := [][]string{{"name", i.Name}, {"type", kind}, {"stage", i.Stage}, {"version", i.Version}, {"path", i.Path},
					{"installed", fmt.Sprint(inst)}, {"tainted", fmt.Sprint(tainted)}}
				for k, v := range i.Deps {
					for _, d := range v {
						rows = append(rows, []string{k, d})
					}
				}
				renderTable(cli.Out, []string{"Key", "Value"}, rows)
				return nil
			},
		}
		cmd.AddCommand(list, install, remove, inspect)
		return cmd
	}
}
