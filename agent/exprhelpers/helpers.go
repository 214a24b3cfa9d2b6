// Package exprhelpers holds the helper functions that hub rules (parser
// filters and statics, scenario filters/groupby/distinct/conditions,
// whitelists) call from expr-lang expressions: File, RegexpInFile,
// LookupFile, IpInRange, Upper, JsonExtract, MedianInterval...
//
// Unlike upstream CrowdSec, which keeps data files and regexp caches in
// package globals, everything lives in a *Helpers value: build one with
// New(dataDir), Load the data items of every parser/scenario, then compile
// each expression once with
//
//	expr.Compile(src, append(h.Options(), expr.Env(exprhelpers.CompileEnv()))...)
//
// and run it per event with expr.Run(program, exprhelpers.Env(&evt)).
//
// A *Helpers is safe for concurrent use: readers (the helpers called by
// running programs) see an immutable snapshot of the loaded data through an
// atomic pointer; Load builds a new snapshot (copy on write) under a mutex.
// Helpers never panic and never return an error to the VM: bad input gives
// the zero value (false, "", nil, 0).
package exprhelpers

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-ips/rampart/agent/geoip"
)

// Data file types, as written in a data item's `type`.
const (
	TypeString = "string"
	TypeRegexp = "regexp"
	TypeMap    = "map"
	TypeBots   = "bots" // one bot definition per JSON line (MatchKnownBot)
)

// defaultCacheSize is the RegexpInFile cache size when a data item enables
// the cache (strategy or ttl) without a size, as upstream does.
const defaultCacheSize = 50

// DataFile is one `data:` item of a parser or scenario.
type DataFile struct {
	SourceURL string `yaml:"source_url" json:"source_url,omitempty"`
	DestFile  string `yaml:"dest_file" json:"dest_file,omitempty"`
	Type      string `yaml:"type" json:"type,omitempty"`
	Strategy  string `yaml:"strategy" json:"strategy,omitempty"`
	Size      int    `yaml:"size" json:"size,omitempty"`
	TTL       string `yaml:"ttl" json:"ttl,omitempty"`
}

// mapEntry is one line of a map data file (technology_probing.json style):
// {"tag": "...", "pattern": "...", "type": "equals|contains|regex"}.
type mapEntry struct {
	Tag, Pattern, Type string
	Fields             map[string]any // the whole object, as decoded
}

// mapIndex is a loaded map file, indexed for LookupFile: equals entries in
// a hash map, contains entries in file order, regex entries precompiled.
type mapIndex struct {
	entries   []mapEntry
	equals    map[string]string // pattern -> tag (first in file wins)
	contains  []mapEntry
	lits      *litSet // the contains patterns, ids in file order
	regexps   []*regexp.Regexp
	regexTags []string
}

// snapshot is the immutable set of loaded data the helpers read.
type snapshot struct {
	strings map[string][]string
	regexps map[string][]*regexp.Regexp
	reSets  map[string]*regexpSet // regexps, indexed for RegexpInFile
	maps    map[string]*mapIndex
	bots    map[string][]*botEntry
	caches  map[string]*resultCache
	// jsonLines marks the lines of string files that look like JSON
	// objects, so JsonExtract results on them can be memoized (see
	// http-cve-probing: JsonExtract(#, "uri") over a whole file per event).
	jsonLines map[string]struct{}
	// indexes holds the line indexes of rewritten any(File(...)) calls,
	// built on first use from this snapshot's lines (anyfile.go).
	indexes sync.Map // indexKey -> *lineIndex
}

// Helpers holds the loaded data files and implements the helpers that
// need them. Create it with New.
type Helpers struct {
	dataDir string
	mu      sync.Mutex // serializes Load
	state   atomic.Pointer[snapshot]
	now     func() time.Time // clock of the regexp caches (tests)

	jsonMemo     sync.Map // jsonKey -> string
	jsonMemoSize atomic.Int64

	// compiled regexps of the `matches` operator: rules such as
	// any(File(..), {x matches #}) take patterns from data files, which expr
	// would otherwise compile on every evaluation.
	matchRe     sync.Map // pattern -> *regexp.Regexp (nil when invalid)
	matchReSize atomic.Int64

	memo map[string]*strMemo // memoized string helpers by name; fixed after New

	slots slotTable // Frame slots of the fused subexpressions (frame.go)

	extH extHolder // XML, stash and network helpers (ext.go)

	geo       atomic.Pointer[geoip.DB] // GeoIP databases (geo.go); nil for none
	geoMissed atomic.Bool              // a GeoIP helper ran without its database
}

