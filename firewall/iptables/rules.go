package iptables

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	goipt "github.com/coreos/go-iptables/iptables"
	"github.com/rampart-ips/rampart/firewall"
)

// rules returns the rules CROWDSEC_CHAIN and CROWDSEC_LOG must hold.
func (b *Backend) rules(f *family) (main, log [][]string) {
	var target []string
	switch b.cfg.DenyAction {
	case "REJECT":
		with := "icmp-port-unreachable"
		if f.fam == firewall.IPv6 {
			with = "icmp6-port-unreachable"
		}
		target = []string{"-j", "REJECT", "--reject-with", with}
	default:
		target = []string{"-j", b.cfg.DenyAction}
	}
	match := []string{"-m", "set", "--match-set", f.set, "src"}
	if !b.cfg.DenyLog {
		return [][]string{append(match, target...)}, nil
	}
	return [][]string{append(match, "-j", LogChain)},
		[][]string{{"-j", "LOG", "--log-prefix", b.cfg.DenyLogPrefix}, target}
}

// inNS runs fn with the family's iptables handle inside the backend's
// namespace, so that the binaries it executes work there.
func (b *Backend) iptables(f *family, fn func(ipt *goipt.IPTables) error) error {
	return inNS(b.ns, func() error { return fn(f.ipt) })
}

// ensureRules makes the family's chains and jumps exist exactly once.
// Repairs are gap-free: correct rules are inserted on top before wrong or
// duplicate ones are deleted.
func (b *Backend) ensureRules(ctx context.Context, f *family) error {
	main, logRules := b.rules(f)
	canon := map[string][]string{}
	err := b.iptables(f, func(ipt *goipt.IPTables) error {
		if b.cfg.DenyLog {
			if err := syncChain(ipt, LogChain, logRules); err != nil {
				return err
			}
		}
		if err := syncChain(ipt, Chain, main); err != nil {
			return err
		}
		if !b.cfg.DenyLog {
			// Left by a run with deny logging on; nothing jumps to it now.
			if err := ipt.ClearAndDeleteChain(table, LogChain); err != nil {
				return fmt.Errorf("remove %s: %w", LogChain, err)
			}
		}
		for _, c := range b.cfg.Chains {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := b.ensureJump(ipt, f, c); err != nil {
				return err
			}
		}
		for _, c := range []string{Chain, LogChain} {
			if c == LogChain && !b.cfg.DenyLog {
				continue
			}
			lines, err := ipt.List(table, c)
			if err != nil {
				return fmt.Errorf("list %s: %w", c, err)
			}
			canon[c] = lines
		}
		return nil
	})
	if err != nil {
		if b.cfg.DenyAction == "TARPIT" && strings.Contains(err.Error(), "TARPIT") {
			err = fmt.Errorf("deny action TARPIT needs the TARPIT target, which %s lacks (it comes with xtables-addons): %w", iptBinary(f.fam), err)
		}
		return fmt.Errorf("%s: %w", iptBinary(f.fam), err)
	}
	f.canonMu.Lock()
	f.canon = canon
	f.canonMu.Unlock()
	return nil
}

// syncChain makes chain exist and hold exactly want, in order.
func syncChain(ipt *goipt.IPTables, chain string, want [][]string) error {
	exists, err := ipt.ChainExists(table, chain)
	if err != nil {
		return fmt.Errorf("check chain %s: %w", chain, err)
	}
	if !exists {
		if err := ipt.NewChain(table, chain); err != nil {
			return fmt.Errorf("create chain %s: %w", chain, err)
		}
		for _, r := range want {
			if err := ipt.Append(table, chain, r...); err != nil {
				return fmt.Errorf("append %q to %s: %w", strings.Join(r, " "), chain, err)
			}
		}
		return nil
	}
	lines, err := ipt.List(table, chain)
	if err != nil {
		return fmt.Errorf("list %s: %w", chain, err)
	}
	have := ruleLines(lines)
	ok := len(have) == len(want)
	for i := 0; ok && i < len(want); i++ {
		if ok, err = ipt.Exists(table, chain, want[i]...); err != nil {
			return fmt.Errorf("check %q in %s: %w", strings.Join(want[i], " "), chain, err)
		}
		// -C ignores order; the first rule must be the first wanted.
		ok = ok && strings.Contains(have[i]+" ", " "+strings.Join(want[i][:2], " ")+" ")
	}
	if ok {
		return nil
	}
	for i, r := range want {
		if err := ipt.Insert(table, chain, i+1, r...); err != nil {
			return fmt.Errorf("insert %q in %s: %w", strings.Join(r, " "), chain, err)
		}
	}
	for range have {
		if err := ipt.DeleteById(table, chain, len(want)+1); err != nil {
			return fmt.Errorf("delete stale rule of %s: %w", chain, err)
		}
	}
	return nil
}

