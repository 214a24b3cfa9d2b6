package cscli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/models"
)

func newBlocklistsCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "blocklists [action]",
		Short: "Manage the local API's blocklist feed subscriptions",
		Long: `Blocklist feeds are lists of IP addresses and ranges the local API fetches
(a URL, with ETag and If-Modified-Since, or a file) on an interval and turns into
decisions with origin "lists" and scenario "lists:<name>". Each refresh replaces
the list's decisions in one change, so bouncers get additions and removals
together; a feed that fails keeps its previous version. Allowlists always win.

Formats: plain (one IP or CIDR a line, # comments), drop (Spamhaus DROP,
"; comment" after the entry), crowdsec (NDJSON lines with a "value"); left out,
the format is detected. Subscriptions live in config.toml's [[blocklists]] and in
config_paths.blocklists_path (/etc/crowdsec/blocklists.toml), the file add and
remove edit; the daemon reads both at start and reload.

Another Rampart's decisions are a feed too: its GET /v1/lists/all (or a
[[lists_out]] name) with a bouncer key of that LAPI sent as X-Api-Key.`,
		Example: `cscli blocklists list
cscli blocklists add spamhaus-drop --url https://www.spamhaus.org/drop/drop.txt
cscli blocklists add peer --url https://lapi2.example:8080/v1/lists/all --header X-Api-Key=KEY
cscli blocklists add local --file /etc/crowdsec/my-bans.txt --interval 5m
cscli blocklists refresh spamhaus-drop
cscli blocklists remove spamhaus-drop`,
		Aliases:           []string{"blocklist"},
		DisableAutoGenTag: true,
	}
	cmd.AddCommand(newBlocklistsListCmd(cli), newBlocklistsAddCmd(cli), newBlocklistsRemoveCmd(cli), newBlocklistsRefreshCmd(cli))
	return cmd
}

// blocklistView is one subscription as list shows it: its configuration
// and, when the LAPI answered, what it did last.
type blocklistView struct {
	Name     string                  `json:"name"`
	Source   string                  `json:"source"`
	Format   string                  `json:"format"`
	Interval string                  `json:"interval"`
	Type     string                  `json:"type"`
	Duration string                  `json:"duration"`
	File     string                  `json:"configured_in"`
	Status   *models.BlocklistStatus `json:"status,omitempty"`
}

func newBlocklistsListCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "list",
		Short:             "List the blocklist subscriptions and their last refresh",
		Example:           "cscli blocklists list\ncscli blocklists list -o json",
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.blocklistsList(cmdContext(cmd))
		},
	}
}

func (cli *CLI) blocklistsList(ctx context.Context) error {
	cfg := cli.cfg
	managed, err := csconfig.LoadBlocklistsFile(cfg.ConfigPaths.BlocklistsPath)
	if err != nil {
		return err
	}
	var statuses []models.BlocklistStatus
	if client, _, err := cli.Client(); err != nil {
		fmt.Fprintf(cli.Err, "warning: cannot reach the local API for the last refreshes: %v\n", err)
	} else {
		cctx, cancel := context.WithTimeout(ctx, apiTimeout)
		statuses, err = client.Blocklists(cctx)
		cancel()
		if err != nil {
			fmt.Fprintf(cli.Err, "warning: cannot read the last refreshes from the local API: %v\n", err)
		}
	}
	views := make([]blocklistView, 0, len(cfg.Blocklists))
	for _, b := range cfg.Blocklists {
		v := blocklistView{Name: b.Name, Source: b.URL + b.File, Format: b.Format, Interval: b.Interval.Duration.String(),
			Type: b.Type, Duration: b.Duration.Duration.String(), File: cfg.Path}
		if v.Format == "" {
			v.Format = "auto"
		}
		if slices.ContainsFunc(managed, func(m csconfig.Blocklist) bool { return m.Name == b.Name }) {
			v.File = cfg.ConfigPaths.BlocklistsPath
		}
		if i := slices.IndexFunc(statuses, func(s models.BlocklistStatus) bool { return s.Name == b.Name }); i >= 0 {
			v.Status = &statuses[i]
		}
		views = append(views, v)
	}
	if cli.OutputFormat() == "json" {
		return cli.printJSON(views)
	}
	if len(views) == 0 {
		fmt.Fprintln(cli.Out, "No blocklist subscriptions (cscli blocklists add NAME --url URL).")
		return nil
	}
	header := []string{"Name", "Source", "Format", "Interval", "Type", "Duration", "Entries", "Last refresh", "Error"}
	rows := make([][]string, 0, len(views))
	for _, v := range views {
		entries, last, errText := "-", "-", ""
		if st := v.Status; st != nil {
			if !st.LastApplied.IsZero() {
				entries = strconv.Itoa(st.Entries - st.Allowlisted)
				if st.Allowlisted > 0 {
					entries += fmt.Sprintf(" (+%d allowlisted)", st.Allowlisted)
				}
			}
			if !st.LastAttempt.IsZero() {
				last = st.LastAttempt.UTC().Format(time.RFC3339)
			}
			errText = st.LastError
		}
		rows = append(rows, []string{v.Name, v.Source, v.Format, v.Interval, v.Type, v.Duration, entries, last, errText})
	}
	if cli.OutputFormat() == "raw" {
		return writeCSV(cli.Out, header, rows)
	}
	renderTable(cli.Out, header, rows)
	return nil
}

