package csconfig

import (
	"fmt"
	"net/url"
	"regexp"
	"time"
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

func validateBlocklists(lists []Blocklist) error {
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
