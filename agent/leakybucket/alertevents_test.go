package leakybucket

import (
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/models"
)

// TestAlertEvents: the alert's events carry each queued event's meta
// sorted by key, whether or not its keys are those of the event before,
// and leave out events without meta; appending to one event's meta leaves
// the next one's alone.
func TestAlertEvents(t *testing.T) {
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	queue := []*event.Event{
		{Meta: map[string]string{"b": "1", "a": "2"}, MarshaledTime: "t1"},
		{Meta: map[string]string{"a": "3", "b": "4"}, MarshaledTime: "t2"},
		{Meta: map[string]string{"a": "5", "c": "6"}, Time: at},
		{Meta: map[string]string{"a": "7"}, MarshaledTime: "t4"},
		{Type: event.OVFLW, MarshaledTime: "t5"},
		{Meta: map[string]string{}, MarshaledTime: "t6"},
		{Meta: map[string]string{"c": "8", "b": "9", "a": "10"}, MarshaledTime: "t7"},
		{Meta: map[string]string{"c": "11", "b": "12", "a": "13"}, MarshaledTime: "t8"},
	}
	got := alertEvents(queue)
	// the plain way: each event's keys sorted on their own
	var want []*models.Event
	for _, qe := range queue {
		if qe.Meta == nil {
			continue
		}
		me := &models.Event{Timestamp: qe.MarshaledTime}
		if me.Timestamp == "" {
			me.Timestamp = qe.Time.UTC().Format(time.RFC3339Nano)
		}
		var keys []string
		for k := range qe.Meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			me.Meta = append(me.Meta, models.Meta{Key: k, Value: qe.Meta[k]})
		}
		want = append(want, me)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	got[0].Meta = append(got[0].Meta, models.Meta{Key: "z", Value: "x"})
	if got[1].Meta[0] != (models.Meta{Key: "a", Value: "3"}) {
		t.Errorf("appending to the first event's meta changed the second's: %+v", got[1].Meta)
	}
}