func newBlocklistsAddCmd(cli *CLI) *cobra.Command {
	var b csconfig.Blocklist
	var interval, duration, timeout string
	var headers []string
	cmd := &cobra.Command{
		Use:               "add NAME (--url URL | --file PATH)",
		Short:             "Subscribe to a blocklist feed",
		Example:           "cscli blocklists add spamhaus-drop --url https://www.spamhaus.org/drop/drop.txt --format drop",
		Args:              cobra.ExactArgs(1),
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			b.Name = args[0]
			for _, d := range []struct {
				flag, v string
				to      *csconfig.Duration
			}{{"--interval", interval, &b.Interval}, {"--duration", duration, &b.Duration}, {"--timeout", timeout, &b.Timeout}} {
				if d.v == "" {
					continue
				}
				if err := d.to.UnmarshalText([]byte(d.v)); err != nil {
					return fmt.Errorf("invalid %s %q: %w", d.flag, d.v, err)
				}
			}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, "=")
				if !ok || strings.TrimSpace(k) == "" {
					return fmt.Errorf("invalid --header %q: want NAME=VALUE", h)
				}
				if b.Headers == nil {
					b.Headers = map[string]string{}
				}
				b.Headers[strings.TrimSpace(k)] = v
			}
			return cli.blocklistsAdd(b)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&b.URL, "url", "", "http:// or https:// URL of the feed")
	fl.StringVar(&b.File, "file", "", "local file of the feed")
	fl.StringVar(&b.Format, "format", "", "plain, drop or crowdsec (default: detected)")
	fl.StringVar(&interval, "interval", "", "time between refreshes (default 1h, at least 1m)")
	fl.StringVar(&b.Type, "type", "", "decision type (default ban)")
	fl.StringVar(&duration, "duration", "", "decision duration, renewed while the feed lists the entry (default 24h or 3 intervals)")
	fl.StringVar(&timeout, "timeout", "", "bound on one download (default 1m)")
	fl.StringArrayVar(&headers, "header", nil, "NAME=VALUE header sent with each request (repeatable), e.g. X-Api-Key=KEY")
	fl.StringVar(&b.CACertPath, "ca-cert", "", "PEM file of CAs trusted beside the system roots")
	return cmd
}

func (cli *CLI) blocklistsAdd(b csconfig.Blocklist) error {
	cfg := cli.cfg
	check := b
	check.SetDefaults()
	if err := check.Validate(); err != nil {
		return err
	}
	if slices.ContainsFunc(cfg.Blocklists, func(o csconfig.Blocklist) bool { return o.Name == b.Name }) {
		return fmt.Errorf("blocklist %s already exists (cscli blocklists remove %s first)", b.Name, b.Name)
	}
	path := cfg.ConfigPaths.BlocklistsPath
	managed, err := csconfig.LoadBlocklistsFile(path)
	if err != nil {
		return err
	}
	if err := csconfig.WriteBlocklistsFile(path, append(managed, b)); err != nil {
		return err
	}
	fmt.Fprintf(cli.Out, "blocklist %s added to %s\n", b.Name, path)
	fmt.Fprintln(cli.Out, reloadMessage)
	return nil
}

func newBlocklistsRemoveCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "remove NAME...",
		Short:             "Unsubscribe from blocklist feeds: their decisions end at the next reload",
		Example:           "cscli blocklists remove spamhaus-drop",
		Args:              cobra.MinimumNArgs(1),
		Aliases:           []string{"delete"},
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.blocklistsRemove(args)
		},
	}
}

func (cli *CLI) blocklistsRemove(names []string) error {
	cfg := cli.cfg
	path := cfg.ConfigPaths.BlocklistsPath
	managed, err := csconfig.LoadBlocklistsFile(path)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		i := slices.IndexFunc(managed, func(b csconfig.Blocklist) bool { return b.Name == n })
		switch {
		case i >= 0:
			managed = slices.Delete(managed, i, i+1)
			fmt.Fprintf(cli.Out, "blocklist %s removed\n", n)
		case slices.ContainsFunc(cfg.Blocklists, func(b csconfig.Blocklist) bool { return b.Name == n }):
			errs = append(errs, fmt.Errorf("blocklist %s is set in %s: remove its [[blocklists]] there", n, cfg.Path))
		default:
			errs = append(errs, fmt.Errorf("blocklist %s does not exist", n))
		}
	}
	if len(errs) < len(names) {
		if err := csconfig.WriteBlocklistsFile(path, managed); err != nil {
			return err
		}
		fmt.Fprintln(cli.Out, reloadMessage)
	}
	return errors.Join(errs...)
}

func newBlocklistsRefreshCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "refresh [NAME...]",
		Short:             "Have the running local API refresh feeds now (all when none is named)",
		Example:           "cscli blocklists refresh\ncscli blocklists refresh spamhaus-drop",
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			client, _, err := cli.Client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmdContext(cmd), 5*time.Minute)
			defer cancel()
			st, err := client.RefreshBlocklists(ctx, args...)
			if err != nil {
				return fmt.Errorf("refreshing blocklists: %w", err)
			}
			if cli.OutputFormat() == "json" {
				return cli.printJSON(st)
			}
			for _, s := range st {
				if len(args) > 0 && !slices.Contains(args, s.Name) {
					continue
				}
				fmt.Fprintf(cli.Out, "%s: %d entries (%s)\n", s.Name, s.Entries-s.Allowlisted, s.LastFetch)
			}
			return nil
		},
	}
}
