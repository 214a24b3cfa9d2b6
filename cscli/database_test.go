package cscli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/lapitest"
	"github.com/rampart-ips/rampart/internal/testdb"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// migEnv is a cscli configuration over a database and a LAPI address.
type migEnv struct {
	t        *testing.T
	cfgPath  string
	credPath string
}

func newMigEnv(t *testing.T, dir string, sc store.Config, listen string) *migEnv {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	e := &migEnv{t: t, cfgPath: filepath.Join(dir, "config.toml"), credPath: filepath.Join(dir, "local_api_credentials.toml")}
	cfg := dbConfigTOML(sc) + "\n[api.client]\ncredentials_path = " + fmt.Sprintf("%q", e.credPath) +
		"\n\n[api.server]\nlisten_uri = " + fmt.Sprintf("%q", listen) + "\n"
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// dbConfigTOML is the [db_config] section naming sc.
func dbConfigTOML(sc store.Config) string {
	if sc.Type == "" || sc.Type == "sqlite" {
		return fmt.Sprintf("[db_config]\ndb_path = %q\n", sc.Path)
	}
	return fmt.Sprintf("[db_config]\ntype = %q\nhost = %q\nport = %d\nuser = %q\npassword = %q\ndb_name = %q\n",
		sc.Type, sc.Host, sc.Port, sc.User, sc.Password, sc.DBName)
}

func (e *migEnv) run(args ...string) (string, string, error) {
	e.t.Helper()
	var out, errb bytes.Buffer
	root := newRootCommandWith(&out, &errb, strings.NewReader(""))
	root.SetArgs(append([]string{"-c", e.cfgPath, "--color", "no"}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

func (e *migEnv) mustRun(args ...string) string {
	e.t.Helper()
	out, errs, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("cscli %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errs)
	}
	return out
}

// pull is one stream request; cursor is "" for a server-kept cursor.
type pulled struct {
	status       int
	cursor       string
	news, delete []string
}

func pullStream(t *testing.T, url, key, ua string, startup bool, cursor *string) pulled {
	t.Helper()
	q := fmt.Sprintf("%sv1/decisions/stream?startup=%t", url, startup)
	if cursor != nil {
		q += "&cursor=" + *cursor
	}
	req, _ := http.NewRequest(http.MethodGet, q, nil)
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("User-Agent", ua)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := pulled{status: resp.StatusCode, cursor: resp.Header.Get(models.CursorHeader)}
	if resp.StatusCode != http.StatusOK {
		return p
	}
	var sr struct {
		New     []*models.Decision `json:"new"`
		Deleted []*models.Decision `json:"deleted"`
	}
	if err := json.Unmarshal(body, &sr); err != nil {
		t.Fatalf("stream body %s: %v", body, err)
	}
	for _, d := range sr.New {
		p.news = append(p.news, d.Value)
	}
	for _, d := range sr.Deleted {
		p.delete = append(p.delete, d.Value)
	}
	slices.Sort(p.news)
	slices.Sort(p.delete)
	return p
}

// tableCounts counts the rows of the tables a migration copies.
func tableCounts(t *testing.T, st *store.Store) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range []string{"machines", "bouncers", "stream_cursors", "alerts", "alert_meta", "decisions", "allowlists", "allowlist_items", "kv"} {
		var n int64
		if err := st.QueryRowForTest(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatalf("counting %s: %v", table, err)
		}
		out[table] = n
	}
	for _, q := range []string{
		`SELECT COUNT(*) FROM decisions WHERE active`, `SELECT COUNT(*) FROM decisions WHERE shown`,
		`SELECT COALESCE(SUM(seq), 0) FROM decisions`, `SELECT value FROM counters WHERE name = 'seq'`,
		`SELECT value FROM counters WHERE name = 'purged'`, `SELECT COALESCE(SUM(n), 0) FROM active_decision_counts`,
		`SELECT COALESCE(SUM(n), 0) FROM alert_counts`,
	} {
		var n int64
		if err := st.QueryRowForTest(q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out[q] = n
	}
	return out
}

// TestDatabaseMigrate fills a SQLite database through a running LAPI and
// cscli (a machine, bouncers pulling the stream, decisions added and one
// deleted, an allowlist), migrates it to each server, and checks on a LAPI
// over the target that nothing needs registering again: the machine logs in
// with its password, both kinds of bouncer cursor continue with exactly the
// changes they had not pulled (no 410, no full resync), every row is there.
func TestDatabaseMigrate(t *testing.T) {
	for _, kind := range []string{"postgresql", "mysql"} {
		t.Run(kind, func(t *testing.T) { testDatabaseMigrate(t, kind) })
	}
}

func testDatabaseMigrate(t *testing.T, kind string) {
	dir := t.TempDir()
	srcCfg := store.Config{Path: filepath.Join(dir, "data", "crowdsec.db")}
	l := lapitest.StartOn(t, srcCfg, "")
	e := newMigEnv(t, filepath.Join(dir, "old"), srcCfg, l.Addr)
	e.mustRun("machines", "add", "agent1", "--password", "agent1-password-0123456789")
	e.mustRun("machines", "add", "pending1", "--password", "pending1-password-012345", "-f", filepath.Join(dir, "pending.toml"))
	e.mustRun("machines", "validate", "agent1")
	fwKey := strings.TrimSpace(e.mustRun("bouncers", "add", "fw1", "-o", "raw"))
	upKey := strings.TrimSpace(e.mustRun("bouncers", "add", "upstream1", "-o", "raw"))
	for _, ip := range []string{"100.64.1.1", "100.64.1.2", "100.64.1.3"} {
		e.mustRun("decisions", "add", "--ip", ip, "-d", "4h", "-R", "test "+ip)
	}
	e.mustRun("decisions", "add", "--range", "198.51.100.0/24", "-d", "2h")
	e.mustRun("decisions", "delete", "--ip", "100.64.1.3")
	e.mustRun("allowlists", "create", "office", "-d", "the office")
	e.mustRun("allowlists", "add", "office", "203.0.113.7", "203.0.113.0/28")

	// Both bouncers pull the full state; then one more decision comes that
	// neither pulls before the move.
	const upUA = "crowdsec-firewall-bouncer/v0.0.31"
	empty := ""
	fw := pullStream(t, l.URL(), fwKey, "rampart-firewall-bouncer/test", true, &empty)
	if fw.status != 200 || len(fw.news) != 3 {
		t.Fatalf("first pull: %+v", fw)
	}
	if up := pullStream(t, l.URL(), upKey, upUA, true, nil); up.status != 200 || len(up.news) != 3 {
		t.Fatalf("first upstream pull: %+v", up)
	}
	e.mustRun("decisions", "add", "--ip", "100.64.1.4", "-d", "4h")

	// A running LAPI is refused; stopped, the copy goes.
	target := testdb.ConfigFor(t, kind, filepath.Join(dir, "target-"+kind))
	tc := store.Config{Type: target.Type, Host: target.Host, Port: target.Port, User: target.User, Password: target.Password, DBName: target.Name}
	dsn := dsnFor(tc)
	if _, _, err := e.run("database", "migrate", "--to", dsn); err == nil || !strings.Contains(err.Error(), "stop crowdsec first") {
		t.Fatalf("migrate with the LAPI running: %v, want a refusal", err)
	}
	src, err := store.Open(context.Background(), srcCfg)
	if err != nil {
		t.Fatal(err)
	}
	before := tableCounts(t, src)
	l.Stop()
	src.Close()
	out := e.mustRun("database", "migrate", "--to", dsn)
	for _, want := range []string{"[db_config]", `type = "` + kind + `"`, `db_name = "` + tc.DBName + `"`, "start crowdsec"} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate output lacks %q:\n%s", want, out)
		}
	}
	// Copying again into what is now full is refused, naming what it holds.
	if _, _, err := e.run("database", "migrate", "--to", dsn); err == nil || !strings.Contains(err.Error(), "already holds data") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second migrate: %v, want a refusal naming --force", err)
	}

	nl := lapitest.StartOn(t, tc, "")
	if got := tableCounts(t, nl.Store); !equalCounts(before, got) {
		t.Fatalf("counts differ after the move:\nsqlite %v\n%s %v", before, kind, got)
	}
	ne := newMigEnv(t, filepath.Join(dir, "new"), tc, nl.Addr)
	// The machine logs in with its old password (cscli decisions add does).
	if err := csconfig.WriteCredentials(ne.credPath, &csconfig.Credentials{URL: nl.URL(), Login: "agent1", Password: "agent1-password-0123456789"}); err != nil {
		t.Fatal(err)
	}
	ne.mustRun("decisions", "add", "--ip", "100.64.1.5", "-d", "4h")
	ne.mustRun("decisions", "delete", "--ip", "100.64.1.1")
	list := ne.mustRun("decisions", "list", "-o", "raw")
	for _, ip := range []string{"100.64.1.2", "100.64.1.4", "100.64.1.5", "198.51.100.0/24"} {
		if !strings.Contains(list, ip) {
			t.Errorf("decisions list on %s lacks %s:\n%s", kind, ip, list)
		}
	}
	// Each bouncer's next delta is exactly what it had not pulled.
	wantNew, wantDel := []string{"100.64.1.4", "100.64.1.5"}, []string{"100.64.1.1"}
	fw2 := pullStream(t, nl.URL(), fwKey, "rampart-firewall-bouncer/test", false, &fw.cursor)
	if fw2.status != 200 || !slices.Equal(fw2.news, wantNew) || !slices.Equal(fw2.delete, wantDel) {
		t.Fatalf("client-cursor delta after the move: %+v, want new %v deleted %v", fw2, wantNew, wantDel)
	}
	up2 := pullStream(t, nl.URL(), upKey, upUA, false, nil)
	if up2.status != 200 || !slices.Equal(up2.news, wantNew) || !slices.Equal(up2.delete, wantDel) {
		t.Fatalf("server-cursor delta after the move: %+v, want new %v deleted %v", up2, wantNew, wantDel)
	}
	// The rest through cscli on the server database.
	if out := ne.mustRun("allowlists", "inspect", "office"); !strings.Contains(out, "203.0.113.7") || !strings.Contains(out, "203.0.113.0/28") {
		t.Errorf("allowlist after the move:\n%s", out)
	}
	if out := ne.mustRun("machines", "list", "-o", "raw"); !strings.Contains(out, "agent1") || !strings.Contains(out, "pending1") {
		t.Errorf("machines after the move:\n%s", out)
	}
	if out := ne.mustRun("bouncers", "list", "-o", "raw"); !strings.Contains(out, "fw1") || !strings.Contains(out, "upstream1") {
		t.Errorf("bouncers after the move:\n%s", out)
	}
	// New rows get new ids (the id sequences continue after the copied ones).
	ne.mustRun("bouncers", "add", "fw2")
	ne.mustRun("machines", "add", "agent2", "--password", "agent2-password-0123456789", "-f", filepath.Join(dir, "agent2.toml"))
	ne.mustRun("allowlists", "add", "office", "203.0.113.9")
	nl.Stop()

	// --force replaces what the target holds: it is the SQLite copy again.
	e.mustRun("database", "migrate", "--to", dsn, "--force")
	st, err := store.Open(context.Background(), tc)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := tableCounts(t, st); !equalCounts(before, got) {
		t.Fatalf("counts differ after --force:\nsqlite %v\n%s %v", before, kind, got)
	}
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func dsnFor(c store.Config) string {
	scheme := c.Type
	u := c.User
	if c.Password != "" {
		u += ":" + c.Password
	}
	q := ""
	if c.Type == "postgresql" {
		q = "?sslmode=disable"
	}
	return fmt.Sprintf("%s://%s@%s:%d/%s%s", scheme, u, c.Host, c.Port, c.DBName, q)
}

func TestParseDatabaseURL(t *testing.T) {
	good := []struct {
		in   string
		want store.Config
	}{
		{"postgresql://crowdsec:s%40cr%3At@db.example.net:5433/cs?sslmode=require",
			store.Config{Type: "postgresql", User: "crowdsec", Password: "s@cr:t", Host: "db.example.net", Port: 5433, DBName: "cs", SSLMode: "require"}},
		{"postgres://u@127.0.0.1/cs", store.Config{Type: "postgresql", User: "u", Host: "127.0.0.1", DBName: "cs"}},
		{"postgresql://u@/cs?host=/run/postgresql", store.Config{Type: "postgresql", User: "u", Host: "/run/postgresql", DBName: "cs"}},
		{"mysql://root:pw@[::1]:3306/cs", store.Config{Type: "mysql", User: "root", Password: "pw", Host: "::1", Port: 3306, DBName: "cs"}},
		{"mariadb://u:p@/cs?socket=/run/mysqld/mysqld.sock&tls=true", store.Config{Type: "mysql", User: "u", Password: "p", Host: "/run/mysqld/mysqld.sock", DBName: "cs", SSLMode: "true"}},
	}
	for _, g := range good {
		got, err := parseDatabaseURL(g.in)
		if err != nil || got != g.want {
			t.Errorf("%s: %+v, %v; want %+v", g.in, got, err, g.want)
		}
	}
	bad := []struct{ in, want string }{
		{"", "not a database URL"},
		{"db.example.net:5432", "not a database URL"},
		{"sqlite:///var/lib/crowdsec/data/crowdsec.db", "SQLite"},
		{"oracle://u:hunter2@h/db", "unknown scheme"},
		{"postgresql://u:hunter2@h:99999/db", "port"},
		{"postgresql://u:hunter2@h:5432/", "name the database"},
		{"postgresql://u:hunter2@h/db?sslmod=disable", `"sslmod" is unknown`},
		{"mysql://u:hunter2@/db", "no server"},
		{"postgresql://u:hunter2@/db?host=run/pg", "absolute path"},
		{"postgresql://u:hunter2@h/db\x7f", "not a database URL"},
	}
	for _, b := range bad {
		_, err := parseDatabaseURL(b.in)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: %v, want an error with %q", b.in, err, b.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the error shows the password: %v", b.in, err)
		}
	}
}

