package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/internal/testdb" // also registers the pgx and mysql drivers
)

// dbServer is a PostgreSQL or MariaDB server of the test's own, in a
// temporary directory and listening only on a unix socket there: a test
// may stop and start it, which it must never do to the machine's shared
// servers (other suites use them meanwhile). Unix sockets are not
// network-namespaced, so LAPIs in the test's namespaces reach it.
type dbServer struct {
	t      *testing.T
	kind   string // db_config.type: "postgresql" or "mysql"
	dir    string
	host   string // db_config.host: the socket directory (PostgreSQL) or file (MariaDB)
	user   string // db_config.user
	dbName string
	argv   []string
	cred   *syscall.Credential // PostgreSQL runs as its own user; mariadbd drops to it itself
	cmd    *exec.Cmd
	admin  *sql.DB
	// cleanup: stop is registered with the test (once, for every start)
	cleanup bool
}

const (
	pgBin    = "/usr/lib/postgresql/15/bin"
	mariadbd = "/usr/sbin/mariadbd"
)

// serverDir makes the server's directory, owned by its OS user.
func serverDir(t *testing.T, osUser string) (string, *syscall.Credential) {
	t.Helper()
	u, err := user.Lookup(osUser)
	if err != nil {
		testdb.Unavailable(t, fmt.Sprintf("no %s OS user to run the test's own database server: %v", osUser, err))
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// Short: a unix socket path is at most 107 bytes.
	dir, err := os.MkdirTemp("", "rfleet-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chown(dir, uid, gid))
	must(t, os.Chmod(dir, 0o755))
	return dir, &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

func runIn(t *testing.T, cred *syscall.Credential, argv ...string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", argv[0], err, out)
	}
}

// newPostgres initialises and starts a PostgreSQL 15 server (durability
// off: the data is the test's).
func newPostgres(t *testing.T) *dbServer {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		testdb.Unavailable(t, "PostgreSQL 15 server binaries not installed ("+pgBin+")")
	}
	dir, cred := serverDir(t, "postgres")
	data := filepath.Join(dir, "data")
	runIn(t, cred, filepath.Join(pgBin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
	s := &dbServer{t: t, kind: "postgresql", dir: dir, host: dir, user: "postgres", dbName: "rampart", cred: cred,
		argv: []string{filepath.Join(pgBin, "postgres"), "-D", data, "-c", "listen_addresses=", "-c", "unix_socket_directories=" + dir,
			"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off", "-c", "max_connections=60"}}
	s.start()
	var err error
	s.admin, err = sql.Open("pgx", fmt.Sprintf("host=%s user=postgres dbname=postgres sslmode=disable", dir))
	must(t, err)
	t.Cleanup(func() { s.admin.Close() })
	s.exec("CREATE DATABASE rampart")
	s.admin.Close()
	s.admin, err = sql.Open("pgx", fmt.Sprintf("host=%s user=postgres dbname=rampart sslmode=disable", dir))
	must(t, err)
	s.admin.SetMaxIdleConns(0) // none left to find broken after a restart
	return s
}

// newMariaDB initialises and starts a MariaDB server.
func newMariaDB(t *testing.T) *dbServer {
	t.Helper()
	install, err := exec.LookPath("mariadb-install-db")
	if err != nil {
		testdb.Unavailable(t, "MariaDB server not installed (no mariadb-install-db)")
	}
	if _, err := os.Stat(mariadbd); err != nil {
		testdb.Unavailable(t, "MariaDB server not installed (no "+mariadbd+")")
	}
	dir, _ := serverDir(t, "mysql")
	data := filepath.Join(dir, "data")
	small := []string{"--innodb-log-file-size=8M", "--innodb-buffer-pool-size=16M"}
	runIn(t, nil, append([]string{install, "--no-defaults", "--datadir=" + data, "--user=mysql",
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"}, small...)...)
	sock := filepath.Join(dir, "mysql.sock")
	s := &dbServer{t: t, kind: "mysql", dir: dir, host: sock, user: "root", dbName: "rampart",
		argv: append([]string{mariadbd, "--no-defaults", "--datadir=" + data, "--socket=" + sock, "--skip-networking", "--user=mysql",
			"--pid-file=" + filepath.Join(dir, "mariadbd.pid"), "--innodb-flush-log-at-trx-commit=2"}, small...)}
	s.start()
	s.admin, err = sql.Open("mysql", "root@unix("+sock+")/")
	must(t, err)
	t.Cleanup(func() { s.admin.Close() })
	s.exec("CREATE DATABASE rampart CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	s.admin.Close()
	s.admin, err = sql.Open("mysql", "root@unix("+sock+")/rampart")
	must(t, err)
	s.admin.SetMaxIdleConns(0) // none left to find broken after a restart
	return s
}

// dbConfig is the [db_config] section of a LAPI or cscli on this server.
func (s *dbServer) dbConfig() string {
	return fmt.Sprintf("[db_config]\ntype = %q\nhost = %q\nuser = %q\ndb_name = %q\n", s.kind, s.host, s.user, s.dbName)
}

func (s *dbServer) exec(q string, args ...any) {
	s.t.Helper()
	if _, err := s.admin.Exec(q, args...); err != nil {
		s.t.Fatalf("%s: %v", q, err)
	}
}

// count runs a SELECT count(*) (with ? placeholders, PostgreSQL's
// rewritten).
func (s *dbServer) count(q string, args ...any) int {
	s.t.Helper()
	if s.kind == "postgresql" {
		n := 0
		b := []byte{}
		for _, c := range []byte(q) {
			if c == '?' {
				n++
				b = fmt.Appendf(b, "$%d", n)
				continue
			}
			b = append(b, c)
		}
		q = string(b)
	}
	var n int
	if err := s.admin.QueryRow(q, args...).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// start runs the server and waits until it answers on its socket.
func (s *dbServer) start() {
	s.t.Helper()
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	f, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	must(s.t, err)
	cmd.Stdout, cmd.Stderr = f, f
	must(s.t, cmd.Start())
	f.Close()
	s.cmd = cmd
	if !s.cleanup {
		s.cleanup = true
		s.t.Cleanup(s.stop)
	}
	dsn, driver := fmt.Sprintf("host=%s user=postgres dbname=postgres sslmode=disable connect_timeout=2", s.dir), "pgx"
	if s.kind == "mysql" {
		dsn, driver = "root@unix("+s.host+")/?timeout=2s", "mysql"
	}
	probe, err := sql.Open(driver, dsn)
	must(s.t, err)
	defer probe.Close()
	if !nstest.Eventually(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return probe.PingContext(ctx) == nil
	}) {
		b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		s.t.Fatalf("%s did not start:\n%s", s.kind, b)
	}
}

// stop shuts the server down (PostgreSQL's fast shutdown: sessions are
// ended; MariaDB's normal one) and waits for it to exit.
func (s *dbServer) stop() {
	if s.cmd == nil {
		return
	}
	sig := syscall.SIGTERM
	if s.kind == "postgresql" {
		sig = syscall.SIGINT
	}
	_ = s.cmd.Process.Signal(sig)
	_ = s.cmd.Wait()
	s.cmd = nil
}
