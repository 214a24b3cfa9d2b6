package parser

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/grok"
)

// Log injection. A client writes some fields of the lines logged about
// it: the user name sshd logs, the request path, user agent and referer a
// web server logs. Writing a copy of the text a daemon puts around the
// client's address ("x from 198.51.100.200 port 22 ssh2" as a user name)
// gives the line a second place that reads like the client's address. A
// rule that takes the first such place (the hub's sshd rules do) blames
// the address the client wrote: a bystander gets banned, or the client
// hides behind a whitelisted private address. Rampart's own rules take
// the address from the part of the line the client cannot write; rules
// from the hub cannot be changed, so every source address a grok capture
// gives is checked where it was found, and a line whose address is in
// doubt is dropped rather than acted upon.
//
// The check uses the frame of the capture: the fixed text the pattern
// requires around it ("from " and " port " above). The address is in
// doubt when
//   - another address, different from it, sits in the same frame in the
//     text the pattern ran on, outside every client-written capture of
//     the match (a rival inside one is the client's copy, which a rule
//     that captures the client's field whole has put where it belongs),
//     and is not a capture of its own (a rule that captures it reads it
//     as another party: "LocalAddress=.../10.0.0.2/...");
//   - or the address lies inside a client-written capture.
//
// A capture with no fixed text before it (an address opening the line, as
// in web access logs, where nothing the client writes comes before it) is
// not checked: a copy elsewhere in the line cannot be told from any other
// address-looking text there.

// dropWarnEvery is how often at most a dropped line is logged as a
// warning; the others are counted in the next warning and the metrics.
const dropWarnEvery = time.Minute

