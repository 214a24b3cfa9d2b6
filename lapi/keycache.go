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
// cache its requests read the counters only, shared. Rows are also read
// again after keyCacheMaxAge, for writers that do not count their changes
// (an older Rampart's cscli on the same database).
type keyCache struct {
	mu      sync.Mutex
	version int64
	rows    map[string]keptRows
}

type keptRows struct {
	rows []store.Bouncer
	at   time.Time
}

// keyCacheMaxAge bounds how long rows are kept at one version.
const keyCacheMaxAge = 10 * time.Second

// get returns copies of hash's rows if they are known at version, and
// were read less than keyCacheMaxAge before now.
func (k *keyCache) get(version int64, hash string, now time.Time) ([]*store.Bouncer, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kept, ok := k.rows[hash]
	if !ok || version != k.version || now.Sub(kept.at) >= keyCacheMaxAge {
		return nil, false
	}
	out := make([]*store.Bouncer, len(kept.rows))
	for i := range kept.rows {
		b := kept.rows[i]
		out[i] = &b
	}
	return out, true
}

// put keeps hash's rows, read at now after version was: a later version (a
// change since) drops every row kept, an older one is not kept.
func (k *keyCache) put(version int64, hash string, rows []*store.Bouncer, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if version < k.version {
		return
	}
	if version > k.version || k.rows == nil {
		k.version, k.rows = version, map[string]keptRows{}
	}
	kept := keptRows{rows: make([]store.Bouncer, len(rows)), at: now}
	for i, b := range rows {
		kept.rows[i] = *b
	}
	k.rows[hash] = kept
}

// pulled notes a pull time recorded for row id of hash (pull times do not
// move the version): the next pulls within a minute need not record one.
func (k *keyCache) pulled(hash string, id int64, at time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	rows := k.rows[hash].rows
	for i := range rows {
		if rows[i].ID == id {
			rows[i].LastPull = &at
		}
	}
}
