// Package blocklists keeps the LAPI's blocklist feed subscriptions
// ([[blocklists]]) stored as decisions: each feed is fetched (a URL with
// ETag/If-Modified-Since, or a file) on its interval, parsed, filtered by
// the allowlists, and its decisions replaced in one store transaction
// (store.ReplaceList), so that bouncers get each refresh as one delta. A
// feed that fails to download or to parse keeps its previous version.
package blocklists

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/rampart-ips/rampart/internal/netaddr"
	"github.com/rampart-ips/rampart/lapi/store"
)

// maxBadShown bounds the bad line numbers a parse keeps for its warning.
const maxBadShown = 10

// Parsed is a feed's content.
type Parsed struct {
	Format  string            // the format read (detected when not configured)
	Entries []store.ListEntry // in feed order, duplicates removed
	Bad     int               // lines that were neither an entry nor a comment
	BadAt   []int             // the first maxBadShown bad line numbers (1-based)
}

// detect guesses a feed's format from its first meaningful line: a JSON
// object means CrowdSec NDJSON, a "; comment" after an entry means DROP;
// anything else is read as plain, which also skips "#" comments.
func detect(data []byte) string {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		t := strings.TrimSpace(string(line))
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		if t[0] == '{' {
			return "crowdsec"
		}
		if strings.Contains(t, ";") {
			return "drop"
		}
		return "plain"
	}
	return "plain"
}

// ndjsonEntry is one line of a CrowdSec list in NDJSON: upstream's list
// links carry "value" (and description, expiration, created_at, which
// are not needed here).
type ndjsonEntry struct {
	Value *string `json:"value"`
}

// Parse reads a feed in format ("" detects it). It fails only when most
// lines are bad (a wrong format or an error page) or when nothing is left:
// a feed that empties itself whole is more likely broken than meant, and
// replacing it would lift every ban it held.
func Parse(data []byte, format string) (Parsed, error) {
	p := Parsed{Format: format}
	if p.Format == "" {
		p.Format = detect(data)
	}
	seen := make(map[string]bool)
	lineNo, candidates := 0, 0
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		lineNo++
		val, isEntry := splitLine(line, p.Format)
		if !isEntry {
			continue
		}
		candidates++
		e, ok := entryOf(val)
		if !ok {
			p.Bad++
			if len(p.BadAt) < maxBadShown {
				p.BadAt = append(p.BadAt, lineNo)
			}
			continue
		}
		if seen[e.Value] {
			continue
		}
		seen[e.Value] = true
		p.Entries = append(p.Entries, e)
	}
	if p.Bad > 0 && p.Bad*2 >= candidates {
		return p, fmt.Errorf("%d of %d lines are not %s entries (lines %s): not a %s feed", p.Bad, candidates, p.Format, lineList(p.BadAt, p.Bad), p.Format)
	}
	if len(p.Entries) == 0 {
		return p, fmt.Errorf("the feed holds no entry")
	}
	return p, nil
}

// splitLine returns the value a line holds in format, or false for blank
// and comment lines.
func splitLine(line []byte, format string) (string, bool) {
	if format == "crowdsec" {
		t := bytes.TrimSpace(line)
		if len(t) == 0 {
			return "", false
		}
		var e ndjsonEntry
		if err := json.Unmarshal(t, &e); err != nil || e.Value == nil {
			return "\x00", true // counted as bad
		}
		return *e.Value, true
	}
	s := string(line)
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	if format == "drop" {
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", false
	}
	// "1.2.3.0/24 some words": the first field is the entry.
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		s = s[:i]
	}
	return s, true
}

// entryOf reads an address (scope Ip) or a prefix (scope Range; a
// full-length prefix is an address) with the project's parser.
func entryOf(v string) (store.ListEntry, bool) {
	pfx, err := netaddr.ParsePrefix(v)
	if err != nil {
		return store.ListEntry{}, false
	}
	if pfx.Bits() == pfx.Addr().BitLen() {
		return store.ListEntry{Value: pfx.Addr().String(), Scope: "Ip", Range: store.RangeOf(pfx)}, true
	}
	return store.ListEntry{Value: pfx.String(), Scope: "Range", Range: store.RangeOf(pfx)}, true
}

func lineList(at []int, total int) string {
	var b strings.Builder
	for i, n := range at {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, n)
	}
	if total > len(at) {
		fmt.Fprintf(&b, " and %d more", total-len(at))
	}
	return b.String()
}
