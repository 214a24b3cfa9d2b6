package notify

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rampart-ips/rampart/internal/testdb/storecfg"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// testStore is a real store in the test's folder (SQLite unless
// RAMPART_TEST_DB says otherwise), the broker's source of alerts.
func testStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), storecfg.At(t, filepath.Join(t.TempDir(), "crowdsec.db")))
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// storeAlert stores an alert about ip with a 4h ban and returns its id.
func storeAlert(t *testing.T, st *store.Store, ip, scenario string) int64 {
	t.Helper()
	now := time.Now().UTC()
	a := &models.Alert{Scenario: scenario, Message: "Ip " + ip + " performed " + scenario, EventsCount: 3,
		StartAt: now.Format(time.RFC3339), StopAt: now.Format(time.RFC3339), Remediation: true, Kind: "crowdsec",
		Source: &models.Source{Scope: "Ip", Value: ip, IP: ip},
		Events: []*models.Event{{Timestamp: now.Format(time.RFC3339), Meta: []models.Meta{{Key: "target_user", Value: "root"}}}}}
	p, err := models.ParseDuration("4h")
	if err != nil {
		t.Fatal(err)
	}
	na := store.NewAlert{Alert: a, UUID: uuid.NewString(), StartAt: now, StopAt: now,
		Decisions: []store.NewDecision{{UUID: uuid.NewString(), Until: now.Add(p), Scenario: scenario, Type: "ban",
			Scope: "Ip", Value: ip, Origin: "crowdsec"}}}
	ids, err := st.CreateAlerts(context.Background(), []store.NewAlert{na})
	if err != nil {
		t.Fatalf("storing alert: %v", err)
	}
	return ids[0]
}

// mustParse parses one notification written in TOML.
func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	cs, err := Parse([]byte(doc), "test.toml")
	if err != nil {
		t.Fatalf("parsing %s: %v", doc, err)
	}
	if len(cs) != 1 {
		t.Fatalf("%d notifications, want 1", len(cs))
	}
	return cs[0]
}

// runBroker starts a broker with fast retries until the test ends.
func runBroker(t *testing.T, st *store.Store, cs ...*Config) *Broker {
	t.Helper()
	b, err := NewBroker(cs, st)
	if err != nil {
		t.Fatal(err)
	}
	b.retryMin, b.retryMax = 10*time.Millisecond, 50*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

// waitFor polls cond until it holds or 60 s pass: only a bound for a
// test gone wrong (TestGroupIsBounded reads back 1024 alerts, which took
// 11 s under -race beside the parallel tests on a loaded machine).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stats returns the figures of the notification name.
func stats(b *Broker, name string) Stats {
	for _, s := range b.Stats() {
		if s.Name == name {
			return s
		}
	}
	return Stats{}
}

// q quotes s for TOML.
func q(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
