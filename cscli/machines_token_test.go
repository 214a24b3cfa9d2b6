package cscli

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// These tests run cscli against the database of a running LAPI, as an
// operator does: the LAPI learns of the change only through the database.

// lapiCall sends one request to the LAPI at addr; body is marshalled as
// JSON when not nil.
func lapiCall(t *testing.T, addr, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "crowdsec/v1.7.8-test-linux")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, data
}

func lapiLogin(t *testing.T, addr, machine, password string) string {
	t.Helper()
	status, body := lapiCall(t, addr, "POST", "/v1/watchers/login", "", map[string]any{"machine_id": machine, "password": password})
	if status != http.StatusOK {
		t.Fatalf("login %s: %d %s", machine, status, body)
	}
	var r models.WatcherAuthResponse
	if err := json.Unmarshal(body, &r); err != nil || r.Token == "" {
		t.Fatalf("login %s: %v %s", machine, err, body)
	}
	return r.Token
}

func banAlert(ip string) []*models.Alert {
	now := time.Now().UTC().Format(time.RFC3339)
	reason := "manual 'ban' from 'test'"
	return []*models.Alert{{
		Scenario: reason, Message: reason, EventsCount: 1, StartAt: now, StopAt: now, Leakspeed: "0",
		Remediation: true, Kind: "cscli", Events: []*models.Event{},
		Source:    &models.Source{Scope: "Ip", Value: ip},
		Decisions: []*models.Decision{{Duration: "4h", Origin: "cscli", Scenario: reason, Scope: "Ip", Type: "ban", Value: ip}},
	}}
}

// assertTokenDead checks every way an old token was abused: reading
// alerts, refreshing itself, and posting a ban that would become active.
func assertTokenDead(t *testing.T, e *opsEnv, addr, token, banIP string) {
	t.Helper()
	if status, body := lapiCall(t, addr, "GET", "/v1/alerts", token, nil); status != http.StatusUnauthorized {
		t.Errorf("GET /v1/alerts with the old token: %d %s, want 401", status, body)
	}
	if status, body := lapiCall(t, addr, "GET", "/v1/refresh_token", token, nil); status != http.StatusUnauthorized {
		t.Errorf("GET /v1/refresh_token with the old token: %d %s, want 401", status, body)
	}
	if status, body := lapiCall(t, addr, "POST", "/v1/alerts", token, banAlert(banIP)); status != http.StatusUnauthorized {
		t.Errorf("POST /v1/alerts with the old token: %d %s, want 401", status, body)
	}
	out, _ := e.mustRun("decisions", "list", "-i", banIP, "-o", "json")
	var alerts []any
	if err := json.Unmarshal([]byte(out), &alerts); err != nil {
		t.Fatalf("decisions list: %v\n%s", err, out)
	}
	if len(alerts) != 0 {
		t.Errorf("the old token's ban on %s is active (%d alerts with decisions on it)", banIP, len(alerts))
	}
}

// TestDeletedMachineTokenStaysDead: after `cscli machines delete m2`,
// anyone may register the name m2 again (unvalidated); the token m2 held
// must not come back to life with the name.
func TestDeletedMachineTokenStaysDead(t *testing.T) {
	e, addr := newLapiOpsEnv(t, nil)
	e.mustRun("machines", "add", "admin", "-p", "admin-password")
	e.mustRun("machines", "add", "m2", "-p", "m2-password", "-f", filepath.Join(e.dir, "m2.toml"))
	token := lapiLogin(t, addr, "m2", "m2-password")
	if status, body := lapiCall(t, addr, "GET", "/v1/alerts", token, nil); status != http.StatusOK {
		t.Fatalf("GET /v1/alerts before the deletion: %d %s", status, body)
	}

	e.mustRun("machines", "delete", "m2")
	if status, body := lapiCall(t, addr, "POST", "/v1/watchers", "", map[string]string{"machine_id": "m2", "password": "attacker-password"}); status != http.StatusCreated {
		t.Fatalf("re-registering m2: %d %s", status, body)
	}
	assertTokenDead(t, e, addr, token, "192.0.2.77")
}

// TestReaddedMachineTokenStaysDead: deleting m2 and adding it again with a
// new password (validated), or replacing its password in place, ends the
// sessions of the old credentials.
func TestReaddedMachineTokenStaysDead(t *testing.T) {
	e, addr := newLapiOpsEnv(t, nil)
	e.mustRun("machines", "add", "admin", "-p", "admin-password")
	creds := filepath.Join(e.dir, "m2.toml")
	e.mustRun("machines", "add", "m2", "-p", "m2-password", "-f", creds)
	token := lapiLogin(t, addr, "m2", "m2-password")

	e.mustRun("machines", "delete", "m2")
	e.mustRun("machines", "add", "m2", "-p", "m2-new-password", "-f", creds, "--force")
	e.mustRun("machines", "validate", "m2")
	assertTokenDead(t, e, addr, token, "192.0.2.78")

	// The new credentials work, and a password change in place (add
	// --force over the existing row) ends their sessions too.
	token = lapiLogin(t, addr, "m2", "m2-new-password")
	if status, body := lapiCall(t, addr, "GET", "/v1/alerts", token, nil); status != http.StatusOK {
		t.Fatalf("GET /v1/alerts with the new credentials: %d %s", status, body)
	}
	e.mustRun("machines", "add", "m2", "-p", "m2-third-password", "-f", creds, "--force")
	assertTokenDead(t, e, addr, token, "192.0.2.79")
	lapiLogin(t, addr, "m2", "m2-third-password")
}
