package capi

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/models"
)

// Scenario trust levels, as upstream classifies alerts.
const (
	TrustCertified = "certified"
	TrustTainted   = "tainted"
	TrustCustom    = "custom"
	TrustManual    = "manual"
)

// SharePolicy says which alerts become signals: sharing on, and the
// console.yaml options.
type SharePolicy struct {
	Console csconfig.ConsoleOptions
}

// Trust classifies an alert: custom without a scenario hash, tainted
// without a version (or "?"), certified otherwise; manual, above all,
// when its first decision comes from cscli.
func Trust(a *models.Alert) string {
	trust := TrustCertified
	switch {
	case a.ScenarioHash == "":
		trust = TrustCustom
	case a.ScenarioVersion == "" || a.ScenarioVersion == "?":
		trust = TrustTainted
	}
	if len(a.Decisions) > 0 && a.Decisions[0] != nil && a.Decisions[0].Origin == "cscli" {
		trust = TrustManual
	}
	return trust
}

// Shares says whether an alert of this trust is sent.
func (p *SharePolicy) Shares(a *models.Alert, trust string) bool {
	if a.Simulated {
		return false
	}
	switch trust {
	case TrustManual:
		return p.Console.Manual
	case TrustTainted:
		return p.Console.Tainted
	case TrustCustom:
		return p.Console.Custom
	}
	return true
}

// Encode returns the alert as one signal item (JSON), or nil when the
// policy does not share it. decisions are the alert's final decisions (the
// profiles' when the agent sent none); machineID is the LAPI machine that
// posted it; alertUUID the UUID the LAPI stores it under.
func (p *SharePolicy) Encode(a *models.Alert, decisions []*models.Decision, machineID, alertUUID string, created time.Time) []byte {
	// The trust is the alert's as posted with its decisions, as upstream
	// reads it after the profiles.
	view := *a
	view.Decisions = decisions
	trust := Trust(&view)
	if !p.Shares(a, trust) {
		return nil
	}
	sig := Signal{Scenario: a.Scenario, ScenarioHash: a.ScenarioHash, ScenarioVersion: a.ScenarioVersion, Message: a.Message,
		StartAt: a.StartAt, StopAt: a.StopAt, CreatedAt: created.UTC().Format(time.RFC3339), ScenarioTrust: trust,
		MachineID: machineID, UUID: alertUUID, Kind: a.Kind}
	if src := a.Source; src != nil {
		sig.Source = SignalSource{Scope: src.Scope, Value: src.Value, IP: src.IP, Range: src.Range, AsName: src.AsName,
			AsNumber: src.AsNumber, Cn: src.Cn, Latitude: src.Latitude, Longitude: src.Longitude}
	}
	for _, d := range decisions {
		if d == nil {
			continue
		}
		sig.Decisions = append(sig.Decisions, SignalDecision{UUID: d.UUID, Origin: d.Origin, Scenario: d.Scenario, Scope: d.Scope,
			Type: d.Type, Value: d.Value, Duration: d.Duration, Until: d.Until, Simulated: d.Simulated != nil && *d.Simulated})
	}
	if p.Console.Context {
		for _, m := range a.Meta {
			sig.Context = append(sig.Context, ContextItem{Key: m.Key, Value: m.Value})
		}
	}
	return marshal(sig)
}

// marshal is JSON without HTML escaping, as upstream's client sends it.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil // the wire types always encode
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
