package exprhelpers

import (
	"fmt"
	"strings"
	"sync"
	"time"

	log "github.com/sirupsen/logrus"
)

// The stash: named, bounded key/value caches that parser nodes fill
// (their `stash:` section) and expressions read with GetFromStash or write
// with SetInStash, as upstream's pkg/cache. The caches belong to one
// *Helpers (one rule set), not to the process.

// StashConfig declares one named cache (a parser node's `stash:` item).
type StashConfig struct {
	Name     string
	Size     int           // most entries kept; <= 0 means defaultStashSize
	TTL      time.Duration // default lifetime of an entry; 0: none
	Strategy string        // LRU (default), LFU or ARC: all evict least recently used
}

// defaultStashSize bounds a cache declared without a size.
const defaultStashSize = 100

type stashStore struct {
	mu     sync.RWMutex
	caches map[string]*stashCache
	warned map[string]bool // unknown cache names already warned about
	now    func() time.Time
}

type stashCache = lruCache[string]

// DeclareStash creates the named cache; a name already declared keeps its
// first declaration (upstream: the first cache of that name is the one
// used), so several nodes may declare the same stash.
func (h *Helpers) DeclareStash(c StashConfig) error {
	if c.Name == "" {
		return fmt.Errorf("stash: name is empty")
	}
	switch strings.ToUpper(c.Strategy) {
	case "", "LRU", "LFU", "ARC":
	default:
		return fmt.Errorf("stash %s: unknown strategy %q (want LRU, LFU or ARC)", c.Name, c.Strategy)
	}
	if c.TTL < 0 {
		return fmt.Errorf("stash %s: negative ttl %s", c.Name, c.TTL)
	}
	size := c.Size
	if size <= 0 {
		size = defaultStashSize
	}
	s := &h.ext().stash
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.caches == nil {
		s.caches = map[string]*stashCache{}
	}
	if _, ok := s.caches[c.Name]; !ok {
		s.caches[c.Name] = newLRUCache[string](size, c.TTL, s.now)
	}
	return nil
}

func (s *stashStore) cache(name string) *stashCache {
	s.mu.RLock()
	c := s.caches[name]
	warned := s.warned[name]
	s.mu.RUnlock()
	if c == nil && !warned {
		// Once per name: a rule naming an undeclared stash would otherwise
		// log on every event.
		s.mu.Lock()
		if s.warned == nil {
			s.warned = map[string]bool{}
		}
		if !s.warned[name] && len(s.warned) < 1024 {
			s.warned[name] = true
			log.WithField("stash", name).Warn("stash not declared by any parser node: GetFromStash gives \"\", SetInStash does nothing")
		}
		s.mu.Unlock()
	}
	return c
}

// GetFromStash returns the value of key in the named cache; "" when the
// cache or the key does not exist or the entry expired (upstream: "", no
// error).
func (h *Helpers) GetFromStash(name, key string) string {
	s := &h.ext().stash
	c := s.cache(name)
	if c == nil {
		return ""
	}
	v, _ := c.get(key)
	return v
}

// SetInStash stores value under key in the named cache, for ttl when ttl
// is not nil, else for the cache's own ttl; the least recently used entry
// goes when the cache is full. An undeclared cache is left alone.
func (h *Helpers) SetInStash(name, key, value string, ttl *time.Duration) {
	s := &h.ext().stash
	c := s.cache(name)
	if c == nil {
		return
	}
	d := c.ttl
	if ttl != nil {
		d = *ttl
	}
	c.setTTL(key, value, d)
}
