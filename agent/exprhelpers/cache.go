package exprhelpers

import (
	"container/list"
	"sync"
	"time"
)

// lruCache is a small bounded LRU with an optional TTL per entry, safe
// for concurrent use: the RegexpInFile result caches (one per regexp data
// file whose data item asked for it: strategy/size/ttl) and the parser
// stashes (GetFromStash/SetInStash) share it.
type lruCache[V any] struct {
	mu    sync.Mutex
	size  int
	ttl   time.Duration // default lifetime; 0: entries never expire
	now   func() time.Time
	order *list.List // front = most recently used
	items map[string]*list.Element
}

type cacheEntry[V any] struct {
	key     string
	value   V
	expires time.Time // zero: never
}

// resultCache caches RegexpInFile results.
type resultCache = lruCache[bool]

func newResultCache(size int, ttl time.Duration, now func() time.Time) *resultCache {
	return newLRUCache[bool](size, ttl, now)
}

func newLRUCache[V any](size int, ttl time.Duration, now func() time.Time) *lruCache[V] {
	if size <= 0 {
		size = defaultCacheSize
	}
	if now == nil {
		now = time.Now
	}
	return &lruCache[V]{size: size, ttl: ttl, now: now, order: list.New(), items: make(map[string]*list.Element, min(size, 1024))}
}

// get returns the cached value for key; an expired entry is dropped and
// reported as a miss.
func (c *lruCache[V]) get(key string) (value V, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, found := c.items[key]
	if !found {
		return value, false
	}
	ent := el.Value.(*cacheEntry[V])
	if !ent.expires.IsZero() && !c.now().Before(ent.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		return value, false
	}
	c.order.MoveToFront(el)
	return ent.value, true
}

// set stores value for the cache's ttl.
func (c *lruCache[V]) set(key string, value V) { c.setTTL(key, value, c.ttl) }

// setTTL stores value for ttl (0: never expires), evicting the least
// recently used entry when full.
func (c *lruCache[V]) setTTL(key string, value V, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var expires time.Time
	if ttl > 0 {
		expires = c.now().Add(ttl)
	}
	if el, found := c.items[key]; found {
		ent := el.Value.(*cacheEntry[V])
		ent.value, ent.expires = value, expires
		c.order.MoveToFront(el)
		return
	}
	for c.order.Len() >= c.size {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*cacheEntry[V]).key)
	}
	c.items[key] = c.order.PushFront(&cacheEntry[V]{key: key, value: value, expires: expires})
}

// len returns the number of entries held, expired or not.
func (c *lruCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
