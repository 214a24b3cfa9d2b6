package capi_test

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/capi"
	"github.com/rampart-ips/rampart/internal/capitest"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

const deletePath = "/v3/decisions/delete"

func shareDeletions(o *capi.Options) { o.ShareDeletions = true }

// pushBans pushes one alert with a ban per address through r's LAPI and
// returns the decisions' UUIDs and ids by address.
func pushBans(t *testing.T, r *rig, ips ...string) (uuids map[string]string, ids map[string]int64) {
	t.Helper()
	ctx := context.Background()
	var as []*models.Alert
	for i, ip := range ips {
		as = append(as, alert(ip, i))
	}
	if _, err := r.agent().PushAlerts(ctx, as); err != nil {
		t.Fatal(err)
	}
	uuids, ids = map[string]string{}, map[string]int64{}
	for _, ip := range ips {
		rows, err := r.Store.QueryDecisions(ctx, store.DecisionFilter{Value: ip}, time.Now())
		if err != nil || len(rows) != 1 {
			t.Fatalf("decisions on %s: %d, %v", ip, len(rows), err)
		}
		uuids[ip], ids[ip] = rows[0].UUID, rows[0].ID
	}
	return uuids, ids
}

// countIn is how many times each of want appears in got.
func countIn(got []string, want map[string]string) map[string]int {
	n := map[string]int{}
	for _, u := range want {
		n[u] = 0
	}
	for _, u := range got {
		if _, ok := n[u]; ok {
			n[u]++
		}
	}
	return n
}

// A deletion made while the Central API answers 503 waits in the
// database, not in memory: the LAPI restarted sends it once CAPI is back,
// exactly once (by filter and by id).
func TestDeletionsSurviveRestart(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetEnrolled(capiLogin, "org-1", "COMMUNITY")
	dbPath := filepath.Join(t.TempDir(), "crowdsec.db")
	r := startRig(t, dbPath, cs, shareDeletions)
	r.addAgent()
	ctx := context.Background()
	uuids, ids := pushBans(t, r, "192.0.2.80", "192.0.2.81")
	// Logged in first: the refused attempt is then the deletion's own.
	waitFor(t, "the service's login", func() bool { return len(cs.Logins()) > 0 })
	cs.SetDown(true)
	tries := cs.Requests(deletePath)
	ag := r.agent()
	if _, err := ag.DeleteDecisions(ctx, url.Values{"ip": {"192.0.2.80"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.DeleteDecision(ctx, ids["192.0.2.81"]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an attempt refused with 503", func() bool { return cs.Requests(deletePath) > tries })
	r.Stop()

	cs.SetDown(false)
	r = startRig(t, dbPath, cs, shareDeletions)
	waitFor(t, "the deletions sent after the restart", func() bool {
		for _, n := range countIn(cs.Deleted(), uuids) {
			if n == 0 {
				return false
			}
		}
		return true
	})
	waitFor(t, "the queue emptied", func() bool {
		n, err := r.Store.DeletionQueueLen(ctx)
		return err == nil && n == 0
	})
	for u, n := range countIn(cs.Deleted(), uuids) {
		if n != 1 {
			t.Errorf("deletion %s sent %d times, want once", u, n)
		}
	}
}

// With the console's sharing off, a deletion queues nothing (and costs
// nothing more than without a Central API).
func TestDeletionsNotSharedQueueNothing(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetEnrolled(capiLogin, "org-1", "COMMUNITY")
	r := startRig(t, filepath.Join(t.TempDir(), "crowdsec.db"), cs, nil)
	r.addAgent()
	ctx := context.Background()
	_, ids := pushBans(t, r, "192.0.2.90", "192.0.2.91")
	ag := r.agent()
	if _, err := ag.DeleteDecisions(ctx, url.Values{"ip": {"192.0.2.90"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.DeleteDecision(ctx, ids["192.0.2.91"]); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Store.DeletionQueueLen(ctx); err != nil || n != 0 {
		t.Errorf("%d deletions queued with sharing off (%v)", n, err)
	}
	if err := r.Svc.PushDeletions(ctx); err != nil || len(cs.Deleted()) != 0 || cs.Requests(deletePath) != 0 {
		t.Errorf("sent with sharing off: %v, %v", cs.Deleted(), err)
	}
}

// Two LAPIs on one database both share deletions, made on either while
// requests fail now and then: each UUID reaches the console once.
func TestDeletionsFleetSendOnce(t *testing.T) {
	cs := capitest.Start(t)
	cs.AddMachine(capiLogin, capiPassword)
	cs.SetEnrolled(capiLogin, "org-1", "COMMUNITY")
	dbPath := filepath.Join(t.TempDir(), "crowdsec.db")
	r1 := startRig(t, dbPath, cs, shareDeletions)
	r2 := startRig(t, dbPath, cs, shareDeletions)
	r1.addAgent()
	ctx := context.Background()
	var ips []string
	for i := range 150 {
		ips = append(ips, fmt.Sprintf("198.51.100.%d", i))
	}
	uuids, ids := pushBans(t, r1, ips...)
	cs.Fail(deletePath, 500, 503, 503, 503, 503, 503, 503, 500)
	a1, a2 := r1.agent(), r2.agent()
	for i, ip := range ips {
		ag := a1
		if i%2 == 1 {
			ag = a2
		}
		var err error
		if i%3 == 0 {
			_, err = ag.DeleteDecision(ctx, ids[ip])
		} else {
			_, err = ag.DeleteDecisions(ctx, url.Values{"ip": {ip}})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	empty := func(r *rig) bool {
		n, err := r.Store.DeletionQueueLen(ctx)
		return err == nil && n == 0
	}
	waitFor(t, "every deletion sent", func() bool { return empty(r1) && empty(r2) })
	got := cs.Deleted()
	for u, n := range countIn(got, uuids) {
		if n != 1 {
			t.Errorf("deletion %s sent %d times, want once", u, n)
		}
	}
	if len(got) != len(ips) || slices.Contains(got, "") {
		t.Errorf("%d UUIDs sent for %d deletions", len(got), len(ips))
	}
}
