package cscli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/store"
)

func newDatabaseCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "database",
		Short: "Manage the LAPI's database",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newDatabaseMigrateCmd(cli))
	return cmd
}

const migrateLong = `Copy the SQLite database [db_config] names to a PostgreSQL or MySQL/MariaDB
database, with everything in it: machines (with their passwords and validation), bouncers (with
their API keys and stream cursors), allowlists, alerts and decisions (active and ended, with the
decision sequence bouncers pull deltas from). No agent or bouncer needs registering again, and a
bouncer's next pull from the new database continues where it stopped.

First create the database and its user on the server (as for upstream's CrowdSec), e.g.:

  PostgreSQL: CREATE DATABASE crowdsec; CREATE USER crowdsec WITH PASSWORD '...';
              ALTER DATABASE crowdsec OWNER TO crowdsec;
  MariaDB:    CREATE DATABASE crowdsec; CREATE USER 'crowdsec'@'%' IDENTIFIED BY '...';
              GRANT ALL PRIVILEGES ON crowdsec.* TO 'crowdsec'@'%';

Then stop crowdsec (systemctl stop crowdsec): the copy is one snapshot of the SQLite file, and
what the LAPI changes after it would not be copied. The command refuses to run while the LAPI
answers on its listen_uri (--allow-running to copy anyway). The target must be empty (the
schema is created in it); --force replaces what it holds. The copy is one transaction on the
target: if it fails, the target is left as it was, and the command can simply run again.

Afterwards put the printed [db_config] lines in config.toml and start crowdsec. The SQLite file
is left untouched: keep it until the new database has served for a while.

--to takes a URL:

  postgresql://USER:PASSWORD@HOST:5432/DBNAME?sslmode=disable   (also postgres://)
  postgresql://USER@/DBNAME?host=/run/postgresql                (Unix socket folder)
  mysql://USER:PASSWORD@HOST:3306/DBNAME                        (also mariadb://; ?tls=true)
  mysql://USER:PASSWORD@/DBNAME?socket=/run/mysqld/mysqld.sock  (Unix socket)

Characters special in URLs (@ : / ? # %) in the password are written %XX.`

