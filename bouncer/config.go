package bouncer

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/netaddr"
	"github.com/rampart-ips/rampart/internal/stricttoml"
)

// DefaultConfigPath is where the bouncer looks without -c.
const DefaultConfigPath = "/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.toml"

// Duration is a TOML duration string ("10s", "1m"), shared with the
// daemon's configuration.
type Duration = csconfig.Duration

// Config is the bouncer's TOML configuration. Key names follow upstream's
// YAML so its documentation applies.
type Config struct {
	Mode                    string   `toml:"mode"`
	APIURL                  string   `toml:"api_url,omitempty"`
	APIURLs                 []string `toml:"api_urls,omitempty"`
	APIKey                  string   `toml:"api_key"`
	CertPath                string   `toml:"cert_path"`
	KeyPath                 string   `toml:"key_path"`
	CACertPath              string   `toml:"ca_cert_path"`
	InsecureSkipVerify      bool     `toml:"insecure_skip_verify"`
	UpdateFrequency         Duration `toml:"update_frequency"`
	LongPoll                *bool    `toml:"long_poll"`
	Follow                  *bool    `toml:"follow"`
	RequestTimeout          Duration `toml:"request_timeout"`
	SupportedDecisionsTypes []string `toml:"supported_decisions_types"`
	Scopes                  []string `toml:"scopes"`
	Origins                 []string `toml:"origins"`
	ScenariosContaining     []string `toml:"scenarios_containing"`
	ScenariosNotContaining  []string `toml:"scenarios_not_containing"`
	DenyAction              string   `toml:"deny_action"`
	DenyLog                 bool     `toml:"deny_log"`
	DenyLogPrefix           string   `toml:"deny_log_prefix"`
	DisableIPv4             bool     `toml:"disable_ipv4"`
	DisableIPv6             bool     `toml:"disable_ipv6"`
	NeverBan                []string `toml:"never_ban"`
	BlacklistsIPv4          string   `toml:"blacklists_ipv4"`
	BlacklistsIPv6          string   `toml:"blacklists_ipv6"`
	IpsetSize               int      `toml:"ipset_size"`
	IptablesChains          []string `toml:"iptables_chains"`
	NftablesHooks           []string `toml:"nftables_hooks"`
	Nftables                struct {
		IPv4 NFTFamily `toml:"ipv4"`
		IPv6 NFTFamily `toml:"ipv6"`
	} `toml:"nftables"`
	Prometheus struct {
		Enabled    bool   `toml:"enabled"`
		ListenAddr string `toml:"listen_addr"`
		ListenPort int    `toml:"listen_port"`
	} `toml:"prometheus"`
	LogMode  string `toml:"log_mode"`
	LogDir   string `toml:"log_dir"`
	LogLevel string `toml:"log_level"`

	// MetricsInterval is how often usage metrics go to the LAPI; "0s"
	// disables them. Upstream's bouncer has no key for it (go-cs-bouncer's
	// fixed 15 min): the name follows update_frequency's style.
	MetricsInterval *Duration `toml:"metrics_interval"`

	// ResyncInterval is how often the full state is pulled again and the
	// firewall reconciled with it, a safety net for changes a delta lost
	// (upstream's LAPI can lose some for good); "0s" disables it. Rampart's
	// own: upstream's bouncer never pulls the full state again.
	ResyncInterval *Duration `toml:"resync_interval"`

	// RetryInitialConnect, upstream's key: false makes the bouncer stop
	// with an error when its first sync with the LAPI fails; unset or
	// true retries with backoff (Rampart's default: at boot the LAPI may
	// come up later), the firewall keeping what it holds meanwhile.
	RetryInitialConnect *bool `toml:"retry_initial_connect"`

	// IpsetType is upstream's ipset type; Rampart's sets are always
	// hash:net (upstream's default "nethash"), which also takes ranges.
	IpsetType string `toml:"ipset_type"`

	// Upstream keys that do nothing here, accepted so that an upstream
	// configuration carries over; a set one is warned about (Warnings).
	IptablesAddRuleComments *bool   `toml:"iptables_add_rule_comments"`
	LogMaxSize              *int    `toml:"log_max_size"`
	LogMaxFiles             *int    `toml:"log_max_files"`
	LogMaxBackups           *int    `toml:"log_max_backups"`
	LogMaxAge               *int    `toml:"log_max_age"`
	CompressLogs            *bool   `toml:"compress_logs"`
	LogCompression          *bool   `toml:"log_compression"`
	PidDir                  *string `toml:"pid_dir"`
	Daemonize               *bool   `toml:"daemonize"`
	PF                      *struct {
		AnchorName string `toml:"anchor_name"`
		BatchSize  int    `toml:"batch_size"`
	} `toml:"pf"`

	neverBan []netip.Prefix
	warnings []string
}

