package acquisition

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	log "github.com/sirupsen/logrus"
)

// Metrics are the acquisition's collectors, registered on one registry.
// A nil *Metrics is valid and counts nothing.
type Metrics struct {
	// hits are upstream's per-datasource line counters
	// (cs_filesource_hits_total, ...), keyed by datasource type.
	hits      map[string]*prometheus.CounterVec
	lines     *prometheus.CounterVec
	truncated *prometheus.CounterVec
	idle      *prometheus.GaugeVec
	up        *prometheus.GaugeVec
	retries   *prometheus.CounterVec
}

// NewMetrics creates the acquisition's collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	hitLabels := []string{"source", "datasource_type", "acquis_type"}
	m := &Metrics{
		// Upstream's names and labels, so existing dashboards and cscli
		// metrics keep working. source is what the lines' Src says: the
		// path, the journal filter, or the syslog peer's address.
		hits: map[string]*prometheus.CounterVec{
			"file": prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "cs_filesource_hits_total", Help: "Total lines that were read from a file.",
			}, hitLabels),
			"journalctl": prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "cs_journalctlsource_hits_total", Help: "Total lines that were read from journald.",
			}, hitLabels),
			"syslog": prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "cs_syslogsource_hits_total", Help: "Total lines that were received from syslog peers.",
			}, hitLabels),
		},
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_acquisition_lines_total",
			Help: "Lines read, by source and labels.type.",
		}, []string{"source", "type"}),
		truncated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_acquisition_truncated_lines_total",
			Help: "Lines longer than the maximum, cut to it.",
		}, []string{"source"}),
		idle: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rampart_acquisition_idle",
			Help: "1 while a source has read nothing for its idle_warning period.",
		}, []string{"source"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rampart_acquisition_source_up",
			Help: "1 while a configured log source reads (its port bound, journalctl running), 0 while it fails and is retried.",
		}, []string{"source", "type"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_acquisition_source_retries_total",
			Help: "Times a log source failed (could not start, or stopped) and was started again.",
		}, []string{"source", "type"}),
	}
	for _, h := range m.hits {
		reg.MustRegister(h)
	}
	reg.MustRegister(m.lines, m.truncated, m.idle, m.up, m.retries)
	return m
}

// Sources fetch their counters once and keep them: a label lookup per line
// would cost more than reading the line. Without metrics they get
// unregistered collectors, so callers never check for nil.

// lineCounter counts the lines of one source (a file path, a journal
// filter, a listener) of one labels.type.
func (m *Metrics) lineCounter(source, typ string) prometheus.Counter {
	if m == nil {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"})
	}
	return m.lines.WithLabelValues(source, typ)
}

// hitCounter counts the lines of one datasource type ("file",
// "journalctl", "syslog") from one source, with the source's labels.type.
func (m *Metrics) hitCounter(kind, source, typ string) prometheus.Counter {
	if m == nil || m.hits[kind] == nil {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"})
	}
	return m.hits[kind].WithLabelValues(source, kind, typ)
}

// truncatedCounter counts the lines of one source cut to the maximum length.
func (m *Metrics) truncatedCounter(source string) prometheus.Counter {
	if m == nil {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"})
	}
	return m.truncated.WithLabelValues(source)
}

// upGauge says whether a supervised source reads; retriesCounter counts
// its restarts.
func (m *Metrics) upGauge(source, typ string) prometheus.Gauge {
	if m == nil {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "unregistered"})
	}
	return m.up.WithLabelValues(source, typ)
}

func (m *Metrics) retriesCounter(source, typ string) prometheus.Counter {
	if m == nil {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"})
	}
	return m.retries.WithLabelValues(source, typ)
}

func (m *Metrics) idleGauge(source string) prometheus.Gauge {
	if m == nil {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "unregistered"})
	}
	return m.idle.WithLabelValues(source)
}

// idleWatch notices a source that reads nothing for its idle_warning
// period: it logs one warning and raises rampart_acquisition_idle, then
// logs once more and lowers it when lines flow again. Every source uses
// one: call seen for each line (or batch) and run in a goroutine for the
// life of the source.
type idleWatch struct {
	name   string
	period time.Duration // 0: never warn
	log    *log.Entry
	gauge  prometheus.Gauge

	count atomic.Uint64 // lines seen; run compares it between ticks
	idle  atomic.Bool
}

// newIdleWatch watches the source called name, with the period of
// cfg.IdlePeriod().
func newIdleWatch(name string, period time.Duration, opts Options) *idleWatch {
	return &idleWatch{name: name, period: period, gauge: opts.Metrics.idleGauge(name),
		log: opts.logger().WithField("source", name)}
}

// seen records that the source read something. It costs two atomic
// operations, so it can be called per line.
func (w *idleWatch) seen() {
	w.count.Add(1)
	if w.idle.Load() {
		w.wake()
	}
}

func (w *idleWatch) wake() {
	if w.idle.CompareAndSwap(true, false) {
		w.gauge.Set(0)
		w.log.Info("lines are read again")
	}
}

// run checks for idleness until ctx ends, then lowers the gauge: a stopped
// source is not an idle one.
func (w *idleWatch) run(ctx context.Context) {
	if w.period <= 0 {
		return
	}
	defer w.gauge.Set(0)
	// Ticking at a tenth of the period keeps the warning within 10% of it
	// without waking a quiet daemon more than every few seconds.
	tick := min(max(w.period/10, 10*time.Millisecond), 5*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	last := w.count.Load()
	lastChange := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c := w.count.Load()
			if c != last {
				last, lastChange = c, now
				w.wake()
				continue
			}
			if now.Sub(lastChange) >= w.period && w.idle.CompareAndSwap(false, true) {
				w.gauge.Set(1)
				w.log.WithField("idle_warning", w.period.String()).Warnf(
					"no lines read from %s for %s: check the path, permissions and that the service logs there", w.name, w.period)
			}
		}
	}
}