// maxMatchRe bounds the `matches` regexp cache.
const maxMatchRe = 1 << 14

// Matches implements expr's `matches` operator with compiled patterns
// cached; an invalid pattern never matches.
func (h *Helpers) Matches(s, pattern string) bool {
	if v, ok := h.matchRe.Load(pattern); ok {
		re, _ := v.(*regexp.Regexp)
		return re != nil && re.MatchString(s)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		re = nil
	}
	if h.matchReSize.Load() < maxMatchRe {
		h.matchRe.Store(pattern, re)
		h.matchReSize.Add(1)
	}
	return re != nil && re.MatchString(s)
}

// maxJSONMemo bounds the JsonExtract memo (data lines x distinct targets).
const maxJSONMemo = 1 << 16

type jsonKey struct{ blob, target string }

// New returns Helpers reading data files from dataDir.
func New(dataDir string) *Helpers {
	h := &Helpers{dataDir: dataDir, now: time.Now, memo: newMemos()}
	h.state.Store(&snapshot{
		strings:   map[string][]string{},
		regexps:   map[string][]*regexp.Regexp{},
		reSets:    map[string]*regexpSet{},
		maps:      map[string]*mapIndex{},
		bots:      map[string][]*botEntry{},
		caches:    map[string]*resultCache{},
		jsonLines: map[string]struct{}{},
	})
	return h
}

// DataDir returns the directory data files are read from.
func (h *Helpers) DataDir() string { return h.dataDir }

// Load reads the data items' files from the data directory. Items without
// a type (mmdb files) are ignored; a file already loaded is not read again
// (but a regexp cache asked for by a later item is added if there was none).
// On error nothing from this call is kept.
func (h *Helpers) Load(files []DataFile) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.state.Load()
	next := &snapshot{
		strings:   cloneMap(old.strings),
		regexps:   cloneMap(old.regexps),
		reSets:    cloneMap(old.reSets),
		maps:      cloneMap(old.maps),
		bots:      cloneMap(old.bots),
		caches:    cloneMap(old.caches),
		jsonLines: cloneMap(old.jsonLines),
	}
	for _, df := range files {
		if err := h.loadOne(next, df); err != nil {
			return err
		}
	}
	h.state.Store(next)
	return nil
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (h *Helpers) loadOne(s *snapshot, df DataFile) error {
	typ := strings.ToLower(strings.TrimSpace(df.Type))
	if typ == "" {
		return nil // mmdb and other untyped files: not for expressions
	}
	if df.DestFile == "" {
		return fmt.Errorf("data item (source %q, type %q): empty dest_file", df.SourceURL, df.Type)
	}
	name := df.DestFile
	switch typ {
	case "regex":
		typ = TypeRegexp
	case TypeString, TypeRegexp, TypeMap, TypeBots:
	default:
		return fmt.Errorf("data file %s: unknown type %q (want string, regexp, map or bots)", name, df.Type)
	}
	if typ == TypeRegexp {
		if err := h.setupCache(s, name, df); err != nil {
			return err
		}
	}
	if loaded(s, name, typ) {
		return nil
	}
	lines, err := readLines(filepath.Join(h.dataDir, name))
	if err != nil {
		return fmt.Errorf("data file %s: %w", name, err)
	}
	switch typ {
	case TypeString:
		out := make([]string, 0, len(lines))
		for _, l := range lines {
			out = append(out, l.text)
			if strings.HasPrefix(l.text, "{") {
				s.jsonLines[l.text] = struct{}{}
			}
		}
		s.strings[name] = out
	case TypeRegexp:
		out := make([]*regexp.Regexp, 0, len(lines))
		for _, l := range lines {
			re, err := regexp.Compile(l.text)
			if err != nil {
				return fmt.Errorf("data file %s line %d: bad regexp %q: %w", name, l.num, l.text, err)
			}
			out = append(out, re)
		}
		s.regexps[name] = out
		s.reSets[name] = newRegexpSet(out)
	case TypeMap:
		idx, err := buildMapIndex(name, lines)
		if err != nil {
			return err
		}
		s.maps[name] = idx
	case TypeBots:
		bots, err := parseBots(name, lines)
		if err != nil {
			return err
		}
		s.bots[name] = bots
	}
	return nil
}

