// Package profiles turns an alert that arrives without decisions into
// decisions, the way CrowdSec's LAPI profiles do (section 6 of the protocol
// reference), from profiles written in TOML with upstream's key names.
//
// Profiles are parsed and validated once (every filter and duration_expr is
// compiled with expr-lang at load time), then evaluated in order for each
// alert. The package never touches the database directly: the expression
// helpers that need history (GetDecisionsCount and friends) are answered by
// a Counter the caller passes to each Evaluate call, which the LAPI's store
// implements. A Set is immutable and safe for concurrent use.
package profiles

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/rampart-ips/rampart/internal/stricttoml"
	"github.com/rampart-ips/rampart/models"
)

// Values accepted by on_success, on_failure and on_error.
const (
	Break    = "break"
	Continue = "continue"
	Apply    = "apply"
	Ignore   = "ignore"
)

// LocalSuffix is appended to a profiles file name to find its local
// override file, whose profiles are evaluated before the base ones.
const LocalSuffix = ".local"

// Profile is one [[profile]] table as written in a profiles file. It is
// plain configuration: NewSet validates and compiles it without modifying it.
type Profile struct {
	Name string `toml:"name"`
	// Enabled defaults to true when unset; a disabled profile is still
	// validated and compiled but never evaluated.
	Enabled *bool `toml:"enabled"`
	// Debug logs each evaluation of this profile at debug level.
	Debug bool `toml:"debug"`
	// Filters are expr-lang boolean expressions over Alert, OR'ed.
	Filters   []string           `toml:"filters"`
	Decisions []DecisionTemplate `toml:"decisions"`
	// DurationExpr, when set, computes the duration of the generated
	// decisions; its result replaces the template duration when it is a
	// string (or a time.Duration) that parses as a positive duration.
	DurationExpr string `toml:"duration_expr"`
	// OnSuccess is "break" or "continue" (the default).
	OnSuccess string `toml:"on_success"`
	// OnFailure is accepted ("break" or "continue") but has no effect, as
	// upstream.
	OnFailure string `toml:"on_failure"`
	// OnError is "apply", "continue", "ignore" or "break"; when unset an
	// evaluation error fails the whole Evaluate call.
	OnError string `toml:"on_error"`
	// Notifications names the notifications (files of the notification
	// folder) that the alerts this profile matches are sent to.
	Notifications []string `toml:"notifications"`

	source string // file the profile was read from, for error messages
}

// DecisionTemplate is one entry of a profile's decisions list.
type DecisionTemplate struct {
	Type     string `toml:"type"`
	Duration string `toml:"duration"`
	// Scope defaults to the alert's source scope.
	Scope string `toml:"scope"`
	// Origin, when set, makes the decision origin "crowdsec/<Origin>".
	Origin string `toml:"origin"`
}

// IsEnabled reports whether the profile takes part in evaluation.
func (p *Profile) IsEnabled() bool { return p.Enabled == nil || *p.Enabled }

// label names the profile in error messages.
func (p *Profile) label(idx int) string {
	var b strings.Builder
	if p.source != "" {
		b.WriteString(p.source)
		b.WriteString(": ")
	}
	if p.Name != "" {
		fmt.Fprintf(&b, "profile %q", p.Name)
	} else {
		fmt.Fprintf(&b, "profile #%d", idx+1)
	}
	return b.String()
}

// file is the top-level layout of a profiles file.
type file struct {
	Profile []*Profile `toml:"profile"`
}

// Parse decodes the profiles of one TOML document. name is used in error
// messages (usually the file path). Unknown keys are errors naming the key
// and its line.
// Parse checks everything that does not need compiling; NewSet compiles.
func Parse(data []byte, name string) ([]*Profile, error) {
	var f file
	if _, err := stricttoml.Decode(data, name, &f); err != nil {
		return nil, err
	}
	for i, p := range f.Profile {
		if p == nil {
			return nil, fmt.Errorf("%s: profile #%d is empty", name, i+1)
		}
		p.source = name
		if err := p.validate(i); err != nil {
			return nil, err
		}
	}
	return f.Profile, nil
}

// Load reads the profiles file at path and, if it exists, path+".local",
// whose profiles are placed before the base ones, then compiles them all.
// Finding no profile at all is an error.
func Load(path string) (*Set, error) {
	base, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading profiles: %w", err)
	}
	var all []*Profile
	localPath := path + LocalSuffix
	local, err := os.ReadFile(localPath)
	switch {
	case err == nil:
		lp, err := Parse(local, localPath)
		if err != nil {
			return nil, err
		}
		all = append(all, lp...)
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("reading profiles: %w", err)
	}
	bp, err := Parse(base, path)
	if err != nil {
		return nil, err
	}
	all = append(all, bp...)
	if len(all) == 0 {
		return nil, fmt.Errorf("%s: no [[profile]] defined", path)
	}
	return NewSet(all)
}

// validate checks a profile's static content; idx is its position, for
// messages.
func (p *Profile) validate(idx int) error {
	where := p.label(idx)
	if strings.TrimSpace(p.Name) == "" {
		return fmt.Errorf("%s: missing name", where)
	}
	if len(p.Filters) == 0 {
		return fmt.Errorf("%s: no filters (a profile without filters never matches; use filters = [\"true\"] to match every alert)", where)
	}
	for i, f := range p.Filters {
		if strings.TrimSpace(f) == "" {
			return fmt.Errorf("%s: filter #%d is empty", where, i+1)
		}
	}
	switch p.OnSuccess {
	case "", Break, Continue:
	default:
		return fmt.Errorf("%s: on_success must be %q or %q, not %q", where, Break, Continue, p.OnSuccess)
	}
	switch p.OnFailure {
	case "", Break, Continue:
	default:
		return fmt.Errorf("%s: on_failure must be %q or %q, not %q", where, Break, Continue, p.OnFailure)
	}
	switch p.OnError {
	case "", Apply, Continue, Ignore, Break:
	default:
		return fmt.Errorf("%s: on_error must be one of %q, %q, %q, %q or unset, not %q",
			where, Apply, Continue, Ignore, Break, p.OnError)
	}
	for i, n := range p.Notifications {
		if strings.TrimSpace(n) == "" {
			return fmt.Errorf("%s: notification #%d is empty", where, i+1)
		}
	}
	for i, d := range p.Decisions {
		dw := fmt.Sprintf("%s: decision #%d", where, i+1)
		if strings.TrimSpace(d.Type) == "" {
			return fmt.Errorf("%s: missing type", dw)
		}
		if d.Duration == "" {
			return fmt.Errorf("%s: missing duration", dw)
		}
		dur, err := models.ParseDuration(d.Duration)
		if err != nil {
			return fmt.Errorf("%s: %w", dw, err)
		}
		if dur <= 0 {
			return fmt.Errorf("%s: duration %q must be positive", dw, d.Duration)
		}
		if _, err := models.Expiry(time.Now(), dur); err != nil {
			return fmt.Errorf("%s: duration %q: %w", dw, d.Duration, err)
		}
	}
	return nil
}
