package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// copyTables are the tables CopyTo moves, parents before the rows that
// reference them. Their columns are read from the source at run time, so a
// migration adding a column needs nothing here; one adding a table must
// list it (TestCopyTablesCoverSchema says so). Not listed: counters (copied
// as values), schema_migrations (each engine numbers its own), and the
// counts the target's triggers keep (active_decision_counts, alert_counts).
var copyTables = []string{
	"kv", "machines", "bouncers", "stream_cursors",
	"alerts", "alert_meta", "decisions",
	"allowlists", "allowlist_items", "usage_metrics", "capi_signals",
	"capi_deletions",
}

// derivedTables are kept by triggers: the target's count the copied rows
// (MySQL), or they are copied with the triggers off (PostgreSQL).
var derivedTables = []string{"active_decision_counts", "alert_counts"}

// CopyOptions tunes CopyTo.
type CopyOptions struct {
	// Force replaces what the target holds; without it a target holding
	// any row is refused (ErrTargetNotEmpty).
	Force bool
	// Progress, when set, is told each table's rows once it is copied.
	Progress func(table string, rows int64)
}

// ErrTargetNotEmpty is a copy refused because the target holds data.
var ErrTargetNotEmpty = errors.New("the target database already holds data")

// TableCount is how many rows of a table were copied.
type TableCount struct {
	Table string
	Rows  int64
}

// CopyTo copies everything src (a SQLite store) holds into dst (a
// PostgreSQL or MySQL/MariaDB store, migrated by Open): every row with its
// id, the decision sequence and the other counters, so machines log in with
// their passwords, bouncers with their keys, and a stream cursor taken on
// src continues on dst. src is read in one read transaction (one
// consistent snapshot, whatever a running LAPI does meanwhile); dst is
// written in one transaction, so a failure leaves it as it was. The
// counters bouncers compare against (seq, purged) are copied as they are.
func CopyTo(ctx context.Context, src, dst *Store, opt CopyOptions) ([]TableCount, error) {
	if src.d.kind != sqliteDB {
		return nil, fmt.Errorf("copy source is %s: only a SQLite database can be copied", src.d.kind)
	}
	if dst.d.kind == sqliteDB {
		return nil, fmt.Errorf("copy target is SQLite: copy to a PostgreSQL or MySQL/MariaDB database")
	}
	rtx, err := src.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the source: %w", err)
	}
	defer rtx.Rollback()
	counters, err := readCounters(ctx, rtx)
	if err != nil {
		return nil, err
	}
	conn, err := dst.w.DB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to the target: %w", err)
	}
	defer conn.Close()
	if dst.d.kind == postgresDB {
		var out []TableCount
		err = conn.Raw(func(dc any) error {
			pc, ok := dc.(*stdlib.Conn)
			if !ok {
				return fmt.Errorf("target connection is %T, not pgx", dc)
			}
			out, err = copyPostgres(ctx, rtx, pc.Conn(), counters, opt)
			return err
		})
		return out, err
	}
	return copyMySQL(ctx, rtx, conn, counters, opt)
}

type counter struct {
	name  string
	value int64
}

