package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/rampart-ips/rampart/models"
)

// Blocklists returns the LAPI's blocklist subscriptions and what each did
// last (GET /v1/blocklists, Rampart's).
func (c *Client) Blocklists(ctx context.Context) ([]models.BlocklistStatus, error) {
	var out []models.BlocklistStatus
	if err := c.do(ctx, request{method: http.MethodGet, path: "v1/blocklists", auth: authMachine}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// RefreshBlocklists has the LAPI refresh the named feeds (all when none)
// now and returns their statuses once done; an error names the feeds
// that failed.
func (c *Client) RefreshBlocklists(ctx context.Context, names ...string) ([]models.BlocklistStatus, error) {
	var q url.Values
	if len(names) > 0 {
		q = url.Values{"name": {strings.Join(names, ",")}}
	}
	var out []models.BlocklistStatus
	if err := c.do(ctx, request{method: http.MethodPost, path: "v1/blocklists/refresh", query: q, auth: authMachine}, &out); err != nil {
		return nil, err
	}
	return out, nil
}
