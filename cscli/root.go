// Package cscli implements the operator CLI with upstream cscli's command
// tree, flags and output formats. Commands about decisions and alerts talk
// to the LAPI over HTTP; bouncers, machines, allowlists and alerts flush
// work on the local database directly, as upstream's do.
package cscli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	log "github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/journallog"
	"github.com/rampart-ips/rampart/internal/manpage"
	"github.com/rampart-ips/rampart/internal/manpage/cobraman"
	"github.com/rampart-ips/rampart/internal/version"
	"github.com/rampart-ips/rampart/lapi/store"
)

// CLI holds what every command shares: flags, configuration, outputs.
type CLI struct {
	ConfigPath string
	Output     string // human, json or raw (CSV; YAML for alerts inspect)
	Color      string
	Out        io.Writer
	Err        io.Writer
	In         io.Reader

	cfg *csconfig.Config
}

// NewRootCommand builds the cscli command tree.
func NewRootCommand() *cobra.Command {
	cli := &CLI{Out: os.Stdout, Err: os.Stderr, In: os.Stdin}
	var debug, info, warning, errLvl, trace bool
	var manDir *string
	root := &cobra.Command{
		Use:           "cscli",
		Short:         "cscli allows you to manage Rampart (CrowdSec-compatible)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Version,
		// Without a command: the help, or the man pages when packaging asks.
		RunE: func(cmd *cobra.Command, _ []string) error {
			if *manDir != "" {
				return cobraman.WritePages(*manDir, cmd, manpage.InfoFromEnv(version.Version),
					[]string{"crowdsec(1)", "crowdsec-firewall-bouncer(1)"})
			}
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			cli.bindIO(cmd)
			lvl := log.InfoLevel
			switch {
			case trace:
				lvl = log.TraceLevel
			case debug:
				lvl = log.DebugLevel
			case info:
				lvl = log.InfoLevel
			case warning:
				lvl = log.WarnLevel
			case errLvl:
				lvl = log.ErrorLevel
			}
			log.SetLevel(lvl)
			log.SetOutput(cli.Err)
			journallog.Setup(log.StandardLogger(), cli.Err)
			switch cli.Output {
			case "", "human", "json", "raw":
			default:
				return fmt.Errorf("output format %q is unknown: use human, json or raw", cli.Output)
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&cli.ConfigPath, "config", "c", csconfig.DefaultPath, "path to crowdsec config file")
	pf.StringVarP(&cli.Output, "output", "o", "", "output format: human, json, raw")
	pf.StringVar(&cli.Color, "color", "auto", "output color: yes, no, auto")
	pf.BoolVar(&debug, "debug", false, "set logging to debug")
	pf.BoolVar(&info, "info", false, "set logging to info")
	pf.BoolVar(&warning, "warning", false, "set logging to warning")
	pf.BoolVar(&errLvl, "error", false, "set logging to error")
	pf.BoolVar(&trace, "trace", false, "set logging to trace")
	manDir = cobraman.Flag(root)

	for _, add := range []func(*CLI) *cobra.Command{
		newDecisionsCmd, newAlertsCmd, newBouncersCmd, newMachinesCmd, newLapiCmd, newAllowlistsCmd, newHubtestCmd,
		newHubCmd, newExplainCmd, newItemsCmd("collections"), newItemsCmd("parsers"), newItemsCmd("scenarios"), newItemsCmd("postoverflows"), newItemsCmd("contexts"), newSetupCmd,
		newMetricsCmd, newVersionCmd, newConfigCmd, newSimulationCmd, newSupportCmd, newDatabaseCmd, newNotificationsCmd, newCapiCmd, newConsoleCmd, newPapiCmd, newBlocklistsCmd,
	} {
		root.AddCommand(add(cli))
	}
	return root
}

// Config loads the configuration once.
func (cli *CLI) Config() (*csconfig.Config, error) {
	if cli.cfg != nil {
		return cli.cfg, nil
	}
	cfg, err := csconfig.Load(cli.ConfigPath)
	if err != nil {
		return nil, err
	}
	cli.cfg = cfg
	if cli.Output == "" {
		cli.Output = cfg.Cscli.Output
	}
	return cfg, nil
}

// OutputFormat returns the effective -o value.
func (cli *CLI) OutputFormat() string {
	if cli.Output == "" {
		if cli.cfg != nil && cli.cfg.Cscli.Output != "" {
			return cli.cfg.Cscli.Output
		}
		return "human"
	}
	return cli.Output
}

// Store opens the local database (bouncers, machines, allowlists, flush).
func (cli *CLI) Store(ctx context.Context) (*store.Store, error) {
	cfg, err := cli.Config()
	if err != nil {
		return nil, err
	}
	sc := store.ConfigOf(cfg.DBConfig)
	sc.MaxOpenConns = 4
	return store.Open(ctx, sc)
}

// Client returns a LAPI client logged in with the machine credentials.
func (cli *CLI) Client() (*apiclient.Client, *csconfig.Credentials, error) {
	cfg, err := cli.Config()
	if err != nil {
		return nil, nil, err
	}
	creds, err := csconfig.LoadCredentials(cfg.API.Client.CredentialsPath)
	if err != nil {
		return nil, nil, err
	}
	ac, err := cfg.LAPIClient(creds)
	if err != nil {
		return nil, nil, err
	}
	ac.UserAgent, ac.Timeout = version.UserAgent("crowdsec"), 2*time.Minute
	c, err := apiclient.New(ac)
	if err != nil {
		return nil, nil, err
	}
	return c, creds, nil
}
