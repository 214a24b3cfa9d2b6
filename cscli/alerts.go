package cscli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

func newAlertsCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "alerts [action]",
		Short:   "Manage alerts",
		Aliases: []string{"alert"},
		Args:    cobra.MinimumNArgs(1),
	}
	cmd.AddCommand(newAlertsListCmd(cli), newAlertsInspectCmd(cli), newAlertsFlushCmd(cli), newAlertsDeleteCmd(cli))
	return cmd
}

func newAlertsListCmd(cli *CLI) *cobra.Command {
	var f listFilter
	var printMachine bool
	cmd := &cobra.Command{
		Use:   "list [filters]",
		Short: "List alerts",
		Long:  "List alerts with optional filters",
		Example: `cscli alerts list
cscli alerts list --ip 1.2.3.4
cscli alerts list --range 1.2.3.0/24
cscli alerts list --origin lists
cscli alerts list -s crowdsecurity/ssh-bf
cscli alerts list --type ban`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.listAlerts(cmdContext(cmd), &f, printMachine)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.BoolVarP(&f.all, "all", "a", false, "Include decisions from Central API (and remove the limit)")
	fl.StringVar(&f.until, "until", "", "restrict to alerts older than until (ie. 4h, 30d)")
	fl.StringVar(&f.since, "since", "", "restrict to alerts newer than since (ie. 4h, 30d)")
	fl.StringVarP(&f.ip, "ip", "i", "", "restrict to alerts from this source ip (shorthand for --scope ip --value <IP>)")
	fl.StringVarP(&f.scenario, "scenario", "s", "", "the scenario (ie. crowdsecurity/ssh-bf)")
	fl.StringVarP(&f.rng, "range", "r", "", "restrict to alerts from this range (shorthand for --scope range --value <RANGE/X>)")
	fl.StringVar(&f.typ, "type", "", "restrict to alerts with given decision type (ie. ban, captcha)")
	fl.StringVar(&f.scope, "scope", "", "restrict to alerts of this scope (ie. ip,range)")
	fl.StringVarP(&f.value, "value", "v", "", "the value to match for in the specified scope")
	fl.StringVar(&f.origin, "origin", "", "the value to match for the specified origin (crowdsec,cscli,cscli-import,console,lists,CAPI ...)")
	fl.StringVar(&f.kind, "kind", "", "restrict to alerts of this kind (ie. crowdsec, cscli, waf)")
	fl.BoolVar(&f.contained, "contained", false, "query decisions contained by range")
	fl.BoolVarP(&printMachine, "machine", "m", false, "print machines that sent alerts")
	fl.IntVarP(&f.limit, "limit", "l", 50, "limit size of alerts list table (0 to view all alerts)")
	return cmd
}

func (cli *CLI) listAlerts(ctx context.Context, f *listFilter, printMachine bool) error {
	q, err := f.query()
	if err != nil {
		return err
	}
	client, _, err := cli.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	alerts, err := client.ListAlerts(ctx, q)
	if err != nil {
		return fmt.Errorf("unable to list alerts: %w", err)
	}
	return cli.printAlerts(alerts, printMachine)
}

// decisionsSummary counts an alert's decisions per type, e.g.
// "ban:1 (simul)captcha:2", sorted by key.
func decisionsSummary(a *models.Alert) string {
	counts := map[string]int{}
	for _, d := range a.Decisions {
		if d == nil {
			continue
		}
		k := d.Type
		if decisionSimulated(a, d) {
			k = "(simul)" + k
		}
		counts[k]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ":" + strconv.Itoa(counts[k])
	}
	return strings.Join(parts, " ")
}

// alertValue is the human "value" column: Scope:Value, or "Ip (3 ips)"
// for an alert that carries several decisions.
func alertValue(a *models.Alert) string {
	src := sourceOf(a)
	if len(a.Decisions) > 1 && a.Decisions[0] != nil {
		scope := src.Scope
		if scope == "" {
			scope = a.Decisions[0].Scope
		}
		return fmt.Sprintf("%s (%d %ss)", scope, len(a.Decisions), strings.ToLower(a.Decisions[0].Scope))
	}
	if src.Value != "" {
		return src.Scope + ":" + src.Value
	}
	return src.Scope
}

func (cli *CLI) printAlerts(alerts []*models.Alert, printMachine bool) error {
	switch cli.OutputFormat() {
	case "json":
		return cli.printJSON(alerts)
	case "raw":
		header := []string{"id", "scope", "value", "reason", "country", "as", "decisions", "created_at", "kind"}
		if printMachine {
			header = append(header, "machine")
		}
		rows := make([][]string, 0, len(alerts))
		for _, a := range alerts {
			src := sourceOf(a)
			row := []string{strconv.FormatInt(a.ID, 10), src.Scope, src.Value, a.Scenario, src.Cn, asNumberName(src),
				decisionsSummary(a), a.StartAt, a.Kind}
			if printMachine {
				row = append(row, a.MachineID)
			}
			rows = append(rows, row)
		}
		return writeCSV(cli.Out, header, rows)
	default:
		if len(alerts) == 0 {
			fmt.Fprintln(cli.Out, "No active alerts")
			return nil
		}
		header := []string{"ID", "value", "reason", "country", "as", "decisions", "created_at", "kind"}
		if printMachine {
			header = append(header, "machine")
		}
		rows := make([][]string, 0, len(alerts))
		for _, a := range alerts {
			src := sourceOf(a)
			row := []string{strconv.FormatInt(a.ID, 10), alertValue(a), a.Scenario, src.Cn, asNumberName(src),
				decisionsSummary(a), a.StartAt, a.Kind}
			if printMachine {
				row = append(row, a.MachineID)
			}
			rows = append(rows, row)
		}
		renderTable(cli.Out, header, rows)
		return nil
	}
}

func newAlertsInspectCmd(cli *CLI) *cobra.Command {
	var details bool
	cmd := &cobra.Command{
		Use:     "inspect <alert_id>...",
		Short:   "Show info about an alert",
		Example: "cscli alerts inspect 123",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				_ = cmd.Help()
				return errors.New("missing alert_id")
			}
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.inspectAlerts(cmdContext(cmd), args, details)
		},
	}
	cmd.Flags().SortFlags = false
	cmd.Flags().BoolVarP(&details, "details", "d", false, "show alerts with events")
	return cmd
}

