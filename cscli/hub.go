package cscli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/agent/hub"
)

// reloadHint is what to run once the enabled items changed.
const reloadHint = "Run 'sudo systemctl reload crowdsec' for the new configuration to be effective."

// hubInstaller opens config_paths.hub_dir and targets the configuration
// folder, with the configuration's collections counted as enabled: the
// same view the daemon loads (hub.Hub.Enabled).
func (cli *CLI) hubInstaller() (*hub.Installer, error) {
	cfg, err := cli.Config()
	if err != nil {
		return nil, err
	}
	h, err := hub.OpenHub(cfg.ConfigPaths.HubDir)
	if err != nil {
		return nil, err
	}
	return &hub.Installer{Hub: h, ConfigDir: filepath.Clean(cfg.ConfigPaths.ConfigDir), Collections: cfg.Crowdsec.Collections}, nil
}

// warnEnabled prints what keeps items from loading, as the daemon would
// log it.
func (cli *CLI) warnEnabled(en *hub.Enabled) {
	for _, p := range en.Problems {
		fmt.Fprintf(cli.Err, "warning: %v\n", p)
	}
	for _, w := range en.Warnings {
		fmt.Fprintf(cli.Err, "warning: %s\n", w)
	}
}

func newHubCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{Use: "hub", Short: "Manage the hub index and the installed items",
		Long: "The hub folder is config_paths.hub_dir: Rampart's own rules (index.json) and what\n" +
			"'cscli hub update' imported (.index.json). Installed items are the files under\n" +
			"config_dir's parsers/, scenarios/, postoverflows/, collections/ and contexts/,\n" +
			"plus the collections crowdsec_service.collections names: what the daemon loads."}
	var all bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List enabled items of every kind (-a: every item of the hub too)",
		Args:  cobra.NoArgs,
		RunE: cli.withInstaller(func(in *hub.Installer, _ []string) error {
			en := in.Enabled()
			cli.warnEnabled(en)
			return cli.listItems(in, en, hub.Kinds, all)
		}),
	}
	list.Flags().BoolVarP(&all, "all", "a", false, "list every item of the hub, enabled or not")
	var from string
	update := &cobra.Command{
		Use:   "update",
		Short: "Refresh the hub index from a local hub folder or archive",
		Long: "Imports a hub (index and items' files, data files, grok patterns) into config_paths.hub_dir:\n" +
			"from --from, else cscli.hub_url (a file:// URL). The source is a folder holding index.json or\n" +
			".index.json, or a .tar.gz/.tgz/.tar/.zip archive of one. Installed items are not changed:\n" +
			"'cscli hub list' shows those with a newer version as update-available; 'cscli hub upgrade'\n" +
			"installs them. Rampart never downloads.",
		Example: "cscli hub update --from /srv/hub\ncscli hub update --from /tmp/hub-master.tar.gz",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cli.bindIO(cmd)
			cfg, err := cli.Config()
			if err != nil {
				return err
			}
			src := from
			if src == "" {
				src = cfg.Cscli.HubURL
			}
			if src == "" {
				return errors.New("no hub to update from: give --from FOLDER|ARCHIVE or set cscli.hub_url (file://...) in the configuration")
			}
			in, err := cli.hubInstaller()
			if err != nil {
				return err
			}
			srcHub, cleanup, err := hub.OpenSource(src)
			if err != nil {
				return err
			}
			defer cleanup()
			fmt.Fprintf(cli.Out, "Reading the hub index from %s\n", src)
			rep, err := in.Import(srcHub, nil)
			for _, s := range rep.Skipped {
				fmt.Fprintf(cli.Err, "warning: skipped %s\n", s)
			}
			if err != nil {
				return err
			}
			if !rep.Changed() {
				fmt.Fprintln(cli.Out, "Nothing to do, the hub index is up to date.")
				return nil
			}
			for _, n := range rep.New {
				fmt.Fprintf(cli.Out, "new %s\n", n)
			}
			for _, u := range rep.Upgraded {
				fmt.Fprintf(cli.Out, "new version %s\n", u)
			}
			fmt.Fprintf(cli.Out, "Updated %s: %d items, %d new, %d with a new version.\n",
				filepath.Join(in.Hub.Dir, hub.FetchedIndexFile), rep.Items, len(rep.New), len(rep.Upgraded))
			if n := countUpdatable(in.Enabled()); n > 0 {
				fmt.Fprintf(cli.Out, "%d installed items can be upgraded: run 'cscli hub upgrade'.\n", n)
			}
			return nil
		},
	}
	update.Flags().StringVar(&from, "from", "", "hub folder, .tar.gz/.zip archive of one, or file:// URL (default: cscli.hub_url)")
	var force bool
	upgrade := &cobra.Command{
		Use:   "upgrade",
		Short: "Upgrade installed items to the hub index's version",
		Long: "Rewrites every installed item that is not the index's current version with that version,\n" +
			"and installs what an upgraded collection now lists. Tainted (locally modified) items are\n" +
			"left alone unless --force. Run 'cscli hub update' first to get newer versions.",
		Args: cobra.NoArgs,
		RunE: cli.withInstaller(func(in *hub.Installer, _ []string) error {
			in.Force = force
			return cli.upgrade(in, "")
		}),
	}
	upgrade.Flags().BoolVar(&force, "force", false, "overwrite tainted items too")
	cmd.AddCommand(list, update, upgrade)
	return cmd
}

