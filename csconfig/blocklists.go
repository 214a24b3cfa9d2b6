package csconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/rampart-ips/rampart/internal/atomicfile"
	"github.com/rampart-ips/rampart/internal/stricttoml"
)

// Blocklist is one [[blocklists]] subscription of the LAPI: a feed of
// addresses and ranges, fetched from a URL or read from a file every
// Interval, whose entries become decisions with origin "lists" and
// scenario "lists:<name>".
type Blocklist struct {
	Name string `toml:"name"`
	// URL (http or https) or File: exactly one.
	URL  string `toml:"url"`
	File string `toml:"file"`
	// Format is "plain" (one IP or CIDR a line, # comments), "drop"
	// (Spamhaus DROP: "; comment" after the entry), "crowdsec" (NDJSON
	// lines with a "value") or "" to detect it from the content.
	Format string `toml:"format"`
	// Interval between refreshes (DefaultBlocklistInterval; at least
	// MinBlocklistInterval).
	Interval Duration `toml:"interval"`
	// Type is the decisions' type ("ban").
	Type string `toml:"type"`
	// Duration of the decisions. An entry still in the feed is renewed
	// before it ends, so this is how long a feed that stopped answering
	// keeps being enforced: at least half of it, at most all of it
	// (DefaultBlocklistDuration, or 3 intervals when longer; at least 2
	// intervals).
	Duration Duration `toml:"duration"`
	// Headers are sent with each request, e.g. {"X-Api-Key" = "..."} to
	// subscribe to another LAPI's /v1/lists feed.
	Headers map[string]string `toml:"headers"`
	// CACertPath is a PEM file of CAs trusted beside the system roots.
	CACertPath         string `toml:"ca_cert_path"`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
	// Timeout bounds one download (DefaultBlocklistTimeout), MaxBytes its
	// size (DefaultBlocklistMaxBytes).
	Timeout  Duration `toml:"timeout"`
	MaxBytes int64    `toml:"max_bytes"`
}

// Blocklist defaults and bounds.
const (
	DefaultBlocklistInterval = time.Hour
	MinBlocklistInterval     = time.Minute
	DefaultBlocklistDuration = 24 * time.Hour
	DefaultBlocklistTimeout  = time.Minute
	DefaultBlocklistMaxBytes = 64 << 20
)

// BlocklistFormats are the accepted format values ("" detects).
var BlocklistFormats = []string{"", "plain", "drop", "crowdsec"}

var blocklistName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// SetDefaults fills the unset fields of b.
func (b *Blocklist) SetDefaults() {
	if b.Interval.Duration == 0 {
		b.Interval.Duration = DefaultBlocklistInterval
	}
	if b.Type == "" {
		b.Type = "ban"
	}
	if b.Duration.Duration == 0 {
		b.Duration.Duration = max(DefaultBlocklistDuration, 3*b.Interval.Duration)
	}
	if b.Timeout.Duration == 0 {
		b.Timeout.Duration = DefaultBlocklistTimeout
	}
	if b.MaxBytes == 0 {
		b.MaxBytes = DefaultBlocklistMaxBytes
	}
}

// Validate checks one subscription (defaults applied).
func (b *Blocklist) Validate() error {
	if !blocklistName.MatchString(b.Name) {
		return fmt.Errorf("name %q: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", b.Name)
	}
	switch {
	case (b.URL == "") == (b.File == ""):
		return fmt.Errorf("%s: set exactly one of url and file", b.Name)
	case b.URL != "":
		u, err := url.Parse(b.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s: url %q is not an http:// or https:// URL", b.Name, b.URL)
		}
	}
	ok := false
	for _, f := range BlocklistFormats {
		ok = ok || b.Format == f
	}
	if !ok {
		return fmt.Errorf("%s: format %q is unknown (plain, drop, crowdsec, or leave it out to detect it)", b.Name, b.Format)
	}
	if b.Interval.Duration < MinBlocklistInterval {
		return fmt.Errorf("%s: interval %s is below the minimum of %s", b.Name, b.Interval.Duration, MinBlocklistInterval)
	}
	if b.Duration.Duration < 2*b.Interval.Duration {
		return fmt.Errorf("%s: duration %s must be at least twice the interval (%s), or entries would end between two refreshes", b.Name, b.Duration.Duration, b.Interval.Duration)
	}
	if b.Timeout.Duration < 0 || b.MaxBytes < 0 {
		return fmt.Errorf("%s: timeout and max_bytes must not be negative", b.Name)
	}
	if b.Type == "" || len(b.Type) > 64 {
		return fmt.Errorf("%s: type %q: want a decision type such as ban or captcha", b.Name, b.Type)
	}
	return nil
}

