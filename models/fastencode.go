package models

import (
	"encoding/json"
	"math"
	"strconv"
)

// AppendAlertJSON appends a encoded exactly as json.Marshal(a) writes it
// (same bytes: field order, omitempty, HTML-safe escaping, float format),
// without reflection: an agent encodes every alert it queues, and during a
// replay encoding/json took as much of the agent's CPU as the LAPI's
// decoding of them. A latitude or longitude json.Marshal cannot encode
// (NaN, ±Inf) gives its error.
func AppendAlertJSON(dst []byte, a *Alert) ([]byte, error) {
	if a == nil {
		return append(dst, "null"...), nil
	}
	if s := a.Source; s != nil && (!finite32(s.Latitude) || !finite32(s.Longitude)) {
		_, err := json.Marshal(a)
		return dst, err
	}
	dst = append(dst, `{"capacity":`...)
	dst = strconv.AppendInt(dst, int64(a.Capacity), 10)
	if a.CreatedAt != "" {
		dst = append(dst, `,"created_at":`...)
		dst = AppendJSONString(dst, a.CreatedAt)
	}
	dst = append(dst, `,"decisions":`...)
	if a.Decisions == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, d := range a.Decisions {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendDecisionJSON(dst, d)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"events":`...)
	if a.Events == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, e := range a.Events {
			if i > 0 {
				dst = append(dst, ',')
			}
			if e == nil {
				dst = append(dst, "null"...)
				continue
			}
			dst = append(dst, `{"meta":`...)
			dst = appendMetasJSON(dst, e.Meta)
			dst = append(dst, `,"timestamp":`...)
			dst = AppendJSONString(dst, e.Timestamp)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"events_count":`...)
	dst = strconv.AppendInt(dst, int64(a.EventsCount), 10)
	if a.ID != 0 {
		dst = append(dst, `,"id":`...)
		dst = strconv.AppendInt(dst, a.ID, 10)
	}
	if a.Kind != "" {
		dst = append(dst, `,"kind":`...)
		dst = AppendJSONString(dst, a.Kind)
	}
	dst = append(dst, `,"labels":`...)
	if a.Labels == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, l := range a.Labels {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONString(dst, l)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"leakspeed":`...)
	dst = AppendJSONString(dst, a.Leakspeed)
	if a.MachineID != "" {
		dst = append(dst, `,"machine_id":`...)
		dst = AppendJSONString(dst, a.MachineID)
	}
	dst = append(dst, `,"message":`...)
	dst = AppendJSONString(dst, a.Message)
	if len(a.Meta) > 0 {
		dst = append(dst, `,"meta":`...)
		dst = appendMetasJSON(dst, a.Meta)
	}
	dst = append(dst, `,"remediation":`...)
	dst = strconv.AppendBool(dst, a.Remediation)
	dst = append(dst, `,"scenario":`...)
	dst = AppendJSONString(dst, a.Scenario)
	dst = append(dst, `,"scenario_hash":`...)
	dst = AppendJSONString(dst, a.ScenarioHash)
	dst = append(dst, `,"scenario_version":`...)
	dst = AppendJSONString(dst, a.ScenarioVersion)
	dst = append(dst, `,"simulated":`...)
	dst = strconv.AppendBool(dst, a.Simulated)
	dst = append(dst, `,"source":`...)
	dst = appendSourceJSON(dst, a.Source)
	dst = append(dst, `,"start_at":`...)
	dst = AppendJSONString(dst, a.StartAt)
	dst = append(dst, `,"stop_at":`...)
	dst = AppendJSONString(dst, a.StopAt)
	if a.UUID != "" {
		dst = append(dst, `,"uuid":`...)
		dst = AppendJSONString(dst, a.UUID)
	}
	return append(dst, '}'), nil
}

func appendDecisionJSON(dst []byte, d *Decision) []byte {
	if d == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, `{"duration":`...)
	dst = AppendJSONString(dst, d.Duration)
	if d.ID != 0 {
		dst = append(dst, `,"id":`...)
		dst = strconv.AppendInt(dst, d.ID, 10)
	}
	dst = append(dst, `,"origin":`...)
	dst = AppendJSONString(dst, d.Origin)
	dst = append(dst, `,"scenario":`...)
	dst = AppendJSONString(dst, d.Scenario)
	dst = append(dst, `,"scope":`...)
	dst = AppendJSONString(dst, d.Scope)
	if d.Simulated != nil {
		dst = append(dst, `,"simulated":`...)
		dst = strconv.AppendBool(dst, *d.Simulated)
	}
	dst = append(dst, `,"type":`...)
	dst = AppendJSONString(dst, d.Type)
	if d.Until != "" {
		dst = append(dst, `,"until":`...)
		dst = AppendJSONString(dst, d.Until)
	}
	if d.UUID != "" {
		dst = append(dst, `,"uuid":`...)
		dst = AppendJSONString(dst, d.UUID)
	}
	dst = append(dst, `,"value":`...)
	dst = AppendJSONString(dst, d.Value)
	return append(dst, '}')
}

// appendMetasJSON appends a meta list (null when nil, as json.Marshal).
func appendMetasJSON(dst []byte, ms []Meta) []byte {
	if ms == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"key":`...)
		dst = AppendJSONString(dst, ms[i].Key)
		dst = append(dst, `,"value":`...)
		dst = AppendJSONString(dst, ms[i].Value)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

func appendSourceJSON(dst []byte, s *Source) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '{')
	for _, f := range [...]struct{ key, v string }{{`"as_name":`, s.AsName}, {`"as_number":`, s.AsNumber}, {`"cn":`, s.Cn}, {`"ip":`, s.IP}} {
		if f.v != "" {
			dst = append(dst, f.key...)
			dst = AppendJSONString(dst, f.v)
			dst = append(dst, ',')
		}
	}
	for _, f := range [...]struct {
		key string
		v   float32
	}{{`"latitude":`, s.Latitude}, {`"longitude":`, s.Longitude}} {
		if f.v != 0 {
			dst = append(dst, f.key...)
			dst = appendFloat32(dst, f.v)
			dst = append(dst, ',')
		}
	}
	if s.Range != "" {
		dst = append(dst, `"range":`...)
		dst = AppendJSONString(dst, s.Range)
		dst = append(dst, ',')
	}
	dst = append(dst, `"scope":`...)
	dst = AppendJSONString(dst, s.Scope)
	dst = append(dst, `,"value":`...)
	dst = AppendJSONString(dst, s.Value)
	return append(dst, '}')
}

func finite32(f float32) bool {
	return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0)
}

// appendFloat32 writes a finite float32 as encoding/json does: the
// shortest decimal that reads back the same, in exponent form below 1e-6
// or from 1e21 on, with e-07 written e-7.
func appendFloat32(dst []byte, f float32) []byte {
	format := byte('f')
	if abs := float32(math.Abs(float64(f))); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, float64(f), format, -1, 32)
	if format == 'e' {
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// AppendJSONString appends s as json.Marshal writes it. Printable ASCII
// without the characters it escapes (", \ and the HTML-unsafe <, >, &)
// is copied as is; anything else (escapes, UTF-8, invalid bytes: rare in
// alerts) is left to encoding/json.
func AppendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
