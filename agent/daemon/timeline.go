package daemon

import (
	"runtime/metrics"
	"syscall"
	"time"

	log "github.com/sirupsen/logrus"
)

// replayTimeline logs where a replay's time went, once it is done: when
// each step ended, counted from the process's start (Options.Started),
// and how long each stage of the pipeline waited for the others. An
// administrator whose replay is slow sees which step to look at; the
// benchmarks read it too (internal/replaybench).
func (a *Agent) replayTimeline(drained time.Time) {
	start := a.opts.Started
	if start.IsZero() {
		start = a.newStarted
	}
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Sub(start).Round(time.Millisecond).String()
	}
	unix := func(n int64) time.Time {
		if n == 0 {
			return time.Time{}
		}
		return time.Unix(0, n)
	}
	d := func(n int64) string { return time.Duration(n).Round(time.Millisecond).String() }
	rt := &a.runner.Timing
	dt := a.pusher.Timing()
	fields := log.Fields{
		"new":           at(a.newStarted),
		"rules_loaded":  at(a.rulesLoaded),
		"run":           at(unix(rt.Started.Load())),
		"first_line":    at(unix(rt.FirstLine.Load())),
		"last_line":     at(unix(rt.SourcesDone.Load())),
		"last_poured":   at(unix(rt.LastPoured.Load())),
		"last_queued":   at(unix(rt.LastPush.Load())),
		"first_ack":     at(dt.FirstAck),
		"last_ack":      at(dt.LastAck),
		"drained":       at(drained),
		"done":          at(time.Now()),
		"batches":       rt.Batches.Load(),
		"batcher_idle":  d(rt.BatcherIdle.Load()),
		"batcher_wait":  d(rt.BatcherBlocked.Load()),
		"workers_idle":  d(rt.WorkersIdle.Load()),
		"pour_idle":     d(rt.PourIdle.Load()),
		"pour_parse":    d(rt.PourParse.Load()),
		"pour_queueing": d(rt.PourPush.Load()),
		"posts":         dt.Posts,
		"posting":       dt.Posting.Round(time.Millisecond).String(),
	}
	for k, v := range cpuFigures() {
		fields[k] = v
	}
	a.log.WithFields(fields).Info("replay timeline")
}

// cpuFigures are the process's CPU time so far and the Go runtime's
// estimates of its garbage collection and of the processors it left idle.
func cpuFigures() log.Fields {
	out := log.Fields{}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		out["cpu"] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Round(time.Millisecond).String()
	}
	samples := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/idle:cpu-seconds"}}
	metrics.Read(samples)
	for i, k := range []string{"cpu_gc", "cpu_idle"} {
		if samples[i].Value.Kind() == metrics.KindFloat64 {
			out[k] = time.Duration(samples[i].Value.Float64() * float64(time.Second)).Round(time.Millisecond).String()
		}
	}
	return out
}
