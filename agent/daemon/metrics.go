package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ips/rampart/agent/leakybucket"
	"github.com/rampart-ips/rampart/agent/parser"
)

// engineCollector exposes upstream's parser and bucket metrics. The
// engine keeps its own plain atomic counters (a CounterVec lookup per line
// and node would cost the parser several percent); they are read and
// turned into const metrics only when /metrics is scraped.
type engineCollector struct {
	// current returns the parsers and the engine to read: a reload
	// replaces both (their counters start over, as after a restart).
	current func() (*parser.Pipeline, *leakybucket.Engine)

	parserHits, parserOK, parserKO *prometheus.Desc
	nodeHits, nodeOK, nodeKO       *prometheus.Desc
	wlHits, wlOK                   *prometheus.Desc
	injected                       *prometheus.Desc
	created, poured, overflowed    *prometheus.Desc
	underflowed, canceled, buckets *prometheus.Desc
	evicted, limit                 *prometheus.Desc
	delay, parseTime, pourTime     *prometheus.Desc
	pourOK, pourKO                 *prometheus.Desc
}

func newEngineCollector(parsers *parser.Pipeline, engine *leakybucket.Engine) *engineCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	src := []string{"source", "type"}
	node := []string{"source", "type", "name", "stage"}
	wl := []string{"source", "type", "name", "reason", "stage"}
	return &engineCollector{current: func() (*parser.Pipeline, *leakybucket.Engine) { return parsers, engine },
		parserHits:  d("cs_parser_hits_total", "Total events entered the parser.", src...),
		parserOK:    d("cs_parser_hits_ok_total", "Total events were successfully parsed.", src...),
		parserKO:    d("cs_parser_hits_ko_total", "Total events were unsuccessfully parsed.", src...),
		nodeHits:    d("cs_node_hits_total", "Total events entered node.", node...),
		nodeOK:      d("cs_node_hits_ok_total", "Total events successfully exited node.", node...),
		nodeKO:      d("cs_node_hits_ko_total", "Total events unsuccessfully exited node.", node...),
		wlHits:      d("cs_node_wl_hits_total", "Total events processed by whitelist node.", wl...),
		wlOK:        d("cs_node_wl_hits_ok_total", "Total events successfully whitelisted by node.", wl...),
		injected:    d("rampart_parser_injection_dropped_total", "Lines dropped because a client-written field may have forged the source address the node set.", node...),
		created:     d("cs_bucket_instantiation_total", "Total buckets were instantiated.", "name"),
		poured:      d("cs_bucket_poured_total", "Total events were poured in bucket.", "source", "type", "name"),
		overflowed:  d("cs_bucket_overflowed_total", "Total buckets overflowed.", "name"),
		underflowed: d("cs_bucket_underflowed_total", "Total buckets underflowed.", "name"),
		canceled:    d("cs_bucket_canceled_total", "Total buckets canceled.", "name"),
		buckets:     d("cs_buckets", "Number of buckets that currently exist.", "name"),
		evicted:     d("rampart_bucket_evicted_total", "Buckets evicted, the least full first, to keep the scenario within its cap on live buckets.", "name"),
		limit:       d("rampart_buckets_limit", "Cap on each scenario's live buckets (crowdsec_service.max_buckets_per_scenario; 0: none)."),
		delay: d("rampart_alert_delay_seconds",
			"Delay from an overflow's last log line being read to its alert leaving the bucket engine."),
		parseTime: d("cs_parsing_time_seconds", "Time spent parsing a line.", "type", "source"),
		pourTime:  d("cs_bucket_pour_seconds", "Time spent pouring an event to buckets.", "type", "source"),
		pourOK:    d("cs_bucket_pour_ok_total", "Events that reached at least one scenario's bucket."),
		pourKO:    d("cs_bucket_pour_ko_total", "Events that reached no scenario's bucket."),
	}
}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.parserHits, c.parserOK, c.parserKO, c.nodeHits, c.nodeOK, c.nodeKO,
		c.wlHits, c.wlOK, c.injected, c.created, c.poured, c.overflowed, c.underflowed, c.canceled, c.buckets, c.evicted, c.limit, c.delay, c.parseTime, c.pourTime, c.pourOK, c.pourKO} {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	parsers, engine := c.current()
	if parsers != nil {
		lines, nodes := parsers.Stats()
		for _, l := range lines {
			counter(c.parserHits, l.Hits, l.Source, l.Type)
			counter(c.parserOK, l.OK, l.Source, l.Type)
			counter(c.parserKO, l.Hits-l.OK, l.Source, l.Type)
			ch <- constHistogram(c.parseTime, parser.ParseTimeBuckets(), l.Durations[:], l.DurationSum, l.Type, l.Source)
		}
		for _, n := range nodes {
			if n.Hits > 0 {
				counter(c.nodeHits, n.Hits, n.Source, n.Type, n.Name, n.Stage)
				counter(c.nodeOK, n.OK, n.Source, n.Type, n.Name, n.Stage)
				counter(c.nodeKO, n.Hits-n.OK, n.Source, n.Type, n.Name, n.Stage)
			}
			if n.Dropped > 0 {
				counter(c.injected, n.Dropped, n.Source, n.Type, n.Name, n.Stage)
			}
			if n.WLHits > 0 {
				counter(c.wlHits, n.WLHits, n.Source, n.Type, n.Name, n.Reason, n.Stage)
				counter(c.wlOK, n.WLOK, n.Source, n.Type, n.Name, n.Reason, n.Stage)
			}
		}
	}
	if engine == nil {
		return
	}
	// Upstream only shows scenarios that had a bucket; so does this, which
	// keeps hundreds of idle scenarios out of every scrape.
	for _, s := range engine.ScenarioStats() {
		if s.Created == 0 && len(s.Poured) == 0 {
			continue
		}
		counter(c.created, s.Created, s.Name)
		counter(c.overflowed, s.Overflowed, s.Name)
		counter(c.underflowed, s.Underflowed, s.Name)
		counter(c.canceled, s.Canceled, s.Name)
		counter(c.evicted, s.Evicted, s.Name)
		ch <- prometheus.MustNewConstMetric(c.buckets, prometheus.GaugeValue, float64(s.Alive), s.Name)
		for _, p := range s.Poured {
			counter(c.poured, p.Poured, p.Source, p.Type, s.Name)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(engine.Limit()))
	d := engine.AlertDelay()
	ch <- constHistogram(c.delay, d.Bounds, d.Counts, d.Sum)
	var ok, ko int64
	for _, p := range engine.SourcePourStats() {
		ok, ko = ok+p.OK, ko+p.KO
		ch <- constHistogram(c.pourTime, p.Time.Bounds, p.Time.Counts, p.Time.Sum, p.Type, p.Source)
	}
	counter(c.pourOK, ok)
	counter(c.pourKO, ko)
}

// constHistogram turns per-bucket counts (not cumulative, one more than
// bounds for beyond the last) into a Prometheus histogram.
func constHistogram(desc *prometheus.Desc, bounds []float64, counts []uint64, sum float64, labels ...string) prometheus.Metric {
	cum := make(map[float64]uint64, len(bounds))
	var total uint64
	for i, n := range counts {
		total += n
		if i < len(bounds) {
			cum[bounds[i]] = total
		}
	}
	return prometheus.MustNewConstHistogram(desc, total, sum, cum, labels...)
}
