// Package iptables enforces bans with ipset: in "iptables" mode it also
// owns iptables/ip6tables rules that drop traffic from the sets' members;
// in "ipset" mode it only fills sets that the administrator's own firewall
// references. Sets are created and filled through netlink (many elements
// per message, no exec of ipset); rules go through the iptables binaries.
//
// It must never touch an object it does not own, destroy a set it can
// reuse, leave a gap for an address that stays banned, or silently drop
// elements: a set that would overflow its maxelem is rebuilt bigger and
// swapped in atomically.
package iptables

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goipt "github.com/coreos/go-iptables/iptables"
	"github.com/rampart-ips/rampart/firewall"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Modes.
const (
	ModeIPTables = "iptables" // ipset sets plus iptables rules
	ModeIPSet    = "ipset"    // sets only; the administrator's rules use them
)

// Defaults and names.
const (
	DefaultSetV4     = "crowdsec-blacklists"
	DefaultSetV6     = "crowdsec6-blacklists"
	DefaultSetSize   = 131072
	DefaultLogPrefix = "crowdsec drop: "

	// Chain holds the match-set rule; each configured chain jumps to it.
	Chain = "CROWDSEC_CHAIN"
	// LogChain logs then denies, when deny logging is on.
	LogChain = "CROWDSEC_LOG"

	// MaxTimeout is the longest element timeout the kernel keeps: ipset
	// stores timeouts in milliseconds in jiffies-sized fields, and caps
	// them at (2^32-1)/2/1000 seconds (about 24.8 days).
	MaxTimeout = 2147483 * time.Second

	table             = "filter"
	setType           = "hash:net"
	defaultSetTimeout = 300 // seconds; elements always carry their own
	maxLogPrefix      = 29  // the kernel's LOG prefix is 29 characters plus NUL
	maxMaxelem        = 1 << 30
)

// Config selects what the backend manages. The zero value of a field
// means its default, except IPv4 and IPv6, at least one of which must be
// true.
type Config struct {
	Mode          string   // "iptables" or "ipset"
	IPv4, IPv6    bool     // families enabled
	SetV4, SetV6  string   // default "crowdsec-blacklists", "crowdsec6-blacklists"
	Chains        []string // default ["INPUT"]; also FORWARD, DOCKER-USER
	DenyAction    string   // DROP (default), REJECT, TARPIT
	DenyLog       bool     // log before denying, through CROWDSEC_LOG
	DenyLogPrefix string   // default "crowdsec drop: "
	SetSize       int      // initial maxelem; default 131072, grown automatically
	NetNS         int      // network namespace fd to work in; 0 = current
	Log           logrus.FieldLogger
}

// Backend is one ipset (and, in iptables mode, iptables) firewall. Its
// methods may be called from several goroutines; changes are serialised.
type Backend struct {
	cfg    Config
	log    logrus.FieldLogger
	ns     netns.NsHandle // netns.None() for the current one
	nl     *conn
	fams   []*family
	mu     sync.Mutex // serialises Ensure, Apply, Replace and Flush
	capped atomic.Bool
	closed atomic.Bool
	// actionLogged: the deny action is said once, by the first Ensure,
	// so a backend built only to remove another mode's objects says nothing.
	actionLogged bool
}

// family is one address family's set and rules.
type family struct {
	fam      firewall.Family
	af       uint8 // unix.AF_INET or AF_INET6, which ipset calls NFPROTO_*
	set      string
	ipt      *goipt.IPTables // nil in ipset mode
	rev      uint8           // hash:net revision the kernel offers; 0 until asked
	created  bool            // this Backend created the set
	timeouts bool            // the set takes per-element timeouts
	adopted  bool            // adoption was logged

	// Capacity bookkeeping, so that Apply stays O(delta): maxelem as last
	// seen and an upper bound of the element count (adds are counted,
	// deletes and expiries are not). Only when the bound says an Apply
	// might not fit is the kernel asked for the real count.
	maxelem uint32
	bound   int

	// Set by Ensure, read by Intact.
	canonMu sync.Mutex
	canon   map[string][]string // owned chain -> its rules as iptables -S printed them
	absent  map[string]bool     // configured chains missing at the last Ensure (logged once)
}

var _ firewall.Backend = (*Backend)(nil)

