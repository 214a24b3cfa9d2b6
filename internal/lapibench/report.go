package main

import (
	"fmt"
	"os"
	"strings"
)

// report collects each measurement's figure per database, so that a run on
// several databases ends with them side by side.
type report struct {
	rows  []string // measurements, in the order first seen
	kinds []string // databases, in the order first seen
	cells map[[2]string]string
}

func (r *report) add(measure, kind, figure string) {
	if r.cells == nil {
		r.cells = map[[2]string]string{}
	}
	if !contains(r.rows, measure) {
		r.rows = append(r.rows, measure)
	}
	if !contains(r.kinds, kind) {
		r.kinds = append(r.kinds, kind)
	}
	r.cells[[2]string{measure, kind}] = figure
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// print writes the table, one column per database, and the load average.
func (r *report) print() {
	if len(r.kinds) < 2 && len(r.rows) < 2 {
		return
	}
	w := 0
	for _, m := range r.rows {
		w = max(w, len(m))
	}
	fmt.Printf("\n== side by side (load average at the end %s)\n%-*s", loadavg(), w, "")
	for _, k := range r.kinds {
		fmt.Printf(" | %-34s", k)
	}
	fmt.Println()
	for _, m := range r.rows {
		fmt.Printf("%-*s", w, m)
		for _, k := range r.kinds {
			fmt.Printf(" | %-34s", r.cells[[2]string{m, k}])
		}
		fmt.Println()
	}
}

// loadavg is /proc/loadavg's three averages.
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
