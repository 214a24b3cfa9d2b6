package lapi

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

func values(ds []*models.Decision) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.Value)
	}
	sort.Strings(out)
	return out
}

func expectStream(t *testing.T, what string, got models.StreamResponse, wantNew, wantDeleted []string) {
	t.Helper()
	sort.Strings(wantNew)
	sort.Strings(wantDeleted)
	if g := values(got.New); fmt.Sprint(g) != fmt.Sprint(wantNew) {
		t.Errorf("%s: new = %v, want %v", what, g, wantNew)
	}
	if g := values(got.Deleted); fmt.Sprint(g) != fmt.Sprint(wantDeleted) {
		t.Errorf("%s: deleted = %v, want %v", what, g, wantDeleted)
	}
	for _, d := range append(append([]*models.Decision{}, got.New...), got.Deleted...) {
		if d.ID == 0 || d.Type == "" || d.Scope == "" || d.Origin == "" || d.Scenario == "" || d.UUID == "" {
			t.Errorf("%s: incomplete decision %+v", what, d)
		}
		if _, err := time.ParseDuration(d.Duration); err != nil {
			t.Errorf("%s: duration %q does not parse: %v", what, d.Duration, err)
		}
	}
}

// TestStreamStory follows one bouncer through every way a decision can
// appear and go, and checks each change is reported exactly once.
func TestStreamStory(t *testing.T) {
	l := startLAPI(t, nil)
	a := l.addBouncer("bouncer-a")
	b := l.addBouncer("bouncer-b")

	expectStream(t, "A startup on empty db", l.stream(a, "&startup=true"), nil, nil)

	l.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"))
	short := l.push(manualAlert("192.0.2.2", "Ip", "2s", "cscli"))
	l.push(agentAlert("198.51.100.9", "crowdsecurity/ssh-bf"))
	rangeAlert := l.push(manualAlert("203.0.113.0/24", "Range", "4h", "cscli"))
	_ = short

	got := l.stream(a, "")
	expectStream(t, "A delta after adds", got, []string{"192.0.2.1", "192.0.2.2", "198.51.100.9", "203.0.113.0/24"}, nil)
	for _, d := range got.New {
		if d.Value == "198.51.100.9" {
			if d.Origin != "crowdsec" || d.Scenario != "crowdsecurity/ssh-bf" || d.Type != "ban" || d.Scope != "Ip" {
				t.Errorf("profile decision = %+v", d)
			}
			dur, _ := time.ParseDuration(d.Duration)
			if dur < 3*time.Hour+59*time.Minute || dur > 4*time.Hour {
				t.Errorf("profile decision duration %s, want about 4h", d.Duration)
			}
		}
	}
	expectStream(t, "A delta with no change", l.stream(a, ""), nil, nil)

	// natural expiry
	time.Sleep(2500 * time.Millisecond)
	got = l.stream(a, "")
	expectStream(t, "A delta after expiry", got, nil, []string{"192.0.2.2"})
	if len(got.Deleted) == 1 {
		d := got.Deleted[0]
		if d.Origin != "cscli" || !strings.HasPrefix(d.Scenario, "manual 'ban'") {
			t.Errorf("deleted entry lost its origin/scenario: %+v", d)
		}
		if dur, _ := time.ParseDuration(d.Duration); dur > 0 {
			t.Errorf("deleted entry duration %s should be negative or zero", d.Duration)
		}
	}
	expectStream(t, "A delta after expiry, again", l.stream(a, ""), nil, nil)

	// delete by id
	var id int64
	for _, d := range l.decisionsFor(a, "192.0.2.1") {
		id = d.ID
	}
	if status, body := l.do("DELETE", fmt.Sprintf("/v1/decisions/%d", id), l.jwtHeaders(), nil); status != 200 || !strings.Contains(string(body), `"nbDeleted":"1"`) {
		t.Fatalf("delete by id: %d %s", status, body)
	}
	expectStream(t, "A delta after delete by id", l.stream(a, ""), nil, []string{"192.0.2.1"})

	// delete by ip filter
	l.push(manualAlert("192.0.2.50", "Ip", "4h", "cscli"))
	expectStream(t, "A delta after add .50", l.stream(a, ""), []string{"192.0.2.50"}, nil)
	if status, body := l.do("DELETE", "/v1/decisions?ip=192.0.2.50", l.jwtHeaders(), nil); status != 200 || strings.TrimSpace(string(body)) != `{"nbDeleted":"1"}` {
		t.Fatalf("delete by ip: %d %s", status, body)
	}
	expectStream(t, "A delta after delete by ip", l.stream(a, ""), nil, []string{"192.0.2.50"})

	// alert deletion
	if status, body := l.do("DELETE", "/v1/alerts/"+rangeAlert[0], l.jwtHeaders(), nil); status != 200 {
		t.Fatalf("delete alert: %d %s", status, body)
	}
	expectStream(t, "A delta after alert deletion", l.stream(a, ""), nil, []string{"203.0.113.0/24"})

	// retention: an alert whose decision expired is flushed before A pulls
	// Its second counts from now: from the start of the current second
	// (manualAlert's RFC 3339 time), it could be over by the time it is
	// stored or streamed.
	a77 := manualAlert("192.0.2.77", "Ip", "1s", "cscli")
	a77.StopAt = time.Now().UTC().Format(time.RFC3339Nano)
	l.push(a77)
	expectStream(t, "A delta after add .77", l.stream(a, ""), []string{"192.0.2.77"}, nil)
	time.Sleep(1200 * time.Millisecond)
	res, err := l.Store.Flush(context.Background(), store.FlushPolicy{MaxItems: 1}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Alerts == 0 {
		t.Errorf("retention removed no alert")
	}
	expectStream(t, "A delta after retention", l.stream(a, ""), nil, []string{"192.0.2.77"})

	// B starts now: it sees the current state only.
	got = l.stream(b, "&startup=true")
	if v := values(got.New); fmt.Sprint(v) != "[198.51.100.9]" {
		t.Errorf("B startup new = %v, want only the active ban", v)
	}
	for _, d := range got.Deleted {
		if d.Value == "198.51.100.9" {
			t.Errorf("B startup deleted holds an active value: %+v", d)
		}
	}
	expectStream(t, "B delta after startup", l.stream(b, ""), nil, nil)

	// Once both bouncers have everything, ended rows may be purged (here
	// without the minimum age kept for clients that keep their own cursor).
	if _, err := l.Store.Flush(context.Background(), store.FlushPolicy{TombstoneMinAge: -time.Second}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var ended int
	if err := l.countRows("SELECT COUNT(*) FROM decisions WHERE NOT active", &ended); err != nil {
		t.Fatal(err)
	}
	if ended != 0 {
		t.Errorf("%d ended decisions kept after every bouncer received them", ended)
	}
	expectStream(t, "A delta at the end", l.stream(a, ""), nil, nil)
}

// TestStreamDedup checks the longest decision per (value, type, scope) wins.
func TestStreamDedup(t *testing.T) {
	l := startLAPI(t, nil)
	a := l.addBouncer("a")
	expectStream(t, "startup", l.stream(a, "&startup=true"), nil, nil)

	l.push(manualAlert("192.0.2.9", "Ip", "1h", "cscli"))
	got := l.stream(a, "")
	expectStream(t, "first", got, []string{"192.0.2.9"}, nil)

	long := l.push(manualAlert("192.0.2.9", "Ip", "2h", "cscli"))
	got = l.stream(a, "")
	expectStream(t, "longer", got, []string{"192.0.2.9"}, nil)
	if len(got.New) == 1 {
		if d, _ := time.ParseDuration(got.New[0].Duration); d < 110*time.Minute {
			t.Errorf("longer decision reported with %s", got.New[0].Duration)
		}
	}
	l.push(manualAlert("192.0.2.9", "Ip", "30m", "cscli"))
	expectStream(t, "shorter is hidden", l.stream(a, ""), nil, nil)

	// Startup shows one entry for the value: the longest.
	c := l.addBouncer("c")
	got = l.stream(c, "&startup=true")
	if len(got.New) != 1 {
		t.Fatalf("startup new = %d entries, want 1", len(got.New))
	}
	if d, _ := time.ParseDuration(got.New[0].Duration); d < 110*time.Minute {
		t.Errorf("startup kept %s, want the 2h decision", got.New[0].Duration)
	}
	// dedup=false shows all three
	if got := l.stream(c, "&startup=true&dedup=false"); len(got.New) != 3 {
		t.Errorf("dedup=false startup = %d entries, want 3", len(got.New))
	}

	// Deleting the longest: the bouncer removes it and gets the next one.
	var longID int64
	status, body := l.do("GET", "/v1/alerts/"+long[0], l.jwtHeaders(), nil)
	if status != 200 {
		t.Fatalf("get alert: %d %s", status, body)
	}
	var al models.Alert
	if err := json.Unmarshal(body, &al); err != nil {
		t.Fatal(err)
	}
	longID = al.Decisions[0].ID
	if status, body := l.do("DELETE", fmt.Sprintf("/v1/decisions/%d", longID), l.jwtHeaders(), nil); status != 200 {
		t.Fatalf("delete: %d %s", status, body)
	}
	got = l.stream(a, "")
	expectStream(t, "after deleting the longest", got, []string{"192.0.2.9"}, []string{"192.0.2.9"})
	if len(got.New) == 1 {
		if d, _ := time.ParseDuration(got.New[0].Duration); d > 61*time.Minute || d < 50*time.Minute {
			t.Errorf("replacement has %s, want the 1h decision", got.New[0].Duration)
		}
	}
}

// TestStreamFilters checks scopes, origins and scenario filters.
func TestStreamFilters(t *testing.T) {
	l := startLAPI(t, nil)
	a := l.addBouncer("a")
	l.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"))
	l.push(agentAlert("192.0.2.2", "crowdsecurity/ssh-bf"))
	l.push(agentAlert("192.0.2.3", "crowdsecurity/http-probing"))
	user := manualAlert("root", "username", "4h", "cscli")
	l.push(user)

	expectStream(t, "default scopes", l.stream(a, "&startup=true"), []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}, nil)
	expectStream(t, "scopes=username", l.stream(a, "&startup=true&scopes=username"), []string{"root"}, nil)
	expectStream(t, "origins=crowdsec", l.stream(a, "&startup=true&origins=crowdsec"), []string{"192.0.2.2", "192.0.2.3"}, nil)
	expectStream(t, "scenarios_containing", l.stream(a, "&startup=true&scenarios_containing=SSH"), []string{"192.0.2.2"}, nil)
	expectStream(t, "scenarios_not_containing", l.stream(a, "&startup=true&scenarios_not_containing=ssh,manual"), []string{"192.0.2.3"}, nil)
	expectStream(t, "unknown parameters ignored", l.stream(a, "&startup=true&foo=bar&dedup=true"), []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}, nil)
}

