package bouncer

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/rampart-ips/rampart/apiclient"
)

// silentLAPI accepts connections and never answers, as a LAPI hung at
// boot does.
func silentLAPI(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + ln.Addr().String() + "/"
}

// startupBouncer builds a bouncer against url whose log goes to a hook.
func startupBouncer(t *testing.T, url, extra string) (*Bouncer, *logtest.Hook) {
	t.Helper()
	cfg, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"key\"\napi_url = \""+url+"\"\n"+extra), "t")
	if err != nil {
		t.Fatal(err)
	}
	client, err := apiclient.New(apiclient.Config{URL: cfg.APIURL, APIKey: cfg.APIKey})
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.Out = io.Discard
	hook := logtest.NewLocal(l)
	b := New(cfg, &countingFW{}, client, nil)
	b.log = logrus.NewEntry(l).WithField("component", "bouncer")
	return b, hook
}

// waitEntry waits for a log entry containing msg; the deadline only keeps a
// broken build from hanging.
func waitEntry(t *testing.T, hook *logtest.Hook, msg string) *logrus.Entry {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, e := range hook.AllEntries() {
			if strings.Contains(e.Message, msg) {
				return e
			}
		}
	}
	var got []string
	for _, e := range hook.AllEntries() {
		got = append(got, e.Message)
	}
	t.Fatalf("no log entry %q; got %q", msg, got)
	return nil
}

// TestSilentLAPIAtBootIsReported: with a LAPI that accepts the connection
// and never answers, the bouncer says at once that it waits for it (naming
// the URL), then keeps saying so with the attempt and when it gives up,
// instead of logging nothing until its request times out.
func TestSilentLAPIAtBootIsReported(t *testing.T) {
	url := silentLAPI(t)
	b, hook := startupBouncer(t, url, "")
	b.progressEvery = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, nil) }()
	defer func() { cancel(); <-done }()
	if e := waitEntry(t, hook, "waiting for the local API at "+url); e.Data["lapi"] != url {
		t.Errorf("waiting entry fields: %v", e.Data)
	}
	e := waitEntry(t, hook, "still waiting for the local API")
	if e.Data["attempt"] != 1 || e.Data["gives_up_in"] == nil || e.Data["lapi"] != url {
		t.Errorf("progress entry fields: %v", e.Data)
	}
}

// TestRetryInitialConnectFalse: upstream's retry_initial_connect = false
// stops the bouncer with an error when its first sync fails.
func TestRetryInitialConnectFalse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/"
	_ = ln.Close() // nothing listens: connection refused
	b, _ := startupBouncer(t, url, "retry_initial_connect = false\n")
	err = b.Run(context.Background(), func() { t.Error("ready without a LAPI") })
	if err == nil || !strings.Contains(err.Error(), "retry_initial_connect is false") || !strings.Contains(err.Error(), url) {
		t.Fatalf("Run = %v, want the first sync's failure naming the URL and retry_initial_connect", err)
	}
}
