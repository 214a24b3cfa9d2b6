// Package store is the LAPI's database: machines, bouncers, alerts,
// decisions, allowlists and the decision change sequence bouncers stream
// from. It speaks database/sql to SQLite (modernc.org/sqlite), PostgreSQL
// (jackc/pgx) or MySQL/MariaDB (go-sql-driver/mysql) with one set of SQL
// written for SQLite and rewritten once per text for the servers (dialect.go),
// and it must never know about HTTP.
//
// # The change sequence across several LAPIs
//
// Every transaction that changes what bouncers hold takes the next number
// of counters.seq and stamps the rows it changes with it; a bouncer's
// delta is the rows whose seq is above its cursor, and its new cursor is
// the counter. That is only right if no transaction can commit a seq at or
// below a counter value a reader has already seen: the classic gap of a
// plain sequence, where a transaction holding 10 commits after one holding
// 11 and a bouncer whose cursor moved to 11 never sees 10.
//
// The number is taken by updating the counter row inside the writing
// transaction (UPDATE ... RETURNING; on MySQL LAST_INSERT_ID(value + 1)),
// and that row lock is held until the transaction ends. So:
//
//   - Sequence order is commit order. A transaction T wanting the next
//     number waits for the holder H of the previous one to end; H's commit
//     is visible to new snapshots before its locks are released
//     (PostgreSQL ends the transaction in the proc array before releasing
//     locks, InnoDB before releasing row locks), so H is visible to every
//     snapshot that can see T. A rolled-back transaction leaves no number.
//   - A stream reads the counter and the rows from one snapshot (SQLite: a
//     read transaction; PostgreSQL: REPEATABLE READ; InnoDB: its consistent
//     read view, taken at the first read, which is the counter). A snapshot
//     that sees counter value v sees every transaction numbered up to v,
//     whole, and none numbered above it (it would see a larger counter).
//     The delta (cursor, v] is therefore complete, and the next one starts
//     above v: every change is delivered once.
//   - Writers on MySQL run at READ COMMITTED, so that their reads after
//     taking the number see what the previous holder committed (PostgreSQL's
//     default already does); a change to decisions always takes the number
//     first, so decision writers are serialised while readers never wait.
//
// The number is taken as late as the transaction allows (wtx.seq, lazily)
// to keep that lock short. Transactions that change no decision never take
// it. The expiry sweep and retention run in every LAPI: two sweeps are
// serialised by the lock and the second finds nothing left to end; a
// deadlock or serialisation failure between retention jobs is retried.
//
// Wake-ups: a committing transaction publishes its number to this
// process's long-polls; other LAPIs learn of it through PostgreSQL's
// LISTEN/NOTIFY (pg_notify inside the transaction, delivered at commit; the
// listener re-reads the counter after every reconnection) or, on MySQL, by
// reading the counter every pollInterval.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/dbkind"

	log "github.com/sirupsen/logrus"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Errors callers map to HTTP statuses.
var (
	ErrNotFound    = errors.New("object not found")
	ErrExists      = errors.New("already exists")
	ErrInvalidData = errors.New("invalid data")
)

// Config selects and tunes the database ([db_config]).
type Config struct {
	Type         string        // "sqlite" (default, also "sqlite3"), "postgresql" ("postgres", "pgx") or "mysql"
	Path         string        // SQLite file
	MaxOpenConns int           // readers on SQLite (the writer is one connection); the pool on servers
	BusyTimeout  time.Duration // how long SQLite waits for a lock
	MustExist    bool          // refuse to create a new database (cscli)

	// Servers (PostgreSQL, MySQL/MariaDB).
	Host     string // name or address; a path is a Unix socket folder (PostgreSQL) or socket (MySQL)
	Port     int    // 5432 / 3306 when 0
	User     string
	Password string
	DBName   string
	SSLMode  string // PostgreSQL sslmode; MySQL: "disable" or empty for no TLS, else the driver's tls value
}

// Kind normalises Type: "sqlite", "postgresql" or "mysql"; an error names
// an unknown one.
func (c Config) Kind() (string, error) {
	k, err := parseKind(c.Type)
	return k.String(), err
}

func parseKind(t string) (kind, error) {
	name, err := dbkind.Parse(t)
	switch name {
	case dbkind.PostgreSQL:
		return postgresDB, err
	case dbkind.MySQL:
		return mysqlDB, err
	}
	return sqliteDB, err
}

