package models

import (
	"slices"
	"testing"

	"github.com/google/uuid"
)

// The UUIDs the agent gives its alerts start with their time, so that the
// LAPI's index of alert UUIDs grows at its end (version 7): with random
// ones a replay's every commit rewrote most of that index.
func TestAlertUUIDsGrow(t *testing.T) {
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = NewAlertUUID()
		u, err := uuid.Parse(ids[i])
		if err != nil {
			t.Fatal(err)
		}
		if u.Version() != 7 {
			t.Fatalf("%s: version %d, want 7", ids[i], u.Version())
		}
	}
	if !slices.IsSorted(ids) {
		t.Fatal("alert UUIDs made one after the other do not grow")
	}
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Fatal("alert UUIDs repeat")
	}
}
