package lapi

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/models"
)

// TestShutdownEndsLongPolls stops a LAPI while a bouncer long-polls with
// wait=30s and a 3 s shutdown budget: the waiting request must be answered
// (an empty 200 delta with its cursor) and the graceful shutdown complete,
// instead of Shutdown waiting out the wait and cutting the connection
// (systemctl stop took 5.1 s with a bouncer connected).
func TestShutdownEndsLongPolls(t *testing.T) {
	l := startLAPI(t, func(c *csconfig.Config) { c.API.Server.LongPollMax = csconfig.Duration{Duration: time.Minute} })
	l.Server.shutdownTimeout = 3 * time.Second
	key := l.addBouncer("fw")
	client, err := apiclient.New(apiclient.Config{URL: l.URL, APIKey: key, Bouncer: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	noop := func(bool, *models.Decision) error { return nil }
	hdr, err := client.StreamScan(ctx, true, url.Values{"cursor": {""}}, noop)
	if err != nil {
		t.Fatalf("startup pull: %v", err)
	}
	cursor := hdr.Get(models.CursorHeader)
	type result struct {
		hdr map[string][]string
		err error
	}
	done := make(chan result, 1)
	go func() {
		h, err := client.StreamScan(ctx, false, url.Values{"cursor": {cursor}, "wait": {"30s"}}, noop)
		done <- result{h, err}
	}()
	// Shut down only once the long-poll waits in the handler.
	for l.Server.longPolls.Load() == 0 {
		select {
		case r := <-done:
			t.Fatalf("long-poll returned before the shutdown: %v", r.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	stopped := make(chan struct{})
	go func() {
		l.Stop()
		close(stopped)
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("the long-poll was cut at shutdown instead of answered: %v", r.err)
	}
	if got := r.hdr[models.CursorHeader]; len(got) != 1 || got[0] != cursor {
		t.Errorf("cursor after the shutdown answer = %v, want [%s] (nothing changed)", got, cursor)
	}
	<-stopped
}
