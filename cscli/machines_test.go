package cscli

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"golang.org/x/crypto/bcrypt"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/store"
)

func checkMachinePassword(t *testing.T, st *store.Store, id, password string) *store.Machine {
	t.Helper()
	m, err := st.GetMachine(context.Background(), id)
	if err != nil {
		t.Fatalf("machine %s: %v", id, err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(m.PasswordHash), []byte(password)); err != nil {
		t.Fatalf("machine %s: stored hash does not verify the password: %v", id, err)
	}
	return m
}

func TestMachinesAdd(t *testing.T) {
	e := newOpsEnv(t, "127.0.0.1:8080")
	st := e.store()

	_, errs := e.mustRun("machines", "add", "m1", "-p", "secret-pw")
	if !strings.Contains(errs, "Machine 'm1' successfully added to the local API.") || !strings.Contains(errs, e.credPath) {
		t.Fatalf("stderr: %s", errs)
	}
	creds, err := csconfig.LoadCredentials(e.credPath)
	if err != nil {
		t.Fatal(err)
	}
	if creds.Login != "m1" || creds.Password != "secret-pw" || creds.URL != "http://127.0.0.1:8080/" {
		t.Fatalf("credentials file: %+v", creds)
	}
	if m := checkMachinePassword(t, st, "m1", "secret-pw"); !m.IsValidated || m.AuthType != "password" {
		t.Fatalf("machine row: %+v", m)
	}

	// the default file exists now: refuse to overwrite it without --force
	if _, _, err := e.run("", "machines", "add", "m2", "-p", "x"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("want a refusal to overwrite the credentials file, got %v", err)
	}
	if _, err := st.GetMachine(context.Background(), "m2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("m2 created although its credentials could not be written: %v", err)
	}

	other := filepath.Join(e.dir, "other.toml")
	if _, _, err := e.run("", "machines", "add", "m1", "-p", "x", "-f", other); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate machine: got %v", err)
	}
	e.mustRun("machines", "add", "m1", "-p", "new-pw", "-f", other, "--force", "-u", "lapi.example:8080")
	checkMachinePassword(t, st, "m1", "new-pw")
	creds, err = csconfig.LoadCredentials(other)
	if err != nil || creds.URL != "http://lapi.example:8080/" {
		t.Fatalf("credentials with -u: %+v %v", creds, err)
	}

	// --auto, to standard output
	out, _ := e.mustRun("machines", "add", "--auto", "-f", "-")
	var dumped csconfig.Credentials
	if _, err := toml.Decode(out, &dumped); err != nil {
		t.Fatalf("stdout is not a credentials TOML: %v\n%s", err, out)
	}
	if len(dumped.Login) < 17 || len(dumped.Password) != machinePasswordLength {
		t.Fatalf("generated credentials: %+v", dumped)
	}
	checkMachinePassword(t, st, dumped.Login, dumped.Password)

	// interactive: the password comes from standard input
	if _, _, err := e.run("typed-pw\n", "machines", "add", "m3", "-i", "-f", filepath.Join(e.dir, "m3.toml")); err != nil {
		t.Fatal(err)
	}
	checkMachinePassword(t, st, "m3", "typed-pw")

	if _, _, err := e.run("", "machines", "add", "-p", "x", "-f", "-"); err == nil || !strings.Contains(err.Error(), "--auto") {
		t.Fatalf("no name and no --auto: got %v", err)
	}
	if _, _, err := e.run("", "machines", "add", "m4", "-f", "-"); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("no password: got %v", err)
	}
	if _, _, err := e.run("", "machines", "add", "m4", "-f", "-", "-p", strings.Repeat("x", 73)); err == nil {
		t.Fatal("a password bcrypt cannot hash should be refused")
	}
}

func TestMachinesLocalAPIURL(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080/",
		"0.0.0.0:8080":   "http://127.0.0.1:8080/",
		"[::]:8080":      "http://[::1]:8080/",
		":8080":          "http://127.0.0.1:8080/",
		"10.1.2.3:81":    "http://10.1.2.3:81/",
	} {
		cfg := csconfig.Default()
		cfg.API.Server.ListenURI = listen
		if got := localAPIURL(cfg); got != want {
			t.Errorf("listen %s: got %s, want %s", listen, got, want)
		}
	}
}

