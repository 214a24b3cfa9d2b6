package cscli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

func TestAllowlistsLifecycle(t *testing.T) {
	e := newOpsEnv(t, "127.0.0.1:8080")
	ctx := context.Background()
	st := e.store()

	out, _ := e.mustRun("allowlists", "create", "office", "-d", "office network")
	if !strings.Contains(out, "allowlist 'office' created successfully") {
		t.Fatalf("create: %s", out)
	}
	if _, _, err := e.run("", "allowlists", "create", "office", "-d", "again"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, _, err := e.run("", "allowlists", "create", "nodesc"); err == nil {
		t.Fatal("create without -d should fail as upstream's does")
	}

	out, _ = e.mustRun("allowlists", "add", "office", "10.0.0.0/24", "1.2.3.4", "-e", "1d", "-d", "vpn exit")
	if !strings.Contains(out, "added 2 values to allowlist office") {
		t.Fatalf("add: %s", out)
	}
	lists, err := st.ListAllowlists(ctx)
	if err != nil || len(lists) != 1 || len(lists[0].Items) != 2 {
		t.Fatalf("stored allowlists: %+v %v", lists, err)
	}
	for _, it := range lists[0].Items {
		if it.Description != "vpn exit" || it.ExpiresAt == nil {
			t.Fatalf("item %+v: want the comment and an expiration", it)
		}
		if d := time.Until(*it.ExpiresAt); d < 23*time.Hour || d > 25*time.Hour {
			t.Fatalf("item %s expires in %s, want about a day", it.Value, d)
		}
	}
	out, _ = e.mustRun("allowlists", "add", "office", "1.2.3.4")
	if !strings.Contains(out, "no new values for allowlist") {
		t.Fatalf("re-adding a present value: %s", out)
	}
	if _, _, err := e.run("", "allowlists", "add", "office", "not-an-ip"); err == nil {
		t.Fatal("adding an invalid value should fail")
	}
	if _, _, err := e.run("", "allowlists", "add", "office", "5.5.5.5", "-e", "tomorrow"); err == nil {
		t.Fatal("an invalid expiration should fail")
	}
	// an expiry past 2262 would be stored wrapped into the past
	if _, _, err := e.run("", "allowlists", "add", "office", "5.5.5.5", "-e", "100000d"); err == nil || !strings.Contains(err.Error(), "2262-04-11") {
		t.Fatalf("an expiration past 2262: %v", err)
	}
	if _, _, err := e.run("", "allowlists", "add", "ghost", "5.5.5.5"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("adding to a missing allowlist: %v", err)
	}

	out, _ = e.mustRun("allowlists", "check", "10.0.0.7", "10.0.0.0/16", "8.8.8.8", "1.2.3.4", "127.0.0.1")
	for _, want := range []string{
		"10.0.0.7 is allowlisted by item 10.0.0.0/24 from office",
		"10.0.0.0/16 is allowlisted by item 10.0.0.0/24 from office", // the range holds an allowlisted one
		"8.8.8.8 is not allowlisted",
		"1.2.3.4 is allowlisted by item 1.2.3.4 from office",
		"127.0.0.1 is allowlisted by item 127.0.0.0/8 from rampart-host",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := e.run("", "allowlists", "check", "nope"); err == nil {
		t.Fatal("checking an invalid value should fail")
	}

	out, _ = e.mustRun("allowlists", "list", "-o", "raw")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "name,description,created_at,updated_at,console_managed,size" || len(lines) != 2 ||
		!strings.HasPrefix(lines[1], "office,office network,") || !strings.HasSuffix(lines[1], ",false,2") {
		t.Fatalf("raw list:\n%s", out)
	}
	out, _ = e.mustRun("allowlists", "list")
	for _, want := range []string{"Name", "Description", "Created at", "Updated at", "Managed by Console", "Size", "office"} {
		if !strings.Contains(out, want) {
			t.Errorf("human list lacks %q:\n%s", want, out)
		}
	}
	out, _ = e.mustRun("allowlists", "list", "-o", "json")
	var wire []models.Allowlist
	if err := json.Unmarshal([]byte(out), &wire); err != nil || len(wire) != 1 || len(wire[0].Items) != 2 || wire[0].Items[0].Expiration == "" {
		t.Fatalf("json list: %v\n%s", err, out)
	}

	out, _ = e.mustRun("allowlists", "inspect", "office")
	for _, want := range []string{"Allowlist: office", "office network", "Value", "Comment", "Expiration", "10.0.0.0/24", "vpn exit"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	out, _ = e.mustRun("allowlists", "inspect", "office", "-o", "raw")
	if !strings.HasPrefix(out, "name,description,value,comment,expiration,created_at,console_managed\n") || strings.Count(out, "\n") != 3 {
		t.Fatalf("raw inspect:\n%s", out)
	}

	out, _ = e.mustRun("allowlists", "remove", "office", "1.2.3.4", "9.9.9.9")
	if !strings.Contains(out, "removed 1 values from allowlist office") {
		t.Fatalf("remove: %s", out)
	}
	out, _ = e.mustRun("allowlists", "check", "1.2.3.4")
	if !strings.Contains(out, "1.2.3.4 is not allowlisted") {
		t.Fatalf("check after remove: %s", out)
	}
	out, _ = e.mustRun("allowlists", "remove", "office", "1.2.3.4")
	if !strings.Contains(out, "no value to remove from allowlist") {
		t.Fatalf("removing an absent value: %s", out)
	}

	out, _ = e.mustRun("allowlists", "delete", "office")
	if !strings.Contains(out, "allowlist 'office' deleted successfully") {
		t.Fatalf("delete: %s", out)
	}
	if lists, _ := st.ListAllowlists(ctx); len(lists) != 0 {
		t.Fatalf("allowlists left after delete: %d", len(lists))
	}
	if _, _, err := e.run("", "allowlists", "delete", "office"); err == nil {
		t.Fatal("deleting a missing allowlist should fail")
	}
	if _, _, err := e.run("", "allowlists", "inspect", "office"); err == nil {
		t.Fatal("inspecting a missing allowlist should fail")
	}
}

func TestAllowlistsCheckSkipsExpiredItems(t *testing.T) {
	e := newOpsEnv(t, "127.0.0.1:8080")
	ctx := context.Background()
	st := e.store()
	if err := st.CreateAllowlist(ctx, "old", "expired entries"); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	if err := st.AddAllowlistItems(ctx, "old", []string{"2001:db8::/32"}, "", &past); err != nil {
		t.Fatal(err)
	}
	out, _ := e.mustRun("allowlists", "check", "2001:db8::1")
	if !strings.Contains(out, "2001:db8::1 is not allowlisted") {
		t.Fatalf("an expired item still allowlists:\n%s", out)
	}
	e.mustRun("allowlists", "add", "old", "2001:db8:1::/48")
	out, _ = e.mustRun("allowlists", "check", "2001:db8:1::5", "2001:db8:2::5")
	if !strings.Contains(out, "2001:db8:1::5 is allowlisted by item 2001:db8:1::/48 from old") ||
		!strings.Contains(out, "2001:db8:2::5 is not allowlisted") {
		t.Fatalf("IPv6 check:\n%s", out)
	}
}

func TestAllowlistsAddEndsCoveredDecisions(t *testing.T) {
	e := newOpsEnv(t, "127.0.0.1:8080")
	ctx := context.Background()
	st := e.store()
	now := time.Now()
	var ds []store.NewDecision
	for _, v := range []string{"192.168.1.10", "192.168.2.10"} {
		r, _ := store.ParseRange(v)
		ds = append(ds, store.NewDecision{UUID: "u-" + v, Until: now.Add(time.Hour), Scenario: "test", Type: "ban",
			Scope: "Ip", Value: v, Origin: "cscli", Range: r})
	}
	a := &models.Alert{Scenario: "test", Source: &models.Source{Scope: "Ip", Value: "192.168.1.10"}}
	if _, err := st.CreateAlerts(ctx, []store.NewAlert{{Alert: a, UUID: "a1", StartAt: now, StopAt: now, Decisions: ds}}); err != nil {
		t.Fatal(err)
	}
	e.mustRun("allowlists", "create", "lan", "-d", "lan")
	out, _ := e.mustRun("allowlists", "add", "lan", "192.168.1.0/24")
	if !strings.Contains(out, "1 decisions deleted by allowlists") {
		t.Fatalf("add over an active decision:\n%s", out)
	}
	for v, want := range map[string]int{"192.168.1.10": 0, "192.168.2.10": 1} {
		if n, err := st.ActiveDecisionsCount(ctx, v); err != nil || n != want {
			t.Fatalf("%s: %d active decisions (%v), want %d", v, n, err, want)
		}
	}
}
