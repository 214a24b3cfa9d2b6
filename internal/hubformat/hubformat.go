// Package hubformat holds the checks the parser and scenario loaders share
// to refuse, at load, hub constructs Rampart does not implement, instead of
// loading them and behaving differently from upstream CrowdSec: a format
// version outside what upstream accepts, and keys the strict YAML decoding
// found no field for (told apart: upstream keys Rampart lacks, and keys
// that are in no version of the format).
package hubformat

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/rampart-ips/rampart/internal/version"
)

// CheckFormat checks, against the bounds `crowdsec -version` prints (the
// same as upstream's), a document's "format" value (a YAML number or
// string; nil when absent, which upstream reads as 1.0).
func CheckFormat(v any) error {
	var s string
	switch f := v.(type) {
	case nil:
		return nil
	case string:
		s = strings.TrimSpace(f)
	case int:
		s = strconv.Itoa(f)
	case float64:
		s = strconv.FormatFloat(f, 'f', -1, 64)
	default:
		return fmt.Errorf("format %v is not a version number", v)
	}
	if s == "" {
		return nil
	}
	ver, err := parseVersion(s)
	if err != nil {
		return err
	}
	lo, _ := parseVersion(version.HubFormatMin)
	hi, _ := parseVersion(version.HubFormatMax)
	if compare(ver, lo) < 0 || compare(ver, hi) > 0 {
		return fmt.Errorf("format %s is not supported (upstream and Rampart load %s to %s)", s, version.HubFormatMin, version.HubFormatMax)
	}
	return nil
}

func parseVersion(s string) ([3]int, error) {
	var out [3]int
	parts := strings.Split(strings.TrimPrefix(s, "v"), ".")
	if len(parts) > 3 {
		return out, fmt.Errorf("format %q is not a version number", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, fmt.Errorf("format %q is not a version number", s)
		}
		out[i] = n
	}
	return out, nil
}

func compare(a, b [3]int) int {
	for i := range a {
		if a[i] != b[i] {
			return a[i] - b[i]
		}
	}
	return 0
}

// unknownField is how yaml.v3's strict decoding (KnownFields) names a key
// the target struct has no field for.
var unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type `)

// KeyError is a key the strict decoding refused, with its line.
type KeyError struct {
	Key  string
	Line int
	Err  error
}

func (e *KeyError) Error() string { return fmt.Sprintf("line %d: %s: %v", e.Line, e.Key, e.Err) }
func (e *KeyError) Unwrap() error { return e.Err }

// UnknownKey turns the first unknown-key complaint of a strict yaml.v3
// decoding error into a KeyError whose message says whether upstream has
// the key (in upstream, a construct Rampart does not implement) or nobody
// does (a typo, or a key of another kind of file). upstream maps such keys
// to what they are for; it returns nil when err is not about a key.
func UnknownKey(err error, upstream map[string]string) *KeyError {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return nil
	}
	for _, msg := range te.Errors {
		m := unknownField.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		line, _ := strconv.Atoi(m[1])
		if what, ok := upstream[m[2]]; ok {
			return &KeyError{Key: m[2], Line: line, Err: fmt.Errorf("%s is not supported by Rampart", what)}
		}
		return &KeyError{Key: m[2], Line: line, Err: errors.New("unknown key (not part of the hub format)")}
	}
	return nil
}
