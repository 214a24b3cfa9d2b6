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

	"github.com/rampart-ips/rampart/lapi/apikey"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// directDBTimeout bounds each database operation of the commands that work
// on the local database (bouncers, machines, allowlists).
const directDBTimeout = time.Minute

// Marks used in the human tables, as upstream's emoji package draws them.
const (
	markCheck      = "✔"
	markProhibited = "🚫"
	markWarning    = "⚠"
)

// localStore opens the database named in the configuration.
func (cli *CLI) localStore(cmd *cobra.Command) (*store.Store, error) {
	if err := cli.requireLocalAPI(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(cmdContext(cmd), directDBTimeout)
	defer cancel()
	st, err := cli.Store(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening the database: %w", err)
	}
	return st, nil
}

// withStore runs fn with the local database and one operation's context.
func (cli *CLI) withStore(cmd *cobra.Command, fn func(ctx context.Context, st *store.Store) error) error {
	if err := cli.prepare(cmd); err != nil {
		return err
	}
	st, err := cli.localStore(cmd)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, cancel := dbContext(cmd)
	defer cancel()
	return fn(ctx, st)
}

// dbContext is the context of one database operation.
func dbContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmdContext(cmd), directDBTimeout)
}

// dayDurationFlag is a duration flag that also accepts days ("7d", "1d12h").
type dayDurationFlag time.Duration

func (d *dayDurationFlag) String() string { return time.Duration(*d).String() }

func (d *dayDurationFlag) Set(s string) error {
	v, err := models.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	*d = dayDurationFlag(v)
	return nil
}

func (d *dayDurationFlag) Type() string { return "duration" }

// readInputLine reads one line byte by byte, so that nothing past the line
// is consumed and a later question still gets its own answer.
func readInputLine(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return strings.TrimSuffix(b.String(), "\r"), nil
			}
			b.WriteByte(buf[0])
		}
		if err != nil {
			if errors.Is(err, io.EOF) && b.Len() > 0 {
				return strings.TrimSuffix(b.String(), "\r"), nil
			}
			return b.String(), err
		}
	}
}

// promptYesNo asks question on cli.Err and reads the answer from cli.In;
// anything but y/yes (including end of input) means no.
func (cli *CLI) promptYesNo(question string) (bool, error) {
	fmt.Fprintf(cli.Err, "%s [y/N] ", question)
	line, err := readInputLine(cli.In)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("reading answer: %w", err)
	}
	if errors.Is(err, io.EOF) {
		fmt.Fprintln(cli.Err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// osNameAndVersion renders the OS the way upstream's clientinfo does.
func osNameAndVersion(name, version string) string {
	ret := name
	if version != "" {
		if ret != "" {
			ret += "/"
		}
		ret += version
	}
	if ret == "" {
		return "?"
	}
	return ret
}

func splitCommaList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func rfc3339Ptr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return rfc3339(*t)
}

func newBouncersCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bouncers [action]",
		Short: "Manage bouncers [requires local API]",
		Long: `To list/add/delete/prune bouncers.
Note: This command requires database direct access, so is intended to be run on Local API/master.
`,
		Aliases:           []string{"bouncer"},
		DisableAutoGenTag: true,
	}
	cmd.AddCommand(newBouncersListCmd(cli), newBouncersAddCmd(cli), newBouncersDeleteCmd(cli),
		newBouncersPruneCmd(cli), newBouncersInspectCmd(cli))
	return cmd
}

// bouncerInfo is the JSON shape of list and inspect (upstream's keys).
type bouncerInfo struct {
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	Name         string     `json:"name"`
	Revoked      bool       `json:"revoked"`
	IPAddress    string     `json:"ip_address"`
	Type         string     `json:"type"`
	Version      string     `json:"version"`
	LastPull     *time.Time `json:"last_pull"`
	AuthType     string     `json:"auth_type"`
	OS           string     `json:"os,omitempty"`
	Featureflags []string   `json:"featureflags,omitempty"`
	AutoCreated  bool       `json:"auto_created"`
	// UsageMetrics is set by inspect only: the bouncer's pushed totals.
	UsageMetrics any `json:"usage_metrics,omitempty"`
}