// TestDatabaseMigrateRefusals: a configuration already on a server, and a
// server that does not answer, get clear errors without the password.
func TestDatabaseMigrateRefusals(t *testing.T) {
	dir := t.TempDir()
	srv := newMigEnv(t, filepath.Join(dir, "srv"), store.Config{Type: "postgresql", Host: "127.0.0.1", Port: 5432, User: "u", DBName: "x"}, "127.0.0.1:1")
	if _, _, err := srv.run("database", "migrate", "--to", "mysql://u:p@127.0.0.1/x"); err == nil || !strings.Contains(err.Error(), "already names a postgresql database") {
		t.Fatalf("migrate from a server: %v", err)
	}
	sq := newMigEnv(t, filepath.Join(dir, "sq"), store.Config{Path: filepath.Join(dir, "none.db")}, "127.0.0.1:1")
	if _, _, err := sq.run("database", "migrate", "--to", "postgresql://u:hunter2@127.0.0.1:1/x"); err == nil || !strings.Contains(err.Error(), "none.db") {
		t.Fatalf("migrate without a SQLite file: %v", err)
	}
	sq2 := newMigEnv(t, filepath.Join(dir, "sq2"), store.Config{Path: filepath.Join(dir, "data.db")}, "127.0.0.1:1")
	st, err := store.Open(context.Background(), store.Config{Path: filepath.Join(dir, "data.db")})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	_, _, err = sq2.run("database", "migrate", "--to", "postgresql://u:hunter2@127.0.0.1:1/x")
	if err == nil || !strings.Contains(err.Error(), "cannot connect") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("migrate to a closed port: %v", err)
	}
}