// upgrade runs an upgrade (of kind's names, or of everything) and says
// what it did.
func (cli *CLI) upgrade(in *hub.Installer, kind string, names ...string) error {
	changes, err := in.Upgrade(kind, names...)
	printChanges(cli, changes)
	if err != nil {
		return err
	}
	upgraded := 0
	for _, c := range changes {
		if c.Skipped == "" {
			upgraded++
		}
	}
	if upgraded == 0 {
		fmt.Fprintln(cli.Out, "Nothing to do, every installed item is up to date.")
		return nil
	}
	fmt.Fprintln(cli.Out, reloadHint)
	return nil
}

func countUpdatable(en *hub.Enabled) int {
	n := 0
	for _, st := range en.Items {
		if st.ByConfig == "" && !st.Local && !st.UpToDate() {
			n++
		}
	}
	return n
}

// printChanges prints an upgrade's plan as upstream does: what was
// updated, from which version to which, and what was left and why.
func printChanges(cli *CLI, changes []hub.Change) {
	var done, kept []string
	for _, c := range changes {
		line := fmt.Sprintf(" %s: %s (%s -> %s)", c.Kind, c.Name, c.From, c.To)
		if c.Skipped != "" {
			kept = append(kept, fmt.Sprintf(" %s: %s: %s", c.Kind, c.Name, c.Skipped))
			continue
		}
		done = append(done, line)
	}
	if len(done) > 0 {
		fmt.Fprintln(cli.Out, "upgraded")
		fmt.Fprintln(cli.Out, strings.Join(done, "\n"))
	}
	if len(kept) > 0 {
		fmt.Fprintln(cli.Out, "not upgraded")
		fmt.Fprintln(cli.Out, strings.Join(kept, "\n"))
	}
}

// itemRow is one line of a list: an enabled item, or (with -a) one of the
// hub that is not.
type itemRow struct {
	kind, name, status, version, latest, path string
}

