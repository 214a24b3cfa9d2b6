package capi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rampart-ips/rampart/internal/netaddr"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// pulled is the decisions of one pull (the community list, or one
// blocklist), kept compact until stored: the store builds their
// NewDecisions (and UUIDs) a chunk at a time through Fill. The community
// list's 100k decisions held as NewDecisions, beside the whole answer and
// its decoded structs, were most of the LAPI's live heap during a pull.
type pulled struct {
	origin string
	kinds  []pulledKind
	// The items, in blocks of pulledBlock: one growing slice of 100k
	// copied itself into 5 times its size as it grew, and held the old
	// and the new array at once.
	blocks [][]pulledItem
	n      int
	bad    int     // values skipped as invalid
	errs   []error // the first few of them, for the log
}

// pulledBlock is how many items one block of pulled holds.
const pulledBlock = 4096

// pulledKind is what a group of pulled decisions shares.
type pulledKind struct{ scenario, typ, scope string }

// pulledItem is one pulled decision. Its range is parsed again when
// needed rather than kept: 40 bytes more per item for a parse that costs
// less than the UUID the store makes for it.
type pulledItem struct {
	value string
	until int64 // Unix ns
	kind  int32 // index in kinds
}

// maxPulledErrs is how many invalid values a pull logs one by one.
const maxPulledErrs = 5

func (p *pulled) Len() int { return p.n }

func (p *pulled) at(i int) *pulledItem { return &p.blocks[i/pulledBlock][i%pulledBlock] }

func (p *pulled) push(it pulledItem) {
	if p.n == len(p.blocks)*pulledBlock {
		p.blocks = append(p.blocks, make([]pulledItem, pulledBlock))
	}
	*p.at(p.n) = it
	p.n++
}

// truncate keeps the first n items, releasing the rest.
func (p *pulled) truncate(n int) {
	for i := n; i < p.n; i++ {
		*p.at(i) = pulledItem{}
	}
	p.n = n
	keep := (n + pulledBlock - 1) / pulledBlock
	clear(p.blocks[keep:])
	p.blocks = p.blocks[:keep]
}

// keepIf keeps, in order, the items from start on that keep accepts.
func (p *pulled) keepIf(start int, keep func(it *pulledItem) bool) {
	k := start
	for i := start; i < p.n; i++ {
		if it := p.at(i); keep(it) {
			*p.at(k) = *it
			k++
		}
	}
	p.truncate(k)
}

// rangeOf is an item's range: zero outside the address scopes.
func (p *pulled) rangeOf(it *pulledItem) (store.Range, error) {
	if !store.IsAddressScope(p.kinds[it.kind].scope) {
		return store.Range{}, nil
	}
	pr, err := netaddr.ParsePrefix(it.value)
	if err != nil {
		return store.Range{}, fmt.Errorf("%s: %w", it.value, err)
	}
	return store.RangeOf(pr), nil
}

// Fill appends items [from, to) as NewDecisions, each with a new UUID.
func (p *pulled) Fill(dst []store.NewDecision, from, to int) []store.NewDecision {
	for i := from; i < to; i++ {
		it := p.at(i)
		k := &p.kinds[it.kind]
		r, _ := p.rangeOf(it) // checked when added
		dst = append(dst, store.NewDecision{UUID: models.NewAlertUUID(), Until: time.Unix(0, it.until), Scenario: k.scenario,
			Type: k.typ, Scope: k.scope, Value: it.value, Origin: p.origin, Range: r})
	}
	return dst
}

// kind adds a group and returns its index.
func (p *pulled) kind(scenario, typ, scope string) int32 {
	p.kinds = append(p.kinds, pulledKind{scenario: scenario, typ: typ, scope: scope})
	return int32(len(p.kinds) - 1)
}

// skip counts an invalid value.
func (p *pulled) skip(err error) {
	p.bad++
	if len(p.errs) < maxPulledErrs {
		p.errs = append(p.errs, err)
	}
}

// add checks one pulled value of a kind whose scope is known and keeps
// it, or counts it as invalid.
func (p *pulled) add(kind int32, value, duration string, now time.Time) {
	dur, err := checkDuration(value, duration)
	if err != nil {
		p.skip(err)
		return
	}
	it := pulledItem{value: value, until: now.Add(dur).UnixNano(), kind: kind}
	if _, err := p.rangeOf(&it); err != nil {
		p.skip(err)
		return
	}
	p.push(it)
}