// New checks cfg and opens a netlink socket in the configured namespace.
// It changes nothing in the kernel; Ensure does.
func New(cfg Config) (*Backend, error) {
	cfg, err := normalize(cfg)
	if err != nil {
		return nil, err
	}
	b := &Backend{cfg: cfg, log: cfg.Log, ns: netns.None()}
	if cfg.NetNS != 0 {
		b.ns = netns.NsHandle(cfg.NetNS)
	}
	b.log = b.log.WithField("backend", cfg.Mode)
	add := func(fam firewall.Family, af uint8, set string, proto goipt.Protocol) error {
		f := &family{fam: fam, af: af, set: set, absent: map[string]bool{}}
		if cfg.Mode == ModeIPTables {
			ipt, err := goipt.New(goipt.IPFamily(proto), goipt.Timeout(10))
			if err != nil {
				return fmt.Errorf("iptables mode needs the %s binary: %w", iptBinary(fam), err)
			}
			f.ipt = ipt
		}
		b.fams = append(b.fams, f)
		return nil
	}
	if cfg.IPv4 {
		if err := add(firewall.IPv4, unix.AF_INET, cfg.SetV4, goipt.ProtocolIPv4); err != nil {
			return nil, err
		}
	}
	if cfg.IPv6 {
		if err := add(firewall.IPv6, unix.AF_INET6, cfg.SetV6, goipt.ProtocolIPv6); err != nil {
			return nil, err
		}
	}
	if b.nl, err = dial(b.ns); err != nil {
		return nil, err
	}
	return b, nil
}

func iptBinary(fam firewall.Family) string {
	if fam == firewall.IPv6 {
		return "ip6tables"
	}
	return "iptables"
}

