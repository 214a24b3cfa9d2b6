package bouncer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigErrors(t *testing.T) {
	base := "api_key = \"k\"\n"
	for _, c := range []struct {
		name, toml, want string
	}{
		{"missing mode", base, "does not contain 'mode'"},
		{"unknown mode", base + "mode = \"pf\"\n", "firewall 'pf' is not supported"},
		{"no key", "mode = \"nftables\"\n", "LAPI key or certificate"},
		{"key and cert", base + "mode = \"nftables\"\ncert_path = \"a\"\nkey_path = \"b\"\n", "both API key and certificate"},
		{"bad deny", base + "mode = \"nftables\"\ndeny_action = \"boom\"\n", "invalid deny_action 'BOOM'"},
		{"tarpit nft", base + "mode = \"nftables\"\ndeny_action = \"tarpit\"\n", "TARPIT needs mode iptables"},
		{"both families off", base + "mode = \"nftables\"\ndisable_ipv4 = true\ndisable_ipv6 = true\n", "cannot both be true"},
		{"unknown key", base + "mode = \"nftables\"\n\nupdate_frequncy = \"1s\"\n", "test.toml:4: update_frequncy: unknown key"},
		{"unknown nested key", base + "mode = \"nftables\"\n[nftables.ipv4]\ntable = \"t\"\nchian = \"c\"\n", "test.toml:5: nftables.ipv4.chian: unknown key"},
		{"bad never_ban", base + "mode = \"nftables\"\nnever_ban = [\"10.0.0.0/33\"]\n", "never_ban"},
		// was silently ignored: a mapped prefix under /96 straddles IPv4 and IPv6
		{"mapped never_ban", base + "mode = \"nftables\"\nnever_ban = [\"192.0.2.1\", \"::ffff:0:0/64\"]\n",
			`never_ban: entry 2: "::ffff:0:0/64": an IPv4-mapped prefix must be /96 or longer`},
		{"broken toml", base + "mode = \n", "test.toml:2: mode: expected value"},
		{"negative metrics_interval", base + "mode = \"nftables\"\nmetrics_interval = \"-1m\"\n", `metrics_interval -1m0s is negative ("0s" disables usage metrics)`},
		{"short metrics_interval", base + "mode = \"nftables\"\nmetrics_interval = \"30s\"\n", "metrics_interval 30s is too short (at least 1m0s"},
		{"bad metrics_interval", base + "mode = \"nftables\"\nmetrics_interval = \"often\"\n", "often"},
		{"negative resync_interval", base + "mode = \"nftables\"\nresync_interval = \"-1m\"\n", `resync_interval -1m0s is negative ("0s" disables full resyncs)`},
		{"short resync_interval", base + "mode = \"nftables\"\nresync_interval = \"10s\"\n", "resync_interval 10s is too short (at least 1m0s"},
		{"empty api_urls", base + "mode = \"nftables\"\napi_urls = []\n", "test.toml: api_urls is empty: list at least one LAPI URL"},
		{"bad api_urls", base + "mode = \"nftables\"\napi_urls = [\"https://a:8080/\", \"b:8080\"]\n", `api_urls: entry 2: LAPI URL "b:8080": scheme must be http or https`},
		{"hostless api_urls", base + "mode = \"nftables\"\napi_urls = [\"https://\"]\n", `api_urls: entry 1: LAPI URL "https://" has no host`},
		{"api_urls twice", base + "mode = \"nftables\"\napi_urls = [\"https://a:8080\", \"https://a:8080/\"]\n", `api_urls: entry 2: "https://a:8080/" is listed twice`},
		{"api_url and api_urls", base + "mode = \"nftables\"\napi_url = \"https://a:8080/\"\napi_urls = [\"https://b:8080/\"]\n", "api_url and api_urls are both set"},
		{"api_urls not a list", base + "mode = \"nftables\"\napi_urls = \"https://a:8080/\"\n", "api_urls"},
		{"bad api_url", base + "mode = \"nftables\"\napi_url = \"ftp://a/\"\n", `api_url: LAPI URL "ftp://a/": scheme must be http or https`},
	} {
		_, err := ParseConfig([]byte(c.toml), "test.toml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

// TestAPIURLs: api_urls is read in order, each URL given its slash; -T
// prints a configuration that loads again; api_url alone still works.
func TestAPIURLs(t *testing.T) {
	c, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"k\"\napi_urls = [\"https://b:8080\", \"https://a:8080/lapi\"]\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.LAPIURLs(), " "); got != "https://b:8080/ https://a:8080/lapi/" {
		t.Errorf("LAPIURLs() = %q", got)
	}
	again, err := ParseConfig([]byte(c.String()), "-T")
	if err != nil {
		t.Fatalf("-T output does not load: %v\n%s", err, c.String())
	}
	if fmt.Sprint(again.LAPIURLs()) != fmt.Sprint(c.LAPIURLs()) {
		t.Errorf("-T round trip: %v, want %v", again.LAPIURLs(), c.LAPIURLs())
	}
	one, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"k\"\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(one.LAPIURLs()) != "[http://127.0.0.1:8080/]" {
		t.Errorf("default LAPIURLs() = %v", one.LAPIURLs())
	}
}

// TestNeverBanMapped: mapped entries of /96 or longer are IPv4 prefixes.
func TestNeverBanMapped(t *testing.T) {
	c, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"k\"\nnever_ban = [\"::ffff:192.0.2.0/120\", \" ::ffff:198.51.100.7 \"]\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c.neverBan) != "[192.0.2.0/24 198.51.100.7/32]" {
		t.Errorf("never_ban read as %v", c.neverBan)
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"k\"\napi_url = \"http://127.0.0.1:8080\"\ndeny_action = \"reject\"\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	if c.APIURL != "http://127.0.0.1:8080/" || c.DenyAction != "REJECT" || c.Nftables.IPv4.Table != "crowdsec" ||
		c.Nftables.IPv6.Set != "crowdsec6_blocklist" || c.Nftables.IPv4.Chain != "crowdsec_chain" || !*c.Nftables.IPv4.Enabled ||
		c.SupportedDecisionsTypes[0] != "ban" || c.UpdateFrequency.Duration.Seconds() != 10 {
		t.Errorf("defaults: %+v", c)
	}
	if !strings.Contains(c.String(), `mode = "nftables"`) {
		t.Errorf("-T output lacks the mode:\n%s", c.String())
	}
	if c.metricsInterval() != 15*time.Minute || !strings.Contains(c.String(), `metrics_interval = "15m0s"`) {
		t.Errorf("metrics_interval default %s, -T:\n%s", c.metricsInterval(), c.String())
	}
	if c.resyncInterval() != 10*time.Minute || !strings.Contains(c.String(), `resync_interval = "10m0s"`) {
		t.Errorf("resync_interval default %s, -T:\n%s", c.resyncInterval(), c.String())
	}
	for in, want := range map[string]time.Duration{"0s": 0, "1m": time.Minute, "1h": time.Hour} {
		c, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"k\"\nresync_interval = \""+in+"\"\n"), "t")
		if err != nil || c.resyncInterval() != want {
			t.Errorf("resync_interval %q = %v (%v), want %s", in, c, err, want)
		}
	}
}

