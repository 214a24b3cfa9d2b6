// Package models holds the JSON wire types of CrowdSec's Local API /v1
// protocol, shared by the LAPI server, its Go client, cscli and the bouncer.
// It must never depend on the server's storage or on HTTP plumbing.
package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Decision is one remediation as it travels on the wire. Field order follows
// upstream's struct so that marshalled output matches byte for byte.
type Decision struct {
	Duration  string `json:"duration"`
	ID        int64  `json:"id,omitempty"`
	Origin    string `json:"origin"`
	Scenario  string `json:"scenario"`
	Scope     string `json:"scope"`
	Simulated *bool  `json:"simulated,omitempty"`
	Type      string `json:"type"`
	Until     string `json:"until,omitempty"`
	UUID      string `json:"uuid,omitempty"`
	Value     string `json:"value"`
}

// Meta is a key/value pair attached to alerts and events.
type Meta struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Source is the attacker an alert is about.
type Source struct {
	AsName    string  `json:"as_name,omitempty"`
	AsNumber  string  `json:"as_number,omitempty"`
	Cn        string  `json:"cn,omitempty"`
	IP        string  `json:"ip,omitempty"`
	Latitude  float32 `json:"latitude,omitempty"`
	Longitude float32 `json:"longitude,omitempty"`
	Range     string  `json:"range,omitempty"`
	Scope     string  `json:"scope"`
	Value     string  `json:"value"`
}

// Event is one log event that contributed to an alert.
type Event struct {
	Meta      []Meta `json:"meta"`
	Timestamp string `json:"timestamp"`
}

// Alert is what agents push and what GET /v1/alerts returns.
type Alert struct {
	Capacity        int32       `json:"capacity"`
	CreatedAt       string      `json:"created_at,omitempty"`
	Decisions       []*Decision `json:"decisions"`
	Events          []*Event    `json:"events"`
	EventsCount     int32       `json:"events_count"`
	ID              int64       `json:"id,omitempty"`
	Kind            string      `json:"kind,omitempty"`
	Labels          []string    `json:"labels"`
	Leakspeed       string      `json:"leakspeed"`
	MachineID       string      `json:"machine_id,omitempty"`
	Message         string      `json:"message"`
	Meta            []Meta      `json:"meta,omitempty"`
	Remediation     bool        `json:"remediation"`
	Scenario        string      `json:"scenario"`
	ScenarioHash    string      `json:"scenario_hash"`
	ScenarioVersion string      `json:"scenario_version"`
	Simulated       bool        `json:"simulated"`
	Source          *Source     `json:"source"`
	StartAt         string      `json:"start_at"`
	StopAt          string      `json:"stop_at"`
	UUID            string      `json:"uuid,omitempty"`
}

// GetScope returns the source scope; profiles' filters call it.
func (a *Alert) GetScope() string {
	if a.Source == nil {
		return ""
	}
	return a.Source.Scope
}

// GetValue returns the source value.
func (a *Alert) GetValue() string {
	if a.Source == nil {
		return ""
	}
	return a.Source.Value
}

// GetScenario returns the alert's scenario name.
func (a *Alert) GetScenario() string { return a.Scenario }

// GetEventsCount returns the number of events the alert reports.
func (a *Alert) GetEventsCount() int32 { return a.EventsCount }

// GetMeta returns the first alert meta value for key, or "".
func (a *Alert) GetMeta(key string) string {
	for _, m := range a.Meta {
		if m.Key == key {
			return m.Value
		}
	}
	for _, e := range a.Events {
		if e == nil {
			continue
		}
		for _, m := range e.Meta {
			if m.Key == key {
				return m.Value
			}
		}
	}
	return ""
}

// alertRequired lists the keys swagger marks required on a pushed alert.
var alertRequired = []string{"scenario", "scenario_hash", "scenario_version", "message",
	"events_count", "start_at", "stop_at", "capacity", "leakspeed", "simulated", "events", "source"}

