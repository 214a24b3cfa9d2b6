package lapi

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/apikey"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
)

// TestRoundsFreshAndShared: a caller arriving while a read runs does not
// get that read's result but the next one's, which it shares with every
// caller that arrived meanwhile, each getting its own key.
func TestRoundsFreshAndShared(t *testing.T) {
	var (
		mu      sync.Mutex
		version int
		reads   [][]int
	)
	first := make(chan struct{})
	release := make(chan struct{})
	g := newRounds(context.Background(), func(_ context.Context, keys []int) (map[int]int, error) {
		mu.Lock()
		version++
		v := version
		reads = append(reads, keys)
		mu.Unlock()
		if v == 1 {
			close(first)
			<-release // the first read is slow: callers gather meanwhile
		}
		m := map[int]int{}
		for _, k := range keys {
			m[k] = v*1000 + k
		}
		return m, nil
	})
	got0 := make(chan int, 1)
	go func() {
		v, err := g.get(context.Background(), 0)
		if err != nil {
			t.Error(err)
		}
		got0 <- v
	}()
	<-first
	const n = 20
	var wg sync.WaitGroup
	got := make([]int, n)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := g.get(context.Background(), i%5+1)
			if err != nil {
				t.Error(err)
			}
			got[i-1] = v
		}()
	}
	// Every caller joins the gathering round before the first read ends.
	eventually(t, "callers to gather", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.next != nil && g.next.callers == n
	})
	close(release)
	wg.Wait()
	if v := <-got0; v != 1000 {
		t.Errorf("first caller got %d, want 1000 (the first read)", v)
	}
	for i, v := range got {
		if want := 2000 + (i+1)%5 + 1; v != want {
			t.Errorf("caller %d got %d, want %d (the second read)", i+1, v, want)
		}
	}
	if r := g.reads.Load(); r != 2 {
		t.Errorf("%d reads for %d callers, want 2", r, n+1)
	}
	if len(reads) != 2 || len(reads[1]) != 5 {
		t.Errorf("reads %v: the second must hold the 5 keys once each", reads)
	}
	// Idle again: a lone caller reads at once.
	if v, err := g.get(context.Background(), 7); err != nil || v != 3007 {
		t.Errorf("lone caller got %d (%v), want 3007", v, err)
	}
}

// TestPullTimesWrittenAtShutdown: a pull's time, gathered in memory, is in
// the database once the LAPI has stopped, however soon after the pull.
func TestPullTimesWrittenAtShutdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crowdsec.db")
	l := startLAPIAt(t, path, nil)
	key := l.addBouncer("fw")
	l.stream(key, "&startup=true&cursor=")
	l.Stop()
	st, err := store.Open(context.Background(), testStoreConfig(t, path))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := st.GetBouncer(context.Background(), "fw")
	if err != nil {
		t.Fatal(err)
	}
	if b.LastPull == nil {
		t.Fatal("the pull's time was lost at shutdown")
	}
}

// TestOnConnections: the hook hears how many connections the LAPI holds
// open, as they open and close.
func TestOnConnections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crowdsec.db")
	cfg := csconfig.Default()
	cfg.DBConfig.DBPath = path
	cfg.API.Server.ListenURI = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, testStoreConfig(t, path))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := New(ctx, cfg, st, profiles.Default())
	if err != nil {
		t.Fatal(err)
	}
	var open atomic.Int64
	open.Store(-1)
	srv.OnConnections(func(n int) { open.Store(int64(n)) })
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, ln, nil); err != nil {
			t.Error(err)
		}
	}()
	defer func() { cancel(); <-done }()
	var clients []*http.Client
	for i := 0; i < 3; i++ {
		c := &http.Client{Transport: &http.Transport{}}
		resp, err := c.Get("http://" + ln.Addr().String() + "/health")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		clients = append(clients, c)
	}
	eventually(t, "3 connections reported", func() bool { return open.Load() == 3 })
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	eventually(t, "0 connections reported", func() bool { return open.Load() == 0 })
}

// TestKeyCacheSeesDeletion: a bouncer whose key lookups are kept is
// refused at its next request once another process (cscli) deletes it,
// and a new bouncer of the same name and another key is let in; pulls
// alone do not drop what is kept.
func TestKeyCacheSeesDeletion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crowdsec.db")
	l := startLAPIAt(t, path, nil)
	key := l.addBouncer("fw")
	for i := 0; i < 3; i++ {
		if st, body := l.do("GET", "/v1/decisions/stream?startup=true&cursor=", keyHeaders(key), nil); st != 200 {
			t.Fatalf("pull %d: %d %s", i, st, body)
		}
	}
	before := l.Server.keys.reads.Load()
	if st, _ := l.do("GET", "/v1/decisions/stream?startup=true&cursor=", keyHeaders(key), nil); st != 200 {
		t.Fatalf("pull: %d", st)
	}
	if r := l.Server.keys.reads.Load() - before; r != 0 {
		t.Errorf("%d key lookups for a key already looked up, want 0 (kept)", r)
	}
	cli, err := store.Open(context.Background(), testStoreConfig(t, path))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if err := cli.DeleteBouncer(context.Background(), "fw"); err != nil {
		t.Fatal(err)
	}
	if st, body := l.do("GET", "/v1/decisions/stream?startup=true&cursor=", keyHeaders(key), nil); st != http.StatusForbidden {
		t.Fatalf("deleted bouncer's pull: %d %s, want 403", st, body)
	}
	key2, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.CreateBouncer(context.Background(), store.Bouncer{Name: "fw", APIKeyHash: apikey.Hash(key2)}); err != nil {
		t.Fatal(err)
	}
	if st, body := l.do("GET", "/v1/decisions/stream?startup=true&cursor=", keyHeaders(key2), nil); st != 200 {
		t.Fatalf("new key: %d %s", st, body)
	}
	if st, _ := l.do("GET", "/v1/decisions/stream?startup=true&cursor=", keyHeaders(key), nil); st != http.StatusForbidden {
		t.Fatalf("old key after the new bouncer: %d, want 403", st)
	}
}

// TestKeyCacheKeeps: rows are kept for their version only, for
// keyCacheMaxAge at most, an older version's read does not replace them,
// and a recorded pull time shows in the next copies.
func TestKeyCacheKeeps(t *testing.T) {
	var k keyCache
	t0 := time.Now()
	k.put(2, "h", []*store.Bouncer{{ID: 7, Name: "fw"}}, t0)
	if rows, ok := k.get(2, "h", t0.Add(keyCacheMaxAge/2)); !ok || len(rows) != 1 || rows[0].Name != "fw" {
		t.Fatalf("kept rows: %v %v", rows, ok)
	}
	if _, ok := k.get(2, "h", t0.Add(keyCacheMaxAge)); ok {
		t.Error("rows kept past keyCacheMaxAge")
	}
	if _, ok := k.get(3, "h", t0); ok {
		t.Error("rows kept across a version change")
	}
	k.put(1, "h", []*store.Bouncer{{ID: 7, Name: "old"}}, t0)
	if rows, ok := k.get(2, "h", t0); !ok || rows[0].Name != "fw" {
		t.Errorf("an older version's read replaced the rows: %v %v", rows, ok)
	}
	k.pulled("h", 7, t0)
	rows, _ := k.get(2, "h", t0)
	if rows[0].LastPull == nil || !rows[0].LastPull.Equal(t0) {
		t.Errorf("pull time not kept: %v", rows[0].LastPull)
	}
	rows[0].Name = "changed"
	if again, _ := k.get(2, "h", t0); again[0].Name != "fw" {
		t.Error("a copy's change reached the kept rows")
	}
}
