package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rampart-ips/rampart/internal/nstest"
)

// TestFleet is issue 15's proof, on real processes in network namespaces
// joined by one bridge: three hosts, each running an agent (no local API)
// and the nftables bouncer, with LAPI-only hosts on one database server of
// the test's own. An ssh brute force seen on one host is dropped on the
// others. On PostgreSQL with two LAPIs: LAPI 1 is killed and agents and
// bouncers fail over to LAPI 2 with no alert or decision lost. Then the
// database server restarts: the bouncers keep enforcing throughout, and
// the LAPIs reconnect and serve a new attack to every host. The same on
// MariaDB with one LAPI.
func TestFleet(t *testing.T) {
	nstest.Require(t, "nft")
	t.Run("postgresql", func(t *testing.T) { fleetStory(t, newPostgres(t), 2) })
	t.Run("mariadb", func(t *testing.T) { fleetStory(t, newMariaDB(t), 1) })
}

type fleet struct {
	t         *testing.T
	db        *dbServer
	lan       *nstest.LAN
	lapis     []*host
	lapiCmd   []*exec.Cmd
	lapiAddrs []string
	hosts     map[string]*host // "a", "b", "c"
	port      int              // the service each host runs, that a ban closes
	attacked  []netip.Addr     // the sources of the attacks so far
}

