package cscli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	log "github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/netaddr"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

func newAllowlistsCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "allowlists [action]",
		Short: "Manage centralized allowlists",
		Long: `Manage centralized allowlists, checked by the Local API and by "cscli decisions add" and "import".
Note: This command requires database direct access, so is intended to be run on the local API machine.`,
		Aliases:           []string{"allowlist"},
		DisableAutoGenTag: true,
	}
	cmd.AddCommand(newAllowlistsCreateCmd(cli), newAllowlistsListCmd(cli), newAllowlistsDeleteCmd(cli),
		newAllowlistsAddCmd(cli), newAllowlistsRemoveCmd(cli), newAllowlistsInspectCmd(cli), newAllowlistsCheckCmd(cli))
	return cmd
}

// findAllowlist returns one allowlist with its items.
func findAllowlist(ctx context.Context, st *store.Store, name string) (*store.AllowlistRow, error) {
	lists, err := st.ListAllowlists(ctx)
	if err != nil {
		return nil, err
	}
	for _, l := range lists {
		if l.Name == name {
			return l, nil
		}
	}
	return nil, fmt.Errorf("allowlist '%s' not found", name)
}

// wireAllowlist is the upstream JSON shape (GET /v1/allowlists with content).
func wireAllowlist(l *store.AllowlistRow) *models.Allowlist {
	out := &models.Allowlist{Name: l.Name, AllowlistID: strconv.FormatInt(l.ID, 10), Description: l.Description,
		CreatedAt: rfc3339(l.CreatedAt), UpdatedAt: rfc3339(l.UpdatedAt), Items: []*models.AllowlistItem{}}
	for _, it := range l.Items {
		wi := &models.AllowlistItem{Value: it.Value, Description: it.Description, CreatedAt: rfc3339(it.CreatedAt)}
		if it.ExpiresAt != nil {
			wi.Expiration = rfc3339(*it.ExpiresAt)
		}
		out.Items = append(out.Items, wi)
	}
	return out
}

func itemExpiration(it store.AllowlistItemRow) string {
	if it.ExpiresAt == nil {
		return "never"
	}
	return rfc3339(*it.ExpiresAt)
}

func newAllowlistsCreateCmd(cli *CLI) *cobra.Command {
	var description string
	cmd := &cobra.Command{
		Use:               "create [allowlist_name]",
		Short:             "Create a new allowlist",
		Example:           `cscli allowlists create my_allowlist -d 'my allowlist description'`,
		Args:              cobra.ExactArgs(1),
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if strings.TrimSpace(name) == "" {
				return errors.New("allowlist name must not be empty")
			}
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				err := st.CreateAllowlist(ctx, name, description)
				if errors.Is(err, store.ErrExists) {
					return fmt.Errorf("allowlist '%s' already exists", name)
				}
				if err != nil {
					return fmt.Errorf("creating allowlist '%s': %w", name, err)
				}
				fmt.Fprintf(cli.Out, "allowlist '%s' created successfully\n", name)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&description, "description", "d", "", "description of the allowlist")
	_ = cmd.MarkFlagRequired("description")
	return cmd
}

func newAllowlistsListCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "list",
		Short:             "List all allowlists",
		Example:           `cscli allowlists list`,
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				lists, err := st.ListAllowlists(ctx)
				if err != nil {
					return fmt.Errorf("listing allowlists: %w", err)
				}
				switch cli.OutputFormat() {
				case "json":
					out := make([]*models.Allowlist, 0, len(lists))
					for _, l := range lists {
						out = append(out, wireAllowlist(l))
					}
					return cli.printJSON(out)
				case "raw":
					rows := make([][]string, 0, len(lists))
					for _, l := range lists {
						rows = append(rows, []string{l.Name, l.Description, rfc3339(l.CreatedAt), rfc3339(l.UpdatedAt), "false", strconv.Itoa(len(l.Items))})
					}
					return writeCSV(cli.Out, []string{"name", "description", "created_at", "updated_at", "console_managed", "size"}, rows)
				default:
					rows := make([][]string, 0, len(lists))
					for _, l := range lists {
						rows = append(rows, []string{l.Name, l.Description, rfc3339(l.CreatedAt), rfc3339(l.UpdatedAt), "no", strconv.Itoa(len(l.Items))})
					}
					renderTable(cli.Out, []string{"Name", "Description", "Created at", "Updated at", "Managed by Console", "Size"}, rows)
					return nil
				}
			})
		},
	}
}

func newAllowlistsInspectCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "inspect [allowlist_name]",
		Short:             "Inspect an allowlist",
		Example:           `cscli allowlists inspect my_allowlist`,
		Args:              cobra.ExactArgs(1),
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				l, err := findAllowlist(ctx, st, args[0])
				if err != nil {
					return fmt.Errorf("unable to get allowlist: %w", err)
				}
				switch cli.OutputFormat() {
				case "json":
					return cli.printJSON(wireAllowlist(l))
				case "raw":
					rows := make([][]string, 0, len(l.Items))
					for _, it := range l.Items {
						rows = append(rows, []string{l.Name, l.Description, it.Value, it.Description, itemExpiration(it), rfc3339(it.CreatedAt), "false"})
					}
					return writeCSV(cli.Out, []string{"name", "description", "value", "comment", "expiration", "created_at", "console_managed"}, rows)
				default:
					allowlistHuman(cli.Out, l)
					return nil
				}
			})
		},
	}
}

func allowlistHuman(w io.Writer, l *store.AllowlistRow) {
	fmt.Fprintf(w, "Allowlist: %s\n", l.Name)
	renderTable(w, nil, [][]string{
		{"Name", l.Name},
		{"Description", l.Description},
		{"Created at", rfc3339(l.CreatedAt)},
		{"Updated at", rfc3339(l.UpdatedAt)},
		{"Managed by Console", "no"},
	})
	fmt.Fprintln(w)
	rows := make([][]string, 0, len(l.Items))
	for _, it := range l.Items {
		rows = append(rows, []string{it.Value, it.Description, itemExpiration(it), rfc3339(it.CreatedAt)})
	}
	renderTable(w, []string{"Value", "Comment", "Expiration", "Created at"}, rows)
}

func newAllowlistsDeleteCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "delete [allowlist_name]",
		Short:             "Delete an allowlist",
		Example:           `cscli allowlists delete my_allowlist`,
		Args:              cobra.ExactArgs(1),
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				err := st.DeleteAllowlist(ctx, name)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("allowlist '%s' not found", name)
				}
				if err != nil {
					return fmt.Errorf("deleting allowlist '%s': %w", name, err)
				}
				fmt.Fprintf(cli.Out, "allowlist '%s' deleted successfully\n", name)
				return nil
			})
		},
	}
}

func newAllowlistsAddCmd(cli *CLI) *cobra.Command {
	var (
		expiration dayDurationFlag
		comment    string
	)
	cmd := &cobra.Command{
		Use:               "add [allowlist_name] [value...] [-e expiration] [-d comment]",
		Short:             "Add content to an allowlist",
		Example:           `cscli allowlists add my_allowlist 1.2.3.4 2.3.4.5 -e 1h -d "my comment"`,
		Args:              cobra.MinimumNArgs(2),
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, values := args[0], args[1:]
			for _, v := range values {
				if _, err := store.ParseRange(v); err != nil {
					return err
				}
			}
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				return cli.addToAllowlist(ctx, st, name, values, time.Duration(expiration), comment)
			})
		},
	}
	flags := cmd.Flags()
	flags.VarP(&expiration, "expiration", "e", "expiration duration (e.g. 1h, 7d)")
	flags.StringVarP(&comment, "comment", "d", "", "comment for the value")
	return cmd
}

func (cli *CLI) addToAllowlist(ctx context.Context, st *store.Store, name string, values []string, expiration time.Duration, comment string) error {
	l, err := findAllowlist(ctx, st, name)
	if err != nil {
		return err
	}
	present := map[string]bool{}
	for _, it := range l.Items {
		present[it.Value] = true
	}
	var toAdd []string
	for _, v := range values {
		if present[v] {
			log.Warnf("value %s already in allowlist", v)
			continue
		}
		present[v] = true
		toAdd = append(toAdd, v)
	}
	if len(toAdd) == 0 {
		fmt.Fprintln(cli.Out, "no new values for allowlist")
		return nil
	}
	var expires *time.Time
	if expiration > 0 {
		t, err := models.Expiry(time.Now(), expiration)
		if err != nil {
			return fmt.Errorf("invalid --expiration %s: %w", expiration, err)
		}
		expires = &t
	}
	if err := st.AddAllowlistItems(ctx, name, toAdd, comment, expires); err != nil {
		return fmt.Errorf("unable to add values to allowlist: %w", err)
	}
	fmt.Fprintf(cli.Out, "added %d values to allowlist %s\n", len(toAdd), name)

	// As upstream: active decisions on addresses now allowlisted end.
	var ended int64
	for _, v := range toAdd {
		r, err := store.ParseRange(v)
		if err != nil {
			continue
		}
		n, err := st.DeleteDecisions(ctx, store.DecisionFilter{Range: &r})
		if err != nil {
			return fmt.Errorf("unable to apply allowlists to existing decisions: %w", err)
		}
		ended += n
	}
	if ended > 0 {
		fmt.Fprintf(cli.Out, "%d decisions deleted by allowlists\n", ended)
	}
	return nil
}

func newAllowlistsRemoveCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "remove [allowlist_name] [value...]",
		Short:             "Remove content from an allowlist",
		Example:           `cscli allowlists remove my_allowlist 1.2.3.4 2.3.4.5`,
		Args:              cobra.MinimumNArgs(2),
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, values := args[0], args[1:]
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				l, err := findAllowlist(ctx, st, name)
				if err != nil {
					return err
				}
				present := map[string]bool{}
				for _, it := range l.Items {
					present[it.Value] = true
				}
				var toRemove []string
				for _, v := range values {
					if present[v] {
						toRemove = append(toRemove, v)
						present[v] = false
					}
				}
				if len(toRemove) == 0 {
					fmt.Fprintln(cli.Out, "no value to remove from allowlist")
					return nil
				}
				n, err := st.RemoveAllowlistItems(ctx, name, toRemove)
				if err != nil {
					return fmt.Errorf("unable to remove values from allowlist: %w", err)
				}
				fmt.Fprintf(cli.Out, "removed %d values from allowlist %s\n", n, name)
				return nil
			})
		},
	}
}

// allowCheckEntry is one entry check compares against.
type allowCheckEntry struct {
	list, value string
	r           store.Range
}

// hostAllowEntries is the LAPI's built-in allowlist, netaddr's protected
// set (api.server.allowlist_host_addresses, default on).
func hostAllowEntries() []allowCheckEntry {
	set, _ := netaddr.ProtectedSet() // without interfaces, the built-in part
	out := make([]allowCheckEntry, 0, len(set))
	for _, e := range set {
		out = append(out, allowCheckEntry{list: store.HostAllowlistName, value: e.Prefix.String(), r: store.RangeOf(e.Prefix)})
	}
	return out
}

func newAllowlistsCheckCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "check [value...]",
		Short:             "Check if a value is in an allowlist",
		Example:           `cscli allowlists check 1.2.3.4 10.0.0.0/24`,
		Args:              cobra.MinimumNArgs(1),
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			queries := make([]store.Range, len(args))
			for i, v := range args {
				r, err := store.ParseRange(v)
				if err != nil {
					return fmt.Errorf("cannot check if %s is in allowlist: %w", v, err)
				}
				queries[i] = r
			}
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				lists, err := st.ListAllowlists(ctx)
				if err != nil {
					return fmt.Errorf("listing allowlists: %w", err)
				}
				cfg, err := cli.Config()
				if err != nil {
					return err
				}
				var entries []allowCheckEntry
				if csconfig.Bool(cfg.API.Server.AllowlistHostAddresses, true) {
					entries = hostAllowEntries()
				}
				now := time.Now()
				for _, l := range lists {
					for _, it := range l.Items {
						if it.ExpiresAt != nil && it.ExpiresAt.Before(now) {
							continue
						}
						entries = append(entries, allowCheckEntry{list: l.Name, value: it.Value, r: it.Range})
					}
				}
				for i, v := range args {
					q := queries[i]
					reason := ""
					// overlap, as the LAPI checks it: either side may hold the other
					for _, e := range entries {
						if e.r.Contains(q) || q.Contains(e.r) {
							reason = e.value + " from " + e.list
							break
						}
					}
					if reason == "" {
						fmt.Fprintf(cli.Out, "%s is not allowlisted\n", v)
					} else {
						fmt.Fprintf(cli.Out, "%s is allowlisted by item %s\n", v, reason)
					}
				}
				return nil
			})
		},
	}
}
