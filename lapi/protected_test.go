package lapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// startProtectedLAPI is a LAPI with the protected set on, as shipped.
func startProtectedLAPI(t *testing.T) *testLAPI {
	return startLAPI(t, func(c *csconfig.Config) { c.API.Server.AllowlistHostAddresses = nil })
}

// TestManualDecisionOnProtectedRefused: cscli decisions add sends one
// alert of kind "cscli" with a decision of origin "cscli", whether or not
// --bypass-allowlist was given; on a protected address (loopback,
// link-local, multicast, this host) or a range covering one it gets a 400
// naming the protected range, and nothing is stored or streamed. The
// kind and origin are the agent's word: they skip user allowlists only.
func TestManualDecisionOnProtectedRefused(t *testing.T) {
	l := startProtectedLAPI(t)
	key := l.addBouncer("fw")
	expectStream(t, "startup", l.stream(key, "&startup=true"), nil, nil)
	for _, c := range []struct{ value, scope, want string }{
		{"0.0.0.0/0", "Range", "decision on 0.0.0.0/0 refused: it covers 127.0.0.0/8 (loopback)"},
		{"127.0.0.1", "Ip", "decision on 127.0.0.1 refused: it is in 127.0.0.0/8 (loopback)"},
		{"::/0", "Range", "decision on ::/0 refused: it covers ::1/128 (loopback)"},
		{"fe80::/10", "Range", "decision on fe80::/10 refused: it is in fe80::/10 (link-local)"},
		{"fe80::1", "Ip", "decision on fe80::1 refused: it is in fe80::/10 (link-local)"},
		{"169.254.0.0/16", "Range", "(link-local)"},
		{"ff02::1", "Ip", "it is in ff00::/8 (multicast)"},
		{"::ffff:127.0.0.1", "Ip", "it is in 127.0.0.0/8 (loopback)"},
	} {
		status, body := l.do("POST", "/v1/alerts", l.jwtHeaders(), []*models.Alert{manualAlert(c.value, c.scope, "4h", "cscli")})
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		msg, _ := m["message"].(string)
		if status != 400 || !strings.Contains(msg, c.want) || !strings.Contains(msg, "--bypass-allowlist skips user allowlists only") {
			t.Errorf("%s: %d %s, want 400 saying %q", c.value, status, body, c.want)
		}
	}
	l.expectCounts("after refused manual decisions", 0, 0)
	expectStream(t, "delta", l.stream(key, ""), nil, nil)
}

// TestAgentDecisionsOnProtectedDropped: decisions an agent sends (or an
// import, origin cscli-import) on protected addresses are dropped with a
// warning; the alert and its other decisions are kept, and only those
// reach the stream and GET /v1/decisions.
func TestAgentDecisionsOnProtectedDropped(t *testing.T) {
	l := startProtectedLAPI(t)
	key := l.addBouncer("fw")
	expectStream(t, "startup", l.stream(key, "&startup=true"), nil, nil)
	withDecisions := func(kind, origin string, values ...string) *models.Alert {
		a := agentAlert("192.0.2.10", "crowdsecurity/ssh-bf")
		a.Kind = kind
		for _, v := range values {
			scope := "Ip"
			if strings.Contains(v, "/") {
				scope = "Range"
			}
			a.Decisions = append(a.Decisions, &models.Decision{Duration: "4h", Origin: origin, Scenario: "s", Scope: scope, Type: "ban", Value: v})
		}
		return a
	}
	ids := l.push(
		withDecisions("crowdsec", "crowdsec", "192.0.2.10", "::/0", "fe80::1", "0.0.0.0/1"),
		withDecisions("cscli", "cscli-import", "192.0.2.11", "127.0.0.2", "169.254.1.1", "ff02::2"),
		withDecisions("crowdsec", "crowdsec", "fe80::/10"), // every decision dropped: alert ignored
		agentAlert("169.254.3.3", "crowdsecurity/ssh-bf"),  // source protected: alert ignored
		agentAlert("fe80::3", "crowdsecurity/ssh-bf"),
	)
	if len(ids) != 2 {
		t.Errorf("ids %v, want the two alerts with an unprotected decision", ids)
	}
	expectStream(t, "delta", l.stream(key, ""), []string{"192.0.2.10", "192.0.2.11"}, nil)
	expectStream(t, "startup", l.stream(key, "&startup=true"), []string{"192.0.2.10", "192.0.2.11"}, nil)
}

