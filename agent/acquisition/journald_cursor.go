package acquisition

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rampart-ips/rampart/internal/atomicfile"
)

// journalCursorFile is the state file of one journalctl source: where it
// stopped reading, so a restart resumes there instead of skipping what
// was logged while the agent was down. It is JSON:
//
//	{"filters":["_SYSTEMD_UNIT=ssh.service"],"cursor":"s=...;i=...","saved":"2025-01-02T03:04:05Z"}
//
// Filters is checked on load: a cursor belongs to the matches it was read
// with.
type journalCursorFile struct {
	Filters []string  `json:"filters"`
	Cursor  string    `json:"cursor"`
	Saved   time.Time `json:"saved"`
	// Warm is the checkpoints a start's warm-up begins at (see
	// journalSource.warmup); a checkpoint without cursor is the end of
	// the journal when the source started without one.
	Warm journalRing `json:"warm,omitempty"`
}

// journalRing is a journal source's checkpoints, by cursor.
type journalRing = warmRing[string]

// journalCursorPath names the state file of a set of filters.
func journalCursorPath(stateDir string, filters []string) string {
	return stateFileName(stateDir, "journalctl", filters, ".cursor")
}

// loadJournalCursor returns the saved cursor, "" when there is none.
func loadJournalCursor(path string, filters []string) (string, error) {
	f, err := loadJournalState(path, filters)
	return f.Cursor, err
}

// loadJournalState returns the state file, empty when there is none.
func loadJournalState(path string, filters []string) (journalCursorFile, error) {
	var f journalCursorFile
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("reading journal cursor: %w", err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return journalCursorFile{}, fmt.Errorf("reading journal cursor %s: %w", path, err)
	}
	if !slices.Equal(f.Filters, filters) {
		return journalCursorFile{}, fmt.Errorf("journal cursor %s was saved for filters %q", path, f.Filters)
	}
	return f, nil
}

// saveJournalCursor replaces the state file atomically: a crash leaves
// the old cursor or the new one, never half of one.
func saveJournalCursor(path string, filters []string, cursor string, now time.Time) error {
	return saveJournalState(path, journalCursorFile{Filters: filters, Cursor: cursor, Saved: now.UTC()})
}

func saveJournalState(path string, f journalCursorFile) error {
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encoding journal cursor: %w", err)
	}
	data = append(data, '\n')
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	if err := atomicfile.WriteBytes(path, data, 0o600); err != nil {
		return fmt.Errorf("saving journal cursor: %w", err)
	}
	return nil
}
