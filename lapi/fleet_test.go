package lapi

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/testdb"
	"github.com/rampart-ips/rampart/models"
)

// TestLongPollAcrossLAPIs: two LAPIs on one server database; a decision
// added through LAPI A wakes a bouncer long-polling LAPI B (PostgreSQL
// LISTEN/NOTIFY, MySQL's poll of the sequence), well before its wait ends.
func TestLongPollAcrossLAPIs(t *testing.T) {
	if testdb.IsSQLite() {
		t.Skip("several LAPIs share a server database, not a SQLite file")
	}
	path := filepath.Join(t.TempDir(), "crowdsec.db")
	la := startLAPIAt(t, path, nil)
	lb := startLAPIAt(t, path, nil)
	key := la.addBouncer("fw")
	lb.stream(key, "&startup=true")
	done := make(chan models.StreamResponse, 1)
	start := time.Now()
	go func() { done <- lb.stream(key, "&wait=60s") }()
	time.Sleep(300 * time.Millisecond)
	select {
	case got := <-done:
		t.Fatalf("long-poll on B returned before any change: %+v", got)
	default:
	}
	la.push(manualAlert("192.0.2.5", "Ip", "4h", "cscli"))
	got := <-done
	expectStream(t, "long-poll on B", got, []string{"192.0.2.5"}, nil)
	if el := time.Since(start); el > 30*time.Second {
		t.Errorf("long-poll on B returned after %s: not woken by A's change, only by its wait ending", el)
	}
	// And the other way round.
	la.stream(key, "&startup=true")
	go func() { done <- la.stream(key, "&wait=60s") }()
	time.Sleep(300 * time.Millisecond)
	start = time.Now()
	lb.push(manualAlert("192.0.2.6", "Ip", "4h", "cscli"))
	got = <-done
	expectStream(t, "long-poll on A", got, []string{"192.0.2.6"}, nil)
	if el := time.Since(start); el > 30*time.Second {
		t.Errorf("long-poll on A returned after %s", el)
	}
}
