package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"

	"github.com/rampart-ips/rampart/internal/procstat"
	"github.com/rampart-ips/rampart/lapi/store"
)

// benchDB is the database one measurement runs on: a SQLite file in the
// bench's folder, or a database of its own on the local PostgreSQL
// (127.0.0.1:5432, postgres) or MariaDB (127.0.0.1:3306, root) server,
// created for the run and dropped after it.
type benchDB struct {
	kind  string // "sqlite", "postgresql" or "mysql"
	path  string // SQLite file
	name  string // server database
	admin *sql.DB
}

func newDB(kind, dir string) (*benchDB, error) {
	b := &benchDB{kind: kind, path: filepath.Join(dir, "crowdsec.db")}
	if kind == "sqlite" {
		return b, nil
	}
	b.name = fmt.Sprintf("lapibench_%d_%d", os.Getpid(), time.Now().UnixNano()%1_000_000)
	var create string
	var err error
	switch kind {
	case "postgresql":
		b.admin, err = sql.Open("pgx", "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable connect_timeout=5")
		create = `CREATE DATABASE ` + b.name
	case "mysql":
		b.admin, err = sql.Open("mysql", "root@tcp(127.0.0.1:3306)/?timeout=5s")
		create = `CREATE DATABASE ` + b.name + ` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`
	default:
		return nil, fmt.Errorf("database %q is unknown (sqlite, postgresql or mysql)", kind)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.admin.ExecContext(ctx, create); err != nil {
		b.admin.Close()
		return nil, fmt.Errorf("creating %s database %s: %w", kind, b.name, err)
	}
	return b, nil
}

// storeConfig is the store's configuration for this database.
func (b *benchDB) storeConfig() store.Config {
	switch b.kind {
	case "postgresql":
		return store.Config{Type: b.kind, Host: "127.0.0.1", Port: 5432, User: "postgres", DBName: b.name, SSLMode: "disable"}
	case "mysql":
		return store.Config{Type: b.kind, Host: "127.0.0.1", Port: 3306, User: "root", DBName: b.name}
	}
	return store.Config{Path: b.path}
}

// toml is the [db_config] section's body for this database.
func (b *benchDB) toml() string {
	c := b.storeConfig()
	if b.kind == "sqlite" {
		return fmt.Sprintf("db_path = %q\n", c.Path)
	}
	s := fmt.Sprintf("type = %q\nhost = %q\nport = %d\nuser = %q\ndb_name = %q\n", c.Type, c.Host, c.Port, c.User, c.DBName)
	if c.SSLMode != "" {
		s += fmt.Sprintf("sslmode = %q\n", c.SSLMode)
	}
	return s
}

// raw opens the bench database itself, for statistics and checks.
func (b *benchDB) raw() (*sql.DB, error) {
	switch b.kind {
	case "postgresql":
		return sql.Open("pgx", "host=127.0.0.1 port=5432 user=postgres sslmode=disable dbname="+b.name)
	case "mysql":
		return sql.Open("mysql", "root@tcp(127.0.0.1:3306)/"+b.name)
	}
	return sql.Open("sqlite", "file:"+b.path+"?mode=ro")
}

// analyze gives a server database the planner statistics autovacuum (or
// MariaDB's persistent statistics) would have after a load; a restarted
// SQLite LAPI writes its own (PRAGMA optimize), so that is checked instead.
func (b *benchDB) analyze() error {
	db, err := b.raw()
	if err != nil {
		return err
	}
	defer db.Close()
	switch b.kind {
	case "postgresql":
		_, err = db.Exec(`ANALYZE`)
	case "mysql":
		var tables []string
		rows, qerr := db.Query(`SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()`)
		if qerr != nil {
			return qerr
		}
		for rows.Next() {
			var t string
			if err := rows.Scan(&t); err != nil {
				rows.Close()
				return err
			}
			tables = append(tables, t)
		}
		rows.Close()
		_, err = db.Exec(`ANALYZE TABLE ` + strings.Join(tables, ", "))
	default:
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'decisions'`).Scan(&n); err != nil || n == 0 {
			return fmt.Errorf("the restarted LAPI wrote no planner statistics for decisions (%d rows, %v)", n, err)
		}
	}
	if err != nil {
		return fmt.Errorf("analyze on %s: %w", b.kind, err)
	}
	return nil
}

// drop removes a server database.
func (b *benchDB) drop() {
	if b.admin == nil {
		return
	}
	stmt := `DROP DATABASE IF EXISTS ` + b.name
	if b.kind == "postgresql" {
		stmt += ` WITH (FORCE)`
	}
	if _, err := b.admin.Exec(stmt); err != nil {
		fmt.Fprintf(os.Stderr, "lapibench: dropping %s database %s: %v\n", b.kind, b.name, err)
	}
	b.admin.Close()
	b.admin = nil
}

// serverCPU is the CPU time so far of the PostgreSQL backends connected to
// the bench database (the LAPIs' pools; cscli's too while it runs): where
// the work of a server database goes, which the LAPIs' own figure leaves
// out. 0 on the other engines (MariaDB serves everyone from one process).
func (b *benchDB) serverCPU() time.Duration {
	if b.kind != "postgresql" || b.admin == nil {
		return 0
	}
	rows, err := b.admin.Query(`SELECT pid FROM pg_stat_activity WHERE datname = $1`, b.name)
	if err != nil {
		return 0
	}
	defer rows.Close()
	var t time.Duration
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) == nil {
			t += procstat.CPU(pid)
		}
	}
	return t
}
