package leakybucket

import (
	"slices"
	"strconv"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/internal/netaddr"
	"github.com/rampart-ips/rampart/models"
)

// overflow turns a full bucket into an overflow event with its alert. ok is
// false when the overflow is discarded: overflow_filter said no, a scope
// other than Ip found no value, or the key is in its blackhole. The caller
// has removed the bucket either way, so the key's next event starts a
// fresh one, as upstream. A blackhole starts only for an overflow kept and
// is not extended by those it discards, as upstream, whose overflow filter
// runs before its blackhole.
func (e *Engine) overflow(s *Scenario, scenario int, b *bucket, now time.Time) (event.Event, bool) {
	last := b.queue[len(b.queue)-1]
	src, ok := e.source(s, last)
	if !ok {
		e.log.WithField("scenario", s.cfg.Name).Warnf("overflow of %q has no %s value: discarded", b.key, s.scope)
		return event.Event{}, false
	}
	remediation := false
	if v, ok := s.cfg.Labels["remediation"].(bool); ok {
		remediation = v
	}
	at := now.UTC()
	first := time.Unix(0, b.first).UTC()
	alert := &models.Alert{
		Scenario: s.cfg.Name, ScenarioHash: s.hash, ScenarioVersion: s.Version,
		// fmt.Sprintf("%s %s performed '%s' (%d events over %s) at %s"), one
		// concatenation
		Message: src.Scope + " " + src.Value + " performed '" + s.cfg.Name + "' (" + strconv.Itoa(b.poured) + " events over " +
			now.Sub(first).String() + ") at " + at.String(),
		EventsCount: int32(b.poured), Capacity: int32(s.cfg.Capacity), Leakspeed: s.cfg.LeakSpeed,
		StartAt: first.Format(time.RFC3339), StopAt: at.Format(time.RFC3339),
		Remediation: remediation, Kind: "crowdsec", Source: &src,
		Events: alertEvents(b.queue), Meta: e.alertContext(b.queue),
	}
	// RFC 3339 with nanoseconds: a re-poured overflow must not move back
	// in time by truncation.
	ovf := event.Event{Type: event.OVFLW, Time: now, MarshaledTime: at.Format(time.RFC3339Nano),
		Overflow: event.RuntimeAlert{Mapkey: b.key, Reprocess: s.cfg.Reprocess, Alert: alert, Sources: map[string]models.Source{src.Value: src}}}
	if s.overflowFilter != nil {
		e.setView(s, b.key, b, now)
		e.q.Queue, e.signal = b.queue, ovf.Overflow
		out, err := e.vm.Run(s.overflowFilter, e.qEnv)
		e.q.Queue, e.signal = nil, event.RuntimeAlert{}
		// as upstream, only a clean false discards: an error or a
		// non-boolean keeps the overflow
		if keep, isBool := out.(bool); err == nil && isBool && !keep {
			return event.Event{}, false
		}
	}
	if s.blackhole > 0 {
		if e.blackholed(scenario, b.key, now.UnixNano()) {
			return event.Event{}, false
		}
		e.addBlackhole(scenario, b.key, now.Add(s.blackhole).UnixNano())
	}
	if b.lastLine != 0 {
		lastLine := time.Unix(0, b.lastLine)
		e.stats.delay.observe(time.Since(lastLine))
		// Carried on so delivery can time the path to the decision.
		ovf.Line.Time = lastLine
	}
	return ovf, true
}