// TestCscliOnServers runs the commands that open the database directly
// (bouncers, machines, allowlists, alerts flush) with [db_config] naming a
// PostgreSQL and a MySQL/MariaDB database.
func TestCscliOnServers(t *testing.T) {
	for _, kind := range []string{"postgresql", "mysql"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			d := testdb.ConfigFor(t, kind, filepath.Join(dir, "cscli-"+kind))
			sc := store.Config{Type: d.Type, Host: d.Host, Port: d.Port, User: d.User, Password: d.Password, DBName: d.Name}
			e := newMigEnv(t, dir, sc, "127.0.0.1:1")
			key := strings.TrimSpace(e.mustRun("bouncers", "add", "b1", "-o", "raw"))
			if len(key) != 43 {
				t.Fatalf("bouncer key %q", key)
			}
			e.mustRun("bouncers", "add", "b2", "--key", "b2-key-0123456789abcdef0123456789")
			if out := e.mustRun("bouncers", "list", "-o", "raw"); !strings.Contains(out, "b1") || !strings.Contains(out, "b2") {
				t.Fatalf("bouncers list:\n%s", out)
			}
			e.mustRun("bouncers", "inspect", "b1")
			e.mustRun("bouncers", "delete", "b1")
			if out := e.mustRun("bouncers", "list", "-o", "raw"); strings.Contains(out, "b1") || !strings.Contains(out, "b2") {
				t.Fatalf("bouncers list after delete:\n%s", out)
			}

			e.mustRun("machines", "add", "m1", "--password", "m1-password-0123456789abcd", "-f", filepath.Join(dir, "m1.toml"))
			e.mustRun("machines", "add", "m2", "--auto", "-f", filepath.Join(dir, "m2.toml"))
			e.mustRun("machines", "validate", "m1")
			if out := e.mustRun("machines", "list", "-o", "raw"); !strings.Contains(out, "m1") || !strings.Contains(out, "m2") {
				t.Fatalf("machines list:\n%s", out)
			}
			e.mustRun("machines", "inspect", "m1")
			e.mustRun("machines", "delete", "m2")
			if out := e.mustRun("machines", "list", "-o", "raw"); strings.Contains(out, "m2") {
				t.Fatalf("machines list after delete:\n%s", out)
			}

			e.mustRun("allowlists", "create", "l1", "-d", "list one")
			e.mustRun("allowlists", "add", "l1", "203.0.113.7", "203.0.113.0/28", "2001:db8::/64")
			e.mustRun("allowlists", "remove", "l1", "203.0.113.7")
			out := e.mustRun("allowlists", "inspect", "l1")
			if strings.Contains(out, "203.0.113.7 ") || !strings.Contains(out, "203.0.113.0/28") || !strings.Contains(out, "2001:db8::/64") {
				t.Fatalf("allowlists inspect:\n%s", out)
			}
			if out := e.mustRun("allowlists", "list", "-o", "raw"); !strings.Contains(out, "l1") {
				t.Fatalf("allowlists list:\n%s", out)
			}
			e.mustRun("allowlists", "delete", "l1")
			if out := e.mustRun("allowlists", "list", "-o", "raw"); strings.Contains(out, "l1") {
				t.Fatalf("allowlists list after delete:\n%s", out)
			}
			e.mustRun("alerts", "flush", "--max-items", "10")
		})
	}
}