// clientWritten reports whether capture name is a field a client writes:
// a user name, a request target, a header.
func clientWritten(name string) bool {
	name = strings.ToLower(name)
	for _, w := range [...]string{"user", "request", "path", "uri", "url", "agent", "refer", "query", "args", "banner"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// grokHit is one successful grok of the line being parsed.
type grokHit struct {
	node *node
	src  string
	m    grok.Match
}

// Drop says why the pipeline dropped a line that a parser had parsed.
type Drop struct {
	Stage   string
	Parser  string // the node that set the source address
	Pattern string // the grok node whose capture gave it
	Field   string // that capture
	Address string // the address the parser picked
	// Rival is another address the line names in the same place, and
	// RivalField the capture it lies in ("" when outside every capture).
	Rival, RivalField string
	// Container is the client-written capture the address lies in, when
	// that is the reason.
	Container string
}

func (d *Drop) String() string {
	if d.Rival == "" {
		return fmt.Sprintf("source address %s (%s, from %s) lies inside the client-written field %s",
			d.Address, d.Field, d.Pattern, d.Container)
	}
	where := "outside the parsed fields"
	if d.RivalField != "" {
		where = "in " + d.RivalField
	}
	return fmt.Sprintf("source address %s (%s, from %s) is in doubt: the line names %s in the same place too (%s); a client-written field may have forged one of them",
		d.Address, d.Field, d.Pattern, d.Rival, where)
}

// checkSource checks the source address addr that node n just set (see
// above) and returns why it is in doubt, or nil.
func checkSource(n *node, evt *event.Event, env *runEnv, addr string) *Drop {
	for h := len(env.hits) - 1; h >= 0; h-- {
		hit := &env.hits[h]
		for i := range hit.node.grok.Names() {
			a, b := hit.m.Span(i)
			if a < 0 || hit.src[a:b] != addr {
				continue
			}
			picked, err := netip.ParseAddr(addr)
			if err != nil {
				return nil // not an address: nothing to ban
			}
			d := hit.doubt(i, a, b, picked.Unmap())
			if d != nil {
				d.Stage, d.Parser, d.Address = evt.Stage, n.name, addr
			}
			return d
		}
	}
	return nil
}

// doubt checks capture i of the hit, found at [a, b) and read as picked.
func (hit *grokHit) doubt(i, a, b int, picked netip.Addr) *Drop {
	field := hit.node.grok.Names()[i]
	if c := hit.within(a, b, i, true); c != "" {
		return &Drop{Pattern: hit.node.patternName(), Field: field, Container: c}
	}
	f := hit.node.grok.Frame(i)
	if f.Before == "" || strings.TrimSpace(f.Before+f.After) == "" {
		return nil
	}
	src := hit.src
	for off := 0; ; {
		k := strings.Index(src[off:], f.Before)
		if k < 0 {
			return nil
		}
		start := off + k + len(f.Before)
		off += k + 1
		if start == a {
			continue
		}
		rival, end, ok := addrAt(src, start, f.After)
		if !ok || rival == picked || hit.within(start, end, i, true) != "" || hit.captured(start, end) {
			continue
		}
		return &Drop{Pattern: hit.node.patternName(), Field: field, Rival: src[start:end], RivalField: hit.within(start, end, i, false)}
	}
}

// within returns the name of a capture of the hit other than skip that
// holds [a, b) (only client-written ones when clientOnly), or "".
func (hit *grokHit) within(a, b, skip int, clientOnly bool) string {
	for j, name := range hit.node.grok.Names() {
		if j == skip || clientOnly && !hit.node.clientCaps[j] {
			continue
		}
		if s, e := hit.m.Span(j); s >= 0 && s <= a && b <= e {
			return name
		}
	}
	return ""
}

// captured reports whether [a, b) is exactly what a capture of the hit
// holds: the rule reads that address as something else (the server's
// address, a destination).
func (hit *grokHit) captured(a, b int) bool {
	for j := range hit.node.grok.Names() {
		if s, e := hit.m.Span(j); s == a && e == b {
			return true
		}
	}
	return false
}

// addrAt reads an address starting at src[start:] and followed by after;
// it returns the address and where it ends. It looks at no more than the
// longest address text past start and parses at most a few candidates,
// so a line full of frames costs time linear in its length.
func addrAt(src string, start int, after string) (netip.Addr, int, bool) {
	end := start
	for end < len(src) && end-start < maxAddrText && isAddrByte(src[end]) {
		end++
	}
	if after == "" {
		// the run, less trailing punctuation ("from 1.2.3.4.")
		for _, e := range [2]int{end, start + len(strings.TrimRight(src[start:end], ".:"))} {
			if ip, err := netip.ParseAddr(src[start:e]); err == nil {
				return ip.Unmap(), e, true
			}
		}
		return netip.Addr{}, 0, false
	}
	// the longest part of the run that is an address followed by after
	for e := end; e > start+1; e-- {
		if !strings.HasPrefix(src[e:], after) {
			continue
		}
		if ip, err := netip.ParseAddr(src[start:e]); err == nil {
			return ip.Unmap(), e, true
		}
	}
	return netip.Addr{}, 0, false
}

// maxAddrText is the longest text of an address: an IPv6 address in its
// longest form with an embedded IPv4 address.
const maxAddrText = len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")

func isAddrByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '.' || c == ':'
}

// patternName names a grok node in messages: its pattern name, else the
// node's.
func (n *node) patternName() string {
	if n.grokName != "" {
		return n.grokName
	}
	return n.name
}

// warnDrop logs a dropped line, at most once per dropWarnEvery; the
// warning says how many more were dropped since the previous one.
func (p *Pipeline) warnDrop(d *Drop, evt *event.Event) {
	now := time.Now().UnixNano()
	next := p.dropWarnNext.Load()
	if now < next || !p.dropWarnNext.CompareAndSwap(next, now+int64(dropWarnEvery)) {
		p.dropsUnwarned.Add(1)
		return
	}
	f := log.Fields{
		"stage":     d.Stage,
		"parser":    d.Parser,
		"pattern":   d.Pattern,
		"field":     d.Field,
		"source_ip": d.Address,
		"src":       evt.Line.Src,
		"line":      fmt.Sprintf("%.200s", evt.Line.Raw),
		// dropped without a warning since the previous one
		"unlogged": p.dropsUnwarned.Swap(0),
	}
	for k, v := range map[string]string{"rival": d.Rival, "rival_field": d.RivalField, "container": d.Container} {
		if v != "" {
			f[k] = v
		}
	}
	p.log.WithFields(f).Warn("line dropped: " + d.String())
}
