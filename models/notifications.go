package models

import "time"

// NotificationStatus is one notification's deliveries since the LAPI
// started (GET /v1/notifications, Rampart's; the dashboard shows the
// same). The times are null when nothing happened yet.
type NotificationStatus struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Sent and Failed count messages (one carries a group of alerts);
	// Failed ones were given up after their retries.
	Sent   uint64 `json:"sent"`
	Failed uint64 `json:"failed"`
	// Dropped counts alerts lost before any message (queue full, or the
	// alert could not be read back).
	Dropped uint64 `json:"dropped"`
	// Queued counts the alerts not sent nor given up yet, Retrying those
	// of the message being retried (an attempt failed).
	Queued      int        `json:"queued"`
	Retrying    int        `json:"retrying"`
	LastSent    *time.Time `json:"last_sent"`
	LastError   string     `json:"last_error"`
	LastErrorAt *time.Time `json:"last_error_at"`
	// Recent are the last messages' outcomes, newest first (bounded).
	Recent []NotificationDelivery `json:"recent"`
}

// NotificationDelivery is the outcome of one message: delivered when
// Error is empty, given up otherwise.
type NotificationDelivery struct {
	At       time.Time `json:"at"`
	Alerts   int       `json:"alerts"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error,omitempty"`
}