func (cli *CLI) inspectAlerts(ctx context.Context, args []string, details bool) error {
	ids := make([]int64, len(args))
	for i, a := range args {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return fmt.Errorf("bad alert id %s", a)
		}
		ids[i] = id
	}
	client, _, err := cli.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	alerts := make([]*models.Alert, 0, len(ids))
	for i, id := range ids {
		a, err := client.GetAlert(ctx, id)
		if err != nil {
			return fmt.Errorf("can't find alert with id %s: %w", args[i], err)
		}
		alerts = append(alerts, a)
	}
	switch cli.OutputFormat() {
	case "json":
		if len(alerts) == 1 {
			return cli.printJSON(alerts[0])
		}
		return cli.printJSON(alerts)
	case "raw":
		for i, a := range alerts {
			if i > 0 {
				fmt.Fprintln(cli.Out, "---")
			}
			if err := writeYAML(cli.Out, a); err != nil {
				return fmt.Errorf("unable to render alert %d: %w", a.ID, err)
			}
		}
		return nil
	default:
		for _, a := range alerts {
			cli.displayAlert(a, details)
		}
		return nil
	}
}

// displayAlert prints the human view of one alert.
func (cli *CLI) displayAlert(a *models.Alert, details bool) {
	src := sourceOf(a)
	scopeValue := src.Scope
	if src.Value != "" {
		scopeValue += ":" + src.Value
	}
	w := cli.Out
	fmt.Fprintf(w, "\n%s\n\n", strings.Repeat("#", 96))
	for _, f := range [][2]string{
		{"ID", strconv.FormatInt(a.ID, 10)},
		{"Date", a.CreatedAt},
		{"Machine", a.MachineID},
		{"Simulation", strconv.FormatBool(a.Simulated)},
		{"Remediation", strconv.FormatBool(a.Remediation)},
		{"Kind", a.Kind},
		{"Reason", a.Scenario},
		{"Events Count", strconv.Itoa(int(a.EventsCount))},
		{"Scope:Value", scopeValue},
		{"Country", src.Cn},
		{"AS", asNumberName(src)},
		{"Begin", a.StartAt},
		{"End", a.StopAt},
		{"UUID", a.UUID},
	} {
		fmt.Fprintf(w, " - %-13s: %s\n", f[0], f[1])
	}
	fmt.Fprintln(w)

	var active [][]string
	for _, d := range a.Decisions {
		if d == nil || strings.HasPrefix(d.Duration, "-") {
			continue
		}
		if left, err := models.ParseDuration(d.Duration); err == nil && left <= 0 {
			continue
		}
		sv := d.Scope
		if d.Value != "" {
			sv += ":" + d.Value
		}
		active = append(active, []string{strconv.FormatInt(d.ID, 10), sv, d.Type, d.Duration, a.CreatedAt})
	}
	if len(active) > 0 {
		fmt.Fprintln(w, " - Active Decisions  :")
		renderTable(w, []string{"ID", "scope:value", "action", "expiration", "created_at"}, active)
	}

	if len(a.Meta) > 0 {
		meta := append([]models.Meta(nil), a.Meta...)
		sort.SliceStable(meta, func(i, j int) bool { return meta[i].Key < meta[j].Key })
		var rows [][]string
		for _, m := range meta {
			// Context values travel as JSON lists of strings.
			var vals []string
			if err := json.Unmarshal([]byte(m.Value), &vals); err != nil {
				rows = append(rows, []string{m.Key, m.Value})
				continue
			}
			for _, v := range vals {
				rows = append(rows, []string{m.Key, v})
			}
		}
		fmt.Fprintf(w, "\n - Context  :\n")
		renderTable(w, []string{"Key", "Value"}, rows)
	}

	if details {
		fmt.Fprintf(w, "\n - Events  :\n")
		for _, e := range a.Events {
			if e == nil {
				continue
			}
			fmt.Fprintf(w, "\n- Date: %s\n", e.Timestamp)
			meta := append([]models.Meta(nil), e.Meta...)
			sort.SliceStable(meta, func(i, j int) bool { return meta[i].Key < meta[j].Key })
			rows := make([][]string, len(meta))
			for i, m := range meta {
				rows[i] = []string{m.Key, m.Value}
			}
			renderTable(w, []string{"Key", "Value"}, rows)
		}
	}
}

