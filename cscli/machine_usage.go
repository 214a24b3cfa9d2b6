package cscli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/lapi/usage"
	"github.com/rampart-ips/rampart/models"
)

// machineUsage reads the usage metrics a machine's agent pushed; nil when
// it pushed none.
func machineUsage(ctx context.Context, st *store.Store, id string) (*usage.Component, error) {
	reports, err := st.UsageReports(ctx, "log_processor", id)
	if err != nil {
		return nil, err
	}
	for _, c := range usage.Summarize(reports) {
		if c.Name == id {
			return c, nil
		}
	}
	return nil, nil
}

// sourceUsage is one row of the acquisition table: a log source's lines.
type sourceUsage struct {
	DatasourceType string `json:"datasource_type"`
	Source         string `json:"source"`
	AcquisType     string `json:"acquis_type,omitempty"`
	Read           int64  `json:"read"`
	Parsed         int64  `json:"parsed"`
	Unparsed       int64  `json:"unparsed"`
}

// label is how the tables name the source, as upstream does:
// "file:/var/log/auth.log (syslog)".
func (s sourceUsage) label() string {
	l := s.DatasourceType + ":" + s.Source
	if s.AcquisType != "" {
		l += " (" + s.AcquisType + ")"
	}
	return l
}

// parserUsage is one row of the parser table: one parser's hits on one
// source's lines (only recent upstream agents report those).
type parserUsage struct {
	Source   string `json:"source"`
	Stage    string `json:"stage"`
	Parser   string `json:"parser"`
	Parsed   int64  `json:"parsed"`
	Unparsed int64  `json:"unparsed"`
}

func usageInt(v float64) int64 {
	if math.IsNaN(v) || v < 0 {
		return 0
	}
	return int64(math.Min(math.Round(v), math.MaxInt64))
}

// machineUsageTables sums a machine's line counts per source, and per
// source and parser. Rampart's agent sends parsed/unparsed per source;
// recent upstream agents send them per parser node and global_parsed/
// global_unparsed per source: both land in the same source columns.
func machineUsageTables(c *usage.Component) ([]sourceUsage, []parserUsage) {
	type srcKey struct{ typ, src string }
	sources := map[srcKey]*sourceUsage{}
	type parserKey struct{ src, stage, name string }
	parsers := map[parserKey]*parserUsage{}
	for _, v := range c.Values {
		if v.Unit != models.UsageUnitLine {
			continue
		}
		if name, ok := v.Labels["parser_name"]; ok {
			if v.Name != models.UsageParsed && v.Name != models.UsageUnparsed {
				continue
			}
			src := "Postoverflows" // upstream's name for lines without acquisition labels
			if v.Labels["datasource_type"] != "" || v.Labels["source"] != "" {
				src = sourceUsage{DatasourceType: v.Labels["datasource_type"], Source: v.Labels["source"], AcquisType: v.Labels["acquis_type"]}.label()
			}
			k := parserKey{src, v.Labels["parser_stage"], name}
			p := parsers[k]
			if p == nil {
				p = &parserUsage{Source: k.src, Stage: k.stage, Parser: k.name}
				parsers[k] = p
			}
			if v.Name == models.UsageParsed {
				p.Parsed += usageInt(v.Value)
			} else {
				p.Unparsed += usageInt(v.Value)
			}
			continue
		}
		var field func(*sourceUsage) *int64
		switch v.Name {
		case models.UsageRead:
			field = func(s *sourceUsage) *int64 { return &s.Read }
		case models.UsageParsed, models.UsageGlobalParsed:
			field = func(s *sourceUsage) *int64 { return &s.Parsed }
		case models.UsageUnparsed, models.UsageGlobalUnparsed:
			field = func(s *sourceUsage) *int64 { return &s.Unparsed }
		default:
			continue
		}
		k := srcKey{v.Labels["datasource_type"], v.Labels["source"]}
		s := sources[k]
		if s == nil {
			s = &sourceUsage{DatasourceType: k.typ, Source: k.src}
			sources[k] = s
		}
		if t := v.Labels["acquis_type"]; t != "" && s.AcquisType == "" {
			s.AcquisType = t
		}
		*field(s) += usageInt(v.Value)
	}
	srcRows := make([]sourceUsage, 0, len(sources))
	for _, s := range sources {
		srcRows = append(srcRows, *s)
	}
	slices.SortFunc(srcRows, func(a, b sourceUsage) int { return strings.Compare(a.label(), b.label()) })
	parserRows := make([]parserUsage, 0, len(parsers))
	for _, p := range parsers {
		parserRows = append(parserRows, *p)
	}
	slices.SortFunc(parserRows, func(a, b parserUsage) int {
		// Postoverflows last, as upstream shows them.
		post := func(p parserUsage) bool { return p.Source == "Postoverflows" }
		if post(a) != post(b) {
			if post(a) {
				return 1
			}
			return -1
		}
		return cmp.Or(strings.Compare(a.Source, b.Source), strings.Compare(a.Stage, b.Stage), strings.Compare(a.Parser, b.Parser))
	})
	return srcRows, parserRows
}

