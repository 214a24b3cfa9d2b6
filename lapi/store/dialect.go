package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rampart-ips/rampart/internal/dbkind"
)

// kind is the database engine behind a Store.
type kind int

const (
	sqliteDB kind = iota
	postgresDB
	mysqlDB
)

func (k kind) String() string {
	switch k {
	case postgresDB:
		return dbkind.PostgreSQL
	case mysqlDB:
		return dbkind.MySQL
	}
	return dbkind.SQLite
}

// dialect is the one place SQL text differs between engines. The store's
// SQL is written for SQLite ("?" placeholders, INDEXED BY hints); sql()
// rewrites it for a server once per distinct text and keeps the result,
// so a hot statement is translated once, not per execution. On SQLite it
// returns its argument untouched.
//
// What translation cannot do is written per engine where it happens: the
// sequence's UPDATE ... RETURNING (MySQL: LAST_INSERT_ID), upserts (MySQL:
// ON DUPLICATE KEY), integer division (intDiv), statements MySQL refuses
// (an UPDATE reading its own table, LIMIT in an IN subquery: written so
// that all three accept them), the schema (migrate_server.go) and NUL in
// PostgreSQL text (pgText). Reserved words are quoted in the shared SQL
// ("cursor", "key"; MySQL sessions use ANSI_QUOTES). Multi-row statements
// stay under every engine's 65,535 parameters (the largest, 256 decision
// rows, has 4,608).
type dialect struct {
	kind  kind
	cache sync.Map // SQLite text -> server text
	size  atomic.Int64
}

// maxCached bounds the cache: a few texts embed values (id lists) and must
// not grow it without end; those are translated each time.
const maxCached = 4096

func (d *dialect) sql(q string) string {
	if d.kind == sqliteDB {
		return q
	}
	if v, ok := d.cache.Load(q); ok {
		return v.(string)
	}
	out := translate(d.kind, q)
	if d.size.Load() < maxCached {
		if _, loaded := d.cache.LoadOrStore(q, out); !loaded {
			d.size.Add(1)
		}
	}
	return out
}

// translate rewrites SQLite-flavoured SQL for k: "?" becomes "$n" on
// PostgreSQL, and the SQLite planner hints ("INDEXED BY name", "NOT
// INDEXED") go. Quoted text and identifiers are copied as they are.
func translate(k kind, q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for j < len(q) {
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j < len(q) {
				j++
			}
			b.WriteString(q[i:j])
			i = j
		case c == '?':
			if k == postgresDB {
				n++
				b.WriteByte('$')
				b.WriteString(strconv.Itoa(n))
			} else {
				b.WriteByte(c)
			}
			i++
		case isWordByte(c):
			j := i
			for j < len(q) && isWordByte(q[j]) {
				j++
			}
			w := q[i:j]
			if strings.EqualFold(w, "INDEXED") || strings.EqualFold(w, "NOT") {
				// "INDEXED BY name" / "NOT INDEXED": skip the hint.
				if rest, ok := hint(q[j:], w); ok {
					if str := b.String(); strings.HasSuffix(str, " ") {
						rest = strings.TrimLeft(rest, " ")
					}
					i = len(q) - len(rest)
					continue
				}
			}
			b.WriteString(w)
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// hint reports whether, after the word w, s continues a planner hint, and
// returns the text after it.
func hint(s, w string) (string, bool) {
	next := func(s string) (string, string) {
		t := strings.TrimLeft(s, " \t\n")
		j := 0
		for j < len(t) && isWordByte(t[j]) {
			j++
		}
		return t[:j], t[j:]
	}
	if strings.EqualFold(w, "NOT") {
		x, rest := next(s)
		if strings.EqualFold(x, "INDEXED") {
			return rest, true
		}
		return s, false
	}
	x, rest := next(s)
	if !strings.EqualFold(x, "BY") {
		return s, false
	}
	name, rest := next(rest)
	if name == "" {
		return s, false
	}
	return rest, true
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// args adapts a statement's arguments to the engine (see pgText).
func (d *dialect) args(a []any) []any {
	if d.kind == postgresDB {
		return pgText(a)
	}
	return a
}

// intDiv is the integer quotient of a by b: "/" on SQLite and PostgreSQL
// (integer operands), DIV on MySQL (whose "/" gives a decimal).
func (d *dialect) intDiv(a, b string) string {
	if d.kind == mysqlDB {
		return "(" + a + ") DIV (" + b + ")"
	}
	return "(" + a + ") / (" + b + ")"
}

// db is a connection pool whose SQL passes through the dialect.
type db struct {
	*sql.DB
	d *dialect
}

func (b *db) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return b.DB.ExecContext(ctx, b.d.sql(q), b.d.args(args)...)
}

func (b *db) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return b.DB.QueryContext(ctx, b.d.sql(q), b.d.args(args)...)
}

func (b *db) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return b.DB.QueryRowContext(ctx, b.d.sql(q), b.d.args(args)...)
}

func (b *db) QueryRow(q string, args ...any) *sql.Row {
	return b.DB.QueryRow(b.d.sql(q), b.d.args(args)...)
}

func (b *db) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return b.DB.PrepareContext(ctx, b.d.sql(q))
}

func (b *db) BeginTx(ctx context.Context, opts *sql.TxOptions) (*dtx, error) {
	tx, err := b.DB.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &dtx{Tx: tx, d: b.d}, nil
}

// dtx is a transaction whose SQL passes through the dialect.
type dtx struct {
	*sql.Tx
	d *dialect
}

func (t *dtx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.Tx.ExecContext(ctx, t.d.sql(q), t.d.args(args)...)
}

func (t *dtx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.Tx.QueryContext(ctx, t.d.sql(q), t.d.args(args)...)
}

func (t *dtx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.Tx.QueryRowContext(ctx, t.d.sql(q), t.d.args(args)...)
}

func (t *dtx) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return t.Tx.PrepareContext(ctx, t.d.sql(q))
}

// stmter is what a statement bound to a transaction offers: a prepared
// *sql.Stmt on SQLite, the text run directly on servers (whose drivers
// keep their own statement caches).
type stmter interface {
	ExecContext(ctx context.Context, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, args ...any) *sql.Row
	Close() error
}

// textStmt runs q on a transaction or pool each time.
type textStmt struct {
	q string
	x interface {
		ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	}
}

func (s textStmt) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	return s.x.ExecContext(ctx, s.q, args...)
}

func (s textStmt) QueryContext(ctx context.Context, args ...any) (*sql.Rows, error) {
	return s.x.QueryContext(ctx, s.q, args...)
}

func (s textStmt) QueryRowContext(ctx context.Context, args ...any) *sql.Row {
	return s.x.QueryRowContext(ctx, s.q, args...)
}

func (textStmt) Close() error { return nil }
