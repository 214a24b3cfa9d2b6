package promlevel

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func names(t *testing.T, g prometheus.Gatherer) []string {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fams {
		out = append(out, f.GetName())
	}
	return out
}

func TestLevels(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, n := range []string{"cs_info", "cs_parser_hits_total", "cs_node_hits_total", "cs_active_decisions", "go_goroutines"} {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: n, Help: n})
		g.Set(1)
		reg.MustRegister(g)
	}
	for level, want := range map[string][]string{
		"":           {"cs_active_decisions", "cs_info", "cs_node_hits_total", "cs_parser_hits_total", "go_goroutines"},
		"full":       {"cs_active_decisions", "cs_info", "cs_node_hits_total", "cs_parser_hits_total", "go_goroutines"},
		"aggregated": {"cs_info", "cs_parser_hits_total", "go_goroutines"},
		"none":       {"cs_info", "go_goroutines"},
	} {
		g, err := Gatherer(reg, level)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(t, g); !slices.Equal(got, want) {
			t.Errorf("level %q serves %v, want %v", level, got, want)
		}
	}
	if _, err := Gatherer(reg, "verbose"); err == nil {
		t.Error("unknown level accepted")
	}
}
