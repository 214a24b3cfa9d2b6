package store

import (
	"testing"

	"github.com/rampart-ips/rampart/internal/testdb"
)

// testConfig is the configuration of the test database known by path on
// the engine RAMPART_TEST_DB selects (see internal/testdb).
func testConfig(tb testing.TB, path string) Config {
	tb.Helper()
	d := testdb.ConfigAt(tb, path)
	return Config{Type: d.Type, Path: d.Path, Host: d.Host, Port: d.Port, User: d.User, Password: d.Password, DBName: d.Name}
}
