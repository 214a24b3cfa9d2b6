package bouncer

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/firewall"
)

// Metrics are the bouncer's Prometheus metrics, on their own registry.
// Nothing here is proportional to the number of bans: counts are kept as
// bans change and drops come from rule counters.
type Metrics struct {
	Registry *prometheus.Registry
	banned   *prometheus.GaugeVec
	requests prometheus.Counter
	failures prometheus.Counter
	latency  prometheus.Histogram
	repairs  prometheus.Counter
	refused  prometheus.Counter
}

// NewMetrics registers the metrics; fw provides drop counters at scrape time.
func NewMetrics(fw firewall.Backend) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.banned = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fw_bouncer_banned_ips", Help: "Banned prefixes in the firewall."}, []string{"ip_type"})
	m.requests = prometheus.NewCounter(prometheus.CounterOpts{Name: "lapi_requests_total", Help: "Requests to the LAPI."})
	m.failures = prometheus.NewCounter(prometheus.CounterOpts{Name: "lapi_requests_failures_total", Help: "Failed requests to the LAPI."})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fw_bouncer_apply_seconds", Help: "Time to apply a delta to the firewall.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}})
	m.repairs = prometheus.NewCounter(prometheus.CounterOpts{Name: "fw_bouncer_repairs_total", Help: "Times the firewall objects were restored."})
	m.refused = prometheus.NewCounter(prometheus.CounterOpts{Name: "fw_bouncer_refused_bans_total", Help: "Bans refused because they target a protected address."})
	m.Registry.MustRegister(m.banned, m.requests, m.failures, m.latency, m.repairs, m.refused, &dropCollector{fw: fw})
	return m
}

// watchClient exports the client's failovers between its LAPIs.
func (m *Metrics) watchClient(c *apiclient.Client) {
	if m == nil || c == nil {
		return
	}
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "fw_bouncer_lapi_failovers_total",
		Help: "Moves from one LAPI of api_urls to another: one failed, or a preferred one answers again."},
		func() float64 { return float64(c.Failovers()) }))
}

func (m *Metrics) lapiRequest(err error) {
	if m == nil {
		return
	}
	m.requests.Inc()
	if err != nil {
		m.failures.Inc()
	}
}

func (m *Metrics) refusedBan() {
	if m != nil {
		m.refused.Inc()
	}
}

func (m *Metrics) applied(d time.Duration) {
	if m != nil {
		m.latency.Observe(d.Seconds())
	}
}

func (m *Metrics) setBanned(st *state) {
	if m == nil {
		return
	}
	m.banned.WithLabelValues("ipv4").Set(float64(st.n4))
	m.banned.WithLabelValues("ipv6").Set(float64(st.n6))
}

// dropCollector reads the rule counters at scrape time: drops from the ban
// rules and, where the backend counts it, the traffic that traversed its
// chains.
type dropCollector struct{ fw firewall.Backend }

var (
	droppedPackets   = prometheus.NewDesc("fw_bouncer_dropped_packets", "Packets dropped by the ban rules.", []string{"ip_type"}, nil)
	droppedBytes     = prometheus.NewDesc("fw_bouncer_dropped_bytes", "Bytes dropped by the ban rules.", []string{"ip_type"}, nil)
	processedPackets = prometheus.NewDesc("fw_bouncer_processed_packets", "Packets that traversed the bouncer's chains.", []string{"ip_type"}, nil)
	processedBytes   = prometheus.NewDesc("fw_bouncer_processed_bytes", "Bytes that traversed the bouncer's chains.", []string{"ip_type"}, nil)
)

func (c *dropCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- droppedPackets
	ch <- droppedBytes
	ch <- processedPackets
	ch <- processedBytes
}

func familyLabel(f firewall.Family) string {
	if f == firewall.IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

func (c *dropCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var dropped, processed map[firewall.Family]firewall.Counter
	var err error
	if tc, ok := c.fw.(firewall.TrafficCounter); ok {
		dropped, processed, err = tc.TrafficCounters(ctx)
	} else {
		dropped, err = c.fw.Counters(ctx)
	}
	if err != nil {
		return
	}
	emit := func(counters map[firewall.Family]firewall.Counter, pk, by *prometheus.Desc) {
		for fam, v := range counters {
			label := familyLabel(fam)
			ch <- prometheus.MustNewConstMetric(pk, prometheus.CounterValue, float64(v.Packets), label)
			ch <- prometheus.MustNewConstMetric(by, prometheus.CounterValue, float64(v.Bytes), label)
		}
	}
	emit(dropped, droppedPackets, droppedBytes)
	emit(processed, processedPackets, processedBytes)
}
