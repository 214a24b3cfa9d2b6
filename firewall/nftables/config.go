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
	// SetOnly manages only the two sets (Set and Set+"_ips"), inside a
	// table the administrator created and references from rules of their
	// own, which must match both sets: no table, chain or rule of ours.
	SetOnly bool
	Table   string // default "crowdsec" / "crowdsec6"
	// Set names the interval set of ranges, default "crowdsec_blocklist" /
	// "crowdsec6_blocklist"; single addresses go to a hash set named
	// Set+HostSetSuffix.
	Set      string
	Chain    string // default "crowdsec_chain" / "crowdsec6_chain"; other hooks get "_<hook>"
	Priority int    // base chain priority, default 0
}

// HostSetSuffix makes the name of a family's host set from Family.Set.
const HostSetSuffix = "_ips"

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
	tag     []byte // the UserData of our range rule, fingerprinting its content
	hostTag []byte // the UserData of our host rule
	procTag []byte // the UserData of our counter rule (processed traffic)
}

type chainSpec struct {
	name string
	hook nftables.ChainHook
}

// ref names the interval set of ranges.
func (f *famSpec) ref() *setRef {
	return &setRef{family: byte(f.tfam), table: f.cfg.Table, set: f.cfg.Set, keyLen: f.keyLen}
}

// hostRef names the hash set of single addresses.
func (f *famSpec) hostRef() *setRef {
	return &setRef{family: byte(f.tfam), table: f.cfg.Table, set: f.hostSet(), keyLen: f.keyLen}
}

func (f *famSpec) hostSet() string { return f.cfg.Set + HostSetSuffix }

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
		for _, n := range []string{fc.Table, fc.Set + HostSetSuffix, fc.Chain + "_prerouting"} {
			if len(n) > 255 || strings.ContainsRune(n, 0) {
				return c, nil, fmt.Errorf("ipv%d: name %q: too long or holds a NUL", f.id, n)
			}
		}
		spec := &famSpec{id: f.id, cfg: *fc, tfam: f.tfam, keyType: f.keyType, keyLen: f.keyLen}
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
