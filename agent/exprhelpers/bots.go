package exprhelpers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	log "github.com/sirupsen/logrus"
)

// MatchKnownBot and its "bots" data files, with upstream's semantics. A
// bots file has one JSON object per line:
//
//	{"name": "googlebot", "user_agent": "googlebot", "paths": ["^/"],
//	 "ips": ["192.0.2.1"], "ranges": ["66.249.64.0/19"], "rdns": ["(^|\\.)googlebot\\.com$"]}
//
// An entry matches when its user_agent and paths regexps (optional,
// case-insensitive) match the request, and the source is verified by an
// exact IP, a range, or forward-confirmed reverse DNS (a PTR name,
// lower-cased without its final dot, that resolves back to the address
// and matches an rdns regexp). An entry without any of ips, ranges and
// rdns is refused at load: a User-Agent alone is trivially spoofed.

// maxPTRNames bounds the PTR names checked per address (legitimate hosts
// have one), as upstream.
const maxPTRNames = 3

type botEntry struct {
	Name      string   `json:"name"`
	UserAgent string   `json:"user_agent,omitempty"`
	Paths     []string `json:"paths,omitempty"`
	IPs       []string `json:"ips,omitempty"`
	Ranges    []string `json:"ranges,omitempty"`
	RDNS      []string `json:"rdns,omitempty"`

	ua     *regexp.Regexp
	paths  []*regexp.Regexp
	ips    map[netip.Addr]struct{}
	ranges []netip.Prefix
	rdns   []*regexp.Regexp
}

// parseBots reads a bots file; any bad line fails the whole file, as
// upstream.
func parseBots(file string, lines []line) ([]*botEntry, error) {
	out := make([]*botEntry, 0, len(lines))
	for _, l := range lines {
		b, err := parseBot(l.text)
		if err != nil {
			return nil, fmt.Errorf("data file %s line %d: %w", file, l.num, err)
		}
		out = append(out, b)
	}
	return out, nil
}

func botRegexp(what, pattern string) (*regexp.Regexp, error) {
	re, err := regexp.Compile("(?i)" + pattern)
	if err != nil {
		return nil, fmt.Errorf("invalid %s regexp %q: %w", what, pattern, err)
	}
	return re, nil
}

func parseBot(text string) (*botEntry, error) {
	b := &botEntry{}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(b); err != nil {
		return nil, fmt.Errorf("bad bot definition: %w", err)
	}
	if b.Name == "" {
		return nil, errors.New("bot definition without a name")
	}
	if len(b.IPs)+len(b.Ranges)+len(b.RDNS) == 0 {
		return nil, fmt.Errorf("bot %q has no identity check (need ips, ranges or rdns)", b.Name)
	}
	var err error
	if b.UserAgent != "" {
		if b.ua, err = botRegexp("user_agent", b.UserAgent); err != nil {
			return nil, fmt.Errorf("bot %q: %w", b.Name, err)
		}
	}
	for _, p := range b.Paths {
		re, err := botRegexp("path", p)
		if err != nil {
			return nil, fmt.Errorf("bot %q: %w", b.Name, err)
		}
		b.paths = append(b.paths, re)
	}
	b.ips = make(map[netip.Addr]struct{}, len(b.IPs))
	for _, s := range b.IPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("bot %q: invalid IP %q: %w", b.Name, s, err)
		}
		b.ips[a.Unmap()] = struct{}{}
	}
	for _, s := range b.Ranges {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("bot %q: invalid CIDR range %q: %w", b.Name, s, err)
		}
		b.ranges = append(b.ranges, p.Masked())
	}
	for _, p := range b.RDNS {
		if p == "" {
			// would accept any host with a confirmed PTR
			return nil, fmt.Errorf("bot %q: empty rdns pattern", b.Name)
		}
		re, err := botRegexp("rdns", p)
		if err != nil {
			return nil, fmt.Errorf("bot %q: %w", b.Name, err)
		}
		b.rdns = append(b.rdns, re)
	}
	return b, nil
}

