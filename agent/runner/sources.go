package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/acquisition"
	"github.com/rampart-ips/rampart/agent/event"
)

// sourceSet runs the agent's log sources; a reload adds and removes some
// while the others keep reading. A source that fails ends the run, as
// does, live, the end of every source not removed: an agent that reads
// nothing must not look healthy.
type sourceSet struct {
	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	out     chan<- event.Line
	chunks  chan<- []event.Line // for the sources that send batches
	log     *log.Entry
	replay  bool
	running map[acquisition.Source]*runningSource
	wg      sync.WaitGroup
	closed  bool  // no more sources: the run is ending
	fail    error // the first source failure
	done    chan struct{}
}

type runningSource struct {
	cancel  context.CancelFunc
	stopped chan struct{}
	removed bool
}

func (s *sourceSet) start(ctx context.Context, cancel context.CancelFunc, out chan<- event.Line, chunks chan<- []event.Line, l *log.Entry, replay bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx, s.cancel, s.out, s.chunks, s.log, s.replay = ctx, cancel, out, chunks, l, replay
	s.running = map[acquisition.Source]*runningSource{}
	if s.done == nil {
		s.done = make(chan struct{})
	}
	go func() {
		<-ctx.Done()
		close(s.done)
	}()
}

// ended closes when the run ends.
func (s *sourceSet) ended() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		s.done = make(chan struct{})
	}
	return s.done
}

// add starts src, unless the run is ending.
func (s *sourceSet) add(src acquisition.Source) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	r := &runningSource{cancel: cancel, stopped: make(chan struct{})}
	s.running[src] = r
	s.wg.Go(func() {
		defer close(r.stopped)
		defer cancel()
		l := s.log.WithField("source", src.Name())
		l.Info("reading")
		var err error
		if bs, ok := src.(acquisition.BatchSource); ok {
			err = bs.RunBatches(ctx, s.chunks)
		} else {
			err = src.Run(ctx, s.out)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.running, src)
		switch {
		case r.removed || s.ctx.Err() != nil:
			l.Debug("source stopped")
		case err != nil:
			l.WithError(err).Error("log source stopped")
			if s.fail == nil {
				s.fail = fmt.Errorf("log source %s: %w", src.Name(), err)
			}
			s.cancel()
		default:
			l.Debug("source done")
			if !s.replay && len(s.running) == 0 {
				s.fail = errors.New("every log source stopped")
				s.cancel()
			}
		}
	})
}

// remove stops src and waits until it has.
func (s *sourceSet) remove(src acquisition.Source) {
	s.mu.Lock()
	r := s.running[src]
	if r != nil {
		r.removed = true
		r.cancel()
	}
	s.mu.Unlock()
	if r != nil {
		<-r.stopped
		s.log.WithField("source", src.Name()).Info("log source removed")
	}
}

// wait refuses new sources and waits for the running ones to return.
func (s *sourceSet) wait() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
}

// failure is why the sources ended the run, if they did.
func (s *sourceSet) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fail
}
