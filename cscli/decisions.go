package cscli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/internal/netaddr"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// Origins and kinds cscli stamps on what it creates.
const (
	originCscli       = "cscli"
	originCscliImport = "cscli-import"
	kindCscli         = "cscli"
)

// apiTimeout bounds one LAPI call of an interactive command.
const apiTimeout = 2 * time.Minute

// newRootCommandWith builds the command tree writing to out and err and
// reading from in, instead of the process's standard streams (tests).
func newRootCommandWith(out, errw io.Writer, in io.Reader) *cobra.Command {
	root := NewRootCommand()
	root.SetOut(out)
	root.SetErr(errw)
	root.SetIn(in)
	return root
}

// bindIO points the CLI's streams at the command's, which are the process's
// standard streams unless the root was given others (newRootCommandWith).
func (cli *CLI) bindIO(cmd *cobra.Command) {
	cli.Out = cmd.OutOrStdout()
	cli.Err = cmd.ErrOrStderr()
	cli.In = cmd.InOrStdin()
}

// prepare binds the streams and loads the configuration, so that the
// output format reflects cscli.output.
func (cli *CLI) prepare(cmd *cobra.Command) error {
	cli.bindIO(cmd)
	if _, err := cli.Config(); err != nil {
		return err
	}
	return nil
}

// cmdContext is the command's context, never nil.
func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// checkIP and checkRange validate the -i and -r shorthands.
func checkIP(s string) error {
	if s == "" {
		return nil
	}
	if _, err := netaddr.ParseAddr(s); err != nil {
		return fmt.Errorf("%s is not a valid ip", s)
	}
	return nil
}

func checkRange(s string) error {
	if s == "" {
		return nil
	}
	if _, err := netaddr.ParsePrefix(s); err != nil {
		if errors.Is(err, netaddr.ErrMappedPrefix) {
			return fmt.Errorf("%s is not a valid range: %w", s, netaddr.ErrMappedPrefix)
		}
		return fmt.Errorf("%s is not a valid range", s)
	}
	return nil
}

// checkScopedValue validates value for the Ip and Range scopes (a bare
// address is a one-address range); other scopes take any non-empty value.
func checkScopedValue(scope, value string) error {
	switch scope {
	case "Ip":
		if err := checkIP(value); err != nil {
			if checkRange(value) == nil {
				return fmt.Errorf("%s is a range, not an ip: use --range or --scope range", value)
			}
			return err
		}
	case "Range":
		return checkRange(value)
	}
	return nil
}

// apiDuration checks a --since/--until value and writes days as hours,
// since upstream LAPIs only take Go durations there.
func apiDuration(flag, s string) (string, error) {
	d, err := models.ParseDuration(s)
	if err != nil || d < 0 {
		return "", fmt.Errorf("can't parse --%s %q: valid durations look like 1d, 4h, 4h15m", flag, s)
	}
	if !strings.Contains(s, "d") {
		return s, nil
	}
	return d.String(), nil
}

// asNumberName renders an alert source's AS as upstream does: number and
// name separated by a space.
func asNumberName(src *models.Source) string {
	if src == nil {
		return ""
	}
	ret := ""
	if src.AsNumber != "" && src.AsNumber != "0" {
		ret = src.AsNumber
	}
	if src.AsName != "" {
		if ret != "" {
			ret += " "
		}
		ret += src.AsName
	}
	return ret
}

func sourceOf(a *models.Alert) *models.Source {
	if a.Source == nil {
		return &models.Source{}
	}
	return a.Source
}

// decisionSimulated is the decision's simulated flag, or its alert's.
func decisionSimulated(a *models.Alert, d *models.Decision) bool {
	if d.Simulated != nil {
		return *d.Simulated
	}
	return a.Simulated
}

// listFilter holds the filters shared by decisions list and alerts list.
type listFilter struct {
	all       bool
	since     string
	until     string
	typ       string
	scope     string
	origin    string
	value     string
	scenario  string
	ip        string
	rng       string
	kind      string
	limit     int
	noSimu    bool
	contained bool
}

