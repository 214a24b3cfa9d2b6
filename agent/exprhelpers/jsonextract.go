package exprhelpers

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// JSON extraction, following upstream's jsonparser-based helpers: a target
// "a.b[0].c" is the key path ["a", "b", "[0]", "c"]; "[n]" indexes an
// array. For an object key the first occurrence wins. Results are the raw
// JSON text of the value, except that a string value loses its quotes
// (JsonExtract keeps its escapes, JsonExtractUnescape decodes them).

// splitTarget turns "a.b[0].c" into ["a", "b", "[0]", "c"] as upstream.
func splitTarget(target string) []string {
	if !strings.HasPrefix(target, "[") {
		target = strings.ReplaceAll(target, "[", ".[")
	}
	return strings.Split(target, ".")
}

// jsonLookup returns the raw JSON of the value at path in blob.
func jsonLookup(blob string, path []string) (json.RawMessage, bool) {
	cur := json.RawMessage(blob)
	for _, key := range path {
		next, ok := jsonStep(cur, key)
		if !ok {
			return nil, false
		}
		cur = next
	}
	// A well-formed document only: reject trailing garbage or bad syntax
	// inside the selected value.
	if !json.Valid(cur) {
		return nil, false
	}
	return cur, true
}

// jsonStep descends one key (or "[n]" index) into raw.
func jsonStep(raw json.RawMessage, key string) (json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, false
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil, false
	}
	if len(key) >= 2 && key[0] == '[' && key[len(key)-1] == ']' {
		if delim != '[' {
			return nil, false
		}
		n, err := strconv.Atoi(key[1 : len(key)-1])
		if err != nil || n < 0 {
			return nil, false
		}
		for i := 0; dec.More(); i++ {
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return nil, false
			}
			if i == n {
				return v, true
			}
		}
		return nil, false
	}
	if delim != '{' {
		return nil, false
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, false
		}
		k, ok := kt.(string)
		if !ok {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		if k == key {
			return v, true
		}
	}
	return nil, false
}

// JsonExtractLib returns the value at the key path in jsblob ("" if
// absent or if jsblob is not JSON); strings come without quotes, escapes
// kept; objects, arrays, numbers, booleans and null as raw JSON.
func JsonExtractLib(jsblob string, target ...string) string {
	v, ok := jsonLookup(jsblob, target)
	if !ok {
		return ""
	}
	if len(v) >= 2 && v[0] == '"' {
		return string(v[1 : len(v)-1])
	}
	return string(v)
}

// JsonExtract returns the value at a dotted target ("a.b[0].c"); see
// JsonExtractLib.
func JsonExtract(jsblob, target string) string {
	return JsonExtractLib(jsblob, splitTarget(target)...)
}

// JsonExtractUnescape returns the string at the key path, with JSON
// escapes decoded; "" if absent or not a string.
func JsonExtractUnescape(jsblob string, target ...string) string {
	v, ok := jsonLookup(jsblob, target)
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return ""
	}
	return s
}

// JsonExtractSlice returns the array at a dotted target, decoded; nil if
// absent or not an array.
func JsonExtractSlice(jsblob, target string) []any {
	v, ok := jsonLookup(jsblob, splitTarget(target))
	if !ok || len(v) == 0 || v[0] != '[' {
		return nil
	}
	var out []any
	if err := json.Unmarshal(v, &out); err != nil {
		return nil
	}
	return out
}

// JsonExtractObject returns the object at a dotted target, decoded; nil if
// absent or not an object.
func JsonExtractObject(jsblob, target string) map[string]any {
	v, ok := jsonLookup(jsblob, splitTarget(target))
	if !ok || len(v) == 0 || v[0] != '{' {
		return nil
	}
	var out map[string]any
	if err := json.Unmarshal(v, &out); err != nil {
		return nil
	}
	return out
}
