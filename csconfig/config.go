// Package csconfig loads the crowdsec daemon's TOML configuration and the
// machine credentials file. Its structure and key names follow upstream's
// config.yaml so CrowdSec users recognise it; it never opens the database.
package csconfig

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/internal/atomicfile"
	"github.com/rampart-ips/rampart/internal/dbkind"
	"github.com/rampart-ips/rampart/internal/promlevel"
	"github.com/rampart-ips/rampart/internal/stricttoml"
	"github.com/rampart-ips/rampart/models"
)

// DefaultPath is where the daemon and cscli look without -c.
const DefaultPath = "/etc/crowdsec/config.toml"

// Duration is a TOML string parsed with day support ("7d", "1h30m").
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := models.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Config is the whole daemon configuration.
type Config struct {
	Common      Common      `toml:"common"`
	ConfigPaths ConfigPaths `toml:"config_paths"`
	Crowdsec    Crowdsec    `toml:"crowdsec_service"`
	Cscli       Cscli       `toml:"cscli"`
	DBConfig    DBConfig    `toml:"db_config"`
	API         API         `toml:"api"`
	Prometheus  Prometheus  `toml:"prometheus"`
	// Blocklists are the LAPI's feed subscriptions ([[blocklists]]).
	Blocklists []Blocklist `toml:"blocklists"`
	// ListsOut are the plain-text feeds the LAPI serves ([[lists_out]]).
	ListsOut []ListOut `toml:"lists_out"`

	// Path is the file the configuration was read from.
	Path string `toml:"-"`
	// Simulation is read by Load from config_paths.simulation_path, so a
	// reload of the configuration reloads it too.
	Simulation *Simulation `toml:"-"`
}

// Common holds logging settings.
type Common struct {
	LogMedia string `toml:"log_media"` // stdout or file
	LogDir   string `toml:"log_dir"`
	LogLevel string `toml:"log_level"`
}

// ConfigPaths locates the rest of the configuration.
type ConfigPaths struct {
	ConfigDir string `toml:"config_dir"`
	DataDir   string `toml:"data_dir"`
	HubDir    string `toml:"hub_dir"`
	// SimulationPath is the TOML file saying which scenarios are in
	// simulation (cscli simulation); a missing file simulates nothing.
	SimulationPath string `toml:"simulation_path"`
	// NotificationDir holds the notifications profiles may name, in
	// *.toml files or upstream's *.yaml ones (upstream's notification_dir).
	NotificationDir string `toml:"notification_dir"`
	// BlocklistsPath holds the [[blocklists]] `cscli blocklists add`
	// manages, read beside config.toml's own; a missing file holds none.
	BlocklistsPath string `toml:"blocklists_path"`
}

// Crowdsec configures the agent half.
type Crowdsec struct {
	Enable         *bool  `toml:"enable"`
	AcquisitionDir string `toml:"acquisition_dir"`
	// Collections are loaded from the hub folder (config_paths.hub_dir),
	// with every collection installed in config_dir/collections.
	Collections []string `toml:"collections"`
	// SkipBrokenRules loads what it can when a rule is broken, reporting
	// the broken ones, instead of refusing to start.
	SkipBrokenRules bool `toml:"skip_broken_rules"`
	// ParserRoutines is how many goroutines parse lines (0: one per CPU).
	ParserRoutines int `toml:"parser_routines"`
	// StateDir keeps the sources' positions (journald cursors, file
	// offsets), written every StateSaveInterval and at stop.
	StateDir          string    `toml:"state_dir"`
	StateSaveInterval *Duration `toml:"state_save_interval"`
	// MaxBacklogAge: a file source stopped for longer starts at the end of
	// its files ("0": always); MaxBacklogBytes bounds what is read, per
	// file, of what was written while it was stopped.
	MaxBacklogAge   *Duration `toml:"max_backlog_age"`
	MaxBacklogBytes int64     `toml:"max_backlog_bytes"`
	// WarmupWindow caps how far back a file source reads again, at start,
	// lines it had already processed, to rebuild the buckets (nil: 30m;
	// "0": no warm-up).
	WarmupWindow *Duration `toml:"warmup_window"`
	// AlertQueueDir holds alerts not yet delivered to the LAPI; at most
	// AlertQueueMaxAlerts wait there, the oldest going first when full.
	AlertQueueDir       string `toml:"alert_queue_dir"`
	AlertQueueMaxAlerts int    `toml:"alert_queue_max_alerts"`
	// UsageMetricsInterval is how often the agent reports its lines read
	// and parsed per source to the LAPI (POST /v1/usage-metrics); 0
	// disables the reports. Set by setDefaults when absent.
	UsageMetricsInterval *Duration `toml:"usage_metrics_interval"`
	// MaxBucketsPerScenario caps each scenario's live buckets (0: no cap):
	// at the cap, the least full bucket makes room for a new source. Set
	// by setDefaults when absent.
	MaxBucketsPerScenario *int `toml:"max_buckets_per_scenario"`
}

