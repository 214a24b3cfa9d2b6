package models

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// fastDecodeAlerts decodes a POST /v1/alerts body written the way clients
// write it (encoding/json's output: exact-case keys, each once) in one pass,
// with no reflection. It returns ok=false at anything else — another key,
// a case variant, a duplicate, a null where a value is required, a number
// it would have to round, invalid JSON — and the caller then decodes with
// encoding/json, which words the error. What it accepts, it decodes
// exactly as json.Unmarshal does, and it passes every check
// decodeAlertsChecked makes. encoding/json took a fifth of the LAPI's CPU
// during a replay.
func fastDecodeAlerts(body []byte) ([]*Alert, bool) {
	d := decoder{b: body}
	d.space()
	if !d.eat('[') {
		return nil, false
	}
	alerts := []*Alert{}
	d.space()
	if d.eat(']') {
		return alerts, d.end()
	}
	for {
		a := &Alert{}
		if !d.alert(a) {
			return nil, false
		}
		alerts = append(alerts, a)
		d.space()
		if d.eat(']') {
			return alerts, d.end()
		}
		if !d.eat(',') {
			return nil, false
		}
		d.space()
	}
}

// DecodeAlert decodes one alert as json.Unmarshal does (the agent's
// queue reads back what it wrote with AppendAlertJSON): through the fast
// decoder when it takes it, else through encoding/json.
func DecodeAlert(b []byte) (*Alert, error) {
	d := decoder{b: b}
	d.space()
	a := &Alert{}
	if d.alert(a) && d.end() {
		return a, nil
	}
	a = &Alert{}
	if err := json.Unmarshal(b, a); err != nil {
		return nil, err
	}
	return a, nil
}

// decoder reads JSON from b at i; its methods report false at anything the
// fast path leaves to encoding/json.
type decoder struct {
	b       []byte
	i       int
	scratch []Meta
	// text is b as one string, made at the first meta: meta keys, values
	// and event times (tens per event) are cut from it rather than
	// allocated one by one, a third of a push's allocations. They keep
	// the body's text alive as long as the alerts, which a push drops.
	text string
}

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (d *decoder) end() bool {
	d.space()
	return d.i == len(d.b)
}