// query turns the filters into GET /v1/alerts parameters.
func (f *listFilter) query() (url.Values, error) {
	if err := checkIP(f.ip); err != nil {
		return nil, err
	}
	if err := checkRange(f.rng); err != nil {
		return nil, err
	}
	q := url.Values{}
	if f.all {
		q.Set("include_capi", "true")
		q.Set("limit", "0")
	} else {
		if f.limit < 0 {
			return nil, fmt.Errorf("--limit must be 0 (no limit) or more, not %d", f.limit)
		}
		q.Set("include_capi", "false")
		q.Set("limit", strconv.Itoa(f.limit))
	}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("ip", f.ip)
	set("range", f.rng)
	if f.scope != "" {
		set("scope", models.NormalizeScope(f.scope))
	}
	set("value", f.value)
	set("scenario", f.scenario)
	set("origin", f.origin)
	set("decision_type", f.typ)
	set("kind", f.kind)
	for _, p := range []struct{ flag, val string }{{"since", f.since}, {"until", f.until}} {
		if p.val == "" {
			continue
		}
		v, err := apiDuration(p.flag, p.val)
		if err != nil {
			return nil, err
		}
		q.Set(p.flag, v)
	}
	if f.noSimu {
		q.Set("simulated", "false")
	}
	if f.contained {
		q.Set("contains", "false")
	}
	return q, nil
}

func newDecisionsCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "decisions [action]",
		Short:   "Manage decisions",
		Long:    "Add, list, delete and import decisions through the Local API",
		Example: "cscli decisions [action] [filter]",
		Aliases: []string{"decision"},
		Args:    cobra.MinimumNArgs(1),
	}
	cmd.AddCommand(newDecisionsListCmd(cli), newDecisionsAddCmd(cli), newDecisionsDeleteCmd(cli), newDecisionsImportCmd(cli))
	return cmd
}

