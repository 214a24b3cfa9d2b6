package cscli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/capi"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/store"
)

// Marks of the console status table, upstream's emoji.
const (
	markCheckButton = "✅"
	markCross       = "❌"
)

// consoleOptionHelp says what each console option shares.
var consoleOptionHelp = map[string]string{
	"custom":             "Forward alerts from custom scenarios to the console",
	"manual":             "Forward manual decisions to the console",
	"tainted":            "Forward alerts from tainted scenarios to the console",
	"context":            "Forward context with alerts to the console",
	"console_management": "Receive decisions from console",
}

// enrollDefaults are the options an enrollment turns on, as upstream.
var enrollDefaults = []string{"manual", "tainted", "context"}

func newConsoleCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "console [action]",
		Short: "Manage interaction with Crowdsec console (https://app.crowdsec.net)",
		Long: `Enroll this instance in the CrowdSec console, and choose what the Central API
receives: the console options live in api.server.console_path (console.yaml,
upstream's file), read by the local API at start and on reload.`,
		DisableAutoGenTag: true,
	}
	cmd.AddCommand(newConsoleEnrollCmd(cli), newConsoleSetCmd(cli, true), newConsoleSetCmd(cli, false), newConsoleStatusCmd(cli))
	return cmd
}

type enrollOpts struct {
	name             string
	overwrite, quick bool
	tags             []string
	enable, disable  []string
}

func newConsoleEnrollCmd(cli *CLI) *cobra.Command {
	var o enrollOpts
	cmd := &cobra.Command{
		Use:   "enroll [enroll-key]",
		Short: "Enroll this instance to https://app.crowdsec.net [requires local API]",
		Long: `Enroll this instance to https://app.crowdsec.net

You can get your enrollment key by creating an account on https://app.crowdsec.net.
After running this command you will need to validate the enrollment in the webapp,
then restart (or reload) crowdsec. --quick enrolls without a key: it prints a link
to open in the console instead.`,
		Example: `cscli console enroll YOUR-ENROLL-KEY
cscli console enroll --quick
cscli console enroll --name [instance_name] YOUR-ENROLL-KEY
cscli console enroll --name [instance_name] --tags [tag_1] --tags [tag_2] YOUR-ENROLL-KEY
cscli console enroll --enable console_management YOUR-ENROLL-KEY
cscli console enroll --disable context YOUR-ENROLL-KEY

valid options are : custom,manual,tainted,context,console_management,all (see 'cscli console status' for details)`,
		Args:              cobra.MaximumNArgs(1),
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			key := ""
			if len(args) == 1 {
				key = args[0]
			}
			switch {
			case o.quick && key != "":
				return errors.New("--quick enrolls without a key: give one or the other")
			case !o.quick && key == "":
				return errors.New("an enroll key is required (from https://app.crowdsec.net), or --quick")
			}
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				return cli.consoleEnroll(ctx, st, key, o)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.name, "name", "n", "", "Name to display in the console (default current hostname)")
	fl.BoolVar(&o.overwrite, "overwrite", false, "Force enroll the instance")
	fl.BoolVarP(&o.quick, "quick", "q", false, "Enrolls the instance without an enroll key by visiting a link to the CrowdSec console.")
	fl.StringSliceVarP(&o.tags, "tags", "t", nil, "Tags to display in the console")
	fl.StringSliceVarP(&o.enable, "enable", "e", nil, "Enable console options")
	fl.StringSliceVarP(&o.disable, "disable", "d", nil, "Disable console options")
	return cmd
}

