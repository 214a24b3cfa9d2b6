package store

import (
	"time"

	"github.com/rampart-ips/rampart/models"
)

// appendMetaJSON appends an event's meta as stored: the JSON array of its
// pairs, each truncated to the column limits, exactly as json.Marshal
// writes it ([] when empty). Writing it directly saves encoding/json's
// reflection on the hundred thousand events of a replay.
func appendMetaJSON(dst []byte, meta []models.Meta) []byte {
	dst = append(dst, '[')
	for i, m := range meta {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"key":`...)
		dst = models.AppendJSONString(dst, truncate(m.Key, maxMetaKey))
		dst = append(dst, `,"value":`...)
		dst = models.AppendJSONString(dst, truncate(m.Value, maxMetaValue))
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// storedEvent is an event as an alert's events column holds it: its time
// (RFC 3339, UTC, as the agent sent it or the push's time) and its meta.
type storedEvent struct {
	TS   string        `json:"ts"`
	Meta []models.Meta `json:"meta"`
}

// appendEventsJSON appends an alert's events as its events column holds
// them: one JSON document per alert rather than a row per event, which
// cost a push more than the alert rows themselves (a row, an index entry
// and a rowid each). Nil events are skipped as they always were.
//
// The document is {"e":[[time,[key,value,key,value,...]],...]}: an event's
// time (RFC 3339, UTC), then its meta pairs flat, each key and value
// truncated to the column limits; a 0 in place of a string repeats the
// string at the same place in the previous event. An alert's events
// mostly share their keys and most values (source, log type, machine):
// written in full they were three quarters of the database.
func appendEventsJSON(dst []byte, events []*models.Event, now time.Time) []byte {
	stored := make([]storedEvent, 0, len(events))
	for _, e := range events {
		if e != nil {
			stored = append(stored, storedEvent{TS: models.TimeOrNow(e.Timestamp, now).UTC().Format(time.RFC3339Nano), Meta: e.Meta})
		}
	}
	return appendStoredEvents(dst, stored)
}

// appendStoredEvents is appendEventsJSON for events whose time is already
// as stored.
func appendStoredEvents(dst []byte, events []storedEvent) []byte {
	dst = append(dst, `{"e":[`...)
	var prev, cur []string
	for n, e := range events {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '[')
		dst = models.AppendJSONString(dst, e.TS)
		dst = append(dst, ",["...)
		cur = cur[:0]
		for _, m := range e.Meta {
			cur = append(cur, truncate(m.Key, maxMetaKey), truncate(m.Value, maxMetaValue))
		}
		for i, item := range cur {
			if i > 0 {
				dst = append(dst, ',')
			}
			if i < len(prev) && prev[i] == item {
				dst = append(dst, '0')
			} else {
				dst = models.AppendJSONString(dst, item)
			}
		}
		dst = append(dst, "]]"...)
		prev, cur = cur, prev
	}
	return append(dst, "]}"...)
}
