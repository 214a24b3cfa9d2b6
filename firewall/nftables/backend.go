package nftables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/rampart-ips/rampart/firewall"
)

var _ firewall.Backend = (*Backend)(nil)

// Backend enforces bans with nftables. Its methods are safe for concurrent
// use; they run one at a time.
type Backend struct {
	cfg   Config
	specs []*famSpec

	mu     sync.Mutex
	nft    *nftables.Conn // tables, chains, rules, sets
	el     *conn          // set elements
	v4     *elems[ip4]
	v6     *elems[ip6]
	epoch  time.Time
	now    func() time.Time
	closed bool

	// txnBytes bounds one transaction of a large Apply. The kernel's
	// interval set costs O(set size) per committed transaction on Linux
	// 6.18, so few large transactions beat many small ones by far.
	txnBytes int
	// Deletes use "destroy" (absent elements are ignored) where the kernel
	// has it; otherwise plain deletes, one message per element, and the
	// absent ones are dropped from a failed transaction before one retry.
	delProbed, legacyDel bool

	ignoredDisabled, ignoredInvalid uint64
}

// elems is one family's share of the element work.
type elems[A addr[A]] struct {
	spec      *famSpec
	m         *model[A] // nil until Ensure has made the set exist
	tainted   bool      // a transaction failed: the model may differ from the kernel
	lastSweep uint32
}

// defaultTxnBytes is about 600k IPv4 intervals.
const defaultTxnBytes = 32 << 20

// maxTimeout bounds element timeouts (the model counts seconds in 32 bits).
const maxTimeout = 10 * 365 * 24 * time.Hour

// Stats are counts a caller may log or export.
type Stats struct {
	// Elements is the number of elements (addresses and ranges) per family
	// as last set by Apply and Replace, without reading the kernel.
	Elements map[firewall.Family]int
	// IgnoredDisabled counts elements of a disabled family that Apply and
	// Replace skipped.
	IgnoredDisabled uint64
	// IgnoredInvalid counts elements skipped for an invalid prefix or a
	// timeout that is not positive.
	IgnoredInvalid uint64
}

// New checks cfg and opens the netlink sockets. It creates nothing in the
// kernel: Ensure does.
func New(cfg Config) (*Backend, error) {
	cfg, specs, err := cfg.resolve()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if cfg.NetNS != 0 {
		opts = append(opts, nftables.WithNetNSFd(cfg.NetNS))
	}
	nft, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: open netlink socket: %w", err)
	}
	el, err := dial(cfg.NetNS)
	if err != nil {
		_ = nft.CloseLasting()
		return nil, fmt.Errorf("nftables: %w", err)
	}
	b := &Backend{cfg: cfg, specs: specs, nft: nft, el: el, epoch: time.Now(), now: time.Now, txnBytes: defaultTxnBytes}
	for _, s := range specs {
		s.tag = ruleTag(&b.cfg, s)
		if s.id == firewall.IPv4 {
			b.v4 = &elems[ip4]{spec: s}
		} else {
			b.v6 = &elems[ip6]{spec: s}
		}
	}
	return b, nil
}

// Name is "nftables".
func (b *Backend) Name() string { return "nftables" }

// Close releases the netlink sockets; kernel objects stay.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return errors.Join(b.nft.CloseLasting(), b.el.close())
}

// Stats returns the backend's counters.
func (b *Backend) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Stats{Elements: map[firewall.Family]int{}, IgnoredDisabled: b.ignoredDisabled, IgnoredInvalid: b.ignoredInvalid}
	if b.v4 != nil && b.v4.m != nil {
		s.Elements[firewall.IPv4] = b.v4.m.size()
	}
	if b.v6 != nil && b.v6.m != nil {
		s.Elements[firewall.IPv6] = b.v6.m.size()
	}
	return s
}

func (b *Backend) lock() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errors.New("nftables: backend is closed")
	}
	return nil
}

