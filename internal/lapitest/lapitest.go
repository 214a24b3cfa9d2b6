// Package lapitest runs a real LAPI on loopback over a SQLite file for the
// tests of its clients (the agent's delivery and usage reports, the
// bouncer). Stopping it and starting it again on the same address and file
// is how those tests play a LAPI outage.
package lapitest

import (
	"context"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/testdb/storecfg"
	"github.com/rampart-ips/rampart/lapi"
	"github.com/rampart-ips/rampart/lapi/apikey"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
)

// LAPI is one running server.
type LAPI struct {
	Addr   string // host:port it listens on
	DBPath string
	Config store.Config // the database it serves (a client's [db_config])
	Store  *store.Store // the server's own store, for setup and read-back
	Server *lapi.Server

	t      testing.TB
	cancel context.CancelFunc
	done   chan struct{}
}

// Start serves the database at dbPath on addr ("" for any free port), with
// the default profiles. It stops when the test ends.
func Start(t testing.TB, dbPath, addr string) *LAPI {
	t.Helper()
	return StartOn(t, storecfg.At(t, dbPath), addr)
}

// StartOn is Start over the database sc names, whatever RAMPART_TEST_DB
// says (a test moving data between engines).
func StartOn(t testing.TB, sc store.Config, addr string) *LAPI {
	t.Helper()
	return StartWith(t, sc, addr, nil)
}

// StartWith is StartOn with mutate adjusting the configuration first.
func StartWith(t testing.TB, sc store.Config, addr string, mutate func(*csconfig.Config)) *LAPI {
	t.Helper()
	return start(t, sc, addr, profiles.Default(), mutate)
}

// StartNotifying is Start with the profiles prof and the notifications
// of the folder notificationDir.
func StartNotifying(t testing.TB, dbPath string, prof *profiles.Set, notificationDir string) *LAPI {
	t.Helper()
	return start(t, storecfg.At(t, dbPath), "", prof, func(c *csconfig.Config) { c.ConfigPaths.NotificationDir = notificationDir })
}

func start(t testing.TB, sc store.Config, addr string, prof *profiles.Set, mutate func(*csconfig.Config)) *LAPI {
	t.Helper()
	dbPath := sc.Path
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	cfg := csconfig.Default()
	cfg.DBConfig.DBPath = dbPath
	cfg.API.Server.ListenURI = addr
	cfg.ConfigPaths.NotificationDir = "" // none unless asked, never the host's
	if mutate != nil {
		mutate(cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, sc)
	if err != nil {
		cancel()
		t.Fatalf("opening store: %v", err)
	}
	srv, err := lapi.New(ctx, cfg, st, prof)
	if err != nil {
		cancel()
		st.Close()
		t.Fatalf("creating LAPI: %v", err)
	}
	ln, err := srv.Listen()
	if err != nil {
		cancel()
		st.Close()
		t.Fatalf("listening: %v", err)
	}
	l := &LAPI{Addr: ln.Addr().String(), DBPath: dbPath, Config: sc, Store: st, Server: srv, t: t, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		if err := srv.Serve(ctx, ln, nil); err != nil {
			t.Errorf("serving LAPI: %v", err)
		}
	}()
	t.Cleanup(l.Stop)
	return l
}

// URL is the server's base URL, as clients are configured with it.
func (l *LAPI) URL() string { return "http://" + l.Addr + "/" }

// Stop shuts the server down and closes its store; calling it again does
// nothing.
func (l *LAPI) Stop() {
	if l.cancel == nil {
		return
	}
	l.cancel()
	<-l.done
	l.Store.Close()
	l.cancel = nil
}

// AddMachine registers a validated machine (an agent) with its password.
func (l *LAPI) AddMachine(id, password string) {
	l.t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		l.t.Fatal(err)
	}
	// The machine outlives restarts: it may exist already.
	if err := l.Store.CreateMachine(context.Background(), store.Machine{MachineID: id, PasswordHash: string(hash), IsValidated: true}, true); err != nil {
		l.t.Fatalf("creating machine: %v", err)
	}
}

// AddBouncer registers a bouncer and returns its API key.
func (l *LAPI) AddBouncer(name string) string {
	l.t.Helper()
	key, err := apikey.Generate()
	if err != nil {
		l.t.Fatal(err)
	}
	if _, err := l.Store.CreateBouncer(context.Background(), store.Bouncer{Name: name, APIKeyHash: apikey.Hash(key)}); err != nil {
		l.t.Fatalf("creating bouncer: %v", err)
	}
	return key
}
