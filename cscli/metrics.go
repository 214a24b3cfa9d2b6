package cscli

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/usage"
)

// metricsTimeout bounds one scrape: the endpoint is local, so a slow answer
// means a stuck daemon and the operator should hear about it quickly.
const metricsTimeout = 10 * time.Second

// metricsSection is one table of `cscli metrics`, as upstream names it.
type metricsSection struct {
	name, title, desc string
	keys              []string     // key column headers, one per nesting level in json
	cols              []metricsCol // value columns
	// collect feeds the section's values from the scraped families.
	collect func(f families, add addFunc)
}

// metricsCol is a value column: its header and its key in json output. A
// section with one column whose json key is "" nests the number directly,
// as upstream does for alerts, decisions and lapi routes.
type metricsCol struct{ header, json string }

type families map[string]*dto.MetricFamily

type addFunc func(keys []string, col string, v float64)

// sourceHitsType recognises the per-datasource line counters such as
// cs_filesource_hits_total and returns their datasource type ("file"),
// used when the sample has no type label.
func sourceHitsType(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "cs_")
	if !ok {
		return "", false
	}
	t, ok := strings.CutSuffix(rest, "source_hits_total")
	return t, ok && t != "" && !strings.Contains(t, "_")
}

// metricsSections returns the sections in upstream's display order. It is
// a function rather than a variable so that no package state is mutable.
func metricsSections() []metricsSection {
	one := []metricsCol{{"Count", ""}}
	hits := []metricsCol{{"Hits", ""}}
	return []metricsSection{
		{name: "acquisition", title: "Acquisition Metrics", desc: "Lines read, parsed, poured and whitelisted per datasource",
			keys: []string{"Source"},
			cols: []metricsCol{{"Lines read", "reads"}, {"Lines parsed", "parsed"}, {"Lines unparsed", "unparsed"},
				{"Lines poured to bucket", "pour"}, {"Lines whitelisted", "whitelisted"}},
			collect: func(f families, add addFunc) {
				for name := range f {
					if t, ok := sourceHitsType(name); ok {
						f.each(name, func(l map[string]string, v float64) { add([]string{acqSource(l, t)}, "reads", v) })
					}
				}
				f.each("cs_parser_hits_ok_total", func(l map[string]string, v float64) { add([]string{acqSource(l, "")}, "parsed", v) })
				f.each("cs_parser_hits_ko_total", func(l map[string]string, v float64) { add([]string{acqSource(l, "")}, "unparsed", v) })
				f.each("cs_bucket_poured_total", func(l map[string]string, v float64) { add([]string{acqSource(l, "")}, "pour", v) })
				f.each("cs_node_wl_hits_ok_total", func(l map[string]string, v float64) { add([]string{acqSource(l, "")}, "whitelisted", v) })
			}},
		// Rampart's: a source that cannot read (its port taken, journalctl
		// missing) is retried by the agent; this is where it shows.
		{name: "sources", title: "Log Source Status", desc: "Whether each configured log source reads (Up 1) or fails and is retried (Up 0), and its restarts",
			keys: []string{"Source", "Type"}, cols: []metricsCol{{"Up", "up"}, {"Restarts", "retries"}},
			collect: func(f families, add addFunc) {
				f.byLabels("rampart_acquisition_source_up", add, "up", "source", "type")
				f.byLabels("rampart_acquisition_source_retries_total", add, "retries", "source", "type")
			}},
		{name: "parsers", title: "Parser Metrics", desc: "Hits, successes and failures per parser node",
			keys: []string{"Parsers"}, cols: []metricsCol{{"Hits", "hits"}, {"Parsed", "parsed"}, {"Unparsed", "unparsed"}},
			collect: func(f families, add addFunc) {
				f.byLabels("cs_node_hits_total", add, "hits", "name")
				f.byLabels("cs_node_hits_ok_total", add, "parsed", "name")
				f.byLabels("cs_node_hits_ko_total", add, "unparsed", "name")
			}},
		// Evicted is Rampart's: buckets dropped to stay within
		// crowdsec_service.max_buckets_per_scenario.
		{name: "scenarios", title: "Scenario Metrics", desc: "Bucket counts, overflows, pours and evictions per scenario",
			keys: []string{"Scenario"},
			cols: []metricsCol{{"Current Count", "curr_count"}, {"Overflows", "overflow"}, {"Instantiated", "instantiation"},
				{"Poured", "pour"}, {"Expired", "underflow"}, {"Evicted", "evicted"}},
			collect: func(f families, add addFunc) {
				f.byLabels("cs_buckets", add, "curr_count", "name")
				f.byLabels("cs_bucket_overflowed_total", add, "overflow", "name")
				f.byLabels("cs_bucket_instantiation_total", add, "instantiation", "name")
				f.byLabels("cs_bucket_poured_total", add, "pour", "name")
				f.byLabels("cs_bucket_underflowed_total", add, "underflow", "name")
				f.byLabels("rampart_bucket_evicted_total", add, "evicted", "name")
			}},
		{name: "stash", title: "Parser Stash Metrics", desc: "Items held in parser stashes",
			keys: []string{"Name", "Type"}, cols: []metricsCol{{"Items", ""}},
			collect: func(f families, add addFunc) { f.byLabels("cs_cache_size", add, "", "name", "type") }},
		{name: "whitelists", title: "Whitelist Metrics", desc: "Hits and whitelisted events per whitelist",
			keys: []string{"Whitelist", "Reason"}, cols: []metricsCol{{"Hits", "hits"}, {"Whitelisted", "whitelisted"}},
			collect: func(f families, add addFunc) {
				f.byLabels("cs_node_wl_hits_total", add, "hits", "name", "reason")
				f.byLabels("cs_node_wl_hits_ok_total", add, "whitelisted", "name", "reason")
			}},
		{name: "alerts", title: "Local API Alerts", desc: "Alerts in the database per scenario (excluding CAPI)",
			keys: []string{"Reason"}, cols: one,
			collect: func(f families, add addFunc) { f.byLabels("cs_alerts", add, "", "reason") }},
		{name: "decisions", title: "Local API Decisions", desc: "Active decisions per reason, origin and action",
			keys: []string{"Reason", "Origin", "Action"}, cols: one,
			collect: func(f families, add addFunc) {
				f.byLabels("cs_active_decisions", add, "", "reason", "origin", "action")
			}},
		{name: "lapi", title: "Local API Metrics", desc: "Requests per LAPI route and method",
			keys: []string{"Route", "Method"}, cols: hits,
			collect: func(f families, add addFunc) {
				f.byLabels("cs_lapi_route_requests_total", add, "", "route", "method")
			}},
		{name: "lapi-bouncer", title: "Local API Bouncers Metrics", desc: "LAPI requests per bouncer, route and method",
			keys: []string{"Bouncer", "Route", "Method"}, cols: hits,
			collect: func(f families, add addFunc) {
				f.byLabels("cs_lapi_bouncer_requests_total", add, "", "bouncer", "route", "method")
			}},
		{name: "lapi-machine", title: "Local API Machines Metrics", desc: "LAPI requests per machine, route and method",
			keys: []string{"Machine", "Route", "Method"}, cols: hits,
			collect: func(f families, add addFunc) {
				f.byLabels("cs_lapi_machine_requests_total", add, "", "machine", "route", "method")
			}},
		{name: "lapi-decisions", title: "Local API Bouncers Decisions", desc: "Empty and non-empty decision answers per bouncer",
			keys: []string{"Bouncer"}, cols: []metricsCol{{"Empty answers", "Empty"}, {"Non-empty answers", "NonEmpty"}},
			collect: func(f families, add addFunc) {
				f.byLabels("cs_lapi_decisions_ko_total", add, "Empty", "bouncer")
				f.byLabels("cs_lapi_decisions_ok_total", add, "NonEmpty", "bouncer")
			}},
		// Read from the usage metrics bouncers push to the LAPI's database,
		// as upstream does, not from Prometheus; see showMetrics.
		{name: "bouncers", title: "Bouncer Metrics", desc: "Usage metrics pushed by bouncers: active decisions, dropped and processed traffic",
			keys: []string{"Bouncer"}, cols: one, collect: func(families, addFunc) {}},
	}
}