// checkDuration is a pulled decision's duration, which must be positive.
func checkDuration(value, duration string) (time.Duration, error) {
	dur, err := models.ParseDuration(duration)
	if err != nil || dur <= 0 {
		return 0, fmt.Errorf("%s: duration %q is not a positive duration", value, duration)
	}
	return dur, nil
}

// filter drops the items allowed says an allowlist covers and returns how
// many it dropped.
func (p *pulled) filter(allowed func(scope string, r store.Range) bool) int {
	n := p.n
	p.keepIf(0, func(it *pulledItem) bool {
		r, _ := p.rangeOf(it)
		return !allowed(p.kinds[it.kind].scope, r)
	})
	return n - p.n
}

// pullAnswer is a GET /v3/decisions/stream answer as apply uses it, read
// from the body as it arrives: the community decisions go straight into
// a compact pulled set, one at a time, and the body is never held whole.
type pullAnswer struct {
	community pulled
	deleted   []DeletedGroup
	links     *StreamLinks
	now       time.Time // what the durations count from
}

// readBody decodes the answer as encoding/json would decode a
// StreamResponse (keys matched without case, unknown keys and nulls
// ignored), keeping only what apply needs.
func (a *pullAnswer) readBody(r io.Reader) error {
	*a = pullAnswer{community: pulled{origin: store.OriginCAPI}, now: time.Now()}
	dec := json.NewDecoder(r)
	return readObject(dec, "the answer", func(key string) error {
		switch strings.ToLower(key) {
		case "new":
			return readArray(dec, func() error { return a.readGroup(dec) })
		case "deleted":
			return dec.Decode(&a.deleted)
		case "links":
			return dec.Decode(&a.links)
		}
		return skipValue(dec)
	})
}

// readGroup reads one item of "new": its decisions come before its
// scenario and scope in upstream's answers, so they are checked once the
// group is read.
func (a *pullAnswer) readGroup(dec *json.Decoder) error {
	p := &a.community
	start := p.n
	var scenario, scope string
	kind := p.kind("", "ban", "")
	err := readObject(dec, "a group of new", func(key string) error {
		switch strings.ToLower(key) {
		case "scenario":
			return dec.Decode(&scenario) // null leaves it empty
		case "scope":
			return dec.Decode(&scope)
		case "decisions":
			return readArray(dec, func() error {
				var d StreamDecision
				if err := dec.Decode(&d); err != nil {
					return err
				}
				dur, err := checkDuration(d.Value, d.Duration)
				if err != nil {
					p.skip(err)
					return nil
				}
				p.push(pulledItem{value: d.Value, until: a.now.Add(dur).UnixNano(), kind: kind})
				return nil
			})
		}
		return skipValue(dec)
	})
	if err != nil {
		return err
	}
	p.kinds[kind] = pulledKind{scenario: scenario, typ: "ban", scope: models.NormalizeScope(scope)}
	p.keepIf(start, func(it *pulledItem) bool {
		_, err := p.rangeOf(it)
		if err != nil {
			p.skip(err)
		}
		return err == nil
	})
	return nil
}

// readObject reads an object, calling field for each key with the decoder
// before its value; field must consume the value. null is an empty object.
func readObject(dec *json.Decoder, what string, field func(key string) error) error {
	t, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if t == nil {
		return nil
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("%s: an object was expected, not %v", what, t)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		key, _ := t.(string)
		if err := field(key); err != nil {
			return fmt.Errorf("%s: %s: %w", what, key, err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// readArray reads an array, calling item for each element (which must
// consume it). null is an empty array.
func readArray(dec *json.Decoder, item func() error) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t == nil {
		return nil
	}
	if d, ok := t.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("an array was expected, not %v", t)
	}
	for dec.More() {
		if err := item(); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing bracket
	return err
}

// skipValue consumes one value of any kind.
func skipValue(dec *json.Decoder) error {
	var skip json.RawMessage
	return dec.Decode(&skip)
}

// filterPulled applies the allowlists to p (when a filter is set) and
// returns how many decisions they dropped.
func (s *Service) filterPulled(ctx context.Context, p *pulled) (int, error) {
	if s.o.Filter == nil || p.Len() == 0 {
		return 0, nil
	}
	allowed, err := s.o.Filter(ctx)
	if err != nil {
		return 0, fmt.Errorf("checking pulled decisions against the allowlists: %w", err)
	}
	return p.filter(allowed), nil
}