// TestMetricsIntervalKey: "0s" turns the pusher off, a valid value is kept.
func TestMetricsIntervalKey(t *testing.T) {
	for in, want := range map[string]time.Duration{"0s": 0, "1m": time.Minute, "1h": time.Hour, "1d": 24 * time.Hour} {
		c, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"k\"\nmetrics_interval = \""+in+"\"\n"), "t")
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if c.metricsInterval() != want {
			t.Errorf("metrics_interval %q = %s, want %s", in, c.metricsInterval(), want)
		}
		if b := New(c, nil, nil, nil); (b.usage != nil) != (want > 0) {
			t.Errorf("metrics_interval %q: pusher present = %v", in, b.usage != nil)
		}
	}
}

// TestShippedConfig parses the file packages install, with a key filled in.
func TestShippedConfig(t *testing.T) {
	data, err := os.ReadFile("../config/crowdsec-firewall-bouncer.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig(data, "shipped"); err == nil || !strings.Contains(err.Error(), "LAPI key") {
		t.Errorf("shipped file without a key: %v", err)
	}
	data = []byte(strings.Replace(string(data), `api_key = ""`, `api_key = "abc"`, 1))
	c, err := ParseConfig(data, "shipped")
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != "nftables" || c.Nftables.IPv4.Set != "crowdsec_blocklist" || c.UpdateFrequency.Duration.Seconds() != 10 ||
		c.metricsInterval() != 15*time.Minute || c.resyncInterval() != 10*time.Minute {
		t.Errorf("shipped config: %+v", c)
	}
}

