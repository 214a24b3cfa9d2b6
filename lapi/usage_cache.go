package lapi

import (
	"context"
	"sync"
	"time"

	"github.com/rampart-ips/rampart/lapi/usage"
)

// usageCacheTTL bounds how stale the dashboard's usage figures get when no
// report arrives: retention drops old reports without telling the cache.
const usageCacheTTL = time.Minute

// usageCache keeps the summaries of the usage reports between dashboard
// refreshes: re-reading a week of every component's reports each 10 s
// would grow with the fleet. A new report clears it.
type usageCache struct {
	mu    sync.Mutex
	at    map[string]time.Time
	comps map[string][]*usage.Component
}

func (c *usageCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.comps = nil
}

// usageSummary returns the summaries of one kind of component
// ("remediation_component", "log_processor"). Callers must not modify the
// slice or the components.
func (s *Server) usageSummary(ctx context.Context, kind string) ([]*usage.Component, error) {
	c := &s.usage
	c.mu.Lock()
	defer c.mu.Unlock()
	now := s.now()
	if comps, ok := c.comps[kind]; ok && now.Sub(c.at[kind]) < usageCacheTTL {
		return comps, nil
	}
	reports, err := s.store.UsageReports(ctx, kind, "")
	if err != nil {
		return nil, err
	}
	comps := usage.Summarize(reports)
	if c.comps == nil {
		c.comps, c.at = map[string][]*usage.Component{}, map[string]time.Time{}
	}
	c.comps[kind], c.at[kind] = comps, now
	return comps, nil
}
