package capi_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/capi"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/capitest"
	"github.com/rampart-ips/rampart/internal/testdb/storecfg"
	"github.com/rampart-ips/rampart/lapi"
	"github.com/rampart-ips/rampart/lapi/apikey"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

const (
	capiLogin    = "rampart-capi-test"
	capiPassword = "capi-password-0123456789"
	agentID      = "agent1"
	agentPass    = "agent-password-0123456789"
)

// rig is a real LAPI on loopback over a real SQLite file, with the CAPI
// service wired as cmd/crowdsec wires it, talking to a capitest server.
type rig struct {
	t      testing.TB
	dbPath string
	URL    string
	Store  *store.Store
	Server *lapi.Server
	Svc    *capi.Service
	cancel context.CancelFunc
	done   chan struct{}
}

// startRig starts a LAPI over dbPath and its CAPI service on cs (short
// intervals: pushes every 20 ms, retries from 20 ms); opt adjusts them.
func startRig(t testing.TB, dbPath string, cs *capitest.Server, opt func(*capi.Options)) *rig {
	t.Helper()
	cfg := csconfig.Default()
	cfg.DBConfig.DBPath = dbPath
	cfg.API.Server.ListenURI = "127.0.0.1:0"
	cfg.API.Server.AllowlistHostAddresses = new(bool)
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, storecfg.At(t, dbPath))
	if err != nil {
		cancel()
		t.Fatalf("opening store: %v", err)
	}
	srv, err := lapi.New(ctx, cfg, st, profiles.Default())
	if err != nil {
		cancel()
		st.Close()
		t.Fatalf("creating LAPI: %v", err)
	}
	client, err := capi.NewClient(capi.ClientConfig{URL: cs.URL(), Login: capiLogin, Password: capiPassword,
		Scenarios: st.MachineScenarios, Tokens: st, BusyWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	o := capi.Options{Client: client, Store: st, Filter: srv.FilterPulled, Sharing: true, PullCommunity: true, PullBlocklists: true,
		QueueMax: 10000, PushInterval: 20 * time.Millisecond, PullInterval: time.Hour, RetryMin: 20 * time.Millisecond,
		MetricsInterval: time.Hour, ScenarioPoll: 10 * time.Millisecond, Version: "test", Console: srv}
	if opt != nil {
		opt(&o)
	}
	svc := capi.New(o)
	srv.ReportDeletions(o.ShareDeletions)
	console, _ := csconfig.LoadConsole(filepath.Join(t.TempDir(), "none.yaml"))
	srv.ShareSignals(&capi.SharePolicy{Console: console})
	ln, err := srv.Listen()
	if err != nil {
		cancel()
		st.Close()
		t.Fatalf("listening: %v", err)
	}
	r := &rig{t: t, dbPath: dbPath, URL: "http://" + ln.Addr().String() + "/", Store: st, Server: srv, Svc: svc, cancel: cancel, done: make(chan struct{})}
	capiDone := make(chan struct{})
	go func() {
		defer close(capiDone)
		svc.Run(ctx)
	}()
	go func() {
		defer close(r.done)
		if err := srv.Serve(ctx, ln, nil); err != nil {
			t.Errorf("serving LAPI: %v", err)
		}
		<-capiDone
	}()
	t.Cleanup(r.Stop)
	return r
}

// Stop stops the LAPI and its CAPI service and closes the store.
func (r *rig) Stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.Store.Close()
	r.cancel = nil
}

// addAgent registers the agent with the scenarios it logs in with.
func (r *rig) addAgent(scenarios ...string) {
	r.t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(agentPass), bcrypt.MinCost)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Store.CreateMachine(ctx, store.Machine{MachineID: agentID, PasswordHash: string(hash), IsValidated: true}, true); err != nil {
		r.t.Fatal(err)
	}
	if err := r.Store.MachineLoggedIn(ctx, agentID, "127.0.0.1", "v1.7.8", scenarios); err != nil {
		r.t.Fatal(err)
	}
}

// agent is the agent's real LAPI client.
func (r *rig) agent() *apiclient.Client {
	r.t.Helper()
	c, err := apiclient.New(apiclient.Config{URL: r.URL, MachineID: agentID, Password: agentPass, UserAgent: "crowdsec/v1.7.8-test-linux"})
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// bouncer registers a bouncer and returns its client.
func (r *rig) bouncer(name string) *apiclient.Client {
	r.t.Helper()
	key, err := apikey.Generate()
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.Store.CreateBouncer(context.Background(), store.Bouncer{Name: name, APIKeyHash: apikey.Hash(key)}); err != nil {
		r.t.Fatal(err)
	}
	c, err := apiclient.New(apiclient.Config{URL: r.URL, APIKey: key, UserAgent: "crowdsec-firewall-bouncer/v0.0.1"})
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// alert is a certified alert on ip with a 4h ban.
func alert(ip string, i int) *models.Alert {
	now := time.Now().UTC().Format(time.RFC3339)
	return &models.Alert{Scenario: "crowdsecurity/ssh-bf", ScenarioHash: "abc", ScenarioVersion: "0.1", Message: fmt.Sprintf("alert %d", i),
		EventsCount: 5, Capacity: 5, Leakspeed: "10s", StartAt: now, StopAt: now, Labels: []string{},
		Source:    &models.Source{Scope: "Ip", Value: ip, IP: ip},
		Decisions: []*models.Decision{{Duration: "4h", Origin: "crowdsec", Scenario: "crowdsecurity/ssh-bf", Scope: "Ip", Type: "ban", Value: ip}},
		Events:    []*models.Event{{Timestamp: now, Meta: []models.Meta{{Key: "source_ip", Value: ip}}}}}
}

// waitFor polls cond until it holds or a minute passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// streamValues is the bouncer's startup stream as value -> decision.
func streamValues(t testing.TB, b *apiclient.Client) map[string]*models.Decision {
	t.Helper()
	resp, err := b.Stream(context.Background(), true, nil)
	if err != nil {
		t.Fatalf("bouncer stream: %v", err)
	}
	out := map[string]*models.Decision{}
	for _, d := range resp.New {
		out[d.Value] = d
	}
	return out
}

var _ = http.StatusOK
