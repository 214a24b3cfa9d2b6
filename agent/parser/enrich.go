package parser

import (
	"strings"
	"time"

	"github.com/rampart-ips/rampart/agent/event"
)

// DefaultEnrichers are the statics methods the hub uses. GeoIP methods are
// a clean no-op until GeoLite2 databases are configured.
func DefaultEnrichers() map[string]Enricher {
	noop := func(string, *event.Event) map[string]string { return nil }
	return map[string]Enricher{
		"ParseDate":   ParseDate,
		"GeoIpCity":   noop,
		"GeoIpASN":    noop,
		"IpToRange":   noop,
		"reverse_dns": noop,
	}
}

// dateLayouts are tried in order; layouts without a year get one inferred.
var dateLayouts = []string{
	time.RFC3339Nano,
	time.RFC3339,
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006/01/02 15:04:05",
	"02/Jan/2006:15:04:05 -0700",
	"02/Jan/2006:15:04:05",
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan _2 15:04:05 2006",
	"Jan _2 15:04:05 2006",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05.000",
	time.RFC1123Z,
	time.RFC1123,
	time.UnixDate,
}

var yearless = []string{
	"Jan _2 15:04:05",
	"Jan 2 15:04:05",
	"Jan _2 15:04:05.000000",
	"Jan 2 2006 15:04:05",
}

// ParseDate parses evt.StrTime-style values into MarshaledTime (RFC 3339,
// UTC). A timestamp without a year takes the current UTC year, as
// upstream; an unparsable one becomes now.
func ParseDate(in string, evt *event.Event) map[string]string {
	in = strings.TrimSpace(in)
	if in != "" {
		if evt.StrTimeFormat != "" {
			if t, err := time.Parse(evt.StrTimeFormat, in); err == nil {
				return marshal(t)
			}
		}
		for _, l := range dateLayouts {
			if t, err := time.Parse(l, in); err == nil {
				return marshal(t)
			}
		}
		now := time.Now().UTC()
		for _, l := range yearless {
			if t, err := time.Parse(l, in); err == nil {
				if t.Year() == 0 {
					t = t.AddDate(now.Year(), 0, 0)
				}
				return marshal(t)
			}
		}
	}
	return marshal(time.Now().UTC())
}

func marshal(t time.Time) map[string]string {
	b, err := t.MarshalText() // keeps the zone, as upstream
	if err != nil {
		return nil
	}
	return map[string]string{"MarshaledTime": string(b)}
}