// metricsAliases expands upstream's section groups.
func metricsAliases() map[string][]string {
	return map[string][]string{
		"engine": {"acquisition", "sources", "parsers", "scenarios", "stash", "whitelists"},
		"lapi":   {"alerts", "decisions", "lapi", "lapi-bouncer", "lapi-decisions", "lapi-machine"},
	}
}

// acqSource names a datasource as upstream shows it, "type:source".
func acqSource(l map[string]string, fallbackType string) string {
	t := l["type"]
	if t == "" {
		t = l["datasource_type"]
	}
	if t == "" {
		t = fallbackType
	}
	if t == "" {
		return l["source"]
	}
	return t + ":" + l["source"]
}

// each calls fn for every sample of the family name.
func (f families) each(name string, fn func(labels map[string]string, v float64)) {
	fam, ok := f[name]
	if !ok {
		return
	}
	for _, m := range fam.GetMetric() {
		l := make(map[string]string, len(m.GetLabel()))
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		var v float64
		switch {
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Untyped != nil:
			v = m.GetUntyped().GetValue()
		default:
			continue // histograms and summaries have no single value to show
		}
		fn(l, v)
	}
}

// byLabels adds every sample of name to col, keyed by the given labels;
// samples that differ in other labels are summed.
func (f families) byLabels(name string, add addFunc, col string, labels ...string) {
	f.each(name, func(l map[string]string, v float64) {
		keys := make([]string, len(labels))
		for i, k := range labels {
			keys[i] = l[k]
		}
		add(keys, col, v)
	})
}

