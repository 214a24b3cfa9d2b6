package lapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ips/rampart/lapi/notify"
	"github.com/rampart-ips/rampart/lapi/store"
)

// unknownLabel replaces label values taken from the request that match no
// route or method, so scanners cannot grow the label sets without bound.
const unknownLabel = "unknown"

// dbMetricsTTL is how long the database gauges are reused: a burst of
// scrapes (several Prometheus servers, a curl loop) runs the grouped queries
// once, and the figures are never older than this.
const dbMetricsTTL = 5 * time.Second

// lapiMetrics holds the LAPI's Prometheus metrics, upstream's names.
type lapiMetrics struct {
	routeReqs   *prometheus.CounterVec
	machineReqs *prometheus.CounterVec
	bouncerReqs *prometheus.CounterVec
	nonEmpty    *prometheus.CounterVec // cs_lapi_decisions_ok_total
	empty       *prometheus.CounterVec // cs_lapi_decisions_ko_total
	duration    *prometheus.HistogramVec
	routes      map[string]bool // registered route patterns
	db          *dbCollector
}

// RegisterMetrics registers the LAPI metrics with reg and starts counting
// requests; requests served before it are not counted.
func (s *Server) RegisterMetrics(reg prometheus.Registerer) error {
	m := &lapiMetrics{
		routeReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cs_lapi_route_requests_total", Help: "Number of calls to each route per method.",
		}, []string{"route", "method"}),
		machineReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cs_lapi_machine_requests_total", Help: "Number of calls for each machine.",
		}, []string{"machine", "route", "method"}),
		bouncerReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cs_lapi_bouncer_requests_total", Help: "Number of calls for each bouncer.",
		}, []string{"bouncer", "route", "method"}),
		// Upstream counts GET /v1/decisions answers only; Rampart counts
		// stream answers too, since its own bouncer uses the stream.
		nonEmpty: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cs_lapi_decisions_ok_total", Help: "Number of decision answers (GET /v1/decisions and the stream) that carried decisions.",
		}, []string{"bouncer"}),
		empty: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cs_lapi_decisions_ko_total", Help: "Number of decision answers (GET /v1/decisions and the stream) that carried none.",
		}, []string{"bouncer"}),
		// Upstream's buckets. A long-polled stream request counts its
		// wait, so that route's figures say how long bouncers waited.
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cs_lapi_request_duration_seconds", Help: "Response time of LAPI.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
		}, []string{"endpoint", "method"}),
		routes: map[string]bool{},
		db:     newDBCollector(s.store, s.log.Logger.WithField("component", "lapi-metrics")),
	}
	for _, r := range s.echo.Routes() {
		m.routes[r.Path] = true
	}
	cs := []prometheus.Collector{m.routeReqs, m.machineReqs, m.bouncerReqs, m.nonEmpty, m.empty, m.duration, m.db}
	if s.notify != nil {
		cs = append(cs, newNotifyCollector(s.notify))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	s.metrics.Store(m)
	return nil
}

// knownMethod bounds the method label: echo routes any method token.
func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// metricsMiddleware counts each request once its handler (and so the auth
// middleware, which records the caller in the context) has run.
func (s *Server) metricsMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		m := s.metrics.Load()
		if m == nil {
			return err
		}
		route, method := c.Path(), c.Request().Method
		if !m.routes[route] {
			route = unknownLabel
		}
		if !knownMethod(method) {
			method = unknownLabel
		}
		m.routeReqs.WithLabelValues(route, method).Inc()
		m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		if id, ok := c.Get(ctxMachine).(string); ok && id != "" {
			m.machineReqs.WithLabelValues(id, route, method).Inc()
		}
		if b, ok := c.Get(ctxBouncer).(*store.Bouncer); ok && b != nil {
			m.bouncerReqs.WithLabelValues(b.Name, route, method).Inc()
		}
		return err
	}
}

// countAnswer records whether a bouncer's decision answer was empty.
func (s *Server) countAnswer(bouncer string, decisions int) {
	m := s.metrics.Load()
	if m == nil {
		return
	}
	if decisions > 0 {
		m.nonEmpty.WithLabelValues(bouncer).Inc()
	} else {
		m.empty.WithLabelValues(bouncer).Inc()
	}
}

// dbCollector computes cs_active_decisions and cs_alerts from the store at
// scrape time, one grouped query each, and caches the result for ttl.
type dbCollector struct {
	store     *store.Store
	log       interface{ Warnf(string, ...any) }
	decisions *prometheus.Desc
	alerts    *prometheus.Desc
	heartbeat *prometheus.Desc
	ttl       time.Duration
	now       func() time.Time

	// mu is held across the queries so concurrent scrapes wait for one
	// refresh instead of each running it.
	mu     sync.Mutex
	at     time.Time // when cached was computed; zero = never
	cached []prometheus.Metric
}