// DefaultMaxBucketsPerScenario bounds the memory a flood of distinct
// sources can take: a live bucket costs about 1 KB with its event, so a
// few scenarios filled at once stay within a few hundred MB.
const DefaultMaxBucketsPerScenario = 100000

// DefaultUsageMetricsInterval is upstream's agent reporting period.
const DefaultUsageMetricsInterval = 30 * time.Minute

// MinUsageMetricsInterval bounds the reporting period: each report is a
// row the LAPI keeps for a week.
const MinUsageMetricsInterval = time.Minute

// DefaultCollections are Rampart's own rules, enabled on a fresh install.
func DefaultCollections() []string {
	return []string{"rampart/linux", "rampart/sshd", "rampart/nginx", "rampart/base-http"}
}

// Cscli holds cscli defaults.
type Cscli struct {
	Output string `toml:"output"`
	// HubURL is where `cscli hub update` reads a hub from when --from is
	// not given: a file:// URL of a hub folder or of a .tar.gz/.zip
	// archive of one (Rampart never downloads).
	HubURL string `toml:"hub_url"`
}

// DBConfig selects the database and its retention.
type DBConfig struct {
	Type         string    `toml:"type"`
	DBPath       string    `toml:"db_path"`
	MaxOpenConns int       `toml:"max_open_conns"`
	BusyTimeout  Duration  `toml:"busy_timeout"`
	Flush        *DBFlush  `toml:"flush"`
	UseWAL       *bool     `toml:"use_wal"`
	Host         string    `toml:"host"`
	Port         int       `toml:"port"`
	User         string    `toml:"user"`
	Password     string    `toml:"password"`
	DBName       string    `toml:"db_name"`
	SSLMode      string    `toml:"sslmode"`
	_            [0]func() // not comparable
}

// DBFlush is the retention policy.
type DBFlush struct {
	MaxItems           int       `toml:"max_items"`
	MaxAge             *Duration `toml:"max_age"`
	BouncersAutodelete struct {
		APIKey *Duration `toml:"api_key"`
		Cert   *Duration `toml:"cert"`
	} `toml:"bouncers_autodelete"`
	AgentsAutodelete struct {
		LoginPassword *Duration `toml:"login_password"`
		Cert          *Duration `toml:"cert"`
	} `toml:"agents_autodelete"`
	Interval Duration `toml:"interval"`
}

// API holds the client and server halves of the local API.
type API struct {
	Client APIClient `toml:"client"`
	Server APIServer `toml:"server"`
}

// APIClient is how the agent and cscli reach the LAPI.
type APIClient struct {
	InsecureSkipVerify *bool  `toml:"insecure_skip_verify"`
	CredentialsPath    string `toml:"credentials_path"`
}

