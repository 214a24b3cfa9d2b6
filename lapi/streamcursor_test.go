package lapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

func decodeStream(t *testing.T, r reply) models.StreamResponse {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("stream: %s", r)
	}
	var s models.StreamResponse
	if err := json.Unmarshal(r.Body, &s); err != nil {
		t.Fatalf("stream body %q: %v", r.Body, err)
	}
	return s
}

// TestStreamSharedKeyDistinctClients: two different bouncers (User-Agents)
// sharing one key from one address each get every change; they used to
// share one cursor, so the second saw nothing the first had pulled.
func TestStreamSharedKeyDistinctClients(t *testing.T) {
	l := startLAPI(t, nil)
	key := l.addBouncer("shared")
	fw := keyHdr(key, "User-Agent", "crowdsec-firewall-bouncer/v0.0.31")
	web := keyHdr(key, "User-Agent", "crowdsec-nginx-bouncer/v1.0.8")
	pull := func(h http.Header, q string) models.StreamResponse {
		t.Helper()
		return decodeStream(t, l.send("GET", "/v1/decisions/stream?"+q, h, nil))
	}
	expectStream(t, "fw startup", pull(fw, "startup=true"), nil, nil)
	expectStream(t, "web startup", pull(web, "startup=true"), nil, nil)
	l.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"))
	expectStream(t, "fw delta", pull(fw, ""), []string{"192.0.2.1"}, nil)
	l.push(manualAlert("192.0.2.2", "Ip", "4h", "cscli"))
	expectStream(t, "web delta", pull(web, ""), []string{"192.0.2.1", "192.0.2.2"}, nil)
	expectStream(t, "fw second delta", pull(fw, ""), []string{"192.0.2.2"}, nil)
	expectStream(t, "web again", pull(web, ""), nil, nil)
	if bs, _ := l.Store.ListBouncers(context.Background()); len(bs) != 1 {
		t.Errorf("%d bouncer rows, want 1: the User-Agent splits cursors, not rows", len(bs))
	}

	// Retention keeps a tombstone until both have it.
	status, body := l.do("DELETE", "/v1/decisions?ip=192.0.2.1", l.jwtHeaders(), nil)
	if status != 200 {
		t.Fatalf("delete: %d %s", status, body)
	}
	expectStream(t, "fw sees the deletion", pull(fw, ""), nil, []string{"192.0.2.1"})
	if _, err := l.Store.Flush(context.Background(), store.FlushPolicy{TombstoneMinAge: -time.Second}, time.Now()); err != nil {
		t.Fatal(err)
	}
	expectStream(t, "web sees the deletion after a flush", pull(web, ""), nil, []string{"192.0.2.1"})
}