func validateBlocklists(lists []Blocklist, out []ListOut) error {
	if err := validateListsOut(out); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := range lists {
		b := &lists[i]
		if err := b.Validate(); err != nil {
			return fmt.Errorf("blocklists: %w", err)
		}
		if seen[b.Name] {
			return fmt.Errorf("blocklists: name %q is used twice", b.Name)
		}
		seen[b.Name] = true
	}
	return nil
}

// ListOut is one [[lists_out]] feed the LAPI serves at /v1/lists/<name>
// to bouncer keys: its active decisions on addresses and ranges as plain
// text, one a line, for firewalls that cannot run a bouncer. "all" (every
// ban) needs no entry. Query parameters of a request replace these.
type ListOut struct {
	Name      string   `toml:"name"`
	Origins   []string `toml:"origins"`    // e.g. ["crowdsec", "cscli", "lists"]; empty: any
	Scenarios []string `toml:"scenarios"`  // scenario substrings; empty: any
	Scopes    []string `toml:"scopes"`     // "ip", "range"; empty: both
	Type      string   `toml:"type"`       // decision type ("ban"); "all": any
	IPVersion int      `toml:"ip_version"` // 4 or 6; 0: both
}

func validateListsOut(lists []ListOut) error {
	seen := map[string]bool{"all": true}
	for _, l := range lists {
		if !blocklistName.MatchString(l.Name) {
			return fmt.Errorf("lists_out: name %q: want 1 to 64 letters, digits, '.', '_' or '-'", l.Name)
		}
		if seen[l.Name] {
			return fmt.Errorf("lists_out: name %q is used twice (or is the built-in all)", l.Name)
		}
		seen[l.Name] = true
		if l.IPVersion != 0 && l.IPVersion != 4 && l.IPVersion != 6 {
			return fmt.Errorf("lists_out %s: ip_version %d: want 4, 6 or 0 (both)", l.Name, l.IPVersion)
		}
		for _, sc := range l.Scopes {
			if !strings.EqualFold(sc, "ip") && !strings.EqualFold(sc, "range") {
				return fmt.Errorf("lists_out %s: scope %q: a plain list holds ip and range only", l.Name, sc)
			}
		}
	}
	return nil
}

// blocklistsFile is the layout of config_paths.blocklists_path, the file
// `cscli blocklists add|remove` manage beside config.toml's own
// [[blocklists]].
type blocklistsFile struct {
	Blocklists []Blocklist `toml:"blocklists"`
}

// LoadBlocklistsFile reads the subscriptions cscli manages, as written
// (no defaults); a missing file holds none.
func LoadBlocklistsFile(path string) ([]Blocklist, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading blocklists: %w", err)
	}
	var f blocklistsFile
	if _, err := stricttoml.Decode(data, path, &f); err != nil {
		return nil, err
	}
	return f.Blocklists, nil
}

// WriteBlocklistsFile replaces the file cscli manages atomically, writing
// only the keys each subscription sets.
func WriteBlocklistsFile(path string, lists []Blocklist) error {
	var buf bytes.Buffer
	buf.WriteString("# Blocklist subscriptions managed by `cscli blocklists add|remove`; the\n" +
		"# LAPI reads them with config.toml's own [[blocklists]] at start and reload.\n")
	for _, b := range lists {
		m := map[string]any{"name": b.Name}
		set := func(k, v string) {
			if v != "" {
				m[k] = v
			}
		}
		set("url", b.URL)
		set("file", b.File)
		set("format", b.Format)
		set("type", b.Type)
		set("ca_cert_path", b.CACertPath)
		for k, d := range map[string]Duration{"interval": b.Interval, "duration": b.Duration, "timeout": b.Timeout} {
			if d.Duration != 0 {
				m[k] = d.Duration.String()
			}
		}
		if len(b.Headers) > 0 {
			m["headers"] = b.Headers
		}
		if b.InsecureSkipVerify {
			m["insecure_skip_verify"] = true
		}
		if b.MaxBytes != 0 {
			m["max_bytes"] = b.MaxBytes
		}
		buf.WriteString("\n")
		if err := toml.NewEncoder(&buf).Encode(map[string]any{"blocklists": []map[string]any{m}}); err != nil {
			return fmt.Errorf("encoding blocklist %s: %w", b.Name, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	// 0600: headers may hold another LAPI's API key.
	if err := atomicfile.WriteBytes(path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
