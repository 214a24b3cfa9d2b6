package capi_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rampart-ips/rampart/capi"
	"github.com/rampart-ips/rampart/internal/capitest"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// An instance enrolled with an ENTERPRISE plan carries out the console's
// orders as they come over PAPI: decisions added (UUIDs kept, shared back
// as a signal) and deleted, a list dropped, a pull forced, a new login; a
// bad order is skipped without harm (an empty delete ends nothing), and
// after a restart the polls resume after the last order taken.
func TestPAPIOrders(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetEnrolled(capiLogin, "org-1", "ENTERPRISE")
	cs.SetList("mylist", &capitest.List{Modified: time.Now(), Body: "198.51.100.77\n"})
	cs.SetStartup(capi.StreamResponse{Links: &capi.StreamLinks{Blocklists: []capi.BlocklistLink{
		{Name: "mylist", URL: cs.ListURL("mylist"), Remediation: "ban", Scope: "ip", Duration: "24h"}}}})
	dbPath := filepath.Join(t.TempDir(), "crowdsec.db")
	opt := func(o *capi.Options) { o.PAPIURL, o.ShareDeletions = cs.PAPIURL(), true }
	r := startRig(t, dbPath, cs, opt)
	b := r.bouncer("fw")
	r.addAgent("crowdsecurity/ssh-bf")
	ctx := context.Background()
	has := func(v string) func() bool {
		return func() bool { _, ok := streamValues(t, b)[v]; return ok }
	}
	gone := func(v string) func() bool {
		return func() bool { _, ok := streamValues(t, b)[v]; return !ok }
	}
	waitFor(t, "the list pulled", has("198.51.100.77"))
	if _, err := r.agent().PushAlerts(ctx, []*models.Alert{alert("192.0.2.9", 1)}); err != nil {
		t.Fatal(err)
	}

	u1 := uuid.NewString()
	cs.Order("alert", "add", "ban from console", models.Alert{Decisions: []*models.Decision{
		{UUID: u1, Type: "ban", Scope: "Ip", Value: "192.0.2.50", Duration: "4h", Origin: "console"}}})
	waitFor(t, "the console's decision", has("192.0.2.50"))
	if d := streamValues(t, b)["192.0.2.50"]; d.Origin != "console" || d.Scenario != "ban from console" {
		t.Errorf("console decision %+v", d)
	}
	if rows, err := r.Store.QueryDecisions(ctx, store.DecisionFilter{UUIDs: []string{u1}}, time.Now()); err != nil || len(rows) != 1 {
		t.Errorf("the console's decision UUID was not kept: %d rows, %v", len(rows), err)
	}
	waitFor(t, "the console alert shared as a signal", func() bool {
		return slices.ContainsFunc(cs.Signals(), func(s capi.Signal) bool {
			return s.Scenario == "ban from console" && s.ScenarioTrust == capi.TrustCustom
		})
	})

	cs.Order("decision", "delete", "", capi.PAPIDecisionDelete{Decisions: []string{u1}})
	waitFor(t, "the console's deletion", gone("192.0.2.50"))
	waitFor(t, "the console's deletion told back", func() bool { return slices.Contains(cs.Deleted(), u1) })
	cs.Order("management", "blocklist_unsubscribe", "", capi.PAPIUnsubscribe{Name: "mylist"})
	waitFor(t, "the list dropped", gone("198.51.100.77"))

	// A delete naming nothing must not end everything; the next order
	// still runs.
	cs.Order("decision", "delete", "", capi.PAPIDecisionDelete{})
	cs.Order("alert", "add", "second", models.Alert{Decisions: []*models.Decision{
		{UUID: uuid.NewString(), Type: "ban", Scope: "Ip", Value: "192.0.2.51", Duration: "4h"}}})
	waitFor(t, "the order after a bad one", has("192.0.2.51"))
	if !has("192.0.2.9")() {
		t.Error("an empty delete order ended a local decision")
	}

	// One list or one allowlist pulled on order; an allowlist dropped on
	// order; the console's decision on an allowlisted address refused.
	cs.SetList("other", &capitest.List{Modified: time.Now(), Body: "198.51.100.88\n"})
	cs.Order("management", "force_pull", "", capi.PAPIForcePull{Blocklist: &capi.BlocklistLink{
		Name: "other", URL: cs.ListURL("other"), Remediation: "ban", Scope: "ip", Duration: "24h"}})
	waitFor(t, "the list pulled on order", has("198.51.100.88"))
	cs.SetList("console-al", &capitest.List{Modified: time.Now(), Body: `{"value":"198.51.100.88","description":"partner"}` + "\n"})
	cs.Order("management", "force_pull", "", capi.PAPIForcePull{Allowlist: &capi.AllowlistLink{
		ID: "al-1", Name: "console-al", URL: cs.ListURL("console-al")}})
	waitFor(t, "the allowlist pulled on order ending what it covers", gone("198.51.100.88"))
	cs.Order("alert", "add", "on a partner", models.Alert{Decisions: []*models.Decision{
		{UUID: uuid.NewString(), Type: "ban", Scope: "Ip", Value: "198.51.100.88", Duration: "4h"}}})
	cs.Order("management", "allowlist_unsubscribe", "", capi.PAPIUnsubscribe{Name: "console-al", ID: "al-1"})
	waitFor(t, "the allowlist dropped on order", func() bool {
		als, err := r.Store.ListAllowlists(ctx)
		return err == nil && !slices.ContainsFunc(als, func(a *store.AllowlistRow) bool { return a.Name == "console-al" })
	})
	if has("198.51.100.88")() {
		t.Error("the console's decision on an allowlisted address was stored")
	}

	pulls := len(cs.Queries())
	cs.Order("management", "force_pull", "", map[string]any{})
	waitFor(t, "the forced pull", func() bool { return len(cs.Queries()) > pulls })
	logins := len(cs.Logins())
	last := cs.Order("management", "reauth", "", map[string]any{})
	waitFor(t, "the login after reauth", func() bool { return len(cs.Logins()) > logins })

	want, _ := time.UnixMilli(last).UTC().MarshalText()
	waitFor(t, "papi:last_pull at the last order", func() bool {
		v, err := r.Store.GetKV(ctx, capi.PAPILastPullKey)
		return err == nil && v == string(want)
	})
	r.Stop()
	polls := len(cs.Polls())
	r = startRig(t, dbPath, cs, opt)
	since := "since_time=" + strconv.FormatInt(last, 10) + "&timeout=45"
	waitFor(t, "a poll resuming after the last order", func() bool {
		return slices.Contains(cs.Polls()[polls:], since)
	})
}

