package capi

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/store"
)

// Sharer is what the runner tells which alerts to queue as signals
// (lapi.Server).
type Sharer interface {
	ShareSignals(*SharePolicy)
}

// DeletionReporter is told whether the LAPI's deletions queue the UUIDs
// of the decisions they end for the console (lapi.Server).
type DeletionReporter interface {
	ReportDeletions(on bool)
}

// Runner runs the service the configuration asks for, and replaces it
// when the configuration is reloaded: `cscli capi register` then a
// reload is how upstream's users turn the Central API on.
type Runner struct {
	St     *store.Store
	Filter FilterFunc
	Share  Sharer
	Reg    prometheus.Registerer // nil: no metrics
	// Off is crowdsec -no-capi: whatever the configuration says.
	Off bool
	// Log is where the service logs; nil means the standard logger.
	Log *log.Entry

	mu   sync.Mutex
	stop context.CancelFunc
	done chan struct{}
	coll []prometheus.Collector
	cur  *Service
}

// Apply reads cfg's online_client and (re)starts the service under ctx; a
// broken configuration is an error and leaves the running service alone.
func (r *Runner) Apply(ctx context.Context, cfg *csconfig.Config) error {
	var svc *Service
	var share *SharePolicy
	if !r.Off {
		var err error
		if svc, share, err = setup(cfg, r.St, r.Filter, r.Log); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
	r.Share.ShareSignals(share)
	// Deletions queued and not sent yet stay in the database: the new
	// service (or the next one that shares them) sends them.
	if rep, ok := r.Share.(DeletionReporter); ok {
		rep.ReportDeletions(svc != nil && svc.o.ShareDeletions)
	}
	if svc == nil {
		return nil
	}
	if sink, ok := r.Share.(ConsoleSink); ok {
		svc.o.Console = sink
	}
	if r.Reg != nil {
		r.coll = svc.collectors()
		for _, c := range r.coll {
			if err := r.Reg.Register(c); err != nil {
				svc.log.WithError(err).Warn("registering the Central API metrics")
			}
		}
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.Run(sctx)
	}()
	r.stop, r.done, r.cur = stop, done, svc
	return nil
}

// Service is the running service (nil when the Central API is off).
func (r *Runner) Service() *Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// Stop stops the running service and waits for it.
func (r *Runner) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
}

func (r *Runner) stopLocked() {
	if r.stop != nil {
		r.stop()
		<-r.done
		r.stop, r.done, r.cur = nil, nil, nil
	}
	if r.Reg != nil {
		for _, c := range r.coll {
			r.Reg.Unregister(c)
		}
	}
	r.coll = nil
}
