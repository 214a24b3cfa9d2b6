// Package testdb gives tests a fresh database of the engine the
// RAMPART_TEST_DB environment variable names: "sqlite" (the default),
// "postgresql" or "mysql". Server databases are created with a unique name
// on the local servers (PostgreSQL 127.0.0.1:5432 as postgres, MariaDB
// 127.0.0.1:3306 as root; RAMPART_TEST_PG_HOST / RAMPART_TEST_MYSQL_HOST
// override the host) and dropped when the test ends. When the server is
// unreachable the test skips, saying so, unless RAMPART_REQUIRE_DB=1 (CI),
// where it fails.
package testdb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
)

// DB is a test database, in lapi/DB's terms (this package
// cannot import the store: the store's own tests use it).
type DB struct {
	Type                 string // "sqlite", "postgresql" or "mysql"
	Path                 string // SQLite
	Host                 string
	Port                 int
	User, Password, Name string
}

// Kind is the engine the tests run on: "sqlite", "postgresql" or "mysql".
func Kind() string {
	switch v := strings.ToLower(os.Getenv("RAMPART_TEST_DB")); v {
	case "", "sqlite", "sqlite3":
		return "sqlite"
	case "postgresql", "postgres", "pgx":
		return "postgresql"
	case "mysql", "mariadb":
		return "mysql"
	default:
		panic(fmt.Sprintf("RAMPART_TEST_DB=%q: use sqlite, postgresql or mysql", v))
	}
}

// IsSQLite says whether the tests run on SQLite.
func IsSQLite() bool { return Kind() == "sqlite" }

// SkipUnlessSQLite skips a test that only means something on SQLite.
func SkipUnlessSQLite(t testing.TB, why string) {
	t.Helper()
	if !IsSQLite() {
		t.Skipf("SQLite only (%s); running on %s", why, Kind())
	}
}

// Fresh returns a fresh database for the test.
func Fresh(t testing.TB) DB {
	t.Helper()
	return ConfigAt(t, filepath.Join(t.TempDir(), "crowdsec.db"))
}

// ConfigAt returns the configuration of the database the test knows by
// path: the SQLite file itself, or a server database named after the path
// (created on first use, dropped when the test ends), so that a test
// reopening "the same file" reopens the same server database.
func ConfigAt(t testing.TB, path string) DB {
	t.Helper()
	return ConfigFor(t, Kind(), path)
}

// ConfigFor is ConfigAt on the engine kind.
func ConfigFor(t testing.TB, kind, path string) DB {
	t.Helper()
	switch kind {
	case "postgresql":
		return server(t, kind, path)
	case "mysql":
		return server(t, kind, path)
	}
	return DB{Type: "sqlite", Path: path}
}

func server(t testing.TB, kind, path string) DB {
	sum := sha256.Sum256([]byte(path))
	name := "rampart_t_" + hex.EncodeToString(sum[:8])
	cfg := DB{Type: kind, Name: name}
	var driver, dsn, create, drop string
	if kind == "postgresql" {
		cfg.Host, cfg.Port, cfg.User = envOr("RAMPART_TEST_PG_HOST", "127.0.0.1"), 5432, "postgres"
		driver = "pgx"
		dsn = fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable connect_timeout=5", cfg.Host, cfg.Port, cfg.User)
		create, drop = `CREATE DATABASE `+name, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`
	} else {
		cfg.Host, cfg.Port, cfg.User = envOr("RAMPART_TEST_MYSQL_HOST", "127.0.0.1"), 3306, "root"
		driver = "mysql"
		dsn = fmt.Sprintf("%s@tcp(%s:%d)/?timeout=5s", cfg.User, cfg.Host, cfg.Port)
		create, drop = `CREATE DATABASE IF NOT EXISTS `+name+` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`, `DROP DATABASE IF EXISTS `+name
	}
	admin, err := sql.Open(driver, dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if admin != nil {
			admin.Close()
		}
		Unavailable(t, fmt.Sprintf("%s test server unreachable at %s:%d: %v", kind, cfg.Host, cfg.Port, err))
	}
	if _, err := admin.Exec(create); err != nil && !strings.Contains(err.Error(), "already exists") {
		admin.Close()
		t.Fatalf("creating test database %s: %v", name, err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec(drop); err != nil {
			t.Logf("dropping test database %s: %v", name, err)
		}
	})
	return cfg
}

// Unavailable skips the test because a database server it needs is
// missing (msg says which and why), or fails it under RAMPART_REQUIRE_DB=1.
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("RAMPART_REQUIRE_DB") == "1" {
		t.Fatalf("%s (RAMPART_REQUIRE_DB=1)", msg)
	}
	t.Skip(msg + " (set RAMPART_REQUIRE_DB=1 to fail instead)")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