func newBouncerInfo(b *store.Bouncer) bouncerInfo {
	info := bouncerInfo{
		CreatedAt:    b.CreatedAt.UTC(),
		UpdatedAt:    b.UpdatedAt.UTC(),
		Name:         b.Name,
		Revoked:      b.Revoked,
		IPAddress:    b.IPAddress,
		Type:         b.Type,
		Version:      b.Version,
		AuthType:     b.AuthType,
		Featureflags: splitCommaList(b.FeatureFlag),
		AutoCreated:  b.AutoCreated,
	}
	if b.LastPull != nil {
		lp := b.LastPull.UTC()
		info.LastPull = &lp
	}
	if b.OSName != "" || b.OSVersion != "" {
		info.OS = osNameAndVersion(b.OSName, b.OSVersion)
	}
	return info
}

var bouncerHumanHeader = []string{"Name", "IP Address", "Valid", "Last API pull", "Type", "Version", "Auth Type"}

func bouncersHuman(w io.Writer, bouncers []*store.Bouncer) {
	rows := make([][]string, 0, len(bouncers))
	for _, b := range bouncers {
		valid := markCheck
		if b.Revoked {
			valid = markProhibited
		}
		rows = append(rows, []string{b.Name, b.IPAddress, valid, rfc3339Ptr(b.LastPull), b.Type, b.Version, b.AuthType})
	}
	renderTable(w, bouncerHumanHeader, rows)
}

func bouncersCSV(w io.Writer, bouncers []*store.Bouncer) error {
	rows := make([][]string, 0, len(bouncers))
	for _, b := range bouncers {
		// upstream writes "validated"/"pending" under the "revoked" header
		valid := "validated"
		if b.Revoked {
			valid = "pending"
		}
		rows = append(rows, []string{b.Name, b.IPAddress, valid, rfc3339Ptr(b.LastPull), b.Type, b.Version, b.AuthType})
	}
	return writeCSV(w, []string{"name", "ip", "revoked", "last_pull", "type", "version", "auth_type"}, rows)
}

func newBouncersListCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "list",
		Short:             "list all bouncers within the database",
		Example:           `cscli bouncers list`,
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				bouncers, err := st.ListBouncers(ctx)
				if err != nil {
					return fmt.Errorf("unable to list bouncers: %w", err)
				}
				switch cli.OutputFormat() {
				case "json":
					info := make([]bouncerInfo, 0, len(bouncers))
					for _, b := range bouncers {
						info = append(info, newBouncerInfo(b))
					}
					return cli.printJSON(info)
				case "raw":
					return bouncersCSV(cli.Out, bouncers)
				default:
					bouncersHuman(cli.Out, bouncers)
					return nil
				}
			})
		},
	}
}

func newBouncersAddCmd(cli *CLI) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "add MyBouncerName",
		Short: "add a single bouncer to the database",
		Example: `cscli bouncers add MyBouncerName
cscli bouncers add MyBouncerName --key <random-key>`,
		Args:              cobra.ExactArgs(1),
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			name := args[0]
			if strings.TrimSpace(name) == "" {
				return errors.New("bouncer name must not be empty")
			}
			if cmd.Flags().Changed("key") && key == "" {
				return errors.New("--key must not be empty")
			}
			if key == "" {
				var err error
				if key, err = apikey.Generate(); err != nil {
					return fmt.Errorf("unable to generate api key: %w", err)
				}
			}
			st, err := cli.localStore(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			ctx, cancel := dbContext(cmd)
			defer cancel()
			_, err = st.CreateBouncer(ctx, store.Bouncer{Name: name, APIKeyHash: apikey.Hash(key), AuthType: "api-key"})
			if errors.Is(err, store.ErrExists) {
				return fmt.Errorf("unable to create bouncer: bouncer %s already exists", name)
			}
			if err != nil {
				return fmt.Errorf("unable to create bouncer: %w", err)
			}
			switch cli.OutputFormat() {
			case "raw":
				_, err = fmt.Fprintln(cli.Out, key)
				return err
			case "json":
				return cli.printJSON(key)
			default:
				_, err = fmt.Fprintf(cli.Out, "API key for '%s':\n\n   %s\n\nPlease keep this key since you will not be able to retrieve it!\n", name, key)
				return err
			}
		},
	}
	flags := cmd.Flags()
	flags.StringP("length", "l", "", "length of the api key")
	_ = flags.MarkDeprecated("length", "use --key instead")
	flags.StringVarP(&key, "key", "k", "", "api key for the bouncer")
	return cmd
}

