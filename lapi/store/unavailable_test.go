package store

import (
	"context"
	"path/filepath"
	"testing"
)

// TestIsUnavailable: a server the store cannot reach is "unavailable",
// with the drivers' own errors; an error about a statement is not.
func TestIsUnavailable(t *testing.T) {
	gone := t.TempDir()
	for _, cfg := range []Config{
		{Type: "postgresql", Host: gone, DBName: "rampart"},                         // no socket in the directory
		{Type: "mysql", Host: filepath.Join(gone, "mysql.sock"), DBName: "rampart"}, // no such socket
	} {
		s, err := Open(context.Background(), cfg)
		if err == nil {
			s.Close()
			t.Fatalf("%s at %s: opened", cfg.Type, cfg.Host)
		}
		if !IsUnavailable(err) {
			t.Errorf("%s at %s: %v is not unavailable", cfg.Type, cfg.Host, err)
		}
	}
	s, err := Open(context.Background(), testConfig(t, filepath.Join(t.TempDir(), "crowdsec.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.ExecForTest(`SELECT no_such_column FROM machines`)
	if err == nil || IsUnavailable(err) {
		t.Errorf("a bad statement: %v, unavailable %v", err, IsUnavailable(err))
	}
}
