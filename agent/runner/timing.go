package runner

import (
	"sync/atomic"
	"time"
)

// Timing says where a run's wall time went: when its milestones passed,
// and how long each stage of the pipeline (sources -> batcher -> parse
// workers -> pourer -> sink) waited on its neighbours. A stage that waits
// for its input is starved by the one before it; one that waits to hand
// its output on is held back by the one after it. Each wait is read once
// per batch, not per line, so the counting costs nothing measurable. Safe
// to read while Run runs; complete once it returned.
type Timing struct {
	// Milestones, in Unix nanoseconds (0: not reached).
	Started, FirstLine, SourcesDone, LastPoured, LastPush atomic.Int64
	// Batches counts the batches handed to the workers (lines / Batches
	// is their mean size).
	Batches atomic.Int64
	// BatcherIdle: the batcher waited for lines (the sources were slower);
	// BatcherBlocked: it waited for room towards the pourer or a worker.
	BatcherIdle, BatcherBlocked atomic.Int64
	// WorkersIdle: the parse workers' waits for a batch, summed.
	WorkersIdle atomic.Int64
	// PourIdle: the pourer waited for the next batch to be cut;
	// PourParse: for its workers to finish it; PourPush: it was in the
	// sink, queueing alerts.
	PourIdle, PourParse, PourPush atomic.Int64
}

func mark(t *atomic.Int64)                { t.Store(time.Now().UnixNano()) }
func markOnce(t *atomic.Int64)            { t.CompareAndSwap(0, time.Now().UnixNano()) }
func since(t0 time.Time, d *atomic.Int64) { d.Add(int64(time.Since(t0))) }
