package delivery

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Pusher's Prometheus series. A Pusher always keeps them
// up to date; they are exported only once registered.
type Metrics struct {
	delivered prometheus.Counter
	dropped   prometheus.Counter
	queued    prometheus.Gauge
	alerts    *prometheus.CounterVec
}

func newMetrics() *Metrics {
	alerts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_delivery_alerts_total",
		Help: "Alerts that left the delivery queue, by result: delivered to the LAPI, or dropped (queue full, rejected by the LAPI, damaged on disk).",
	}, []string{"result"})
	return &Metrics{
		alerts:    alerts,
		delivered: alerts.WithLabelValues("delivered"),
		dropped:   alerts.WithLabelValues("dropped"),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rampart_delivery_queue_alerts",
			Help: "Alerts waiting in the delivery queue for the LAPI.",
		}),
	}
}

// Register adds the series to r. Registering twice on the same registry
// is not an error.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.alerts, m.queued} {
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