func readCounters(ctx context.Context, rtx *dtx) ([]counter, error) {
	rows, err := rtx.QueryContext(ctx, `SELECT name, value FROM counters ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("reading the source's counters: %w", err)
	}
	defer rows.Close()
	var out []counter
	for rows.Next() {
		var c counter
		if err := rows.Scan(&c.name, &c.value); err != nil {
			return nil, fmt.Errorf("reading the source's counters: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the source's counters: %w", err)
	}
	return out, nil
}

// sourceRows streams a source table (in rowid order: SQLite's table scan).
type sourceRows struct {
	rows *sql.Rows
	cols []string
	vals []any
	ptrs []any
	conv []func(any) any
	n    int64
	err  error
}

// copyEach copies tables in order from the source snapshot with one
// engine's writer, reporting each table's count.
func copyEach(ctx context.Context, rtx *dtx, tables []string, opt CopyOptions, write func(string, *sourceRows) (int64, error)) ([]TableCount, error) {
	var out []TableCount
	for _, table := range tables {
		src, err := openSource(ctx, rtx, table)
		if err != nil {
			return nil, err
		}
		n, err := write(table, src)
		if cerr := src.close(); err == nil && cerr != nil {
			err = fmt.Errorf("reading %s: %w", table, cerr)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, TableCount{table, n})
		if opt.Progress != nil {
			opt.Progress(table, n)
		}
	}
	return out, nil
}

func openSource(ctx context.Context, rtx *dtx, table string) (*sourceRows, error) {
	rows, err := rtx.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", table, err)
	}
	cols, err := rows.Columns()
	if err != nil {
		rows.Close()
		return nil, fmt.Errorf("reading %s: %w", table, err)
	}
	r := &sourceRows{rows: rows, cols: cols, vals: make([]any, len(cols)), ptrs: make([]any, len(cols))}
	for i := range r.vals {
		r.ptrs[i] = &r.vals[i]
	}
	return r, nil
}

// next reads the next row into r.vals, converted for the target.
func (r *sourceRows) next() bool {
	if r.err != nil || !r.rows.Next() {
		return false
	}
	if err := r.rows.Scan(r.ptrs...); err != nil {
		r.err = err
		return false
	}
	for i, f := range r.conv {
		if f != nil {
			r.vals[i] = f(r.vals[i])
		}
	}
	r.n++
	return true
}

func (r *sourceRows) close() error {
	err := r.err
	if err == nil {
		err = r.rows.Err()
	}
	r.rows.Close()
	return err
}

// quotedCols is the column list as both servers' sessions read it (MySQL
// runs with ANSI_QUOTES): "cursor" and "key" are reserved words there.
func quotedCols(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = `"` + c + `"`
	}
	return strings.Join(q, ", ")
}

// convFor adapts a SQLite value to a target column of type name (as the
// server names it), nil when it needs nothing: SQLite keeps booleans as
// integers, which PostgreSQL refuses for BOOLEAN; PostgreSQL text cannot
// hold NUL or invalid UTF-8 (see pgText).
func convFor(name string, pg bool) func(any) any {
	switch {
	case pg && name == "BOOL":
		return func(v any) any {
			if n, ok := v.(int64); ok {
				return n != 0
			}
			return v
		}
	case pg && (name == "TEXT" || name == "VARCHAR"):
		return func(v any) any {
			switch s := v.(type) {
			case string:
				if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
					return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
				}
			case []byte:
				return strings.ReplaceAll(strings.ToValidUTF8(string(s), "\uFFFD"), "\x00", "\uFFFD")
			}
			return v
		}
	case name == "FLOAT8" || name == "DOUBLE":
		return func(v any) any {
			if n, ok := v.(int64); ok {
				return float64(n)
			}
			return v
		}
	}
	return nil
}

// refuseNonEmpty fails with ErrTargetNotEmpty naming what the target holds.
func refuseNonEmpty(counts []TableCount, counters map[string]int64) error {
	var held []string
	for _, c := range counts {
		if c.Rows > 0 {
			held = append(held, fmt.Sprintf("%s %d", c.Table, c.Rows))
		}
	}
	for _, name := range []string{"seq", "purged", "allowlists"} {
		if counters[name] != 0 {
			held = append(held, fmt.Sprintf("counter %s = %d", name, counters[name]))
		}
	}
	if len(held) == 0 {
		return nil
	}
	return fmt.Errorf("%w (%s): copying into it would mix two installations; "+
		"give an empty database, or use --force to replace what it holds", ErrTargetNotEmpty, strings.Join(held, ", "))
}

// copyPostgres copies in one pgx transaction, each table with COPY.
func copyPostgres(ctx context.Context, rtx *dtx, c *pgx.Conn, counters []counter, opt CopyOptions) ([]TableCount, error) {
	tx, err := c.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("beginning the target transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Nothing else may write while the copy runs (a LAPI started too early).
	if _, err := tx.Exec(ctx, `LOCK TABLE counters IN EXCLUSIVE MODE`); err != nil {
		return nil, fmt.Errorf("locking the target: %w", err)
	}
	held, cur, err := pgHeld(ctx, tx)
	if err != nil {
		return nil, err
	}
	if err := refuseNonEmpty(held, cur); err != nil && !opt.Force {
		return nil, err
	} else if err != nil {
		all := append(append([]string{}, copyTables...), derivedTables...)
		if _, err := tx.Exec(ctx, `TRUNCATE `+strings.Join(all, ", ")+` RESTART IDENTITY`); err != nil {
			return nil, fmt.Errorf("emptying the target: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE counters SET value = 0`); err != nil {
			return nil, fmt.Errorf("emptying the target: %w", err)
		}
	}
	// The count triggers would update one row per scenario once per copied
	// row, and PostgreSQL keeps every version of it until the transaction
	// ends: each update walks the versions before it, quadratic in the
	// rows (100k decisions took minutes). Off for the copy, the counts are
	// copied as the source holds them. ALTER TABLE needs the tables' owner;
	// without it the triggers keep counting, slowly but right.
	tables := copyTables
	if _, err := tx.Exec(ctx, `SAVEPOINT triggers`); err != nil {
		return nil, fmt.Errorf("preparing the target: %w", err)
	}
	if _, err := tx.Exec(ctx, `ALTER TABLE decisions DISABLE TRIGGER USER`); err == nil {
		if _, err := tx.Exec(ctx, `ALTER TABLE alerts DISABLE TRIGGER USER`); err != nil {
			return nil, fmt.Errorf("preparing the target: %w", err)
		}
		tables = append(append([]string{}, copyTables...), derivedTables...)
	} else if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT triggers`); err != nil {
		return nil, fmt.Errorf("preparing the target: %w", err)
	}
	out, err := copyEach(ctx, rtx, tables, opt, func(table string, src *sourceRows) (int64, error) {
		return pgCopyTable(ctx, tx, table, src)
	})
	if err != nil {
		return nil, err
	}
	if len(tables) > len(copyTables) {
		for _, table := range []string{"decisions", "alerts"} {
			if _, err := tx.Exec(ctx, `ALTER TABLE `+table+` ENABLE TRIGGER USER`); err != nil {
				return nil, fmt.Errorf("preparing the target: %w", err)
			}
		}
	}
	for _, cn := range counters {
		if _, err := tx.Exec(ctx, `INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, cn.name, cn.value); err != nil {
			return nil, fmt.Errorf("copying counter %s: %w", cn.name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("committing the copy: %w", err)
	}
	return out, nil
}