// consoleOptionArgs checks option names; "all" stands for every option.
func consoleOptionArgs(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		if n == "all" {
			return slices.Clone(csconfig.ConsoleOptionNames), nil
		}
		if (&csconfig.ConsoleOptions{}).Option(n) == nil {
			return nil, fmt.Errorf("option %s doesn't exist (valid: %v, all)", n, csconfig.ConsoleOptionNames)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// capiCredentials reads [api.server.online_client] and its credentials:
// what cscli needs to talk to the Central API.
func (cli *CLI) capiCredentials() (*csconfig.OnlineClient, *csconfig.CAPICredentials, error) {
	cfg, err := cli.Config()
	if err != nil {
		return nil, nil, err
	}
	oc := cfg.API.Server.OnlineClient
	if oc == nil {
		return nil, nil, errors.New("no [api.server.online_client] section in the configuration: the Central API is not used")
	}
	creds, err := csconfig.LoadCAPICredentials(oc.CredentialsPath)
	var inc *csconfig.IncompleteCAPICredentialsError
	if errors.As(err, &inc) || errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w: run 'cscli capi register' first", err)
	}
	return oc, creds, err
}

// capiClient logs in as the LAPI would (its machines' scenarios) and keeps
// the token in the database for it.
func capiClient(creds *csconfig.CAPICredentials, st *store.Store) (*capi.Client, error) {
	return capi.NewClient(capi.ClientConfig{URL: creds.URL, Login: creds.Login, Password: creds.Password,
		Scenarios: st.MachineScenarios, Tokens: st})
}

func (cli *CLI) consoleEnroll(ctx context.Context, st *store.Store, key string, o enrollOpts) error {
	// The options are checked before anything is sent.
	enable, err := consoleOptionArgs(append(slices.Clone(enrollDefaults), o.enable...))
	if err != nil {
		return err
	}
	disable, err := consoleOptionArgs(o.disable)
	if err != nil {
		return err
	}
	enable = slices.DeleteFunc(enable, func(n string) bool { return slices.Contains(disable, n) })
	_, creds, err := cli.capiCredentials()
	if err != nil {
		return err
	}
	opts, err := csconfig.LoadConsole(cli.cfg.API.Server.ConsolePath)
	if err != nil {
		return err
	}
	name := o.name
	if name == "" {
		if name, err = os.Hostname(); err != nil || name == "" {
			return fmt.Errorf("no --name and no hostname to default to: %v", err)
		}
	}
	client, err := capiClient(creds, st)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, lapiCallTimeout)
	defer cancel()
	already, resp, err := client.Enroll(ctx, capi.EnrollRequest{AttachmentKey: key, Name: name, Tags: o.tags, Overwrite: o.overwrite, AutoEnroll: o.quick})
	if err != nil {
		return fmt.Errorf("could not enroll instance: %w", err)
	}
	if already && !o.overwrite {
		fmt.Fprintln(cli.Err, "Instance already enrolled. You can use '--overwrite' to force enroll")
		return nil
	}
	for _, n := range enable {
		*opts.Option(n) = true
	}
	for _, n := range disable {
		*opts.Option(n) = false
	}
	if err := csconfig.WriteConsole(cli.cfg.API.Server.ConsolePath, opts); err != nil {
		return err
	}
	for _, n := range enable {
		fmt.Fprintf(cli.Err, "Enabled %s : %s\n", n, consoleOptionHelp[n])
	}
	for _, n := range disable {
		fmt.Fprintf(cli.Err, "Disabled %s : %s\n", n, consoleOptionHelp[n])
	}
	// The LAPI's kept token predates the enrollment: without it, its next
	// start or reload logs in and learns about the organization.
	if err := capi.ForgetToken(ctx, st); err != nil {
		return err
	}
	if o.quick {
		fmt.Fprintf(cli.Out, "Open %s to enroll this instance in your console", resp.URL)
		if resp.ExpireAt > 0 {
			fmt.Fprintf(cli.Out, " (before %s)", time.UnixMilli(resp.ExpireAt).UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(cli.Out, ".")
	} else {
		fmt.Fprintln(cli.Err, "Watcher successfully enrolled. Visit https://app.crowdsec.net to accept it.")
	}
	fmt.Fprintln(cli.Err, "Please restart crowdsec after accepting the enrollment.")
	return nil
}

func newConsoleSetCmd(cli *CLI, enable bool) *cobra.Command {
	var all bool
	use, short, long, ex := "enable [option]...", "Enable a console option",
		"Share more with the Central API, so the console can show and do more", "sudo cscli console enable tainted"
	if !enable {
		use, short, long, ex = "disable [option]...", "Disable a console option",
			"Stop sharing the given information with the Central API.", "sudo cscli console disable tainted"
	}
	cmd := &cobra.Command{
		Use:               use,
		Short:             short,
		Long:              long + "\n\nValid options: custom, manual, tainted, context, console_management (or --all).",
		Example:           ex,
		ValidArgs:         csconfig.ConsoleOptionNames,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.setConsoleOptions(enable, all, args)
		},
	}
	verb := map[bool]string{true: "Enable", false: "Disable"}[enable]
	cmd.Flags().BoolVarP(&all, "all", "a", false, verb+" all console options")
	return cmd
}

// setConsoleOptions rewrites console.yaml with the options turned on or
// off, saying which changed, and reminds the operator to reload.
func (cli *CLI) setConsoleOptions(enable, all bool, args []string) error {
	word := map[bool]string{true: "enable", false: "disable"}[enable]
	switch {
	case all && len(args) > 0:
		return fmt.Errorf("give options or --all, not both")
	case all:
		args = csconfig.ConsoleOptionNames
	case len(args) == 0:
		return fmt.Errorf("you must specify at least one feature to %s", word)
	}
	names, err := consoleOptionArgs(args)
	if err != nil {
		return err
	}
	path := cli.cfg.API.Server.ConsolePath
	opts, err := csconfig.LoadConsole(path)
	if err != nil {
		return err
	}
	for _, n := range names {
		if p := opts.Option(n); *p != enable {
			*p = enable
			fmt.Fprintf(cli.Err, "%s set to %t\n", n, enable)
		}
	}
	if err := csconfig.WriteConsole(path, opts); err != nil {
		return err
	}
	switch {
	case all && enable:
		fmt.Fprintln(cli.Err, "All features have been enabled successfully")
	case all:
		fmt.Fprintln(cli.Err, "All features have been disabled")
	default:
		fmt.Fprintf(cli.Err, "%v have been %sd\n", names, word)
	}
	fmt.Fprintln(cli.Err, reloadMessage)
	return nil
}

func newConsoleStatusCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "status",
		Short:             "Shows status of the console options",
		Example:           "sudo cscli console status\nsudo cscli console status -o json",
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.consoleStatus()
		},
	}
}

// consoleStatus prints the options: a table, JSON {"option": bool}, or
// CSV option,enabled in upstream's row order.
func (cli *CLI) consoleStatus() error {
	opts, err := csconfig.LoadConsole(cli.cfg.API.Server.ConsolePath)
	if err != nil {
		return err
	}
	switch cli.OutputFormat() {
	case "json":
		out := map[string]bool{}
		for _, n := range csconfig.ConsoleOptionNames {
			out[n] = *opts.Option(n)
		}
		return cli.printJSON(out)
	case "raw":
		var rows [][]string
		for _, n := range []string{"manual", "custom", "tainted", "context", "console_management"} {
			rows = append(rows, []string{n, strconv.FormatBool(*opts.Option(n))})
		}
		return writeCSV(cli.Out, []string{"option", "enabled"}, rows)
	}
	var rows [][]string
	for _, n := range csconfig.ConsoleOptionNames {
		mark := markCross
		if *opts.Option(n) {
			mark = markCheckButton
		}
		rows = append(rows, []string{n, mark, consoleOptionHelp[n]})
	}
	renderTable(cli.Out, []string{"Option Name", "Activated", "Description"}, rows)
	return nil
}
