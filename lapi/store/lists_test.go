package store

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rampart-ips/rampart/models"
)

func listEntries(t testing.TB, vals ...string) []ListEntry {
	t.Helper()
	out := make([]ListEntry, len(vals))
	for i, v := range vals {
		p, err := netip.ParsePrefix(v)
		scope := "Range"
		if err != nil {
			a := netip.MustParseAddr(v)
			p, scope = netip.PrefixFrom(a, a.BitLen()), "Ip"
		}
		out[i] = ListEntry{Value: v, Scope: scope, Range: RangeOf(p)}
	}
	return out
}

type delta struct {
	added, deleted []string
	ids            map[string]int64
	seq            int64
}

func pull(t testing.TB, s *Store, cursor int64, startup bool, now time.Time) delta {
	t.Helper()
	d := delta{ids: map[string]int64{}}
	seq, err := s.Stream(context.Background(), StreamQuery{Startup: startup, Cursor: cursor}, now,
		func(r *DecisionRow) error { d.added = append(d.added, r.Value); d.ids[r.Value] = r.ID; return nil },
		func(r *DecisionRow) error { d.deleted = append(d.deleted, r.Value); return nil })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(d.added)
	slices.Sort(d.deleted)
	d.seq = seq
	return d
}

func openListStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), testConfig(t, filepath.Join(t.TempDir(), "lists.db")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestReplaceList: a refresh reaches a bouncer as one delta holding its
// additions and removals, unchanged entries keep their rows, and an
// unchanged feed changes nothing.
func TestReplaceList(t *testing.T) {
	ctx := context.Background()
	s := openListStore(t)
	now := time.Now()
	u := ListUpdate{Name: "feed", Type: "ban", Duration: 24 * time.Hour, Entries: listEntries(t, "192.0.2.1", "192.0.2.2", "198.51.100.0/24")}
	res, err := s.ReplaceList(ctx, u, now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 3 || res.Removed != 0 || res.AlertID == 0 {
		t.Fatalf("first apply: %+v", res)
	}
	full := pull(t, s, 0, true, now)
	if !slices.Equal(full.added, []string{"192.0.2.1", "192.0.2.2", "198.51.100.0/24"}) {
		t.Fatalf("startup: %v", full.added)
	}
	rows, err := s.QueryDecisions(ctx, DecisionFilter{Origins: []string{ListOrigin}, Scenario: "lists:feed"}, now)
	if err != nil || len(rows) != 3 || rows[0].Scope != "Ip" || rows[2].Scope != "Range" {
		t.Fatalf("stored: %+v %v", rows, err)
	}

	u.Entries = listEntries(t, "192.0.2.2", "198.51.100.0/24", "2001:db8::/32")
	if res, err = s.ReplaceList(ctx, u, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if res.Added != 1 || res.Removed != 1 || res.Kept != 2 {
		t.Fatalf("refresh: %+v", res)
	}
	d := pull(t, s, full.seq, false, now.Add(time.Minute))
	if !slices.Equal(d.added, []string{"2001:db8::/32"}) || !slices.Equal(d.deleted, []string{"192.0.2.1"}) {
		t.Fatalf("delta: +%v -%v", d.added, d.deleted)
	}
	if d.seq != full.seq+1 {
		t.Fatalf("the refresh took %d changes, want one transaction", d.seq-full.seq)
	}
	after := pull(t, s, 0, true, now.Add(time.Minute))
	for _, v := range []string{"192.0.2.2", "198.51.100.0/24"} {
		if after.ids[v] != full.ids[v] {
			t.Fatalf("%s changed id: %d -> %d", v, full.ids[v], after.ids[v])
		}
	}

	if res, err = s.ReplaceList(ctx, u, now.Add(2*time.Minute)); err != nil || res.Added+res.Removed+res.Renewed != 0 {
		t.Fatalf("unchanged feed: %+v %v", res, err)
	}
	if got := pull(t, s, d.seq, false, now.Add(2*time.Minute)); got.seq != d.seq || len(got.added)+len(got.deleted) != 0 {
		t.Fatalf("an unchanged feed moved the stream: %+v", got)
	}

	// Past half of the duration, the entries are renewed in place:
	// bouncers get them again with the later end.
	later := now.Add(13 * time.Hour)
	if res, err = s.ReplaceList(ctx, u, later); err != nil || res.Renewed != 3 || res.Added != 0 {
		t.Fatalf("renewal: %+v %v", res, err)
	}
	r := pull(t, s, d.seq, false, later)
	if len(r.added) != 3 || len(r.deleted) != 0 {
		t.Fatalf("renewal delta: +%v -%v", r.added, r.deleted)
	}
	rows, _ = s.QueryDecisions(ctx, DecisionFilter{Scenario: "lists:feed"}, later)
	for _, row := range rows {
		if !row.Until.Equal(time.Unix(0, later.Add(24*time.Hour).UnixNano())) {
			t.Fatalf("%s renewed until %v", row.Value, row.Until)
		}
		if row.ID != after.ids[row.Value] {
			t.Fatalf("%s renewed under a new id", row.Value)
		}
	}

	// Unsubscribed: everything ends, in one delta.
	if n, err := s.EndList(ctx, "feed"); err != nil || n != 3 {
		t.Fatalf("EndList: %d %v", n, err)
	}
	if e := pull(t, s, r.seq, false, later); len(e.deleted) != 3 || len(e.added) != 0 {
		t.Fatalf("end delta: +%v -%v", e.added, e.deleted)
	}
	// Ended list decisions are purged although their alerts remain.
	fr, err := s.Flush(ctx, FlushPolicy{}, later.Add(2*time.Hour))
	if err != nil || fr.Decisions != 4 || fr.Alerts != 0 {
		t.Fatalf("flush: %+v %v", fr, err)
	}
}

// TestReplaceListBesideOtherDecisions: a list entry removed while a longer
// manual ban holds the same address does not unban it, and a list entry
// hidden behind a longer ban and renewed past it becomes the one bouncers hold.
func TestReplaceListBesideOtherDecisions(t *testing.T) {
	ctx := context.Background()
	s := openListStore(t)
	now := time.Now()
	manual := func(v string, d time.Duration) {
		t.Helper()
		e := listEntries(t, v)[0]
		a := &models.Alert{Scenario: "manual", Source: &models.Source{Scope: "Ip", Value: v}}
		if _, err := s.CreateAlerts(ctx, []NewAlert{{Alert: a, UUID: uuid.NewString(), StartAt: now, StopAt: now, Decisions: []NewDecision{{
			UUID: uuid.NewString(), Until: now.Add(d), Scenario: "manual", Type: "ban", Scope: "Ip", Value: v, Origin: "cscli", Range: e.Range}}}}); err != nil {
			t.Fatal(err)
		}
	}
	manual("192.0.2.1", 48*time.Hour)
	manual("192.0.2.2", 30*time.Hour)
	u := ListUpdate{Name: "a", Type: "ban", Duration: 24 * time.Hour, Entries: listEntries(t, "192.0.2.1", "192.0.2.2")}
	if _, err := s.ReplaceList(ctx, u, now); err != nil {
		t.Fatal(err)
	}
	// A second list with one of them: its own row.
	if _, err := s.ReplaceList(ctx, ListUpdate{Name: "b", Type: "ban", Duration: 24 * time.Hour, Entries: listEntries(t, "192.0.2.2")}, now); err != nil {
		t.Fatal(err)
	}
	base := pull(t, s, 0, true, now)

	u.Entries = listEntries(t, "192.0.2.2")
	if _, err := s.ReplaceList(ctx, u, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if d := pull(t, s, base.seq, false, now.Add(time.Minute)); len(d.deleted) != 0 {
		t.Fatalf("removing a list entry under a longer manual ban sent a deletion: -%v +%v", d.deleted, d.added)
	}
	// List a's entry for .2 (24 h) is hidden behind the manual ban (30 h);
	// 13 h later it is renewed to 37 h, past the manual one and list b's
	// (24 h): bouncers learn the longer end.
	later := now.Add(13 * time.Hour)
	if _, err := s.ReplaceList(ctx, u, later); err != nil {
		t.Fatal(err)
	}
	held := pull(t, s, 0, true, later)
	rows, err := s.QueryDecisions(ctx, DecisionFilter{Value: "192.0.2.2"}, later)
	if err != nil {
		t.Fatal(err)
	}
	var listRow int64
	for _, r := range rows {
		if r.Scenario == "lists:a" {
			listRow = r.ID
		}
	}
	if held.ids["192.0.2.2"] != listRow {
		t.Fatalf("bouncers hold decision %d for 192.0.2.2, want the renewed list one %d (rows %+v)", held.ids["192.0.2.2"], listRow, rows)
	}
	if n := slices.Index(held.added, "192.0.2.2"); n < 0 || slices.Index(held.added[n+1:], "192.0.2.2") >= 0 {
		t.Fatalf("192.0.2.2 held %v", held.added)
	}
}

// TestClaimListRefresh: one claim per interval between LAPIs; a forced one
// (minAge 0) always wins; a released claim lets the next attempt in.
func TestClaimListRefresh(t *testing.T) {
	ctx := context.Background()
	s := openListStore(t)
	now := time.Now()
	claim := func(at time.Time, minAge time.Duration) bool {
		t.Helper()
		ok, err := s.ClaimListRefresh(ctx, "feed:abc", at, minAge)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !claim(now, time.Hour) {
		t.Fatal("first claim lost")
	}
	if claim(now.Add(time.Minute), time.Hour) {
		t.Fatal("a second claim within the interval won")
	}
	if !claim(now.Add(61*time.Minute), time.Hour) {
		t.Fatal("a claim after the interval lost")
	}
	at := now.Add(62 * time.Minute)
	if !claim(at, 0) {
		t.Fatal("a forced claim lost")
	}
	if err := s.UnclaimListRefresh(ctx, "feed:abc", at); err != nil {
		t.Fatal(err)
	}
	if !claim(at.Add(time.Second), time.Hour) {
		t.Fatal("a claim after a release lost")
	}
	if ok, err := s.ClaimListRefresh(ctx, "other:def", at, time.Hour); err != nil || !ok {
		t.Fatalf("another list's claim: %v %v", ok, err)
	}
}

// TestReplaceListLarge: additions beyond one transaction's share all
// arrive (in a few deltas), and a later change is again one delta.
func TestReplaceListLarge(t *testing.T) {
	ctx := context.Background()
	s := openListStore(t)
	now := time.Now()
	n := 2*listAddsPerTx + 5
	all := benchEntries(n, 0)
	res, err := s.ReplaceList(ctx, ListUpdate{Name: "big", Type: "ban", Duration: 24 * time.Hour, Entries: all}, now)
	if err != nil || res.Added != n {
		t.Fatalf("%+v %v", res, err)
	}
	full := pull(t, s, 0, true, now)
	if len(full.added) != n || full.seq != 3 {
		t.Fatalf("startup: %d decisions at seq %d, want %d at 3", len(full.added), full.seq, n)
	}
	next := append(append([]ListEntry{}, all[1:]...), benchEntries(1, n)...)
	if res, err = s.ReplaceList(ctx, ListUpdate{Name: "big", Type: "ban", Duration: 24 * time.Hour, Entries: next}, now); err != nil || res.Added != 1 || res.Removed != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	d := pull(t, s, full.seq, false, now)
	if len(d.added) != 1 || len(d.deleted) != 1 || d.seq != full.seq+1 {
		t.Fatalf("delta: %+v", d)
	}
	// A renewal of them all, in a few transactions: every row extended.
	later := now.Add(13 * time.Hour)
	if res, err = s.ReplaceList(ctx, ListUpdate{Name: "big", Type: "ban", Duration: 24 * time.Hour, Entries: next}, later); err != nil || res.Renewed != n {
		t.Fatalf("renewal: %+v %v", res, err)
	}
	if r := pull(t, s, d.seq, false, later); len(r.added) != n || len(r.deleted) != 0 {
		t.Fatalf("renewal delta: +%d -%d", len(r.added), len(r.deleted))
	}
	var short int
	if err := s.QueryRowForTest(`SELECT COUNT(*) FROM decisions WHERE active AND until < ?`, later.Add(23*time.Hour).UnixNano()).Scan(&short); err != nil || short != 0 {
		t.Fatalf("%d rows not renewed (%v)", short, err)
	}
}
