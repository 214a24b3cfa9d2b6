package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/internal/backoff"
)

// notifyChannel is the PostgreSQL channel a committing transaction that
// changed decisions announces its sequence on.
const notifyChannel = "rampart_seq"

// listenerName is the application_name of the listening connection (the
// pool's is "rampart-lapi"), for pg_stat_activity.
const listenerName = "rampart-lapi-listener"

// pollInterval is how often a MySQL/MariaDB store reads the sequence to
// learn of changes committed by other LAPIs (one primary-key read, 40 a
// second): a decision reaches the bouncers of another LAPI within it, and
// a fleet's wake-up target is 100 ms (75 ms took most of it).
const pollInterval = 25 * time.Millisecond

// connectTimeout bounds one attempt to reach a server.
const connectTimeout = 10 * time.Second

// serverAddr is host:port as errors show it.
func serverAddr(k kind, cfg Config) string {
	if strings.HasPrefix(cfg.Host, "/") {
		return cfg.Host
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(serverPort(k, cfg)))
}

func serverPort(k kind, cfg Config) int {
	if cfg.Port != 0 {
		return cfg.Port
	}
	if k == postgresDB {
		return 5432
	}
	return 3306
}

// pgQuote quotes a value of a libpq keyword/value connection string.
func pgQuote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// pgConnConfig is the pgx configuration for cfg (nothing read from the
// environment that cfg sets).
func pgConnConfig(cfg Config) (*pgx.ConnConfig, error) {
	parts := []string{
		"host=" + pgQuote(cfg.Host),
		"port=" + strconv.Itoa(serverPort(postgresDB, cfg)),
		"dbname=" + pgQuote(cfg.DBName),
		"connect_timeout=" + strconv.Itoa(int(connectTimeout/time.Second)),
	}
	if cfg.User != "" {
		parts = append(parts, "user="+pgQuote(cfg.User))
	}
	if cfg.Password != "" {
		parts = append(parts, "password="+pgQuote(cfg.Password))
	}
	if cfg.SSLMode != "" {
		parts = append(parts, "sslmode="+pgQuote(cfg.SSLMode))
	}
	pc, err := pgx.ParseConfig(strings.Join(parts, " "))
	if err != nil {
		return nil, fmt.Errorf("postgresql settings: %w", err)
	}
	pc.RuntimeParams["application_name"] = "rampart-lapi"
	// Plan every execution with its values. pgx keeps statements prepared,
	// and after five executions PostgreSQL may keep a generic plan, costed
	// without the values and with the statistics of that moment: the
	// push's lookup of 50 alert UUIDs stayed a sequential scan of alerts,
	// planned while the table was small, as it grew to thousands of rows
	// (25 ms and most of the server's CPU per push).
	pc.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	return pc, nil
}

// mysqlConfig is the driver configuration for cfg. The session speaks the
// SQL the store writes: ANSI quotes and || concatenation, backslash an
// ordinary character (LIKE ... ESCAPE '\'), strict types, and a binary
// collation so that text compares as on SQLite and PostgreSQL (a
// case-insensitive one would merge "A" and "a" decisions and names).
func mysqlConfig(cfg Config) (*mysql.Config, error) {
	mc := mysql.NewConfig()
	mc.User = cfg.User
	if mc.User == "" {
		mc.User = "root"
	}
	mc.Passwd = cfg.Password
	mc.DBName = cfg.DBName
	if strings.HasPrefix(cfg.Host, "/") {
		mc.Net, mc.Addr = "unix", cfg.Host
	} else {
		mc.Net, mc.Addr = "tcp", serverAddr(mysqlDB, cfg)
	}
	mc.Timeout = connectTimeout
	mc.InterpolateParams = true // one round trip per statement instead of prepare, execute, close
	mc.Collation = "utf8mb4_bin"
	// The driver's own messages (a bad idle connection after a server
	// restart...) go through logrus, not raw to stderr.
	mc.Logger = mysqlLogger{log.WithFields(log.Fields{"component": "store", "db": "mysql"})}
	mc.Params = map[string]string{
		"sql_mode": "'ANSI_QUOTES,PIPES_AS_CONCAT,NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION'",
	}
	switch cfg.SSLMode {
	case "", "disable":
	default:
		mc.TLSConfig = cfg.SSLMode
	}
	return mc, nil
}