func newDBCollector(st *store.Store, l interface{ Warnf(string, ...any) }) *dbCollector {
	return &dbCollector{
		store: st, log: l, ttl: dbMetricsTTL, now: time.Now,
		decisions: prometheus.NewDesc("cs_active_decisions", "Number of active decisions.",
			[]string{"reason", "origin", "action"}, nil),
		alerts: prometheus.NewDesc("cs_alerts", "Number of alerts (excluding CAPI).", []string{"reason"}, nil),
		heartbeat: prometheus.NewDesc("cs_machines_last_heartbeat_timestamp", "Last heartbeat of each machine, as a Unix time.",
			[]string{"machine"}, nil),
	}
}

func (d *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- d.decisions
	ch <- d.alerts
	ch <- d.heartbeat
}

func (d *dbCollector) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if d.at.IsZero() || now.Sub(d.at) >= d.ttl {
		d.cached = d.refresh(now)
		// A failure is cached too, so a broken database is not hammered.
		d.at = now
	}
	for _, m := range d.cached {
		ch <- m
	}
}

// refresh runs the queries. On error it returns what it could compute and
// logs: failing the scrape would also hide the agent's metrics.
func (d *dbCollector) refresh(now time.Time) []prometheus.Metric {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []prometheus.Metric
	if ds, err := d.store.CountActiveDecisions(ctx, now); err != nil {
		d.log.Warnf("counting active decisions for metrics: %v", err)
	} else {
		// The gauge has no scope label: sum the scopes of each series.
		type series struct{ scenario, origin, typ string }
		sums := map[series]int64{}
		var order []series
		for _, c := range ds {
			k := series{c.Scenario, c.Origin, c.Type}
			if _, ok := sums[k]; !ok {
				order = append(order, k)
			}
			sums[k] += c.Count
		}
		for _, k := range order {
			out = append(out, prometheus.MustNewConstMetric(d.decisions, prometheus.GaugeValue, float64(sums[k]), k.scenario, k.origin, k.typ))
		}
	}
	if as, err := d.store.CountAlertsByScenario(ctx); err != nil {
		d.log.Warnf("counting alerts for metrics: %v", err)
	} else {
		for sc, n := range as {
			out = append(out, prometheus.MustNewConstMetric(d.alerts, prometheus.GaugeValue, float64(n), sc))
		}
	}
	// Machines are a handful of rows, one per agent.
	if ms, err := d.store.ListMachines(ctx); err != nil {
		d.log.Warnf("listing machines for metrics: %v", err)
	} else {
		for _, m := range ms {
			if m.LastHeartbeat != nil {
				out = append(out, prometheus.MustNewConstMetric(d.heartbeat, prometheus.GaugeValue,
					float64(m.LastHeartbeat.UnixNano())/1e9, m.MachineID))
			}
		}
	}
	return out
}

// notifyCollector reports the notification broker's figures at scrape
// time (Rampart's; upstream has no delivery metrics).
type notifyCollector struct {
	b                             *notify.Broker
	sent, failed, dropped, queued *prometheus.Desc
}

func newNotifyCollector(b *notify.Broker) *notifyCollector {
	labels := []string{"notification", "type"}
	return &notifyCollector{b: b,
		sent: prometheus.NewDesc("cs_lapi_notifications_sent_total",
			"Notification messages delivered.", labels, nil),
		failed: prometheus.NewDesc("cs_lapi_notifications_failed_total",
			"Notification messages given up after their retries.", labels, nil),
		dropped: prometheus.NewDesc("cs_lapi_notifications_dropped_total",
			"Alerts not notified: the notification's queue was full, or the alert could not be read back.", labels, nil),
		queued: prometheus.NewDesc("cs_lapi_notifications_queued",
			"Alerts waiting to be notified.", labels, nil),
	}
}

func (n *notifyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- n.sent
	ch <- n.failed
	ch <- n.dropped
	ch <- n.queued
}

func (n *notifyCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range n.b.Stats() {
		ch <- prometheus.MustNewConstMetric(n.sent, prometheus.CounterValue, float64(st.Sent), st.Name, st.Type)
		ch <- prometheus.MustNewConstMetric(n.failed, prometheus.CounterValue, float64(st.Failed), st.Name, st.Type)
		ch <- prometheus.MustNewConstMetric(n.dropped, prometheus.CounterValue, float64(st.Dropped), st.Name, st.Type)
		ch <- prometheus.MustNewConstMetric(n.queued, prometheus.GaugeValue, float64(st.Queued), st.Name, st.Type)
	}
}
