package cscli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/internal/version"
)

func newVersionCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Display version",
		Long: `Display the version of cscli (the same build as crowdsec and the firewall
bouncer), its Go version and platform, the hub format versions it
understands, and the files and folders its configuration points at.`,
		Example:           "cscli version\ncscli version -o json",
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cli.bindIO(cmd)
			in := cli.versionInfo()
			if cli.OutputFormat() == "json" {
				return cli.printJSON(in)
			}
			return in.Write(cli.Out)
		},
	}
}

// versionInfo is the build's description with the configuration's paths,
// when the configuration can be read (version works without it).
func (cli *CLI) versionInfo() version.Info {
	in := version.Get("cscli")
	in.Paths = []version.Path{{Name: "Config", Value: cli.ConfigPath}}
	cfg, err := cli.Config()
	if err != nil {
		in.Paths[0].Value += fmt.Sprintf(" (unreadable: %v)", err)
		return in
	}
	in.Paths = append(in.Paths,
		version.Path{Name: "ConfigDir", Value: cfg.ConfigPaths.ConfigDir},
		version.Path{Name: "DataDir", Value: cfg.ConfigPaths.DataDir},
		version.Path{Name: "HubDir", Value: cfg.ConfigPaths.HubDir},
		version.Path{Name: "SimulationPath", Value: cfg.ConfigPaths.SimulationPath},
		version.Path{Name: "AcquisitionDir", Value: cfg.Crowdsec.AcquisitionDir},
		version.Path{Name: "DBPath", Value: cfg.DBConfig.DBPath},
		version.Path{Name: "CredentialsPath", Value: cfg.API.Client.CredentialsPath},
		version.Path{Name: "ProfilesPath", Value: cfg.API.Server.ProfilesPath},
		version.Path{Name: "LogDir", Value: cfg.Common.LogDir},
	)
	return in
}
