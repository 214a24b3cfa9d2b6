package parser

import (
	"container/list"
	"context"
	"net"
	"sync"
	"time"
)

// Reverse DNS defaults: a lookup holds one event at most this long, and
// the cache keeps this many answers for this long.
const (
	DefaultDNSTimeout   = time.Second
	DefaultDNSCacheSize = 10000
	DefaultDNSCacheTTL  = time.Hour
	// failures are kept shorter, so a resolver that was down recovers
	// soon, but long enough that an unresolvable source costs one
	// timeout per minute rather than one per event
	dnsNegativeTTL = time.Minute
)

// dnsCache is a bounded LRU of PTR answers with expiry.
type dnsCache struct {
	resolver *net.Resolver
	timeout  time.Duration
	size     int
	ttl      time.Duration
	now      func() time.Time

	mu    sync.Mutex
	order *list.List // of *dnsEntry, most recently used first
	byIP  map[string]*list.Element
}

type dnsEntry struct {
	ip, name string
	expires  time.Time
}

func newDNSCache(r *net.Resolver, timeout time.Duration, size int, ttl time.Duration) *dnsCache {
	if r == nil {
		r = net.DefaultResolver
	}
	if timeout <= 0 {
		timeout = DefaultDNSTimeout
	}
	if size <= 0 {
		size = DefaultDNSCacheSize
	}
	if ttl <= 0 {
		ttl = DefaultDNSCacheTTL
	}
	return &dnsCache{resolver: r, timeout: timeout, size: size, ttl: ttl, now: time.Now,
		order: list.New(), byIP: map[string]*list.Element{}}
}

// lookup returns the first PTR name of value ("" when there is none); ok
// is false when value is not an IP address.
func (c *dnsCache) lookup(value string) (name string, ok bool) {
	ip, ok := parseIP(value)
	if !ok {
		return "", false
	}
	key := ip.String()
	if name, hit := c.get(key); hit {
		return name, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	names, err := c.resolver.LookupAddr(ctx, key)
	ttl := c.ttl
	if err != nil || len(names) == 0 {
		ttl = min(c.ttl, dnsNegativeTTL)
	} else {
		name = names[0]
	}
	c.put(key, name, ttl)
	return name, true
}

func (c *dnsCache) get(ip string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byIP[ip]
	if !ok {
		return "", false
	}
	ent := el.Value.(*dnsEntry)
	if !c.now().Before(ent.expires) {
		c.order.Remove(el)
		delete(c.byIP, ip)
		return "", false
	}
	c.order.MoveToFront(el)
	return ent.name, true
}

func (c *dnsCache) put(ip, name string, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp := c.now().Add(ttl)
	if el, ok := c.byIP[ip]; ok {
		ent := el.Value.(*dnsEntry)
		ent.name, ent.expires = name, exp
		c.order.MoveToFront(el)
		return
	}
	c.byIP[ip] = c.order.PushFront(&dnsEntry{ip: ip, name: name, expires: exp})
	for c.order.Len() > c.size {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byIP, last.Value.(*dnsEntry).ip)
	}
}

// entries is the number of cached answers (for tests).
func (c *dnsCache) entries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
