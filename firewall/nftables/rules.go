package nftables

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/rampart-ips/rampart/firewall"
)

// Our rules carry a tag in their UserData: a type-length-value record of a
// type nft does not interpret (it shows no comment and lists the rule
// normally), holding "rampart:" and a fingerprint of the rule's content.
// The tag finds our rules after a restart, tells a stale rule (config
// changed) from a current one, and leaves every other rule alone.
const (
	tagType   = 0xd0
	tagPrefix = "rampart:"
)

// ICMP codes for "administratively prohibited". nft refuses the abstract
// icmpx type in ip and ip6 tables (and the kernel would drop silently), so
// REJECT uses the family's own type.
const (
	icmpAdminProhibited   = 13 // ICMP_PKT_FILTERED
	icmpv6AdminProhibited = 1  // ICMPV6_ADM_PROHIBITED
)

// ruleExprs is `ip saddr @set counter [log prefix "..."] drop|reject`.
func ruleExprs(c *Config, f *famSpec, set *nftables.Set) []expr.Any {
	off, l, code := uint32(12), uint32(4), uint8(icmpAdminProhibited)
	if f.id == firewall.IPv6 {
		off, l, code = 8, 16, icmpv6AdminProhibited
	}
	e := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
		&expr.Counter{},
	}
	if c.DenyLog {
		e = append(e, &expr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Data: []byte(c.DenyLogPrefix)})
	}
	if c.DenyAction == "REJECT" {
		e = append(e, &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: code})
	} else {
		e = append(e, &expr.Verdict{Kind: expr.VerdictDrop})
	}
	return e
}

// processedExprs is a bare `counter`: the first of our rules in every
// chain, it counts every packet that traverses the chain.
func processedExprs() []expr.Any { return []expr.Any{&expr.Counter{}} }

// processedTag fingerprints the counter rule.
func processedTag(f *famSpec) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "v1|processed|%d", f.id))
	v := append([]byte(tagPrefix), hex.EncodeToString(h[:8])...)
	return append([]byte{tagType, byte(len(v))}, v...)
}

// ruleTag fingerprints everything that shapes our rule matching set. ver
// tells the current layout's rules ("v2") from the older layout's ("v1"),
// whose range rule matched a set of the name the host set has now.
func ruleTag(c *Config, f *famSpec, set, ver string) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "%s|%d|%s|%s|%t|%q", ver, f.id, set, c.DenyAction, c.DenyLog, c.DenyLogPrefix))
	v := append([]byte(tagPrefix), hex.EncodeToString(h[:8])...)
	return append([]byte{tagType, byte(len(v))}, v...)
}

// banRule is one of our ban rules: the set it matches and its tag.
type banRule struct {
	set string
	tag []byte
}

// banRules are our ban rules of a chain, in order, for the family's
// layout: the older layout's rules first (they keep enforcing until
// migrate retires them), then the host rule, then the range rule.
func banRules(c *Config, f *famSpec) []banRule {
	l := f.lay
	var out []banRule
	if l.oldHosts {
		out = append(out, banRule{f.oldHostSet(), ruleTag(c, f, f.oldHostSet(), "v1")})
	}
	if l.oldRanges {
		out = append(out, banRule{f.cfg.Set, ruleTag(c, f, f.cfg.Set, "v1")})
	}
	if !l.oldHosts || l.hosts != f.oldHostSet() {
		out = append(out, banRule{l.hosts, ruleTag(c, f, l.hosts, "v2")})
	}
	return append(out, banRule{l.ranges, ruleTag(c, f, l.ranges, "v2")})
}

// findTagged returns the rule carrying tag, or nil.
func findTagged(rules []*nftables.Rule, tag []byte) *nftables.Rule {
	want, _ := tagOf(tag)
	for _, r := range rules {
		if got, ok := tagOf(r.UserData); ok && bytes.Equal(got, want) {
			return r
		}
	}
	return nil
}

// tagOf returns the value of our tag in a rule's UserData, if any. It
// never trusts the lengths it reads: other tools write UserData too.
func tagOf(ud []byte) ([]byte, bool) {
	for len(ud) >= 2 {
		typ, n := ud[0], int(ud[1])
		if len(ud) < 2+n {
			return nil, false
		}
		if typ == tagType && bytes.HasPrefix(ud[2:2+n], []byte(tagPrefix)) {
			return ud[2 : 2+n], true
		}
		ud = ud[2+n:]
	}
	return nil, false
}

// ours splits the rules of a chain into ours and the others'.
func ours(rules []*nftables.Rule) (mine, others []*nftables.Rule) {
	for _, r := range rules {
		if _, ok := tagOf(r.UserData); ok {
			mine = append(mine, r)
		} else {
			others = append(others, r)
		}
	}
	return mine, others
}

// sameBase reports whether an existing chain is the base chain we want.
func sameBase(ch *nftables.Chain, want chainSpec, prio int) bool {
	return ch.Hooknum != nil && *ch.Hooknum == want.hook &&
		ch.Priority != nil && int(*ch.Priority) == prio &&
		ch.Type == nftables.ChainTypeFilter
}
