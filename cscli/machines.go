package cscli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	log "github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/lapi/usage"
)

// machinePasswordLength is the length of generated passwords (upstream's).
const machinePasswordLength = 64

// heartbeatStale is when a machine's last heartbeat gets the warning mark.
const heartbeatStale = 2 * time.Minute

const alnumCharset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomAlnum returns n characters drawn uniformly from [A-Za-z0-9].
func randomAlnum(n int) (string, error) {
	buf := make([]byte, n)
	max := big.NewInt(int64(len(alnumCharset)))
	for i := range buf {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("generating random string: %w", err)
		}
		buf[i] = alnumCharset[v.Int64()]
	}
	return string(buf), nil
}

// generateMachineID derives a machine name as upstream does: the OS
// installation id (/etc/machine-id), else the host name, else random
// characters, cut to 32, plus 16 random characters.
func generateMachineID() (string, error) {
	var prefix string
	for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(p); err == nil {
			if prefix = strings.TrimSpace(string(b)); prefix != "" {
				break
			}
		}
	}
	if prefix == "" {
		if h, err := os.Hostname(); err == nil {
			prefix = h
		}
	}
	prefix = strings.Map(func(r rune) rune {
		if r < 128 && strings.ContainsRune(alnumCharset, r) {
			return r
		}
		return -1
	}, prefix)
	if prefix == "" {
		var err error
		if prefix, err = randomAlnum(32); err != nil {
			return "", err
		}
	}
	if len(prefix) > 32 {
		prefix = prefix[:32]
	}
	suffix, err := randomAlnum(16)
	if err != nil {
		return "", err
	}
	return prefix + suffix, nil
}

// readSecret reads a password from cli.In, without echo on a terminal.
func (cli *CLI) readSecret(prompt string) (string, error) {
	fmt.Fprint(cli.Err, prompt)
	if f, ok := cli.In.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cli.Err)
		if err != nil {
			return "", fmt.Errorf("reading password: %w", err)
		}
		return string(b), nil
	}
	line, err := readInputLine(cli.In)
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("reading password: %w", err)
	}
	return line, nil
}

// localAPIURL is the URL local clients use to reach the configured LAPI
// listener; a wildcard listen address becomes loopback.
func localAPIURL(cfg *csconfig.Config) string {
	srv := cfg.API.Server
	if srv.ListenURI == "" && srv.ListenSocket != "" {
		return srv.ListenSocket
	}
	hostport := srv.ListenURI
	if host, port, err := net.SplitHostPort(srv.ListenURI); err == nil {
		if a, perr := netip.ParseAddr(host); host == "" || (perr == nil && a.IsUnspecified() && a.Is4()) {
			hostport = net.JoinHostPort("127.0.0.1", port)
		} else if perr == nil && a.IsUnspecified() {
			hostport = net.JoinHostPort("::1", port)
		}
	}
	scheme := "http"
	if srv.TLS != nil && srv.TLS.CertFile != "" {
		scheme = "https"
	}
	return scheme + "://" + hostport + "/"
}

// writeCredentials writes a credentials file, or prints it for "-".
func (cli *CLI) writeCredentials(path string, c *csconfig.Credentials) error {
	if path == "-" {
		if err := toml.NewEncoder(cli.Out).Encode(c); err != nil {
			return fmt.Errorf("writing credentials: %w", err)
		}
		return nil
	}
	return csconfig.WriteCredentials(path, c)
}

func newMachinesCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "machines [action]",
		Short: "Manage local API machines [requires local API]",
		Long: `To list/add/delete/validate/prune machines.
Note: This command requires database direct access, so is intended to be run on the local API machine.
`,
		Example:           `cscli machines [action]`,
		Aliases:           []string{"machine"},
		DisableAutoGenTag: true,
	}
	cmd.AddCommand(newMachinesListCmd(cli), newMachinesAddCmd(cli), newMachinesDeleteCmd(cli),
		newMachinesValidateCmd(cli), newMachinesPruneCmd(cli), newMachinesInspectCmd(cli))
	return cmd
}

