// Package promlevel trims the daemon's metrics to prometheus.level, as
// upstream defines it: "full" serves everything, "aggregated" leaves out
// the series whose label sets grow with parser nodes, machines, bouncers
// and scenarios, "none" keeps only the build and runtime series.
package promlevel

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Levels are the accepted values, the default first.
var Levels = []string{"full", "aggregated", "none"}

// detailed are the families "aggregated" leaves out.
func detailed(name string) bool {
	switch name {
	case "cs_node_hits_total", "cs_node_hits_ok_total", "cs_node_hits_ko_total",
		"cs_node_wl_hits_total", "cs_node_wl_hits_ok_total",
		"cs_lapi_machine_requests_total", "cs_lapi_bouncer_requests_total",
		"cs_lapi_decisions_ok_total", "cs_lapi_decisions_ko_total",
		"cs_machines_last_heartbeat_timestamp", "cs_lapi_request_duration_seconds",
		"cs_active_decisions", "cs_alerts", "cs_bucket_poured_total":
		return true
	}
	return false
}

// runtime are the families "none" keeps.
func runtime(name string) bool {
	return name == "cs_info" || strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_")
}

// Gatherer wraps g so that it serves the families level allows.
func Gatherer(g prometheus.Gatherer, level string) (prometheus.Gatherer, error) {
	var keep func(string) bool
	switch level {
	case "", "full":
		return g, nil
	case "aggregated":
		keep = func(n string) bool { return !detailed(n) }
	case "none":
		keep = runtime
	default:
		return nil, fmt.Errorf("prometheus.level %q: want one of %s", level, strings.Join(Levels, ", "))
	}
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		fams, err := g.Gather()
		out := fams[:0]
		for _, f := range fams {
			if keep(f.GetName()) {
				out = append(out, f)
			}
		}
		return out, err
	}), nil
}
