package exprhelpers

import (
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/internal/netaddr"
)

// The stateless helpers. Each takes and returns plain Go values; the expr
// adapters live in options.go. None panics; bad input gives a zero value
// (or, for the unescapers, the input unchanged, as upstream).

// Upper returns s in upper case.
func Upper(s string) string { return foldASCII(s, 'a', strings.ToUpper) }

// Lower returns s in lower case.
func Lower(s string) string { return foldASCII(s, 'A', strings.ToLower) }

// foldASCII is slow(s) (strings.ToUpper or ToLower), converting an ASCII
// s itself: the letters from `from` (a or A) move by 32. The hub's
// filters upper-case several request fields per event; strings.ToUpper
// writes its result a byte at a time through a Builder.
func foldASCII(s string, from byte, slow func(string) string) string {
	first := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return slow(s)
		}
		if first < 0 && c-from < 26 {
			first = i
		}
	}
	if first < 0 {
		return s
	}
	b := make([]byte, len(s))
	copy(b, s[:first])
	for i := first; i < len(s); i++ {
		c := s[i]
		if c-from < 26 {
			c ^= 0x20
		}
		b[i] = c
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// PathUnescape URL-path-unescapes s; on a malformed escape it returns s.
func PathUnescape(s string) string {
	r, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return r
}

// QueryUnescape URL-query-unescapes s ('+' is a space); on a malformed
// escape it returns s.
func QueryUnescape(s string) string {
	r, err := url.QueryUnescape(s)
	if err != nil {
		return s
	}
	return r
}

// PathEscape escapes s for a URL path segment.
func PathEscape(s string) string { return url.PathEscape(s) }

// QueryEscape escapes s for a URL query.
func QueryEscape(s string) string { return url.QueryEscape(s) }

// parseAddr parses an IP as upstream's net.ParseIP does (no zone), and
// unmaps IPv4-mapped IPv6 addresses so ::ffff:1.2.3.4 is in 1.2.3.0/24.
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netaddr.ParseAddr(s)
	return a, err == nil
}

// IpInRange reports whether ip is inside the CIDR ipRange; garbage in
// either gives false.
func IpInRange(ip, ipRange string) bool {
	a, ok := parseAddr(ip)
	if !ok {
		return false
	}
	if !strings.Contains(ipRange, "/") {
		return false // a CIDR, as upstream's net.ParseCIDR wants
	}
	p, err := netaddr.ParsePrefix(ipRange)
	if err != nil {
		return false
	}
	return p.Contains(a)
}

// IsIPV4 reports whether s is an IPv4 address (IPv4-mapped IPv6 counts,
// as with net.IP.To4).
func IsIPV4(s string) bool {
	a, ok := parseAddr(s)
	return ok && a.Is4()
}

// IsIPV6 reports whether s is an IPv6 address that is not IPv4-mapped.
func IsIPV6(s string) bool {
	a, ok := parseAddr(s)
	return ok && a.Is6()
}

// IsIP reports whether s is an IP address.
func IsIP(s string) bool {
	_, ok := parseAddr(s)
	return ok
}

// IpToRange returns the network of ip with the given prefix length ("24"
// or "/24"), e.g. IpToRange("1.2.3.4", "24") == "1.2.3.0/24"; "" on bad
// input.
func IpToRange(ip, cidr string) string {
	bits, err := strconv.Atoi(strings.TrimPrefix(cidr, "/"))
	if err != nil {
		return ""
	}
	a, ok := parseAddr(ip)
	if !ok {
		return ""
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// Atof parses a float; 0 on error.
func Atof(s string) float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0
	}
	return f
}

// Sprintf is fmt.Sprintf.
func Sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }

// TrimSpace is strings.TrimSpace.
func TrimSpace(s string) string { return strings.TrimSpace(s) }

// Split is strings.Split.
func Split(s, sep string) []string { return strings.Split(s, sep) }

// ToString returns v if it is a string, else "" (as upstream).
func ToString(v any) string {
	s, _ := v.(string)
	return s
}

// Distance returns the great-circle distance in km between two points
// given as decimal strings; 0 when a coordinate is not a number or either
// point is 0,0 (upstream's guard against missing GeoIP data).
func Distance(lat1, long1, lat2, long2 string) float64 {
	var v [4]float64
	for i, s := range []string{lat1, long1, lat2, long2} {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0
		}
		v[i] = f
	}
	if (v[0] == 0 && v[1] == 0) || (v[2] == 0 && v[3] == 0) {
		return 0
	}
	const earthRadiusKm = 6371.0
	rad := func(d float64) float64 { return d * math.Pi / 180 }
	dLat, dLon := rad(v[2]-v[0]), rad(v[3]-v[1])
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(rad(v[0]))*math.Cos(rad(v[2]))*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusKm * math.Atan2(math.Sqrt(a), math.Sqrt(1-a))
}

// ParseUri returns the query parameters of uri (an empty map on error).
func ParseUri(uri string) map[string][]string {
	out := map[string][]string{}
	u, err := url.Parse(uri)
	if err != nil {
		return out
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return out
	}
	for k, v := range q {
		out[k] = v
	}
	return out
}

// ExtractQueryParam returns the values of one query parameter of uri:
// the query is what follows the first '?', parsed leniently as upstream
// (ParseQuery); an empty list when the parameter is absent.
func ExtractQueryParam(uri, param string) []string {
	_, q, ok := strings.Cut(uri, "?")
	if !ok {
		return []string{}
	}
	if v, ok := ParseQuery(q)[param]; ok {
		return v
	}
	return []string{}
}

// MedianInterval returns the median of the intervals between consecutive
// times (sorted first), e.g. 3 intervals for the 4 failed logins of
// ssh-time-based-bf's `MedianInterval(map(failedAuths[-4:], {#.Time}))`,
// to compare with duration("10m"). With an even number of intervals it is
// the mean of the two middle ones. Fewer than 2 times give 0.
//
// items may be []any (what expr's map() builds; its elements may be
// time.Time, event.Event or *event.Event), []time.Time, []event.Event or
// []*event.Event, so the scenario engine can also pass its queue directly.
// Anything else, or a non-time element, gives 0.
func MedianInterval(items any) time.Duration {
	var ts []time.Time
	switch v := items.(type) {
	case []time.Time:
		ts = slices.Clone(v)
	case []event.Event:
		ts = make([]time.Time, len(v))
		for i := range v {
			ts[i] = v[i].Time
		}
	case []*event.Event:
		ts = make([]time.Time, 0, len(v))
		for _, e := range v {
			if e == nil {
				return 0
			}
			ts = append(ts, e.Time)
		}
	case []any:
		ts = make([]time.Time, 0, len(v))
		for _, x := range v {
			switch t := x.(type) {
			case time.Time:
				ts = append(ts, t)
			case *time.Time:
				if t == nil {
					return 0
				}
				ts = append(ts, *t)
			case event.Event:
				ts = append(ts, t.Time)
			case *event.Event:
				if t == nil {
					return 0
				}
				ts = append(ts, t.Time)
			default:
				return 0
			}
		}
	default:
		return 0
	}
	if len(ts) < 2 {
		return 0
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	iv := make([]time.Duration, len(ts)-1)
	for i := 1; i < len(ts); i++ {
		iv[i-1] = ts[i].Sub(ts[i-1])
	}
	slices.Sort(iv)
	n := len(iv)
	if n%2 == 1 {
		return iv[n/2]
	}
	return iv[n/2-1] + (iv[n/2]-iv[n/2-1])/2
}
