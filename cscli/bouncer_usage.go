package cscli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/lapi/usage"
	"github.com/rampart-ips/rampart/models"
)

// bouncerUsage reads the usage metrics bouncers pushed; name limits it to
// one bouncer when not empty.
func bouncerUsage(ctx context.Context, st *store.Store, name string) ([]*usage.Component, error) {
	reports, err := st.UsageReports(ctx, "remediation_component", name)
	if err != nil {
		return nil, err
	}
	return usage.Summarize(reports), nil
}

// usageColumn is one metric and unit, shown as a column.
type usageColumn struct{ name, unit string }

func (c usageColumn) header() string {
	title := strings.ReplaceAll(c.name, "_", " ")
	title = strings.ToUpper(title[:1]) + title[1:]
	unit := c.unit + "s"
	if c.unit == models.UsageUnitIP {
		unit = "IPs"
	}
	return fmt.Sprintf("%s (%s)", title, unit)
}

// usageTable lays one bouncer's totals out as upstream does: a row per
// origin, a column per metric and unit, and a Total row. Values without an
// origin label (Rampart's bouncer keeps one set for all origins, and
// processed traffic has no origin) land in the "-" row.
func usageTable(c *usage.Component, format func(int64) string) (header []string, rows [][]string, origins map[string]map[usageColumn]float64, total map[usageColumn]float64) {
	origins = map[string]map[usageColumn]float64{}
	total = map[usageColumn]float64{}
	cols := map[usageColumn]bool{}
	for _, v := range c.Values {
		col := usageColumn{v.Name, v.Unit}
		cols[col] = true
		o := v.Labels["origin"]
		if origins[o] == nil {
			origins[o] = map[usageColumn]float64{}
		}
		origins[o][col] += v.Value
		total[col] += v.Value
	}
	order := slices.SortedFunc(maps.Keys(cols), func(a, b usageColumn) int {
		// Active decisions first, processed last, as upstream shows them.
		rank := func(c usageColumn) int {
			switch c.name {
			case models.UsageActiveDecisions:
				return 0
			case models.UsageProcessed:
				return 2
			}
			return 1
		}
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a.name+"/"+a.unit, b.name+"/"+b.unit)
	})
	header = []string{"Origin"}
	for _, col := range order {
		header = append(header, col.header())
	}
	row := func(label string, vals map[usageColumn]float64) []string {
		r := []string{label}
		for _, col := range order {
			if v, ok := vals[col]; ok {
				r = append(r, format(int64(math.Round(v))))
			} else {
				r = append(r, "-")
			}
		}
		return r
	}
	for _, o := range slices.Sorted(maps.Keys(origins)) {
		label := o
		if label == "" {
			label = "-"
		}
		rows = append(rows, row(label, origins[o]))
	}
	rows = append(rows, row("Total", total))
	return header, rows, origins, total
}

func plainNumber(n int64) string { return fmt.Sprint(n) }

// renderBouncerUsage prints one table per bouncer.
func renderBouncerUsage(w io.Writer, comps []*usage.Component, format func(int64) string) {
	for _, c := range comps {
		header, rows, _, _ := usageTable(c, format)
		_, _ = fmt.Fprintf(w, "Bouncer Metrics (%s) since %s:\n", c.Name, rfc3339(c.Since))
		renderTable(w, header, rows)
		_, _ = io.WriteString(w, "\n")
	}
}

// bouncerUsageJSON nests totals as bouncer → origin → metric → unit.
func bouncerUsageJSON(comps []*usage.Component) map[string]any {
	out := map[string]any{}
	for _, c := range comps {
		_, _, origins, total := usageTable(c, plainNumber)
		nest := func(vals map[usageColumn]float64) map[string]map[string]int64 {
			m := map[string]map[string]int64{}
			for col, v := range vals {
				if m[col.name] == nil {
					m[col.name] = map[string]int64{}
				}
				m[col.name][col.unit] = int64(math.Round(v))
			}
			return m
		}
		byOrigin := map[string]any{}
		for o, vals := range origins {
			byOrigin[o] = nest(vals)
		}
		out[c.Name] = map[string]any{
			"type":        c.Type,
			"since":       c.Since.UTC(),
			"last_report": c.LastReport.UTC(),
			"origins":     byOrigin,
			"total":       nest(total),
		}
	}
	return out
}

// bouncerUsageCSV writes one line per bouncer, origin, metric and unit.
func bouncerUsageCSV(w io.Writer, comps []*usage.Component, withSection bool) error {
	var rows [][]string
	for _, c := range comps {
		_, _, origins, _ := usageTable(c, plainNumber)
		for _, o := range slices.Sorted(maps.Keys(origins)) {
			cols := slices.SortedFunc(maps.Keys(origins[o]), func(a, b usageColumn) int {
				return strings.Compare(a.name+"/"+a.unit, b.name+"/"+b.unit)
			})
			for _, col := range cols {
				r := []string{c.Name, o, col.name, col.unit, fmt.Sprint(int64(math.Round(origins[o][col])))}
				if withSection {
					r = append([]string{"bouncers"}, r...)
				}
				rows = append(rows, r)
			}
		}
	}
	header := []string{"bouncer", "origin", "metric", "unit", "value"}
	if withSection {
		header = append([]string{"section"}, header...)
	}
	return writeCSV(w, header, rows)
}
