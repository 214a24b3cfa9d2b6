package store

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// IsUnavailable reports an error saying the database server cannot be
// reached or is going away (connection refused or lost, server shutting
// down or starting, login refused) rather than anything about the request.
// The LAPI answers it 503: the clients of a fleet move to another LAPI,
// which may still reach the database, and an agent keeps the alert queued
// as during a LAPI outage instead of suspecting the alert. SQLite, a file,
// never gives one.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01-57P03: the server is
		// shutting down, crashed or not accepting connections yet.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		// Server shutdown in progress; connection killed.
		return me.Number == 1053 || me.Number == 1927
	}
	if errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}
