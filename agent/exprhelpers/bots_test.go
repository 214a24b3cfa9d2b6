package exprhelpers

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/internal/dnstest"
)

const botsFile = `# known bots, one per line
{"name":"googlebot","user_agent":"googlebot","rdns":["(^|\\.)googlebot\\.com$","(^|\\.)google\\.com$"]}
{"name":"uptimerobot","user_agent":"uptimerobot","paths":["^/health","^/status$"],"ips":["216.144.250.150"],"ranges":["69.162.124.224/28","2607:ff68:107::/48"]}

{"name":"partner","ips":["10.1.2.3","2001:db8::42"],"ranges":["192.0.2.0/24"]}
`

// botHelpers loads bots.json (botsFile) and partner.json, resolving DNS
// through a loopback server holding recs.
func botHelpers(t *testing.T, recs dnstest.Records) (*Helpers, *dnstest.Server) {
	t.Helper()
	dir := writeData(t, map[string]string{
		"bots.json":    botsFile,
		"partner.json": `{"name":"partner2","ranges":["198.51.100.0/24"]}`,
	})
	h := New(dir)
	if err := h.Load([]DataFile{{DestFile: "bots.json", Type: "bots"}, {DestFile: "partner.json", Type: "bots"}}); err != nil {
		t.Fatal(err)
	}
	srv := dnstest.Start(t, recs, false)
	h.ext().net.resolver = dnstest.Resolver(srv.Addr)
	return h, srv
}

func TestBotsLoadErrors(t *testing.T) {
	cases := map[string]struct{ line, want string }{
		"bad JSON":        {`{"name":`, "bad bot definition"},
		"no name":         {`{"ips":["10.0.0.1"]}`, "without a name"},
		"ua only":         {`{"name":"x","user_agent":"x"}`, "no identity check"},
		"bad ua regexp":   {`{"name":"x","user_agent":"(","ips":["10.0.0.1"]}`, "invalid user_agent regexp"},
		"bad path":        {`{"name":"x","paths":["["],"ips":["10.0.0.1"]}`, "invalid path regexp"},
		"bad rdns":        {`{"name":"x","rdns":["("]}`, "invalid rdns regexp"},
		"empty rdns":      {`{"name":"x","rdns":[""]}`, "empty rdns pattern"},
		"bad range":       {`{"name":"x","ranges":["10.0.0.0/33"]}`, "invalid CIDR range"},
		"bad IP":          {`{"name":"x","ips":["10.0.0.256"]}`, "invalid IP"},
		"unknown field":   {`{"name":"x","ips":["10.0.0.1"],"ip":"10.0.0.2"}`, "unknown field"},
		"one bad of many": {`{"name":"ok","ips":["10.0.0.1"]}` + "\n" + `{"name":"ua-only","user_agent":"x"}`, "line 2"},
	}
	for name, c := range cases {
		h := New(writeData(t, map[string]string{"b.json": c.line}))
		err := h.Load([]DataFile{{DestFile: "b.json", Type: "bots"}})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "b.json") {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
		if h.MatchKnownBot("10.0.0.1", "", "/", "b.json") {
			t.Errorf("%s: a failed file matches", name)
		}
	}
	// the singular is a typo, not a type
	h := New(writeData(t, map[string]string{"b.json": `{"name":"x","ips":["10.0.0.1"]}`}))
	if err := h.Load([]DataFile{{DestFile: "b.json", Type: "bot"}}); err == nil || !strings.Contains(err.Error(), "unknown type") {
		t.Errorf("type bot: %v", err)
	}
}

