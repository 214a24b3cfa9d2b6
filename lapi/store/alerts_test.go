package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// A push's ids come back in its order across the multi-row chunks: known
// UUIDs answer with their stored id, a UUID repeated within the push is
// stored once and answered twice, and every new alert keeps its own
// fields, events and decisions.
func TestPushAlertsIDsAndRows(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "db"))
	defer s.Close()
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	mk := func(i int, uuid string) NewAlert {
		v := fmt.Sprintf("192.0.2.%d", i%250)
		r, _ := ParseRange(v)
		a := &models.Alert{Scenario: fmt.Sprintf("s%d", i), Message: fmt.Sprintf("m%d", i), Source: &models.Source{Scope: "Ip", Value: v},
			Events: []*models.Event{{Timestamp: now.UTC().Format(time.RFC3339), Meta: []models.Meta{{Key: "n", Value: fmt.Sprint(i)}}}}}
		return NewAlert{Alert: a, UUID: uuid, StartAt: now, StopAt: now, Decisions: []NewDecision{{UUID: uuid + "-d", Until: now.Add(time.Hour),
			Scenario: a.Scenario, Type: "ban", Scope: "Ip", Value: v, Origin: "crowdsec", Range: r}}}
	}
	first, err := s.CreateAlerts(ctx, []NewAlert{mk(0, "known-0"), mk(1, "known-1")})
	if err != nil {
		t.Fatal(err)
	}
	var push []NewAlert
	for i := 2; i < 152; i++ { // beyond two chunks of 64
		push = append(push, mk(i, fmt.Sprintf("u-%d", i)))
	}
	push[10] = mk(0, "known-0")
	push[20] = mk(1, "known-1")
	push[100] = mk(5, "u-5") // a repeat of push[3] within the push
	ids, err := s.CreateAlerts(ctx, push)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(push) {
		t.Fatalf("%d ids for %d alerts", len(ids), len(push))
	}
	if ids[10] != first[0] || ids[20] != first[1] || ids[100] != ids[3] {
		t.Errorf("known and repeated UUIDs: ids %d %d %d, want %d %d %d", ids[10], ids[20], ids[100], first[0], first[1], ids[3])
	}
	seen := map[int64]bool{}
	for i, id := range ids {
		if i == 10 || i == 20 || i == 100 {
			continue
		}
		if seen[id] {
			t.Fatalf("id %d given twice", id)
		}
		seen[id] = true
		a, err := s.GetAlert(ctx, id, now)
		if err != nil {
			t.Fatal(err)
		}
		want := push[i].Alert
		if a.UUID != push[i].UUID || a.Scenario != want.Scenario || a.Message != want.Message || a.Source.Value != want.Source.Value ||
			len(a.Events) != 1 || a.Events[0].Meta[0].Value != want.Events[0].Meta[0].Value || len(a.Decisions) != 1 || a.Decisions[0].Scenario != want.Scenario {
			t.Errorf("alert %d (id %d) read back as %+v", i, id, a)
		}
	}
	var n int
	if err := s.QueryRowForTest(`SELECT COUNT(*) FROM alerts`).Scan(&n); err != nil || n != 2+len(push)-3 {
		t.Errorf("%d alerts stored (%v), want %d", n, err, 2+len(push)-3)
	}
	if err := s.QueryRowForTest(`SELECT COUNT(*) FROM decisions`).Scan(&n); err != nil || n != 2+len(push)-3 {
		t.Errorf("%d decisions stored (%v), want %d", n, err, 2+len(push)-3)
	}
}