// TestProtectedInDatabaseNotServed: decisions stored by an older version
// on protected addresses are served neither on the stream (startup or
// delta) nor on GET /v1/decisions; deleting one still reaches bouncers, so
// those that got it from the older version drop it.
func TestProtectedInDatabaseNotServed(t *testing.T) {
	l := startProtectedLAPI(t)
	key := l.addBouncer("fw")
	now := time.Now()
	var ds []store.NewDecision
	for _, v := range []string{"0.0.0.0/0", "127.0.0.1", "fe80::/10", "::/0", "192.0.2.20", "2001:db8::20", "198.51.100.77/24"} {
		r, err := store.ParseRange(v)
		if err != nil {
			t.Fatal(err)
		}
		scope := "Ip"
		if strings.Contains(v, "/") {
			scope = "Range"
		}
		ds = append(ds, store.NewDecision{UUID: uuid.NewString(), Until: now.Add(time.Hour), Scenario: "old", Type: "ban",
			Scope: scope, Value: v, Origin: "cscli", Range: r})
	}
	a := manualAlert("192.0.2.20", "Ip", "1h", "cscli")
	if _, err := l.Store.CreateAlerts(context.Background(), []store.NewAlert{{Alert: a, UUID: uuid.NewString(), StartAt: now, StopAt: now, Decisions: ds}}); err != nil {
		t.Fatal(err)
	}
	served := []string{"192.0.2.20", "2001:db8::20", "198.51.100.77/24"}
	expectStream(t, "startup", l.stream(key, "&startup=true"), served, nil)
	status, body := l.do("GET", "/v1/decisions", keyHeaders(key), nil)
	var got []*models.Decision
	if err := json.Unmarshal(body, &got); status != 200 || err != nil {
		t.Fatalf("GET /v1/decisions: %d %s %v", status, body, err)
	}
	if fmt.Sprint(values(got)) != fmt.Sprint([]string{"192.0.2.20", "198.51.100.77/24", "2001:db8::20"}) {
		t.Errorf("GET /v1/decisions served %v", values(got))
	}
	// a delta after a new protected row and a deletion of an old one
	if _, err := l.Store.DeleteDecisions(context.Background(), store.DecisionFilter{Value: "0.0.0.0/0", Contains: true}); err != nil {
		t.Fatal(err)
	}
	expectStream(t, "delta", l.stream(key, ""), nil, []string{"0.0.0.0/0"})
}

// TestLinkLocalProtectedWithoutHostAllowlist: allowlist_host_addresses =
// false lets a test rig use loopback as an attacker, but link-local and
// multicast stay protected: no rig needs them, and banning them breaks
// neighbour discovery for the whole link.
func TestLinkLocalProtectedWithoutHostAllowlist(t *testing.T) {
	l := startLAPI(t, nil) // the harness turns the host allowlist off
	key := l.addBouncer("fw")
	for _, v := range []string{"fe80::/10", "169.254.0.0/16", "ff02::1"} {
		if status, body := l.do("POST", "/v1/alerts", l.jwtHeaders(), []*models.Alert{manualAlert(v, "Range", "4h", "cscli")}); status != 400 {
			t.Errorf("%s with the host allowlist off: %d %s, want 400", v, status, body)
		}
	}
	if status, body := l.do("POST", "/v1/alerts", l.jwtHeaders(), []*models.Alert{manualAlert("127.0.0.1", "Ip", "4h", "cscli")}); status != 201 {
		t.Fatalf("loopback with the host allowlist off: %d %s, want 201", status, body)
	}
	var values []string
	for _, d := range l.stream(key, "&startup=true").New {
		values = append(values, d.Value)
	}
	if len(values) != 1 || values[0] != "127.0.0.1" {
		t.Errorf("stream holds %v, want only 127.0.0.1", values)
	}
}
