package nftables

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/rampart-ips/rampart/firewall"
)

// Config says what the backend creates. The zero value of every field
// gets the upstream bouncer's default.
type Config struct {
	IPv4, IPv6    Family
	Hooks         []string // "input" (default), "forward", "prerouting"
	DenyAction    string   // "DROP" (default) or "REJECT", any case
	DenyLog       bool     // log matched packets before the verdict
	DenyLogPrefix string   // default "crowdsec drop: "
	NetNS         int      // network namespace fd to work in; 0 = the current one
}

// Family is the per-family part of Config.
type Family struct {
	Enabled bool
	// SetOnly manages only the two sets (Set and Set+RangeSetSuffix),
	// inside a table the administrator created and references from rules
	// of their own, which must match both sets: no table, chain or rule
	// of ours.
	SetOnly bool
	Table   string // default "crowdsec" / "crowdsec6"
	// Set names the hash set of single addresses, default
	// "crowdsec_blocklist" / "crowdsec6_blocklist", where an administrator
	// looks for a banned address; ranges go to an interval set named
	// Set+RangeSetSuffix.
	Set      string
	Chain    string // default "crowdsec_chain" / "crowdsec6_chain"; other hooks get "_<hook>"
	Priority int    // base chain priority, default 0
}

// RangeSetSuffix makes the name of a family's interval set of ranges from
// Family.Set.
const RangeSetSuffix = "_ranges"

// OldHostSetSuffix named the host set of older versions, which kept ranges
// in Set itself (an interval set). Ensure adopts that layout and Replace
// moves it to the current one (see layout).
const OldHostSetSuffix = "_ips"

// DefaultLogPrefix is the log prefix when DenyLog is set without one.
const DefaultLogPrefix = "crowdsec drop: "

var hookNums = map[string]nftables.ChainHook{
	"prerouting": unix.NF_INET_PRE_ROUTING,
	"input":      unix.NF_INET_LOCAL_IN,
	"forward":    unix.NF_INET_FORWARD,
}

// famSpec is a resolved family: names, kernel types and chains.
type famSpec struct {
	id      firewall.Family
	cfg     Family
	tfam    nftables.TableFamily
	keyType nftables.SetDatatype
	keyLen  int
	chains  []chainSpec
	procTag []byte // the UserData of our counter rule (processed traffic)
	lay     layout // which sets hold what, as Ensure found the kernel
}

// layout says which of our sets hold what. The current one keeps single
// addresses in Set (a hash set) and ranges in Set+"_ranges". Older versions
// kept ranges in Set (an interval set) and addresses in Set+"_ips"; the
// kernel cannot rename a set or change its type, so Ensure adopts such a
// layout as it is (its rules keep enforcing), adding the range set and its
// rule, and Replace, which knows the whole state, finishes the move without
// a gap (see migrate). In set-only mode the older layout is kept for good:
// the administrator's rules name its sets.
type layout struct {
	hosts, ranges string // the sets Apply and Replace fill
	oldRanges     bool   // Set is still the older interval set, with its rule
	oldHosts      bool   // Set+"_ips" still exists, with its rule
}

func (l layout) migrating() bool { return l.oldRanges || l.oldHosts }

type chainSpec struct {
	name string
	hook nftables.ChainHook
}

// ref names the interval set that takes ranges.
func (f *famSpec) ref() *setRef {
	return &setRef{family: byte(f.tfam), table: f.cfg.Table, set: f.lay.ranges, keyLen: f.keyLen}
}

// hostRef names the hash set that takes single addresses.
func (f *famSpec) hostRef() *setRef {
	return &setRef{family: byte(f.tfam), table: f.cfg.Table, set: f.lay.hosts, keyLen: f.keyLen}
}

func (f *famSpec) rangeSet() string   { return f.cfg.Set + RangeSetSuffix }
func (f *famSpec) oldHostSet() string { return f.cfg.Set + OldHostSetSuffix }

// current is the layout a fresh install gets.
func (f *famSpec) current() layout { return layout{hosts: f.cfg.Set, ranges: f.rangeSet()} }

func (f *famSpec) table() *nftables.Table {
	return &nftables.Table{Name: f.cfg.Table, Family: f.tfam}
}

func (f *famSpec) String() string { return fmt.Sprintf("ipv%d", f.id) }

// resolve fills in defaults and checks the configuration.
func (c Config) resolve() (Config, []*famSpec, error) {
	switch strings.ToUpper(c.DenyAction) {
	case "", "DROP":
		c.DenyAction = "DROP"
	case "REJECT":
		c.DenyAction = "REJECT"
	default:
		return c, nil, fmt.Errorf("deny action %q: must be DROP or REJECT", c.DenyAction)
	}
	if c.DenyLog && c.DenyLogPrefix == "" {
		c.DenyLogPrefix = DefaultLogPrefix
	}
	if len(c.DenyLogPrefix) > 127 {
		return c, nil, fmt.Errorf("deny log prefix %q: longer than 127 bytes", c.DenyLogPrefix)
	}
	if len(c.Hooks) == 0 {
		c.Hooks = []string{"input"}
	}
	hooks := make([]string, 0, len(c.Hooks))
	for _, h := range c.Hooks {
		h = strings.ToLower(h)
		if _, ok := hookNums[h]; !ok {
			return c, nil, fmt.Errorf("hook %q: must be input, forward or prerouting", h)
		}
		if slices.Contains(hooks, h) {
			return c, nil, fmt.Errorf("hook %q listed twice", h)
		}
		hooks = append(hooks, h)
	}
	c.Hooks = hooks
	if !c.IPv4.Enabled && !c.IPv6.Enabled {
		return c, nil, errors.New("both families are disabled")
	}
	var specs []*famSpec
	for _, f := range []struct {
		id                firewall.Family
		cfg               *Family
		table, set, chain string
		tfam              nftables.TableFamily
		keyType           nftables.SetDatatype
		keyLen            int
	}{
		{firewall.IPv4, &c.IPv4, "crowdsec", "crowdsec_blocklist", "crowdsec_chain", nftables.TableFamilyIPv4, nftables.TypeIPAddr, 4},
		{firewall.IPv6, &c.IPv6, "crowdsec6", "crowdsec6_blocklist", "crowdsec6_chain", nftables.TableFamilyIPv6, nftables.TypeIP6Addr, 16},
	} {
		fc := f.cfg
		if fc.Table == "" {
			fc.Table = f.table
		}
		if fc.Set == "" {
			fc.Set = f.set
		}
		if fc.Chain == "" {
			fc.Chain = f.chain
		}
		if !fc.Enabled {
			continue
		}
		for _, n := range []string{fc.Table, fc.Set + RangeSetSuffix, fc.Chain + "_prerouting"} {
			if len(n) > 255 || strings.ContainsRune(n, 0) {
				return c, nil, fmt.Errorf("ipv%d: name %q: too long or holds a NUL", f.id, n)
			}
		}
		spec := &famSpec{id: f.id, cfg: *fc, tfam: f.tfam, keyType: f.keyType, keyLen: f.keyLen}
		spec.lay = spec.current()
		if !fc.SetOnly {
			for _, h := range c.Hooks {
				name := fc.Chain
				if h != "input" {
					name += "_" + h
				}
				spec.chains = append(spec.chains, chainSpec{name: name, hook: hookNums[h]})
			}
		}
		specs = append(specs, spec)
	}
	return c, specs, nil
}

// proto is the nft keyword of the family's network header: ip or ip6.
func (f *famSpec) proto() string {
	if f.id == firewall.IPv6 {
		return "ip6"
	}
	return "ip"
}
