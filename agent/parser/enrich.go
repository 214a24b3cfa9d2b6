package parser

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/geoip"
)

// GeoIP database file names, as upstream looks them up in its data folder.
const (
	CityDB = geoip.CityDB
	ASNDB  = geoip.ASNDB
)

// DefaultEnrichers are the statics methods the hub uses, without any
// resource: ParseDate works, the GeoIP methods and reverse_dns enrich
// nothing (and touch neither files nor the network). OpenEnrichment gives
// the working ones.
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

// EnrichConfig says where the enrichers find their resources. Zero values
// mean the defaults.
type EnrichConfig struct {
	DataDir      string        // holds CityDB and ASNDB; "" for no GeoIP
	Resolver     *net.Resolver // for reverse_dns; nil for net.DefaultResolver
	DNSTimeout   time.Duration // longest a PTR lookup may hold an event; default 1 s
	DNSCacheSize int           // most names cached; default 10,000
	DNSCacheTTL  time.Duration // how long an answer is reused; default 1 h
	Log          *log.Entry
}

// Enrichment holds the statics methods' resources: the GeoIP databases and
// the reverse DNS cache. Its methods are safe for concurrent use.
type Enrichment struct {
	geo     *geoip.DB
	dataDir string
	dns     *dnsCache
	log     *log.Entry
	warnGeo sync.Once
}

// OpenEnrichment opens the GeoIP databases of cfg.DataDir when they are
// there. A missing database is not an error: the GeoIP methods then enrich
// nothing and warn once, on first use, as upstream does at start-up. A
// database that is there but unreadable is an error.
func OpenEnrichment(cfg EnrichConfig) (*Enrichment, error) {
	e := &Enrichment{dataDir: cfg.DataDir, log: cfg.Log}
	if e.log == nil {
		e.log = log.WithField("component", "enrich")
	}
	var err error
	if e.geo, err = geoip.Open(cfg.DataDir); err != nil {
		return nil, err
	}
	e.dns = newDNSCache(cfg.Resolver, cfg.DNSTimeout, cfg.DNSCacheSize, cfg.DNSCacheTTL)
	return e, nil
}

// Close releases the GeoIP databases.
func (e *Enrichment) Close() error { return e.geo.Close() }

// GeoIP returns the opened GeoIP databases, for the expr helpers
// (exprhelpers.Helpers.SetGeoIP): one set of readers for both.
func (e *Enrichment) GeoIP() *geoip.DB { return e.geo }

// Methods returns the statics methods backed by e.
func (e *Enrichment) Methods() map[string]Enricher {
	return map[string]Enricher{
		"ParseDate":   ParseDate,
		"GeoIpCity":   e.GeoIPCity,
		"GeoIpASN":    e.GeoIPASN,
		"IpToRange":   e.IPToRange,
		"reverse_dns": e.ReverseDNS,
	}
}

// missing reports whether a database is absent (has is false), warning
// once per Enrichment.
func (e *Enrichment) missing(has bool) bool {
	if has {
		return false
	}
	e.warnGeo.Do(func() {
		where := e.dataDir
		if where == "" {
			where = "(no data folder)"
		}
		e.log.Warnf("GeoIP databases %s/%s not found in %s: GeoIpCity, GeoIpASN and IpToRange enrich nothing", CityDB, ASNDB, where)
	})
	return true
}

// ReverseDNS is the reverse_dns method: the first PTR name of an IP, in
// Enriched.reverse_dns (with its trailing dot, as upstream). Answers,
// failures included, are cached; a lookup never holds the event longer
// than the configured timeout.
func (e *Enrichment) ReverseDNS(value string, _ *event.Event) map[string]string {
	name, ok := e.dns.lookup(strings.TrimSpace(value))
	if !ok || name == "" {
		return nil
	}
	return map[string]string{"reverse_dns": name}
}