// botAddr reads a source address as HTTP contexts give it: a bare
// address, "ip:port" or "[v6]:port"; the zone is dropped and a mapped
// IPv4 unmapped.
func botAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		host, _, serr := net.SplitHostPort(s)
		if serr != nil {
			return netip.Addr{}, false
		}
		if a, err = netip.ParseAddr(host); err != nil {
			return netip.Addr{}, false
		}
	}
	return a.WithZone("").Unmap(), true
}

func anyMatch(res []*regexp.Regexp, s string) bool {
	return slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(s) })
}

// MatchKnownBot reports whether a request from ip with User-Agent ua for
// path matches a bot of the named bots files. It never fails: a bad
// address, an unknown file or a DNS failure is no match. The DNS check
// runs last, once per call for all candidate entries, and its answer is
// cached per address.
func (h *Helpers) MatchKnownBot(ip, ua, path string, files ...string) bool {
	s := h.state.Load()
	if len(s.bots) == 0 || len(files) == 0 {
		return false
	}
	addr, ok := botAddr(ip)
	if !ok {
		log.WithField("ip", ip).Debug("MatchKnownBot: not an address")
		return false
	}
	var viaDNS []*botEntry
	for _, f := range files {
		entries, ok := s.bots[f]
		if !ok {
			log.WithField("file", f).Debug("MatchKnownBot: no such bots file loaded")
			continue
		}
		for _, b := range entries {
			if b.ua != nil && !b.ua.MatchString(ua) {
				continue
			}
			if len(b.paths) > 0 && !anyMatch(b.paths, path) {
				continue
			}
			if _, ok := b.ips[addr]; ok {
				return true
			}
			for _, p := range b.ranges {
				if p.Contains(addr) {
					return true
				}
			}
			if len(b.rdns) > 0 {
				viaDNS = append(viaDNS, b)
			}
		}
	}
	if len(viaDNS) == 0 {
		return false
	}
	for _, name := range h.confirmedNames(addr) {
		for _, b := range viaDNS {
			if anyMatch(b.rdns, name) {
				return true
			}
		}
	}
	return false
}

// confirmedNames are addr's PTR names (at most maxPTRNames, lower case,
// without the final dot) that resolve back to addr, through the bounded,
// cached lookups of the network helpers.
func (h *Helpers) confirmedNames(addr netip.Addr) []string {
	n := &h.ext().net
	v := n.cached("MatchKnownBot", "fcrdns\x00"+addr.String(), []string{}, func(ctx context.Context) (any, error) {
		ptrs, err := n.resolver.LookupAddr(ctx, addr.String())
		if err != nil {
			return notFoundIsEmpty(err)
		}
		var out []string
		for _, name := range ptrs[:min(len(ptrs), maxPTRNames)] {
			name = strings.TrimSuffix(strings.ToLower(name), ".")
			ips, err := n.resolver.LookupNetIP(ctx, "ip", name)
			if err != nil {
				var dnsErr *net.DNSError
				if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
					continue
				}
				return nil, err
			}
			if slices.ContainsFunc(ips, func(a netip.Addr) bool { return a.Unmap() == addr }) {
				out = append(out, name)
			}
		}
		return out, nil
	})
	names, _ := v.([]string)
	return names
}

// notFoundIsEmpty makes "no such name" an empty answer (an address
// without PTR is common, not a failure worth a warning).
func notFoundIsEmpty(err error) (any, error) {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return []string{}, nil
	}
	return nil, err
}

func (h *Helpers) botOptions() []expr.Option {
	return []expr.Option{
		expr.Function("MatchKnownBot", func(p ...any) (any, error) {
			return h.MatchKnownBot(str(p, 0), str(p, 1), str(p, 2), strs(p, 3)...), nil
		}, new(func(string, string, string, ...string) bool)),
	}
}
