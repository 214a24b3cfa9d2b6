package capi

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics exposes the service's counters and the lengths of its
// queues (signals, decision deletions) with the LAPI's metrics.
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
	// A queue's length is read from the database at each scrape (-1 when
	// it cannot be).
	queued := func(name, help string, n func(context.Context) (int64, error)) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			v, err := n(ctx)
			if err != nil {
				return -1
			}
			return float64(v)
		})
	}
	cs := []prometheus.Collector{
		queued("cs_capi_signals_queued", "Signals waiting in the database for the Central API.", s.o.Store.SignalQueueLen),
		counter("cs_capi_signals_sent_total", "Signals the Central API took.", s.Stats.SignalsSent.Load),
		counter("cs_capi_signals_dropped_total", "Signals dropped because the queue was full (online_client.signal_queue_max).", s.Stats.SignalsDropped.Load),
		counter("cs_capi_signals_rejected_total", "Signals the Central API refused as invalid (400, 422), dropped.", s.Stats.SignalsRejected.Load),
		queued("cs_capi_deletions_queued", "Decision deletions waiting in the database for the console.", s.o.Store.DeletionQueueLen),
		counter("cs_capi_deletions_sent_total", "Decision deletions the Central API took.", s.Stats.DeletionsSent.Load),
		counter("cs_capi_deletions_dropped_total", "Decision deletions dropped because the queue was full.", s.Stats.DeletionsDropped.Load),
		counter("cs_capi_deletions_rejected_total", "Decision deletions the Central API refused as invalid (400, 422), dropped.", s.Stats.DeletionsRejected.Load),
		counter("cs_capi_pulls_total", "Decision pulls from the Central API.", s.Stats.Pulls.Load),
		counter("cs_capi_pull_failures_total", "Failed decision pulls from the Central API.", s.Stats.PullFailures.Load),
		counter("cs_capi_list_failures_total", "Failed fetches of linked blocklists and allowlists.", s.Stats.ListsFailed.Load),
	}
	return cs
}
