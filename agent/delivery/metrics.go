package delivery

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ips/rampart/apiclient"
)

// Metrics are the Pusher's Prometheus series. A Pusher always keeps them
// up to date; they are exported only once registered.
type Metrics struct {
	delivered prometheus.Counter
	dropped   prometheus.Counter
	queued    prometheus.Gauge
	inMemory  prometheus.Gauge
	alerts    *prometheus.CounterVec
	// persistFailures counts failed writes to the queue's disk (appends,
	// syncs, cursor updates): each one means alerts kept in memory or a
	// cursor that may deliver some twice after a crash.
	persistFailures prometheus.Counter
	// toDecision runs from the log line that completed an attack being
	// read to the LAPI's 201 for its alert: the decision exists and
	// long-polling bouncers are woken. The bouncer's apply histogram
	// covers the rest of the way to a dropped packet.
	toDecision prometheus.Histogram
	// failovers counts the LAPI client's moves between the LAPIs of its
	// credentials' urls.
	failovers prometheus.CounterFunc
}

func newMetrics(client *apiclient.Client) *Metrics {
	alerts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_delivery_alerts_total",
		Help: "Alerts that left the delivery queue, by result: delivered to the LAPI, or dropped (queue full, memory buffer full while the disk refused writes, rejected by the LAPI, damaged on disk).",
	}, []string{"result"})
	return &Metrics{
		alerts:    alerts,
		delivered: alerts.WithLabelValues("delivered"),
		dropped:   alerts.WithLabelValues("dropped"),
		toDecision: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rampart_time_to_decision_seconds",
			Help:    "Time from the log line that completed an attack being read to the LAPI accepting its alert and decision.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rampart_delivery_queue_alerts",
			Help: "Alerts waiting in the delivery queue for the LAPI, on disk or in memory.",
		}),
		inMemory: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rampart_delivery_queue_memory_alerts",
			Help: "Alerts waiting in memory because the delivery queue's disk refused them (full, read-only or failing); lost if the agent stops.",
		}),
		failovers: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "rampart_lapi_failovers_total",
			Help: "Moves of the agent's LAPI client from one LAPI of its credentials' urls to another: one failed, or a preferred one answers again.",
		}, func() float64 { return float64(client.Failovers()) }),
		persistFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_delivery_persist_failures_total",
			Help: "Writes to the delivery queue's disk that failed (no space, quota, I/O error, read-only).",
		}),
	}
}

// Register adds the series to r. Registering twice on the same registry
// is not an error.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.alerts, m.queued, m.inMemory, m.persistFailures, m.toDecision, m.failovers} {
		if err := r.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) && are.ExistingCollector == c {
				continue
			}
			return fmt.Errorf("registering delivery metrics: %w", err)
		}
	}
	return nil
}