// Ensure makes the table, set, chains and rules exist exactly once per
// enabled family, adopting what a previous run left: a rule of ours with
// an outdated content is replaced in place, duplicates are deleted, and a
// chain with the wrong hook or priority is recreated, all in one
// transaction per family. It never removes set elements. In set-only mode
// it only creates the set, in a table that must exist.
func (b *Backend) Ensure(ctx context.Context) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	for _, f := range b.specs {
		if err := ctx.Err(); err != nil {
			return err
		}
		created, err := b.ensureFamily(f)
		if err != nil {
			return fmt.Errorf("nftables: ensure %s: %w", f, err)
		}
		// A set we just created is empty, so the model is exact; a set
		// we adopted holds what it holds until Replace.
		if f.id == firewall.IPv4 {
			b.v4.ensured(created)
		} else {
			b.v6.ensured(created)
		}
	}
	return nil
}

func (e *elems[A]) ensured(created bool) {
	if created || e.m == nil {
		e.m = newModel[A](0)
		e.tainted = false
	}
}

func (b *Backend) tableExists(f *famSpec) (bool, error) {
	tables, err := b.nft.ListTablesOfFamily(f.tfam)
	if err != nil {
		return false, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == f.cfg.Table {
			return true, nil
		}
	}
	return false, nil
}

func (b *Backend) findSet(f *famSpec) (*nftables.Set, []*nftables.Set, error) {
	sets, err := b.nft.GetSets(f.table())
	if err != nil {
		return nil, nil, fmt.Errorf("list sets of table %s: %w", f.cfg.Table, err)
	}
	for _, s := range sets {
		if s.Name == f.cfg.Set {
			s.Table = f.table()
			return s, sets, nil
		}
	}
	return nil, sets, nil
}

func setShapeOK(f *famSpec, s *nftables.Set) bool {
	return s.Interval && s.HasTimeout && !s.IsMap && s.KeyType.Name == f.keyType.Name
}

func (b *Backend) chainsOf(f *famSpec) ([]*nftables.Chain, error) {
	all, err := b.nft.ListChainsOfTableFamily(f.tfam)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	var out []*nftables.Chain
	for _, c := range all {
		if c.Table != nil && c.Table.Name == f.cfg.Table {
			c.Table = f.table()
			out = append(out, c)
		}
	}
	return out, nil
}