// APIServer configures the LAPI.
type APIServer struct {
	Enable                        *bool             `toml:"enable"`
	ListenURI                     string            `toml:"listen_uri"`
	ListenSocket                  string            `toml:"listen_socket"`
	ProfilesPath                  string            `toml:"profiles_path"`
	UseForwardedForHeaders        bool              `toml:"use_forwarded_for_headers"`
	TrustedProxies                []string          `toml:"trusted_proxies"`
	TrustedIPs                    []string          `toml:"trusted_ips"`
	DisableRemoteLAPIRegistration bool              `toml:"disable_remote_lapi_registration"`
	AllowlistHostAddresses        *bool             `toml:"allowlist_host_addresses"`
	LongPollMax                   Duration          `toml:"long_poll_max"`
	Follow                        *bool             `toml:"follow"` // the stream's follow mode for Rampart's bouncers; default true
	TLS                           *TLS              `toml:"tls"`
	AutoRegistration              *AutoRegistration `toml:"auto_registration"`
	LoginLimit                    LoginLimit        `toml:"login_limit"`
	// OnlineClient is the Central API client (signals out, community
	// blocklist in); absent, the LAPI does not talk to CAPI.
	OnlineClient *OnlineClient `toml:"online_client"`
	// ConsolePath is upstream's console.yaml (sharing options).
	ConsolePath               string `toml:"console_path"`
	DisableUsageMetricsExport bool   `toml:"disable_usage_metrics_export"`

	// Rampart's bounds on clients (upstream has none). A client has
	// ReadHeaderTimeout to send its request header and ReadTimeout to send
	// the whole request, body included; the handler's own time is not
	// bounded, so long-polls and big streams are not cut. Idle keep-alive
	// connections close after IdleTimeout. At most MaxConnections are open at once, at most
	// MaxConnectionsPerSource from one address (trusted_proxies are exempt
	// from the latter: all their clients share it); others are closed as
	// soon as they are accepted. Zero values take the defaults.
	ReadHeaderTimeout       Duration `toml:"read_header_timeout"`
	ReadTimeout             Duration `toml:"read_timeout"`
	IdleTimeout             Duration `toml:"idle_timeout"`
	MaxHeaderBytes          int      `toml:"max_header_bytes"`
	MaxConnections          int      `toml:"max_connections"`
	MaxConnectionsPerSource int      `toml:"max_connections_per_source"`
}

// LoginLimit throttles failed machine logins, each of which costs a bcrypt
// comparison: every client address (an IPv6 /64) and every machine name
// has a bucket of Burst failures, regaining one each Refill. When a bucket
// is empty the LAPI answers 429 without checking the password; the address
// a machine last logged in from is not held back by failures on its name.
type LoginLimit struct {
	Enabled       *bool    `toml:"enabled"`
	SourceBurst   int      `toml:"source_burst"`
	SourceRefill  Duration `toml:"source_refill"`
	MachineBurst  int      `toml:"machine_burst"`
	MachineRefill Duration `toml:"machine_refill"`
	// MaxTracked bounds the addresses and names remembered (each); past it
	// the newcomers share one bucket.
	MaxTracked int `toml:"max_tracked"`
}

// Defaults of the LAPI's client bounds.
const (
	DefaultReadHeaderTimeout       = 10 * time.Second
	DefaultReadTimeout             = 60 * time.Second
	DefaultIdleTimeout             = 2 * time.Minute
	DefaultMaxHeaderBytes          = 128 << 10
	DefaultMaxConnections          = 1024
	DefaultMaxConnectionsPerSource = 64
)

// TLS configures HTTPS and client certificates.
type TLS struct {
	CertFile           string   `toml:"cert_file"`
	KeyFile            string   `toml:"key_file"`
	ClientVerification string   `toml:"client_verification"`
	CACertPath         string   `toml:"ca_cert_path"`
	AgentsAllowedOU    []string `toml:"agents_allowed_ou"`
	BouncersAllowedOU  []string `toml:"bouncers_allowed_ou"`
	CRLPath            string   `toml:"crl_path"`
	CacheExpiration    Duration `toml:"cache_expiration"`
}

