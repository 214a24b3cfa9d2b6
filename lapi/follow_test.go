package lapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/testdb"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// tally counts, per value, the creations and deletions a follower applied:
// only the decisions of complete lines, as Rampart's bouncer applies them.
type tally struct {
	mu         sync.Mutex
	news, dels map[string]int
	cursor     int64
}

func newTally() *tally { return &tally{news: map[string]int{}, dels: map[string]int{}} }

// callbacks are the decision and chunk callbacks of a follow response
// that apply whole lines to the tally; done, if set, runs after each line.
func (ty *tally) callbacks(done func()) (func(bool, *models.Decision) error, func(int64) error) {
	type ev struct {
		v   string
		del bool
	}
	var pending []ev
	return func(deleted bool, d *models.Decision) error {
			pending = append(pending, ev{d.Value, deleted})
			return nil
		}, func(cur int64) error {
			ty.mu.Lock()
			for _, e := range pending {
				if e.del {
					ty.dels[e.v]++
				} else {
					ty.news[e.v]++
				}
			}
			pending = pending[:0]
			ty.cursor = cur
			ty.mu.Unlock()
			if done != nil {
				done()
			}
			return nil
		}
}

// follow runs one follow response through client from the tally's cursor
// until it ends; it returns what StreamFollow returned.
func (ty *tally) follow(ctx context.Context, client *apiclient.Client, done func()) (http.Header, error) {
	ty.mu.Lock()
	cursor := ty.cursor
	ty.mu.Unlock()
	fn, chunk := ty.callbacks(done)
	return client.StreamFollow(ctx, url.Values{"cursor": {strconv.FormatInt(cursor, 10)}}, fn, chunk)
}

// startup pulls the full state with a client-kept cursor and keeps it.
func (ty *tally) startup(t *testing.T, client *apiclient.Client) {
	t.Helper()
	hdr, err := client.StreamScan(context.Background(), true, url.Values{"cursor": {""}}, func(bool, *models.Decision) error { return nil })
	if err != nil {
		t.Fatalf("startup pull: %v", err)
	}
	if hdr.Get(models.FollowHeader) == "" {
		t.Fatalf("the startup answer does not offer the follow mode (%s missing)", models.FollowHeader)
	}
	ty.cursor, _ = strconv.ParseInt(hdr.Get(models.CursorHeader), 10, 64)
}

func (ty *tally) has(v string, deleted bool) bool {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	if deleted {
		return ty.dels[v] > 0
	}
	return ty.news[v] > 0
}

