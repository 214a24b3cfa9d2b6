package capi

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics exposes the service's counters and the signal queue's
// length (read from the database at each scrape) with the LAPI's metrics.
func (s *Service) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range s.collectors() {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) collectors() []prometheus.Collector {
	counter := func(name, help string, v func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v()) })
	}
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cs_capi_signals_queued", Help: "Signals waiting in the database for the Central API."},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				n, err := s.o.Store.SignalQueueLen(ctx)
				if err != nil {
					return -1
				}
				return float64(n)
			}),
		counter("cs_capi_signals_sent_total", "Signals the Central API took.", s.Stats.SignalsSent.Load),
		counter("cs_capi_signals_dropped_total", "Signals dropped because the queue was full (online_client.signal_queue_max).", s.Stats.SignalsDropped.Load),
		counter("cs_capi_signals_rejected_total", "Signals the Central API refused as invalid (400, 422), dropped.", s.Stats.SignalsRejected.Load),
		counter("cs_capi_pulls_total", "Decision pulls from the Central API.", s.Stats.Pulls.Load),
		counter("cs_capi_pull_failures_total", "Failed decision pulls from the Central API.", s.Stats.PullFailures.Load),
		counter("cs_capi_list_failures_total", "Failed fetches of linked blocklists and allowlists.", s.Stats.ListsFailed.Load),
	}
	return cs
}