func findChain(chains []*nftables.Chain, name string) *nftables.Chain {
	for _, c := range chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (b *Backend) ensureFamily(f *famSpec) (created bool, err error) {
	c := b.nft
	t := f.table()
	exists, err := b.tableExists(f)
	if err != nil {
		return false, err
	}
	if !exists {
		if f.cfg.SetOnly {
			return false, fmt.Errorf("set-only: table %s does not exist; create it first", t.Name)
		}
		c.AddTable(t)
	}
	var set *nftables.Set
	if exists {
		if set, _, err = b.findSet(f); err != nil {
			return false, err
		}
	}
	if set != nil {
		if !setShapeOK(f, set) {
			return false, fmt.Errorf("set %s exists with another type or flags (want %s, flags interval,timeout): delete it or configure another name", f.cfg.Set, f.keyType.Name)
		}
	} else {
		set = &nftables.Set{Table: t, Name: f.cfg.Set, KeyType: f.keyType, Interval: true, HasTimeout: true}
		if err := c.AddSet(set, nil); err != nil {
			return false, fmt.Errorf("add set %s: %w", f.cfg.Set, err)
		}
		created = true
	}
	if !f.cfg.SetOnly {
		var chains []*nftables.Chain
		if exists {
			if chains, err = b.chainsOf(f); err != nil {
				return false, err
			}
		}
		for _, cs := range f.chains {
			if err := b.ensureChain(f, t, set, chains, cs); err != nil {
				return false, err
			}
		}
	}
	if err := c.Flush(); err != nil {
		return false, fmt.Errorf("create objects in table %s: %w", t.Name, err)
	}
	return created, nil
}

func (b *Backend) ensureChain(f *famSpec, t *nftables.Table, set *nftables.Set, chains []*nftables.Chain, cs chainSpec) error {
	c := b.nft
	hook, prio, policy := cs.hook, nftables.ChainPriority(f.cfg.Priority), nftables.ChainPolicyAccept
	want := &nftables.Chain{Name: cs.name, Table: t, Type: nftables.ChainTypeFilter, Hooknum: &hook, Priority: &prio, Policy: &policy}
	rule := &nftables.Rule{Table: t, Chain: want, Exprs: ruleExprs(&b.cfg, f, set), UserData: f.tag}
	ex := findChain(chains, cs.name)
	if ex == nil {
		c.AddChain(want)
		c.AddRule(rule)
		return nil
	}
	rules, err := c.GetRules(t, ex)
	if err != nil {
		return fmt.Errorf("list rules of chain %s: %w", cs.name, err)
	}
	mine, others := ours(rules)
	if !sameBase(ex, cs, f.cfg.Priority) {
		if len(others) > 0 {
			return fmt.Errorf("chain %s exists with another type, hook or priority and holds rules that are not ours", cs.name)
		}
		c.FlushChain(ex)
		c.DelChain(ex)
		c.AddChain(want)
		c.AddRule(rule)
		return nil
	}
	wantTag, _ := tagOf(f.tag)
	keep := -1
	for i, r := range mine {
		if tg, _ := tagOf(r.UserData); bytes.Equal(tg, wantTag) {
			keep = i
			break
		}
	}
	switch {
	case len(mine) == 0:
		c.AddRule(rule)
	case keep < 0:
		// Our rule from another configuration: replace it in place.
		rule.Handle = mine[0].Handle
		c.ReplaceRule(rule)
		keep = 0
	}
	for i, r := range mine {
		if i != keep {
			r.Table, r.Chain = t, ex
			if err := c.DelRule(r); err != nil {
				return fmt.Errorf("delete duplicate rule in chain %s: %w", cs.name, err)
			}
		}
	}
	return nil
}

// Intact reports whether every owned object still exists as Ensure left
// it: table, set (with its type and flags), chains (hook and priority) and
// exactly one current rule of ours per chain. It reads no element. It also
// reports false after a failed Apply or Replace, since the set may then
// differ from what the backend believes.
func (b *Backend) Intact(ctx context.Context) (bool, error) {
	if err := b.lock(); err != nil {
		return false, err
	}
	defer b.mu.Unlock()
	for _, f := range b.specs {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if (f.id == firewall.IPv4 && (b.v4.tainted || b.v4.m == nil)) || (f.id == firewall.IPv6 && (b.v6.tainted || b.v6.m == nil)) {
			return false, nil
		}
		ok, err := b.intactFamily(f)
		if err != nil || !ok {
			if err != nil {
				err = fmt.Errorf("nftables: check %s: %w", f, err)
			}
			return false, err
		}
	}
	return true, nil
}

func (b *Backend) intactFamily(f *famSpec) (bool, error) {
	exists, err := b.tableExists(f)
	if err != nil || !exists {
		return false, err
	}
	set, _, err := b.findSet(f)
	if err != nil || set == nil || !setShapeOK(f, set) {
		return false, err
	}
	if f.cfg.SetOnly {
		return true, nil
	}
	chains, err := b.chainsOf(f)
	if err != nil {
		return false, err
	}
	wantTag, _ := tagOf(f.tag)
	for _, cs := range f.chains {
		ex := findChain(chains, cs.name)
		if ex == nil || !sameBase(ex, cs, f.cfg.Priority) {
			return false, nil
		}
		rules, err := b.nft.GetRules(f.table(), ex)
		if err != nil {
			return false, fmt.Errorf("list rules of chain %s: %w", cs.name, err)
		}
		mine, _ := ours(rules)
		if len(mine) != 1 {
			return false, nil
		}
		if tg, _ := tagOf(mine[0].UserData); !bytes.Equal(tg, wantTag) {
			return false, nil
		}
	}
	return true, nil
}

// Counters sums the counters of our rules per family, from the rules
// alone. Families in set-only mode have no rule of ours and are absent.
func (b *Backend) Counters(ctx context.Context) (map[firewall.Family]firewall.Counter, error) {
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	out := map[firewall.Family]firewall.Counter{}
	for _, f := range b.specs {
		if f.cfg.SetOnly {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		exists, err := b.tableExists(f)
		if err != nil {
			return nil, fmt.Errorf("nftables: counters %s: %w", f, err)
		}
		if !exists {
			continue
		}
		chains, err := b.chainsOf(f)
		if err != nil {
			return nil, fmt.Errorf("nftables: counters %s: %w", f, err)
		}
		var sum firewall.Counter
		for _, cs := range f.chains {
			ex := findChain(chains, cs.name)
			if ex == nil {
				continue
			}
			rules, err := b.nft.GetRules(f.table(), ex)
			if err != nil {
				return nil, fmt.Errorf("nftables: counters %s: list rules of chain %s: %w", f, cs.name, err)
			}
			mine, _ := ours(rules)
			for _, r := range mine {
				for _, e := range r.Exprs {
					if ctr, ok := e.(*expr.Counter); ok {
						sum.Packets += ctr.Packets
						sum.Bytes += ctr.Bytes
					}
				}
			}
		}
		out[f.id] = sum
	}
	return out, nil
}

// Flush deletes what the backend created. A table goes as a whole only
// when it holds nothing but our chains (with only our rules) and our set;
// otherwise only our rules, chains left empty and our set go. In set-only
// mode only the set goes; if rules of the administrator still reference
// it, the kernel refuses and the set is emptied instead.
func (b *Backend) Flush(ctx context.Context) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	var errs []error
	for _, f := range b.specs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.flushFamily(f); err != nil {
			errs = append(errs, fmt.Errorf("nftables: flush %s: %w", f, err))
		}
		if f.id == firewall.IPv4 {
			b.v4.m = nil
		} else {
			b.v6.m = nil
		}
	}
	return errors.Join(errs...)
}