// onMariaDB returns the pool to use on the server sdb reaches: on MariaDB
// one whose sessions keep EXISTS subqueries correlated, as the store writes
// them (per row, a seek by the correlated column). MariaDB turns them into
// IN subqueries it materialises whole: the alerts' "has an active
// decision" and "no CAPI decision" read every decision (4.4 s for the
// newest 100 alerts at 1M decisions). MySQL has no such switch.
func onMariaDB(ctx context.Context, sdb *sql.DB, cfg Config) (*sql.DB, error) {
	var v string
	if err := sdb.QueryRowContext(ctx, `SELECT VERSION()`).Scan(&v); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("reading the server version: %w", err)
	}
	if !strings.Contains(v, "MariaDB") {
		return sdb, nil
	}
	sdb.Close()
	mc, err := mysqlConfig(cfg)
	if err != nil {
		return nil, err
	}
	mc.Params["optimizer_switch"] = "'exists_to_in=off'"
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("mysql settings: %w", err)
	}
	db := sql.OpenDB(conn)
	sizePool(db, cfg)
	return db, nil
}

// sizePool applies the pool settings of a server store.
func sizePool(db *sql.DB, cfg Config) {
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxOpenConns)
	db.SetConnMaxLifetime(time.Hour)
}

// mysqlLogger hands go-sql-driver/mysql's messages to logrus.
type mysqlLogger struct{ l *log.Entry }

func (m mysqlLogger) Print(v ...any) { m.l.Warn(strings.TrimSpace(fmt.Sprint(v...))) }