type alertDeleteOpts struct {
	scope, value, scenario, ip, rng, id string
	all, contained                      bool
}

func newAlertsDeleteCmd(cli *CLI) *cobra.Command {
	var o alertDeleteOpts
	cmd := &cobra.Command{
		Use: "delete [filters] [--all]",
		Short: `Delete alerts
/!\ This command can be used only on the same machine as the local API.`,
		Example: `cscli alerts delete --ip 1.2.3.4
cscli alerts delete --range 1.2.3.0/24
cscli alerts delete -s crowdsecurity/ssh-bf`,
		Aliases: []string{"remove"},
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !o.all && o.scope == "" && o.value == "" && o.scenario == "" && o.ip == "" && o.rng == "" && o.id == "" {
				_ = cmd.Usage()
				return errors.New("at least one filter or --all must be specified")
			}
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.deleteAlerts(cmdContext(cmd), o)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&o.scope, "scope", "", "the scope (ie. ip,range)")
	fl.StringVarP(&o.value, "value", "v", "", "the value to match for in the specified scope")
	fl.StringVarP(&o.scenario, "scenario", "s", "", "the scenario (ie. crowdsecurity/ssh-bf)")
	fl.StringVarP(&o.ip, "ip", "i", "", "Source ip (shorthand for --scope ip --value <IP>)")
	fl.StringVarP(&o.rng, "range", "r", "", "Range source ip (shorthand for --scope range --value <RANGE>)")
	fl.StringVar(&o.id, "id", "", "alert ID")
	fl.BoolVarP(&o.all, "all", "a", false, "delete all alerts")
	fl.BoolVar(&o.contained, "contained", false, "query decisions contained by range")
	return cmd
}

func (cli *CLI) deleteAlerts(ctx context.Context, o alertDeleteOpts) error {
	var id int64
	if o.id != "" {
		var err error
		if id, err = strconv.ParseInt(o.id, 10, 64); err != nil {
			return fmt.Errorf("id '%s' is not an integer", o.id)
		}
	}
	q := url.Values{}
	if !o.all {
		if err := checkIP(o.ip); err != nil {
			return err
		}
		if err := checkRange(o.rng); err != nil {
			return err
		}
		set := func(k, v string) {
			if v != "" {
				q.Set(k, v)
			}
		}
		if o.scope != "" {
			set("scope", models.NormalizeScope(o.scope))
		}
		set("value", o.value)
		set("scenario", o.scenario)
		set("ip", o.ip)
		set("range", o.rng)
		if o.contained {
			q.Set("contains", "false")
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
		if n, err = client.DeleteAlert(ctx, id); err != nil {
			return fmt.Errorf("unable to delete alert: %w", err)
		}
	} else if n, err = client.DeleteAlerts(ctx, q); err != nil {
		return fmt.Errorf("unable to delete alerts: %w", err)
	}
	fmt.Fprintf(cli.Out, "%d alert(s) deleted\n", n)
	return nil
}

func newAlertsFlushCmd(cli *CLI) *cobra.Command {
	var (
		maxItems int
		maxAge   string
	)
	cmd := &cobra.Command{
		Use: "flush",
		Short: `Flush alerts
/!\ This command can be used only on the same machine as the local API`,
		Example: "cscli alerts flush --max-items 1000 --max-age 7d",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.flushAlerts(cmdContext(cmd), maxItems, maxAge)
		},
	}
	cmd.Flags().SortFlags = false
	cmd.Flags().IntVar(&maxItems, "max-items", 5000, "Maximum number of alert items to keep in the database (0: no limit)")
	cmd.Flags().StringVar(&maxAge, "max-age", "7d", "Maximum age of alert items to keep in the database (0: no limit)")
	return cmd
}