// DecodeAlerts parses a POST /v1/alerts body. It checks presence of the
// required keys the way upstream's swagger validation does and returns the
// same "validation failure list" text on failure. A non-array body is a bind
// error (the caller answers 400); a validation error is a *ValidationError.
func DecodeAlerts(body []byte) ([]*Alert, error) {
	// Fast paths: a hand-written decoder for what clients write, then one
	// encoding/json decode of the whole list and one light scan of its
	// keys. They accept only what the full check below accepts; anything
	// they are unsure of goes through the full check, which words the error.
	if alerts, ok := fastDecodeAlerts(body); ok {
		return alerts, nil
	}
	var alerts []*Alert
	if err := json.Unmarshal(body, &alerts); err == nil && alertsValid(body, alerts) {
		if alerts == nil {
			alerts = []*Alert{}
		}
		return alerts, nil
	}
	return decodeAlertsChecked(body)
}

// alertsValid reports whether the decoded alerts and the keys of body (a
// JSON array that decoded without error) pass every check
// decodeAlertsChecked makes. Keys are matched exactly, the last of
// duplicates counting, as a decode into a map does.
func alertsValid(body []byte, alerts []*Alert) bool {
	for _, a := range alerts {
		if a == nil || a.Source == nil {
			return false
		}
		for _, d := range a.Decisions {
			if d == nil {
				return false
			}
		}
		for _, e := range a.Events {
			if e == nil {
				return false
			}
		}
	}
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '[' {
		return false
	}
	i = skipSpace(body, i+1)
	n := 0
	if i < len(body) && body[i] == ']' {
		return len(alerts) == 0
	}
	for i < len(body) {
		end := skipValue(body, i)
		if end < 0 || !alertKeysValid(body[i:end]) {
			return false
		}
		n++
		i = skipSpace(body, end)
		if i >= len(body) {
			return false
		}
		if body[i] == ']' {
			return n == len(alerts)
		}
		if body[i] != ',' {
			return false
		}
		i = skipSpace(body, i+1)
	}
	return false
}

// alertKeysValid checks one alert object for the required keys, and its
// source object for scope and value.
func alertKeysValid(obj []byte) bool {
	var seen [16]bool // by index in alertRequired
	var source []byte
	ok := eachKey(obj, func(key string, val []byte) {
		for k, name := range alertRequired {
			if key == name {
				seen[k] = !isNull(val)
				if name == "source" {
					source = val
				}
			}
		}
	})
	if !ok {
		return false
	}
	for k, name := range alertRequired {
		if !seen[k] && name != "source" { // source: checked on the struct
			return false
		}
	}
	if source == nil || isNull(source) {
		return true
	}
	var scope, value bool
	return eachKey(source, func(key string, val []byte) {
		switch key {
		case "scope":
			scope = !isNull(val)
		case "value":
			value = !isNull(val)
		}
	}) && scope && value
}

func isNull(v []byte) bool { return string(v) == "null" }