func loaded(s *snapshot, name, typ string) bool {
	var ok bool
	switch typ {
	case TypeString:
		_, ok = s.strings[name]
	case TypeRegexp:
		_, ok = s.regexps[name]
	case TypeMap:
		_, ok = s.maps[name]
	case TypeBots:
		_, ok = s.bots[name]
	}
	return ok
}

// setupCache creates the RegexpInFile result cache of a regexp file when
// the item sets strategy, size or ttl (upstream: no settings, no cache).
// Upstream's LFU and ARC strategies are served by the same LRU.
func (h *Helpers) setupCache(s *snapshot, name string, df DataFile) error {
	if df.Strategy == "" && df.Size == 0 && df.TTL == "" {
		return nil
	}
	switch strings.ToUpper(df.Strategy) {
	case "", "LRU", "LFU", "ARC":
	default:
		return fmt.Errorf("data file %s: unknown cache strategy %q", name, df.Strategy)
	}
	if df.Size < 0 {
		return fmt.Errorf("data file %s: negative cache size %d", name, df.Size)
	}
	var ttl time.Duration
	if df.TTL != "" {
		d, err := time.ParseDuration(df.TTL)
		if err != nil {
			return fmt.Errorf("data file %s: bad cache ttl %q: %w", name, df.TTL, err)
		}
		if d < 0 {
			return fmt.Errorf("data file %s: negative cache ttl %q", name, df.TTL)
		}
		ttl = d
	}
	if _, ok := s.caches[name]; ok {
		return nil // first item to configure the cache wins
	}
	s.caches[name] = newResultCache(df.Size, ttl, h.now)
	return nil
}

type line struct {
	num  int
	text string
}

// readLines returns the non-empty, non-comment ('#' first) lines of a file,
// with their 1-based line numbers and any trailing CR removed.
func readLines(path string) ([]line, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("missing file %s: %w", path, err)
		}
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	raw := strings.Split(string(b), "\n")
	out := make([]line, 0, len(raw))
	for i, t := range raw {
		t = strings.TrimSuffix(t, "\r")
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		out = append(out, line{num: i + 1, text: t})
	}
	return out, nil
}

func buildMapIndex(name string, lines []line) (*mapIndex, error) {
	idx := &mapIndex{equals: map[string]string{}}
	for _, l := range lines {
		var obj map[string]any
		if err := json.Unmarshal([]byte(l.text), &obj); err != nil {
			return nil, fmt.Errorf("data file %s line %d: not a JSON object: %w", name, l.num, err)
		}
		var e mapEntry
		e.Fields = obj
		var ok bool
		if e.Pattern, ok = obj["pattern"].(string); !ok || e.Pattern == "" {
			return nil, fmt.Errorf("data file %s line %d: missing or empty string field \"pattern\"", name, l.num)
		}
		if e.Tag, ok = obj["tag"].(string); !ok || e.Tag == "" {
			return nil, fmt.Errorf("data file %s line %d: missing or empty string field \"tag\"", name, l.num)
		}
		e.Type, _ = obj["type"].(string)
		switch e.Type {
		case "equals":
			if _, dup := idx.equals[e.Pattern]; !dup {
				idx.equals[e.Pattern] = e.Tag
			}
		case "contains":
			idx.contains = append(idx.contains, e)
		case "regex":
			re, err := regexp.Compile(e.Pattern)
			if err != nil {
				return nil, fmt.Errorf("data file %s line %d: bad regex %q: %w", name, l.num, e.Pattern, err)
			}
			idx.regexps = append(idx.regexps, re)
			idx.regexTags = append(idx.regexTags, e.Tag)
		default:
			return nil, fmt.Errorf("data file %s line %d: field \"type\" is %q, want equals, contains or regex", name, l.num, e.Type)
		}
		idx.entries = append(idx.entries, e)
	}
	pats := make([]string, len(idx.contains))
	for i, e := range idx.contains {
		pats[i] = e.Pattern
	}
	idx.lits = newLitSet(pats)
	return idx, nil
}

