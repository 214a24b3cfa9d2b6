// Package capi is the LAPI's client of CrowdSec's Central API (CAPI): it
// logs in with the credentials of online_api_credentials.yaml, pushes the
// signals the LAPI queued in its database (deleted only once CAPI took
// them), pulls the community blocklist and the lists it links to into the
// store, and reports the LAPI's machines and bouncers. Wire shapes follow
// upstream's /v3 protocol; internal/capitest serves them for tests.
package capi

import (
	"encoding/json"
	"time"
)

// LoginRequest is POST /v3/watchers/login (and, without scenarios,
// POST /v3/watchers to register).
type LoginRequest struct {
	MachineID string   `json:"machine_id"`
	Password  string   `json:"password"`
	Scenarios []string `json:"scenarios,omitempty"`
}

// RegisterRequest is POST /v3/watchers.
type RegisterRequest struct {
	MachineID         string `json:"machine_id"`
	Password          string `json:"password"`
	RegistrationToken string `json:"registration_token,omitempty"`
}

// LoginResponse is the answer to a login.
type LoginResponse struct {
	Code   int    `json:"code"`
	Expire string `json:"expire"`
	Token  string `json:"token"`
}

// Signal is one item of POST /v3/signals.
type Signal struct {
	Scenario        string           `json:"scenario"`
	ScenarioHash    string           `json:"scenario_hash"`
	ScenarioVersion string           `json:"scenario_version"`
	Message         string           `json:"message"`
	StartAt         string           `json:"start_at"`
	StopAt          string           `json:"stop_at"`
	CreatedAt       string           `json:"created_at,omitempty"`
	ScenarioTrust   string           `json:"scenario_trust,omitempty"`
	MachineID       string           `json:"machine_id,omitempty"`
	UUID            string           `json:"uuid,omitempty"`
	Kind            string           `json:"kind,omitempty"`
	Source          SignalSource     `json:"source"`
	Decisions       []SignalDecision `json:"decisions,omitempty"`
	// Context is null unless share_context is on, as upstream sends it.
	Context []ContextItem `json:"context"`
}

// SignalSource is a signal's source.
type SignalSource struct {
	Scope     string  `json:"scope"`
	Value     string  `json:"value"`
	IP        string  `json:"ip,omitempty"`
	Range     string  `json:"range,omitempty"`
	AsName    string  `json:"as_name,omitempty"`
	AsNumber  string  `json:"as_number,omitempty"`
	Cn        string  `json:"cn,omitempty"`
	Latitude  float32 `json:"latitude,omitempty"`
	Longitude float32 `json:"longitude,omitempty"`
}

// SignalDecision is a decision of a signal.
type SignalDecision struct {
	ID        int64  `json:"id"`
	UUID      string `json:"uuid,omitempty"`
	Origin    string `json:"origin"`
	Scenario  string `json:"scenario"`
	Scope     string `json:"scope"`
	Type      string `json:"type"`
	Value     string `json:"value"`
	Duration  string `json:"duration"`
	Until     string `json:"until,omitempty"`
	Simulated bool   `json:"simulated,omitempty"`
}

// ContextItem is one alert context key and value.
type ContextItem struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// StreamResponse is GET /v3/decisions/stream.
type StreamResponse struct {
	New     []StreamGroup  `json:"new,omitempty"`
	Deleted []DeletedGroup `json:"deleted,omitempty"`
	Links   *StreamLinks   `json:"links,omitempty"`
}

// StreamGroup is the community decisions of one scenario and scope.
type StreamGroup struct {
	Scenario  string           `json:"scenario"`
	Scope     string           `json:"scope"`
	Decisions []StreamDecision `json:"decisions"`
}

// StreamDecision is one pulled value.
type StreamDecision struct {
	Value    string `json:"value"`
	Duration string `json:"duration"`
}

// DeletedGroup is CAPI's explicit deletions for one scope.
type DeletedGroup struct {
	Scope     string   `json:"scope"`
	Decisions []string `json:"decisions"`
}

// StreamLinks are the lists the instance subscribed to.
type StreamLinks struct {
	Blocklists []BlocklistLink `json:"blocklists,omitempty"`
	Allowlists []AllowlistLink `json:"allowlists,omitempty"`
}

