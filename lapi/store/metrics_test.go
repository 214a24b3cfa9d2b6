package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// naiveActiveCounts is the full-table grouping the triggers replace.
func naiveActiveCounts(t *testing.T, s *Store, now time.Time) []DecisionCount {
	t.Helper()
	rows, err := s.r.QueryContext(context.Background(), `SELECT scenario, origin, type, scope, COUNT(*) FROM decisions
		WHERE active AND until > ? GROUP BY scenario, origin, type, scope`, now.UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []DecisionCount
	for rows.Next() {
		var d DecisionCount
		if err := rows.Scan(&d.Scenario, &d.Origin, &d.Type, &d.Scope, &d.Count); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func sortCounts(c []DecisionCount) []DecisionCount {
	slices.SortFunc(c, func(a, b DecisionCount) int {
		return strings.Compare(a.Scenario+"\x00"+a.Origin+"\x00"+a.Type+"\x00"+a.Scope, b.Scenario+"\x00"+b.Origin+"\x00"+b.Type+"\x00"+b.Scope)
	})
	return c
}

// TestCountActiveDecisionsMatchesTable drives decisions and alerts through
// every way they start and end and checks the trigger-kept counts against a
// full grouping of the tables each time.
func TestCountActiveDecisionsMatchesTable(t *testing.T) {
	ctx := context.Background()
	s := openBench(t)
	now := time.Now()
	add := func(alertUUID, scenario, origin, typ string, n int, ttl time.Duration) {
		t.Helper()
		ds := make([]NewDecision, n)
		for i := range ds {
			// Every third one a range: the counts are per scope too.
			scope, v := "Ip", fmt.Sprintf("192.0.2.%d", i)
			if i%3 == 2 {
				scope, v = "Range", fmt.Sprintf("198.51.100.%d/32", i)
			}
			r, _ := ParseRange(v)
			ds[i] = NewDecision{UUID: fmt.Sprintf("%s-%d", alertUUID, i), Until: now.Add(ttl), Scenario: scenario,
				Type: typ, Scope: scope, Value: v, Origin: origin, Range: r}
		}
		a := &models.Alert{Scenario: scenario, Source: &models.Source{Scope: "Ip", Value: "192.0.2.1"}}
		if _, err := s.CreateAlerts(ctx, []NewAlert{{Alert: a, UUID: alertUUID, StartAt: now, StopAt: now, Decisions: ds}}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, at time.Time, wantTotal int64) {
		t.Helper()
		got, err := s.CountActiveDecisions(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		want := naiveActiveCounts(t, s, at)
		if !slices.Equal(sortCounts(got), sortCounts(want)) {
			t.Fatalf("%s: counted %+v, table has %+v", step, got, want)
		}
		alerts, err := s.CountAlertsByScenario(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantAlerts := map[string]int64{}
		rows, err := s.r.QueryContext(ctx, `SELECT scenario, COUNT(*) FROM alerts GROUP BY scenario`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var sc string
			var n int64
			if err := rows.Scan(&sc, &n); err != nil {
				t.Fatal(err)
			}
			wantAlerts[sc] = n
		}
		rows.Close()
		if !maps.Equal(alerts, wantAlerts) {
			t.Fatalf("%s: alerts counted %v, table has %v", step, alerts, wantAlerts)
		}
		var total int64
		for _, c := range got {
			total += c.Count
		}
		if total != wantTotal {
			t.Fatalf("%s: %d active, want %d", step, total, wantTotal)
		}
	}
	add("a1", "crowdsecurity/ssh-bf", "crowdsec", "ban", 5, 4*time.Hour)
	add("a2", "crowdsecurity/http-probing", "crowdsec", "ban", 3, 4*time.Hour)
	add("a3", "manual", "cscli", "captcha", 2, time.Minute)
	check("inserted", now, 10)
	// Past the captcha's expiry, before any sweep: subtracted at read time.
	check("expired, not swept", now.Add(2*time.Minute), 8)
	if _, err := s.SweepExpired(ctx, now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	check("swept", now.Add(2*time.Minute), 8)
	if _, err := s.DeleteDecisions(ctx, DecisionFilter{Scenario: "crowdsecurity/http-probing", Value: "192.0.2.0"}); err != nil {
		t.Fatal(err)
	}
	check("one deleted", now, 7)
	if _, err := s.DeleteAlerts(ctx, AlertFilter{Scenario: "crowdsecurity/ssh-bf"}); err != nil {
		t.Fatal(err)
	}
	check("alert deleted (its decisions end)", now, 2)
	if _, err := s.Flush(ctx, FlushPolicy{TombstoneMinAge: -time.Hour}, now.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	check("flushed", now, 0)
	add("a4", "crowdsecurity/ssh-bf", "crowdsec", "ban", 4, 4*time.Hour)
	check("re-added", now, 4)
}

// TestServerCountTriggersPerStatement: on PostgreSQL the decision counts are
// kept by statement-level triggers. Row-level ones update one counts row
// once per decision, and within a transaction each update walks the chain
// of versions the earlier ones left: an import push of 50,000 decisions
// took about 40 s.
func TestServerCountTriggersPerStatement(t *testing.T) {
	s := openBench(t)
	if s.d.kind != postgresDB {
		t.Skip("PostgreSQL only: the other engines' triggers are per row")
	}
	var rowLevel int
	// tgtype bit 0 is TRIGGER_TYPE_ROW.
	if err := s.r.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM pg_trigger
		WHERE tgrelid = 'decisions'::regclass AND NOT tgisinternal AND tgtype & 1 = 1`).Scan(&rowLevel); err != nil {
		t.Fatal(err)
	}
	if rowLevel != 0 {
		t.Fatalf("%d row-level triggers on decisions", rowLevel)
	}
}