// eachKey calls fn with each key (unescaped) and raw value of a JSON
// object known to be valid; false when obj is not an object.
func eachKey(obj []byte, fn func(key string, val []byte)) bool {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return true
	}
	for i < len(obj) {
		if obj[i] != '"' {
			return false
		}
		kend := skipValue(obj, i)
		if kend < 0 {
			return false
		}
		raw := obj[i:kend]
		key := string(raw[1 : len(raw)-1])
		if strings.IndexByte(key, '\\') >= 0 {
			if err := json.Unmarshal(raw, &key); err != nil {
				return false
			}
		}
		i = skipSpace(obj, kend)
		if i >= len(obj) || obj[i] != ':' {
			return false
		}
		i = skipSpace(obj, i+1)
		vend := skipValue(obj, i)
		if vend < 0 {
			return false
		}
		fn(key, obj[i:vend])
		i = skipSpace(obj, vend)
		if i >= len(obj) {
			return false
		}
		if obj[i] == '}' {
			return true
		}
		if obj[i] != ',' {
			return false
		}
		i = skipSpace(obj, i+1)
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at i in valid JSON,
// or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return -1
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := skipValue(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// decodeAlertsChecked is DecodeAlerts' full check: each alert decoded on
// its own and its keys read into maps, every problem listed.
func decodeAlertsChecked(body []byte) ([]*Alert, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, fmt.Errorf("decoding alert list: %w", err)
	}
	// Binding comes first, as upstream's ShouldBindJSON: a value of the
	// wrong type anywhere is a bind error (400), not a validation one.
	alerts := make([]*Alert, 0, len(raws))
	for i, raw := range raws {
		var a Alert
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("decoding alert %d: %w", i, err)
		}
		alerts = append(alerts, &a)
	}
	var problems []string
	for i, raw := range raws {
		a := alerts[i]
		var keys map[string]json.RawMessage
		_ = json.Unmarshal(raw, &keys) // an object or null: the bind above succeeded
		for _, k := range alertRequired {
			if k == "source" {
				// checked on the decoded struct: json matches keys
				// case-insensitively, so {"source":{..},"SOURCE":null}
				// passes a key check yet decodes to a nil Source.
				if a.Source == nil {
					problems = append(problems, fmt.Sprintf("%d.source in body is required", i))
				}
				continue
			}
			v, ok := keys[k]
			if !ok || string(v) == "null" {
				problems = append(problems, fmt.Sprintf("%d.%s in body is required", i, k))
			}
		}
		if src, ok := keys["source"]; ok && string(src) != "null" {
			var sk map[string]json.RawMessage
			if err := json.Unmarshal(src, &sk); err == nil {
				for _, k := range []string{"scope", "value"} {
					if v, ok := sk[k]; !ok || string(v) == "null" {
						problems = append(problems, fmt.Sprintf("%d.source.%s in body is required", i, k))
					}
				}
			}
		}
		for j, d := range a.Decisions {
			if d == nil {
				problems = append(problems, fmt.Sprintf("%d.decisions.%d in body must not be null", i, j))
			}
		}
		for j, e := range a.Events {
			if e == nil {
				problems = append(problems, fmt.Sprintf("%d.events.%d in body must not be null", i, j))
			}
		}
	}
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	return alerts, nil
}

// ValidationError reproduces upstream's swagger validation message.
type ValidationError struct{ Problems []string }

func (e *ValidationError) Error() string {
	return "validation failure list:\n" + strings.Join(e.Problems, "\n")
}

// LongPollHeader is the stream response header in which Rampart's LAPI
// announces the longest wait= it honours; upstream LAPIs never send it, so
// a bouncer that does not see it polls instead.
const LongPollHeader = "X-Rampart-Long-Poll"

// CursorHeader is the stream response header carrying the change sequence
// the body brings its client to. A client that keeps its own cursor sends
// it back as cursor=<seq> on its next delta (cursor= empty with
// startup=true); Rampart's LAPI then answers 410 Gone when it can no longer
// build that delta whole, and the client pulls the full state again.
// Upstream LAPIs never send it.
const CursorHeader = "X-Rampart-Cursor"

// StreamResponse is the body of GET /v1/decisions/stream.
type StreamResponse struct {
	New     []*Decision `json:"new"`
	Deleted []*Decision `json:"deleted"`
}

// WatcherAuthRequest is the body of POST /v1/watchers/login.
type WatcherAuthRequest struct {
	MachineID *string  `json:"machine_id"`
	Password  *string  `json:"password"`
	Scenarios []string `json:"scenarios"`
}

// WatcherRegistrationRequest is the body of POST /v1/watchers.
type WatcherRegistrationRequest struct {
	MachineID         *string `json:"machine_id"`
	Password          *string `json:"password"`
	RegistrationToken string  `json:"registration_token,omitempty"`
}

// WatcherAuthResponse is the body of a successful login.
type WatcherAuthResponse struct {
	Code   int    `json:"code"`
	Expire string `json:"expire"`
	Token  string `json:"token"`
}

