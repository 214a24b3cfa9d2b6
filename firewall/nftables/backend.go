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
	log "github.com/sirupsen/logrus"
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

	// txnBytes bounds one transaction of a large Apply: it is the size of
	// the batch buffer. Only hosts are split across transactions, and the
	// hash set costs O(changes) per transaction, so small transactions
	// cost little time and keep the buffer small. Range changes (few)
	// always share one transaction: the interval set costs O(set size) per
	// committed transaction on Linux 6.18.
	txnBytes int
	// Deletes use "destroy" (absent elements are ignored) where the kernel
	// has it; otherwise plain deletes, one message per element, and the
	// absent ones are dropped from a failed transaction before one retry.
	delProbed, legacyDel bool

	ignoredDisabled, ignoredInvalid uint64
	setOnlyLogged                   bool

	// checkedGen is the ruleset generation at the start of the last full
	// Intact check that passed (valid when checked): while the generation
	// stays the same, nothing changed and Intact need not list anything.
	// The repair loop calls Intact four times a second; a full check made
	// about 110 KB of garbage each time, which let an idle bouncer's heap
	// grow by half its size between collections.
	checkedGen uint32
	checked    bool
}

// elems is one family's share of the element work.
type elems[A addr[A]] struct {
	spec      *famSpec
	m         *model[A]     // ranges; nil until Ensure has made the sets exist
	hosts     *hostIndex[A] // the host set, for Stats; nil with m
	tainted   bool          // a transaction failed: the model may differ from the kernel
	lastSweep uint32
}

// defaultTxnBytes is about 37k IPv4 host adds. Measured for a cold load
// of 1M hosts: 64 KiB to 2 MiB take the same time (about 1 s, mostly the
// kernel's hash inserts); 8 MiB takes 1.2 s and 32 MiB 2 s.
const defaultTxnBytes = 1 << 20

// maxTimeout bounds element timeouts (the model counts seconds in 32 bits).
const maxTimeout = 10 * 365 * 24 * time.Hour

// Stats are counts a caller may log or export.
type Stats struct {
	// Elements is the number of elements (addresses and ranges) per family
	// as last set by Apply and Replace, without reading the kernel. Hosts
	// the kernel has expired may still count for up to five minutes.
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
		s.procTag = processedTag(s)
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
		s.Elements[firewall.IPv4] = b.v4.m.size() + b.v4.hosts.len()
	}
	if b.v6 != nil && b.v6.m != nil {
		s.Elements[firewall.IPv6] = b.v6.m.size() + b.v6.hosts.len()
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

// Ensure makes the table, the two sets, chains and rules exist exactly
// once per enabled family, adopting what a previous run left: rules of ours
// with an outdated content or order are replaced in place, duplicates are
// deleted, and a chain with the wrong hook or priority is recreated, all in
// one transaction per family. It never removes set elements. In set-only
// mode it only creates the sets, in a table that must exist.
func (b *Backend) Ensure(ctx context.Context) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	for _, f := range b.specs {
		if err := ctx.Err(); err != nil {
			return err
		}
		rangesNew, hostsNew, err := b.ensureFamily(f)
		if err != nil {
			return fmt.Errorf("nftables: ensure %s: %w", f, err)
		}
		if f.cfg.SetOnly && !b.setOnlyLogged {
			lay := f.lay
			log.WithField("backend", "nftables").Infof("set-only mode: bans of %s go to two sets of table %s: "+
				"addresses to %s, ranges to %s; the table's rules must match both, e.g. `%s saddr @%s drop` and `%s saddr @%s drop`",
				f, f.cfg.Table, lay.hosts, lay.ranges, f.proto(), lay.hosts, f.proto(), lay.ranges)
			if lay.hosts != f.cfg.Set {
				log.WithField("backend", "nftables").Warnf("set-only mode: %s is an interval set of an older version, kept with its layout "+
					"because your rules use it; to get addresses in %s and ranges in %s, delete both sets and point your rules at the new names",
					f.cfg.Set, f.cfg.Set, f.rangeSet())
			}
		}
		// A set we just created is empty, so its model is exact; a set
		// we adopted holds what it holds until Replace.
		if f.id == firewall.IPv4 {
			b.v4.ensured(rangesNew, hostsNew)
		} else {
			b.v6.ensured(rangesNew, hostsNew)
		}
	}
	for _, f := range b.specs {
		b.setOnlyLogged = b.setOnlyLogged || f.cfg.SetOnly
	}
	return nil
}

