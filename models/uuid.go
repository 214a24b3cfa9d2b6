package models

import "github.com/google/uuid"

// NewAlertUUID names a new alert. The LAPI looks a push's alerts up by
// UUID (a retried push is not stored twice) and indexes them: a version 7
// UUID starts with its time, so new alerts land at the end of that index
// instead of all over it (with random ones, each commit of a replay
// rewrote most of the index's pages). Random (version 4) if the clock
// fails.
func NewAlertUUID() string {
	if u, err := uuid.NewV7(); err == nil {
		return u.String()
	}
	return uuid.NewString()
}
