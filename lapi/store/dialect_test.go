package store

import "testing"

// TestTranslate: the servers get "$n" placeholders (PostgreSQL) and no
// SQLite planner hints; quoted text, "NOT" that is not a hint, and SQLite's
// own text are left alone.
func TestTranslate(t *testing.T) {
	for _, c := range []struct {
		in, pg, my string
	}{
		{`SELECT a FROM t WHERE b = ? AND c IN (?, ?)`, `SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)`, `SELECT a FROM t WHERE b = ? AND c IN (?, ?)`},
		{`SELECT '?', "x?" FROM t WHERE y = ? AND z = 'it''s ?'`, `SELECT '?', "x?" FROM t WHERE y = $1 AND z = 'it''s ?'`, `SELECT '?', "x?" FROM t WHERE y = ? AND z = 'it''s ?'`},
		{`SELECT o.id FROM decisions n NOT INDEXED CROSS JOIN decisions o INDEXED BY decisions_key WHERE n.id > ?`,
			`SELECT o.id FROM decisions n CROSS JOIN decisions o WHERE n.id > $1`, `SELECT o.id FROM decisions n CROSS JOIN decisions o WHERE n.id > ?`},
		{`UPDATE decisions NOT INDEXED SET shown = FALSE WHERE NOT active AND x NOT IN (?)`,
			`UPDATE decisions SET shown = FALSE WHERE NOT active AND x NOT IN ($1)`, `UPDATE decisions SET shown = FALSE WHERE NOT active AND x NOT IN (?)`},
		{"FROM decisions INDEXED BY decisions_seq\n\tWHERE seq > ?", "FROM decisions \n\tWHERE seq > $1", "FROM decisions \n\tWHERE seq > ?"},
	} {
		if got := translate(postgresDB, c.in); got != c.pg {
			t.Errorf("postgresql:\n%s\ngave\n%s\nwant\n%s", c.in, got, c.pg)
		}
		if got := translate(mysqlDB, c.in); got != c.my {
			t.Errorf("mysql:\n%s\ngave\n%s\nwant\n%s", c.in, got, c.my)
		}
		d := &dialect{kind: sqliteDB}
		if got := d.sql(c.in); got != c.in {
			t.Errorf("sqlite changed %s to %s", c.in, got)
		}
		p := &dialect{kind: postgresDB}
		if a, b := p.sql(c.in), p.sql(c.in); a != c.pg || b != c.pg {
			t.Errorf("cached postgresql text: %s, %s", a, b)
		}
	}
}