func pgHeld(ctx context.Context, tx pgx.Tx) ([]TableCount, map[string]int64, error) {
	var held []TableCount
	for _, table := range copyTables {
		var n int64
		// Whether a row exists, not how many: a large target answers at once.
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM `+table+` LIMIT 1) x`).Scan(&n); err != nil {
			return nil, nil, fmt.Errorf("checking the target's %s: %w", table, err)
		}
		held = append(held, TableCount{table, n})
	}
	cur := map[string]int64{}
	rows, err := tx.Query(ctx, `SELECT name, value FROM counters`)
	if err != nil {
		return nil, nil, fmt.Errorf("checking the target's counters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			return nil, nil, fmt.Errorf("checking the target's counters: %w", err)
		}
		cur[name] = v
	}
	return held, cur, rows.Err()
}

// pgSource feeds COPY from a source table.
type pgSource struct{ *sourceRows }

func (s pgSource) Next() bool             { return s.next() }
func (s pgSource) Values() ([]any, error) { return s.vals, nil }
func (s pgSource) Err() error             { return s.err }

func pgCopyTable(ctx context.Context, tx pgx.Tx, table string, src *sourceRows) (int64, error) {
	// The target's types of the source's columns (a column the target
	// lacks fails here, naming it).
	rows, err := tx.Query(ctx, `SELECT `+quotedCols(src.cols)+` FROM `+table+` WHERE FALSE`)
	if err != nil {
		return 0, fmt.Errorf("target table %s: %w", table, err)
	}
	fds := rows.FieldDescriptions()
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("target table %s: %w", table, err)
	}
	tm := tx.Conn().TypeMap()
	src.conv = make([]func(any) any, len(fds))
	for i, fd := range fds {
		name := ""
		if t, ok := tm.TypeForOID(fd.DataTypeOID); ok {
			name = strings.ToUpper(t.Name)
		}
		src.conv[i] = convFor(name, true)
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, src.cols, pgSource{src})
	if err != nil {
		return 0, fmt.Errorf("copying %s (row %d): %w", table, src.n, err)
	}
	for _, c := range src.cols {
		if c == "id" {
			// Ids were copied as they are: new rows continue after them.
			if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('`+table+`', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM `+table); err != nil {
				return 0, fmt.Errorf("moving %s's id sequence: %w", table, err)
			}
		}
	}
	return n, nil
}