// sectionData is one section's values: rows keyed by their key columns.
type sectionData struct {
	def  metricsSection
	rows map[string]map[string]float64 // joined keys → json column → value
	keys map[string][]string
}

func buildSection(def metricsSection, f families) *sectionData {
	d := &sectionData{def: def, rows: map[string]map[string]float64{}, keys: map[string][]string{}}
	def.collect(f, func(keys []string, col string, v float64) {
		k := strings.Join(keys, "\x00")
		if d.rows[k] == nil {
			d.rows[k] = map[string]float64{}
			d.keys[k] = keys
		}
		d.rows[k][col] += v
	})
	return d
}

func (d *sectionData) sortedKeys() []string {
	ks := make([]string, 0, len(d.rows))
	for k := range d.rows {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// table returns the section's rows as text; missing values are "-".
func (d *sectionData) table(format func(int64) string) (header []string, rows [][]string) {
	header = append(slices.Clone(d.def.keys), colHeaders(d.def.cols)...)
	for _, k := range d.sortedKeys() {
		r := slices.Clone(d.keys[k])
		for _, c := range d.def.cols {
			if v, ok := d.rows[k][c.json]; ok {
				r = append(r, format(int64(math.Round(v))))
			} else {
				r = append(r, "-")
			}
		}
		rows = append(rows, r)
	}
	return header, rows
}

func colHeaders(cols []metricsCol) []string {
	h := make([]string, len(cols))
	for i, c := range cols {
		h[i] = c.header
	}
	return h
}

// jsonValue nests rows by key column, as upstream's json output does.
func (d *sectionData) jsonValue() map[string]any {
	out := map[string]any{}
	for _, k := range d.sortedKeys() {
		keys := d.keys[k]
		m := out
		for _, key := range keys[:len(keys)-1] {
			next, ok := m[key].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[key] = next
			}
			m = next
		}
		last := keys[len(keys)-1]
		if len(d.def.cols) == 1 && d.def.cols[0].json == "" {
			m[last] = int64(math.Round(d.rows[k][""]))
			continue
		}
		leaf := map[string]int64{}
		for col, v := range d.rows[k] {
			leaf[col] = int64(math.Round(v))
		}
		m[last] = leaf
	}
	return out
}

// formatNumber shortens large numbers with k/M/G like upstream, unless
// the operator asked for exact values with --no-unit.
func formatNumber(n int64, unit bool) string {
	if !unit {
		return strconv.FormatInt(n, 10)
	}
	abs := math.Abs(float64(n))
	for _, u := range []struct {
		div    float64
		suffix string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if abs >= u.div {
			return strconv.FormatFloat(math.Round(float64(n)/u.div*100)/100, 'f', -1, 64) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

type metricsOpts struct {
	url    string
	noUnit bool
}

func newMetricsCmd(cli *CLI) *cobra.Command {
	opts := &metricsOpts{}
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Display crowdsec prometheus metrics",
		Long:  "Fetch metrics from the prometheus endpoint and display them in a human-friendly way.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.showMetrics(cmd, opts, nil)
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&opts.url, "url", "u", "", "metrics url (default: from prometheus.listen_addr/listen_port, e.g. http://127.0.0.1:6060/metrics)")
	pf.BoolVar(&opts.noUnit, "no-unit", false, "show the real number instead of formatted with units")

	names := []string{}
	for _, s := range metricsSections() {
		names = append(names, s.name)
	}
	for a := range metricsAliases() {
		if !slices.Contains(names, a) {
			names = append(names, a)
		}
	}
	cmd.AddCommand(&cobra.Command{
		Use:       "show [section]...",
		Short:     "Display all or part of the available metrics",
		ValidArgs: names,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.showMetrics(cmd, opts, args)
		},
	}, &cobra.Command{
		Use:   "list",
		Short: "List available types of metrics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.listMetrics(cmd)
		},
	})
	return cmd
}

// listMetrics prints the section names; it needs no daemon.
func (cli *CLI) listMetrics(cmd *cobra.Command) error {
	cli.bindIO(cmd)
	// The configuration only sets the default output format here, so a
	// missing file must not stop the listing.
	_, _ = cli.Config()
	secs := metricsSections()
	switch cli.OutputFormat() {
	case "json":
		type entry struct {
			Type        string `json:"type"`
			Title       string `json:"title"`
			Description string `json:"description"`
		}
		list := make([]entry, len(secs))
		for i, s := range secs {
			list[i] = entry{s.name, s.title, s.desc}
		}
		return cli.printJSON(list)
	default:
		rows := make([][]string, len(secs))
		for i, s := range secs {
			rows[i] = []string{s.name, s.title, s.desc}
		}
		if cli.OutputFormat() == "raw" {
			return writeCSV(cli.Out, []string{"type", "title", "description"}, rows)
		}
		renderTable(cli.Out, []string{"Type", "Title", "Description"}, rows)
		return nil
	}
}

// selectSections resolves section names and aliases, keeping display order.
func selectSections(args []string) ([]metricsSection, error) {
	all := metricsSections()
	if len(args) == 0 {
		return all, nil
	}
	want := map[string]bool{}
	aliases := metricsAliases()
	for _, a := range args {
		if exp, ok := aliases[a]; ok {
			for _, n := range exp {
				want[n] = true
			}
			continue
		}
		if !slices.ContainsFunc(all, func(s metricsSection) bool { return s.name == a }) {
			return nil, fmt.Errorf("unknown metrics type %q: see 'cscli metrics list'", a)
		}
		want[a] = true
	}
	var out []metricsSection
	for _, s := range all {
		if want[s.name] {
			out = append(out, s)
		}
	}
	return out, nil
}

func (cli *CLI) showMetrics(cmd *cobra.Command, opts *metricsOpts, args []string) error {
	cli.bindIO(cmd)
	secs, err := selectSections(args)
	if err != nil {
		return err
	}
	explicit := len(args) > 0
	// Bouncer usage comes from the database, everything else from the
	// daemon's Prometheus endpoint: each is read only when shown.
	wantBouncers := slices.ContainsFunc(secs, func(s metricsSection) bool { return s.name == "bouncers" })
	secs = slices.DeleteFunc(secs, func(s metricsSection) bool { return s.name == "bouncers" })
	var data []*sectionData
	if len(secs) > 0 {
		url, origin, err := cli.metricsURL(opts.url)
		if err != nil {
			return err
		}
		fams, err := scrapeMetrics(cmdContext(cmd), url)
		if err != nil {
			return fmt.Errorf("%w (%s)", err, origin)
		}
		for _, s := range secs {
			d := buildSection(s, fams)
			// Upstream skips empty tables unless they were asked for by name.
			if len(d.rows) == 0 && !explicit {
				continue
			}
			data = append(data, d)
		}
	}
	var bouncers []*usage.Component
	if wantBouncers {
		bouncers, err = cli.readBouncerUsage(cmd)
		if err != nil {
			if explicit {
				return err
			}
			// cscli metrics also runs where only the daemon's endpoint is
			// reachable; the other sections are still worth showing.
			_, _ = fmt.Fprintf(cli.Err, "bouncer metrics skipped: %v\n", err)
		}
	}
	switch cli.OutputFormat() {
	case "json":
		out := map[string]any{}
		for _, d := range data {
			out[d.def.name] = d.jsonValue()
		}
		if len(bouncers) > 0 || (wantBouncers && explicit) {
			out["bouncers"] = bouncerUsageJSON(bouncers)
		}
		return cli.printJSON(out)
	case "raw":
		for _, d := range data {
			h, rows := d.table(func(n int64) string { return strconv.FormatInt(n, 10) })
			for i := range rows {
				rows[i] = append([]string{d.def.name}, rows[i]...)
			}
			if err := writeCSV(cli.Out, append([]string{"section"}, h...), rows); err != nil {
				return err
			}
		}
		if len(bouncers) > 0 {
			return bouncerUsageCSV(cli.Out, bouncers, true)
		}
		return nil
	default:
		format := func(n int64) string { return formatNumber(n, !opts.noUnit) }
		for _, d := range data {
			h, rows := d.table(format)
			if _, err := fmt.Fprintf(cli.Out, "%s:\n", d.def.title); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
			if len(rows) == 0 {
				_, _ = fmt.Fprintf(cli.Out, "  no metrics\n\n")
				continue
			}
			renderTable(cli.Out, h, rows)
			_, _ = io.WriteString(cli.Out, "\n")
		}
		if len(bouncers) == 0 && wantBouncers && explicit {
			_, _ = fmt.Fprintf(cli.Out, "Bouncer Metrics:\n  no bouncer has reported usage metrics\n\n")
		}
		renderBouncerUsage(cli.Out, bouncers, format)
		return nil
	}
}

// readBouncerUsage opens the local database for the bouncers section.
func (cli *CLI) readBouncerUsage(cmd *cobra.Command) ([]*usage.Component, error) {
	if _, err := cli.Config(); err != nil {
		return nil, err
	}
	st, err := cli.localStore(cmd)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ctx, cancel := dbContext(cmd)
	defer cancel()
	return bouncerUsage(ctx, st, "")
}

// metricsURL returns the endpoint and where it came from, so that a
// failure tells the operator which setting to fix.
func (cli *CLI) metricsURL(flag string) (url, origin string, err error) {
	if flag != "" {
		// The config still sets the default output format when present.
		_, _ = cli.Config()
		return flag, "from --url", nil
	}
	cfg, err := cli.Config()
	if err != nil {
		return "", "", fmt.Errorf("%w (or give the endpoint with --url)", err)
	}
	if !csconfig.Bool(cfg.Prometheus.Enabled, true) {
		return "", "", fmt.Errorf("prometheus is disabled in %s (prometheus.enabled = false): enable it or give --url", cfg.Path)
	}
	u := "http://" + net.JoinHostPort(cfg.Prometheus.ListenAddr, strconv.Itoa(cfg.Prometheus.ListenPort)) + "/metrics"
	return u, fmt.Sprintf("address from prometheus.listen_addr/listen_port in %s; override with --url", cfg.Path), nil
}

// scrapeMetrics fetches and parses the text exposition format.
func scrapeMetrics(ctx context.Context, url string) (families, error) {
	ctx, cancel := context.WithTimeout(ctx, metricsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics url %s: %w", url, err)
	}
	// Ask for text: the parser below does not read the protobuf format.
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("could not fetch metrics from %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("could not fetch metrics from %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics from %s: %w", url, err)
	}
	return fams, nil
}
