package lapi

import (
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// TestPostAlertsTimeRange: a decision whose expiry, or an alert whose
// start_at or stop_at, lies past 2262-04-11 (where int64 nanoseconds wrap)
// is refused with 400 and nothing of the batch is written, instead of a ban
// "until 2300" being stored as expired in 1716. The longest expiry that fits
// is kept as it is.
func TestPostAlertsTimeRange(t *testing.T) {
	l := startLAPI(t, nil)
	l.login()
	far := "9999-12-31T00:00:00Z"
	withTimes := func(a *models.Alert, start, stop string) *models.Alert {
		a.StartAt, a.StopAt = start, stop
		return a
	}
	now := time.Now().UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		what  string
		alert *models.Alert
		msg   string
	}{
		{"100000d", manualAlert("203.0.113.99", "Ip", "100000d", "cscli"), `decision on 203.0.113.99: duration "100000d" from stop_at: it would end at 2`},
		{"106751d", manualAlert("203.0.113.98", "Ip", "106751d", "cscli"), `decision on 203.0.113.98: duration "106751d" from stop_at: it would end at 2`},
		{"2562047h", manualAlert("203.0.113.97", "Ip", "2562047h", "cscli"), `decision on 203.0.113.97: duration "2562047h" from stop_at: it would end at 2`},
		{"106752d", manualAlert("203.0.113.96", "Ip", "106752d", "cscli"), `decision on 203.0.113.96: invalid duration "106752d": longer than 106751d`},
		{"3000000h", manualAlert("203.0.113.95", "Ip", "3000000h", "cscli"), `decision on 203.0.113.95: invalid duration "3000000h": longer than 106751d`},
		{"stop_at 9999-12-31", withTimes(manualAlert("203.0.113.94", "Ip", "4h", "cscli"), now, far), "stop_at: 9999-12-31T00:00:00Z is out of range"},
		{"start_at 9999-12-31", withTimes(manualAlert("203.0.113.93", "Ip", "4h", "cscli"), far, now), "start_at: 9999-12-31T00:00:00Z is out of range"},
		{"start_at year 1", withTimes(manualAlert("203.0.113.92", "Ip", "4h", "cscli"), "0001-01-01T00:00:00Z", now), "start_at: 0001-01-01T00:00:00Z is out of range"},
		{"profile decision after stop_at 2262-04-11T20:00", withTimes(agentAlert("203.0.113.91", "x/y"), now, "2262-04-11T20:00:00Z"),
			`decision on 203.0.113.91: duration "4h" from stop_at: it would end at 2262-04-12T00:00:00Z`},
	} {
		r := l.pushRaw([]*models.Alert{manualAlert("192.0.2.1", "Ip", "4h", "cscli"), tc.alert})
		if r.Status != 400 {
			t.Errorf("%s: status %d, want 400 (body %s)", tc.what, r.Status, r.Body)
			continue
		}
		if m, _ := decodeObj(t, r.Body)["message"].(string); !strings.HasPrefix(m, tc.msg) || !strings.Contains(m, models.ErrTimeRange.Error()) {
			t.Errorf("%s: message %q, want it to start with %q and explain the range", tc.what, m, tc.msg)
		}
	}
	l.expectCounts("after refused batches", 0, 0)

	// The longest expiry that fits is stored as sent, not wrapped.
	l.push(manualAlert("203.0.113.90", "Ip", "36500d", "cscli"))
	var until int64
	if err := l.Store.QueryRowForTest(`SELECT until FROM decisions WHERE value = '203.0.113.90'`).Scan(&until); err != nil {
		t.Fatal(err)
	}
	if got, want := time.Unix(0, until), time.Now().Add(36500*24*time.Hour); got.Before(want.Add(-time.Hour)) || got.After(want.Add(time.Hour)) {
		t.Fatalf("36500d decision stored until %s, want about %s", got.UTC(), want.UTC())
	}
}