// machineInfo is the JSON shape of list and inspect (upstream's keys).
type machineInfo struct {
	CreatedAt     time.Time  `json:"created_at,omitempty"`
	UpdatedAt     time.Time  `json:"updated_at,omitempty"`
	LastPush      *time.Time `json:"last_push,omitempty"`
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
	MachineID     string     `json:"machineId,omitempty"`
	IPAddress     string     `json:"ipAddress,omitempty"`
	Version       string     `json:"version,omitempty"`
	IsValidated   bool       `json:"isValidated,omitempty"`
	AuthType      string     `json:"auth_type"`
	OS            string     `json:"os,omitempty"`
	Scenarios     []string   `json:"scenarios,omitempty"`
	// Set by inspect from the agent's usage metrics.
	Featureflags []string          `json:"featureflags,omitempty"`
	Datasources  map[string]int    `json:"datasources,omitempty"`
	UsageMetrics *machineUsageInfo `json:"usage_metrics,omitempty"`
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func newMachineInfo(m *store.Machine) machineInfo {
	info := machineInfo{
		CreatedAt:     m.CreatedAt.UTC(),
		UpdatedAt:     m.UpdatedAt.UTC(),
		LastPush:      utcPtr(m.LastPush),
		LastHeartbeat: utcPtr(m.LastHeartbeat),
		MachineID:     m.MachineID,
		IPAddress:     m.IPAddress,
		Version:       m.Version,
		IsValidated:   m.IsValidated,
		AuthType:      m.AuthType,
		Scenarios:     splitCommaList(m.Scenarios),
	}
	if m.OSName != "" || m.OSVersion != "" {
		info.OS = osNameAndVersion(m.OSName, m.OSVersion)
	}
	return info
}

// lastHeartbeat renders the time since the last heartbeat and whether the
// machine counts as active.
func lastHeartbeat(m *store.Machine, now time.Time) (string, bool) {
	if m.LastHeartbeat == nil {
		return "-", false
	}
	elapsed := now.Sub(*m.LastHeartbeat)
	return elapsed.Truncate(time.Second).String(), elapsed <= heartbeatStale
}

func machinesHuman(w io.Writer, machines []*store.Machine) {
	now := time.Now()
	rows := make([][]string, 0, len(machines))
	for _, m := range machines {
		validated := markProhibited
		if m.IsValidated {
			validated = markCheck
		}
		hb, active := lastHeartbeat(m, now)
		if !active {
			hb = markWarning + " " + hb
		}
		rows = append(rows, []string{m.MachineID, m.IPAddress, rfc3339(m.UpdatedAt), validated, m.Version,
			osNameAndVersion(m.OSName, m.OSVersion), m.AuthType, hb})
	}
	renderTable(w, []string{"Name", "IP Address", "Last Update", "Status", "Version", "OS", "Auth Type", "Last Heartbeat"}, rows)
}

func machinesCSV(w io.Writer, machines []*store.Machine) error {
	rows := make([][]string, 0, len(machines))
	for _, m := range machines {
		hb := "-"
		if m.LastHeartbeat != nil {
			hb = rfc3339(*m.LastHeartbeat)
		}
		rows = append(rows, []string{m.MachineID, m.IPAddress, rfc3339(m.UpdatedAt), strconv.FormatBool(m.IsValidated),
			m.Version, m.AuthType, hb, m.OSName + "/" + m.OSVersion})
	}
	return writeCSV(w, []string{"machine_id", "ip_address", "updated_at", "validated", "version", "auth_type", "last_heartbeat", "os"}, rows)
}

func newMachinesListCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "list",
		Short:             "list all machines in the database",
		Long:              `list all machines in the database with their status and last heartbeat`,
		Example:           `cscli machines list`,
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				machines, err := st.ListMachines(ctx)
				if err != nil {
					return fmt.Errorf("unable to list machines: %w", err)
				}
				switch cli.OutputFormat() {
				case "json":
					info := make([]machineInfo, 0, len(machines))
					for _, m := range machines {
						info = append(info, newMachineInfo(m))
					}
					return cli.printJSON(info)
				case "raw":
					return machinesCSV(cli.Out, machines)
				default:
					machinesHuman(cli.Out, machines)
					return nil
				}
			})
		},
	}
}