func newDecisionsListCmd(cli *CLI) *cobra.Command {
	var f listFilter
	var printMachine bool
	cmd := &cobra.Command{
		Use:   "list [options]",
		Short: "List decisions from LAPI",
		Example: `cscli decisions list -i 1.2.3.4
cscli decisions list -r 1.2.3.0/24
cscli decisions list -s crowdsecurity/ssh-bf
cscli decisions list --origin lists --scenario list_name`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.listDecisions(cmdContext(cmd), &f, printMachine)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.BoolVarP(&f.all, "all", "a", false, "Include decisions from Central API (and remove the limit)")
	fl.StringVar(&f.since, "since", "", "restrict to alerts newer than since (ie. 4h, 30d)")
	fl.StringVar(&f.until, "until", "", "restrict to alerts older than until (ie. 4h, 30d)")
	fl.StringVarP(&f.typ, "type", "t", "", "restrict to this decision type (ie. ban,captcha)")
	fl.StringVar(&f.scope, "scope", "", "restrict to this scope (ie. ip,range,session)")
	fl.StringVar(&f.origin, "origin", "", "the value to match for the specified origin (crowdsec,cscli,cscli-import,console,lists,CAPI ...)")
	fl.StringVarP(&f.value, "value", "v", "", "restrict to this value (ie. 1.2.3.4,userName)")
	fl.StringVarP(&f.scenario, "scenario", "s", "", "restrict to this scenario (ie. crowdsecurity/ssh-bf)")
	fl.StringVarP(&f.ip, "ip", "i", "", "restrict to alerts from this source ip (shorthand for --scope ip --value <IP>)")
	fl.StringVarP(&f.rng, "range", "r", "", "restrict to alerts from this source range (shorthand for --scope range --value <RANGE>)")
	fl.IntVarP(&f.limit, "limit", "l", 100, "number of alerts to get (use 0 to remove the limit)")
	fl.BoolVar(&f.noSimu, "no-simu", false, "exclude decisions in simulation mode")
	fl.BoolVarP(&printMachine, "machine", "m", false, "print machines that triggered decisions")
	fl.BoolVar(&f.contained, "contained", false, "query decisions contained by range")
	return cmd
}

func (cli *CLI) listDecisions(ctx context.Context, f *listFilter, printMachine bool) error {
	q, err := f.query()
	if err != nil {
		return err
	}
	q.Set("has_active_decision", "true")
	client, _, err := cli.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	alerts, err := client.ListAlerts(ctx, q)
	if err != nil {
		return fmt.Errorf("unable to retrieve decisions: %w", err)
	}
	skipped := keepActiveDecisions(alerts)
	return cli.printDecisions(alerts, skipped, printMachine)
}

// keepActiveDecisions drops expired decisions (negative remaining
// duration) and, as upstream does to keep the listing readable, repeated
// (simulated, type, scope, value) entries. It returns how many repeats went.
func keepActiveDecisions(alerts []*models.Alert) int {
	seen := make(map[string]struct{})
	skipped := 0
	for _, a := range alerts {
		kept := a.Decisions[:0]
		for _, d := range a.Decisions {
			if d == nil || strings.HasPrefix(d.Duration, "-") {
				continue
			}
			key := fmt.Sprintf("%t:%s:%s:%s", decisionSimulated(a, d), d.Type, d.Scope, d.Value)
			if _, dup := seen[key]; dup {
				skipped++
				continue
			}
			seen[key] = struct{}{}
			kept = append(kept, d)
		}
		a.Decisions = kept
	}
	return skipped
}

func (cli *CLI) printDecisions(alerts []*models.Alert, skipped int, printMachine bool) error {
	switch cli.OutputFormat() {
	case "json":
		return cli.printJSON(alerts)
	case "raw":
		header := []string{"id", "source", "ip", "reason", "action", "country", "as", "events_count", "expiration", "simulated", "alert_id"}
		if printMachine {
			header = append(header, "machine")
		}
		var rows [][]string
		for _, a := range alerts {
			src := sourceOf(a)
			for _, d := range a.Decisions {
				row := []string{strconv.FormatInt(d.ID, 10), d.Origin, d.Scope + ":" + d.Value, d.Scenario, d.Type,
					src.Cn, asNumberName(src), strconv.Itoa(int(a.EventsCount)), d.Duration,
					strconv.FormatBool(decisionSimulated(a, d)), strconv.FormatInt(a.ID, 10)}
				if printMachine {
					row = append(row, a.MachineID)
				}
				rows = append(rows, row)
			}
		}
		return writeCSV(cli.Out, header, rows)
	default:
		header := []string{"ID", "Source", "Scope:Value", "Reason", "Action", "Country", "AS", "Events", "expiration", "Alert ID"}
		if printMachine {
			header = append(header, "Machine")
		}
		var rows [][]string
		for _, a := range alerts {
			src := sourceOf(a)
			for _, d := range a.Decisions {
				action := d.Type
				if decisionSimulated(a, d) {
					action = "(simul)" + action
				}
				exp := d.Duration
				if strings.HasPrefix(exp, "-") {
					exp = cli.red(exp)
				}
				row := []string{strconv.FormatInt(d.ID, 10), d.Origin, d.Scope + ":" + d.Value, d.Scenario, action,
					src.Cn, asNumberName(src), strconv.Itoa(int(a.EventsCount)), exp, strconv.FormatInt(a.ID, 10)}
				if printMachine {
					row = append(row, a.MachineID)
				}
				rows = append(rows, row)
			}
		}
		if len(rows) == 0 {
			fmt.Fprintln(cli.Out, "No active decisions")
			return nil
		}
		renderTable(cli.Out, header, rows)
		if skipped > 0 {
			fmt.Fprintf(cli.Out, "%d duplicated entries skipped\n", skipped)
		}
		return nil
	}
}

type addOpts struct {
	ip, rng, duration, value, scope, reason, typ string
	bypassAllowlist                              bool
}

func newDecisionsAddCmd(cli *CLI) *cobra.Command {
	var o addOpts
	cmd := &cobra.Command{
		Use:   "add [options]",
		Short: "Add decision to LAPI",
		Example: `cscli decisions add --ip 1.2.3.4
cscli decisions add --range 1.2.3.0/24
cscli decisions add --ip 1.2.3.4 --duration 24h --type captcha
cscli decisions add --scope username --value foobar`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.addDecision(cmdContext(cmd), o)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&o.ip, "ip", "i", "", "Source ip (shorthand for --scope ip --value <IP>)")
	fl.StringVarP(&o.rng, "range", "r", "", "Range source ip (shorthand for --scope range --value <RANGE>)")
	fl.StringVarP(&o.duration, "duration", "d", "4h", "Decision duration (ie. 1h,4h,30m,7d)")
	fl.StringVarP(&o.value, "value", "v", "", "The value (ie. --scope username --value foobar)")
	fl.StringVar(&o.scope, "scope", "ip", "Decision scope (ie. ip,range,username)")
	fl.StringVarP(&o.reason, "reason", "R", "", "Decision reason (ie. scenario-name)")
	fl.StringVarP(&o.typ, "type", "t", "ban", "Decision type (ie. ban,captcha,throttle)")
	fl.BoolVarP(&o.bypassAllowlist, "bypass-allowlist", "B", false, "Add decision even if value is in allowlist")
	return cmd
}

// manualAlert is the alert upstream cscli sends for one manual decision.
func manualAlert(scope, value, duration, reason, typ string, now time.Time) *models.Alert {
	ts := now.UTC().Format(time.RFC3339)
	src := &models.Source{Scope: scope, Value: value}
	if scope == "Ip" || scope == "Range" {
		src.IP = value
	}
	return &models.Alert{
		Capacity:    0,
		CreatedAt:   ts,
		Decisions:   []*models.Decision{{Duration: duration, Origin: originCscli, Scenario: reason, Scope: scope, Type: typ, Value: value}},
		Events:      []*models.Event{},
		EventsCount: 1,
		Kind:        kindCscli,
		Leakspeed:   "0",
		Message:     reason,
		Remediation: true,
		Scenario:    reason,
		Source:      src,
		StartAt:     ts,
		StopAt:      ts,
	}
}

func (cli *CLI) addDecision(ctx context.Context, o addOpts) error {
	scope, value := models.NormalizeScope(o.scope), o.value
	switch {
	case o.ip != "" && o.rng != "":
		return errors.New("--ip and --range are mutually exclusive")
	case o.ip != "":
		if err := checkIP(o.ip); err != nil {
			return err
		}
		scope, value = "Ip", o.ip
	case o.rng != "":
		if err := checkRange(o.rng); err != nil {
			return err
		}
		scope, value = "Range", o.rng
	case value == "":
		return errors.New("missing arguments, a value is required (--ip, --range or --scope and --value)")
	}
	if scope == "" {
		return errors.New("--scope cannot be empty")
	}
	if err := checkScopedValue(scope, value); err != nil {
		return err
	}
	if o.typ == "" {
		return errors.New("--type cannot be empty")
	}
	d, err := models.ParseDuration(o.duration)
	if err != nil {
		return fmt.Errorf("invalid --duration %q: %w", o.duration, err)
	}
	if d <= 0 {
		return fmt.Errorf("invalid --duration %q: it must be positive", o.duration)
	}
	if _, err := models.Expiry(time.Now(), d); err != nil {
		return fmt.Errorf("invalid --duration %q: %w", o.duration, err)
	}

	client, creds, err := cli.Client()
	if err != nil {
		return err
	}
	reason := o.reason
	if reason == "" {
		reason = fmt.Sprintf("manual '%s' from '%s'", o.typ, creds.Login)
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()

	if !o.bypassAllowlist && (scope == "Ip" || scope == "Range") {
		resp, err := client.CheckAllowlist(ctx, value)
		switch {
		case err != nil:
			fmt.Fprintf(cli.Err, "Cannot check if %s is in allowlist: %s\n", value, err)
		case resp.Allowlisted && strings.HasSuffix(resp.Reason, " from "+store.HostAllowlistName):
			return fmt.Errorf("%s is protected by item %s (loopback, link-local, multicast or this host's addresses): "+
				"no decision may cover it, --bypass-allowlist skips user allowlists only", value, resp.Reason)
		case resp.Allowlisted:
			return fmt.Errorf("%s is allowlisted by item %s, use --bypass-allowlist to add the decision anyway", value, resp.Reason)
		}
	}

	ids, err := client.PushAlerts(ctx, []*models.Alert{manualAlert(scope, value, o.duration, reason, o.typ, time.Now())})
	if err != nil {
		return fmt.Errorf("unable to add decision: %w", err)
	}
	if len(ids) == 0 {
		return fmt.Errorf("the Local API refused the decision on %s (allowlisted?)", value)
	}
	fmt.Fprintln(cli.Out, "Decision successfully added")
	return nil
}

type deleteOpts struct {
	ip, rng, typ, value, scenario, origin, id string
	all, contained                            bool
}

func newDecisionsDeleteCmd(cli *CLI) *cobra.Command {
	var o deleteOpts
	cmd := &cobra.Command{
		Use:     "delete [options]",
		Short:   "Delete decisions",
		Aliases: []string{"remove"},
		Example: `cscli decisions delete -r 1.2.3.0/24
cscli decisions delete -i 1.2.3.4
cscli decisions delete --id 42
cscli decisions delete --type captcha
cscli decisions delete --origin lists --scenario list_name`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !o.all && o.ip == "" && o.rng == "" && o.typ == "" && o.value == "" &&
				o.scenario == "" && o.origin == "" && o.id == "" {
				_ = cmd.Usage()
				return errors.New("at least one filter or --all must be specified")
			}
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.deleteDecisions(cmdContext(cmd), o)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&o.ip, "ip", "i", "", "Source ip (shorthand for --scope ip --value <IP>)")
	fl.StringVarP(&o.rng, "range", "r", "", "Range source ip (shorthand for --scope range --value <RANGE>)")
	fl.StringVarP(&o.typ, "type", "t", "", "the decision type (ie. ban,captcha)")
	fl.StringVarP(&o.value, "value", "v", "", "the value to match for in the specified scope")
	fl.StringVarP(&o.scenario, "scenario", "s", "", "the scenario name (ie. crowdsecurity/ssh-bf)")
	fl.StringVar(&o.origin, "origin", "", "the value to match for the specified origin (crowdsec,cscli,cscli-import,console,lists,CAPI ...)")
	fl.StringVar(&o.id, "id", "", "decision id")
	fl.BoolVar(&o.all, "all", false, "delete all decisions")
	fl.BoolVar(&o.contained, "contained", false, "query decisions contained by range")
	return cmd
}

func (cli *CLI) deleteDecisions(ctx context.Context, o deleteOpts) error {
	if err := checkIP(o.ip); err != nil {
		return err
	}
	if err := checkRange(o.rng); err != nil {
		return err
	}
	var id int64
	if o.id != "" {
		var err error
		if id, err = strconv.ParseInt(o.id, 10, 64); err != nil {
			return fmt.Errorf("id '%s' is not an integer", o.id)
		}
	}
	client, _, err := cli.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()

	var n int
	if o.id != "" {
		if n, err = client.DeleteDecision(ctx, id); err != nil {
			return fmt.Errorf("unable to delete decision: %w", err)
		}
	} else {
		q := url.Values{}
		set := func(k, v string) {
			if v != "" {
				q.Set(k, v)
			}
		}
		set("ip", o.ip)
		set("range", o.rng)
		set("type", o.typ)
		set("value", o.value)
		set("scenario", o.scenario)
		set("origin", o.origin)
		if o.contained {
			q.Set("contains", "false")
		}
		if n, err = client.DeleteDecisions(ctx, q); err != nil {
			return fmt.Errorf("unable to delete decisions: %w", err)
		}
	}
	fmt.Fprintf(cli.Out, "%d decision(s) deleted\n", n)
	return nil
}

// Import tuning. A decision weighs about 100 bytes of JSON, so the default
// batch makes alerts of a few MiB, far under the LAPI's 50 MiB body limit;
// importMaxBatchBytes caps a batch whatever --batch says.
const (
	importDefaultBatch  = 50000
	importMaxBatchBytes = 16 << 20
	importAllowlistLen  = 50000
	importPushTimeout   = 5 * time.Minute
	importMaxReported   = 100
	importPushers       = 2
	importDecisionBytes = 96 // JSON overhead of one decision besides its strings
)

type importOpts struct {
	input, format, duration, scope, reason, typ string
	batch                                       int
}

// rawDecision is one input entry; empty fields take the flag defaults.
type rawDecision struct {
	Duration string `json:"duration"`
	Reason   string `json:"reason"`
	Scope    string `json:"scope"`
	Type     string `json:"type"`
	Value    string `json:"value"`
}

func newDecisionsImportCmd(cli *CLI) *cobra.Command {
	var o importOpts
	cmd := &cobra.Command{
		Use:   "import [options]",
		Short: "Import decisions from a file or pipe",
		Long: "expected format:\n" +
			"csv   : any of duration,reason,scope,type,value, with a header line\n" +
			`json  : [{"duration": "24h", "reason": "my_scenario", "scope": "ip", "type": "ban", "value": "x.y.z.z"}]` + "\n" +
			"values: one value per line; blank lines and lines starting with # are skipped",
		Example: `decisions.csv:
duration,scope,value
24h,ip,1.2.3.4

$ cscli decisions import -i decisions.csv

decisions.json:
[{"duration": "4h", "scope": "ip", "type": "ban", "value": "1.2.3.4"}]

The file format is detected from the extension (.json, .csv, anything else
is values), but can be forced with the --format option, which is required
when reading from standard input.

$ echo "1.2.3.4" | cscli decisions import -i - --format values`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.importDecisions(cmdContext(cmd), o)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&o.input, "input", "i", "", "Input file, or - for standard input")
	fl.StringVarP(&o.duration, "duration", "d", "4h", "Decision duration: 1h,4h,30m,7d")
	fl.StringVar(&o.scope, "scope", "ip", "Decision scope: ip,range,username")
	fl.StringVarP(&o.reason, "reason", "R", "manual", "Decision reason: <scenario-name>")
	fl.StringVarP(&o.typ, "type", "t", "ban", "Decision type: ban,captcha,throttle")
	fl.IntVar(&o.batch, "batch", 0, "Split import in batches of N decisions (0: automatic)")
	fl.StringVar(&o.format, "format", "", "Input format: 'json', 'csv' or 'values' (each line is a value, no headers)")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

// importFormat returns the effective input format.
func importFormat(input, format string) (string, error) {
	switch format {
	case "json", "csv", "values":
		return format, nil
	case "":
	default:
		return "", fmt.Errorf("invalid format '%s', expected one of 'json', 'csv', 'values'", format)
	}
	if input == "-" {
		return "", errors.New("--format is required when reading from standard input")
	}
	switch strings.ToLower(filepath.Ext(input)) {
	case ".json":
		return "json", nil
	case ".csv":
		return "csv", nil
	}
	return "values", nil
}

// importBatch is a run of validated decisions on its way to the LAPI.
type importBatch struct {
	decisions []*models.Decision
	offset    int64 // input bytes consumed when the batch closed
}

// importer parses, validates and batches the input (in one goroutine) and
// pushes the batches (in importPushers others), so reading overlaps the
// LAPI's work.
type importer struct {
	client importClient
	msgs   io.Writer // shared by both goroutines: serialised
	name   string    // the input, for messages
	def    rawDecision
	batch  int

	// producer side
	in       *countingReader
	cur      []*models.Decision
	curBytes int
	out      chan<- *importBatch
	parsed   int
	invalid  int
	skipped  int // allowlisted
	reported int
}

// importClient is what import needs from the LAPI client.
type importClient interface {
	BulkCheckAllowlist(ctx context.Context, targets []string) (*models.BulkCheckAllowlistResponse, error)
	PushAlerts(ctx context.Context, alerts []*models.Alert) ([]string, error)
}

var _ importClient = (*apiclient.Client)(nil)

func (cli *CLI) importDecisions(ctx context.Context, o importOpts) error {
	format, err := importFormat(o.input, o.format)
	if err != nil {
		return err
	}
	switch {
	case o.duration == "":
		return errors.New("default duration cannot be empty")
	case o.scope == "":
		return errors.New("default scope cannot be empty")
	case o.reason == "":
		return errors.New("default reason cannot be empty")
	case o.typ == "":
		return errors.New("default type cannot be empty")
	case o.batch < 0:
		return fmt.Errorf("--batch must be 0 (automatic) or more, not %d", o.batch)
	}
	if d, err := models.ParseDuration(o.duration); err != nil || d <= 0 {
		return fmt.Errorf("invalid --duration %q: a positive duration like 4h, 30m or 7d is expected", o.duration)
	} else if _, err := models.Expiry(time.Now(), d); err != nil {
		return fmt.Errorf("invalid --duration %q: %w", o.duration, err)
	}
	batch := o.batch
	if batch == 0 {
		batch = importDefaultBatch
	}

	var src io.Reader
	var size int64 = -1
	name := o.input
	if o.input == "-" {
		src, name = cli.In, "stdin"
	} else {
		f, err := os.Open(o.input)
		if err != nil {
			return fmt.Errorf("unable to open %s: %w", o.input, err)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
		src = f
	}

	client, _, err := cli.Client()
	if err != nil {
		return err
	}
	msgs := &lockedWriter{w: cli.Err}
	im := &importer{client: client, msgs: msgs, name: name, batch: batch,
		def: rawDecision{Duration: o.duration, Reason: o.reason, Scope: models.NormalizeScope(o.scope), Type: o.typ},
		in:  &countingReader{r: src}}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan *importBatch, 1)
	im.out = ch
	perr := make(chan error, 1)
	go func() {
		defer close(ch)
		perr <- im.produce(ctx, format)
	}()

	var bar *progressbar.ProgressBar
	if isTerminal(cli.Err) {
		bar = progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(msgs),
			progressbar.OptionSetDescription("Importing decisions"),
			progressbar.OptionShowBytes(size > 0),
			progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}

	// Two pushes in flight let the LAPI decode one batch while it writes
	// the other.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		imported int
		pushErr  error
		done     int64
	)
	for range importPushers {
		wg.Go(func() {
			err := im.consume(ctx, ch, func(b *importBatch, ok bool) {
				mu.Lock()
				defer mu.Unlock()
				if ok {
					imported += len(b.decisions)
				}
				if bar == nil {
					return
				}
				if size > 0 {
					done = max(done, b.offset)
					_ = bar.Set64(done)
				} else {
					_ = bar.Add64(int64(len(b.decisions)))
				}
			})
			if err != nil {
				mu.Lock()
				if pushErr == nil {
					pushErr = err
				}
				mu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	for range ch { // let the producer finish after a push error
	}
	prodErr := <-perr
	if bar != nil {
		_ = bar.Finish()
	}
	if im.invalid > im.reported {
		fmt.Fprintf(msgs, "... and %d more invalid entries\n", im.invalid-im.reported)
	}
	if im.skipped > importMaxReported {
		fmt.Fprintf(msgs, "... and %d more allowlisted values\n", im.skipped-importMaxReported)
	}
	switch {
	case pushErr != nil:
		return fmt.Errorf("importing decisions from %s (%d imported before the failure): %w", name, imported, pushErr)
	case prodErr != nil:
		return fmt.Errorf("importing decisions from %s (%d imported before the failure): %w", name, imported, prodErr)
	case im.parsed == 0 && im.invalid == 0:
		return fmt.Errorf("no decisions found in %s", name)
	case im.parsed == 0:
		return fmt.Errorf("no valid decisions found in %s (%d invalid entries)", name, im.invalid)
	}
	if im.invalid > 0 {
		fmt.Fprintf(cli.Out, "%d invalid entries skipped\n", im.invalid)
	}
	if im.skipped > 0 {
		fmt.Fprintf(cli.Out, "%d allowlisted values skipped\n", im.skipped)
	}
	fmt.Fprintf(cli.Out, "Imported %d decisions\n", imported)
	return nil
}

// consume pushes each batch as one alert, calling sent after each (ok is
// false when the LAPI kept nothing of it).
func (im *importer) consume(ctx context.Context, ch <-chan *importBatch, sent func(b *importBatch, ok bool)) error {
	for b := range ch {
		ts := time.Now().UTC().Format(time.RFC3339)
		alert := &models.Alert{
			CreatedAt:   ts,
			Decisions:   b.decisions,
			Events:      []*models.Event{},
			EventsCount: int32(len(b.decisions)),
			Kind:        kindCscli,
			Leakspeed:   "0",
			Message:     fmt.Sprintf("import %s: %d decisions", im.name, len(b.decisions)),
			Scenario:    im.def.Reason,
			Source:      &models.Source{},
			StartAt:     ts,
			StopAt:      ts,
		}
		pctx, cancel := context.WithTimeout(ctx, importPushTimeout)
		ids, err := im.client.PushAlerts(pctx, []*models.Alert{alert})
		cancel()
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			fmt.Fprintf(im.msgs, "the Local API dropped a batch of %d decisions (all invalid or allowlisted)\n", len(b.decisions))
		}
		sent(b, len(ids) > 0)
	}
	return nil
}

// produce parses the input, validates each entry and sends full batches.
func (im *importer) produce(ctx context.Context, format string) error {
	var err error
	switch format {
	case "values":
		err = im.parseValues(ctx)
	case "csv":
		err = im.parseCSV(ctx)
	case "json":
		err = im.parseJSON(ctx)
	}
	if err != nil {
		return err
	}
	return im.flush(ctx)
}

func (im *importer) parseValues(ctx context.Context) error {
	sc := bufio.NewScanner(im.in)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var rd rawDecision
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		rd.Value = string(b)
		if err := im.add(ctx, "line", line, &rd); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", im.name, err)
	}
	return nil
}

func (im *importer) parseCSV(ctx context.Context) error {
	r := csv.NewReader(im.in)
	r.ReuseRecord = true
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the csv header of %s: %w", im.name, err)
	}
	col := map[string]int{"duration": -1, "reason": -1, "scope": -1, "type": -1, "value": -1}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, ok := col[h]; ok {
			col[h] = i
		} else {
			fmt.Fprintf(im.msgs, "csv column %q is unknown: ignored (known: duration,reason,scope,type,value)\n", h)
		}
	}
	if col["value"] < 0 {
		return fmt.Errorf("the csv header of %s has no 'value' column (columns: any of duration,reason,scope,type,value)", im.name)
	}
	field := func(rec []string, name string) string {
		if i := col[name]; i >= 0 && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				im.bad("line", pe.Line, pe.Err.Error())
				continue
			}
			return fmt.Errorf("reading %s: %w", im.name, err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // blank line
		}
		rd := rawDecision{Duration: field(rec, "duration"), Reason: field(rec, "reason"), Scope: field(rec, "scope"),
			Type: field(rec, "type"), Value: field(rec, "value")}
		if err := im.add(ctx, "line", line, &rd); err != nil {
			return err
		}
	}
}

func (im *importer) parseJSON(ctx context.Context) error {
	dec := json.NewDecoder(im.in)
	tok, err := dec.Token()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("parsing %s: %w", im.name, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("parsing %s: expected a JSON list of decisions, found %v", im.name, tok)
	}
	for item := 1; dec.More(); item++ {
		var rd rawDecision
		if err := dec.Decode(&rd); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				im.bad("item", item, err.Error())
				continue
			}
			return fmt.Errorf("parsing %s at item %d: %w", im.name, item, err)
		}
		if err := im.add(ctx, "item", item, &rd); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("parsing %s: %w", im.name, err)
	}
	return nil
}

