package apiclient

import (
	"context"
	"net/http"

	"github.com/rampart-ips/rampart/models"
)

// Notifications returns the LAPI's notifications and their deliveries
// since it started (GET /v1/notifications, Rampart's).
func (c *Client) Notifications(ctx context.Context) ([]models.NotificationStatus, error) {
	var out []models.NotificationStatus
	if err := c.do(ctx, request{method: http.MethodGet, path: "v1/notifications", auth: authMachine}, &out); err != nil {
		return nil, err
	}
	return out, nil
}