func TestMachinesListValidateDeleteInspect(t *testing.T) {
	e := newOpsEnv(t, "127.0.0.1:8080")
	ctx := context.Background()
	st := e.store()
	e.mustRun("machines", "add", "m1", "-p", "pw1")
	if err := st.CreateMachine(ctx, store.Machine{MachineID: "pending1", PasswordHash: "x", IPAddress: "10.0.0.9"}, false); err != nil {
		t.Fatal(err)
	}
	if err := st.MachineHeartbeat(ctx, "m1"); err != nil {
		t.Fatal(err)
	}

	out, _ := e.mustRun("machines", "list")
	for _, want := range []string{"Name", "IP Address", "Last Update", "Status", "Version", "OS", "Auth Type", "Last Heartbeat",
		"m1", "pending1", markCheck, markProhibited, markWarning + " -"} {
		if !strings.Contains(out, want) {
			t.Errorf("human list lacks %q:\n%s", want, out)
		}
	}
	out, _ = e.mustRun("machines", "list", "-o", "raw")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "machine_id,ip_address,updated_at,validated,version,auth_type,last_heartbeat,os" || len(lines) != 3 ||
		!strings.HasPrefix(lines[2], "pending1,10.0.0.9,") || !strings.Contains(lines[2], ",false,") {
		t.Fatalf("raw list:\n%s", out)
	}
	out, _ = e.mustRun("machines", "list", "-o", "json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 {
		t.Fatalf("json list: %v\n%s", err, out)
	}
	if list[0]["machineId"] != "m1" || list[0]["isValidated"] != true || list[0]["last_heartbeat"] == nil || list[1]["ipAddress"] != "10.0.0.9" {
		t.Fatalf("json list: %s", out)
	}

	e.mustRun("machines", "validate", "pending1")
	if m, err := st.GetMachine(ctx, "pending1"); err != nil || !m.IsValidated {
		t.Fatalf("validate did not flip the flag: %+v %v", m, err)
	}
	if _, _, err := e.run("", "machines", "validate", "ghost"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("validating a missing machine: %v", err)
	}

	out, _ = e.mustRun("machines", "inspect", "pending1")
	for _, want := range []string{"Machine: pending1", "IP Address", "10.0.0.9", "Validated?", "true", "Auth type"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := e.run("", "machines", "inspect", "ghost"); err == nil {
		t.Fatal("inspecting a missing machine should fail")
	}

	e.mustRun("machines", "delete", "pending1")
	if _, err := st.GetMachine(ctx, "pending1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("pending1 still there: %v", err)
	}
	if _, _, err := e.run("", "machines", "delete", "pending1"); err == nil {
		t.Fatal("deleting a missing machine should fail")
	}
	e.mustRun("machines", "delete", "pending1", "m1", "--ignore-missing")
	if _, err := st.GetMachine(ctx, "m1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("m1 still there: %v", err)
	}
}

func TestMachinesPrune(t *testing.T) {
	e := newOpsEnv(t, "127.0.0.1:8080")
	ctx := context.Background()
	st := e.store()
	for _, m := range []store.Machine{
		{MachineID: "pending-old", PasswordHash: "x"},
		{MachineID: "pending-new", PasswordHash: "x"},
		{MachineID: "silent-old", PasswordHash: "x", IsValidated: true},
		{MachineID: "alive", PasswordHash: "x", IsValidated: true},
	} {
		if err := st.CreateMachine(ctx, m, false); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour).UnixNano()
	e.exec(`UPDATE machines SET created_at = ?, updated_at = ? WHERE machine_id IN ('pending-old', 'silent-old', 'alive')`, old, old)
	if err := st.MachineHeartbeat(ctx, "alive"); err != nil {
		t.Fatal(err)
	}
	exists := func(id string) bool {
		_, err := st.GetMachine(ctx, id)
		return err == nil
	}

	out, errs := e.mustRun("machines", "prune", "--not-validated-only", "--force")
	if !strings.Contains(out, "pending-old") || strings.Contains(out, "silent-old") || !strings.Contains(errs, "successfully deleted 1 machines") {
		t.Fatalf("prune --not-validated-only:\n%s\n%s", out, errs)
	}
	if exists("pending-old") || !exists("pending-new") || !exists("silent-old") {
		t.Fatal("--not-validated-only pruned the wrong machines")
	}

	if out, _, err := e.run("no\n", "machines", "prune"); err != nil || !strings.Contains(out, "User aborted prune") || !exists("silent-old") {
		t.Fatalf("answering no: %v\n%s", err, out)
	}
	e.mustRun("machines", "prune", "-d", "10m", "--force")
	if exists("silent-old") || !exists("alive") || !exists("pending-new") {
		t.Fatal("prune -d 10m pruned the wrong machines")
	}
}