// TestStreamLongPoll checks that wait= returns as soon as a decision lands.
func TestStreamLongPoll(t *testing.T) {
	l := startLAPI(t, nil)
	a := l.addBouncer("a")
	l.stream(a, "&startup=true")
	start := time.Now()
	done := make(chan models.StreamResponse, 1)
	go func() { done <- l.stream(a, "&wait=20s") }()
	time.Sleep(300 * time.Millisecond)
	select {
	case got := <-done:
		t.Fatalf("long-poll returned before any change: %+v", got)
	default:
	}
	l.push(manualAlert("192.0.2.5", "Ip", "4h", "cscli"))
	select {
	case got := <-done:
		expectStream(t, "long-poll", got, []string{"192.0.2.5"}, nil)
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("long-poll took %s", el)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll did not return after a change")
	}
	// an unrelated change (filtered out) does not end the wait early
	go func() { done <- l.stream(a, "&wait=1500ms&scopes=ip") }()
	time.Sleep(200 * time.Millisecond)
	l.push(manualAlert("someone", "username", "4h", "cscli"))
	got := <-done
	expectStream(t, "filtered long-poll", got, nil, nil)
	if el := time.Since(start); el < 1500*time.Millisecond {
		t.Errorf("filtered long-poll returned early")
	}
}

func (l *testLAPI) decisionsFor(key, ip string) []*models.Decision {
	l.t.Helper()
	status, body := l.do("GET", "/v1/decisions?ip="+ip, keyHeaders(key), nil)
	if status != 200 {
		l.t.Fatalf("GET decisions: %d %s", status, body)
	}
	var ds []*models.Decision
	if err := json.Unmarshal(body, &ds); err != nil {
		l.t.Fatal(err)
	}
	return ds
}

func (l *testLAPI) countRows(q string, dst *int) error {
	return l.Store.QueryRowForTest(q).Scan(dst)
}
