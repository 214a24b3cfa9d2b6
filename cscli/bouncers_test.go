package cscli

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/testdb/storecfg"
	"github.com/rampart-ips/rampart/lapi/apikey"
	"github.com/rampart-ips/rampart/lapi/store"
)

// opsEnv is a configuration with its own SQLite file and credentials path,
// for the commands that work on the local database.
type opsEnv struct {
	t        *testing.T
	dir      string
	cfgPath  string
	dbPath   string
	credPath string
}

func newOpsEnv(t *testing.T, listenURI string) *opsEnv {
	t.Helper()
	return newOpsEnvAt(t, listenURI, "")
}

// newOpsEnvAt is newOpsEnv over the database dbPath ("" for a new one).
func newOpsEnvAt(t *testing.T, listenURI, dbPath string) *opsEnv {
	t.Helper()
	dir := t.TempDir()
	if dbPath == "" {
		dbPath = filepath.Join(dir, "data", "crowdsec.db")
	}
	e := &opsEnv{t: t, dir: dir, cfgPath: filepath.Join(dir, "config.toml"),
		dbPath: dbPath, credPath: filepath.Join(dir, "local_api_credentials.toml")}
	cfg := dbConfigTOML(storecfg.At(t, e.dbPath)) + "\n" +
		"[api.client]\ncredentials_path = " + strconv.Quote(e.credPath) + "\n\n" +
		"[api.server]\nlisten_uri = " + strconv.Quote(listenURI) + "\n"
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// run executes cscli with the environment's configuration.
func (e *opsEnv) run(in string, args ...string) (string, string, error) {
	e.t.Helper()
	var out, errb bytes.Buffer
	root := newRootCommandWith(&out, &errb, strings.NewReader(in))
	root.SetArgs(append([]string{"-c", e.cfgPath}, args...))
	err := root.Execute()
	return out.String(), errb.String(), err
}

// mustRun is run that fails the test on error.
func (e *opsEnv) mustRun(args ...string) (string, string) {
	e.t.Helper()
	out, errs, err := e.run("", args...)
	if err != nil {
		e.t.Fatalf("cscli %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errs)
	}
	return out, errs
}

// store opens the environment's database directly.
func (e *opsEnv) store() *store.Store {
	e.t.Helper()
	st, err := store.Open(context.Background(), storecfg.At(e.t, e.dbPath))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { st.Close() })
	return st
}

// exec runs raw SQL on the database, to age rows.
func (e *opsEnv) exec(query string, args ...any) {
	e.t.Helper()
	if err := e.store().ExecForTest(query, args...); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
}

func TestBouncersAddListInspectDelete(t *testing.T) {
	e := newOpsEnv(t, "127.0.0.1:8080")
	ctx := context.Background()

	out, _ := e.mustRun("bouncers", "add", "b1", "-o", "raw")
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("raw output should be the key and a newline, got %q", out)
	}
	key := strings.TrimSuffix(out, "\n")
	if len(key) != 43 {
		t.Fatalf("key %q has %d characters, want 43", key, len(key))
	}
	st := e.store()
	b, err := st.GetBouncer(ctx, "b1")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512([]byte(key))
	if want := hex.EncodeToString(sum[:]); b.APIKeyHash != want || apikey.Hash(key) != want {
		t.Fatalf("stored hash %s, want SHA-512 hex %s", b.APIKeyHash, want)
	}
	if b.AuthType != "api-key" || b.Revoked || b.AutoCreated {
		t.Fatalf("unexpected bouncer row %+v", b)
	}

	if _, _, err := e.run("", "bouncers", "add", "b1"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate add: want an 'already exists' error, got %v", err)
	}

	out, _ = e.mustRun("bouncers", "add", "b2", "-k", "my-own-key", "-o", "json")
	var jkey string
	if err := json.Unmarshal([]byte(out), &jkey); err != nil || jkey != "my-own-key" {
		t.Fatalf("json add output %q: %v", out, err)
	}
	if b2, err := st.GetBouncer(ctx, "b2"); err != nil || b2.APIKeyHash != apikey.Hash("my-own-key") {
		t.Fatalf("b2: %+v %v", b2, err)
	}

	out, _ = e.mustRun("bouncers", "add", "b3")
	if !strings.Contains(out, "API key for 'b3':") || !strings.Contains(out, "you will not be able to retrieve it") {
		t.Fatalf("human add output:\n%s", out)
	}

	out, _ = e.mustRun("bouncers", "list", "-o", "json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list json: %v\n%s", err, out)
	}
	if len(list) != 3 || list[0]["name"] != "b1" || list[0]["revoked"] != false || list[0]["auth_type"] != "api-key" {
		t.Fatalf("list json: %s", out)
	}
	for _, k := range []string{"ip_address", "last_pull", "type", "version", "created_at", "auto_created"} {
		if _, ok := list[0][k]; !ok {
			t.Errorf("list json lacks key %q", k)
		}
	}

	out, _ = e.mustRun("bouncers", "list", "-o", "raw")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "name,ip,revoked,last_pull,type,version,auth_type" || len(lines) != 4 ||
		!strings.HasPrefix(lines[1], "b1,,validated,,") {
		t.Fatalf("raw list:\n%s", out)
	}

	out, _ = e.mustRun("bouncers", "list")
	for _, want := range []string{"Name", "IP Address", "Valid", "Last API pull", "Type", "Version", "Auth Type", "b1", markCheck} {
		if !strings.Contains(out, want) {
			t.Errorf("human list lacks %q:\n%s", want, out)
		}
	}

	out, _ = e.mustRun("bouncers", "inspect", "b1")
	for _, want := range []string{"Bouncer: b1", "Created At", "Last Update", "IP Address", "Last Pull", "Auth type", "api-key", "OS", "Auto Created"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	out, _ = e.mustRun("bouncers", "inspect", "b1", "-o", "json")
	var info map[string]any
	if err := json.Unmarshal([]byte(out), &info); err != nil || info["name"] != "b1" {
		t.Fatalf("inspect json %s: %v", out, err)
	}
	if _, _, err := e.run("", "bouncers", "inspect", "nope"); err == nil {
		t.Fatal("inspect of a missing bouncer should fail")
	}

	e.mustRun("bouncers", "delete", "b1", "b2")
	for _, n := range []string{"b1", "b2"} {
		if _, err := st.GetBouncer(ctx, n); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s still there after delete: %v", n, err)
		}
	}
	if _, _, err := e.run("", "bouncers", "delete", "b1"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("deleting a missing bouncer: want a not found error, got %v", err)
	}
	e.mustRun("bouncers", "remove", "b1", "b3", "--ignore-missing")
	if _, err := st.GetBouncer(ctx, "b3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("--ignore-missing must still delete the other names: %v", err)
	}
}

