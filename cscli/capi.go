package cscli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"

	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/capi"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/store"
)

// capiCharset is upstream's for CAPI passwords: A to Y (no Z), a-z, 0-9.
const capiCharset = "ABCDEFGHIJKLMNOPQRSTUVWXYabcdefghijklmnopqrstuvwxyz0123456789"

func newCapiCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "capi [action]",
		Short:             "Manage interaction with Central API (CAPI)",
		DisableAutoGenTag: true,
	}
	cmd.AddCommand(newCapiRegisterCmd(cli), newCapiStatusCmd(cli))
	return cmd
}

func newCapiRegisterCmd(cli *CLI) *cobra.Command {
	var file, url string
	cmd := &cobra.Command{
		Use:   "register",
		Short: "Register to Central API (CAPI)",
		Long: `Register this instance to the Central API (CAPI) and write its credentials
to -f, else to api.server.online_client.credentials_path (- for standard
output). --url names another Central API (a test server or a mirror).`,
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.capiRegister(cmdContext(cmd), file, url)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "output file destination")
	cmd.Flags().StringVar(&url, "url", csconfig.DefaultCAPIURL, "Central API URL")
	return cmd
}

func (cli *CLI) capiRegister(ctx context.Context, file, url string) error {
	cfg, err := cli.Config()
	if err != nil {
		return err
	}
	oc := cfg.API.Server.OnlineClient
	if oc == nil {
		return errors.New("no [api.server.online_client] section in the configuration: add one (credentials_path) to use the Central API")
	}
	id, err := generateMachineID()
	if err != nil {
		return fmt.Errorf("unable to generate machine id: %w", err)
	}
	pw := make([]byte, machinePasswordLength)
	for i := range pw {
		v, err := rand.Int(rand.Reader, big.NewInt(int64(len(capiCharset))))
		if err != nil {
			return fmt.Errorf("generating a password: %w", err)
		}
		pw[i] = capiCharset[v.Int64()]
	}
	client, err := capi.NewClient(capi.ClientConfig{URL: url})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, lapiCallTimeout)
	defer cancel()
	if err := client.Register(ctx, id, string(pw)); err != nil {
		return fmt.Errorf("api client register (%s): %w", url, err)
	}
	fmt.Fprintln(cli.Err, "Successfully registered to Central API (CAPI)")
	if file == "" {
		file = oc.CredentialsPath
	}
	if file == "" {
		file = "-"
	}
	creds := &csconfig.CAPICredentials{URL: client.URL(), Login: id, Password: string(pw)}
	if err := csconfig.WriteCAPICredentials(file, creds, cli.Out); err != nil {
		return err
	}
	if file != "-" {
		fmt.Fprintf(cli.Err, "Central API credentials written to '%s'\n", file)
		fmt.Fprintln(cli.Err, "Run 'sudo systemctl reload crowdsec' for the new configuration to be effective.")
	}
	return nil
}

func newCapiStatusCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "status",
		Short:             "Check status with the Central API (CAPI)",
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				return cli.capiStatus(ctx, st)
			})
		},
	}
}

// capiStatus logs in as the LAPI would (its machines' scenarios), keeps the
// token in the database for the LAPI, and says what is enabled.
func (cli *CLI) capiStatus(ctx context.Context, st *store.Store) error {
	oc, creds, err := cli.capiCredentials()
	if err != nil {
		return err
	}
	fmt.Fprintf(cli.Out, "Loaded credentials from %s\n", oc.CredentialsPath)
	fmt.Fprintf(cli.Out, "Trying to authenticate with username %s on %s\n", creds.Login, creds.URL)
	client, err := capiClient(creds, st)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, lapiCallTimeout)
	defer cancel()
	if err := client.Login(ctx); err != nil {
		return fmt.Errorf("failed to authenticate to Central API (CAPI): %w", err)
	}
	fmt.Fprintln(cli.Out, "You can successfully interact with Central API (CAPI)")
	if claims := client.Claims(); claims != nil {
		if _, ok := claims["organization_id"]; ok {
			fmt.Fprintln(cli.Out, "Your instance is enrolled in the console")
			fmt.Fprintf(cli.Out, "Subscription type: %v\n", claims["subscription_type"])
		}
	}
	enabled := func(b bool) string {
		if b {
			return "enabled"
		}
		return "disabled"
	}
	fmt.Fprintf(cli.Out, "Sharing signals is %s\n", enabled(csconfig.Bool(oc.Sharing, true)))
	fmt.Fprintf(cli.Out, "Pulling community blocklist is %s\n", enabled(csconfig.Bool(oc.Pull.Community, true)))
	fmt.Fprintf(cli.Out, "Pulling blocklists from the console is %s\n", enabled(csconfig.Bool(oc.Pull.Blocklists, true)))
	return nil
}
