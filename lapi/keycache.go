package lapi

import (
	"sync"
	"time"

	"github.com/rampart-ips/rampart/lapi/store"
)

// changeCounts are the store's change counters a request reads first (one
// shared read, see rounds): the allowlists' and the bouncers' versions.
type changeCounts struct {
	allowlists, bouncers int64
}

// keyCache keeps bouncer rows by key hash for one bouncers version: every
// change of a bouncer row but its pull time and cursor moves that version
// (cscli's included, as they go through the store), so a deleted key or a
// new row of a key is seen by the next request, as with a lookup of its
// own. A herd of long-polls authenticates again at every wake-up; with the
// cache its requests read the counters only, shared.
type keyCache struct {
	mu      sync.Mutex
	version int64
	rows    map[string][]store.Bouncer
}

// get returns copies of hash's rows if they are known at version.
func (k *keyCache) get(version int64, hash string) ([]*store.Bouncer, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	rows, ok := k.rows[hash]
	if !ok || version != k.version {
		return nil, false
	}
	out := make([]*store.Bouncer, len(rows))
	for i := range rows {
		b := rows[i]
		out[i] = &b
	}
	return out, true
}

// put keeps hash's rows, read after version was: a later version (a change
// since) drops every row kept, an older one is not kept.
func (k *keyCache) put(version int64, hash string, rows []*store.Bouncer) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if version < k.version {
		return
	}
	if version > k.version || k.rows == nil {
		k.version, k.rows = version, map[string][]store.Bouncer{}
	}
	kept := make([]store.Bouncer, len(rows))
	for i, b := range rows {
		kept[i] = *b
	}
	k.rows[hash] = kept
}

// pulled notes a pull time recorded for row id of hash (pull times do not
// move the version): the next pulls within a minute need not record one.
func (k *keyCache) pulled(hash string, id int64, at time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range k.rows[hash] {
		if b := &k.rows[hash][i]; b.ID == id {
			b.LastPull = &at
		}
	}
}