func fleetStory(t *testing.T, db *dbServer, nLAPI int) {
	members := []string{"a", "b", "c", "attacker"}
	for i := range nLAPI {
		members = append(members, fmt.Sprintf("lapi%d", i+1))
	}
	lan := nstest.NewLAN(t, netip.MustParsePrefix("198.51.100.0/24"), members...)
	// Public-looking sources: the agents' whitelist skips private ranges.
	// The attacker's first address never attacks: it must keep getting
	// through.
	var att []netip.Addr
	for i := range 4 {
		att = append(att, netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", 101+i)))
	}
	for _, a := range att {
		lan.AddAddr(t, "attacker", a, 24)
	}
	f := &fleet{t: t, db: db, lan: lan, hosts: map[string]*host{}, port: 8000}
	dir := t.TempDir()
	rules, err := filepath.Abs("../rules")
	must(t, err)
	prof, err := os.ReadFile("../config/profiles.toml")
	must(t, err)

	// The LAPIs: LAPI only, on the shared database.
	var urls []string
	for i := range nLAPI {
		name := fmt.Sprintf("lapi%d", i+1)
		h := &host{t: t, ns: &lan.Pair, net: lan.NS[name], dir: filepath.Join(dir, name)}
		must(t, os.MkdirAll(filepath.Join(h.dir, "data"), 0o755))
		must(t, os.WriteFile(filepath.Join(h.dir, "profiles.toml"), prof, 0o600))
		addr := net.JoinHostPort(lan.Addr[name].String(), "8080")
		h.cfg = filepath.Join(h.dir, "config.toml")
		must(t, os.WriteFile(h.cfg, fmt.Appendf(nil, `[config_paths]
config_dir = %q
data_dir = %q
hub_dir = %q
[crowdsec_service]
enable = false
%s[api.server]
listen_uri = %q
profiles_path = %q
# Short long polls: during the database outage every bouncer polls, and fails.
long_poll_max = "1s"
[prometheus]
enabled = false
`, h.dir, filepath.Join(h.dir, "data"), rules, db.dbConfig(), addr, filepath.Join(h.dir, "profiles.toml")), 0o600))
		f.lapis = append(f.lapis, h)
		f.lapiAddrs = append(f.lapiAddrs, addr)
		f.lapiCmd = append(f.lapiCmd, f.startLAPI(i, "crowdsec"))
		urls = append(urls, "http://"+addr+"/")
	}
	lapi1 := f.lapis[0]

	// The hosts: machines and bouncer keys made with cscli on a LAPI host
	// (it opens the database), credentials listing every LAPI. Host B
	// prefers LAPI 2: what host A's agent reports through LAPI 1 reaches
	// B's bouncer through LAPI 2 (the database's change notifications).
	for _, name := range []string{"a", "b", "c"} {
		urls := urls
		if name == "b" {
			urls = slices.Concat(urls[1:], urls[:1])
		}
		h := &host{t: t, ns: &lan.Pair, net: lan.NS[name], dir: filepath.Join(dir, name)}
		f.hosts[name] = h
		must(t, os.MkdirAll(filepath.Join(h.dir, "acquis.d"), 0o755))
		lapi1.mustCscli("machines", "add", "host-"+name, "--password", "pw-of-"+name, "-f", "-")
		key := strings.TrimSpace(lapi1.mustCscli("--error", "bouncers", "add", "fw-"+name, "-o", "raw"))
		creds := filepath.Join(h.dir, "local_api_credentials.toml")
		must(t, os.WriteFile(creds, fmt.Appendf(nil, "urls = %s\nlogin = %q\npassword = %q\n", tomlList(urls), "host-"+name, "pw-of-"+name), 0o600))
		h.cfg = filepath.Join(h.dir, "config.toml")
		authLog := filepath.Join(h.dir, "auth.log")
		must(t, os.WriteFile(h.cfg, fmt.Appendf(nil, `[config_paths]
config_dir = %q
data_dir = %q
hub_dir = %q
[crowdsec_service]
acquisition_dir = %q
[api.client]
credentials_path = %q
[api.server]
enable = false
[prometheus]
enabled = true
listen_addr = "127.0.0.1"
listen_port = 6060
`, h.dir, filepath.Join(h.dir, "data"), rules, filepath.Join(h.dir, "acquis.d"), creds), 0o600))
		must(t, os.WriteFile(filepath.Join(h.dir, "acquis.d", "auth.toml"),
			fmt.Appendf(nil, "[[source]]\nsource = \"file\"\nfilenames = [%q]\nlabels = { type = \"syslog\" }\nidle_warning = \"0\"\n", authLog), 0o600))
		must(t, os.WriteFile(authLog, nil, 0o600))
		must(t, os.WriteFile(filepath.Join(h.dir, "bouncer.toml"), fmt.Appendf(nil,
			"mode = \"nftables\"\napi_urls = %s\napi_key = %q\nupdate_frequency = \"1s\"\nrequest_timeout = \"3s\"\nlog_level = \"debug\"\n",
			tomlList(urls), key), 0o600))
		lan.Listen(t, h.net, fmt.Sprintf(":%d", f.port))
		h.start("crowdsec", filepath.Join(binDir, "crowdsec"), "-c", h.cfg)
		h.start("bouncer", filepath.Join(binDir, "crowdsec-firewall-bouncer"), "-c", filepath.Join(h.dir, "bouncer.toml"))
	}
	for name, h := range f.hosts {
		if !nstest.Eventually(30*time.Second, func() bool {
			return strings.Contains(h.readLog("crowdsec"), "tailing file") && strings.Contains(h.readLog("bouncer"), "first sync in the kernel")
		}) {
			t.Fatalf("host %s did not start:\nagent:\n%s\nbouncer:\n%s", name, h.readLog("crowdsec"), h.readLog("bouncer"))
		}
		if f.blocked(name, lan.Addr["attacker"]) {
			t.Fatalf("host %s drops the attacker before any attack", name)
		}
	}

	// 1. A brute force seen on host A is dropped on B and C (and A).
	f.attack("a", att[0])
	f.waitDropped(att[0], "a", "b", "c")
	f.alertOnce(att[0])

	if nLAPI > 1 {
		// 2. LAPI 1 dies: agents and bouncers move to LAPI 2. A new
		// attack, on host C, reaches A and B, its alert stored once.
		must(t, f.lapiCmd[0].Process.Kill())
		_ = f.lapiCmd[0].Wait()
		f.attack("c", att[1])
		f.waitDropped(att[1], "a", "b", "c")
		f.alertOnce(att[1])
		f.stillDropped(f.attacked...)
		// The bouncers of A and C were long-polling LAPI 1.
		for _, name := range []string{"a", "c"} {
			h := f.hosts[name]
			if !nstest.Eventually(10*time.Second, func() bool { return strings.Contains(h.readLog("bouncer"), "moving to the next one") }) {
				t.Errorf("bouncer of host %s did not log its failover:\n%s", name, h.readLog("bouncer"))
			}
		}
		if n := f.scrape("c").sum("rampart_lapi_failovers_total", nil); n < 1 {
			t.Errorf("agent of host C counts %v failovers, want at least 1", n)
		}
		// LAPI 1 comes back for the rest of the story.
		f.lapiCmd[0] = f.startLAPI(0, "crowdsec-restarted")
	}
	f.noAlertLost()

	// 3. The database server restarts. While it is down every bouncer's
	// pull fails and its firewall keeps enforcing; an attack on host B
	// meanwhile stays queued by its agent. After, the LAPIs reconnect
	// (their change listeners too): that alert arrives once, and a new
	// attack reaches every host, whichever LAPI it polls now.
	const failed = "pulling decisions failed; the firewall keeps its current state"
	before := map[string]int{}
	for name, h := range f.hosts {
		before[name] = strings.Count(h.readLog("bouncer"), failed)
	}
	db.stop()
	f.attack("b", att[2])
	for name, h := range f.hosts {
		if !nstest.Eventually(20*time.Second, func() bool {
			f.stillDropped(f.attacked[:len(f.attacked)-1]...)
			return strings.Count(h.readLog("bouncer"), failed) > before[name]
		}) {
			t.Errorf("bouncer of host %s saw no failure while the database was down:\n%s", name, h.readLog("bouncer"))
		}
	}
	if !nstest.Eventually(10*time.Second, func() bool { return f.scrape("b").sum("rampart_delivery_queue_alerts", nil) == 1 }) {
		t.Errorf("agent of host B does not hold its alert queued during the outage:\n%s", f.hosts["b"].readLog("crowdsec"))
	}
	db.start()
	if db.kind == "postgresql" {
		// Every LAPI listens for the others' changes again.
		if !nstest.Eventually(20*time.Second, func() bool {
			return db.count(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rampart-lapi-listener'`) == nLAPI
		}) {
			t.Errorf("not every LAPI's change listener reconnected")
		}
	}
	f.waitDropped(att[2], "a", "b", "c")
	f.alertOnce(att[2])
	f.attack("a", att[3])
	f.waitDropped(att[3], "a", "b", "c")
	f.alertOnce(att[3])
	f.stillDropped(f.attacked...)
	f.noAlertLost()
	for name, h := range f.hosts {
		// The outage is the database's and the LAPIs say so (503): no
		// bouncer's key was refused, no alert blamed.
		if bl := h.readLog("bouncer"); strings.Contains(bl, "access forbidden") || !strings.Contains(bl, "HTTP 503: database unavailable") {
			t.Errorf("bouncer of host %s was not told the database is unavailable:\n%s", name, bl)
		}
		if strings.Contains(h.readLog("crowdsec"), "LAPI keeps failing on this alert") {
			t.Errorf("agent of host %s blamed its alert for the database outage:\n%s", name, h.readLog("crowdsec"))
		}
		// Failovers and the outage carried on from the bouncer's cursor:
		// no full stream pulled again (logged at debug level).
		if n := strings.Count(h.readLog("bouncer"), "pulling the full state"); n != 0 {
			t.Errorf("bouncer of host %s pulled the full state %d times", name, n)
		}
	}
	var logs []*host
	for _, h := range f.hosts {
		logs = append(logs, h)
	}
	for _, h := range append(logs, f.lapis...) {
		for _, name := range []string{"crowdsec", "crowdsec-restarted", "bouncer"} {
			if l := h.readLog(name); strings.Contains(l, "panic") {
				t.Errorf("%s log of %s shows a panic:\n%s", name, filepath.Base(h.dir), l)
			}
		}
	}
}

// startLAPI starts LAPI i (from 0), logging to name, and waits until it
// listens.
func (f *fleet) startLAPI(i int, name string) *exec.Cmd {
	f.t.Helper()
	h := f.lapis[i]
	cmd := h.start(name, filepath.Join(binDir, "crowdsec"), "-c", h.cfg)
	if !nstest.Eventually(30*time.Second, func() bool { return f.lan.Dial(h.net, f.lapiAddrs[i], 200*time.Millisecond) == nil }) {
		f.t.Fatalf("LAPI %d did not start:\n%s", i+1, h.readLog(name))
	}
	return cmd
}

func tomlList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// attack appends an ssh brute force from src to the host's auth log.
func (f *fleet) attack(name string, src netip.Addr) {
	f.t.Helper()
	f.attacked = append(f.attacked, src)
	h := f.hosts[name]
	lf, err := os.OpenFile(filepath.Join(h.dir, "auth.log"), os.O_APPEND|os.O_WRONLY, 0)
	must(f.t, err)
	for i := range 8 {
		_, err := fmt.Fprintf(lf, "%s host-%s sshd[%d]: Failed password for root from %s port %d ssh2\n", time.Now().Format(time.Stamp), name, 4000+i, src, 50000+i)
		must(f.t, err)
	}
	must(f.t, lf.Close())
}

// blocked says whether a connection from src to the host's service times
// out (the firewall drops it); a completed handshake is false, and any
// other failure fails the test.
func (f *fleet) blocked(name string, src netip.Addr) bool {
	f.t.Helper()
	c, err := f.lan.DialFrom(f.lan.NS["attacker"], src, net.JoinHostPort(f.lan.Addr[name].String(), fmt.Sprint(f.port)), 300*time.Millisecond)
	if err == nil {
		c.Close()
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	f.t.Fatalf("connecting from %s to host %s: %v", src, name, err)
	return false
}

// waitDropped waits until every host drops src and its nftables set
// holds it; the attacker's clean address still gets through.
func (f *fleet) waitDropped(src netip.Addr, names ...string) {
	f.t.Helper()
	for _, name := range names {
		h := f.hosts[name]
		// The set is read first: on a starved machine a connect can time
		// out without any drop (CI failed once that way, the element
		// arriving moments later), so a timeout alone proves nothing.
		var out []byte
		var err error
		inSet := func() bool {
			out, err = f.lan.Command(context.Background(), h.net, "nft", "list", "set", "ip", "crowdsec", "crowdsec_blocklist").CombinedOutput()
			return err == nil && strings.Contains(string(out), src.String()+" timeout")
		}
		if !nstest.Eventually(30*time.Second, func() bool { return inSet() && f.blocked(name, src) }) {
			f.t.Fatalf("host %s does not drop %s (nft: %v)\n%s\nagent:\n%s\nbouncer:\n%s", name, src, err, out, h.readLog("crowdsec"), h.readLog("bouncer"))
		}
		// Likewise a clean address is dropped only if it times out again.
		if f.blocked(name, f.lan.Addr["attacker"]) && f.blocked(name, f.lan.Addr["attacker"]) {
			f.t.Errorf("host %s drops the attacker's address that never attacked", name)
		}
	}
}

// stillDropped checks that every host drops every src now.
func (f *fleet) stillDropped(srcs ...netip.Addr) {
	f.t.Helper()
	for _, src := range srcs {
		for name := range f.hosts {
			if !f.blocked(name, src) {
				f.t.Fatalf("host %s lets %s through again\nbouncer:\n%s", name, src, f.hosts[name].readLog("bouncer"))
			}
		}
	}
}

// alertOnce checks that src's brute force is in the database exactly
// once, with one active ban.
func (f *fleet) alertOnce(src netip.Addr) {
	f.t.Helper()
	if n := f.db.count(`SELECT count(*) FROM alerts WHERE source_value = ? AND scenario = 'rampart/ssh-bf'`, src.String()); n != 1 {
		f.t.Errorf("%d ssh-bf alerts from %s in the database, want 1", n, src)
	}
	if n := f.db.count(`SELECT count(*) FROM decisions WHERE value = ? AND type = 'ban'`, src.String()); n != 1 {
		f.t.Errorf("%d bans of %s in the database, want 1", n, src)
	}
}

// noAlertLost: every alert an agent counts as delivered (acknowledged by
// a LAPI) is in the database, and nothing else is.
func (f *fleet) noAlertLost() {
	f.t.Helper()
	for name := range f.hosts {
		delivered := int(f.scrape(name).sum("rampart_delivery_alerts_total", map[string]string{"result": "delivered"}))
		if n := f.db.count(`SELECT count(*) FROM alerts WHERE machine_id = ?`, "host-"+name); n != delivered {
			f.t.Errorf("host %s: the agent delivered %d alerts, the database holds %d of its machine", name, delivered, n)
		}
	}
}

// scrape reads the Prometheus metrics of the host's agent.
func (f *fleet) scrape(name string) promSamples {
	f.t.Helper()
	ns := f.hosts[name].net
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, _, addr string) (net.Conn, error) {
			return f.lan.DialConn(ns, addr, 2*time.Second)
		},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://127.0.0.1:6060/metrics")
	must(f.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(f.t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	must(f.t, err)
	return fams
}
