package acquisition

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// journalEntry holds the fields of one `journalctl --output=json` object
// that a line is built from; the decoder skips the others. Each is raw
// because journalctl writes a field as a string, as an array of byte
// values (binary or non-UTF-8 data), as null (over 4096 bytes, without
// --all), or as an array of those when the entry repeats the field.
type journalEntry struct {
	Cursor     json.RawMessage `json:"__CURSOR"`
	Realtime   json.RawMessage `json:"__REALTIME_TIMESTAMP"`
	Message    json.RawMessage `json:"MESSAGE"`
	Identifier json.RawMessage `json:"SYSLOG_IDENTIFIER"`
	Comm       json.RawMessage `json:"_COMM"`
	PID        json.RawMessage `json:"_PID"`
	SyslogPID  json.RawMessage `json:"SYSLOG_PID"`
	Hostname   json.RawMessage `json:"_HOSTNAME"`
}

// journalRecord is a decoded entry.
type journalRecord struct {
	Cursor  string
	Time    time.Time // zero when the entry had no usable timestamp
	Host    string
	Ident   string
	PID     string
	Message string
	HasMsg  bool // false when MESSAGE was absent or null (too large)
}

// decodeJournalEntry reads one JSON object of journalctl's output.
func decodeJournalEntry(line []byte) (journalRecord, error) {
	var e journalEntry
	if err := json.Unmarshal(line, &e); err != nil {
		return journalRecord{}, fmt.Errorf("decoding journal entry: %w", err)
	}
	var r journalRecord
	var err error
	if r.Cursor, _, err = journalField(e.Cursor); err != nil {
		return r, fmt.Errorf("__CURSOR: %w", err)
	}
	if r.Cursor == "" {
		return r, errors.New("journal entry without __CURSOR")
	}
	if ts, ok, _ := journalField(e.Realtime); ok {
		// Microseconds since the epoch, as a decimal string.
		if us, err := strconv.ParseInt(ts, 10, 64); err == nil && us > 0 {
			r.Time = time.UnixMicro(us)
		}
	}
	if r.Message, r.HasMsg, err = journalField(e.Message); err != nil {
		return r, fmt.Errorf("MESSAGE: %w", err)
	}
	// The same choices as journalctl's short output: the syslog
	// identifier, else the command name; the sender's real PID, else the
	// one it claims.
	r.Ident, _, _ = journalField(e.Identifier)
	if r.Ident == "" {
		r.Ident, _, _ = journalField(e.Comm)
	}
	r.PID, _, _ = journalField(e.PID)
	if r.PID == "" {
		r.PID, _, _ = journalField(e.SyslogPID)
	}
	r.Host, _, _ = journalField(e.Hostname)
	return r, nil
}

// journalField decodes one field value: a string, an array of bytes, or
// an array of either (the first is taken). ok is false for an absent or
// null field.
func journalField(raw json.RawMessage) (v string, ok bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", false, nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, err
		}
		return s, true, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return "", false, err
		}
		if len(items) == 0 {
			return "", true, nil
		}
		first := bytes.TrimSpace(items[0])
		if len(first) > 0 && (first[0] == '"' || first[0] == '[' || first[0] == 'n') {
			return journalField(first) // a repeated field
		}
		var b []byte
		for _, it := range items {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(it)), 10, 8)
			if err != nil {
				return "", false, fmt.Errorf("byte array holds %s", it)
			}
			b = append(b, byte(n))
		}
		return string(b), true, nil
	}
	return "", false, fmt.Errorf("unexpected value %s", syslogPrefix(raw, 40))
}

// journalRaw builds the line the parsers see from an entry: the classic
// syslog line journalctl's default output prints, and upstream's
// journalctl source passes on (it runs journalctl in that format). So
// labels type = "syslog" works as it does upstream and for log files.
func journalRaw(r journalRecord, fallbackTime time.Time) string {
	t := r.Time
	if t.IsZero() {
		t = fallbackTime
	}
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	return classicSyslogLine(t, syslogToken(host), syslogToken(r.Ident), syslogToken(r.PID), r.Message)
}