// AutoRegistration lets agents register themselves with a shared token.
type AutoRegistration struct {
	Enabled       bool     `toml:"enabled"`
	Token         string   `toml:"token"`
	AllowedRanges []string `toml:"allowed_ranges"`
}

// Prometheus configures the metrics listener.
type Prometheus struct {
	Enabled    *bool  `toml:"enabled"`
	Level      string `toml:"level"`
	ListenAddr string `toml:"listen_addr"`
	ListenPort int    `toml:"listen_port"`
}

// Default returns the configuration a package install uses.
func Default() *Config {
	c := &Config{}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Common.LogMedia, "stdout")
	def(&c.Common.LogLevel, "info")
	def(&c.Common.LogDir, "/var/log/")
	def(&c.ConfigPaths.ConfigDir, "/etc/crowdsec/")
	def(&c.ConfigPaths.DataDir, "/var/lib/crowdsec/data/")
	def(&c.ConfigPaths.HubDir, filepath.Join(c.ConfigPaths.ConfigDir, "hub"))
	def(&c.ConfigPaths.SimulationPath, filepath.Join(c.ConfigPaths.ConfigDir, "simulation.toml"))
	def(&c.ConfigPaths.NotificationDir, filepath.Join(c.ConfigPaths.ConfigDir, "notifications"))
	def(&c.ConfigPaths.BlocklistsPath, filepath.Join(c.ConfigPaths.ConfigDir, "blocklists.toml"))
	def(&c.Crowdsec.AcquisitionDir, filepath.Join(c.ConfigPaths.ConfigDir, "acquis.d"))
	if c.Crowdsec.Collections == nil {
		c.Crowdsec.Collections = DefaultCollections()
	}
	def(&c.Crowdsec.StateDir, filepath.Join(c.ConfigPaths.DataDir, "acquisition"))
	def(&c.Crowdsec.AlertQueueDir, filepath.Join(c.ConfigPaths.DataDir, "alert-queue"))
	if c.Crowdsec.AlertQueueMaxAlerts == 0 {
		c.Crowdsec.AlertQueueMaxAlerts = 10000
	}
	if c.Crowdsec.UsageMetricsInterval == nil {
		c.Crowdsec.UsageMetricsInterval = &Duration{DefaultUsageMetricsInterval}
	}
	if c.Crowdsec.MaxBucketsPerScenario == nil {
		n := DefaultMaxBucketsPerScenario
		c.Crowdsec.MaxBucketsPerScenario = &n
	}
	def(&c.Cscli.Output, "human")
	def(&c.DBConfig.Type, "sqlite")
	def(&c.DBConfig.DBPath, filepath.Join(c.ConfigPaths.DataDir, "crowdsec.db"))
	if c.DBConfig.MaxOpenConns == 0 {
		c.DBConfig.MaxOpenConns = 16
	}
	if c.DBConfig.BusyTimeout.Duration == 0 {
		c.DBConfig.BusyTimeout.Duration = 10 * time.Second
	}
	if c.DBConfig.Flush == nil {
		c.DBConfig.Flush = &DBFlush{MaxItems: 5000}
	}
	if c.DBConfig.Flush.MaxAge == nil {
		c.DBConfig.Flush.MaxAge = &Duration{7 * 24 * time.Hour}
	}
	if c.DBConfig.Flush.Interval.Duration == 0 {
		c.DBConfig.Flush.Interval.Duration = time.Minute
	}
	def(&c.API.Client.CredentialsPath, filepath.Join(c.ConfigPaths.ConfigDir, "local_api_credentials.toml"))
	def(&c.API.Server.ListenURI, "127.0.0.1:8080")
	def(&c.API.Server.ProfilesPath, filepath.Join(c.ConfigPaths.ConfigDir, "profiles.toml"))
	if c.API.Server.TrustedIPs == nil {
		c.API.Server.TrustedIPs = []string{"127.0.0.1", "::1"}
	}
	if c.API.Server.LongPollMax.Duration == 0 {
		c.API.Server.LongPollMax.Duration = 60 * time.Second
	}
	defDur := func(d *Duration, v time.Duration) {
		if d.Duration == 0 {
			d.Duration = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	srv := &c.API.Server
	defDur(&srv.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	defDur(&srv.ReadTimeout, DefaultReadTimeout)
	defDur(&srv.IdleTimeout, DefaultIdleTimeout)
	defInt(&srv.MaxHeaderBytes, DefaultMaxHeaderBytes)
	defInt(&srv.MaxConnections, DefaultMaxConnections)
	defInt(&srv.MaxConnectionsPerSource, DefaultMaxConnectionsPerSource)
	if ll := &c.API.Server.LoginLimit; Bool(ll.Enabled, true) {
		defInt(&ll.SourceBurst, 10)
		defDur(&ll.SourceRefill, 10*time.Second)
		defInt(&ll.MachineBurst, 20)
		defDur(&ll.MachineRefill, 30*time.Second)
		defInt(&ll.MaxTracked, 10000)
	}
	def(&c.API.Server.ConsolePath, filepath.Join(c.ConfigPaths.ConfigDir, "console.yaml"))
	if oc := c.API.Server.OnlineClient; oc != nil {
		def(&oc.CredentialsPath, filepath.Join(c.ConfigPaths.ConfigDir, "online_api_credentials.yaml"))
		defInt(&oc.SignalQueueMax, DefaultSignalQueueMax)
	}
	if c.API.Server.TLS != nil && c.API.Server.TLS.CacheExpiration.Duration == 0 {
		c.API.Server.TLS.CacheExpiration.Duration = time.Hour
	}
	for i := range c.Blocklists {
		c.Blocklists[i].SetDefaults()
	}
	def(&c.Prometheus.ListenAddr, "127.0.0.1")
	if c.Prometheus.ListenPort == 0 {
		c.Prometheus.ListenPort = 6060
	}
}

// Bool reads an optional flag with its default.
func Bool(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// Load reads a configuration file; unknown keys are errors naming the key
// and its line.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	c, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	c.Path = path
	if c.Simulation, err = LoadSimulation(c.ConfigPaths.SimulationPath); err != nil {
		return nil, err
	}
	more, err := LoadBlocklistsFile(c.ConfigPaths.BlocklistsPath)
	if err != nil {
		return nil, err
	}
	for _, b := range more {
		b.SetDefaults()
		c.Blocklists = append(c.Blocklists, b)
	}
	if len(more) > 0 {
		if err := validateBlocklists(c.Blocklists, c.ListsOut); err != nil {
			return nil, fmt.Errorf("%s with %s: %w", path, c.ConfigPaths.BlocklistsPath, err)
		}
	}
	return c, nil
}

// Parse decodes a configuration, applies defaults and validates it.
func Parse(data []byte, name string) (*Config, error) {
	var c Config
	if _, err := stricttoml.Decode(data, name, &c); err != nil {
		for _, kind := range []string{"parsers", "scenarios", "postoverflows", "contexts"} {
			if strings.Contains(err.Error(), "crowdsec_service."+kind+": unknown key") {
				// A natural guess next to collections; upstream enables
				// single items by files, and so does Rampart.
				return nil, fmt.Errorf("%w (single %s are enabled by their files in config_dir's %s/ folder, as upstream's: 'cscli %s install NAME', or a local file there)",
					err, kind, kind, kind)
			}
		}
		return nil, err
	}
	c.setDefaults()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &c, nil
}

func (c *Config) validate() error {
	if l := c.Prometheus.Level; l != "" && !slices.Contains(promlevel.Levels, l) {
		return fmt.Errorf("prometheus.level %q is unknown (use %s)", l, strings.Join(promlevel.Levels, ", "))
	}
	kind, err := dbkind.Parse(c.DBConfig.Type)
	if err != nil {
		return fmt.Errorf("db_config.type: %w", err)
	}
	if kind != "sqlite" {
		if c.DBConfig.Host == "" {
			return fmt.Errorf("db_config.host is empty: a %s database needs its server's address", kind)
		}
		if c.DBConfig.DBName == "" {
			return fmt.Errorf("db_config.db_name is empty: name the %s database to use", kind)
		}
	}
	if t := c.API.Server.TLS; t != nil {
		if (t.CertFile == "") != (t.KeyFile == "") {
			return fmt.Errorf("api.server.tls needs both cert_file and key_file")
		}
		switch t.ClientVerification {
		case "", "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert":
		default:
			return fmt.Errorf("api.server.tls.client_verification %q is unknown", t.ClientVerification)
		}
	}
	if ll := c.API.Server.LoginLimit; Bool(ll.Enabled, true) {
		if ll.SourceBurst < 1 || ll.MachineBurst < 1 || ll.MaxTracked < 1 {
			return fmt.Errorf("api.server.login_limit: source_burst, machine_burst and max_tracked must be at least 1 (set enabled = false to turn the limit off)")
		}
		if ll.SourceRefill.Duration <= 0 || ll.MachineRefill.Duration <= 0 {
			return fmt.Errorf("api.server.login_limit: source_refill and machine_refill must be positive")
		}
	}
	srv := &c.API.Server
	for _, v := range []struct {
		key string
		neg bool
	}{
		{"read_header_timeout", srv.ReadHeaderTimeout.Duration < 0},
		{"read_timeout", srv.ReadTimeout.Duration < 0},
		{"idle_timeout", srv.IdleTimeout.Duration < 0},
		{"max_header_bytes", srv.MaxHeaderBytes < 0},
		{"max_connections", srv.MaxConnections < 0},
		{"max_connections_per_source", srv.MaxConnectionsPerSource < 0},
	} {
		if v.neg {
			return fmt.Errorf("api.server.%s must not be negative (0 takes the default)", v.key)
		}
	}
	if d := c.Crowdsec.UsageMetricsInterval.Duration; d < 0 || (d > 0 && d < MinUsageMetricsInterval) {
		return fmt.Errorf("crowdsec_service.usage_metrics_interval %s: want 0 (no reports) or at least %s", d, MinUsageMetricsInterval)
	}
	if d := c.Crowdsec.StateSaveInterval; d != nil && d.Duration <= 0 {
		return fmt.Errorf("crowdsec_service.state_save_interval %s: want a positive duration", d.Duration)
	}
	if d := c.Crowdsec.MaxBacklogAge; d != nil && d.Duration < 0 {
		return fmt.Errorf("crowdsec_service.max_backlog_age %s must not be negative (0: never read what was written while stopped)", d.Duration)
	}
	if d := c.Crowdsec.WarmupWindow; d != nil && d.Duration < 0 {
		return fmt.Errorf("crowdsec_service.warmup_window %s must not be negative (0: no warm-up)", d.Duration)
	}
	if oc := c.API.Server.OnlineClient; oc != nil && oc.SignalQueueMax < 1 {
		return fmt.Errorf("api.server.online_client.signal_queue_max %d: want at least 1", oc.SignalQueueMax)
	}
	if c.Crowdsec.MaxBacklogBytes < 0 {
		return fmt.Errorf("crowdsec_service.max_backlog_bytes %d must not be negative (0 takes the default, 64 MiB)", c.Crowdsec.MaxBacklogBytes)
	}
	if n := *c.Crowdsec.MaxBucketsPerScenario; n < 0 {
		return fmt.Errorf("crowdsec_service.max_buckets_per_scenario %d: want 0 (no cap) or more", n)
	}
	if err := validateBlocklists(c.Blocklists, c.ListsOut); err != nil {
		return err
	}
	switch c.Cscli.Output {
	case "human", "json", "raw":
	default:
		return fmt.Errorf("cscli.output %q must be human, json or raw", c.Cscli.Output)
	}
	return nil
}

// Credentials is the machine login file (local_api_credentials.toml): a
// login and password, a client certificate, or both, and the LAPI: url,
// or urls for several LAPIs of one database (a fleet) in order of
// preference, between which the client fails over (apiclient's failover).
type Credentials struct {
	URL      string   `toml:"url,omitempty"`
	URLs     []string `toml:"urls,omitempty"`
	Login    string   `toml:"login"`
	Password string   `toml:"password"`
	CACert   string   `toml:"ca_cert_path,omitempty"`
	KeyPath  string   `toml:"key_path,omitempty"`
	CertPath string   `toml:"cert_path,omitempty"`
}

// LoadCredentials reads the machine credentials file.
func LoadCredentials(path string) (*Credentials, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading credentials: %w", err)
	}
	var c Credentials
	md, err := stricttoml.Decode(data, path, &c)
	if err != nil {
		return nil, err
	}
	switch {
	case md.IsDefined("urls") && c.URL != "":
		return nil, fmt.Errorf("credentials %s: url and urls are both set: list every LAPI in urls, in order of preference, and remove url", path)
	case md.IsDefined("urls") && len(c.URLs) == 0:
		return nil, fmt.Errorf("credentials %s: urls is empty: list at least one LAPI URL (or use url)", path)
	case !md.IsDefined("urls") && c.URL == "":
		return nil, fmt.Errorf("credentials %s: url is required", path)
	}
	seen := map[string]bool{}
	for i, u := range c.URLs {
		if err := apiclient.CheckURL(u); err != nil {
			return nil, fmt.Errorf("credentials %s: urls: entry %d: %w", path, i+1, err)
		}
		k := strings.TrimSuffix(u, "/")
		if seen[k] {
			return nil, fmt.Errorf("credentials %s: urls: entry %d: %q is listed twice", path, i+1, u)
		}
		seen[k] = true
	}
	if (c.CertPath == "") != (c.KeyPath == "") {
		return nil, fmt.Errorf("credentials %s: cert_path and key_path go together", path)
	}
	if c.Login == "" && c.CertPath == "" {
		return nil, fmt.Errorf("credentials %s: login and password, or cert_path and key_path (a client certificate), are required", path)
	}
	return &c, nil
}

// LAPIClient is how the agent and cscli reach the LAPI with creds: its URLs,
// login and TLS (the credentials' CA and client certificate with
// api.client.insecure_skip_verify). Callers add their user agent and
// timeouts.
func (c *Config) LAPIClient(creds *Credentials) (apiclient.Config, error) {
	tc, err := apiclient.TLSConfig(apiclient.TLSOptions{CACertPath: creds.CACert, CertPath: creds.CertPath, KeyPath: creds.KeyPath,
		InsecureSkipVerify: Bool(c.API.Client.InsecureSkipVerify, false)})
	if err != nil {
		return apiclient.Config{}, fmt.Errorf("credentials TLS: %w", err)
	}
	return apiclient.Config{URL: creds.URL, URLs: creds.URLs, MachineID: creds.Login, Password: creds.Password, TLS: tc}, nil
}

// LAPIURLs returns the LAPI URLs of the credentials, in order of
// preference: urls, or url alone.
func (c *Credentials) LAPIURLs() []string {
	if len(c.URLs) > 0 {
		return append([]string(nil), c.URLs...)
	}
	return []string{c.URL}
}

// WriteCredentials writes the credentials file with mode 0600.
func WriteCredentials(path string, c *Credentials) error {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return fmt.Errorf("encoding credentials: %w", err)
	}
	if path == "-" {
		_, err := os.Stdout.Write(buf.Bytes())
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := atomicfile.WriteBytes(path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("writing credentials: %w", err)
	}
	return nil
}

// ListenURL is the http(s) URL clients use for the LAPI listener.
func (c *Config) ListenURL() string {
	scheme := "http"
	if c.API.Server.TLS != nil && c.API.Server.TLS.CertFile != "" {
		scheme = "https"
	}
	return scheme + "://" + c.API.Server.ListenURI + "/"
}