// ConfigOf is the store's configuration for a config file's [db_config].
func ConfigOf(c csconfig.DBConfig) Config {
	return Config{Type: c.Type, Path: c.DBPath, MaxOpenConns: c.MaxOpenConns, BusyTimeout: c.BusyTimeout.Duration,
		Host: c.Host, Port: c.Port, User: c.User, Password: c.Password, DBName: c.DBName, SSLMode: c.SSLMode}
}

// Store is the LAPI's handle on its database. It is safe for concurrent use.
type Store struct {
	d   *dialect
	w   *db // SQLite: the single writer connection, serialising transactions; servers: the pool
	r   *db // SQLite: readers (WAL lets them run beside the writer); servers: the same pool as w
	log *log.Entry

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every committed decision change
	seq     int64         // last committed decision sequence

	// SweepExpired's memory: as of decision sequence expSeq, no active
	// decision expires before expNext (UnixNano; 0 = not known).
	expMu   sync.Mutex
	expSeq  int64
	expNext int64

	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt // the writer's statements kept prepared across transactions (SQLite)
	rstmts map[string]*sql.Stmt // the readers' hot statements (database/sql prepares them per connection)

	stop context.CancelFunc // ends the wake-up watcher (servers)
	bg   sync.WaitGroup
}

// Open opens (creating if needed) the database and applies migrations.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	k, err := parseKind(cfg.Type)
	if err != nil {
		return nil, err
	}
	if cfg.MaxOpenConns <= 0 {
		cfg.MaxOpenConns = 8
	}
	if k != sqliteDB {
		return openServer(ctx, k, cfg)
	}
	if cfg.Path == "" {
		return nil, fmt.Errorf("db_path is empty")
	}
	if cfg.BusyTimeout <= 0 {
		cfg.BusyTimeout = 10 * time.Second
	}
	if cfg.MustExist {
		if _, err := os.Stat(cfg.Path); err != nil {
			return nil, fmt.Errorf("database %s: %w (is db_path right, and has crowdsec run once?)", cfg.Path, err)
		}
	}
	if _, err := os.Stat(cfg.Path); os.IsNotExist(err) {
		log.WithField("path", cfg.Path).Info("creating a new database")
	}
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("creating database folder %s: %w", dir, err)
		}
	}
	dsn := func(txlock, extra string) string {
		return fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)%s&_txlock=%s",
			cfg.Path, cfg.BusyTimeout.Milliseconds(), extra, txlock)
	}
	// The writer keeps its statement journals (which let a failing
	// multi-row INSERT undo itself inside its transaction) in memory: on
	// disk, each push opened, wrote and closed a temporary file. They are
	// never needed after a crash, the WAL is. The readers keep spilling
	// their temporary files to disk, so that a large sort cannot take the
	// memory. The writer checkpoints the WAL every 8192 pages (32 MB of
	// WAL) rather than 1000: a push rewrites the same index pages (random
	// UUIDs and addresses), and each checkpoint copied them again, a sixth
	// of a replay's push CPU. Commits are as durable, only the WAL grows.
	w, err := sql.Open("sqlite", dsn("immediate", "&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(8192)"))
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", cfg.Path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", dsn("deferred", ""))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("opening %s: %w", cfg.Path, err)
	}
	r.SetMaxOpenConns(cfg.MaxOpenConns)
	r.SetMaxIdleConns(cfg.MaxOpenConns)
	d := &dialect{kind: sqliteDB}
	s := &Store{d: d, w: &db{w, d}, r: &db{r, d}, log: log.WithField("component", "store"), changed: make(chan struct{})}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := os.Chmod(cfg.Path, 0o600); err != nil && !os.IsNotExist(err) {
		s.log.WithError(err).Warn("cannot restrict database file permissions")
	}
	s.Optimize(ctx)
	if err := s.w.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'seq'`).Scan(&s.seq); err != nil {
		s.Close()
		return nil, fmt.Errorf("reading decision sequence: %w", err)
	}
	return s, nil
}

// Kind is the database engine: "sqlite", "postgresql" or "mysql".
func (s *Store) Kind() string { return s.d.kind.String() }

// Close releases the database.
func (s *Store) Close() error {
	s.stmtMu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	for _, st := range s.rstmts {
		st.Close()
	}
	s.stmts, s.rstmts = nil, nil
	s.stmtMu.Unlock()
	if s.stop != nil {
		s.stop()
	}
	s.bg.Wait()
	if s.r.DB == s.w.DB {
		return s.r.Close()
	}
	err1 := s.r.Close()
	err2 := s.w.Close()
	return errors.Join(err1, err2)
}

// Seq returns the last committed decision change sequence.
func (s *Store) Seq() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// Changed returns a channel closed at the next committed decision change.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Store) published(seq int64) {
	s.mu.Lock()
	if seq > s.seq {
		s.seq = seq
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
}

// wtx is a write transaction; seq() allocates the transaction's change
// number lazily, so transactions that change no decision do not wake bouncers.
type wtx struct {
	*dtx
	ctx    context.Context
	seqVal int64
	s      *Store
	conn   *sql.Conn // PostgreSQL: the connection the transaction runs on
}

// stmt returns q bound to this transaction: prepared once on the writer
// connection when Store.prepare has seen it (parsing a statement costs
// modernc as much as running it), else prepared for this transaction only.
// Close the result. On servers the text runs directly.
func (t *wtx) stmt(q string) (stmter, error) {
	if t.s.d.kind != sqliteDB {
		return textStmt{q: q, x: t.dtx}, nil
	}
	t.s.stmtMu.Lock()
	st, ok := t.s.stmts[q]
	t.s.stmtMu.Unlock()
	if ok {
		return t.StmtContext(t.ctx, st), nil
	}
	return t.PrepareContext(t.ctx, q)
}

// prepare keeps qs prepared on the writer connection. Called outside any
// transaction: the writer has a single connection, a transaction holds it.
func (s *Store) prepare(ctx context.Context, qs []string) error {
	if s.d.kind != sqliteDB {
		return nil
	}
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	for _, q := range qs {
		if _, ok := s.stmts[q]; ok {
			continue
		}
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("preparing a statement: %w", err)
		}
		if s.stmts == nil {
			s.stmts = make(map[string]*sql.Stmt)
		}
		s.stmts[q] = st
	}
	return nil
}

// nextSeqSQL allocates a transaction's change number (SQLite and
// PostgreSQL); the row lock it takes is held until commit, which is what
// orders commits by sequence on servers (see the package doc).
const nextSeqSQL = `UPDATE counters SET value = value + 1 WHERE name = 'seq' RETURNING value`

// nextSeqMySQL is nextSeqSQL for MySQL/MariaDB, which have no
// UPDATE ... RETURNING: the new value comes back as the statement's
// LAST_INSERT_ID, in the same round trip.
const nextSeqMySQL = `UPDATE counters SET value = LAST_INSERT_ID(value + 1) WHERE name = 'seq'`

// exec runs q through stmt (prepared once when Store.prepare has seen it).
func (t *wtx) exec(q string, args ...any) (sql.Result, error) {
	st, err := t.stmt(q)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.ExecContext(t.ctx, args...)
}

// readStmt returns q prepared on the readers, for the reads every
// request makes (modernc's parse costs as much as the read). Not to be
// closed: Close does. On servers the text runs directly.
func (s *Store) readStmt(ctx context.Context, q string) (stmter, error) {
	if s.d.kind != sqliteDB {
		return textStmt{q: q, x: s.r}, nil
	}
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if st, ok := s.rstmts[q]; ok {
		return st, nil
	}
	st, err := s.r.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("preparing a statement: %w", err)
	}
	if s.rstmts == nil {
		s.rstmts = make(map[string]*sql.Stmt)
	}
	s.rstmts[q] = st
	return st, nil
}

func (t *wtx) seq() (int64, error) {
	if t.seqVal != 0 {
		return t.seqVal, nil
	}
	if t.s.d.kind == mysqlDB {
		res, err := t.ExecContext(t.ctx, nextSeqMySQL)
		if err != nil {
			return 0, fmt.Errorf("allocating change sequence: %w", err)
		}
		if t.seqVal, err = res.LastInsertId(); err != nil || t.seqVal == 0 {
			return 0, fmt.Errorf("allocating change sequence: got %d: %v", t.seqVal, err)
		}
		return t.seqVal, nil
	}
	st, err := t.stmt(nextSeqSQL)
	if err != nil {
		return 0, fmt.Errorf("allocating change sequence: %w", err)
	}
	defer st.Close()
	if err := st.QueryRowContext(t.ctx).Scan(&t.seqVal); err != nil {
		return 0, fmt.Errorf("allocating change sequence: %w", err)
	}
	return t.seqVal, nil
}

// write runs fn in a write transaction, retrying when the database is busy.
func (s *Store) write(ctx context.Context, fn func(tx *wtx) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = s.writeOnce(ctx, fn)
		if err == nil || !isBusy(err) {
			return err
		}
		s.log.WithError(err).WithField("attempt", attempt+1).Warn("database busy, retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	return err
}

func (s *Store) writeOnce(ctx context.Context, fn func(tx *wtx) error) error {
	var opts *sql.TxOptions
	if s.d.kind == mysqlDB {
		// InnoDB's default (REPEATABLE READ) would let a transaction's
		// reads after it took the sequence lock miss what the previous
		// holder committed; every statement must see the latest commits,
		// as on PostgreSQL's default.
		opts = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	var conn *sql.Conn
	var tx *dtx
	var err error
	if s.d.kind == postgresDB {
		// On a connection of its own, so that pgx's COPY (copyFrom),
		// which database/sql cannot run, can join the transaction.
		if conn, err = s.w.DB.Conn(ctx); err != nil {
			return fmt.Errorf("beginning transaction: %w", err)
		}
		defer conn.Close()
		var stx *sql.Tx
		if stx, err = conn.BeginTx(ctx, opts); err != nil {
			return fmt.Errorf("beginning transaction: %w", err)
		}
		tx = &dtx{Tx: stx, d: s.d}
	} else if tx, err = s.w.BeginTx(ctx, opts); err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	// Ends the transaction before conn goes back to the pool (Close waits
	// for it) if fn panics; a no-op after Commit or Rollback.
	defer tx.Rollback()
	t := &wtx{dtx: tx, ctx: ctx, s: s, conn: conn}
	if err := fn(t); err != nil {
		_ = tx.Rollback()
		return err
	}
	if t.seqVal != 0 && s.d.kind == postgresDB {
		// Delivered to the other LAPIs' listeners at commit, not before.
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify('`+notifyChannel+`', ?)`, strconv.FormatInt(t.seqVal, 10)); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("announcing change %d: %w", t.seqVal, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	if t.seqVal != 0 {
		s.published(t.seqVal)
	}
	return nil
}

