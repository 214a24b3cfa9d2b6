// Package dbkind names the database engines the LAPI's store runs on, from
// the spellings [db_config] type accepts. It is its own package so that the
// configuration can check the type without linking the store's drivers
// into every binary that reads a config (the bouncer reads one too).
package dbkind

import (
	"fmt"
	"strings"
)

// The engines, by their canonical names.
const (
	SQLite     = "sqlite"
	PostgreSQL = "postgresql"
	MySQL      = "mysql"
)

// Parse returns the canonical name of a [db_config] type; empty means SQLite.
func Parse(t string) (string, error) {
	switch strings.ToLower(t) {
	case "", "sqlite", "sqlite3":
		return SQLite, nil
	case "postgresql", "postgres", "pgx":
		return PostgreSQL, nil
	case "mysql", "mariadb":
		return MySQL, nil
	}
	return SQLite, fmt.Errorf("database type %q is unknown (use sqlite, postgresql or mysql)", t)
}