// ruleLines keeps the rules ("-A ...") of an `iptables -S chain` listing.
func ruleLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-A ") {
			out = append(out, l)
		}
	}
	return out
}

// jumpIDs returns the 1-based positions of jumps to CROWDSEC_CHAIN in the
// listing of chain.
func jumpIDs(chain string, lines []string) []int {
	jump := "-A " + chain + " -j " + Chain
	var ids []int
	for i, l := range ruleLines(lines) {
		if l == jump {
			ids = append(ids, i+1)
		}
	}
	return ids
}

// ensureJump puts one jump to CROWDSEC_CHAIN first in chain, if chain
// exists and has none, and removes duplicates. An existing jump elsewhere
// in the chain is left where the administrator moved it.
func (b *Backend) ensureJump(ipt *goipt.IPTables, f *family, chain string) error {
	exists, err := ipt.ChainExists(table, chain)
	if err != nil {
		return fmt.Errorf("check chain %s: %w", chain, err)
	}
	if !exists {
		if !f.absent[chain] {
			f.absent[chain] = true
			b.log.Warnf("%s: chain %s does not exist: no jump to %s there until it does (Intact reports it once it appears)", iptBinary(f.fam), chain, Chain)
		}
		return nil
	}
	delete(f.absent, chain)
	lines, err := ipt.List(table, chain)
	if err != nil {
		return fmt.Errorf("list %s: %w", chain, err)
	}
	ids := jumpIDs(chain, lines)
	if len(ids) == 0 {
		if err := ipt.Insert(table, chain, 1, "-j", Chain); err != nil {
			return fmt.Errorf("insert jump to %s in %s: %w", Chain, chain, err)
		}
		return nil
	}
	for i := len(ids) - 1; i > 0; i-- {
		if err := ipt.DeleteById(table, chain, ids[i]); err != nil {
			return fmt.Errorf("delete duplicate jump to %s in %s: %w", Chain, chain, err)
		}
	}
	return nil
}

