package cscli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"gopkg.in/yaml.v3"
)

// redacted replaces every secret cscli shows or puts in a support dump.
const redacted = "********"

// isSecretKey says whether a configuration key holds a secret: passwords,
// API and bouncer keys, tokens, JWT and other secrets, and a Slack webhook
// (its URL is its credential). Paths to key files
// (key_path, key_file) are not secrets; the files themselves are never
// read.
func isSecretKey(k string) bool {
	// Header names too: a [[blocklists]] headers table's "X-Api-Key".
	k = strings.ReplaceAll(strings.ToLower(k), "-", "_")
	for _, w := range []string{"password", "passwd", "secret", "token", "private", "authorization", "cookie"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return k == "key" || k == "webhook" || strings.HasSuffix(k, "_key") || strings.HasSuffix(k, "apikey")
}

// redactTree replaces, in a decoded TOML document, the value of every
// secret key, at any depth, and adds the string values it replaced to
// found (when not nil).
func redactTree(v any, found *[]string) any {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if isSecretKey(k) {
				if s, ok := val.(string); ok && s == "" {
					continue // an unset secret says nothing; keep it visible as unset
				}
				if s, ok := val.(string); ok && found != nil {
					*found = append(*found, s)
				}
				t[k] = redacted
				continue
			}
			t[k] = redactTree(val, found)
		}
	case []map[string]any:
		for _, m := range t {
			redactTree(m, found)
		}
	case []any:
		for i := range t {
			t[i] = redactTree(t[i], found)
		}
	}
	return v
}

// redactTOML decodes a TOML document and returns it re-encoded with its
// secrets replaced (comments are lost: nothing in them is trusted).
func redactTOML(data []byte, found *[]string) ([]byte, error) {
	var m map[string]any
	if _, err := toml.Decode(string(data), &m); err != nil {
		return nil, fmt.Errorf("decoding TOML: %w", err)
	}
	redactTree(m, found)
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(m); err != nil {
		return nil, fmt.Errorf("encoding TOML: %w", err)
	}
	return b.Bytes(), nil
}

// redactYAML is redactTOML for a YAML file of one or more documents
// (upstream's notification files), re-encoded as YAML.
func redactYAML(data []byte, found *[]string) ([]byte, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("decoding YAML: %w", err)
		}
		if doc == nil {
			continue
		}
		if err := enc.Encode(redactTree(doc, found)); err != nil {
			return nil, fmt.Errorf("encoding YAML: %w", err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding YAML: %w", err)
	}
	return b.Bytes(), nil
}

// toTree turns a configuration struct into a TOML document tree, through
// its TOML encoding, so keys are the file's keys.
func toTree(v any) (map[string]any, error) {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(v); err != nil {
		return nil, fmt.Errorf("encoding configuration: %w", err)
	}
	var m map[string]any
	if _, err := toml.Decode(b.String(), &m); err != nil {
		return nil, fmt.Errorf("decoding configuration: %w", err)
	}
	return m, nil
}

// sortedKeys lists a table's keys in order.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