func (cli *CLI) listItems(in *hub.Installer, en *hub.Enabled, kinds []string, all bool) error {
	byKind := map[string][]itemRow{}
	for _, kind := range kinds {
		enabled := map[string]bool{}
		for _, st := range en.Of(kind) {
			enabled[st.Name] = true
			byKind[kind] = append(byKind[kind], itemRow{kind, st.Name, st.Status(), st.Version, st.Latest, st.Path})
		}
		if !all {
			continue
		}
		for _, n := range in.Hub.Items(kind) {
			if enabled[n] {
				continue
			}
			i, _ := in.Hub.Item(kind, n)
			byKind[kind] = append(byKind[kind], itemRow{kind, n, "disabled", "", i.Version, ""})
		}
	}
	switch cli.OutputFormat() {
	case "json":
		out := map[string]any{}
		for _, kind := range kinds {
			items := make([]map[string]string, 0, len(byKind[kind]))
			for _, r := range byKind[kind] {
				items = append(items, map[string]string{"name": r.name, "status": r.status, "local_version": r.version,
					"version": r.latest, "local_path": r.path})
			}
			out[kind] = items
		}
		return cli.printJSON(out)
	case "raw":
		var rows [][]string
		for _, kind := range kinds {
			for _, r := range byKind[kind] {
				rows = append(rows, []string{r.name, r.status, r.version, r.path, kind})
			}
		}
		return writeCSV(cli.Out, []string{"name", "status", "version", "local_path", "type"}, rows)
	}
	for _, kind := range kinds {
		if len(byKind[kind]) == 0 && len(kinds) > 1 {
			continue
		}
		var rows [][]string
		for _, r := range byKind[kind] {
			v := r.version
			if r.status == "disabled" {
				v = r.latest
			}
			rows = append(rows, []string{r.name, r.status, v, r.path})
		}
		fmt.Fprintf(cli.Out, "%s\n", strings.ToUpper(kind))
		renderTable(cli.Out, []string{"Name", "Status", "Version", "Local Path"}, rows)
	}
	return nil
}

// newItemsCmd builds "cscli collections|parsers|scenarios|postoverflows|contexts".
func newItemsCmd(kind string) func(*CLI) *cobra.Command {
	return func(cli *CLI) *cobra.Command {
		cmd := &cobra.Command{Use: kind, Short: "Manage hub " + kind}
		var all bool
		list := &cobra.Command{
			Use:   "list",
			Short: "List enabled " + kind + " (-a: every one of the hub too)",
			Args:  cobra.NoArgs,
			RunE: cli.withInstaller(func(in *hub.Installer, _ []string) error {
				en := in.Enabled()
				cli.warnEnabled(en)
				return cli.listItems(in, en, []string{kind}, all)
			}),
		}
		list.Flags().BoolVarP(&all, "all", "a", false, "list every item of the hub, enabled or not")
		var srcDir string
		var force bool
		install := &cobra.Command{
			Use:   "install NAME...",
			Short: "Install " + kind + " (collections bring their items)",
			Long: "Copies the items from the hub folder (config_paths.hub_dir) into the configuration folder,\n" +
				"under a per-author folder. With --hub, the items (and what they need) are first imported\n" +
				"from that hub folder or archive into config_paths.hub_dir, as 'cscli hub update' would.",
			Args: cobra.MinimumNArgs(1),
			RunE: cli.withInstaller(func(in *hub.Installer, args []string) error {
				in.Force = force
				if srcDir != "" {
					if err := cli.importItems(in, srcDir, kind, args); err != nil {
						return err
					}
				}
				for _, n := range args {
					done, err := in.Install(kind, n)
					for _, d := range done {
						fmt.Fprintf(cli.Out, "enabled %s\n", d)
					}
					if err != nil {
						return err
					}
				}
				fmt.Fprintln(cli.Out, reloadHint)
				return nil
			}),
		}
		install.Flags().StringVar(&srcDir, "hub", "", "import the items from this hub folder or archive first")
		install.Flags().BoolVar(&force, "force", false, "overwrite tainted (locally modified) items")
		var removeForce bool
		remove := &cobra.Command{
			Use:   "remove NAME...",
			Short: "Remove installed " + kind,
			Args:  cobra.MinimumNArgs(1),
			RunE: cli.withInstaller(func(in *hub.Installer, args []string) error {
				in.Force = removeForce
				for _, n := range args {
					done, err := in.Remove(kind, n)
					for _, d := range done {
						fmt.Fprintf(cli.Out, "disabled %s\n", d)
					}
					if err != nil {
						return err
					}
				}
				fmt.Fprintln(cli.Out, reloadHint)
				return nil
			}),
		}
		remove.Flags().BoolVar(&removeForce, "force", false, "also remove the tainted or local items a removed collection lists")
		inspect := &cobra.Command{
			Use:   "inspect NAME",
			Short: "Show one of the " + kind + ": its file, version and state",
			Args:  cobra.ExactArgs(1),
			RunE: cli.withInstaller(func(in *hub.Installer, args []string) error {
				return cli.inspectItem(in, kind, args[0])
			}),
		}
		var upForce bool
		upgrade := &cobra.Command{
			Use:   "upgrade NAME...",
			Short: "Upgrade installed " + kind + " to the hub index's version (tainted ones only with --force)",
			Args:  cobra.MinimumNArgs(1),
			RunE: cli.withInstaller(func(in *hub.Installer, args []string) error {
				in.Force = upForce
				return cli.upgrade(in, kind, args...)
			}),
		}
		upgrade.Flags().BoolVar(&upForce, "force", false, "overwrite tainted (locally modified) items")
		cmd.AddCommand(list, install, remove, inspect, upgrade)
		return cmd
	}
}

