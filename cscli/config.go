package cscli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/csconfig"
)

func newConfigCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config [command]",
		Short: "Show the configuration crowdsec and cscli use",
		Long: `View the configuration crowdsec and cscli run with (config.toml, or the file
given with -c), merged with the defaults.`,
		Example:           "cscli config show\ncscli config show --key api.server.listen_uri",
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
	}
	cmd.AddCommand(newConfigShowCmd(cli))
	return cmd
}

func newConfigShowCmd(cli *CLI) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Display current config",
		Long: `Display the effective configuration: config.toml merged with the defaults,
as the daemon sees it, with the simulation settings it read. Secrets (database
password, auto-registration token) are shown as ********.

--key selects one value, by upstream's name (Config.API.Server.ListenURI) or
by the TOML dotted key of config.toml (api.server.listen_uri); a table is
printed whole. -o json prints JSON, -o raw and the default print TOML.`,
		Example: `cscli config show
cscli config show -o json
cscli config show --key Config.API.Server.ListenURI
cscli config show --key api.server.listen_uri
cscli config show --key db_config`,
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.showConfig(key)
		},
	}
	cmd.Flags().StringVarP(&key, "key", "", "", "display only this value (Config.API.Server.ListenURI or api.server.listen_uri)")
	return cmd
}

// effectiveConfig is the loaded configuration as a TOML tree, optional
// switches resolved to their defaults and secrets redacted.
// The secrets replaced are added to found (when not nil).
func effectiveConfig(cfg *csconfig.Config, found *[]string) (map[string]any, error) {
	c := *cfg
	t, f := true, false
	orDefault := func(p **bool, def *bool) {
		if *p == nil {
			*p = def
		}
	}
	orDefault(&c.Crowdsec.Enable, &t)
	orDefault(&c.API.Server.Enable, &t)
	orDefault(&c.API.Server.AllowlistHostAddresses, &t)
	orDefault(&c.API.Server.LoginLimit.Enabled, &t)
	orDefault(&c.API.Client.InsecureSkipVerify, &f)
	orDefault(&c.Prometheus.Enabled, &t)
	if c.Prometheus.Level == "" {
		c.Prometheus.Level = "full"
	}
	tree, err := toTree(&c)
	if err != nil {
		return nil, err
	}
	sim := cfg.Simulation
	if sim == nil {
		sim = &csconfig.Simulation{}
	}
	ex := make([]any, 0, len(sim.Exclusions))
	for _, e := range sim.Exclusions {
		ex = append(ex, e)
	}
	tree["simulation"] = map[string]any{"simulation": sim.Simulation, "exclusions": ex}
	redactTree(tree, found)
	return tree, nil
}

// keyAliases map upstream's Go field names to this file's keys, both
// normalised (lower case, no underscores).
var keyAliases = map[string]string{
	"crowdsec":           "crowdsecservice",
	"acquisitiondirpath": "acquisitiondir",
	"simulationfilepath": "simulationpath",
	"simulationconfig":   "simulation",
	"certfilepath":       "certfile",
	"keyfilepath":        "keyfile",
	"cacertfilepath":     "cacertpath",
	"logdirpath":         "logdir",
}

func normKey(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }

// lookupKey finds a dotted key in the tree: upstream's Config.A.B form or
// the file's a.b form, compared without case and underscores.
func lookupKey(tree map[string]any, key string) (any, error) {
	parts := strings.Split(key, ".")
	if len(parts) > 1 && normKey(parts[0]) == "config" {
		parts = parts[1:]
	}
	var cur any = tree
	for i, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("key %q: %s is not a table", key, strings.Join(parts[:i], "."))
		}
		want := normKey(p)
		if a, ok := keyAliases[want]; ok {
			want = a
		}
		found := false
		for _, k := range sortedKeys(m) {
			if normKey(k) == want {
				cur, found = m[k], true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("key %q: no %q in %s (keys: %s)", key, p, orRoot(parts[:i]), strings.Join(sortedKeys(m), ", "))
		}
	}
	return cur, nil
}

func orRoot(parts []string) string {
	if len(parts) == 0 {
		return "the configuration"
	}
	return strings.Join(parts, ".")
}

func (cli *CLI) showConfig(key string) error {
	tree, err := effectiveConfig(cli.cfg, nil)
	if err != nil {
		return err
	}
	var v any = tree
	if key != "" {
		if v, err = lookupKey(tree, key); err != nil {
			return err
		}
	}
	if cli.OutputFormat() == "json" {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding json: %w", err)
		}
		_, err = fmt.Fprintf(cli.Out, "%s\n", b)
		return err
	}
	switch t := v.(type) {
	case map[string]any:
		var b bytes.Buffer
		if err := toml.NewEncoder(&b).Encode(t); err != nil {
			return fmt.Errorf("encoding TOML: %w", err)
		}
		_, err = cli.Out.Write(b.Bytes())
	case []any:
		b, _ := json.Marshal(t)
		_, err = fmt.Fprintf(cli.Out, "%s\n", b)
	default:
		_, err = fmt.Fprintf(cli.Out, "%v\n", t)
	}
	return err
}