func normalize(cfg Config) (Config, error) {
	cfg.Mode = strings.ToLower(strings.TrimSpace(cfg.Mode))
	if cfg.Mode != ModeIPTables && cfg.Mode != ModeIPSet {
		return cfg, fmt.Errorf("iptables backend: mode %q is neither %q nor %q", cfg.Mode, ModeIPTables, ModeIPSet)
	}
	if !cfg.IPv4 && !cfg.IPv6 {
		return cfg, errors.New("iptables backend: both IPv4 and IPv6 are disabled")
	}
	if cfg.SetV4 == "" {
		cfg.SetV4 = DefaultSetV4
	}
	if cfg.SetV6 == "" {
		cfg.SetV6 = DefaultSetV6
	}
	for _, s := range []string{cfg.SetV4, cfg.SetV6} {
		if len(s) > ipsetMaxNameLen || strings.ContainsAny(s, " \t\n\x00") {
			return cfg, fmt.Errorf("iptables backend: set name %q: at most %d characters, no blanks", s, ipsetMaxNameLen)
		}
	}
	if cfg.IPv4 && cfg.IPv6 && cfg.SetV4 == cfg.SetV6 {
		return cfg, fmt.Errorf("iptables backend: IPv4 and IPv6 sets are both named %q", cfg.SetV4)
	}
	if len(cfg.Chains) == 0 {
		cfg.Chains = []string{"INPUT"}
	}
	seen := map[string]bool{}
	var chains []string
	for _, c := range cfg.Chains {
		c = strings.TrimSpace(c)
		if c == "" || strings.ContainsAny(c, " \t\n") || c == Chain || c == LogChain {
			return cfg, fmt.Errorf("iptables backend: invalid chain %q", c)
		}
		if !seen[c] {
			seen[c] = true
			chains = append(chains, c)
		}
	}
	cfg.Chains = chains
	cfg.DenyAction = strings.ToUpper(strings.TrimSpace(cfg.DenyAction))
	switch cfg.DenyAction {
	case "":
		cfg.DenyAction = "DROP"
	case "DROP", "REJECT", "TARPIT":
	default:
		return cfg, fmt.Errorf("iptables backend: invalid deny action %q, must be one of DROP, REJECT, TARPIT", cfg.DenyAction)
	}
	if cfg.DenyLogPrefix == "" {
		cfg.DenyLogPrefix = DefaultLogPrefix
	}
	if len(cfg.DenyLogPrefix) > maxLogPrefix {
		return cfg, fmt.Errorf("iptables backend: deny log prefix %q is longer than %d characters", cfg.DenyLogPrefix, maxLogPrefix)
	}
	switch {
	case cfg.SetSize == 0:
		cfg.SetSize = DefaultSetSize
	case cfg.SetSize < 0 || cfg.SetSize > maxMaxelem:
		return cfg, fmt.Errorf("iptables backend: set size %d out of range 1..%d", cfg.SetSize, maxMaxelem)
	}
	if cfg.NetNS < 0 {
		return cfg, fmt.Errorf("iptables backend: invalid netns fd %d", cfg.NetNS)
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	return cfg, nil
}

// Name is "iptables" or "ipset".
func (b *Backend) Name() string { return b.cfg.Mode }

func (b *Backend) check(ctx context.Context) error {
	if b.closed.Load() {
		return errors.New("iptables backend: closed")
	}
	return ctx.Err()
}

// Ensure makes the sets exist (adopting sets of our names that a previous
// run left, never recreating them) and, in iptables mode, CROWDSEC_CHAIN
// with its one rule, CROWDSEC_LOG if deny logging is on, and one jump from
// each configured chain that exists. A family that fails does not stop the
// other; the errors are joined.
func (b *Backend) Ensure(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(ctx); err != nil {
		return err
	}
	if !b.actionLogged && b.cfg.Mode == ModeIPTables {
		b.log.Infof("using %q as deny action", b.cfg.DenyAction)
		b.actionLogged = true
	}
	var errs []error
	for _, f := range b.fams {
		if err := b.ensureSet(ctx, f); err != nil {
			errs = append(errs, err)
			continue
		}
		if f.ipt != nil {
			if err := b.ensureRules(ctx, f); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Apply deletes dels, then adds adds with their timeouts (refreshing those
// already present), family by family. An element in both lists is never
// removed, not even for a moment. If the adds would overflow a set's
// maxelem, the set is first rebuilt bigger and swapped in. Elements of a
// disabled family are ignored; for duplicates in adds the last one wins.
// Invalid prefixes and elements the kernel refuses are reported in the
// error after everything else has been applied.
func (b *Backend) Apply(ctx context.Context, adds []firewall.Element, dels []netip.Prefix) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(ctx); err != nil {
		return err
	}
	errs := []error{invalidPrefixes(adds, dels)}
	for _, f := range b.fams {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if err := b.applyFamily(ctx, f, adds, dels); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Replace makes the sets hold exactly want: it lists each set once, adds
// (refreshing timeouts) every wanted element, then deletes the rest, so a
// wanted element that is present stays enforced throughout. If the result
// would not fit, a new set holding want is built and swapped in instead.
func (b *Backend) Replace(ctx context.Context, want []firewall.Element) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(ctx); err != nil {
		return err
	}
	errs := []error{invalidPrefixes(want, nil)}
	for _, f := range b.fams {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if err := b.replaceFamily(ctx, f, want); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Intact reports whether every set exists and, in iptables mode, whether
// CROWDSEC_CHAIN (and CROWDSEC_LOG) still hold exactly the rules Ensure
// left and every configured chain that exists jumps to CROWDSEC_CHAIN. It
// reads set headers and our chains only, never set members: a couple of
// netlink requests and 1+len(Chains) iptables runs per family.
func (b *Backend) Intact(ctx context.Context) (bool, error) {
	if err := b.check(ctx); err != nil {
		return false, err
	}
	for _, f := range b.fams {
		if ok, err := b.nl.exists(f.set); !ok || err != nil {
			return false, err
		}
		if f.ipt == nil {
			continue
		}
		ok, err := b.rulesIntact(ctx, f)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// Counters returns, per enabled family, the packets and bytes matched by
// the match-set rule of CROWDSEC_CHAIN, read from `iptables -v -S` of that
// chain alone. In ipset mode there are no rules of ours and the map is
// empty.
func (b *Backend) Counters(ctx context.Context) (map[firewall.Family]firewall.Counter, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	out := map[firewall.Family]firewall.Counter{}
	for _, f := range b.fams {
		if f.ipt == nil {
			continue
		}
		c, err := b.counters(f)
		if err != nil {
			return nil, err
		}
		out[f.fam] = c
	}
	return out, nil
}

// TrafficCounters returns what Counters returns and, per family, the
// packets and bytes that entered CROWDSEC_CHAIN: the counters of our jumps
// in the configured chains. Neither reads a set.
func (b *Backend) TrafficCounters(ctx context.Context) (dropped, processed map[firewall.Family]firewall.Counter, err error) {
	if err := b.check(ctx); err != nil {
		return nil, nil, err
	}
	dropped, processed = map[firewall.Family]firewall.Counter{}, map[firewall.Family]firewall.Counter{}
	for _, f := range b.fams {
		if f.ipt == nil {
			continue
		}
		d, err := b.counters(f)
		if err != nil {
			return nil, nil, err
		}
		p, err := b.jumpCounters(f)
		if err != nil {
			return nil, nil, err
		}
		dropped[f.fam], processed[f.fam] = d, p
	}
	return dropped, processed, nil
}

// Flush removes what the backend owns. In iptables mode: every jump to
// CROWDSEC_CHAIN, CROWDSEC_CHAIN, CROWDSEC_LOG and the sets. In ipset mode
// the administrator's rules reference the sets, so a set is destroyed only
// if this Backend created it and nothing references it; otherwise it is
// only emptied. A set that something else still references is emptied.
func (b *Backend) Flush(ctx context.Context) error {
	return b.flush(ctx, true)
}

// flush removes our rules and, with sets, our sets, family by family.
func (b *Backend) flush(ctx context.Context, sets bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(ctx); err != nil {
		return err
	}
	var errs []error
	for _, f := range b.fams {
		if f.ipt != nil {
			if err := b.flushRules(f); err != nil {
				errs = append(errs, err)
				continue // the set is still referenced
			}
		}
		if !sets {
			continue
		}
		if err := b.flushSet(f); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close releases the netlink socket; kernel objects stay.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	return b.nl.close()
}

// FlushRules removes the iptables side only (jumps, CROWDSEC_CHAIN,
// CROWDSEC_LOG) and keeps the sets: what switching to ipset mode needs.
func (b *Backend) FlushRules(ctx context.Context) error {
	return b.flush(ctx, false)
}
