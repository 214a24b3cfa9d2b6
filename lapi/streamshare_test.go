package lapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// TestSharedDeltaForLongPolls: thirty bouncers long-polling at one cursor
// are woken by one alert; they all get the same body and cursor, rendered
// far fewer than thirty times, and a protected value is not in it.
func TestSharedDeltaForLongPolls(t *testing.T) {
	l := startProtectedLAPI(t)
	const n = 30
	keys := make([]string, n)
	for i := range keys {
		keys[i] = l.addBouncer(fmt.Sprintf("fw%d", i))
	}
	get := func(key, query string) (int, http.Header, []byte, error) {
		req, _ := http.NewRequest("GET", l.URL+"/v1/decisions/stream?"+query, nil)
		req.Header.Set("X-Api-Key", key)
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			return 0, nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b, err
	}
	st, hdr, body, err := get(keys[0], "startup=true&cursor=")
	if err != nil || st != 200 {
		t.Fatalf("startup: %d %v %s", st, err, body)
	}
	cursor := hdr.Get(models.CursorHeader)
	type answer struct {
		cursor string
		body   string
	}
	answers := make([]answer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st, hdr, body, err := get(keys[i], "wait=15s&cursor="+cursor)
			if err == nil && st != 200 {
				err = fmt.Errorf("status %d: %s", st, body)
			}
			answers[i], errs[i] = answer{hdr.Get(models.CursorHeader), string(body)}, err
		}(i)
	}
	time.Sleep(300 * time.Millisecond) // let the long-polls settle into their wait
	before := l.Server.deltas.renders.Load()
	a := manualAlert("192.0.2.44", "Ip", "4h", "crowdsec")
	a.Kind = "crowdsec"
	a.Decisions = append(a.Decisions, &models.Decision{Duration: "4h", Origin: "crowdsec", Scenario: "s", Scope: "Range", Type: "ban", Value: "fe80::/10"},
		&models.Decision{Duration: "4h", Origin: "crowdsec", Scenario: "s", Scope: "Ip", Type: "ban", Value: "192.0.2.45"})
	l.push(a)
	wg.Wait()
	for i := range answers {
		if errs[i] != nil {
			t.Fatalf("bouncer %d: %v", i, errs[i])
		}
		if answers[i] != answers[0] {
			t.Fatalf("bouncer %d got %+v, bouncer 0 %+v", i, answers[i], answers[0])
		}
	}
	var sr models.StreamResponse
	if err := json.Unmarshal([]byte(answers[0].body), &sr); err != nil {
		t.Fatalf("body %s: %v", answers[0].body, err)
	}
	var values []string
	for _, d := range sr.New {
		values = append(values, d.Value)
	}
	if len(values) != 2 || values[0] != "192.0.2.44" || values[1] != "192.0.2.45" || len(sr.Deleted) != 0 {
		t.Errorf("shared delta holds %v (deleted %d), want 192.0.2.44 and 192.0.2.45", values, len(sr.Deleted))
	}
	if answers[0].cursor == cursor || answers[0].cursor == "" {
		t.Errorf("cursor %q after the delta, was %q", answers[0].cursor, cursor)
	}
	if r := l.Server.deltas.renders.Load() - before; r < 1 || r > 3 {
		t.Errorf("%d renderings for %d bouncers at one cursor, want 1 to 3", r, n)
	}
}

// TestSharedDeltaInBlocks: a shared delta larger than one rendering block
// reaches the bouncer whole, in order, with its length right.
func TestSharedDeltaInBlocks(t *testing.T) {
	l := startProtectedLAPI(t)
	key := l.addBouncer("fw")
	get := func(query string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest("GET", l.URL+"/v1/decisions/stream?"+query, nil)
		req.Header.Set("X-Api-Key", key)
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	resp, body, err := get("startup=true&cursor=")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("startup: %v %s", err, body)
	}
	cursor := resp.Header.Get(models.CursorHeader)
	type answer struct {
		resp *http.Response
		body []byte
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, body, err := get("wait=15s&cursor=" + cursor)
		done <- answer{resp, body, err}
	}()
	const n = 1000 // about 180 KB: three blocks
	a := manualAlert("198.18.0.0", "Ip", "4h", "crowdsec")
	a.Decisions = a.Decisions[:0]
	for i := range n {
		a.Decisions = append(a.Decisions, &models.Decision{Duration: "4h", Origin: "crowdsec", Scenario: "s", Scope: "Ip", Type: "ban",
			Value: fmt.Sprintf("198.18.%d.%d", i>>8, i&255)})
	}
	before := l.Server.deltas.renders.Load()
	l.push(a)
	got := <-done
	if got.err != nil || got.resp.StatusCode != 200 {
		t.Fatalf("long-poll: %v %s", got.err, got.body)
	}
	if l.Server.deltas.renders.Load() == before {
		t.Fatal("the answer was not a shared rendering")
	}
	if got.resp.ContentLength != int64(len(got.body)) || len(got.body) < 2*deltaBlock {
		t.Fatalf("Content-Length %d, body %d bytes (want more than two blocks)", got.resp.ContentLength, len(got.body))
	}
	var sr models.StreamResponse
	if err := json.Unmarshal(got.body, &sr); err != nil {
		t.Fatalf("body: %v", err)
	}
	if len(sr.New) != n {
		t.Fatalf("%d new decisions, want %d", len(sr.New), n)
	}
	for i, d := range sr.New {
		if want := fmt.Sprintf("198.18.%d.%d", i>>8, i&255); d.Value != want {
			t.Fatalf("decision %d is %s, want %s", i, d.Value, want)
		}
	}
}