func bouncerClient(t *testing.T, u, key string) *apiclient.Client {
	t.Helper()
	c, err := apiclient.New(apiclient.Config{URL: u, APIKey: key, Bouncer: true, UserAgent: "crowdsec-firewall-bouncer/v0.0.31-rampart"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// shortFollows makes follow responses end after max (clients resume from
// their cursor) and the shared checks run every check.
func shortFollows(max, check time.Duration) func(*Server) {
	return func(s *Server) {
		s.follow.max, s.follow.check = max, check
	}
}

// TestFollowExactlyOnceAcrossLAPIs drives concurrent writers through two
// LAPIs on one database while followers read the stream in follow mode,
// each response from the other LAPI than the last (the responses are cut
// short, so they resume from their cursor many times), and checks that
// every follower applies every change exactly once: each decision's
// creation, then its deletion. On SQLite, one LAPI plays both.
func TestFollowExactlyOnceAcrossLAPIs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crowdsec.db")
	tune := shortFollows(150*time.Millisecond, 50*time.Millisecond)
	la := startLAPITuned(t, path, nil, nil, tune)
	lb := la
	if !testdb.IsSQLite() {
		lb = startLAPITuned(t, path, nil, nil, tune)
	}
	lapis := []*testLAPI{la, lb}
	la.login()
	lb.token = la.token

	const writers, ops, followers = 4, 24, 4
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tallies := make([]*tally, followers)
	keys := make([]string, followers)
	var fg sync.WaitGroup
	ferrs := make(chan error, followers)
	for f := range followers {
		key := la.addBouncer(fmt.Sprintf("follower-%d", f))
		keys[f] = key
		clients := []*apiclient.Client{bouncerClient(t, la.URL, key), bouncerClient(t, lb.URL, key)}
		ty := newTally()
		ty.startup(t, clients[f%2])
		tallies[f] = ty
		fg.Add(1)
		go func() {
			defer fg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := ty.follow(ctx, clients[(f+i)%2], nil); err != nil && ctx.Err() == nil {
					ferrs <- fmt.Errorf("follower %d: %w", f, err)
					return
				}
			}
		}()
	}

	// Writer w adds 10.w.0.i through alternating LAPIs and deletes every
	// third one it added.
	var wg sync.WaitGroup
	werrs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ops {
				l := lapis[(w+i)%2]
				v := fmt.Sprintf("10.%d.0.%d", w, i)
				if status, body := l.do("POST", "/v1/alerts", l.jwtHeaders(), []*models.Alert{manualAlert(v, "Ip", "4h", "cscli")}); status != 201 {
					werrs <- fmt.Errorf("writer %d adding %s: %d %s", w, v, status, body)
					return
				}
				if i%3 == 2 {
					old := fmt.Sprintf("10.%d.0.%d", w, i-1)
					if status, body := l.do("DELETE", "/v1/decisions?ip="+old, l.jwtHeaders(), nil); status != 200 {
						werrs <- fmt.Errorf("writer %d deleting %s: %d %s", w, old, status, body)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(werrs)
	for err := range werrs {
		t.Fatal(err)
	}
	// Wait for every follower to have every change, then stop them.
	complete := func(ty *tally) bool {
		for w := range writers {
			for i := range ops {
				v := fmt.Sprintf("10.%d.0.%d", w, i)
				if !ty.has(v, i%3 == 1) || (i%3 != 1 && !ty.has(v, false)) {
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(time.Minute)
	for f, ty := range tallies {
		for !complete(ty) {
			select {
			case err := <-ferrs:
				t.Fatal(err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("follower %d never got every change", f)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cancel()
	fg.Wait()
	close(ferrs)
	for err := range ferrs {
		t.Fatal(err)
	}
	for f, ty := range tallies {
		// Whatever is left after the follower's cursor: nothing new.
		got := la.stream(keys[f], "&cursor="+strconv.FormatInt(ty.cursor, 10))
		for _, d := range got.New {
			ty.news[d.Value]++
		}
		for _, d := range got.Deleted {
			ty.dels[d.Value]++
		}
		for w := range writers {
			for i := range ops {
				v := fmt.Sprintf("10.%d.0.%d", w, i)
				deleted := i%3 == 1
				wantNews, wantDels := 1, 0
				if deleted {
					wantDels = 1
					if ty.news[v] == 0 {
						wantNews = 0 // created and deleted between two lines
					}
				}
				if ty.news[v] != wantNews || ty.dels[v] != wantDels {
					t.Errorf("follower %d applied %s as new %d times and deleted %d times; want %d and %d", f, v, ty.news[v], ty.dels[v], wantNews, wantDels)
				}
			}
		}
	}
}

// followRaw opens a follow response with a plain HTTP request on conn's
// behalf and returns its reader (headers read).
func followRaw(t *testing.T, l *testLAPI, key string, cursor int64, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*http.Response, *bufio.Reader) {
	t.Helper()
	tr := &http.Transport{DialContext: dial}
	t.Cleanup(tr.CloseIdleConnections)
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/decisions/stream?additional_pull=false&community_pull=false&follow=true&cursor=%d", l.URL, cursor), nil)
	req.Header.Set("X-Api-Key", key)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		t.Fatalf("follow: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp, bufio.NewReader(resp.Body)
}

// TestFollowHeartbeat: a follow response with nothing to say writes a
// line carrying its cursor every heartbeat, so proxies keep it open; and
// it ends at its maximum with the cursor reached.
func TestFollowHeartbeat(t *testing.T) {
	l := startLAPITuned(t, filepath.Join(t.TempDir(), "crowdsec.db"), nil, nil, func(s *Server) {
		s.follow.check, s.follow.heartbeat = 20*time.Millisecond, 50*time.Millisecond
	})
	key := l.addBouncer("fw")
	l.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"))
	seq := l.Store.Seq()
	_, r := followRaw(t, l, key, 0, nil)
	first, err := r.ReadString('\n')
	var chunk models.FollowChunk
	if err == nil {
		err = json.Unmarshal([]byte(first), &chunk)
	}
	if err != nil || chunk.Cursor != seq || len(chunk.New) != 1 || chunk.New[0].Value != "192.0.2.1" || len(chunk.Deleted) != 0 {
		t.Fatalf("first line %q (%v): want the delta since 0, at cursor %d", first, err, seq)
	}
	for i := range 2 {
		line, err := r.ReadString('\n')
		if want := fmt.Sprintf("{\"cursor\":%d}\n", seq); err != nil || line != want {
			t.Fatalf("heartbeat %d: %q (%v), want %q", i, line, err, want)
		}
	}
}

// TestFollowSlowReaderDropped: a follower that stops reading is dropped
// once a write has waited the write timeout (its socket buffers full),
// instead of holding the LAPI; it resumes from the cursor of its last
// complete line and gets every decision exactly once.
func TestFollowSlowReaderDropped(t *testing.T) {
	l := startLAPITuned(t, filepath.Join(t.TempDir(), "crowdsec.db"), nil, nil, func(s *Server) {
		s.follow.writeTimeout = 300 * time.Millisecond
	})
	key := l.addBouncer("fw")
	// A small receive buffer so the server's writes block soon.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			return errors.Join(err, serr)
		}}
		return d.DialContext(ctx, network, addr)
	}
	_, r := followRaw(t, l, key, 0, dial)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	// Batches of decisions, each a line of ~100 KB, until the server
	// gives the reader up.
	const per = 500
	batches := 0
	for l.Server.Follows() > 0 {
		if batches == 200 {
			t.Fatalf("the follower that stopped reading was not dropped after %d batches", batches)
		}
		storeBans(t, l, batches, per)
		batches++
		// Let the follower's goroutine write (or time out) before the next.
		for i := 0; i < 20 && l.Server.Follows() > 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("dropped after %d batches of %d", batches, per)
	// The reader reads what was buffered: whole lines, then a cut.
	ty := newTally()
	fn, chunk := ty.callbacks(nil)
	if err := apiclient.ScanFollow(r, fn, chunk); err == nil {
		t.Fatalf("the dropped response ended like a complete one")
	}
	// It resumes from its last whole line and gets the rest.
	want := batches * per
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := bouncerClient(t, l.URL, key)
	for len(ty.news) < want && ctx.Err() == nil {
		_, err := ty.follow(ctx, client, func() {
			if len(ty.news) >= want {
				cancel()
			}
		})
		if err != nil && ctx.Err() == nil {
			t.Fatalf("resumed follow: %v", err)
		}
	}
	for v, n := range ty.news {
		if n != 1 {
			t.Errorf("%s applied %d times", v, n)
		}
	}
	if len(ty.news) != want {
		t.Errorf("%d decisions after resuming, want %d", len(ty.news), want)
	}
}

// storeBans stores per bans in one alert, straight into the store.
func storeBans(t *testing.T, l *testLAPI, batch, per int) {
	t.Helper()
	now := time.Now()
	var ds []store.NewDecision
	for j := range per {
		v := fmt.Sprintf("10.%d.%d.%d", j>>8, batch, j&255)
		r, _ := store.ParseRange(v)
		ds = append(ds, store.NewDecision{UUID: "u-" + v, Until: now.Add(time.Hour), Scenario: strings.Repeat("slow-reader/", 8),
			Type: "ban", Scope: "Ip", Value: v, Origin: "cscli", Range: r})
	}
	a := &models.Alert{Scenario: "slow", Source: &models.Source{Scope: "Ip", Value: ds[0].Value}}
	if _, err := l.Store.CreateAlerts(context.Background(), []store.NewAlert{{Alert: a, UUID: fmt.Sprint("a-", batch), StartAt: now, StopAt: now, Decisions: ds}}); err != nil {
		t.Fatal(err)
	}
}

// TestFollowEndsWhenKeyDeleted: deleting a bouncer ends its open follow
// responses at the next shared check; a new one is refused.
func TestFollowEndsWhenKeyDeleted(t *testing.T) {
	l := startLAPITuned(t, filepath.Join(t.TempDir(), "crowdsec.db"), nil, nil, shortFollows(time.Hour, 20*time.Millisecond))
	key := l.addBouncer("fw")
	client := bouncerClient(t, l.URL, key)
	ty := newTally()
	ty.startup(t, client)
	done := make(chan error, 1)
	go func() { _, err := ty.follow(context.Background(), client, nil); done <- err }()
	for l.Server.Follows() == 0 {
		select {
		case err := <-done:
			t.Fatalf("the follow response ended before the key was deleted: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := l.Store.DeleteBouncer(context.Background(), "fw"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the follow response broke instead of ending: %v", err)
	}
	_, err := ty.follow(context.Background(), client, nil)
	var apiErr *apiclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Errorf("following with the deleted key: %v, want 403", err)
	}
}

// TestFollowShutdown: a LAPI shutting down ends its follow responses at
// once and cleanly (the bouncer resumes elsewhere or later), well within
// the graceful shutdown, rather than having them cut.
func TestFollowShutdown(t *testing.T) {
	l := startLAPITuned(t, filepath.Join(t.TempDir(), "crowdsec.db"), nil, nil, func(s *Server) { s.shutdownTimeout = time.Minute })
	key := l.addBouncer("fw")
	client := bouncerClient(t, l.URL, key)
	ty := newTally()
	ty.startup(t, client)
	done := make(chan error, 1)
	go func() { _, err := ty.follow(context.Background(), client, nil); done <- err }()
	for l.Server.Follows() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	l.Stop()
	if err := <-done; err != nil {
		t.Fatalf("the follow response was cut at shutdown: %v", err)
	}
	if el := time.Since(start); el > 30*time.Second {
		t.Errorf("shutdown took %s: it waited for the follow response", el)
	}
}

// TestFollowOff: with [api.server] follow = false the LAPI offers no
// follow mode, and a follow request is answered as a plain delta, which
// the client takes as one chunk.
func TestFollowOff(t *testing.T) {
	l := startLAPI(t, func(c *csconfig.Config) { c.API.Server.Follow = new(bool) })
	key := l.addBouncer("fw")
	client := bouncerClient(t, l.URL, key)
	hdr, err := client.StreamScan(context.Background(), true, url.Values{"cursor": {""}}, func(bool, *models.Decision) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Get(models.FollowHeader) != "" || hdr.Get(models.LongPollHeader) == "" {
		t.Errorf("headers %v: want the long-poll offered, not the follow mode", hdr)
	}
	l.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"))
	ty := newTally()
	if _, err := ty.follow(context.Background(), client, nil); err != nil {
		t.Fatal(err)
	}
	if ty.news["192.0.2.1"] != 1 || ty.cursor != l.Store.Seq() {
		t.Errorf("plain answer to follow: %v at cursor %d, want the new ban at %d", ty.news, ty.cursor, l.Store.Seq())
	}
}

// TestChangeRightAfterSharedRender: a change committed within a second of
// a shared rendering of the delta from the same cursor (here the first,
// empty line of a follow response) must wake followers and long-polls at
// that cursor with the change. The rendering was reused for a second as if
// still current: the change reached a follower only with the next change
// (or the shared check), a long-poll only at the end of its wait.
func TestChangeRightAfterSharedRender(t *testing.T) {
	// The long-poll waits a few seconds at most: it is answered with the
	// change either way, only later with the reuse.
	l := startLAPITuned(t, filepath.Join(t.TempDir(), "crowdsec.db"), nil,
		func(c *csconfig.Config) { c.API.Server.LongPollMax.Duration = 3 * time.Second }, shortFollows(time.Hour, time.Hour))
	key := l.addBouncer("fw")
	seq := l.Store.Seq()
	resp, r := followRaw(t, l, key, seq, nil)
	if line, err := r.ReadString('\n'); err != nil || line != fmt.Sprintf("{\"cursor\":%d,\"new\": [], \"deleted\": []}\n", seq) {
		t.Fatalf("first line %q (%v)", line, err)
	}
	polled := make(chan models.StreamResponse, 1)
	go func() { polled <- l.stream(key, fmt.Sprintf("&cursor=%d&wait=3s", seq)) }()
	for l.Server.longPolls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	l.push(manualAlert("192.0.2.7", "Ip", "4h", "cscli"))
	expectStream(t, "long-poll", <-polled, []string{"192.0.2.7"}, nil)
	// The follower: its next line brings the change (it would wait for
	// the next change, or the hourly check, without the fix; the body is
	// closed after a while so the test fails instead of hanging).
	timer := time.AfterFunc(20*time.Second, func() { resp.Body.Close() })
	defer timer.Stop()
	line, err := r.ReadString('\n')
	if err != nil || !strings.Contains(line, `"192.0.2.7"`) {
		t.Fatalf("follower's next line %q (%v): want the change", line, err)
	}
}
