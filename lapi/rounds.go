package lapi

import (
	"context"
	"sync"
	"sync/atomic"
)

// rounds shares reads among concurrent requests without making any of
// them staler: a caller joins the next round, which starts only after the
// one running (begun before the caller came, so possibly before a change
// the caller must see) ends. Each round reads every key its callers asked
// for at once. A herd of long-polls woken by one decision all come back
// within milliseconds and each would make the same few reads (its key, the
// allowlists' version, expired decisions): with rounds, the database does
// one read of each kind at a time however many requests wait, and a lone
// request reads at once, in its own goroutine.
//
// A round runs with ctx (the server's), not a caller's: one caller leaving
// must not fail the others.
type rounds[K comparable, V any] struct {
	ctx  context.Context
	read func(ctx context.Context, keys []K) (map[K]V, error)

	mu      sync.Mutex
	next    *round[K, V] // gathering callers, not started
	running bool
	reads   atomic.Int64 // rounds read (tests, and how much is shared)
}

type round[K comparable, V any] struct {
	keys    []K
	seen    map[K]bool
	callers int
	done    chan struct{}
	vals    map[K]V
	err     error
}

func newRounds[K comparable, V any](ctx context.Context, read func(ctx context.Context, keys []K) (map[K]V, error)) *rounds[K, V] {
	return &rounds[K, V]{ctx: ctx, read: read}
}

// get returns k's value from a read that began after get was called.
func (g *rounds[K, V]) get(ctx context.Context, k K) (V, error) {
	g.mu.Lock()
	r := g.next
	if r == nil {
		r = &round[K, V]{seen: map[K]bool{}, done: make(chan struct{})}
		g.next = r
	}
	r.callers++
	if !r.seen[k] {
		r.seen[k] = true
		r.keys = append(r.keys, k)
	}
	lead := !g.running
	if lead {
		g.running, g.next = true, nil
	}
	g.mu.Unlock()
	if lead {
		// The first caller reads for its round itself; rounds gathered
		// meanwhile run in a goroutine, so it does not wait for them.
		g.run(r)
		if next := g.handOff(); next != nil {
			go g.loop(next)
		}
	}
	select {
	case <-r.done:
		return r.vals[k], r.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

func (g *rounds[K, V]) run(r *round[K, V]) {
	g.reads.Add(1)
	r.vals, r.err = g.read(g.ctx, r.keys)
	close(r.done)
}

// handOff takes the round gathered while one ran, or says none is left.
func (g *rounds[K, V]) handOff() *round[K, V] {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.next
	g.next = nil
	if r == nil {
		g.running = false
	}
	return r
}

func (g *rounds[K, V]) loop(r *round[K, V]) {
	for r != nil {
		g.run(r)
		r = g.handOff()
	}
}
