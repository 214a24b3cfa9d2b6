package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/rampart-ips/rampart/models"
)

// PushAlerts sends alerts (POST /v1/alerts) and returns the ids the LAPI
// gave them, as the strings it sends. Allowlisted alerts get no id, so the
// result may be shorter than the input. Bodies over 5 KiB are gzipped.
func (c *Client) PushAlerts(ctx context.Context, alerts []*models.Alert) ([]string, error) {
	if alerts == nil {
		alerts = []*models.Alert{}
	}
	var ids []string
	if err := c.do(ctx, request{method: http.MethodPost, path: "v1/alerts", body: alerts, auth: authMachine}, &ids); err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

// PushAlertsEncoded is PushAlerts for alerts already encoded as JSON, one
// per element (the agent's delivery queue holds them so): they are sent
// as they are, not encoded again.
func (c *Client) PushAlertsEncoded(ctx context.Context, alerts [][]byte) ([]string, error) {
	// The body is the JSON array of them, sent from the alerts' own
	// buffers rather than copied into one (a replay's full batches are
	// megabytes, held twice for the request's time).
	parts := make([][]byte, 0, 2*len(alerts)+1)
	parts = append(parts, arrayOpen)
	for i, a := range alerts {
		if i > 0 {
			parts = append(parts, arrayComma)
		}
		parts = append(parts, a)
	}
	parts = append(parts, arrayClose)
	var ids []string
	if err := c.do(ctx, request{method: http.MethodPost, path: "v1/alerts", parts: parts, auth: authMachine}, &ids); err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

// The JSON array's punctuation, for PushAlertsEncoded's parts (never
// written to).
var arrayOpen, arrayComma, arrayClose = []byte("["), []byte(","), []byte("]")

// ListAlerts returns the alerts matching filter (GET /v1/alerts), e.g.
// has_active_decision=true&include_capi=false&limit=100. The LAPI's "null"
// for no match is an empty slice.
func (c *Client) ListAlerts(ctx context.Context, filter url.Values) ([]*models.Alert, error) {
	var alerts []*models.Alert
	if err := c.do(ctx, request{method: http.MethodGet, path: "v1/alerts", query: filter, auth: authMachine}, &alerts); err != nil {
		return nil, err
	}
	if alerts == nil {
		alerts = []*models.Alert{}
	}
	return alerts, nil
}

// GetAlert returns one alert (GET /v1/alerts/{id}).
func (c *Client) GetAlert(ctx context.Context, id int64) (*models.Alert, error) {
	var alert *models.Alert
	path := "v1/alerts/" + strconv.FormatInt(id, 10)
	if err := c.do(ctx, request{method: http.MethodGet, path: path, auth: authMachine}, &alert); err != nil {
		return nil, err
	}
	if alert == nil {
		return nil, fmt.Errorf("%s: empty response", c.route(http.MethodGet, path))
	}
	return alert, nil
}

// DeleteAlerts deletes the alerts matching filter (DELETE /v1/alerts; the
// LAPI only allows it from trusted IPs) and returns how many went.
func (c *Client) DeleteAlerts(ctx context.Context, filter url.Values) (int, error) {
	return c.deleteCount(ctx, "v1/alerts", filter)
}

// DeleteAlert deletes one alert (DELETE /v1/alerts/{id}).
func (c *Client) DeleteAlert(ctx context.Context, id int64) (int, error) {
	return c.deleteCount(ctx, "v1/alerts/"+strconv.FormatInt(id, 10), nil)
}

// deleteCount runs a deletion route and parses its {"nbDeleted":"<n>"}.
// A bare number is accepted too.
func (c *Client) deleteCount(ctx context.Context, path string, filter url.Values) (int, error) {
	var out struct {
		NbDeleted json.RawMessage `json:"nbDeleted"`
	}
	if err := c.do(ctx, request{method: http.MethodDelete, path: path, query: filter, auth: authMachine}, &out); err != nil {
		return 0, err
	}
	raw := out.NbDeleted
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = []byte(s)
	}
	n, err := strconv.Atoi(string(raw))
	if err != nil {
		return 0, fmt.Errorf("%s: parsing nbDeleted %q: %w", c.route(http.MethodDelete, path), out.NbDeleted, err)
	}
	return n, nil
}