// dateLayouts are tried in order; layouts without a year get one inferred.
var dateLayouts = []string{
	time.RFC3339Nano,
	time.RFC3339,
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006/01/02 15:04:05",
	"01/02/2006 15:04:05", // month first, as upstream (bind9, suricata fast.log)
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
// upstream. When no layout matches, the value is read as Unix-epoch
// seconds (webmin logs them), and only then does it become now.
func ParseDate(in string, evt *event.Event) map[string]string {
	mt, ok, _ := parseDateText(in, evt.StrTimeFormat)
	if !ok {
		return nil
	}
	return map[string]string{"MarshaledTime": mt}
}

// parseDateText is ParseDate's work: the MarshaledTime text, whether
// there is one, and how long it holds: 0 when it is always the answer for
// (in, format), else the year it was inferred in (a timestamp without
// one) or -1 when it is the clock's time (no layout matched).
func parseDateText(in, format string) (mt string, ok bool, year int) {
	in = strings.TrimSpace(in)
	t, inferred, ok := parseDateYear(in, format, true)
	switch {
	case ok && inferred:
		year = t.Year() // the year added to the timestamp
	case ok:
	default:
		if t, ok = parseEpoch(in); !ok {
			t, year = time.Now().UTC(), -1
		}
	}
	mt, ok = marshalText(t)
	return mt, ok, year
}

// dateMemo is a parse worker's last ParseDate answer: log lines come in
// time order, many in the same second, so most lines ask again for the
// timestamp the previous line asked for.
type dateMemo struct {
	in, format, mt string
	ok, set        bool
	year           int // as parseDateText's
}

// get is parseDateText(in, format), remembered for the next call.
func (m *dateMemo) get(in, format string) (string, bool) {
	if m.set && m.year >= 0 && m.in == in && m.format == format {
		if m.year == 0 || m.year == time.Now().UTC().Year() {
			return m.mt, m.ok
		}
	}
	mt, ok, year := parseDateText(in, format)
	*m = dateMemo{in: in, format: format, mt: mt, ok: ok, set: true, year: year}
	return mt, ok
}

// parseEpoch reads whole Unix seconds; a fractional part after "." is
// ignored and a value that is not positive is refused, as upstream.
func parseEpoch(in string) (time.Time, bool) {
	whole, _, _ := strings.Cut(in, ".")
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(n, 0).UTC(), true
}

// parseDate tries the event's own format, then the layouts in order; the
// first that parses wins. With gated, a layout whose fixed-width opening
// cannot match the input is skipped without calling time.Parse: its
// failure would only cost an error allocation, and the winner is the
// same (TestDateGatesAreExact).
func parseDate(in, format string, gated bool) (time.Time, bool) {
	t, _, ok := parseDateYear(in, format, gated)
	return t, ok
}

// parseDateYear is parseDate that also tells whether the year is the
// current one, inferred.
func parseDateYear(in, format string, gated bool) (t time.Time, inferred, ok bool) {
	if in == "" {
		return time.Time{}, false, false
	}
	if format != "" {
		if t, err := time.Parse(format, in); err == nil {
			return t, false, true
		}
	}
	for i, l := range dateLayouts {
		if gated && !dateGates[i](in) {
			continue
		}
		if t, err := time.Parse(l, in); err == nil {
			return t, false, true
		}
	}
	for i, l := range yearless {
		if gated && !yearlessGates[i](in) {
			continue
		}
		if t, err := time.Parse(l, in); err == nil {
			if t.Year() == 0 {
				t = t.AddDate(time.Now().UTC().Year(), 0, 0)
				return t, true, true
			}
			return t, false, true
		}
	}
	return time.Time{}, false, false
}

var (
	dateGates     = gates(dateLayouts)
	yearlessGates = gates(yearless)
)

func gates(layouts []string) []func(string) bool {
	out := make([]func(string) bool, len(layouts))
	for i, l := range layouts {
		out[i] = layoutGate(l)
	}
	return out
}

// layoutGate returns a cheap necessary condition for time.Parse(layout, s)
// to succeed, from the layout's opening element when it has a fixed width
// in time.Parse: "2006" is exactly 4 digits, "01" and "02" exactly 2,
// "Jan" and "Mon" exactly one of the 3-letter names (any case); the
// character after it is a literal. Other openings are not gated.
func layoutGate(layout string) func(string) bool {
	always := func(string) bool { return true }
	digitsThen := func(n int, sep byte) func(string) bool {
		return func(s string) bool {
			if len(s) <= n || s[n] != sep {
				return false
			}
			for i := range n {
				if s[i] < '0' || s[i] > '9' {
					return false
				}
			}
			return true
		}
	}
	nameThen := func(names []string, sep byte) func(string) bool {
		return func(s string) bool {
			if len(s) <= 3 || s[3] != sep {
				return false
			}
			for _, n := range names {
				if strings.EqualFold(s[:3], n) {
					return true
				}
			}
			return false
		}
	}
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	switch {
	case len(layout) > 4 && strings.HasPrefix(layout, "2006") && !isDigit(layout[4]):
		return digitsThen(4, layout[4])
	case len(layout) > 2 && (strings.HasPrefix(layout, "01") || strings.HasPrefix(layout, "02")) && !isDigit(layout[2]):
		return digitsThen(2, layout[2])
	case len(layout) > 3 && strings.HasPrefix(layout, "Jan") && (layout[3] == ' ' || layout[3] == ','):
		return nameThen(shortMonths, layout[3])
	case len(layout) > 3 && strings.HasPrefix(layout, "Mon") && (layout[3] == ' ' || layout[3] == ','):
		return nameThen(shortDays, layout[3])
	}
	return always
}

var (
	shortMonths = []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
	shortDays   = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
)

func marshalText(t time.Time) (string, bool) {
	b, err := t.MarshalText() // keeps the zone, as upstream
	if err != nil {
		return "", false
	}
	return string(b), true
}
