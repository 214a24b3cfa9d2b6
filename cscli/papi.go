package cscli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/capi"
	"github.com/rampart-ips/rampart/lapi/store"
)

func newPapiCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "papi [action]",
		Short: "Manage interaction with Polling API (PAPI)",
		Long: `The Polling API carries the console's orders (decisions added or deleted,
lists dropped, pulls forced) to instances enrolled with a plan that has
console management; the local API polls it on its own once the enrollment
is accepted.`,
		DisableAutoGenTag: true,
	}
	cmd.AddCommand(&cobra.Command{
		Use:               "status",
		Short:             "Get status of the Polling API",
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				return cli.papiStatus(ctx, st)
			})
		},
	})
	return cmd
}

// papiStatus asks PAPI for this instance's plan and order categories, and
// says when the last order was taken.
func (cli *CLI) papiStatus(ctx context.Context, st *store.Store) error {
	_, creds, err := cli.capiCredentials()
	if err != nil {
		return err
	}
	client, err := capiClient(creds, st)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, lapiCallTimeout)
	defer cancel()
	perms, err := client.GetPAPIPermissions(ctx, creds.PAPIURL)
	if err != nil {
		return fmt.Errorf("unable to get PAPI permissions: %w", err)
	}
	last, err := st.GetKV(ctx, capi.PAPILastPullKey)
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && (last == "" || last == "0001-01-01T00:00:00Z"):
		last = "never"
	case err != nil:
		return err
	}
	fmt.Fprintln(cli.Out, "You can successfully interact with Polling API (PAPI)")
	fmt.Fprintf(cli.Out, "Console plan: %s\n", perms.Plan)
	fmt.Fprintf(cli.Out, "Last order received: %s\n", last)
	fmt.Fprintln(cli.Out, "PAPI subscriptions:")
	for _, c := range perms.Categories {
		fmt.Fprintf(cli.Out, " - %s\n", c)
	}
	return nil
}
