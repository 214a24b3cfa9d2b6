package notify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// ParseYAML decodes the notifications of an upstream YAML file: one per
// document (documents separated by ---; empty ones, such as a trailing
// commented-out example, are skipped), upstream's keys. Decoding is
// strict as for TOML: an unknown key is an error naming the file and the
// line, written as the TOML loader writes them (NAME:LINE: KEY: message).
// Every notification then goes through the same checks as a TOML one.
func ParseYAML(data []byte, name string) ([]*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var out []*Config
	for doc := 1; ; doc++ {
		var c Config
		err := dec.Decode(&c)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, yamlError(name, doc, err)
		}
		if reflect.ValueOf(c).IsZero() {
			continue
		}
		if err := c.check(name, fmt.Sprintf("document #%d", doc)); err != nil {
			return nil, err
		}
		out = append(out, &c)
	}
}

var (
	// yaml.v3's wordings: a key without a field, a value of the wrong
	// type (both "line N: ..." inside a TypeError), a syntax error.
	yamlUnknownKey = regexp.MustCompile(`^line (\d+): field (\S+) not found in type `)
	yamlLine       = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
)

// yamlError rewrites a yaml.v3 error in the TOML loader's style, one line
// per problem.
func yamlError(name string, doc int, err error) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var errs []error
	for _, m := range msgs {
		if u := yamlUnknownKey.FindStringSubmatch(m); u != nil {
			errs = append(errs, fmt.Errorf("%s:%s: %s: unknown key", name, u[1], u[2]))
			continue
		}
		if l := yamlLine.FindStringSubmatch(m); l != nil {
			errs = append(errs, fmt.Errorf("%s:%s: %s", name, l[1], l[2]))
			continue
		}
		// Without a line (a duration that does not parse): the document.
		errs = append(errs, fmt.Errorf("%s: document #%d: %s", name, doc, strings.TrimPrefix(m, "yaml: ")))
	}
	return errors.Join(errs...)
}