func newDatabaseMigrateCmd(cli *CLI) *cobra.Command {
	var to string
	var force, allowRunning bool
	cmd := &cobra.Command{
		Use:   "migrate --to URL",
		Short: "Copy the SQLite database to PostgreSQL or MySQL/MariaDB",
		Long:  migrateLong,
		Example: `cscli database migrate --to 'postgresql://crowdsec:secret@127.0.0.1:5432/crowdsec?sslmode=disable'
cscli database migrate --to 'mysql://crowdsec:secret@db.example.net:3306/crowdsec'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.migrateDatabase(cmd.Context(), to, force, allowRunning)
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "the target database as a URL (postgresql://, mysql://)")
	f.BoolVar(&force, "force", false, "replace what the target database already holds")
	f.BoolVar(&allowRunning, "allow-running", false, "copy even though the LAPI is running (changes after the copy are lost)")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// parseDatabaseURL turns --to into the store's configuration. Errors
// never repeat the URL: it may hold a password.
func parseDatabaseURL(raw string) (store.Config, error) {
	const forms = "postgresql://USER:PASSWORD@HOST:PORT/DBNAME or mysql://USER:PASSWORD@HOST:PORT/DBNAME"
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the message without the URL
		}
		if err == nil {
			err = errors.New("no scheme")
		}
		return store.Config{}, fmt.Errorf("--to is not a database URL (%v): write %s", err, forms)
	}
	var c store.Config
	switch strings.ToLower(u.Scheme) {
	case "postgresql", "postgres":
		c.Type = "postgresql"
	case "mysql", "mariadb":
		c.Type = "mysql"
	case "sqlite", "sqlite3", "file":
		return c, fmt.Errorf("--to names a SQLite database: the target must be a PostgreSQL or MySQL/MariaDB server (%s)", forms)
	default:
		return c, fmt.Errorf("--to: unknown scheme %q: write %s", u.Scheme, forms)
	}
	if u.User != nil {
		c.User = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	c.Host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return c, fmt.Errorf("--to: port %q is not a number from 1 to 65535", p)
		}
		c.Port = n
	}
	c.DBName = strings.TrimPrefix(u.Path, "/")
	if c.DBName == "" || strings.Contains(c.DBName, "/") {
		return c, fmt.Errorf("--to: name the database after the host (%s)", forms)
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch {
		case k == "sslmode" && c.Type == "postgresql", k == "tls" && c.Type == "mysql":
			c.SSLMode = v
		case k == "host" && c.Type == "postgresql", k == "socket" && c.Type == "mysql":
			if !strings.HasPrefix(v, "/") {
				return c, fmt.Errorf("--to: %s=%q is not an absolute path (a Unix socket)", k, v)
			}
			if c.Host != "" {
				return c, fmt.Errorf("--to: give a host or %s=, not both", k)
			}
			c.Host = v
		default:
			accepted := "sslmode, host"
			if c.Type == "mysql" {
				accepted = "tls, socket"
			}
			return c, fmt.Errorf("--to: parameter %q is unknown for %s (accepted: %s)", k, c.Type, accepted)
		}
	}
	if c.Host == "" {
		return c, fmt.Errorf("--to: no server: give its host (%s)", forms)
	}
	if c.Type == "mysql" && c.SSLMode == "false" {
		c.SSLMode = "disable"
	}
	return c, nil
}

// lapiAnswers tells whether something accepts connections on the LAPI's
// listen address: the LAPI still running on the database to copy.
func lapiAnswers(cfg *csconfig.Config) (string, bool) {
	if !csconfig.Bool(cfg.API.Server.Enable, true) || cfg.API.Server.ListenURI == "" {
		return "", false
	}
	addr := cfg.API.Server.ListenURI
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return addr, false
	}
	c.Close()
	return addr, true
}

func (cli *CLI) migrateDatabase(ctx context.Context, to string, force, allowRunning bool) error {
	cfg, err := cli.Config()
	if err != nil {
		return err
	}
	sc := store.ConfigOf(cfg.DBConfig)
	if kind, err := sc.Kind(); err != nil {
		return fmt.Errorf("db_config.type: %w", err)
	} else if kind != "sqlite" {
		return fmt.Errorf("[db_config] already names a %s database (%s): migrate copies the SQLite database to a server", kind, cfg.DBConfig.DBName)
	}
	target, err := parseDatabaseURL(to)
	if err != nil {
		return err
	}
	if addr, up := lapiAnswers(cfg); up {
		if !allowRunning {
			return fmt.Errorf("the LAPI answers on %s: stop crowdsec first (systemctl stop crowdsec), so that nothing changes after the copy; "+
				"--allow-running copies anyway, and what changes after the copy is lost", addr)
		}
		fmt.Fprintf(cli.Err, "warning: the LAPI answers on %s: what it changes after the copy's snapshot is not copied\n", addr)
	}
	sc.MustExist = true
	sc.MaxOpenConns = 2
	src, err := store.Open(ctx, sc)
	if err != nil {
		return fmt.Errorf("opening the SQLite database: %w", err)
	}
	defer src.Close()
	target.MaxOpenConns = 2
	dst, err := store.Open(ctx, target)
	if err != nil {
		return fmt.Errorf("opening the target database (create it and its user first, see cscli database migrate --help): %w", err)
	}
	defer dst.Close()
	where := targetName(target)
	fmt.Fprintf(cli.Err, "copying %s to %s\n", sc.Path, where)
	start := time.Now()
	counts, err := store.CopyTo(ctx, src, dst, store.CopyOptions{Force: force, Progress: func(table string, n int64) {
		fmt.Fprintf(cli.Err, "  %-24s %d rows\n", table, n)
	}})
	if err != nil {
		if errors.Is(err, store.ErrTargetNotEmpty) {
			return fmt.Errorf("%s: %w", where, err)
		}
		return fmt.Errorf("copying to %s: %w (nothing was committed: the target is as it was; run the command again)", where, err)
	}
	var total int64
	for _, c := range counts {
		total += c.Rows
	}
	w := cli.Out
	fmt.Fprintf(w, "Copied %d rows from %s to %s in %s.\n\n", total, sc.Path, where, time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(w, "Next: in %s, replace [db_config]'s type and db_path with these lines (keep its other keys):\n\n", cli.ConfigPath)
	fmt.Fprint(w, dbConfigLines(target))
	fmt.Fprintf(w, "\nthen start crowdsec (systemctl start crowdsec; restart it if it was running). Agents and bouncers\n"+
		"need no change. %s is left as it was: keep it as a backup.\n", sc.Path)
	return nil
}

// targetName names the target for messages: no password.
func targetName(c store.Config) string {
	addr := c.Host
	if !strings.HasPrefix(addr, "/") {
		port := c.Port
		if port == 0 {
			port = map[string]int{"postgresql": 5432, "mysql": 3306}[c.Type]
		}
		addr = net.JoinHostPort(addr, strconv.Itoa(port))
	}
	return fmt.Sprintf("%s database %q at %s", c.Type, c.DBName, addr)
}

// dbConfigLines are the [db_config] keys for c. The password is not
// printed back (terminals and support dumps keep what they show): the
// administrator writes the one they gave in --to.
func dbConfigLines(c store.Config) string {
	var b strings.Builder
	b.WriteString("[db_config]\n")
	fmt.Fprintf(&b, "type = %q\n", c.Type)
	fmt.Fprintf(&b, "host = %q\n", c.Host)
	if c.Port != 0 {
		fmt.Fprintf(&b, "port = %d\n", c.Port)
	}
	if c.User != "" {
		fmt.Fprintf(&b, "user = %q\n", c.User)
	}
	if c.Password != "" {
		b.WriteString("password = \"...\"   # the password given in --to\n")
	}
	fmt.Fprintf(&b, "db_name = %q\n", c.DBName)
	if c.SSLMode != "" {
		fmt.Fprintf(&b, "sslmode = %q\n", c.SSLMode)
	}
	return b.String()
}