func newBouncersDeleteCmd(cli *CLI) *cobra.Command {
	var ignoreMissing bool
	cmd := &cobra.Command{
		Use:               "delete MyBouncerName...",
		Short:             "delete bouncer(s) from the database",
		Example:           `cscli bouncers delete "bouncer1" "bouncer2"`,
		Args:              cobra.MinimumNArgs(1),
		Aliases:           []string{"remove"},
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				return deleteBouncers(ctx, st, args, ignoreMissing)
			})
		},
	}
	cmd.Flags().BoolVar(&ignoreMissing, "ignore-missing", false, "don't print errors if one or more bouncers don't exist")
	return cmd
}

// deleteBouncers deletes bouncers by name. The rows the LAPI creates when a
// key is used from a new address (NAME@IP, auto-created) share the parent's
// key, so they go with their parent: otherwise the key would keep working.
// An auto-created row alone is not deleted, as upstream does: the next pull
// from its address would create it again.
func deleteBouncers(ctx context.Context, st *store.Store, names []string, ignoreMissing bool) error {
	for _, name := range names {
		b, err := st.GetBouncer(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			if ignoreMissing {
				continue
			}
			return fmt.Errorf("unable to delete bouncer %s: bouncer not found", name)
		}
		if err != nil {
			return fmt.Errorf("unable to delete bouncer %s: %w", name, err)
		}
		if b.AutoCreated && b.AuthType == "api-key" {
			parent := strings.SplitN(name, "@", 2)[0]
			log.Warnf("bouncer '%s' is auto-created and cannot be deleted, delete parent bouncer %s instead", name, parent)
			continue
		}
		if b.AuthType == "api-key" {
			siblings, err := st.BouncersByKey(ctx, b.APIKeyHash, "api-key")
			if err != nil {
				return fmt.Errorf("unable to delete bouncer %s: %w", name, err)
			}
			for _, child := range siblings {
				if child.ID == b.ID || !child.AutoCreated {
					continue
				}
				if err := st.DeleteBouncer(ctx, child.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("unable to delete bouncer %s: %w", child.Name, err)
				}
				log.Infof("bouncer '%s' deleted successfully", child.Name)
			}
		}
		if err := st.DeleteBouncer(ctx, name); err != nil {
			if errors.Is(err, store.ErrNotFound) && ignoreMissing {
				continue
			}
			return fmt.Errorf("unable to delete bouncer %s: %w", name, err)
		}
		log.Infof("bouncer '%s' deleted successfully", name)
	}
	return nil
}

func newBouncersPruneCmd(cli *CLI) *cobra.Command {
	duration := dayDurationFlag(60 * time.Minute)
	var force bool
	cmd := &cobra.Command{
		Use:               "prune",
		Short:             "prune multiple bouncers from the database",
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		Example: `cscli bouncers prune -d 45m
cscli bouncers prune -d 45m --force`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.pruneBouncers(cmd, time.Duration(duration), force)
		},
	}
	flags := cmd.Flags()
	flags.VarP(&duration, "duration", "d", "duration of time since last pull")
	flags.BoolVar(&force, "force", false, "force prune without asking for confirmation")
	return cmd
}