// lapiURLs checks api_url and api_urls. api_urls lists several LAPIs of
// one database (a fleet) in order of preference: the bouncer fails over
// between them (apiclient's failover). It replaces api_url, which stays for
// one LAPI (upstream's key); both set is an error rather than a merge, so
// that the order of preference is the one written.
func (c *Config) lapiURLs(listed bool) error {
	if !listed {
		if c.APIURL != "" {
			if err := apiclient.CheckURL(c.APIURL); err != nil {
				return fmt.Errorf("api_url: %w", err)
			}
		}
		return nil
	}
	if c.APIURL != "" {
		return fmt.Errorf("api_url and api_urls are both set: list every LAPI in api_urls, in order of preference, and remove api_url")
	}
	if len(c.APIURLs) == 0 {
		return fmt.Errorf("api_urls is empty: list at least one LAPI URL (or use api_url)")
	}
	seen := map[string]bool{}
	for i, u := range c.APIURLs {
		if err := apiclient.CheckURL(u); err != nil {
			return fmt.Errorf("api_urls: entry %d: %w", i+1, err)
		}
		u = withSlash(u)
		if seen[u] {
			return fmt.Errorf("api_urls: entry %d: %q is listed twice", i+1, u)
		}
		seen[u] = true
		c.APIURLs[i] = u
	}
	return nil
}

func withSlash(u string) string {
	if strings.HasSuffix(u, "/") {
		return u
	}
	return u + "/"
}

// LAPIURLs returns the LAPI URLs the bouncer uses, in order of preference:
// api_urls, or api_url alone.
func (c *Config) LAPIURLs() []string {
	if len(c.APIURLs) > 0 {
		return append([]string(nil), c.APIURLs...)
	}
	return []string{c.APIURL}
}

// retryInitialConnect says whether a failed first sync is retried.
func (c *Config) retryInitialConnect() bool {
	return c.RetryInitialConnect == nil || *c.RetryInitialConnect
}

// inertKeys warns about upstream keys that are set but mean nothing here,
// saying why, so that a carried-over configuration starts and the
// administrator learns what does not apply.
func (c *Config) inertKeys() {
	warn := func(key, why string) {
		c.warnings = append(c.warnings, fmt.Sprintf("%s is upstream's and has no effect here: %s", key, why))
	}
	const rotation = "the log file is rotated by logrotate (the package's /etc/logrotate.d/crowdsec-firewall-bouncer)"
	for _, k := range []struct {
		set  bool
		name string
	}{
		{c.LogMaxSize != nil, "log_max_size"}, {c.LogMaxFiles != nil, "log_max_files"}, {c.LogMaxBackups != nil, "log_max_backups"},
		{c.LogMaxAge != nil, "log_max_age"}, {c.CompressLogs != nil, "compress_logs"}, {c.LogCompression != nil, "log_compression"},
	} {
		if k.set {
			warn(k.name, rotation)
		}
	}
	if c.IptablesAddRuleComments != nil && *c.IptablesAddRuleComments {
		warn("iptables_add_rule_comments", "Rampart's iptables rules live in its own chain CROWDSEC_CHAIN, which names them")
	}
	if c.PidDir != nil {
		warn("pid_dir", "the bouncer writes no PID file (upstream ignores it too)")
	}
	if c.Daemonize != nil {
		warn("daemonize", "the bouncer runs in the foreground under systemd (upstream ignores it too)")
	}
	if c.PF != nil {
		warn("pf", "pf is BSD's firewall; Rampart runs nftables, iptables or ipset")
	}
	switch strings.ToLower(c.IpsetType) {
	case "", "nethash", "hash:net":
	default:
		warn(fmt.Sprintf("ipset_type %q", c.IpsetType), "Rampart's sets are always hash:net (upstream's default nethash), which takes addresses and ranges")
	}
}