// source is the alert's source, from the last queued event: its IP and
// enrichment, or the source of the overflow it is; then the scenario's scope
// sets Scope and Value (Range: the expression's value, else the IP's range;
// any other scope: the expression's value). ok is false for an empty value
// outside the Ip scope, which upstream cannot turn into an alert either.
func (e *Engine) source(s *Scenario, last *event.Event) (models.Source, bool) {
	var src models.Source
	if last.Type == event.OVFLW && last.Overflow.Alert != nil && last.Overflow.Alert.Source != nil {
		src = *last.Overflow.Alert.Source
	} else {
		src = models.Source{IP: last.Meta["source_ip"], Range: sourceRange(last), AsName: last.Enriched["ASNOrg"], Cn: last.Enriched["IsoCode"],
			AsNumber: last.Enriched["ASNumber"], Latitude: float(last.Enriched["Latitude"]), Longitude: float(last.Enriched["Longitude"])}
		if src.AsNumber == "" {
			src.AsNumber = last.Enriched["ASNNumber"]
		}
	}
	switch s.scope {
	case ScopeIP:
		src.Scope, src.Value = ScopeIP, src.IP
		return src, true
	case ScopeRange:
		src.Scope, src.Value = ScopeRange, src.Range
		if s.scopeValue != nil {
			src.Value = e.evalString(s.scopeValue, last)
		}
	default:
		src = models.Source{Scope: s.scope, Value: e.evalString(s.scopeValue, last)}
	}
	return src, src.Value != ""
}

// sourceRange is the event's source range (the geoip enricher's), as a
// canonical prefix; "" when absent or not a prefix.
func sourceRange(evt *event.Event) string {
	r := evt.Meta["SourceRange"]
	if r == "" {
		r = evt.Enriched["SourceRange"]
	}
	p, err := netaddr.ParsePrefix(r)
	if err != nil {
		return ""
	}
	return p.String()
}

func float(s string) float32 {
	f, err := strconv.ParseFloat(s, 32)
	if err != nil {
		return 0
	}
	return float32(f)
}

// evalString runs an expression over one queued event; anything but a
// string counts as no value, as upstream's scope filter.
func (e *Engine) evalString(p *vm.Program, evt *event.Event) string {
	e.evtEnv["evt"] = evt
	out, err := e.vm.Run(p, e.evtEnv)
	e.evtEnv["evt"] = nil
	if err != nil {
		return ""
	}
	v, _ := out.(string)
	return v
}

// alertEvents lists the queued events as the alert carries them: meta
// sorted by key, and the event's timestamp. Events without meta (re-poured
// overflows) are left out, as upstream. The events and their meta are cut
// from two arrays, and the queued events of a bucket mostly have the same
// meta keys, so the sorted keys of one serve the next while they fit.
func alertEvents(queue []*event.Event) []*models.Event {
	n, metas := 0, 0
	for _, qe := range queue {
		if qe.Meta != nil {
			n++
			metas += len(qe.Meta)
		}
	}
	out := make([]*models.Event, 0, n)
	evs := make([]models.Event, n)
	all := make([]models.Meta, metas)
	var keys []string
	for _, qe := range queue {
		if qe.Meta == nil {
			continue
		}
		me := &evs[len(out)]
		me.Timestamp = qe.MarshaledTime
		if me.Timestamp == "" && !qe.Time.IsZero() {
			me.Timestamp = qe.Time.UTC().Format(time.RFC3339Nano)
		}
		if k := len(qe.Meta); k > 0 {
			// capped: appending to one event's meta must not overwrite
			// the next one's
			me.Meta, all = all[:k:k], all[k:]
			if !sortedMeta(me.Meta, keys, qe.Meta) {
				keys = keys[:0]
				for k := range qe.Meta {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				sortedMeta(me.Meta, keys, qe.Meta)
			}
		}
		out = append(out, me)
	}
	return out
}

// sortedMeta fills dst with m's entries in the order of keys, when keys
// are exactly m's keys (sorted, so the order is the keys'); false
// otherwise.
func sortedMeta(dst []models.Meta, keys []string, m map[string]string) bool {
	if len(keys) != len(m) {
		return false
	}
	for i, k := range keys {
		v, ok := m[k]
		if !ok {
			return false
		}
		dst[i] = models.Meta{Key: k, Value: v}
	}
	return true
}