func TestBouncersDeleteTakesAutoCreatedRows(t *testing.T) {
	e := newOpsEnv(t, "127.0.0.1:8080")
	ctx := context.Background()
	e.mustRun("bouncers", "add", "fw", "-k", "shared-key")
	st := e.store()
	if _, err := st.CreateBouncer(ctx, store.Bouncer{Name: "fw@10.0.0.2", APIKeyHash: apikey.Hash("shared-key"),
		IPAddress: "10.0.0.2", AuthType: "api-key", AutoCreated: true}); err != nil {
		t.Fatal(err)
	}
	// an unrelated bouncer whose name looks like a child must survive
	if _, err := st.CreateBouncer(ctx, store.Bouncer{Name: "fw@10.0.0.3", APIKeyHash: apikey.Hash("other"), AuthType: "api-key"}); err != nil {
		t.Fatal(err)
	}

	e.mustRun("bouncers", "delete", "fw@10.0.0.2")
	if _, err := st.GetBouncer(ctx, "fw@10.0.0.2"); err != nil {
		t.Fatalf("an auto-created row alone must not be deleted: %v", err)
	}

	e.mustRun("bouncers", "delete", "fw")
	rows, err := st.BouncersByKey(ctx, apikey.Hash("shared-key"), "api-key")
	if err != nil || len(rows) != 0 {
		t.Fatalf("the key still has %d rows after deleting its bouncer (%v)", len(rows), err)
	}
	if _, err := st.GetBouncer(ctx, "fw@10.0.0.3"); err != nil {
		t.Fatalf("unrelated bouncer deleted: %v", err)
	}
}

func TestBouncersPrune(t *testing.T) {
	e := newOpsEnv(t, "127.0.0.1:8080")
	ctx := context.Background()
	for _, n := range []string{"stale", "puller", "fresh"} {
		e.mustRun("bouncers", "add", n)
	}
	old := time.Now().Add(-2 * time.Hour).UnixNano()
	e.exec(`UPDATE bouncers SET created_at = ?, updated_at = ? WHERE name IN ('stale', 'puller')`, old, old)
	st := e.store()
	p, err := st.GetBouncer(ctx, "puller")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetBouncerPulled(ctx, p.ID, nil, time.Now()); err != nil {
		t.Fatal(err)
	}

	out, _, err := e.run("n\n", "bouncers", "prune", "-d", "60m")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "stale") || strings.Contains(out, "puller") || !strings.Contains(out, "User aborted prune") {
		t.Fatalf("prune answered no:\n%s", out)
	}
	if _, err := st.GetBouncer(ctx, "stale"); err != nil {
		t.Fatalf("answering no must keep the bouncer: %v", err)
	}

	_, errs, err := e.run("y\n", "bouncers", "prune", "-d", "60m")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errs, "Successfully deleted 1 bouncers") {
		t.Fatalf("prune stderr: %s", errs)
	}
	if _, err := st.GetBouncer(ctx, "stale"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("stale bouncer not pruned: %v", err)
	}
	for _, n := range []string{"puller", "fresh"} {
		if _, err := st.GetBouncer(ctx, n); err != nil {
			t.Fatalf("%s pruned: %v", n, err)
		}
	}

	out, _ = e.mustRun("bouncers", "prune", "--force")
	if !strings.Contains(out, "No bouncers to prune.") {
		t.Fatalf("prune with nothing stale:\n%s", out)
	}

	_, errs, err = e.run("", "bouncers", "prune", "-d", "1m", "--force")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errs, "less than 2 minutes") {
		t.Fatalf("no warning for a short duration: %s", errs)
	}
	if _, _, err := e.run("", "bouncers", "prune", "-d", "soon"); err == nil {
		t.Fatal("an invalid duration should fail")
	}
}