func (cli *CLI) pruneBouncers(cmd *cobra.Command, duration time.Duration, force bool) error {
	if duration < 2*time.Minute {
		fmt.Fprintln(cli.Err, "The duration you provided is less than 2 minutes. This may remove active bouncers.")
	}
	st, err := cli.localStore(cmd)
	if err != nil {
		return err
	}
	defer st.Close()
	cutoff := time.Now().Add(-duration)

	ctx, cancel := dbContext(cmd)
	all, err := st.ListBouncers(ctx)
	cancel()
	if err != nil {
		return fmt.Errorf("unable to query bouncers: %w", err)
	}
	var stale []*store.Bouncer
	for _, b := range all {
		seen := b.CreatedAt
		if b.LastPull != nil {
			seen = *b.LastPull
		}
		if seen.Before(cutoff) {
			stale = append(stale, b)
		}
	}
	if len(stale) == 0 {
		fmt.Fprintln(cli.Out, "No bouncers to prune.")
		return nil
	}
	bouncersHuman(cli.Out, stale)
	if !force {
		yes, err := cli.promptYesNo("You are about to PERMANENTLY remove the above bouncers from the database. " +
			"These will NOT be recoverable. Continue?")
		if err != nil {
			return err
		}
		if !yes {
			fmt.Fprintln(cli.Out, "User aborted prune. No changes were made.")
			return nil
		}
	}
	// Same cutoff: a bouncer can only leave the stale set (by pulling)
	// between the listing and now, never join it.
	ctx, cancel = dbContext(cmd)
	defer cancel()
	deleted, err := st.PruneBouncers(ctx, cutoff)
	if err != nil {
		return fmt.Errorf("unable to prune bouncers: %w", err)
	}
	fmt.Fprintf(cli.Err, "Successfully deleted %d bouncers\n", len(deleted))
	return nil
}

func newBouncersInspectCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "inspect [bouncer_name]",
		Short:             "inspect a bouncer by name",
		Example:           `cscli bouncers inspect "bouncer1"`,
		Args:              cobra.ExactArgs(1),
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				b, err := st.GetBouncer(ctx, name)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("unable to read bouncer data '%s': bouncer not found", name)
				}
				if err != nil {
					return fmt.Errorf("unable to read bouncer data '%s': %w", name, err)
				}
				comps, err := bouncerUsage(ctx, st, b.Name)
				if err != nil {
					return fmt.Errorf("unable to read usage metrics of '%s': %w", name, err)
				}
				switch cli.OutputFormat() {
				case "json":
					info := newBouncerInfo(b)
					if len(comps) > 0 {
						info.UsageMetrics = bouncerUsageJSON(comps)[b.Name]
					}
					return cli.printJSON(info)
				case "raw":
					return bouncersCSV(cli.Out, []*store.Bouncer{b})
				default:
					rows := [][]string{
						{"Created At", rfc3339(b.CreatedAt)},
						{"Last Update", rfc3339(b.UpdatedAt)},
						{"Revoked?", strconv.FormatBool(b.Revoked)},
						{"IP Address", b.IPAddress},
						{"Type", b.Type},
						{"Version", b.Version},
						{"Last Pull", rfc3339Ptr(b.LastPull)},
						{"Auth type", b.AuthType},
						{"OS", osNameAndVersion(b.OSName, b.OSVersion)},
						{"Auto Created", strconv.FormatBool(b.AutoCreated)},
					}
					for _, ff := range splitCommaList(b.FeatureFlag) {
						rows = append(rows, []string{"Feature Flags", ff})
					}
					fmt.Fprintf(cli.Out, "Bouncer: %s\n", b.Name)
					renderTable(cli.Out, nil, rows)
					if len(comps) > 0 {
						_, _ = io.WriteString(cli.Out, "\n")
						renderBouncerUsage(cli.Out, comps, func(n int64) string { return formatNumber(n, true) })
					}
					return nil
				}
			})
		},
	}
}
