// Package storecfg turns testdb's databases into store configurations
// for the tests outside lapi/store (which cannot import the store from
// testdb itself: the store's own tests use testdb).
package storecfg

import (
	"testing"

	"github.com/rampart-ips/rampart/internal/testdb"
	"github.com/rampart-ips/rampart/lapi/store"
)

// At is the store configuration of the test database known by path, on
// the engine RAMPART_TEST_DB selects.
func At(t testing.TB, path string) store.Config {
	t.Helper()
	d := testdb.ConfigAt(t, path)
	return store.Config{Type: d.Type, Path: d.Path, Host: d.Host, Port: d.Port, User: d.User, Password: d.Password, DBName: d.Name}
}
