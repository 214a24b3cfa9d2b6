package models

import "time"

// BlocklistStatus is one blocklist subscription of a LAPI and what it did
// last (GET /v1/blocklists, POST /v1/blocklists/refresh; Rampart's).
type BlocklistStatus struct {
	Name        string    `json:"name"`
	Source      string    `json:"source"` // URL or file
	Format      string    `json:"format"` // configured, or detected once read
	Interval    string    `json:"interval"`
	LastAttempt time.Time `json:"last_attempt"`
	// LastApplied is when the feed's content was last stored or checked
	// against the store.
	LastApplied time.Time `json:"last_applied"`
	LastError   string    `json:"last_error,omitempty"`
	// LastFetch is what the last successful fetch got: "content", or
	// "not modified" (a 304, or a file unchanged).
	LastFetch   string `json:"last_fetch,omitempty"`
	Entries     int    `json:"entries"`     // in the feed at its last content
	Allowlisted int    `json:"allowlisted"` // of those, left out for an allowlist
	BadLines    int    `json:"bad_lines"`
}