func (cli *CLI) flushAlerts(ctx context.Context, maxItems int, maxAge string) error {
	if maxItems < 0 {
		return fmt.Errorf("--max-items must be 0 (no limit) or more, not %d", maxItems)
	}
	var age time.Duration
	if maxAge != "" && maxAge != "0" {
		var err error
		if age, err = models.ParseDuration(maxAge); err != nil || age < 0 {
			return fmt.Errorf("invalid --max-age %q: a duration like 7d or 12h is expected", maxAge)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := cli.requireLocalAPI(); err != nil {
		return err
	}
	st, err := cli.Store(ctx)
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer st.Close()
	fmt.Fprintln(cli.Err, "Flushing alerts. !! This may take a long time !!")
	res, err := st.Flush(ctx, store.FlushPolicy{MaxAge: age, MaxItems: maxItems}, time.Now())
	if err != nil {
		return fmt.Errorf("unable to flush alerts: %w", err)
	}
	fmt.Fprintf(cli.Out, "Alerts flushed: %d alert(s) and %d ended decision(s) removed\n", res.Alerts, res.Decisions)
	return nil
}

// yamlNode is a JSON value with its key order kept, for writeYAML.
type yamlNode struct {
	keys   []string    // object keys (isMap)
	items  []*yamlNode // object values or list items
	scalar string      // rendered scalar
	isMap  bool
	isList bool
}

// writeYAML renders v (through its JSON form, so field names and order
// follow the JSON tags) as block YAML.
func writeYAML(w io.Writer, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	n, err := readYAMLNode(dec)
	if err != nil {
		return err
	}
	var b strings.Builder
	switch {
	case n.isMap && len(n.keys) > 0, n.isList && len(n.items) > 0:
		emitYAML(&b, n, 0)
	default:
		b.WriteString(inlineYAML(n) + "\n")
	}
	_, err = io.WriteString(w, b.String())
	return err
}

func readYAMLNode(dec *json.Decoder) (*yamlNode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		n := &yamlNode{isMap: t == '{', isList: t == '['}
		for dec.More() {
			if n.isMap {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				ks, _ := k.(string)
				n.keys = append(n.keys, ks)
			}
			child, err := readYAMLNode(dec)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, child)
		}
		if _, err := dec.Token(); err != nil { // closing delimiter
			return nil, err
		}
		return n, nil
	case string:
		return &yamlNode{scalar: yamlString(t)}, nil
	case json.Number:
		return &yamlNode{scalar: t.String()}, nil
	case bool:
		return &yamlNode{scalar: strconv.FormatBool(t)}, nil
	default:
		return &yamlNode{scalar: "null"}, nil
	}
}

// inlineYAML renders scalars and empty collections.
func inlineYAML(n *yamlNode) string {
	switch {
	case n.isMap && len(n.keys) == 0:
		return "{}"
	case n.isList && len(n.items) == 0:
		return "[]"
	}
	return n.scalar
}

func emitYAML(b *strings.Builder, n *yamlNode, indent int) {
	pad := strings.Repeat(" ", indent)
	if n.isMap {
		for i, k := range n.keys {
			c := n.items[i]
			b.WriteString(pad + yamlString(k) + ":")
			if (c.isMap && len(c.keys) > 0) || (c.isList && len(c.items) > 0) {
				b.WriteString("\n")
				emitYAML(b, c, indent+2)
			} else {
				b.WriteString(" " + inlineYAML(c) + "\n")
			}
		}
		return
	}
	for _, c := range n.items {
		switch {
		case c.isMap && len(c.keys) > 0:
			// "- " takes the place of the first key's indentation.
			var sub strings.Builder
			emitYAML(&sub, c, indent+2)
			b.WriteString(pad + "- " + strings.TrimPrefix(sub.String(), pad+"  "))
		case c.isList && len(c.items) > 0:
			b.WriteString(pad + "-\n")
			emitYAML(b, c, indent+2)
		default:
			b.WriteString(pad + "- " + inlineYAML(c) + "\n")
		}
	}
}

// yamlString writes s plain when no YAML reader could take it for
// anything but that string, and double-quoted (JSON escapes are valid
// YAML) otherwise.
func yamlString(s string) string {
	plain := s != "" && s[0] != ' ' && s[len(s)-1] != ' ' && s[len(s)-1] != ':' &&
		!strings.Contains(s, ": ") && !strings.Contains(s, " #")
	if plain {
		c := s[0]
		plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '/' || c == '_' || c == '.'
	}
	for i := 0; plain && i < len(s); i++ {
		c := s[i]
		plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			strings.IndexByte(" _./:@()+-='", c) >= 0
	}
	if plain {
		switch strings.ToLower(s) {
		case "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", ".nan", ".inf":
			plain = false
		}
	}
	if plain {
		return s
	}
	q, _ := json.Marshal(s)
	return string(q)
}