// importItems brings kind/names and everything they list from the hub at
// src into the configured hub folder.
func (cli *CLI) importItems(in *hub.Installer, src, kind string, names []string) error {
	srcHub, cleanup, err := hub.OpenSource(src)
	if err != nil {
		return err
	}
	defer cleanup()
	only := map[string]bool{}
	var walk func(kind, name string) error
	walk = func(kind, name string) error {
		if only[kind+":"+name] {
			return nil
		}
		i, ok := srcHub.Item(kind, name)
		if !ok {
			return fmt.Errorf("%s %q is not in the hub at %s", kind, name, src)
		}
		only[kind+":"+name] = true
		if kind == "collections" {
			if info, err := srcHub.Collection(name); err == nil {
				i = info
			}
		}
		for k, deps := range i.Deps {
			for _, d := range deps {
				if _, ok := srcHub.Item(k, d); ok {
					if err := walk(k, d); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	for _, n := range names {
		if err := walk(kind, n); err != nil {
			return err
		}
	}
	rep, err := in.Import(srcHub, only)
	for _, s := range rep.Skipped {
		fmt.Fprintf(cli.Err, "warning: skipped %s\n", s)
	}
	return err
}

func (cli *CLI) inspectItem(in *hub.Installer, kind, name string) error {
	en := in.Enabled()
	st, enabled := en.Get(kind, name)
	i, inHub := in.Hub.Item(kind, name)
	if !enabled && !inHub {
		return fmt.Errorf("%s %q is neither installed nor in the hub index", kind, name)
	}
	status, path, stage := "disabled", "", i.Stage
	if enabled {
		status, path, stage = st.Status(), st.Path, st.Stage
	}
	fields := [][2]string{{"name", name}, {"type", kind}, {"stage", stage}, {"status", status},
		{"local_version", st.Version}, {"version", i.Version}, {"local_path", path}, {"enabled_by", st.ByConfig}, {"note", st.Note}}
	if !inHub {
		fields[5][1] = ""
	}
	if cli.OutputFormat() == "json" {
		out := map[string]any{"installed": enabled, "tainted": st.Tainted, "local": st.Local, "up_to_date": enabled && st.UpToDate()}
		for _, f := range fields {
			out[f[0]] = f[1]
		}
		if inHub {
			out["dependencies"] = i.Deps
		}
		return cli.printJSON(out)
	}
	var rows [][]string
	for _, f := range fields {
		if f[1] != "" {
			rows = append(rows, []string{f[0], f[1]})
		}
	}
	if inHub {
		for _, k := range hub.Kinds {
			for _, d := range i.Deps[k] {
				rows = append(rows, []string{k, d})
			}
		}
	}
	renderTable(cli.Out, []string{"Key", "Value"}, rows)
	return nil
}

// withInstaller makes a command's RunE that binds its output and opens
// the hub installer before running f.
func (cli *CLI) withInstaller(f func(in *hub.Installer, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cli.bindIO(cmd)
		in, err := cli.hubInstaller()
		if err != nil {
			return err
		}
		return f(in, args)
	}
}
