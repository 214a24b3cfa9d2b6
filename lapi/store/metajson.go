package store

import (
	"encoding/json"

	"github.com/rampart-ips/rampart/models"
)

// appendMetaJSON appends an event's meta as stored: the JSON array of its
// pairs, each truncated to the column limits, exactly as json.Marshal
// writes it ([] when empty). Writing it directly saves encoding/json's
// reflection on the hundred thousand events of a replay.
func appendMetaJSON(dst []byte, meta []models.Meta) []byte {
	dst = append(dst, '[')
	for i, m := range meta {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"key":`...)
		dst = appendJSONString(dst, truncate(m.Key, maxMetaKey))
		dst = append(dst, `,"value":`...)
		dst = appendJSONString(dst, truncate(m.Value, maxMetaValue))
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendJSONString appends s as json.Marshal writes it. Printable ASCII
// without the characters it escapes is copied as is; anything else (other
// escapes, UTF-8, invalid bytes) is left to encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