func isBusy(err error) bool {
	if err == nil {
		return false
	}
	if serverRetryable(err) {
		return true
	}
	m := err.Error()
	return strings.Contains(m, "SQLITE_BUSY") || strings.Contains(m, "database is locked")
}

// IsDiskFull reports whether err comes from a full disk.
func IsDiskFull(err error) bool {
	if err == nil {
		return false
	}
	m := err.Error()
	return strings.Contains(m, "SQLITE_FULL") || strings.Contains(m, "database or disk is full") || strings.Contains(m, "no space left")
}

func nowNS() int64 { return time.Now().UnixNano() }

func nullTime(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.Unix(0, v.Int64)
	return &t
}

// GetKV returns a stored setting, or ErrNotFound.
func (s *Store) GetKV(ctx context.Context, name string) (string, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM kv WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("reading setting %s: %w", name, err)
	}
	return v, nil
}

// GetOrCreateKV returns the setting, storing gen()'s value first if absent.
func (s *Store) GetOrCreateKV(ctx context.Context, name string, gen func() (string, error)) (string, error) {
	var out string
	err := s.write(ctx, func(tx *wtx) error {
		err := tx.QueryRowContext(ctx, `SELECT value FROM kv WHERE name = ?`, name).Scan(&out)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("reading setting %s: %w", name, err)
		}
		out, err = gen()
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO kv (name, value) VALUES (?, ?)`, name, out)
		return err
	})
	return out, err
}

// QueryRowForTest runs a read query; tests use it to check the database.
func (s *Store) QueryRowForTest(q string, args ...any) *sql.Row {
	return s.r.QueryRow(q, args...)
}

// ExecForTest runs a statement; tests use it to break the database.
func (s *Store) ExecForTest(q string, args ...any) error {
	_, err := s.w.ExecContext(context.Background(), q, args...)
	return err
}

// Optimize refreshes the planner's statistics when SQLite thinks they are
// stale; cheap when they are not. Called at open and by the retention job.
func (s *Store) Optimize(ctx context.Context) {
	if s.d.kind != sqliteDB {
		return // the servers keep their own statistics (autovacuum, InnoDB)
	}
	if _, err := s.w.ExecContext(ctx, `PRAGMA optimize=0x10002`); err != nil {
		s.log.WithError(err).Debug("PRAGMA optimize failed")
	}
}

// RefreshSeq picks up decision changes committed by another process (cscli
// works on the database directly) so long-polls wake for them too.
func (s *Store) RefreshSeq(ctx context.Context) error {
	var v int64
	if err := s.r.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'seq'`).Scan(&v); err != nil {
		return fmt.Errorf("reading decision sequence: %w", err)
	}
	s.published(v)
	return nil
}