// NFTFamily configures one nftables family.
type NFTFamily struct {
	Enabled  *bool  `toml:"enabled"`
	SetOnly  bool   `toml:"set-only"`
	Table    string `toml:"table"`
	Set      string `toml:"set"`
	Chain    string `toml:"chain"`
	Priority int    `toml:"priority"`
}

// LoadConfig reads and validates a configuration file. Unknown keys are
// errors naming the key and its line.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	c, err := ParseConfig(data, path)
	if err != nil {
		return nil, err
	}
	if c.APIKey != "" {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o044 != 0 {
			c.warnings = append(c.warnings, keyFileWarning(path, fi.Mode().Perm()))
		}
	}
	return c, nil
}

// keyFileWarning is said at every start rather than refusing to start: an
// existing install with a loose mode keeps enforcing bans (upstream accepts
// any mode), and the administrator learns the risk and the one-line fix.
func keyFileWarning(path string, mode os.FileMode) string {
	return fmt.Sprintf("%s holds api_key and is readable by group or others (mode %04o): anyone who can read it can use "+
		"this bouncer's key against the LAPI; restrict it with: chmod 600 %s", path, uint32(mode), path)
}

// Warnings are problems found while loading that do not stop the bouncer;
// the caller logs them once logging is set up.
func (c *Config) Warnings() []string { return c.warnings }

// ParseConfig decodes, defaults and validates a configuration.
func ParseConfig(data []byte, name string) (*Config, error) {
	var c Config
	md, err := stricttoml.Decode(data, name, &c)
	if err != nil {
		return nil, err
	}
	if err := c.lapiURLs(md.IsDefined("api_urls")); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c.setDefaults()
	c.inertKeys()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &c, nil
}

func (c *Config) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	if len(c.APIURLs) == 0 {
		def(&c.APIURL, "http://127.0.0.1:8080/")
		c.APIURL = withSlash(c.APIURL)
	}
	if c.UpdateFrequency.Duration == 0 {
		c.UpdateFrequency.Duration = 10 * time.Second
	}
	if c.RequestTimeout.Duration == 0 {
		c.RequestTimeout.Duration = 30 * time.Second
	}
	if c.MetricsInterval == nil {
		c.MetricsInterval = &Duration{Duration: defaultMetricsInterval}
	}
	if c.ResyncInterval == nil {
		c.ResyncInterval = &Duration{Duration: defaultResyncInterval}
	}
	if len(c.SupportedDecisionsTypes) == 0 {
		c.SupportedDecisionsTypes = []string{"ban"}
	}
	c.DenyAction = strings.ToUpper(c.DenyAction)
	def(&c.DenyAction, "DROP")
	def(&c.DenyLogPrefix, "crowdsec drop: ")
	def(&c.BlacklistsIPv4, "crowdsec-blacklists")
	def(&c.BlacklistsIPv6, "crowdsec6-blacklists")
	if c.IpsetSize == 0 {
		c.IpsetSize = 131072
	}
	if c.IptablesChains == nil {
		c.IptablesChains = []string{"INPUT"}
	}
	if c.NftablesHooks == nil {
		c.NftablesHooks = []string{"input"}
	}
	fam := func(f *NFTFamily, table, set, chain string, disabled bool) {
		def(&f.Table, table)
		def(&f.Set, set)
		def(&f.Chain, chain)
		if f.Enabled == nil {
			v := !disabled
			f.Enabled = &v
		}
	}
	fam(&c.Nftables.IPv4, "crowdsec", "crowdsec_blocklist", "crowdsec_chain", c.DisableIPv4)
	fam(&c.Nftables.IPv6, "crowdsec6", "crowdsec6_blocklist", "crowdsec6_chain", c.DisableIPv6)
	def(&c.Prometheus.ListenAddr, "127.0.0.1")
	if c.Prometheus.ListenPort == 0 {
		c.Prometheus.ListenPort = 60601
	}
	def(&c.LogMode, "stdout")
	def(&c.LogDir, "/var/log/")
	def(&c.LogLevel, "info")
}