// Without an organization, or with the community plan, PAPI is not
// polled at all.
func TestPAPINotEligible(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	r := startRig(t, filepath.Join(t.TempDir(), "crowdsec.db"), cs, nil)
	c, err := capi.NewClient(capi.ClientConfig{URL: cs.URL(), Login: capiLogin, Password: capiPassword})
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"", "COMMUNITY"} {
		if sub != "" {
			cs.SetEnrolled(capiLogin, "org-1", sub)
		}
		c.ResetToken()
		svc := capi.New(capi.Options{Client: c, Store: r.Store, PAPIURL: cs.PAPIURL()})
		if _, err := svc.PollPAPI(context.Background()); !errors.Is(err, capi.ErrPAPINotEligible) {
			t.Errorf("plan %q: %v", sub, err)
		}
	}
	if n := len(cs.Polls()); n != 0 {
		t.Errorf("%d polls without a plan that has console management", n)
	}
}

// Decisions the machines delete are told to the console by UUID (by
// filter and by id), 50 per request; a failed request keeps them for the
// next try; an instance that is not enrolled sends nothing and empties the
// queue.
func TestDeletionsToConsole(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetEnrolled(capiLogin, "org-1", "COMMUNITY")
	r := startRig(t, filepath.Join(t.TempDir(), "crowdsec.db"), cs, func(o *capi.Options) { o.ShareDeletions = true })
	r.addAgent()
	ctx := context.Background()
	if _, err := r.agent().PushAlerts(ctx, []*models.Alert{alert("192.0.2.70", 1), alert("192.0.2.71", 2)}); err != nil {
		t.Fatal(err)
	}
	rows, err := r.Store.QueryDecisions(ctx, store.DecisionFilter{}, time.Now())
	if err != nil || len(rows) != 2 {
		t.Fatalf("decisions %d, %v", len(rows), err)
	}
	want := map[string]string{}
	var id71 int64
	for _, d := range rows {
		want[d.Value] = d.UUID
		if d.Value == "192.0.2.71" {
			id71 = d.ID
		}
	}
	ag := r.agent()
	if _, err := ag.DeleteDecisions(ctx, url.Values{"ip": {"192.0.2.70"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.DeleteDecision(ctx, id71); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both deletions told to the console", func() bool {
		got := cs.Deleted()
		return slices.Contains(got, want["192.0.2.70"]) && slices.Contains(got, want["192.0.2.71"])
	})

	// Many ended at once go 50 per request; a failed request keeps them
	// for the next try.
	var ips []string
	for i := range 120 {
		ips = append(ips, fmt.Sprintf("198.51.100.%d", i))
	}
	many, _ := pushBans(t, r, ips...)
	before, posts := len(cs.Deleted()), cs.Requests(deletePath)
	cs.Fail(deletePath, 500)
	if _, err := ag.DeleteDecisions(ctx, url.Values{"range": {"198.51.100.0/24"}, "contains": {"false"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the many deletions sent", func() bool {
		n, err := r.Store.DeletionQueueLen(ctx)
		return err == nil && n == 0 && len(cs.Deleted()) > before
	})
	for u, n := range countIn(cs.Deleted()[before:], many) {
		if n != 1 {
			t.Errorf("deletion %s sent %d times after a failure, want once", u, n)
		}
	}
	if n := cs.Requests(deletePath) - posts; n != 4 {
		t.Errorf("%d requests for 120 deletions and one failure, want 4", n)
	}

	// Not enrolled: the queue is emptied, nothing sent. A LAPI of its own
	// whose service does not send deletions: the call decides.
	r2 := startRig(t, filepath.Join(t.TempDir(), "other.db"), cs, nil)
	r2.addAgent()
	pushBans(t, r2, "192.0.2.72")
	if _, err := r2.Store.DeleteDecisionsShared(ctx, store.DecisionFilter{Value: "192.0.2.72"}); err != nil {
		t.Fatal(err)
	}
	cs.AddMachine("lonely", "lonely-password")
	c2, err := capi.NewClient(capi.ClientConfig{URL: cs.URL(), Login: "lonely", Password: "lonely-password"})
	if err != nil {
		t.Fatal(err)
	}
	svc := capi.New(capi.Options{Client: c2, Store: r2.Store})
	before = len(cs.Deleted())
	if err := svc.PushDeletions(ctx); err != nil || len(cs.Deleted()) != before {
		t.Errorf("not enrolled: %v, %d sent", err, len(cs.Deleted())-before)
	}
	if n, err := r2.Store.DeletionQueueLen(ctx); err != nil || n != 0 {
		t.Errorf("not enrolled: %d deletions left queued (%v)", n, err)
	}
}