// openServer opens a PostgreSQL or MySQL/MariaDB store.
func openServer(ctx context.Context, k kind, cfg Config) (*Store, error) {
	if cfg.Host == "" {
		return nil, fmt.Errorf("db_config.host is empty: a %s database needs its server's address", k)
	}
	if cfg.DBName == "" {
		return nil, fmt.Errorf("db_config.db_name is empty: name the %s database to use", k)
	}
	var sdb *sql.DB
	switch k {
	case postgresDB:
		pc, err := pgConnConfig(cfg)
		if err != nil {
			return nil, err
		}
		sdb = stdlib.OpenDB(*pc)
	case mysqlDB:
		mc, err := mysqlConfig(cfg)
		if err != nil {
			return nil, err
		}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, fmt.Errorf("mysql settings: %w", err)
		}
		sdb = sql.OpenDB(conn)
	}
	sizePool(sdb, cfg)
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	err := sdb.PingContext(pctx)
	cancel()
	if err != nil {
		sdb.Close()
		return nil, fmt.Errorf("cannot connect to %s at %s (database %q): %w", k, serverAddr(k, cfg), cfg.DBName, err)
	}
	if k == mysqlDB {
		if sdb, err = onMariaDB(ctx, sdb, cfg); err != nil {
			return nil, err
		}
	}
	d := &dialect{kind: k}
	h := &db{sdb, d}
	s := &Store{d: d, w: h, r: h, log: log.WithFields(log.Fields{"component": "store", "db": k.String()}), changed: make(chan struct{})}
	if err := s.migrateServer(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.w.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'seq'`).Scan(&s.seq); err != nil {
		s.Close()
		return nil, fmt.Errorf("reading decision sequence: %w", err)
	}
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	s.bg.Add(1)
	if k == postgresDB {
		pc, _ := pgConnConfig(cfg)
		go s.listen(wctx, pc)
	} else {
		go s.poll(wctx)
	}
	return s, nil
}

// listen keeps a dedicated connection LISTENing for the changes other
// LAPIs (and this one) commit, and publishes them. After every
// (re)connection it re-reads the sequence: what was committed while it
// was not listening is picked up there.
func (s *Store) listen(ctx context.Context, pc *pgx.ConnConfig) {
	defer s.bg.Done()
	bo := backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, pc, &bo)
		if ctx.Err() != nil {
			return
		}
		d := bo.Next()
		s.log.WithError(err).WithField("retry_in", d).Warn("change listener lost its connection")
		if !backoff.Sleep(ctx, d) {
			return
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, pc *pgx.ConnConfig, bo *backoff.Backoff) error {
	lc := pc.Copy()
	lc.RuntimeParams["application_name"] = listenerName
	conn, err := pgx.ConnectConfig(ctx, lc)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return fmt.Errorf("LISTEN: %w", err)
	}
	var v int64
	if err := conn.QueryRow(ctx, `SELECT value FROM counters WHERE name = 'seq'`).Scan(&v); err != nil {
		return fmt.Errorf("reading decision sequence: %w", err)
	}
	s.published(v)
	bo.Reset()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if v, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
			s.published(v)
		}
	}
}

// poll reads the sequence every pollInterval (MySQL/MariaDB have no
// notifications), publishing what other LAPIs committed.
func (s *Store) poll(ctx context.Context) {
	defer s.bg.Done()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.RefreshSeq(ctx)
		if err != nil && ctx.Err() == nil && !failing {
			s.log.WithError(err).Warn("cannot read the decision sequence; retrying")
		} else if err == nil && failing {
			s.log.Info("reading the decision sequence again")
		}
		failing = err != nil
	}
}

// serverRetryable reports a server error a write retries: a deadlock or a
// serialisation failure (PostgreSQL 40P01, 40001; MySQL 1213), a lock
// wait timeout (MySQL 1205, PostgreSQL 55P03), or a unique violation
// (PostgreSQL 23505, MySQL 1062): the store's writes check before they
// insert, which SQLite's single writer makes atomic; on a server another
// LAPI can insert in between, and the retry's check then sees its row (a
// machine's concurrent first login, an alert pushed twice at once).
func serverRetryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40P01", "40001", "55P03", "23505":
			return true
		}
		return false
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213 || me.Number == 1205 || me.Number == 1062
	}
	return false
}

// pgText keeps NUL out of text sent to PostgreSQL, whose text cannot hold
// it (SQLite and MySQL store it): it becomes U+FFFD, as invalid UTF-8 does
// when a request is decoded. args is copied only when a NUL is found.
func pgText(args []any) []any {
	for i, a := range args {
		if s, ok := a.(string); ok && strings.IndexByte(s, 0) >= 0 {
			out := append([]any(nil), args...)
			for j := i; j < len(out); j++ {
				if s, ok := out[j].(string); ok {
					out[j] = strings.ReplaceAll(s, "\x00", "\uFFFD")
				}
			}
			return out
		}
	}
	return args
}

// migrationLockKey is the PostgreSQL advisory lock (and, as text, the
// MySQL named lock) held while migrating, so that LAPIs starting together
// on one database migrate it once.
const migrationLockKey = 0x72616d70617274 // "rampart"

// migrateServer applies the dialect's migrations under a server-wide lock.
func (s *Store) migrateServer(ctx context.Context) error {
	conn, err := s.w.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	defer conn.Close()
	list := pgMigrations
	lock, unlock := `SELECT pg_advisory_lock(`+strconv.Itoa(migrationLockKey)+`)`, `SELECT pg_advisory_unlock(`+strconv.Itoa(migrationLockKey)+`)`
	if s.d.kind == mysqlDB {
		list = mysqlMigrations
		lock, unlock = `SELECT GET_LOCK('rampart_migrate', 600)`, `SELECT RELEASE_LOCK('rampart_migrate')`
	}
	// pg_advisory_lock returns void, GET_LOCK 1 when taken.
	var got sql.NullString
	if err := conn.QueryRowContext(ctx, lock).Scan(&got); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	if s.d.kind == mysqlDB && got.String != "1" {
		return fmt.Errorf("taking the migration lock: timed out")
	}
	defer func() {
		var ignored sql.NullString
		_ = conn.QueryRowContext(context.WithoutCancel(ctx), unlock).Scan(&ignored)
	}()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if current > len(list) {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d): refusing to run an older Rampart on it", current, len(list))
	}
	record := `INSERT INTO schema_migrations (version, applied_at) VALUES (` + s.d.sql("?, ?") + `)`
	for v := current + 1; v <= len(list); v++ {
		// PostgreSQL runs a migration in one transaction; MySQL commits
		// each DDL statement itself, so its migrations are written to be
		// re-run after a failure part way.
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
		for _, q := range list[v-1] {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				tx.Rollback()
				return fmt.Errorf("migration %d: %w", v, err)
			}
		}
		if _, err := tx.ExecContext(ctx, record, v, nowNS()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
		s.log.WithField("version", v).Info("applied schema migration")
	}
	return nil
}

// copyFrom inserts n rows into table by PostgreSQL's COPY, inside the
// transaction: rows stream in one statement instead of a round trip,
// parse and plan per multi-row INSERT, and statement triggers fire once.
// row(i) returns row i's values in cols order; its slice may be reused.
func (t *wtx) copyFrom(table string, cols []string, n int, row func(i int) []any) error {
	if t.conn == nil {
		return fmt.Errorf("copying into %s: COPY is PostgreSQL's", table)
	}
	return t.conn.Raw(func(dc any) error {
		pc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("copying into %s: connection is %T, not pgx", table, dc)
		}
		src := pgx.CopyFromSlice(n, func(i int) ([]any, error) { return pgText(row(i)), nil })
		if _, err := pc.Conn().CopyFrom(t.ctx, pgx.Identifier{table}, cols, src); err != nil {
			return fmt.Errorf("copying into %s: %w", table, err)
		}
		return nil
	})
}
