// Package event is the agent's event model: a log line as it goes through
// the parsers and into the scenarios, and an overflow on its way to the
// LAPI. Field names follow upstream's types.Event so hub expressions
// (evt.Parsed.x, evt.Meta.x, evt.Overflow.Alert...) work unchanged. It
// holds data only; it never parses or talks to the network.
package event

import (
	"sort"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// Kind tells a log event from an overflow. It is an alias of int, as
// upstream's field is a plain int, so hub expressions such as
// `evt.Type == 1` type-check.
type Kind = int

// Event kinds.
const (
	LOG Kind = iota
	OVFLW
)

// Line is a raw line as acquisition read it.
type Line struct {
	Raw     string            `json:"Raw,omitempty"`
	Src     string            `json:"Src,omitempty"`
	Time    time.Time         `json:"Time,omitempty"`
	Labels  map[string]string `json:"Labels,omitempty"`
	Process bool              `json:"Process,omitempty"`
	Module  string            `json:"Module,omitempty"`
	// Backlog marks a line written while the agent was stopped and read
	// at its start: its own timestamp, not the clock, times it in the
	// scenarios, so a backlog read at once is not taken for a burst.
	Backlog bool `json:"Backlog,omitempty"`
	// Warmup marks a line read again at start, already processed before
	// the stop, only to rebuild the buckets: timed like a backlog line,
	// its overflows are dropped (they were raised before the stop).
	Warmup bool `json:"Warmup,omitempty"`
}

// Event is one log line, or one overflow, flowing through the engine.
// Scenario buckets keep shallow copies sharing its maps, so an event must
// not change once poured.
type Event struct {
	Type            Kind              `json:"Type"`
	ExpectMode      int               `json:"ExpectMode"`
	Whitelisted     bool              `json:"Whitelisted,omitempty"`
	WhitelistReason string            `json:"WhitelistReason,omitempty"`
	Stage           string            `json:"Stage,omitempty"`
	Line            Line              `json:"Line"`
	Parsed          map[string]string `json:"Parsed,omitempty"`
	Enriched        map[string]string `json:"Enriched,omitempty"`
	Unmarshaled     map[string]any    `json:"Unmarshaled,omitempty"`
	Overflow        RuntimeAlert      `json:"Overflow,omitempty"`
	Time            time.Time         `json:"Time,omitempty"`
	StrTime         string            `json:"StrTime,omitempty"`
	StrTimeFormat   string            `json:"StrTimeFormat,omitempty"`
	MarshaledTime   string            `json:"MarshaledTime,omitempty"`
	Process         bool              `json:"Process,omitempty"`
	Meta            map[string]string `json:"Meta,omitempty"`
}

// RuntimeAlert is an overflow: the alert being built and its sources.
type RuntimeAlert struct {
	Mapkey      string                   `json:"MapKey,omitempty"`
	BucketID    string                   `json:"BucketId,omitempty"`
	Whitelisted bool                     `json:"Whitelisted,omitempty"`
	Reprocess   bool                     `json:"Reprocess,omitempty"`
	Sources     map[string]models.Source `json:"Sources,omitempty"`
	Alert       *models.Alert            `json:"Alert,omitempty"`
	// APIAlerts are what gets pushed to the LAPI (one per source).
	APIAlerts []models.Alert `json:"APIAlerts,omitempty"`
}

// New returns a log event with its maps allocated.
func New(line Line) Event {
	// Sized for a typical line (see defaultParsed); Maker does better for
	// a stream of lines.
	return Event{Type: LOG, Line: line, Parsed: make(map[string]string, defaultParsed), Enriched: make(map[string]string, defaultEnriched),
		Meta: make(map[string]string, defaultMeta), Process: true}
}

// GetMeta returns a meta value; for an overflow, the first alert meta or
// event meta with that key, as upstream does.
func (e *Event) GetMeta(key string) string {
	if e.Type == OVFLW {
		if e.Overflow.Alert != nil {
			return e.Overflow.Alert.GetMeta(key)
		}
		return ""
	}
	return e.Meta[key]
}

// SetMeta sets a meta value (scenario filters call it); it returns true so
// it can sit inside a boolean filter.
func (e *Event) SetMeta(key, value string) bool {
	if e.Meta == nil {
		e.Meta = map[string]string{}
	}
	e.Meta[key] = value
	return true
}

// SetParsed sets a parsed value; it returns true for use in filters.
func (e *Event) SetParsed(key, value string) bool {
	if e.Parsed == nil {
		e.Parsed = map[string]string{}
	}
	e.Parsed[key] = value
	return true
}

// GetSources returns the overflow's sources, keyed by value.
func (e *Event) GetSources() map[string]models.Source {
	return e.Overflow.Sources
}

// GetScope returns the overflow alert's scope.
func (e *Event) GetScope() string {
	if e.Overflow.Alert == nil {
		return ""
	}
	return e.Overflow.Alert.GetScope()
}

// GetValue returns the overflow alert's source value.
func (e *Event) GetValue() string {
	if e.Overflow.Alert == nil {
		return ""
	}
	return e.Overflow.Alert.GetValue()
}

// GetScenario returns the overflow alert's scenario.
func (e *Event) GetScenario() string {
	if e.Overflow.Alert == nil {
		return ""
	}
	return e.Overflow.Alert.Scenario
}

// GetType returns "log" or "overflow".
func (e *Event) GetType() string {
	if e.Type == OVFLW {
		return "overflow"
	}
	return "log"
}

// GetSources returns the overflow's source keys (hub assertions use
// `"1.2.3.4" in results[0].Overflow.GetSources()`).
func (r RuntimeAlert) GetSources() []string {
	out := make([]string, 0, len(r.Sources))
	for k := range r.Sources {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
