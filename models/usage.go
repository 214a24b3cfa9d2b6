package models

// UsageMetrics is the body of POST /v1/usage-metrics: a bouncer sends one
// remediation component, an agent one log processor.
type UsageMetrics struct {
	RemediationComponents []*RemediationComponentUsage `json:"remediation_components,omitempty"`
	LogProcessors         []*LogProcessorUsage         `json:"log_processors,omitempty"`
}

// UsageOS names the operating system a component runs on.
type UsageOS struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// BaseUsage is what every component reports about itself.
type BaseUsage struct {
	Version             string         `json:"version"`
	OS                  *UsageOS       `json:"os,omitempty"`
	FeatureFlags        []string       `json:"feature_flags"`
	UtcStartupTimestamp int64          `json:"utc_startup_timestamp"`
	Metrics             []*UsageWindow `json:"metrics"`
}

// UsageWindow is one reporting window: counters are deltas over
// WindowSizeSeconds ending at UtcNowTimestamp, gauges absolute values.
type UsageWindow struct {
	Meta  UsageWindowMeta `json:"meta"`
	Items []*UsageItem    `json:"items"`
}

// UsageWindowMeta dates a window.
type UsageWindowMeta struct {
	WindowSizeSeconds int64 `json:"window_size_seconds"`
	UtcNowTimestamp   int64 `json:"utc_now_timestamp"`
}

// UsageItem is one value: name and unit say what it counts ("dropped",
// "byte"), labels where it came from ("ip_type": "ipv4").
type UsageItem struct {
	Name   string            `json:"name"`
	Value  float64           `json:"value"`
	Unit   string            `json:"unit"`
	Labels map[string]string `json:"labels,omitempty"`
}

// RemediationComponentUsage is a bouncer's report.
type RemediationComponentUsage struct {
	BaseUsage
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
}

// LogProcessorUsage is an agent's report: its hub items by type and how many
// datasources of each type it reads.
type LogProcessorUsage struct {
	BaseUsage
	HubItems    map[string][]UsageHubItem `json:"hub_items"`
	Datasources map[string]int            `json:"datasources"`
}

// UsageHubItem is one installed hub item.
type UsageHubItem struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Status  string `json:"status"`
}

// Usage metric names and units, as upstream's bouncers and agents send them.
const (
	UsageActiveDecisions = "active_decisions"
	UsageDropped         = "dropped"
	UsageProcessed       = "processed"
	UsageRead            = "read"
	UsageParsed          = "parsed"
	UsageUnparsed        = "unparsed"
	UsageWhitelisted     = "whitelisted"
	// Recent upstream agents send parsed/unparsed per parser node
	// (parser_name, parser_stage labels) and these per source.
	UsageGlobalParsed   = "global_parsed"
	UsageGlobalUnparsed = "global_unparsed"
	UsageUnitIP         = "ip"
	UsageUnitByte       = "byte"
	UsageUnitPacket     = "packet"
	UsageUnitLine       = "line"
)

// NewBaseUsage is one report of a component with a single window of
// windowSeconds ending at now (Unix seconds).
func NewBaseUsage(version string, os *UsageOS, startup, windowSeconds, now int64, items []*UsageItem) BaseUsage {
	return BaseUsage{
		Version:             version,
		OS:                  os,
		FeatureFlags:        []string{},
		UtcStartupTimestamp: startup,
		Metrics: []*UsageWindow{{
			Meta:  UsageWindowMeta{WindowSizeSeconds: windowSeconds, UtcNowTimestamp: now},
			Items: items,
		}},
	}
}
