package exprhelpers

import (
	"container/list"
	"sync"
	"time"
)

// resultCache is a small bounded LRU of RegexpInFile results with an
// optional TTL, one per regexp data file whose data item asked for it
// (strategy/size/ttl). It is safe for concurrent use.
type resultCache struct {
	mu    sync.Mutex
	size  int
	ttl   time.Duration // 0: entries never expire
	now   func() time.Time
	order *list.List // front = most recently used
	items map[string]*list.Element
}

type cacheEntry struct {
	key     string
	value   bool
	expires time.Time // zero when ttl == 0
}

func newResultCache(size int, ttl time.Duration, now func() time.Time) *resultCache {
	if size <= 0 {
		size = defaultCacheSize
	}
	if now == nil {
		now = time.Now
	}
	return &resultCache{size: size, ttl: ttl, now: now, order: list.New(), items: make(map[string]*list.Element, size)}
}

// get returns the cached result for key; an expired entry is dropped and
// reported as a miss.
func (c *resultCache) get(key string) (value, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, found := c.items[key]
	if !found {
		return false, false
	}
	ent := el.Value.(*cacheEntry)
	if c.ttl > 0 && !c.now().Before(ent.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		return false, false
	}
	c.order.MoveToFront(el)
	return ent.value, true
}

// set stores a result, evicting the least recently used entry when full.
func (c *resultCache) set(key string, value bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var expires time.Time
	if c.ttl > 0 {
		expires = c.now().Add(c.ttl)
	}
	if el, found := c.items[key]; found {
		ent := el.Value.(*cacheEntry)
		ent.value, ent.expires = value, expires
		c.order.MoveToFront(el)
		return
	}
	for c.order.Len() >= c.size {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*cacheEntry).key)
	}
	c.items[key] = c.order.PushFront(&cacheEntry{key: key, value: value, expires: expires})
}

// len returns the number of entries held, expired or not.
func (c *resultCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