// BlocklistLink is one blocklist: its content is one value per line at URL.
type BlocklistLink struct {
	Name        string `json:"name"`
	URL         string `json:"url"`
	Remediation string `json:"remediation"`
	Scope       string `json:"scope"`
	Duration    string `json:"duration"`
}

// AllowlistLink is one console allowlist (NDJSON at URL).
type AllowlistLink struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	URL         string `json:"url"`
	CreatedAt   string `json:"created_at"`
	UpdatedAt   string `json:"updated_at"`
}

// MetricsRequest is POST /v3/metrics/.
type MetricsRequest struct {
	ApilVersion string          `json:"apil_version"`
	Machines    []MetricMachine `json:"machines"`
	Bouncers    []MetricBouncer `json:"bouncers"`
}

// MetricMachine is one agent in the metrics.
type MetricMachine struct {
	Name       string `json:"name,omitempty"`
	Version    string `json:"version,omitempty"`
	LastUpdate string `json:"last_update,omitempty"`
	LastPush   string `json:"last_push,omitempty"`
}

// MetricBouncer is one bouncer in the metrics.
type MetricBouncer struct {
	CustomName string `json:"custom_name,omitempty"`
	Name       string `json:"name,omitempty"`
	Version    string `json:"version,omitempty"`
	LastPull   string `json:"last_pull,omitempty"`
}

// EnrollRequest is POST /v3/watchers/enroll. The console refuses an
// automatic enrollment that carries a key or overwrite, even empty or
// false: both are left out unless set.
type EnrollRequest struct {
	AttachmentKey string   `json:"attachment_key,omitempty"`
	Name          string   `json:"name"`
	Tags          []string `json:"tags"`
	Overwrite     bool     `json:"overwrite,omitempty"`
	AutoEnroll    bool     `json:"autoenroll"`
}

// EnrollResponse is the answer to an automatic enrollment: the link that
// attaches the instance, valid until ExpireAt (Unix milliseconds).
type EnrollResponse struct {
	URL      string `json:"url"`
	ExpireAt int64  `json:"expire_at"`
}

// PAPIPoll is one JSON object of a PAPI long-poll answer (several may
// follow one another in a body): events, or on timeout an error message
// and the server's time (Unix milliseconds).
type PAPIPoll struct {
	Events    []PAPIEvent `json:"events,omitempty"`
	Timestamp int64       `json:"timestamp,omitempty"`
	Error     string      `json:"error,omitempty"`
}

// PAPIEvent is one order; Data holds a PAPIMessage as a JSON string.
type PAPIEvent struct {
	Timestamp int64  `json:"timestamp"` // Unix milliseconds
	Category  string `json:"category"`
	Data      string `json:"data"`
	ID        string `json:"id"`
}

// PAPIMessage is an order: what to do (header) and on what (data).
type PAPIMessage struct {
	Header *PAPIHeader     `json:"header"`
	Data   json.RawMessage `json:"data"`
}

// PAPIHeader says which operation an order is, and who gave it.
type PAPIHeader struct {
	OperationType string      `json:"operation_type"` // decision, alert, management
	OperationCmd  string      `json:"operation_cmd"`
	Timestamp     time.Time   `json:"timestamp"`
	Message       string      `json:"message"`
	UUID          string      `json:"uuid"`
	Source        *PAPISource `json:"source"`
	Destination   string      `json:"destination"`
}

// PAPISource is the console user behind an order.
type PAPISource struct {
	User string `json:"user"`
}

// PAPIDecisionDelete is the data of a decision delete order.
type PAPIDecisionDelete struct {
	UUID      string   `json:"uuid"`
	Decisions []string `json:"decisions"`
}

// PAPIForcePull is the data of a force_pull order: one list, or (neither
// set) the whole pull.
type PAPIForcePull struct {
	Blocklist *BlocklistLink `json:"blocklist,omitempty"`
	Allowlist *AllowlistLink `json:"allowlist,omitempty"`
}

// PAPIUnsubscribe is the data of blocklist_unsubscribe and
// allowlist_unsubscribe orders.
type PAPIUnsubscribe struct {
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
}