// TestStreamClientCursor covers Rampart's client-kept cursor: any number of
// processes on one key, address and User-Agent each get every change; the
// server-kept cursor of an upstream client on the same row is untouched; a
// cursor the LAPI cannot serve whole is refused with 410.
func TestStreamClientCursor(t *testing.T) {
	l := startLAPI(t, nil)
	key := l.addBouncer("fw")
	h := keyHdr(key)
	pull := func(q string) (models.StreamResponse, int64) {
		t.Helper()
		r := l.send("GET", "/v1/decisions/stream?"+q, h, nil)
		s := decodeStream(t, r)
		c, err := strconv.ParseInt(r.Header.Get(models.CursorHeader), 10, 64)
		if err != nil {
			t.Fatalf("%s header %q: %v", models.CursorHeader, r.Header.Get(models.CursorHeader), err)
		}
		return s, c
	}
	delta := func(c int64) (models.StreamResponse, int64) {
		return pull("cursor=" + strconv.FormatInt(c, 10))
	}
	l.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"))
	// an upstream client on the same row and User-Agent
	expectStream(t, "upstream startup", decodeStream(t, l.send("GET", "/v1/decisions/stream?startup=true", h, nil)), []string{"192.0.2.1"}, nil)

	s1, c1 := pull("startup=true&cursor=")
	expectStream(t, "p1 startup", s1, []string{"192.0.2.1"}, nil)
	s2, c2 := pull("startup=true&cursor=")
	expectStream(t, "p2 startup", s2, []string{"192.0.2.1"}, nil)
	l.push(manualAlert("192.0.2.2", "Ip", "4h", "cscli"))
	s1, c1 = delta(c1)
	expectStream(t, "p1 delta", s1, []string{"192.0.2.2"}, nil)
	l.push(manualAlert("192.0.2.3", "Ip", "4h", "cscli"))
	s2, c2 = delta(c2)
	expectStream(t, "p2 delta", s2, []string{"192.0.2.2", "192.0.2.3"}, nil)
	s1, c1 = delta(c1)
	expectStream(t, "p1 second delta", s1, []string{"192.0.2.3"}, nil)
	if c1 != c2 {
		t.Errorf("both processes caught up but hold cursors %d and %d", c1, c2)
	}
	// A failed or lost response is simply asked again: same cursor, same delta.
	s1, _ = delta(c1 - 1)
	expectStream(t, "replayed delta", s1, []string{"192.0.2.3"}, nil)
	expectStream(t, "upstream delta untouched by the cursor= pulls", decodeStream(t, l.send("GET", "/v1/decisions/stream", h, nil)),
		[]string{"192.0.2.2", "192.0.2.3"}, nil)

	// long-poll from a client cursor
	done := make(chan models.StreamResponse, 1)
	go func() { s, _ := pull("wait=20s&cursor=" + strconv.FormatInt(c1, 10)); done <- s }()
	time.Sleep(200 * time.Millisecond)
	l.push(manualAlert("192.0.2.4", "Ip", "4h", "cscli"))
	expectStream(t, "long-poll", <-done, []string{"192.0.2.4"}, nil)

	for _, bad := range []string{"", "x", "-1"} {
		r := l.send("GET", "/v1/decisions/stream?cursor="+bad, h, nil)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "invalid cursor") {
			t.Errorf("cursor=%q: %s", bad, r)
		}
	}
	// ahead of this database (restored from an older backup)
	if r := l.send("GET", "/v1/decisions/stream?cursor=999999", h, nil); r.Status != http.StatusGone {
		t.Errorf("cursor ahead of the database: %s", r)
	}
	if r := l.send("GET", "/v1/decisions/stream?wait=5s&cursor=999999", h, nil); r.Status != http.StatusGone {
		t.Errorf("long-poll from a cursor ahead of the database: %s", r)
	}
	// Retention purges a deletion the cursor has not seen: 410, then a
	// startup and deltas work again.
	_, stale := delta(c1)
	status, body := l.do("DELETE", "/v1/decisions?ip=192.0.2.2", l.jwtHeaders(), nil)
	if status != 200 {
		t.Fatalf("delete: %d %s", status, body)
	}
	l.stream(key, "") // the upstream client's cursor does not hold it back
	if _, err := l.Store.Flush(context.Background(), store.FlushPolicy{TombstoneMinAge: -time.Second, MaxItems: 1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	r := l.send("GET", "/v1/decisions/stream?cursor="+strconv.FormatInt(stale, 10), h, nil)
	if r.Status != http.StatusGone || !strings.Contains(string(r.Body), "startup=true") {
		t.Fatalf("cursor behind purged changes: %s", r)
	}
	s, c := pull("startup=true&cursor=")
	expectStream(t, "startup after 410", s, []string{"192.0.2.1", "192.0.2.3", "192.0.2.4"}, nil)
	l.push(manualAlert("192.0.2.5", "Ip", "4h", "cscli"))
	s, _ = delta(c)
	expectStream(t, "delta after resync", s, []string{"192.0.2.5"}, nil)
}

// TestStreamSharedCursorWarning: two upstream processes on one key, address
// and User-Agent (two keep-alive connections pulling in turn) get a clear
// warning; one process, even reconnecting for every pull, gets none.
func TestStreamSharedCursorWarning(t *testing.T) {
	l := startLAPI(t, nil)
	key := l.addBouncer("fw")
	hook := logtest.NewGlobal()
	defer hook.Reset()
	warnings := func() int {
		n := 0
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, "share one stream cursor") {
				n++
			}
		}
		return n
	}
	pullWith := func(c *http.Client, q string) {
		t.Helper()
		req, _ := http.NewRequest("GET", l.URL+"/v1/decisions/stream?"+q, nil)
		req.Header = keyHdr(key)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("stream: %d", resp.StatusCode)
		}
	}
	one := &http.Client{Transport: &http.Transport{}}
	for range 4 {
		pullWith(one, "")
	}
	for range 4 {
		l.stream(key, "") // a new connection each time
	}
	if n := warnings(); n != 0 {
		t.Fatalf("%d shared-cursor warnings for a single process", n)
	}
	other := &http.Client{Transport: &http.Transport{}}
	// Rampart's bouncer keeps its own cursor: processes sharing a key are
	// fine and never warned about.
	for range 3 {
		pullWith(one, "startup=true&cursor=")
		pullWith(other, "startup=true&cursor=")
	}
	if n := warnings(); n != 0 {
		t.Fatalf("%d shared-cursor warnings for processes keeping their own cursors", n)
	}
	for range 3 {
		pullWith(one, "")
		pullWith(other, "")
	}
	if n := warnings(); n != 1 {
		t.Errorf("%d shared-cursor warnings for two processes pulling in turn, want 1 (rate-limited)", n)
	}
}

// TestStreamWatch: one process reconnecting, or once pulling over a second
// pooled connection, is not two processes; steady turns are, reported once
// an hour; unknown peers are never judged.
func TestStreamWatch(t *testing.T) {
	var w streamWatch
	now := time.Now()
	n := 0
	pull := func(bouncer int64, peer string) {
		now = now.Add(10 * time.Second)
		if w.shared(bouncer, "fw/1", peer, now) {
			n++
		}
	}
	for i := range 50 { // reconnecting: a new port each time
		pull(1, "127.0.0.1:"+strconv.Itoa(40000+i))
	}
	for _, p := range []string{"a", "a", "b", "a", "a", "a", "b", "b"} { // one return, then another much later
		pull(2, p)
		now = now.Add(2 * time.Minute)
	}
	for range 20 {
		pull(3, "")
		pull(3, "")
	}
	if n != 0 {
		t.Fatalf("%d warnings without two processes", n)
	}
	for range 100 { // two processes for a while
		pull(4, "a")
		pull(4, "b")
	}
	if n != 1 {
		t.Errorf("%d warnings for two processes over ~30 min, want 1", n)
	}
	now = now.Add(time.Hour)
	for range 3 {
		pull(4, "a")
		pull(4, "b")
	}
	if n != 2 {
		t.Errorf("%d warnings after another hour, want 2", n)
	}
}