func (e *elems[A]) ensured(rangesNew, hostsNew bool) {
	first := e.m == nil
	if first || rangesNew {
		e.m = newModel[A]()
	}
	if first || hostsNew {
		e.hosts = &hostIndex[A]{}
	}
	if first || (rangesNew && hostsNew) {
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

// findSets returns the sets of the table that bear one of our names (Set,
// its range set, the older layout's host set), by name, and how many sets
// the table holds in all.
func (b *Backend) findSets(f *famSpec) (mine map[string]*nftables.Set, all int, err error) {
	sets, err := b.nft.GetSets(f.table())
	if err != nil {
		return nil, 0, fmt.Errorf("list sets of table %s: %w", f.cfg.Table, err)
	}
	mine = map[string]*nftables.Set{}
	for _, s := range sets {
		switch s.Name {
		case f.cfg.Set, f.rangeSet(), f.oldHostSet():
			s.Table = f.table()
			mine[s.Name] = s
		}
	}
	return mine, len(sets), nil
}

// layoutOf tells the layout of the sets found in the kernel: the older one
// when Set is an interval set.
func layoutOf(f *famSpec, sets map[string]*nftables.Set) layout {
	lay := f.current()
	old := sets[f.oldHostSet()]
	if s := sets[f.cfg.Set]; s != nil && setShapeOK(f, s, true) {
		if f.cfg.SetOnly {
			return layout{hosts: f.oldHostSet(), ranges: f.cfg.Set}
		}
		return layout{hosts: f.oldHostSet(), ranges: f.rangeSet(), oldRanges: true, oldHosts: true}
	}
	if old != nil && setShapeOK(f, old, false) && !f.cfg.SetOnly {
		lay.oldHosts = true // a migration stopped half-way
	}
	return lay
}

func setShapeOK(f *famSpec, s *nftables.Set, interval bool) bool {
	return s.Interval == interval && s.HasTimeout && !s.IsMap && s.KeyType.Name == f.keyType.Name
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

func (b *Backend) ensureFamily(f *famSpec) (rangesNew, hostsNew bool, err error) {
	c := b.nft
	t := f.table()
	exists, err := b.tableExists(f)
	if err != nil {
		return false, false, err
	}
	if !exists {
		if f.cfg.SetOnly {
			return false, false, fmt.Errorf("set-only: table %s does not exist; create it first", t.Name)
		}
		c.AddTable(t)
	}
	sets := map[string]*nftables.Set{}
	if exists {
		if sets, _, err = b.findSets(f); err != nil {
			return false, false, err
		}
	}
	prev := f.lay
	f.lay = layoutOf(f, sets)
	ensureSet := func(name string, interval bool) (bool, error) {
		if s := sets[name]; s != nil {
			if !setShapeOK(f, s, interval) {
				flags := "timeout"
				if interval {
					flags = "interval,timeout"
				}
				return false, fmt.Errorf("set %s exists with another type or flags (want %s, flags %s): delete it or configure another name", name, f.keyType.Name, flags)
			}
			return false, nil
		}
		s := &nftables.Set{Table: t, Name: name, KeyType: f.keyType, Interval: interval, HasTimeout: true}
		if err := c.AddSet(s, nil); err != nil {
			return false, fmt.Errorf("add set %s: %w", name, err)
		}
		sets[name] = s
		return true, nil
	}
	if hostsNew, err = ensureSet(f.lay.hosts, false); err != nil {
		return false, false, err
	}
	if rangesNew, err = ensureSet(f.lay.ranges, true); err != nil {
		return false, false, err
	}
	if !f.cfg.SetOnly {
		var chains []*nftables.Chain
		if exists {
			if chains, err = b.chainsOf(f); err != nil {
				return false, false, err
			}
		}
		for _, cs := range f.chains {
			if err := b.ensureChain(f, t, sets, chains, cs); err != nil {
				return false, false, err
			}
		}
	}
	if err := c.Flush(); err != nil {
		return false, false, fmt.Errorf("create objects in table %s: %w", t.Name, err)
	}
	if f.lay.oldRanges && !prev.oldRanges {
		log.WithFields(log.Fields{"backend": "nftables", "table": t.Name}).Infof("%s holds the older set layout (ranges in %s, addresses in %s): "+
			"it keeps enforcing until the first full sync moves addresses to %s and ranges to %s", f, f.cfg.Set, f.oldHostSet(), f.cfg.Set, f.rangeSet())
	}
	return rangesNew, hostsNew, nil
}

// wantTags are the tags of our rules in a chain, in order: the counter
// rule, then the ban rules.
func wantTags(c *Config, f *famSpec) [][]byte {
	out := [][]byte{f.procTag}
	for _, r := range banRules(c, f) {
		out = append(out, r.tag)
	}
	return out
}

// tagsMatch reports whether our rules carry the tags want, in order.
func tagsMatch(mine []*nftables.Rule, want [][]byte) bool {
	if len(mine) != len(want) {
		return false
	}
	for i := range want {
		w, _ := tagOf(want[i])
		got, _ := tagOf(mine[i].UserData)
		if !bytes.Equal(got, w) {
			return false
		}
	}
	return true
}

// ourRulesCurrent reports whether our rules in a chain are exactly the
// counter rule then the ban rules of the family's layout.
func ourRulesCurrent(c *Config, f *famSpec, mine []*nftables.Rule) bool {
	return tagsMatch(mine, wantTags(c, f))
}

func (b *Backend) ensureChain(f *famSpec, t *nftables.Table, sets map[string]*nftables.Set, chains []*nftables.Chain, cs chainSpec) error {
	c := b.nft
	hook, prio, policy := cs.hook, nftables.ChainPriority(f.cfg.Priority), nftables.ChainPolicyAccept
	want := &nftables.Chain{Name: cs.name, Table: t, Type: nftables.ChainTypeFilter, Hooknum: &hook, Priority: &prio, Policy: &policy}
	rules := []*nftables.Rule{{Table: t, Chain: want, Exprs: processedExprs(), UserData: f.procTag}}
	for _, br := range banRules(&b.cfg, f) {
		set := sets[br.set]
		if set == nil {
			return fmt.Errorf("set %s is missing", br.set)
		}
		rules = append(rules, &nftables.Rule{Table: t, Chain: want, Exprs: ruleExprs(&b.cfg, f, set), UserData: br.tag})
	}
	tags := make([][]byte, len(rules))
	for i, r := range rules {
		tags[i] = r.UserData
	}
	addAll := func() {
		for _, r := range rules {
			c.AddRule(r)
		}
	}
	ex := findChain(chains, cs.name)
	if ex == nil {
		c.AddChain(want)
		addAll()
		return nil
	}
	have, err := c.GetRules(t, ex)
	if err != nil {
		return fmt.Errorf("list rules of chain %s: %w", cs.name, err)
	}
	mine, others := ours(have)
	if !sameBase(ex, cs, f.cfg.Priority) {
		if len(others) > 0 {
			return fmt.Errorf("chain %s exists with another type, hook or priority and holds rules that are not ours", cs.name)
		}
		c.FlushChain(ex)
		c.DelChain(ex)
		c.AddChain(want)
		addAll()
		return nil
	}
	n := len(rules)
	var stale []*nftables.Rule
	switch {
	case len(mine) >= n && tagsMatch(mine[:n], tags):
		stale = mine[n:]
	case len(mine) == 0:
		addAll()
	case len(mine) < n && tagsMatch(mine, tags[:len(mine)]):
		// The older layout adopted: its rules stay as they are and the
		// missing ones go right after them, last first.
		anchor := mine[len(mine)-1]
		for i := n - 1; i >= len(mine); i-- {
			rules[i].Position = anchor.Handle
			c.AddRule(rules[i])
		}
	default:
		// Our rules from another version or configuration: put the
		// current ones where the first was, in the same transaction. All
		// but the last go in before it, then the last replaces it, so
		// they end in this order whether the kernel puts a replacement
		// before or after the rule it replaces.
		anchor := mine[0]
		for _, r := range rules[:n-1] {
			r.Position = anchor.Handle
			c.InsertRule(r)
		}
		rules[n-1].Handle = anchor.Handle
		c.ReplaceRule(rules[n-1])
		stale = mine[1:]
	}
	for _, r := range stale {
		r.Table, r.Chain = t, ex
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("delete duplicate rule in chain %s: %w", cs.name, err)
		}
	}
	return nil
}

// Intact reports whether every owned object still exists as Ensure left
// it: table, set (with its type and flags), chains (hook and priority) and
// exactly one current rule of ours per chain, and that no set of ours that
// should hold elements is empty (flushed). It also
// reports false after a failed Apply or Replace, since the set may then
// differ from what the backend believes.
func (b *Backend) Intact(ctx context.Context) (bool, error) {
	if err := b.lock(); err != nil {
		return false, err
	}
	defer b.mu.Unlock()
	for _, f := range b.specs {
		if (f.id == firewall.IPv4 && (b.v4.tainted || b.v4.m == nil)) || (f.id == firewall.IPv6 && (b.v6.tainted || b.v6.m == nil)) {
			return false, nil
		}
	}
	gen, genErr := b.el.generation(ctx)
	if genErr == nil && b.checked && gen == b.checkedGen {
		return true, nil
	}
	b.checked = false
	for _, f := range b.specs {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		ok, err := b.intactFamily(f)
		if err != nil || !ok {
			if err != nil {
				err = fmt.Errorf("nftables: check %s: %w", f, err)
			}
			return false, err
		}
	}
	// A set flushed by someone else (nft flush set, a script) keeps every
	// object, so only its emptiness shows it.
	for _, flushed := range []func() (bool, error){
		func() (bool, error) { return famFlushed(ctx, b, b.v4) },
		func() (bool, error) { return famFlushed(ctx, b, b.v6) },
	} {
		gone, err := flushed()
		if err != nil || gone {
			if err != nil {
				err = fmt.Errorf("nftables: check elements: %w", err)
			}
			return false, err
		}
	}
	// Read before the check: a change made during it moves the
	// generation, and the next call checks again.
	b.checkedGen, b.checked = gen, genErr == nil
	return true, nil
}

// famFlushed reports whether a set of e that should hold elements is
// empty in the kernel, reading only the start of its dump. Hosts the
// kernel expired may still count in the model: a false alarm costs one
// Replace, after which the model holds only live ones.
func famFlushed[A addr[A]](ctx context.Context, b *Backend, e *elems[A]) (bool, error) {
	if e == nil || e.m == nil || e.spec.lay.migrating() {
		return false, nil
	}
	for _, c := range []struct {
		ref  *setRef
		held int
	}{{e.spec.hostRef(), e.hosts.len()}, {e.spec.ref(), e.m.size()}} {
		if c.held == 0 {
			continue
		}
		isEmpty, err := empty(ctx, b.cfg.NetNS, c.ref)
		if err != nil || isEmpty {
			return isEmpty, err
		}
	}
	return false, nil
}

func (b *Backend) intactFamily(f *famSpec) (bool, error) {
	exists, err := b.tableExists(f)
	if err != nil || !exists {
		return false, err
	}
	sets, _, err := b.findSets(f)
	if err != nil {
		return false, err
	}
	if layoutOf(f, sets) != f.lay {
		return false, nil
	}
	if s := sets[f.lay.ranges]; s == nil || !setShapeOK(f, s, true) {
		return false, nil
	}
	if s := sets[f.lay.hosts]; s == nil || !setShapeOK(f, s, false) {
		return false, nil
	}
	if f.cfg.SetOnly {
		return true, nil
	}
	chains, err := b.chainsOf(f)
	if err != nil {
		return false, err
	}
	for _, cs := range f.chains {
		ex := findChain(chains, cs.name)
		if ex == nil || !sameBase(ex, cs, f.cfg.Priority) {
			return false, nil
		}
		rules, err := b.nft.GetRules(f.table(), ex)
		if err != nil {
			return false, fmt.Errorf("list rules of chain %s: %w", cs.name, err)
		}
		if mine, _ := ours(rules); !ourRulesCurrent(&b.cfg, f, mine) {
			return false, nil
		}
	}
	return true, nil
}

// Counters sums the counters of our ban rules per family (host and range
// rules, every hook), from the rules alone. Families in set-only mode have
// no rule of ours and are absent.
func (b *Backend) Counters(ctx context.Context) (map[firewall.Family]firewall.Counter, error) {
	dropped, _, err := b.TrafficCounters(ctx)
	return dropped, err
}

// TrafficCounters returns, per family, what the ban rules dropped and what
// traversed our chains (the counter rule at the top of each), in one pass
// over our chains' rules: it never reads a set.
func (b *Backend) TrafficCounters(ctx context.Context) (dropped, processed map[firewall.Family]firewall.Counter, err error) {
	if err := b.lock(); err != nil {
		return nil, nil, err
	}
	defer b.mu.Unlock()
	dropped, processed = map[firewall.Family]firewall.Counter{}, map[firewall.Family]firewall.Counter{}
	for _, f := range b.specs {
		if f.cfg.SetOnly {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		exists, err := b.tableExists(f)
		if err != nil {
			return nil, nil, fmt.Errorf("nftables: counters %s: %w", f, err)
		}
		if !exists {
			continue
		}
		chains, err := b.chainsOf(f)
		if err != nil {
			return nil, nil, fmt.Errorf("nftables: counters %s: %w", f, err)
		}
		procTag, _ := tagOf(f.procTag)
		var drop, proc firewall.Counter
		for _, cs := range f.chains {
			ex := findChain(chains, cs.name)
			if ex == nil {
				continue
			}
			rules, err := b.nft.GetRules(f.table(), ex)
			if err != nil {
				return nil, nil, fmt.Errorf("nftables: counters %s: list rules of chain %s: %w", f, cs.name, err)
			}
			mine, _ := ours(rules)
			for _, r := range mine {
				sum := &drop
				if tag, _ := tagOf(r.UserData); bytes.Equal(tag, procTag) {
					sum = &proc
				}
				for _, e := range r.Exprs {
					if ctr, ok := e.(*expr.Counter); ok {
						sum.Packets += ctr.Packets
						sum.Bytes += ctr.Bytes
					}
				}
			}
		}
		dropped[f.id], processed[f.id] = drop, proc
	}
	return dropped, processed, nil
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
			b.v4.m, b.v4.hosts = nil, nil
		} else {
			b.v6.m, b.v6.hosts = nil, nil
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
	found, nsets, err := b.findSets(f)
	if err != nil {
		return err
	}
	var mySets []*nftables.Set
	for _, s := range found {
		mySets = append(mySets, s)
	}
	if f.cfg.SetOnly {
		return b.delSets(mySets, nil)
	}
	chains, err := b.chainsOf(f)
	if err != nil {
		return err
	}
	foreign := nsets > len(mySets)
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
	if len(mySets) == 0 {
		if err := c.Flush(); err != nil {
			return fmt.Errorf("delete our chains and rules: %w", err)
		}
		return nil
	}
	return b.delSets(mySets, prep)
}

// delSets deletes sets after the changes prep queues. If rules that are
// not ours still use one of them, it empties the sets (after prep) and then
// deletes each one nothing uses, leaving the others empty.
func (b *Backend) delSets(sets []*nftables.Set, prep func() error) error {
	c := b.nft
	if len(sets) == 0 {
		return nil
	}
	for _, s := range sets {
		c.DelSet(s)
	}
	err := c.Flush()
	if err == nil || !errors.Is(err, unix.EBUSY) {
		if err != nil {
			err = fmt.Errorf("delete sets: %w", err)
		}
		return err
	}
	if prep != nil {
		if err := prep(); err != nil {
			return err
		}
	}
	for _, s := range sets {
		c.FlushSet(s)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("empty sets, which rules not ours still use: %w", err)
	}
	for _, s := range sets {
		c.DelSet(s)
		if err := c.Flush(); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("delete set %s: %w", s.Name, err)
		}
	}
	return nil
}