// mysqlBatchRows and mysqlBatchBytes bound one multi-row INSERT: under
// the placeholder limit of a prepared statement (65535) and well under the
// server's max_allowed_packet (16 MiB by default on MariaDB).
const (
	mysqlBatchRows  = 2000
	mysqlBatchBytes = 4 << 20
)

// copyMySQL copies in one transaction with multi-row INSERTs.
func copyMySQL(ctx context.Context, rtx *dtx, conn *sql.Conn, counters []counter, opt CopyOptions) ([]TableCount, error) {
	// The source's rows were checked by its own constraints; checking them
	// again row by row would only slow the copy.
	if _, err := conn.ExecContext(ctx, `SET SESSION foreign_key_checks = 0, unique_checks = 0`); err != nil {
		return nil, fmt.Errorf("preparing the target session: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SET SESSION foreign_key_checks = 1, unique_checks = 1`)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("beginning the target transaction: %w", err)
	}
	defer tx.Rollback()
	// Nothing else may write decisions while the copy runs.
	cur := map[string]int64{}
	rows, err := tx.QueryContext(ctx, `SELECT name, value FROM counters FOR UPDATE`)
	if err != nil {
		return nil, fmt.Errorf("locking the target: %w", err)
	}
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("locking the target: %w", err)
		}
		cur[name] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("locking the target: %w", err)
	}
	var held []TableCount
	for _, table := range copyTables {
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM `+table+` LIMIT 1) x`).Scan(&n); err != nil {
			return nil, fmt.Errorf("checking the target's %s: %w", table, err)
		}
		held = append(held, TableCount{table, n})
	}
	if err := refuseNonEmpty(held, cur); err != nil && !opt.Force {
		return nil, err
	} else if err != nil {
		for i := len(copyTables) - 1; i >= 0; i-- {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+copyTables[i]); err != nil {
				return nil, fmt.Errorf("emptying the target's %s: %w", copyTables[i], err)
			}
		}
		for _, table := range derivedTables {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table); err != nil {
				return nil, fmt.Errorf("emptying the target's %s: %w", table, err)
			}
		}
	}
	out, err := copyEach(ctx, rtx, copyTables, opt, func(table string, src *sourceRows) (int64, error) {
		return mysqlCopyTable(ctx, tx, table, src)
	})
	if err != nil {
		return nil, err
	}
	for _, cn := range counters {
		if _, err := tx.ExecContext(ctx, `INSERT INTO counters (name, value) VALUES (?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value)`, cn.name, cn.value); err != nil {
			return nil, fmt.Errorf("copying counter %s: %w", cn.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("committing the copy: %w", err)
	}
	return out, nil
}

func mysqlCopyTable(ctx context.Context, tx *sql.Tx, table string, src *sourceRows) (int64, error) {
	head := `INSERT INTO ` + table + ` (` + quotedCols(src.cols) + `) VALUES `
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(src.cols)), ", ") + ")"
	perBatch := min(mysqlBatchRows, 60000/len(src.cols))
	var full string // the text of a full batch, built once
	args := make([]any, 0, perBatch*len(src.cols))
	var rowsIn, size int
	var total int64
	flush := func() error {
		if rowsIn == 0 {
			return nil
		}
		q := full
		if rowsIn != perBatch || q == "" {
			q = head + strings.TrimSuffix(strings.Repeat(row+", ", rowsIn), ", ")
			if rowsIn == perBatch {
				full = q
			}
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("copying %s (rows %d to %d): %w", table, total+1, total+int64(rowsIn), err)
		}
		total += int64(rowsIn)
		args, rowsIn, size = args[:0], 0, 0
		return nil
	}
	for src.next() {
		for _, v := range src.vals {
			switch x := v.(type) {
			case string:
				size += len(x)
			case []byte:
				size += len(x)
			default:
				size += 8
			}
			args = append(args, v)
		}
		rowsIn++
		if rowsIn == perBatch || size >= mysqlBatchBytes {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
	if err := flush(); err != nil {
		return total, err
	}
	return total, nil
}