// File returns the lines of a loaded string data file. The slice is the
// stored one (not a copy): callers must not modify it. An unknown file
// gives nil.
func (h *Helpers) File(name string) []string {
	return h.state.Load().strings[name]
}

// RegexpInFile reports whether data matches any regexp of a loaded regexp
// data file. When the file's data item configured a cache, results are
// cached per input string (bounded LRU with TTL). An unknown file gives
// false.
func (h *Helpers) RegexpInFile(data, name string) bool {
	s := h.state.Load()
	rs, ok := s.reSets[name]
	if !ok {
		return false
	}
	c := s.caches[name]
	if c != nil {
		if v, hit := c.get(data); hit {
			return v
		}
	}
	matched := rs.match(data)
	if c != nil {
		c.set(data, matched)
	}
	return matched
}

// LookupFile returns the tag of the first entry of a loaded map data file
// whose pattern matches value, "" if none (or if the file is unknown).
// As upstream: "equals" entries first (exact match), then "contains"
// entries (the match starting leftmost in value wins, ties going to the
// entry first in the file), then "regex" entries in file order.
func (h *Helpers) LookupFile(value, name string) string {
	idx, ok := h.state.Load().maps[name]
	if !ok {
		return ""
	}
	if tag, ok := idx.equals[value]; ok {
		return tag
	}
	// The scan reports matches by increasing position: take the first
	// entry in the file among those at the first position found.
	at, best := -1, int32(-1)
	idx.lits.find(value, func(id int32, pos int) bool {
		if at >= 0 && pos > at {
			return true
		}
		if at < 0 || id < best {
			at, best = pos, id
		}
		return false
	})
	if best >= 0 {
		return idx.contains[best].Tag
	}
	for i, re := range idx.regexps {
		if re.MatchString(value) {
			return idx.regexTags[i]
		}
	}
	return ""
}

// FileMap returns the decoded objects of a loaded map data file, in file
// order (shared, not copied). An unknown file gives nil.
func (h *Helpers) FileMap(name string) []map[string]any {
	idx, ok := h.state.Load().maps[name]
	if !ok {
		return nil
	}
	out := make([]map[string]any, len(idx.entries))
	for i, e := range idx.entries {
		out[i] = e.Fields
	}
	return out
}

// JsonExtract is the package JsonExtract, memoized for blobs that are
// lines of loaded string data files (whose set is fixed), so a filter
// running JsonExtract over a whole data file per event parses each line
// once.
func (h *Helpers) JsonExtract(jsblob, target string) string {
	s := h.state.Load()
	if _, ok := s.jsonLines[jsblob]; !ok {
		return JsonExtract(jsblob, target)
	}
	k := jsonKey{jsblob, target}
	if v, ok := h.jsonMemo.Load(k); ok {
		return v.(string)
	}
	v := JsonExtract(jsblob, target)
	if h.jsonMemoSize.Load() < maxJSONMemo {
		if _, loaded := h.jsonMemo.LoadOrStore(k, v); !loaded {
			h.jsonMemoSize.Add(1)
		}
	}
	return v
}

// cacheLen returns the number of entries in a regexp file's cache, -1 if
// it has none (tests and metrics).
func (h *Helpers) cacheLen(name string) int {
	c, ok := h.state.Load().caches[name]
	if !ok {
		return -1
	}
	return c.len()
}

// CacheSizes returns, per regexp data file with a result cache, the number
// of cached entries (for a cs_regexp_cache_size-like metric).
func (h *Helpers) CacheSizes() map[string]int {
	s := h.state.Load()
	out := make(map[string]int, len(s.caches))
	for name, c := range s.caches {
		out[name] = c.len()
	}
	return out
}