// machineUsageInfo is the usage part of `machines inspect -o json`.
type machineUsageInfo struct {
	Since       time.Time     `json:"since"`
	LastReport  time.Time     `json:"last_report"`
	Acquisition []sourceUsage `json:"acquisition"`
	Parsers     []parserUsage `json:"parsers,omitempty"`
}

func newMachineUsageInfo(c *usage.Component) *machineUsageInfo {
	src, parsers := machineUsageTables(c)
	return &machineUsageInfo{Since: c.Since.UTC(), LastReport: c.LastReport.UTC(), Acquisition: src, Parsers: parsers}
}

// renderMachineUsage prints the acquisition and parser tables, each only
// when it has rows.
func renderMachineUsage(w io.Writer, c *usage.Component) {
	src, parsers := machineUsageTables(c)
	if len(src) > 0 {
		rows := make([][]string, 0, len(src))
		for _, s := range src {
			rows = append(rows, []string{s.label(), plainNumber(s.Read), plainNumber(s.Parsed), plainNumber(s.Unparsed)})
		}
		_, _ = fmt.Fprintf(w, "\nAcquisition Metrics since %s:\n", rfc3339(c.Since))
		renderTable(w, []string{"Source", "Read", "Parsed", "Unparsed"}, rows)
	}
	if len(parsers) > 0 {
		rows := make([][]string, 0, len(parsers))
		for _, p := range parsers {
			rows = append(rows, []string{p.Source, p.Stage + "/" + p.Parser, plainNumber(p.Parsed), plainNumber(p.Unparsed)})
		}
		_, _ = io.WriteString(w, "\nParser Metrics:\n")
		renderTable(w, []string{"Source", "Parser", "Parsed", "Unparsed"}, rows)
	}
}

// hubItemRows lists reported hub items as type, name, version, status:
// the kinds in the order cscli lists them, then any other, by name within.
func hubItemRows(items map[string][]models.UsageHubItem) [][]string {
	rank := func(kind string) int {
		if i := slices.Index([]string{"collections", "parsers", "scenarios", "postoverflows", "contexts"}, kind); i >= 0 {
			return i
		}
		return math.MaxInt
	}
	kinds := slices.SortedFunc(maps.Keys(items), func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
	})
	var rows [][]string
	for _, kind := range kinds {
		list := slices.Clone(items[kind])
		slices.SortFunc(list, func(a, b models.UsageHubItem) int { return strings.Compare(a.Name, b.Name) })
		for _, it := range list {
			rows = append(rows, []string{kind, it.Name, it.Version, it.Status})
		}
	}
	return rows
}

// printMachineHub is `machines inspect -H`: the hub items the machine's
// agent last reported.
func (cli *CLI) printMachineHub(id string, c *usage.Component) error {
	items := map[string][]models.UsageHubItem{}
	if c != nil && c.HubItems != nil {
		items = c.HubItems
	}
	rows := hubItemRows(items)
	switch cli.OutputFormat() {
	case "json":
		return cli.printJSON(items)
	case "raw":
		// upstream's column order
		raw := make([][]string, 0, len(rows))
		for _, r := range rows {
			raw = append(raw, []string{r[0], r[1], r[3], r[2]})
		}
		return writeCSV(cli.Out, []string{"type", "name", "status", "version"}, raw)
	default:
		if len(rows) == 0 {
			_, _ = fmt.Fprintln(cli.Out, "No hub items found for this machine")
			return nil
		}
		_, _ = fmt.Fprintf(cli.Out, "Hub items of %s (reported %s):\n", id, rfc3339(c.LastReport))
		renderTable(cli.Out, []string{"Type", "Name", "Version", "Status"}, rows)
		return nil
	}
}