func TestMatchKnownBotWithoutDNS(t *testing.T) {
	h, srv := botHelpers(t, dnstest.Records{})
	cases := []struct {
		name, ip, ua, path string
		want               bool
	}{
		{"exact IP", "10.1.2.3", "", "/", true},
		{"exact IPv6", "2001:db8::42", "", "/", true},
		{"IP and port", "10.1.2.3:54321", "", "/", true},
		{"mapped IPv4", "::ffff:10.1.2.3", "", "/", true},
		{"range", "192.0.2.77", "anything", "/any", true},
		{"outside the range", "192.0.3.77", "anything", "/any", false},
		{"ua, path and range", "69.162.124.230", "UptimeRobot/2.0", "/health/db", true},
		{"ua, path and IP", "216.144.250.150", "uptimerobot", "/status", true},
		{"v6 range with port", "[2607:ff68:107::25]:443", "UptimeRobot/2.0", "/health", true},
		{"ua case-insensitive", "69.162.124.230", "UPTIMEROBOT", "/health", true},
		{"path case-insensitive", "69.162.124.230", "uptimerobot", "/HEALTH", true},
		{"path mismatch", "69.162.124.230", "uptimerobot", "/index.html", false},
		{"ua mismatch", "69.162.124.230", "definitely-not-it", "/health", false},
		{"empty ua against a ua filter", "69.162.124.230", "", "/health", false},
		{"garbage address", "not-an-ip", "uptimerobot", "/health", false},
		{"empty address", "", "uptimerobot", "/health", false},
	}
	for _, c := range cases {
		if got := h.MatchKnownBot(c.ip, c.ua, c.path, "bots.json"); got != c.want {
			t.Errorf("%s: MatchKnownBot(%q, %q, %q) = %v", c.name, c.ip, c.ua, c.path, got)
		}
	}
	// none of these reached the googlebot entry's DNS check
	if n := srv.Queries.Load(); n != 0 {
		t.Errorf("%d DNS queries, want none", n)
	}
	// scoped to the named files; any of several may match
	if h.MatchKnownBot("198.51.100.9", "", "/", "bots.json") || !h.MatchKnownBot("198.51.100.9", "", "/", "partner.json") ||
		!h.MatchKnownBot("198.51.100.9", "", "/", "bots.json", "partner.json") {
		t.Error("file scoping")
	}
	// unknown file, no file: no match, no DNS
	if h.MatchKnownBot("10.1.2.3", "googlebot", "/", "nope.json") || h.MatchKnownBot("10.1.2.3", "", "/") {
		t.Error("unknown or no file matched")
	}
	if New(t.TempDir()).MatchKnownBot("10.1.2.3", "", "/", "bots.json") {
		t.Error("nothing loaded matched")
	}
}

func TestMatchKnownBotFCrDNS(t *testing.T) {
	ip := netip.MustParseAddr
	h, srv := botHelpers(t, dnstest.Records{
		PTR: map[string][]string{
			// mixed case and the final dot are normalised
			"1.66.249.66.in-addr.arpa.": {"Crawl-66-249-66-1.GoogleBot.com."},
			// the PTR claims google, the forward lookup says otherwise
			"5.113.0.203.in-addr.arpa.": {"crawl.googlebot.com."},
			// confirmed, but not google: the anchored pattern refuses it
			"6.113.0.203.in-addr.arpa.": {"evilgooglebot.com."},
			// confirmed through the second pattern
			"2.66.249.66.in-addr.arpa.": {"rate-limited-proxy.google.com."},
		},
		Addr: map[string][]netip.Addr{
			"crawl-66-249-66-1.googlebot.com.": {ip("66.249.66.1")},
			"crawl.googlebot.com.":             {ip("66.249.66.1")},
			"evilgooglebot.com.":               {ip("203.0.113.6")},
			"rate-limited-proxy.google.com.":   {ip("66.249.66.2")},
		},
	})
	cases := []struct {
		name, ip string
		want     bool
	}{
		{"confirmed", "66.249.66.1", true},
		{"spoofed PTR", "203.0.113.5", false},
		{"lookalike domain", "203.0.113.6", false},
		{"no PTR", "203.0.113.7", false},
		{"second pattern", "66.249.66.2", true},
	}
	for _, c := range cases {
		if got := h.MatchKnownBot(c.ip, "Mozilla/5.0 (compatible; Googlebot/2.1)", "/", "bots.json"); got != c.want {
			t.Errorf("%s: MatchKnownBot(%s) = %v", c.name, c.ip, got)
		}
	}
	// answers, negative ones included, are cached per address
	before := srv.Queries.Load()
	for _, c := range cases {
		h.MatchKnownBot(c.ip, "googlebot", "/other", "bots.json")
	}
	if n := srv.Queries.Load(); n != before {
		t.Errorf("%d more DNS queries on a second round, want 0 (cached)", n-before)
	}
	// the ua precondition comes before any DNS
	if h.MatchKnownBot("66.249.66.9", "curl/8", "/", "bots.json") || srv.Queries.Load() != before {
		t.Error("DNS asked for a request whose user agent rules the bot out")
	}
}

func TestMatchKnownBotExpr(t *testing.T) {
	h, _ := botHelpers(t, dnstest.Records{})
	env := map[string]any{"ip": "69.162.124.230", "ua": "UptimeRobot/2.0", "path": "/health"}
	if got := runExpr(t, h, `MatchKnownBot(ip, ua, path, "bots.json")`, env); got != true {
		t.Errorf("one file: %v", got)
	}
	if got := runExpr(t, h, `MatchKnownBot(ip, ua, path, "partner.json", "bots.json")`, env); got != true {
		t.Errorf("two files: %v", got)
	}
	if got := runExpr(t, h, `MatchKnownBot(ip, ua, path)`, env); got != false {
		t.Errorf("no file: %v", got)
	}
}