// bad reports an invalid entry (the first importMaxReported of them).
func (im *importer) bad(what string, n int, msg string) {
	im.invalid++
	if im.reported < importMaxReported {
		im.reported++
		fmt.Fprintf(im.msgs, "%s %d: %s: skipped\n", what, n, msg)
	}
}

// add validates one entry and queues it.
func (im *importer) add(ctx context.Context, what string, n int, rd *rawDecision) error {
	value := strings.TrimSpace(rd.Value)
	if value == "" {
		im.bad(what, n, "missing value")
		return nil
	}
	d := &models.Decision{Duration: im.def.Duration, Origin: originCscliImport, Scenario: im.def.Reason,
		Scope: im.def.Scope, Type: im.def.Type, Value: value}
	if rd.Duration != "" {
		if dur, err := models.ParseDuration(rd.Duration); err != nil || dur <= 0 {
			im.bad(what, n, fmt.Sprintf("invalid duration %q", rd.Duration))
			return nil
		} else if _, err := models.Expiry(time.Now(), dur); err != nil {
			im.bad(what, n, fmt.Sprintf("invalid duration %q: %v", rd.Duration, err))
			return nil
		}
		d.Duration = rd.Duration
	}
	if rd.Scope != "" {
		d.Scope = models.NormalizeScope(strings.TrimSpace(rd.Scope))
	}
	if rd.Reason != "" {
		d.Scenario = rd.Reason
	}
	if rd.Type != "" {
		d.Type = strings.TrimSpace(rd.Type)
	}
	if err := checkScopedValue(d.Scope, value); err != nil {
		im.bad(what, n, err.Error())
		return nil
	}
	im.parsed++
	im.cur = append(im.cur, d)
	im.curBytes += importDecisionBytes + len(d.Value) + len(d.Scenario) + len(d.Duration) + len(d.Scope) + len(d.Type)
	if len(im.cur) >= im.batch || im.curBytes >= importMaxBatchBytes {
		return im.flush(ctx)
	}
	return nil
}

