package apiclient

import (
	"context"
	"net/http"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// RegisterWatcher registers a machine (POST /v1/watchers, no
// authentication), as `cscli lapi register` does. The LAPI answers 201
// (created, awaiting validation) or 202 (auto-registered with token); token
// may be empty.
func (c *Client) RegisterWatcher(ctx context.Context, machineID, password, token string) error {
	body := models.WatcherRegistrationRequest{
		MachineID:         &machineID,
		Password:          &password,
		RegistrationToken: token,
	}
	return c.do(ctx, request{method: http.MethodPost, path: "v1/watchers", body: body, auth: authNone}, nil)
}

// DeleteSelf unregisters the calling machine (DELETE /v1/watchers/self)
// and forgets its token.
func (c *Client) DeleteSelf(ctx context.Context) error {
	if err := c.do(ctx, request{method: http.MethodDelete, path: "v1/watchers/self", auth: authMachine}, nil); err != nil {
		return err
	}
	c.mu.Lock()
	c.token, c.expire = "", time.Time{}
	c.mu.Unlock()
	return nil
}

// Heartbeat tells the LAPI the machine is alive (GET /v1/heartbeat); the
// agent calls it every 60 s.
func (c *Client) Heartbeat(ctx context.Context) error {
	return c.do(ctx, request{method: http.MethodGet, path: "v1/heartbeat", auth: authMachine}, nil)
}
