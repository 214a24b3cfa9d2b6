package delivery

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/lapi/store"
)

// uuidCounts counts the stored alerts by UUID.
func (l *testLAPI) uuidCounts() map[string]int {
	l.t.Helper()
	alerts, err := l.Store.QueryAlerts(context.Background(), store.AlertFilter{Limit: 0, IncludeCAPI: true}, time.Now())
	if err != nil {
		l.t.Fatalf("querying alerts: %v", err)
	}
	out := map[string]int{}
	for _, a := range alerts {
		out[a.UUID]++
	}
	return out
}

// TestFailover: two real LAPIs serve one SQLite file (a fleet on one
// database); the agent's client lists LAPI 1 (behind a proxy that stages
// its failures) then LAPI 2. Whatever way LAPI 1 fails while alerts are
// queued (503, connection reset before or after it stored the alerts,
// killed mid-run), every alert is delivered, through LAPI 2, and stored exactly
// once (counted by UUID at the database), and the move is counted.
func TestFailover(t *testing.T) {
	db := filepath.Join(t.TempDir(), "crowdsec.db")
	l1 := startLAPI(t, db, "")
	l2 := startLAPI(t, db, "")
	fp := newFaultProxy(t, l1.URL())
	want := map[string]int{}
	for _, mode := range []string{"503", "reset", "stored-then-reset", "killed"} {
		t.Run(mode, func(t *testing.T) {
			client, err := apiclient.New(apiclient.Config{URLs: []string{fp.url, l2.URL()}, MachineID: testMachine, Password: testPassword,
				Timeout: 5 * time.Second, Failback: -1})
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(fastConfig(t.TempDir()), client, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			reg := prometheus.NewRegistry()
			if err := p.Metrics().Register(reg); err != nil {
				t.Fatal(err)
			}
			// Logged in on LAPI 1 first, so that the alerts queue while it
			// fails with a token it issued.
			if err := client.Login(context.Background()); err != nil || client.URL() != fp.url {
				t.Fatalf("login on LAPI 1: %v (on %s)", err, client.URL())
			}
			switch mode {
			case "503":
				fp.setFail(func(r *http.Request) (int, string) { return http.StatusServiceUnavailable, `{"message":"overloaded"}` })
			case "reset":
				fp.setFail(func(r *http.Request) (int, string) { return statusReset, "" })
			case "stored-then-reset":
				fp.setFail(func(r *http.Request) (int, string) {
					if r.Method == http.MethodPost && r.URL.Path == "/v1/alerts" {
						return statusStoredThenReset, ""
					}
					return 0, ""
				})
			}
			tried := fp.count("POST /v1/alerts")
			stop := run(t, p)
			if mode == "killed" {
				// Mid-run: half the alerts reach LAPI 1, then it dies.
				fp.setFail(nil)
				pushAll(t, p, names(mode, 0, 15))
				waitFor(t, "the first alerts delivered", func() bool { s := p.Stats(); return s.Delivered == 15 && s.Queued == 0 })
				if client.URL() != fp.url {
					t.Fatalf("left LAPI 1 before it died")
				}
				l1.Stop()
				fp.srv.Close()
				pushAll(t, p, names(mode, 15, 30))
			} else {
				pushAll(t, p, names(mode, 0, 30))
			}
			waitFor(t, "every alert delivered", func() bool { s := p.Stats(); return s.Delivered == 30 && s.Queued == 0 })
			stop()
			if s := p.Stats(); s.Dropped != 0 || s.Delivered != 30 {
				t.Errorf("stats %+v: want 30 delivered, none dropped", s)
			}
			if mode != "killed" && fp.count("POST /v1/alerts") == tried {
				t.Errorf("no push reached LAPI 1's proxy: the failure was not staged")
			}
			if client.URL() != l2.URL() {
				t.Errorf("client on %s after LAPI 1 failed, want LAPI 2 %s", client.URL(), l2.URL())
			}
			if n := gather(t, reg, "rampart_lapi_failovers_total", ""); n != 1 {
				t.Errorf("rampart_lapi_failovers_total = %v, want 1", n)
			}
			got := l2.uuidCounts()
			stored := 0
			for id, n := range got {
				if n != 1 {
					t.Errorf("alert %s stored %d times", id, n)
				}
				if want[id] == 0 {
					stored++
				}
			}
			if stored != 30 {
				t.Errorf("%d new alerts stored, want 30", stored)
			}
			for id := range got {
				want[id] = 1
			}
			fp.setFail(nil)
		})
	}
}