// flush drops the allowlisted entries of the current batch and hands the
// rest to the pusher.
func (im *importer) flush(ctx context.Context) error {
	if len(im.cur) == 0 {
		return nil
	}
	ds := im.cur
	im.cur, im.curBytes = make([]*models.Decision, 0, min(len(ds), im.batch)), 0
	ds, err := im.dropAllowlisted(ctx, ds)
	if err != nil {
		return err
	}
	if len(ds) == 0 {
		return nil
	}
	select {
	case im.out <- &importBatch{decisions: ds, offset: im.in.n}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dropAllowlisted asks the LAPI which Ip/Range values are allowlisted
// (POST /v1/allowlists/check, in chunks) and filters them out.
func (im *importer) dropAllowlisted(ctx context.Context, ds []*models.Decision) ([]*models.Decision, error) {
	var targets []string
	for _, d := range ds {
		if d.Scope == "Ip" || d.Scope == "Range" {
			targets = append(targets, d.Value)
		}
	}
	hits := map[string][]string{}
	for start := 0; start < len(targets); start += importAllowlistLen {
		chunk := targets[start:min(start+importAllowlistLen, len(targets))]
		cctx, cancel := context.WithTimeout(ctx, apiTimeout)
		resp, err := im.client.BulkCheckAllowlist(cctx, chunk)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("checking allowlists: %w", err)
		}
		for _, r := range resp.Results {
			hits[r.Target] = r.Allowlists
		}
	}
	if len(hits) == 0 {
		return ds, nil
	}
	kept := ds[:0]
	for _, d := range ds {
		if lists, ok := hits[d.Value]; ok && (d.Scope == "Ip" || d.Scope == "Range") {
			im.skipped++
			if im.skipped <= importMaxReported {
				fmt.Fprintf(im.msgs, "Value %s is allowlisted by %s: skipped\n", d.Value, strings.Join(lists, ", "))
			}
			continue
		}
		kept = append(kept, d)
	}
	return kept, nil
}

// countingReader counts the bytes read through it (progress reporting).
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
