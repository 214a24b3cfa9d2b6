// Package stricttoml decodes Rampart's TOML files strictly and reports
// every problem the same way, file and line first as compilers do:
//
//	NAME:LINE: KEY: message
//
// A syntax error, a value of the wrong type and a key the target does not
// know (a typo would otherwise be silently ignored) are all errors. What
// the values mean stays the caller's to check.
package stricttoml

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Decode decodes data, the content of the file name, into v and refuses
// keys v has no field for.
func Decode(data []byte, name string, v any) (toml.MetaData, error) {
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(v)
	if err != nil {
		return md, decodeError(name, err)
	}
	if err := unknownKeys(md, data, name); err != nil {
		return md, err
	}
	return md, nil
}

// errorf formats one problem; line 0 (not known) and key "" are left out.
func errorf(name string, line int, key, msg string) error {
	var b strings.Builder
	b.WriteString(name)
	if line > 0 {
		fmt.Fprintf(&b, ":%d", line)
	}
	b.WriteString(": ")
	if key != "" {
		b.WriteString(key)
		b.WriteString(": ")
	}
	b.WriteString(msg)
	return errors.New(b.String())
}

// typeError matches the text of the library's type mismatch errors, the
// only ones it does not return as a ParseError.
var typeError = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key ("(?:[^"\\]|\\.)*")\): (.*)$`)

func decodeError(name string, err error) error {
	var perr toml.ParseError
	if errors.As(err, &perr) {
		return errorf(name, perr.Position.Line, perr.LastKey, perr.Message)
	}
	msg := err.Error()
	if m := typeError.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		key, uerr := strconv.Unquote(m[2])
		if uerr == nil {
			return errorf(name, line, key, m[3])
		}
	}
	return errorf(name, 0, "", strings.TrimPrefix(msg, "toml: "))
}

// maxUnknown bounds the unknown keys named one by one: each is a scan of
// the file, and past a few the file is not what the reader expects anyway.
const maxUnknown = 10

// unknownKeys names every key nothing was decoded into, one per line; the
// keys under an unknown table are not repeated. A key met again (in
// another table of an array) is the next one written.
func unknownKeys(md toml.MetaData, data []byte, name string) error {
	var errs []error
	var reported []toml.Key
	seen := map[string]int{}
	lines := strings.Split(string(data), "\n")
	more := 0
outer:
	for _, k := range md.Undecoded() {
		for _, r := range reported {
			if len(k) > len(r) && slices.Equal(k[:len(r)], r) {
				continue outer
			}
		}
		reported = append(reported, k)
		if len(reported) > maxUnknown {
			more++
			continue
		}
		n := seen[k.String()]
		seen[k.String()]++
		errs = append(errs, errorf(name, keyLine(lines, k, n), k.String(), "unknown key"))
	}
	if more > 0 {
		errs = append(errs, errorf(name, 0, "", fmt.Sprintf("%d more unknown keys", more)))
	}
	return errors.Join(errs...)
}

var (
	headerLine = regexp.MustCompile(`^\s*\[\[?([^\[\]]+)\]\]?\s*(?:#.*)?$`)
	assignLine = regexp.MustCompile(`^\s*([^=#\s][^=#]*?)\s*=(.*)$`)
)

// keyLine finds the line of the n-th (from 0) writing of key k, which the
// library does not tell: the header of a table named k, or the assignment
// of k (a plain or dotted key under its table's header, or a key inside a
// one-line inline table). 0 when not found. The text is only scanned,
// not parsed: it has been decoded already, so it is valid TOML.
func keyLine(lines []string, k toml.Key, n int) int {
	found := func() bool {
		n--
		return n < 0
	}
	var table []string
	for i, l := range lines {
		if m := headerLine.FindStringSubmatch(l); m != nil {
			table = splitKey(m[1])
			if slices.Equal(table, k) && found() {
				return i + 1
			}
			continue
		}
		m := assignLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		full := append(append([]string(nil), table...), splitKey(m[1])...)
		if len(full) > len(k) || !slices.Equal(full, k[:len(full)]) {
			continue
		}
		if len(full) == len(k) {
			if found() {
				return i + 1
			}
			continue
		}
		// An inline table holding the key: {..., last = ...}.
		last := regexp.QuoteMeta(k[len(k)-1])
		if regexp.MustCompile(`[{,]\s*["']?`+last+`["']?\s*=`).MatchString(m[2]) && found() {
			return i + 1
		}
	}
	return 0
}

// splitKey splits a written (possibly dotted, quoted) key into its parts.
func splitKey(s string) []string {
	var parts []string
	for p := range strings.SplitSeq(s, ".") {
		p = strings.TrimSpace(p)
		if len(p) >= 2 && (p[0] == '"' || p[0] == '\'') && p[len(p)-1] == p[0] {
			p = p[1 : len(p)-1]
		}
		parts = append(parts, p)
	}
	return parts
}