// ErrorResponse is the body of most failures.
type ErrorResponse struct {
	Message string `json:"message"`
	Errors  string `json:"errors,omitempty"`
}

// DeleteResponse is the body of the deletion routes; NbDeleted is a string
// on the wire because upstream's clients decode it as one.
type DeleteResponse struct {
	NbDeleted string `json:"nbDeleted"`
}

// AllowlistItem is one entry of an allowlist.
type AllowlistItem struct {
	Value       string `json:"value"`
	Description string `json:"description,omitempty"`
	CreatedAt   string `json:"created_at,omitempty"`
	Expiration  string `json:"expiration,omitempty"`
}

// Allowlist is the GET /v1/allowlists element.
type Allowlist struct {
	Name           string           `json:"name"`
	AllowlistID    string           `json:"allowlist_id"`
	Description    string           `json:"description"`
	Items          []*AllowlistItem `json:"items"`
	CreatedAt      string           `json:"created_at"`
	UpdatedAt      string           `json:"updated_at"`
	ConsoleManaged bool             `json:"console_managed"`
}

// CheckAllowlistResponse is the answer of GET /v1/allowlists/check/{v}.
type CheckAllowlistResponse struct {
	Allowlisted bool   `json:"allowlisted,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// BulkCheckAllowlistRequest is the body of POST /v1/allowlists/check.
type BulkCheckAllowlistRequest struct {
	Targets []string `json:"targets"`
}

// BulkCheckAllowlistResult is one hit of a bulk check.
type BulkCheckAllowlistResult struct {
	Target     string   `json:"target"`
	Allowlists []string `json:"allowlists"`
}

// BulkCheckAllowlistResponse is the answer of POST /v1/allowlists/check.
type BulkCheckAllowlistResponse struct {
	Results []BulkCheckAllowlistResult `json:"results"`
}

// DecisionCountsResponse is the answer of GET /v1/decisions/count, a
// Rampart addition (machine authentication) that serves the agent's
// GetDecisionsCount, GetDecisionsSinceCount, GetActiveDecisionsCount and
// GetActiveDecisionsTimeLeft helpers with one round trip per value.
type DecisionCountsResponse struct {
	Value       string `json:"value"`
	Count       int    `json:"count"`        // decisions covering value, expired included
	ActiveCount int    `json:"active_count"` // those still in force
	// SinceCount is present when the request had since=: the decisions
	// created within that duration.
	SinceCount *int `json:"since_count,omitempty"`
	// TimeLeft is the longest time left among the active decisions, as a
	// Go duration ("0s" when none).
	TimeLeft string `json:"time_left"`
}

// NormalizeScope maps the well-known scopes case-insensitively to their
// canonical spelling and leaves the others untouched.
func NormalizeScope(s string) string {
	switch strings.ToLower(s) {
	case "ip":
		return "Ip"
	case "range":
		return "Range"
	case "as":
		return "AS"
	case "country":
		return "Country"
	}
	return s
}

// ErrTimeRange is wrapped by the errors about a time or a duration Rampart
// refuses because it could not keep it: times are int64 Unix nanoseconds
// (in the database and in time.Duration arithmetic), so an instant must lie
// between 1677-09-21 and 2262-04-11T23:47:16Z and a duration is at most
// 106751 days. Anything beyond would wrap around, a ban "until 2299" being
// stored as already expired; refusing it is the one rule for every path
// (cscli, the API's alerts and decisions, profiles).
var ErrTimeRange = errors.New("times must lie between 1677-09-21 and 2262-04-11T23:47:16Z")

// maxDays is the longest duration in days: time.Duration's range.
const maxDays = 106751

func inTimeRange(t time.Time) bool {
	return !t.Before(time.Unix(0, math.MinInt64)) && !t.After(time.Unix(0, math.MaxInt64))
}

// CheckTime refuses, wrapping ErrTimeRange, an instant Rampart cannot keep.
func CheckTime(t time.Time) error {
	if !inTimeRange(t) {
		return fmt.Errorf("%s is out of range: %w", t.UTC().Format(time.RFC3339), ErrTimeRange)
	}
	return nil
}

// Expiry is start+d, when a decision lasting d from start ends, or an error
// wrapping ErrTimeRange when that instant cannot be kept.
func Expiry(start time.Time, d time.Duration) (time.Time, error) {
	end := start.Add(d)
	if !inTimeRange(end) {
		return time.Time{}, fmt.Errorf("it would end at %s: %w", end.UTC().Format(time.RFC3339), ErrTimeRange)
	}
	return end, nil
}

// ParseDuration parses a Go duration optionally prefixed by whole days
// ("4h", "7d", "1d12h"). An empty string is an error; so is a duration
// beyond time.Duration's range (about 292 years), wrapping ErrTimeRange.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	tooLong := func() (time.Duration, error) {
		return 0, fmt.Errorf("invalid duration %q: longer than %dd: %w", s, maxDays, ErrTimeRange)
	}
	neg := false
	rest := s
	if strings.HasPrefix(rest, "-") {
		neg = true
		rest = rest[1:]
	}
	if strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	var days int64
	hasDays := false
	if i := strings.IndexByte(rest, 'd'); i > 0 {
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if errors.Is(err, strconv.ErrRange) {
			return tooLong()
		}
		if err == nil {
			if n > maxDays {
				return tooLong()
			}
			days, hasDays = n, true
			rest = rest[i+1:]
		}
	}
	var d time.Duration
	if rest != "" || !hasDays { // a bare "-" is not a duration
		var err error
		d, err = time.ParseDuration(rest)
		if err != nil {
			// time.ParseDuration says "invalid duration" for an overflow
			// too; a well-formed one that failed is too long.
			if goDuration.MatchString(rest) {
				return tooLong()
			}
			return 0, fmt.Errorf("invalid duration %q: %w", s, err)
		}
	}
	dayPart := time.Duration(days) * 24 * time.Hour
	if d > 0 && dayPart > math.MaxInt64-d {
		return tooLong()
	}
	total := dayPart + d
	if neg {
		total = -total
	}
	return total, nil
}

// goDuration is time.ParseDuration's syntax, unsigned.
var goDuration = regexp.MustCompile(`^(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+$`)

// FormatRemaining renders the time left until 'until' as upstream does: a Go
// duration rounded to whole seconds, negative once expired, never in days.
func FormatRemaining(until, now time.Time) string {
	return until.Sub(now).Round(time.Second).String()
}

// TimeOrNow parses an RFC3339 time; an unparsable value becomes now, as
// upstream does.
func TimeOrNow(s string, now time.Time) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return now
	}
	return t
}

// GetScope returns the source's scope (hub test assertions call it).
func (s Source) GetScope() string { return s.Scope }

// GetValue returns the source's value.
func (s Source) GetValue() string { return s.Value }

// GetMeta returns the event's first meta value for key (hub assertions).
func (e *Event) GetMeta(key string) string {
	for _, m := range e.Meta {
		if m.Key == key {
			return m.Value
		}
	}
	return ""
}

// FollowHeader is the stream response header in which Rampart's LAPI
// announces its follow mode (follow=true with cursor=<seq>: one response
// that stays open and carries every change as it happens, see
// FollowChunk), giving the longest such a response lasts. Upstream LAPIs
// never send it, so a bouncer that does not see it long-polls or polls.
const FollowHeader = "X-Rampart-Follow"

// FollowChunk is one line of a follow response (newline-delimited JSON):
// the decisions of one delta and the cursor it brings the client to. A
// line with neither list (a heartbeat, or the last line before the server
// ends the response) only moves the cursor. The client applies a chunk
// when its line is complete, then keeps its cursor, and resumes from it
// with a new request when the response ends or breaks.
type FollowChunk struct {
	Cursor  int64       `json:"cursor"`
	New     []*Decision `json:"new,omitempty"`
	Deleted []*Decision `json:"deleted,omitempty"`
}