func (c *Config) validate() error {
	switch c.Mode {
	case "":
		return fmt.Errorf("config does not contain 'mode' (nftables, iptables or ipset)")
	case "nftables", "iptables", "ipset":
	default:
		return fmt.Errorf("firewall '%s' is not supported (use nftables, iptables or ipset)", c.Mode)
	}
	if c.APIKey == "" && c.CertPath == "" {
		return fmt.Errorf("config does not contain LAPI key or certificate")
	}
	if c.APIKey != "" && c.CertPath != "" {
		return fmt.Errorf("cannot use both API key and certificate auth")
	}
	if (c.CertPath == "") != (c.KeyPath == "") {
		return fmt.Errorf("cert_path and key_path go together")
	}
	switch c.DenyAction {
	case "DROP", "REJECT":
	case "TARPIT":
		if c.Mode != "iptables" {
			return fmt.Errorf("deny_action TARPIT needs mode iptables")
		}
	default:
		return fmt.Errorf("invalid deny_action '%s', must be one of DROP, REJECT, TARPIT", c.DenyAction)
	}
	if c.DisableIPv4 && c.DisableIPv6 {
		return fmt.Errorf("disable_ipv4 and disable_ipv6 cannot both be true")
	}
	if c.UpdateFrequency.Duration < 10*time.Millisecond {
		return fmt.Errorf("update_frequency %s is too short", c.UpdateFrequency.Duration)
	}
	if mi := c.metricsInterval(); mi < 0 {
		return fmt.Errorf("metrics_interval %s is negative (\"0s\" disables usage metrics)", mi)
	} else if mi > 0 && mi < minMetricsInterval {
		return fmt.Errorf("metrics_interval %s is too short (at least %s; \"0s\" disables usage metrics)", mi, minMetricsInterval)
	}
	if ri := c.resyncInterval(); ri < 0 {
		return fmt.Errorf("resync_interval %s is negative (\"0s\" disables full resyncs)", ri)
	} else if ri > 0 && ri < minResyncInterval {
		return fmt.Errorf("resync_interval %s is too short (at least %s; \"0s\" disables full resyncs)", ri, minResyncInterval)
	}
	for _, h := range c.NftablesHooks {
		if h != "input" && h != "forward" {
			return fmt.Errorf("nftables_hooks: %q is not supported (input, forward)", h)
		}
	}
	for _, ch := range c.IptablesChains {
		if ch == "" {
			return fmt.Errorf("iptables_chains holds an empty name")
		}
	}
	nb, err := netaddr.ParsePrefixes(c.NeverBan)
	if err != nil {
		return fmt.Errorf("never_ban: %w", err)
	}
	c.neverBan = nb
	switch c.LogMode {
	case "stdout", "file":
	default:
		return fmt.Errorf("log_mode %q must be stdout or file", c.LogMode)
	}
	return nil
}

// metricsInterval is the usage-metrics period, 0 when disabled.
func (c *Config) metricsInterval() time.Duration {
	if c.MetricsInterval == nil {
		return defaultMetricsInterval
	}
	return c.MetricsInterval.Duration
}

// Full resyncs: a full pull costs the LAPI about as much as a bouncer's
// start (seconds at 1M decisions), so not too often.
const (
	defaultResyncInterval = 10 * time.Minute
	minResyncInterval     = time.Minute
)

// resyncInterval is the full-resync period, 0 when disabled.
func (c *Config) resyncInterval() time.Duration {
	if c.ResyncInterval == nil {
		return defaultResyncInterval
	}
	return c.ResyncInterval.Duration
}

// String renders the effective configuration as TOML (-T). Like upstream
// it includes the key: packaging scripts read it back.
func (c *Config) String() string {
	var b bytes.Buffer
	_ = toml.NewEncoder(&b).Encode(c)
	return b.String()
}