type machineAddOpts struct {
	password    string
	file        string
	url         string
	interactive bool
	auto        bool
	force       bool
}

func newMachinesAddCmd(cli *CLI) *cobra.Command {
	var o machineAddOpts
	cmd := &cobra.Command{
		Use:               "add [name]",
		Short:             "add a single machine to the database",
		Long:              `Register a new machine in the database. cscli should be on the same machine as LAPI.`,
		Args:              cobra.MaximumNArgs(1),
		DisableAutoGenTag: true,
		Example: `cscli machines add --auto
cscli machines add MyTestMachine --auto
cscli machines add MyTestMachine --password MyPassword
cscli machines add -f- --auto > /tmp/mycreds.toml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.addMachine(cmd, args, o)
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&o.password, "password", "p", "", "machine password to login to the API")
	flags.StringVarP(&o.file, "file", "f", "", "output file destination (defaults to api.client.credentials_path; - for standard output)")
	flags.StringVarP(&o.url, "url", "u", "", "URL of the local API")
	flags.BoolVarP(&o.interactive, "interactive", "i", false, "interactive mode to enter the password")
	flags.BoolVarP(&o.auto, "auto", "a", false, "automatically generate password (and username if not provided)")
	flags.BoolVar(&o.force, "force", false, "will force add the machine if it already exists")
	return cmd
}

func (cli *CLI) addMachine(cmd *cobra.Command, args []string, o machineAddOpts) error {
	cfg, err := cli.Config()
	if err != nil {
		return err
	}
	var machineID string
	if len(args) == 1 {
		machineID = args[0]
	} else {
		if !o.auto {
			return errors.New("please specify a machine name to add, or use --auto")
		}
		if machineID, err = generateMachineID(); err != nil {
			return fmt.Errorf("unable to generate machine id: %w", err)
		}
	}
	if strings.TrimSpace(machineID) == "" {
		return errors.New("machine name must not be empty")
	}

	dumpFile := o.file
	if dumpFile == "" && cfg.API.Client.CredentialsPath != "" {
		credFile := cfg.API.Client.CredentialsPath
		_, err := os.Stat(credFile)
		switch {
		case os.IsNotExist(err) || o.force:
			dumpFile = credFile
		case err != nil:
			return fmt.Errorf("unable to stat '%s': %w", credFile, err)
		default:
			return fmt.Errorf(`credentials file '%s' already exists: please remove it, use "--force" or specify a different file with "-f" ("-f -" for standard output)`, credFile)
		}
	}
	if dumpFile == "" {
		return errors.New(`please specify a file to dump credentials to, with -f ("-f -" for standard output)`)
	}

	password := o.password
	switch {
	case password != "":
	case o.interactive:
		if password, err = cli.readSecret("Please provide a password for the machine: "); err != nil {
			return err
		}
		if password == "" {
			return errors.New("the password must not be empty")
		}
	case o.auto:
		if password, err = randomAlnum(machinePasswordLength); err != nil {
			return err
		}
	default:
		return errors.New("please specify a password with --password or use --auto")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if errors.Is(err, bcrypt.ErrPasswordTooLong) {
		return errors.New("the password is too long: at most 72 bytes")
	}
	if err != nil {
		return fmt.Errorf("hashing password: %w", err)
	}

	apiURL := o.url
	if apiURL == "" {
		apiURL = localAPIURL(cfg)
	} else {
		apiURL = normalizeAPIURL(apiURL)
	}

	st, err := cli.localStore(cmd)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, cancel := dbContext(cmd)
	defer cancel()
	err = st.CreateMachine(ctx, store.Machine{MachineID: machineID, PasswordHash: string(hash), IsValidated: true, AuthType: "password"}, o.force)
	if errors.Is(err, store.ErrExists) {
		return fmt.Errorf("unable to create machine: machine '%s' already exists (use --force to replace it)", machineID)
	}
	if err != nil {
		return fmt.Errorf("unable to create machine: %w", err)
	}
	fmt.Fprintf(cli.Err, "Machine '%s' successfully added to the local API.\n", machineID)

	creds := &csconfig.Credentials{URL: apiURL, Login: machineID, Password: password}
	if err := cli.writeCredentials(dumpFile, creds); err != nil {
		return fmt.Errorf("write api credentials in '%s' failed: %w", dumpFile, err)
	}
	if dumpFile != "-" {
		fmt.Fprintf(cli.Err, "API credentials written to '%s'.\n", dumpFile)
	}
	return nil
}

func newMachinesDeleteCmd(cli *CLI) *cobra.Command {
	var ignoreMissing bool
	cmd := &cobra.Command{
		Use:               "delete [machine_name]...",
		Short:             "delete machine(s) by name",
		Example:           `cscli machines delete "machine1" "machine2"`,
		Args:              cobra.MinimumNArgs(1),
		Aliases:           []string{"remove"},
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				for _, id := range args {
					err := st.DeleteMachine(ctx, id)
					if errors.Is(err, store.ErrNotFound) {
						if ignoreMissing {
							continue
						}
						return fmt.Errorf("unable to delete machine '%s': machine not found", id)
					}
					if err != nil {
						return fmt.Errorf("unable to delete machine '%s': %w", id, err)
					}
					log.Infof("machine '%s' deleted successfully", id)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&ignoreMissing, "ignore-missing", false, "don't print errors if one or more machines don't exist")
	return cmd
}

func newMachinesValidateCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "validate [machine_name]",
		Short:             "validate a machine to access the local API",
		Long:              `validate a machine to access the local API.`,
		Example:           `cscli machines validate "machine_name"`,
		Args:              cobra.ExactArgs(1),
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				err := st.ValidateMachine(ctx, args[0])
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("unable to validate machine '%s': machine not found", args[0])
				}
				if err != nil {
					return fmt.Errorf("unable to validate machine '%s': %w", args[0], err)
				}
				log.Infof("machine '%s' validated successfully", args[0])
				return nil
			})
		},
	}
}

func newMachinesPruneCmd(cli *CLI) *cobra.Command {
	duration := dayDurationFlag(10 * time.Minute)
	var notValidOnly, force bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "prune multiple machines from the database",
		Long:  `prune multiple machines that are not validated or have not connected to the local API in a given duration.`,
		Example: `cscli machines prune
cscli machines prune --duration 1h
cscli machines prune --not-validated-only --force`,
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.pruneMachines(cmd, time.Duration(duration), notValidOnly, force)
		},
	}
	flags := cmd.Flags()
	flags.VarP(&duration, "duration", "d", "duration of time since validated machine last heartbeat")
	flags.BoolVar(&notValidOnly, "not-validated-only", false, "only prune machines that are not validated")
	flags.BoolVar(&force, "force", false, "force prune without asking for confirmation")
	return cmd
}

func (cli *CLI) pruneMachines(cmd *cobra.Command, duration time.Duration, notValidOnly, force bool) error {
	if duration < 2*time.Minute && !notValidOnly {
		fmt.Fprintln(cli.Err, "The duration you provided is less than 2 minutes. "+
			"This can break installations if the machines are only temporarily disconnected.")
	}
	st, err := cli.localStore(cmd)
	if err != nil {
		return err
	}
	defer st.Close()
	cutoff := time.Now().Add(-duration)

	ctx, cancel := dbContext(cmd)
	all, err := st.ListMachines(ctx)
	cancel()
	if err != nil {
		return fmt.Errorf("unable to query machines: %w", err)
	}
	// The same criteria as store.PruneMachines.
	var stale []*store.Machine
	for _, m := range all {
		if notValidOnly {
			if !m.IsValidated && m.CreatedAt.Before(cutoff) {
				stale = append(stale, m)
			}
			continue
		}
		seen := m.UpdatedAt
		if m.LastHeartbeat != nil {
			seen = *m.LastHeartbeat
		}
		if seen.Before(cutoff) {
			stale = append(stale, m)
		}
	}
	if len(stale) == 0 {
		fmt.Fprintln(cli.Out, "No machines to prune.")
		return nil
	}
	machinesHuman(cli.Out, stale)
	if !force {
		yes, err := cli.promptYesNo("You are about to PERMANENTLY remove the above machines from the database. " +
			"These will NOT be recoverable. Continue?")
		if err != nil {
			return err
		}
		if !yes {
			fmt.Fprintln(cli.Out, "User aborted prune. No changes were made.")
			return nil
		}
	}
	ctx, cancel = dbContext(cmd)
	defer cancel()
	deleted, err := st.PruneMachines(ctx, cutoff, notValidOnly)
	if err != nil {
		return fmt.Errorf("unable to prune machines: %w", err)
	}
	fmt.Fprintf(cli.Err, "successfully deleted %d machines\n", len(deleted))
	return nil
}

func newMachinesInspectCmd(cli *CLI) *cobra.Command {
	var showHub bool
	cmd := &cobra.Command{
		Use:   "inspect [machine_name]",
		Short: "inspect a machine by name",
		Long: `Show a machine, the log sources and line counts its agent reports in its usage metrics,
or with --hub the hub items it runs.`,
		Example: `cscli machines inspect "machine1"
cscli machines inspect "machine1" --hub`,
		Args:              cobra.ExactArgs(1),
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			return cli.withStore(cmd, func(ctx context.Context, st *store.Store) error {
				m, err := st.GetMachine(ctx, id)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("unable to read machine data '%s': machine not found", id)
				}
				if err != nil {
					return fmt.Errorf("unable to read machine data '%s': %w", id, err)
				}
				c, err := machineUsage(ctx, st, m.MachineID)
				if err != nil {
					return fmt.Errorf("unable to read usage metrics of '%s': %w", id, err)
				}
				if showHub {
					return cli.printMachineHub(m.MachineID, c)
				}
				return cli.inspectMachine(m, c)
			})
		},
	}
	cmd.Flags().BoolVarP(&showHub, "hub", "H", false, "show the hub items the machine's agent runs")
	return cmd
}

// inspectMachine prints a machine with what its usage metrics (c, nil if
// none) add: datasources, feature flags, collections and line counts.
func (cli *CLI) inspectMachine(m *store.Machine, c *usage.Component) error {
	info := newMachineInfo(m)
	if c != nil {
		if info.Version == "" {
			info.Version = c.Version
		}
		if info.OS == "" && c.OS != "" {
			info.OS = c.OS
		}
		info.Featureflags = c.FeatureFlags
		info.Datasources = c.Datasources
	}
	switch cli.OutputFormat() {
	case "json":
		if c != nil {
			info.UsageMetrics = newMachineUsageInfo(c)
		}
		return cli.printJSON(info)
	case "raw":
		return machinesCSV(cli.Out, []*store.Machine{m})
	}
	hb := "-"
	if m.LastHeartbeat != nil {
		hb = rfc3339(*m.LastHeartbeat)
	}
	osName := osNameAndVersion(m.OSName, m.OSVersion)
	if m.OSName == "" && m.OSVersion == "" && info.OS != "" {
		osName = info.OS
	}
	rows := [][]string{
		{"IP Address", m.IPAddress},
		{"Created At", rfc3339(m.CreatedAt)},
		{"Last Update", rfc3339(m.UpdatedAt)},
		{"Last Heartbeat", hb},
		{"Last Push", rfc3339Ptr(m.LastPush)},
		{"Validated?", strconv.FormatBool(m.IsValidated)},
		{"CrowdSec version", info.Version},
		{"OS", osName},
		{"Auth type", m.AuthType},
	}
	for _, s := range info.Scenarios {
		rows = append(rows, []string{"Scenarios", s})
	}
	if c != nil {
		for _, kind := range slices.Sorted(maps.Keys(c.Datasources)) {
			rows = append(rows, []string{"Datasources", fmt.Sprintf("%s: %d", kind, c.Datasources[kind])})
		}
		for _, ff := range c.FeatureFlags {
			rows = append(rows, []string{"Feature Flags", ff})
		}
		for _, col := range c.HubItems["collections"] {
			rows = append(rows, []string{"Collections", col.Name})
		}
		rows = append(rows, []string{"Last usage report", rfc3339(c.LastReport)})
	}
	fmt.Fprintf(cli.Out, "Machine: %s\n", m.MachineID)
	renderTable(cli.Out, nil, rows)
	if c != nil {
		renderMachineUsage(cli.Out, c)
	}
	return nil
}