// rulesIntact compares our chains with what Ensure left and checks the
// jumps.
func (b *Backend) rulesIntact(ctx context.Context, f *family) (bool, error) {
	f.canonMu.Lock()
	canon := f.canon
	f.canonMu.Unlock()
	if canon == nil {
		return false, nil // never ensured, or flushed
	}
	ok := true
	err := b.iptables(f, func(ipt *goipt.IPTables) error {
		for chain, want := range canon {
			lines, err := ipt.List(table, chain)
			if err != nil {
				if exists, cerr := ipt.ChainExists(table, chain); cerr == nil && !exists {
					ok = false
					return nil
				}
				return fmt.Errorf("list %s: %w", chain, err)
			}
			if !slices.Equal(lines, want) {
				ok = false
				return nil
			}
		}
		for _, c := range b.cfg.Chains {
			if err := ctx.Err(); err != nil {
				return err
			}
			has, err := ipt.Exists(table, c, "-j", Chain)
			if err != nil {
				return fmt.Errorf("check jump in %s: %w", c, err)
			}
			if has {
				continue
			}
			// No jump: fine only if the chain itself is absent.
			exists, err := ipt.ChainExists(table, c)
			if err != nil {
				return fmt.Errorf("check chain %s: %w", c, err)
			}
			if exists {
				ok = false
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("%s: %w", iptBinary(f.fam), err)
	}
	return ok, nil
}

// counters reads the match-set rule's counters from `-v -S CROWDSEC_CHAIN`.
func (b *Backend) counters(f *family) (firewall.Counter, error) {
	var lines []string
	err := b.iptables(f, func(ipt *goipt.IPTables) error {
		var err error
		lines, err = ipt.ListWithCounters(table, Chain)
		return err
	})
	if err != nil {
		return firewall.Counter{}, fmt.Errorf("%s: counters of %s: %w", iptBinary(f.fam), Chain, err)
	}
	var c firewall.Counter
	match := " --match-set " + f.set + " src "
	for _, l := range ruleLines(lines) {
		if !strings.Contains(l+" ", match) {
			continue
		}
		p, by, ok := parseCounters(l)
		if !ok {
			return c, fmt.Errorf("%s: no counters in %q", iptBinary(f.fam), l)
		}
		c.Packets += p
		c.Bytes += by
	}
	return c, nil
}

// jumpCounters sums the counters of our jumps to CROWDSEC_CHAIN in the
// configured chains (a chain that does not exist counts nothing).
func (b *Backend) jumpCounters(f *family) (firewall.Counter, error) {
	var c firewall.Counter
	err := b.iptables(f, func(ipt *goipt.IPTables) error {
		for _, chain := range b.cfg.Chains {
			exists, err := ipt.ChainExists(table, chain)
			if err != nil || !exists {
				continue
			}
			lines, err := ipt.ListWithCounters(table, chain)
			if err != nil {
				return fmt.Errorf("counters of %s: %w", chain, err)
			}
			for _, l := range ruleLines(lines) {
				p, by, ok := parseCounters(l)
				if ok && isJump(chain, l) {
					c.Packets += p
					c.Bytes += by
				}
			}
		}
		return nil
	})
	if err != nil {
		return firewall.Counter{}, fmt.Errorf("%s: %w", iptBinary(f.fam), err)
	}
	return c, nil
}

// isJump reports whether a `-v -S` line is a plain jump to CROWDSEC_CHAIN
// in chain, whatever its counters.
func isJump(chain, line string) bool {
	fs := strings.Fields(line)
	var kept []string
	for i := 0; i < len(fs); i++ {
		if fs[i] == "-c" && i+2 < len(fs) {
			i += 2
			continue
		}
		kept = append(kept, fs[i])
	}
	return strings.Join(kept, " ") == "-A "+chain+" -j "+Chain
}

// parseCounters finds "-c PACKETS BYTES" in a rule printed by `-v -S`.
func parseCounters(line string) (packets, bytes uint64, ok bool) {
	fs := strings.Fields(line)
	for i := 0; i+2 < len(fs); i++ {
		if fs[i] != "-c" {
			continue
		}
		p, err1 := strconv.ParseUint(fs[i+1], 10, 64)
		b, err2 := strconv.ParseUint(fs[i+2], 10, 64)
		if err1 == nil && err2 == nil {
			return p, b, true
		}
	}
	return 0, 0, false
}

// flushRules removes every jump to CROWDSEC_CHAIN, then CROWDSEC_CHAIN
// and CROWDSEC_LOG. Other rules and chains are left alone.
func (b *Backend) flushRules(f *family) error {
	err := b.iptables(f, func(ipt *goipt.IPTables) error {
		chains, err := ipt.ListChains(table)
		if err != nil {
			return fmt.Errorf("list chains: %w", err)
		}
		var errs []error
		for _, c := range chains {
			if c == Chain || c == LogChain {
				continue
			}
			lines, err := ipt.List(table, c)
			if err != nil {
				errs = append(errs, fmt.Errorf("list %s: %w", c, err))
				continue
			}
			ids := jumpIDs(c, lines)
			for i := len(ids) - 1; i >= 0; i-- {
				if err := ipt.DeleteById(table, c, ids[i]); err != nil {
					errs = append(errs, fmt.Errorf("delete jump to %s in %s: %w", Chain, c, err))
				}
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		for _, c := range []string{Chain, LogChain} {
			if err := ipt.ClearAndDeleteChain(table, c); err != nil {
				return fmt.Errorf("delete chain %s: %w", c, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", iptBinary(f.fam), err)
	}
	f.canonMu.Lock()
	f.canon = nil
	f.canonMu.Unlock()
	return nil
}