func (b *Backend) flushFamily(f *famSpec) error {
	c := b.nft
	t := f.table()
	exists, err := b.tableExists(f)
	if err != nil || !exists {
		return err
	}
	set, sets, err := b.findSet(f)
	if err != nil {
		return err
	}
	if f.cfg.SetOnly {
		if set == nil {
			return nil
		}
		return b.delSet(set, nil)
	}
	chains, err := b.chainsOf(f)
	if err != nil {
		return err
	}
	foreign := len(sets) > 1 || (len(sets) == 1 && set == nil)
	type chainRules struct {
		ch           *nftables.Chain
		mine, others []*nftables.Rule
	}
	var owned []chainRules
	for _, ch := range chains {
		isOurs := false
		for _, cs := range f.chains {
			isOurs = isOurs || cs.name == ch.Name
		}
		if !isOurs {
			foreign = true
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return fmt.Errorf("list rules of chain %s: %w", ch.Name, err)
		}
		mine, others := ours(rules)
		foreign = foreign || len(others) > 0
		owned = append(owned, chainRules{ch, mine, others})
	}
	if !foreign {
		if objs, err := c.GetObjects(t); err != nil || len(objs) > 0 {
			foreign = true // when in doubt, keep the table
		}
		if fts, err := c.ListFlowtables(t); err != nil || len(fts) > 0 {
			foreign = true
		}
	}
	if !foreign {
		c.DelTable(t)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("delete table %s: %w", t.Name, err)
		}
		return nil
	}
	prep := func() error {
		for _, o := range owned {
			if len(o.others) == 0 {
				c.FlushChain(o.ch)
				c.DelChain(o.ch)
				continue
			}
			for _, r := range o.mine {
				r.Table, r.Chain = t, o.ch
				if err := c.DelRule(r); err != nil {
					return fmt.Errorf("delete rule in chain %s: %w", o.ch.Name, err)
				}
			}
		}
		return nil
	}
	if err := prep(); err != nil {
		return err
	}
	if set == nil {
		if err := c.Flush(); err != nil {
			return fmt.Errorf("delete our chains and rules: %w", err)
		}
		return nil
	}
	return b.delSet(set, prep)
}

// delSet deletes set after the changes prep queues; if rules that are not
// ours still use the set, it empties the set instead.
func (b *Backend) delSet(set *nftables.Set, prep func() error) error {
	c := b.nft
	c.DelSet(set)
	err := c.Flush()
	if err == nil || !errors.Is(err, unix.EBUSY) {
		if err != nil {
			err = fmt.Errorf("delete set %s: %w", set.Name, err)
		}
		return err
	}
	if prep != nil {
		if err := prep(); err != nil {
			return err
		}
	}
	c.FlushSet(set)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("empty set %s, which rules not ours still use: %w", set.Name, err)
	}
	return nil
}