// null consumes a null literal if one comes next.
func (d *decoder) null() bool {
	if len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

// object calls field with each key of an object, the decoder standing at
// its value, which field must consume. Keys with escapes are refused.
func (d *decoder) object(field func(key []byte) bool) bool {
	if !d.eat('{') {
		return false
	}
	d.space()
	if d.eat('}') {
		return true
	}
	for {
		if !d.eat('"') {
			return false
		}
		start := d.i
		for d.i < len(d.b) && d.b[d.i] != '"' && d.b[d.i] != '\\' && d.b[d.i] >= 0x20 {
			d.i++
		}
		if !d.eat('"') {
			return false
		}
		key := d.b[start : d.i-1]
		d.space()
		if !d.eat(':') {
			return false
		}
		d.space()
		if !field(key) {
			return false
		}
		d.space()
		if d.eat('}') {
			return true
		}
		if !d.eat(',') {
			return false
		}
		d.space()
	}
}

// array calls elem for each element, the decoder standing at it.
func (d *decoder) array(elem func() bool) bool {
	if !d.eat('[') {
		return false
	}
	d.space()
	if d.eat(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		d.space()
		if d.eat(']') {
			return true
		}
		if !d.eat(',') {
			return false
		}
		d.space()
	}
}

// strFrom decodes a string into *s, cut from d.text when shared.
func (d *decoder) strFrom(s *string, shared bool) bool {
	if d.null() {
		return true
	}
	if !d.eat('"') {
		return false
	}
	start := d.i
	ascii, escaped := true, false
	for {
		if d.i >= len(d.b) {
			return false
		}
		c := d.b[d.i]
		if c == '"' {
			break
		}
		if c < 0x20 {
			return false // invalid JSON
		}
		if c == '\\' {
			escaped = true
			d.i++ // whatever follows is checked by encoding/json below
		} else if c >= utf8.RuneSelf {
			ascii = false
		}
		d.i++
	}
	raw := d.b[start:d.i]
	d.i++
	if escaped || (!ascii && !utf8.Valid(raw)) {
		// Escapes and invalid UTF-8 (which becomes U+FFFD) are rare:
		// encoding/json unquotes them, so its rules hold.
		return json.Unmarshal(d.b[start-1:d.i], s) == nil
	}
	if shared {
		if d.text == "" {
			d.text = string(d.b)
		}
		*s = d.text[start : d.i-1]
		return true
	}
	*s = string(raw)
	return true
}

// str decodes a string into *s; null leaves *s as it is, as encoding/json.
func (d *decoder) str(s *string) bool { return d.strFrom(s, false) }

// eventStr is str for an event's strings: cut from d.text.
func (d *decoder) eventStr(s *string) bool { return d.strFrom(s, true) }

// number returns the literal of a JSON number, or nil.
func (d *decoder) number() []byte {
	start := d.i
	d.eat('-')
	switch {
	case d.eat('0'):
	case d.i < len(d.b) && d.b[d.i] >= '1' && d.b[d.i] <= '9':
		d.digits()
	default:
		return nil
	}
	if d.eat('.') && !d.digits() {
		return nil
	}
	if d.eat('e') || d.eat('E') {
		if !d.eat('+') {
			d.eat('-')
		}
		if !d.digits() {
			return nil
		}
	}
	return d.b[start:d.i]
}

func (d *decoder) digits() bool {
	start := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}

// int32 decodes an integer in int32's range; null leaves *v as it is.
// Fractions, exponents and overflows are encoding/json's to refuse.
func (d *decoder) int32(v *int32) bool {
	if d.null() {
		return true
	}
	n, ok := d.integer(31)
	*v = int32(n)
	return ok
}

func (d *decoder) int64(v *int64) bool {
	if d.null() {
		return true
	}
	n, ok := d.integer(63)
	*v = n
	return ok
}

func (d *decoder) integer(bits int) (int64, bool) {
	lit := d.number()
	if lit == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(string(lit), 10, bits+1)
	return n, err == nil
}

// float32 decodes a number as encoding/json does into a float32.
func (d *decoder) float32(v *float32) bool {
	if d.null() {
		return true
	}
	lit := d.number()
	if lit == nil {
		return false
	}
	f, err := strconv.ParseFloat(string(lit), 32)
	*v = float32(f)
	return err == nil
}

// boolean decodes true or false; null leaves *v as it is.
func (d *decoder) boolean(v *bool) bool {
	switch {
	case d.null():
		return true
	case len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "true":
		d.i += 4
		*v = true
		return true
	case len(d.b)-d.i >= 5 && string(d.b[d.i:d.i+5]) == "false":
		d.i += 5
		*v = false
		return true
	}
	return false
}

// metas decodes a list of key/value pairs; null leaves *v nil.
func (d *decoder) metas(v *[]Meta) bool {
	if d.null() {
		*v = nil
		return true
	}
	// Decoded into the decoder's scratch list, then copied at its size:
	// growing each event's list by appending was a tenth of a push's
	// allocations.
	out := d.scratch[:0]
	ok := d.array(func() bool {
		var m Meta
		var seen [2]bool
		out = append(out, m)
		p := &out[len(out)-1]
		return d.object(func(key []byte) bool {
			switch string(key) { // compared in place, no allocation
			case "key":
				return once(&seen[0]) && d.eventStr(&p.Key)
			case "value":
				return once(&seen[1]) && d.eventStr(&p.Value)
			}
			return false
		})
	})
	d.scratch = out
	*v = append(make([]Meta, 0, len(out)), out...)
	return ok
}

// once marks a key seen, false when it was already.
func once(seen *bool) bool {
	if *seen {
		return false
	}
	*seen = true
	return true
}

// Keys of an alert, by bit; the required ones must come, not null.
const (
	kCapacity = 1 << iota
	kCreatedAt
	kDecisions
	kEvents
	kEventsCount
	kID
	kKind
	kLabels
	kLeakspeed
	kMachineID
	kMessage
	kMeta
	kRemediation
	kScenario
	kScenarioHash
	kScenarioVersion
	kSimulated
	kSource
	kStartAt
	kStopAt
	kUUID

	kRequired = kScenario | kScenarioHash | kScenarioVersion | kMessage | kEventsCount | kStartAt | kStopAt |
		kCapacity | kLeakspeed | kSimulated | kEvents | kSource
)

func (d *decoder) alert(a *Alert) bool {
	var seen, present uint32 // keys met; keys met with a value other than null
	ok := d.object(func(key []byte) bool {
		var bit uint32
		var ok bool
		isNull := len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null"
		switch string(key) { // compared in place, no allocation
		case "capacity":
			bit, ok = kCapacity, d.int32(&a.Capacity)
		case "created_at":
			bit, ok = kCreatedAt, d.str(&a.CreatedAt)
		case "decisions":
			bit, ok = kDecisions, d.decisions(&a.Decisions)
		case "events":
			bit, ok = kEvents, d.events(&a.Events)
		case "events_count":
			bit, ok = kEventsCount, d.int32(&a.EventsCount)
		case "id":
			bit, ok = kID, d.int64(&a.ID)
		case "kind":
			bit, ok = kKind, d.str(&a.Kind)
		case "labels":
			bit, ok = kLabels, d.labels(&a.Labels)
		case "leakspeed":
			bit, ok = kLeakspeed, d.str(&a.Leakspeed)
		case "machine_id":
			bit, ok = kMachineID, d.str(&a.MachineID)
		case "message":
			bit, ok = kMessage, d.str(&a.Message)
		case "meta":
			bit, ok = kMeta, d.metas(&a.Meta)
		case "remediation":
			bit, ok = kRemediation, d.boolean(&a.Remediation)
		case "scenario":
			bit, ok = kScenario, d.str(&a.Scenario)
		case "scenario_hash":
			bit, ok = kScenarioHash, d.str(&a.ScenarioHash)
		case "scenario_version":
			bit, ok = kScenarioVersion, d.str(&a.ScenarioVersion)
		case "simulated":
			bit, ok = kSimulated, d.boolean(&a.Simulated)
		case "source":
			bit, ok = kSource, !isNull && d.source(a)
		case "start_at":
			bit, ok = kStartAt, d.str(&a.StartAt)
		case "stop_at":
			bit, ok = kStopAt, d.str(&a.StopAt)
		case "uuid":
			bit, ok = kUUID, d.str(&a.UUID)
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if !isNull {
			present |= bit
		}
		return true
	})
	return ok && present&kRequired == kRequired
}

// source decodes the alert's source, which must carry scope and value.
func (d *decoder) source(a *Alert) bool {
	s := &Source{}
	var seen [9]bool
	var scope, value bool
	ok := d.object(func(key []byte) bool {
		isNull := len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null"
		switch string(key) { // compared in place, no allocation
		case "as_name":
			return once(&seen[0]) && d.str(&s.AsName)
		case "as_number":
			return once(&seen[1]) && d.str(&s.AsNumber)
		case "cn":
			return once(&seen[2]) && d.str(&s.Cn)
		case "ip":
			return once(&seen[3]) && d.str(&s.IP)
		case "latitude":
			return once(&seen[4]) && d.float32(&s.Latitude)
		case "longitude":
			return once(&seen[5]) && d.float32(&s.Longitude)
		case "range":
			return once(&seen[6]) && d.str(&s.Range)
		case "scope":
			scope = !isNull
			return once(&seen[7]) && d.str(&s.Scope)
		case "value":
			value = !isNull
			return once(&seen[8]) && d.str(&s.Value)
		}
		return false
	})
	a.Source = s
	return ok && scope && value
}

// decisions decodes the alert's decisions; null leaves them nil, a null
// element is the full check's to report.
func (d *decoder) decisions(v *[]*Decision) bool {
	if d.null() {
		*v = nil
		return true
	}
	out := []*Decision{}
	ok := d.array(func() bool {
		dec := &Decision{}
		out = append(out, dec)
		var seen [10]bool
		return d.object(func(key []byte) bool {
			switch string(key) { // compared in place, no allocation
			case "duration":
				return once(&seen[0]) && d.str(&dec.Duration)
			case "id":
				return once(&seen[1]) && d.int64(&dec.ID)
			case "origin":
				return once(&seen[2]) && d.str(&dec.Origin)
			case "scenario":
				return once(&seen[3]) && d.str(&dec.Scenario)
			case "scope":
				return once(&seen[4]) && d.str(&dec.Scope)
			case "simulated":
				if d.null() {
					return once(&seen[5])
				}
				var b bool
				dec.Simulated = &b
				return once(&seen[5]) && d.boolean(dec.Simulated)
			case "type":
				return once(&seen[6]) && d.str(&dec.Type)
			case "until":
				return once(&seen[7]) && d.str(&dec.Until)
			case "uuid":
				return once(&seen[8]) && d.str(&dec.UUID)
			case "value":
				return once(&seen[9]) && d.str(&dec.Value)
			}
			return false
		})
	})
	*v = out
	return ok
}

// events decodes the alert's events; as for decisions.
func (d *decoder) events(v *[]*Event) bool {
	if d.null() {
		*v = nil
		return true
	}
	out := []*Event{}
	ok := d.array(func() bool {
		e := &Event{}
		out = append(out, e)
		var seen [2]bool
		return d.object(func(key []byte) bool {
			switch string(key) { // compared in place, no allocation
			case "meta":
				return once(&seen[0]) && d.metas(&e.Meta)
			case "timestamp":
				return once(&seen[1]) && d.eventStr(&e.Timestamp)
			}
			return false
		})
	})
	*v = out
	return ok
}

// labels decodes a list of strings; null leaves it nil.
func (d *decoder) labels(v *[]string) bool {
	if d.null() {
		*v = nil
		return true
	}
	out := []string{}
	ok := d.array(func() bool {
		var s string
		if !d.str(&s) {
			return false
		}
		out = append(out, s)
		return true
	})
	*v = out
	return ok
}
