package event

// Maker makes the log events of one goroutine (not safe for concurrent
// use) more cheaply than New, with the same result: their three maps, the
// largest allocation per line, are sized from the events it saw rather
// than for the largest log formats, and the maps of events dropped
// unpoured are cleared and reused instead of allocated again.
type Maker struct {
	// hint sizes the next new maps: the largest sizes seen in the last
	// window of kept events; peak is the current window's.
	hint, peak sizes
	seen       int
	sized      bool // hint holds a whole window's sizes
	// spare are the maps of a dropped event, for the next event.
	spare struct{ parsed, enriched, meta map[string]string }
}

type sizes struct{ parsed, enriched, meta int }

const (
	// makerWindow is how many kept events one sizing spans: a format
	// with more fields than the current hint grows one window of maps
	// before the hint follows it.
	makerWindow = 256
	// maxHint bounds a hint: a rare huge event must not make every
	// later map huge.
	maxHint = 64
)

// New's map sizes, also a Maker's until it saw a window: a typical web or
// sshd line (about 20 parsed fields, 10 meta). Growing the maps key by key
// cost more than the parse.
const (
	defaultParsed   = 24
	defaultEnriched = 4
	defaultMeta     = 12
)

// New returns a log event with its maps allocated (or reused, empty).
func (m *Maker) New(line Line) Event {
	e := Event{Type: LOG, Line: line, Process: true}
	if m.spare.parsed != nil {
		e.Parsed, e.Enriched, e.Meta = m.spare.parsed, m.spare.enriched, m.spare.meta
		m.spare.parsed, m.spare.enriched, m.spare.meta = nil, nil, nil
		return e
	}
	h := m.hint
	if !m.sized {
		h = sizes{parsed: defaultParsed, enriched: defaultEnriched, meta: defaultMeta}
	}
	e.Parsed = make(map[string]string, h.parsed)
	e.Enriched = make(map[string]string, h.enriched)
	e.Meta = make(map[string]string, h.meta)
	return e
}

// Kept tells the Maker that e, made by New, goes on (to the scenarios):
// its map sizes size the next events'.
func (m *Maker) Kept(e *Event) {
	m.peak.parsed = max(m.peak.parsed, min(len(e.Parsed), maxHint))
	m.peak.enriched = max(m.peak.enriched, min(len(e.Enriched), maxHint))
	m.peak.meta = max(m.peak.meta, min(len(e.Meta), maxHint))
	if m.seen++; m.seen == makerWindow {
		m.hint, m.peak, m.seen, m.sized = m.peak, sizes{}, 0, true
	}
}

// Drop takes back the maps of e, made by New, which nothing refers to
// any more nor will: the next New reuses them, cleared. e is left without
// them (nil maps), so that a mistaken later read of e finds nothing
// rather than another event's fields.
func (m *Maker) Drop(e *Event) {
	// Maps grown past maxHint are left to the collector: a kept event
	// must not get a huge map from a dropped one.
	if e.Parsed == nil || e.Enriched == nil || e.Meta == nil ||
		len(e.Parsed) > maxHint || len(e.Enriched) > maxHint || len(e.Meta) > maxHint {
		e.Parsed, e.Enriched, e.Meta = nil, nil, nil
		return
	}
	clear(e.Parsed)
	clear(e.Enriched)
	clear(e.Meta)
	m.spare.parsed, m.spare.enriched, m.spare.meta = e.Parsed, e.Enriched, e.Meta
	e.Parsed, e.Enriched, e.Meta = nil, nil, nil
}
