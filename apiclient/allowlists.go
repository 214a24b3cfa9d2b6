package apiclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/rampart-ips/rampart/models"
)

// CheckAllowlist asks whether an IP or range is allowlisted
// (GET /v1/allowlists/check/{value}, the value path-escaped so that
// "10.0.0.0/8" travels as "10.0.0.0%2F8"). "Not allowlisted" is the zero
// response.
func (c *Client) CheckAllowlist(ctx context.Context, value string) (*models.CheckAllowlistResponse, error) {
	if value == "" {
		return nil, fmt.Errorf("checking allowlist: empty value")
	}
	var out models.CheckAllowlistResponse
	path := "v1/allowlists/check/" + url.PathEscape(value)
	if err := c.do(ctx, request{method: http.MethodGet, path: path, auth: authMachine}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// BulkCheckAllowlist checks several values at once (POST
// /v1/allowlists/check); the answer lists the hits only.
func (c *Client) BulkCheckAllowlist(ctx context.Context, targets []string) (*models.BulkCheckAllowlistResponse, error) {
	if targets == nil {
		targets = []string{}
	}
	var out models.BulkCheckAllowlistResponse
	body := models.BulkCheckAllowlistRequest{Targets: targets}
	if err := c.do(ctx, request{method: http.MethodPost, path: "v1/allowlists/check", body: body, auth: authMachine}, &out); err != nil {
		return nil, err
	}
	if out.Results == nil {
		out.Results = []models.BulkCheckAllowlistResult{}
	}
	return &out, nil
}

// ListAllowlists returns every allowlist with its items
// (GET /v1/allowlists?with_content=true).
func (c *Client) ListAllowlists(ctx context.Context) ([]*models.Allowlist, error) {
	var out []*models.Allowlist
	query := url.Values{"with_content": {"true"}}
	if err := c.do(ctx, request{method: http.MethodGet, path: "v1/allowlists", query: query, auth: authMachine}, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []*models.Allowlist{}
	}
	return out, nil
}
