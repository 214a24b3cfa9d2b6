// Package alertdiff compares two replays' alerts scenario by scenario and
// source by source: how many alerts each scenario raised, which sources
// only one side alerted on, and the (scenario, source) pairs whose alert
// counts differ. internal/agentbench writes Rampart's alerts with it and
// compares them with another tool's, written in the same JSON lines.
package alertdiff

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
)

// Alert is one alert as a JSON line: the scenario, the source value and
// the first and last event times (RFC 3339, as in the LAPI's alerts).
type Alert struct {
	Scenario string `json:"scenario"`
	IP       string `json:"ip"`
	Start    string `json:"start,omitempty"`
	Stop     string `json:"stop,omitempty"`
	Count    int    `json:"count,omitempty"`
}

// WriteFile writes alerts to path, one JSON object a line.
func WriteFile(path string, alerts []Alert) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("alerts file: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for i := range alerts {
		if err := enc.Encode(&alerts[i]); err != nil {
			f.Close()
			return fmt.Errorf("alerts file %s: %w", path, err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("alerts file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("alerts file %s: %w", path, err)
	}
	return nil
}

// ReadFile reads alerts written by WriteFile (or by another tool in the
// same format); blank lines are skipped.
func ReadFile(path string) ([]Alert, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("alerts file: %w", err)
	}
	defer f.Close()
	var out []Alert
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var a Alert
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			return nil, fmt.Errorf("alerts file %s line %d: %w", path, n, err)
		}
		out = append(out, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("alerts file %s: %w", path, err)
	}
	return out, nil
}

// ScenarioDiff is one scenario's comparison.
type ScenarioDiff struct {
	Scenario string
	// Ours and Theirs count the alerts; OnlyOurs and OnlyTheirs list the
	// sources alerted on by one side only (sorted); Pairs counts the
	// sources both alerted on, PairsDiffer those whose counts differ and
	// TimesDiffer those with as many alerts at other times.
	Ours, Theirs                    int
	OnlyOurs, OnlyTheirs            []string
	Pairs, PairsDiffer, TimesDiffer int
	// Examples are up to a few sources whose alerts differ, with each
	// side's alert times.
	Examples []Example
}

// Example is one source's alerts for a scenario on both sides.
type Example struct {
	IP           string
	Ours, Theirs []string // start-stop of each alert, in order
}

// Same reports whether both sides raised the same alerts per source.
func (d ScenarioDiff) Same() bool {
	return d.Ours == d.Theirs && len(d.OnlyOurs) == 0 && len(d.OnlyTheirs) == 0 && d.PairsDiffer == 0 && d.TimesDiffer == 0
}

// Diff compares ours with theirs scenario by scenario, sorted by name;
// examples caps the examples kept per scenario.
func Diff(ours, theirs []Alert, examples int) []ScenarioDiff {
	type side map[string][]Alert // ip -> alerts
	group := func(as []Alert) map[string]side {
		m := map[string]side{}
		for _, a := range as {
			if m[a.Scenario] == nil {
				m[a.Scenario] = side{}
			}
			m[a.Scenario][a.IP] = append(m[a.Scenario][a.IP], a)
		}
		return m
	}
	o, t := group(ours), group(theirs)
	names := map[string]bool{}
	for k := range o {
		names[k] = true
	}
	for k := range t {
		names[k] = true
	}
	var out []ScenarioDiff
	for name := range names {
		d := ScenarioDiff{Scenario: name}
		for ip, as := range o[name] {
			d.Ours += len(as)
			if _, ok := t[name][ip]; !ok {
				d.OnlyOurs = append(d.OnlyOurs, ip)
			}
		}
		for ip, as := range t[name] {
			d.Theirs += len(as)
			oa, ok := o[name][ip]
			if !ok {
				d.OnlyTheirs = append(d.OnlyTheirs, ip)
				continue
			}
			d.Pairs++
			os, ts := spans(oa), spans(as)
			switch {
			case len(oa) != len(as):
				d.PairsDiffer++
			case !slices.Equal(os, ts):
				d.TimesDiffer++
			default:
				continue
			}
			d.Examples = append(d.Examples, Example{IP: ip, Ours: os, Theirs: ts})
		}
		sort.Strings(d.OnlyOurs)
		sort.Strings(d.OnlyTheirs)
		sort.Slice(d.Examples, func(i, j int) bool { return d.Examples[i].IP < d.Examples[j].IP })
		if len(d.Examples) > examples {
			d.Examples = d.Examples[:examples]
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Scenario < out[j].Scenario })
	return out
}

// spans are the alerts' times in order, each as start..stop.
func spans(as []Alert) []string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.Start + ".." + a.Stop
	}
	slices.Sort(s)
	return s
}

// Report prints diffs as a table, then the sources and examples of the
// scenarios that differ; ourName and theirName head the columns.
func Report(w io.Writer, diffs []ScenarioDiff, ourName, theirName string) {
	fmt.Fprintf(w, "  %-45s %8s %8s %7s %6s %6s %6s %7s %s\n", "scenario", ourName, theirName, "diff", "ips", "only<", "only>", "counts", "times (sources with other alert counts, other alert times)")
	same := 0
	for _, d := range diffs {
		mark := ""
		if d.Same() {
			same++
		} else {
			mark = "  <-"
		}
		fmt.Fprintf(w, "  %-45s %8d %8d %+7d %6d %6d %6d %7d %d%s\n", d.Scenario, d.Ours, d.Theirs, d.Ours-d.Theirs,
			d.Pairs+len(d.OnlyOurs)+len(d.OnlyTheirs), len(d.OnlyOurs), len(d.OnlyTheirs), d.PairsDiffer, d.TimesDiffer, mark)
	}
	fmt.Fprintf(w, "  %d of %d scenarios give the same alerts per source\n", same, len(diffs))
	for _, d := range diffs {
		if d.Same() {
			continue
		}
		if len(d.OnlyOurs) > 0 {
			fmt.Fprintf(w, "  %s: only %s alerted on %s\n", d.Scenario, ourName, head(d.OnlyOurs, 8))
		}
		if len(d.OnlyTheirs) > 0 {
			fmt.Fprintf(w, "  %s: only %s alerted on %s\n", d.Scenario, theirName, head(d.OnlyTheirs, 8))
		}
		for _, e := range d.Examples {
			fmt.Fprintf(w, "  %s %s: %s %d alerts [%s]; %s %d alerts [%s]\n", d.Scenario, e.IP,
				ourName, len(e.Ours), head(e.Ours, 4), theirName, len(e.Theirs), head(e.Theirs, 4))
		}
	}
}

func head(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, " ")
	}
	return strings.Join(s[:n], " ") + fmt.Sprintf(" ... (%d more)", len(s)-n)
}
