package lapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// getCounts asks GET /v1/decisions/count as the test machine.
func (l *testLAPI) getCounts(t *testing.T, value, since string) models.DecisionCountsResponse {
	t.Helper()
	q := url.Values{"value": {value}}
	if since != "" {
		q.Set("since", since)
	}
	r := l.send("GET", "/v1/decisions/count?"+q.Encode(), l.jwtHdr(), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("count %s since %q: %s", value, since, r)
	}
	var out models.DecisionCountsResponse
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatalf("count body %q: %v", r.Body, err)
	}
	return out
}

// The counts follow upstream's database helpers: every decision whose
// range covers the value, whatever its type, origin or simulation, expired
// and deleted ones in the total; active ones and the longest time left
// apart.
func TestDecisionCounts(t *testing.T) {
	l := startLAPI(t, nil)
	expired := manualAlert("192.0.2.7", "Ip", "1h", "cscli")
	past := time.Now().Add(-3 * time.Hour).UTC().Format(time.RFC3339)
	expired.StartAt, expired.StopAt = past, past
	expired.Decisions[0].Type = "captcha"
	deleted := manualAlert("192.0.2.7", "Ip", "2h", "cscli")
	deleted.Decisions[0].Type = "throttle"
	simulated := manualAlert("2001:db8::1", "Ip", "30m", "crowdsec")
	simulated.Simulated = true
	l.push(
		manualAlert("192.0.2.7", "Ip", "4h", "cscli"),
		manualAlert("192.0.2.0/24", "Range", "1h", "cscli"),
		expired, deleted,
		manualAlert("198.51.100.1", "Ip", "4h", "cscli"),
		manualAlert("2001:db8::/64", "Range", "2h", "crowdsec"),
		simulated,
		manualAlert("alice", "Username", "4h", "cscli"),
	)
	if r := l.send("DELETE", "/v1/decisions?type=throttle", l.jwtHdr(), nil); r.Status != 200 {
		t.Fatalf("deleting: %s", r)
	}

	for _, c := range []struct {
		value         string
		count, active int
		left          time.Duration
	}{
		{"192.0.2.7", 4, 2, 4 * time.Hour},   // its ban, the /24, the expired captcha, the deleted throttle
		{"192.0.2.8", 1, 1, time.Hour},       // the /24 only
		{"192.0.2.0/24", 1, 1, time.Hour},    // a single address does not cover the range
		{"192.0.2.0/25", 1, 1, time.Hour},    // the /24 covers it
		{"203.0.113.1", 0, 0, 0},             // nothing
		{"2001:db8::1", 2, 2, 2 * time.Hour}, // the /64 and the simulated ban
		{"2001:db8:0:1::1", 0, 0, 0},         // outside the /64
		{"::ffff:192.0.2.7", 4, 2, 4 * time.Hour},
	} {
		got := l.getCounts(t, c.value, "")
		left, err := time.ParseDuration(got.TimeLeft)
		if err != nil {
			t.Fatalf("%s: time_left %q: %v", c.value, got.TimeLeft, err)
		}
		if got.Count != c.count || got.ActiveCount != c.active || !within(left, c.left, time.Minute) || got.SinceCount != nil {
			t.Errorf("%s: count %d active %d left %s since %v, want %d %d %s no since", c.value, got.Count, got.ActiveCount, left,
				got.SinceCount, c.count, c.active, c.left)
		}
	}
	if got := l.getCounts(t, "192.0.2.7", "1h"); got.SinceCount == nil || *got.SinceCount != 4 {
		t.Errorf("since 1h: %+v, want 4", got)
	}
	if got := l.getCounts(t, "192.0.2.7", "1d"); got.SinceCount == nil || *got.SinceCount != 4 {
		t.Errorf("since 1d: %+v, want 4", got)
	}
	if got := l.getCounts(t, "192.0.2.7", "0s"); got.SinceCount == nil || *got.SinceCount != 0 {
		t.Errorf("since 0s: %+v, want 0", got)
	}
}

func TestDecisionCountsRefused(t *testing.T) {
	l := startLAPI(t, nil)
	key := l.addBouncer("fw")
	expectAuth401(t, "no token", l.send("GET", "/v1/decisions/count?value=192.0.2.7", nil, nil), "")
	expectAuth401(t, "bouncer key", l.send("GET", "/v1/decisions/count?value=192.0.2.7", keyHdr(key), nil), "")
	for query, msg := range map[string]string{
		"":                               "value is required: an IP address or range",
		"value=alice":                    "value 'alice' is not an IP address or range",
		"value=192.0.2.7&since=soon":     "since: 'soon' is not a duration",
		"value=192.0.2.7&contains=false": "unknown parameter 'contains' (value and since are accepted)",
	} {
		expectMsg(t, "?"+query, l.send("GET", "/v1/decisions/count?"+query, l.jwtHdr(), nil), http.StatusBadRequest, msg)
	}
	// DELETE /v1/decisions/{id} still owns the other methods.
	expectMsg(t, "DELETE count", l.send("DELETE", "/v1/decisions/count", l.jwtHdr(), nil), http.StatusBadRequest,
		"decision_id must be valid integer")
}