// TestKeyFileModeWarning: a configuration holding api_key that group or
// others can read loads (existing installs keep enforcing) but carries a
// warning naming the file and the fix; a private file, or one without a
// key (certificate auth), carries none.
func TestKeyFileModeWarning(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
		return p
	}
	key := "mode = \"nftables\"\napi_key = \"secret\"\n"
	cert := "mode = \"nftables\"\ncert_path = \"/c.pem\"\nkey_path = \"/k.pem\"\n"
	for _, c := range []struct {
		name, body string
		mode       os.FileMode
		warn       bool
	}{
		{"world-readable.toml", key, 0o644, true},
		{"group-readable.toml", key, 0o640, true},
		{"private.toml", key, 0o600, false},
		{"owner-only-read.toml", key, 0o400, false},
		{"cert.toml", cert, 0o644, false},
	} {
		p := write(c.name, c.body, c.mode)
		cfg, err := LoadConfig(p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		w := cfg.Warnings()
		if !c.warn {
			if len(w) != 0 {
				t.Errorf("%s: unexpected warnings %q", c.name, w)
			}
			continue
		}
		if len(w) != 1 || !strings.Contains(w[0], p+" holds api_key") || !strings.Contains(w[0], "chmod 600 "+p) ||
			!strings.Contains(w[0], fmt.Sprintf("%04o", c.mode)) {
			t.Errorf("%s: warnings %q, want one naming the file, its mode and chmod 600", c.name, w)
		}
		if strings.Contains(w[0], "secret") {
			t.Errorf("%s: the warning leaks the key: %q", c.name, w[0])
		}
	}
}

// upstreamConfig is upstream's shipped crowdsec-firewall-bouncer.yaml, key
// for key, in TOML form.
const upstreamConfig = `mode = "nftables"
update_frequency = "10s"
log_mode = "file"
log_dir = "/var/log/"
log_level = "info"
log_compression = true
log_max_size = 100
log_max_backups = 3
log_max_age = 30
api_url = "http://127.0.0.1:8080/"
api_key = "k"
insecure_skip_verify = false
disable_ipv6 = false
deny_action = "DROP"
deny_log = false
supported_decisions_types = ["ban"]
deny_log_prefix = "crowdsec: "
blacklists_ipv4 = "crowdsec-blacklists"
blacklists_ipv6 = "crowdsec6-blacklists"
ipset_type = "nethash"
iptables_chains = ["INPUT"]
iptables_add_rule_comments = true
retry_initial_connect = false
scopes = ["ip", "range"]
origins = ["crowdsec", "cscli"]
nftables_hooks = ["input", "forward"]
[nftables.ipv4]
enabled = true
set-only = false
table = "crowdsec"
chain = "crowdsec-chain"
priority = -10
[nftables.ipv6]
enabled = true
set-only = false
table = "crowdsec6"
chain = "crowdsec6-chain"
priority = -10
[pf]
anchor_name = ""
[prometheus]
enabled = false
listen_addr = "127.0.0.1"
listen_port = 60601
`

// TestUpstreamConfigCarriesOver: upstream's configuration loads with its
// meaning (retry_initial_connect = false is honoured); keys that mean
// nothing here give one warning each, naming the key; a typo is still an
// error.
func TestUpstreamConfigCarriesOver(t *testing.T) {
	c, err := ParseConfig([]byte(upstreamConfig), "upstream.toml")
	if err != nil {
		t.Fatalf("upstream's configuration refused: %v", err)
	}
	if c.retryInitialConnect() || c.DenyLogPrefix != "crowdsec: " || c.Nftables.IPv4.Chain != "crowdsec-chain" ||
		c.Nftables.IPv4.Priority != -10 || strings.Join(c.NftablesHooks, ",") != "input,forward" || c.LogMode != "file" {
		t.Errorf("upstream's values not kept: %+v", c)
	}
	w := strings.Join(c.Warnings(), "\n")
	for _, key := range []string{"log_compression", "log_max_size", "log_max_backups", "log_max_age", "iptables_add_rule_comments", "pf"} {
		if !strings.Contains(w, key+" is upstream's and has no effect here") {
			t.Errorf("no warning for %s in:\n%s", key, w)
		}
	}
	if strings.Contains(w, "ipset_type") || strings.Contains(w, "retry_initial_connect") {
		t.Errorf("warnings for keys that apply:\n%s", w)
	}
	if len(c.Warnings()) != 6 {
		t.Errorf("%d warnings, want 6:\n%s", len(c.Warnings()), w)
	}

	// Unset, the first sync is retried; ipset_type other than hash:net is
	// said to be ignored.
	c, err = ParseConfig([]byte("mode = \"ipset\"\napi_key = \"k\"\nipset_type = \"iphash\"\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	if !c.retryInitialConnect() || len(c.Warnings()) != 1 || !strings.Contains(c.Warnings()[0], `ipset_type "iphash"`) {
		t.Errorf("retry %v, warnings %q", c.retryInitialConnect(), c.Warnings())
	}
	if _, err := ParseConfig([]byte("retry_inital_connect = true\n"+upstreamConfig), "upstream.toml"); err == nil ||
		!strings.Contains(err.Error(), "retry_inital_connect: unknown key") {
		t.Errorf("a typo: %v", err)
	}
}
