package lapi

import (
	"sync"
	"time"
)

// streamWatch notices two processes sharing one server-kept stream cursor:
// the same bouncer row and User-Agent pulling in turn over two TCP
// connections (A, B, A). One process reuses its keep-alive connection
// between pulls, and a reconnect gets a fresh port that does not come back
// soon, so a peer that pulls again after another one did means two
// pollers. Best effort: it only sees direct connections that live across
// pulls. A single return can be one process whose pool briefly held two
// connections (a usage report sent at the same time), so it takes a few
// within the window. The zero value is ready to use.
type streamWatch struct {
	mu    sync.Mutex
	peers map[streamWatchKey]*streamPeers
}

type streamWatchKey struct {
	bouncer int64
	ua      string
}

type streamPeers struct {
	last   string               // the peer of the latest pull
	recent map[string]time.Time // earlier peers and when they last pulled
	warned time.Time
	seen   time.Time
	backs  int       // returns of an earlier peer since backAt
	backAt time.Time // the first of them
}

const (
	streamWatchWindow  = 10 * time.Minute // a peer older than this is forgotten
	streamWatchWarn    = time.Hour        // one warning per client per hour
	streamWatchPeers   = 8                // earlier peers remembered per client
	streamWatchClients = 4096             // clients watched at once
	streamWatchBacks   = 3                // returns within the window that mean two processes
)

// shared records a pull by peer ("" when unknown) and says whether to warn
// that this cursor is shared now.
func (w *streamWatch) shared(bouncer int64, ua, peer string, now time.Time) bool {
	if peer == "" {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.peers == nil {
		w.peers = map[streamWatchKey]*streamPeers{}
	}
	k := streamWatchKey{bouncer, ua}
	p := w.peers[k]
	if p == nil {
		w.forgetIdle(now)
		if len(w.peers) >= streamWatchClients {
			return false
		}
		p = &streamPeers{recent: map[string]time.Time{}}
		w.peers[k] = p
	}
	p.seen = now
	if peer == p.last {
		return false
	}
	t, back := p.recent[peer]
	back = back && now.Sub(t) < streamWatchWindow
	if p.last != "" {
		p.recent[p.last] = now
	}
	delete(p.recent, peer)
	p.last = peer
	for q, t := range p.recent {
		if now.Sub(t) >= streamWatchWindow || len(p.recent) > streamWatchPeers {
			delete(p.recent, q)
		}
	}
	if !back {
		return false
	}
	if now.Sub(p.backAt) >= streamWatchWindow {
		p.backs, p.backAt = 0, now
	}
	p.backs++
	if p.backs >= streamWatchBacks && now.Sub(p.warned) >= streamWatchWarn {
		p.warned = now
		return true
	}
	return false
}

// forgetIdle drops clients that have not pulled within the window, so the
// map stays as small as the set of live pollers.
func (w *streamWatch) forgetIdle(now time.Time) {
	for k, p := range w.peers {
		if now.Sub(p.seen) >= streamWatchWindow && now.Sub(p.warned) >= streamWatchWarn {
			delete(w.peers, k)
		}
	}
}
