package dbkind

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]string{"": SQLite, "SQLite3": SQLite, "postgres": PostgreSQL, "pgx": PostgreSQL,
		"PostgreSQL": PostgreSQL, "mariadb": MySQL, "mysql": MySQL} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Parse("oracle"); err == nil {
		t.Error("Parse(oracle) accepted an unknown engine")
	}
}
