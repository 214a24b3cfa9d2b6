package bouncer

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/firewall"
	"github.com/rampart-ips/rampart/internal/nstest"
)

// newTestBouncer builds a bouncer in nftables mode against f; extra is
// more TOML configuration.
func newTestBouncer(t *testing.T, f *fakeLAPI, fw firewall.Backend, extra string) *Bouncer {
	t.Helper()
	cfg, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"key\"\napi_url = \""+f.srv.URL+"\"\nupdate_frequency = \"50ms\"\n"+extra), "t")
	if err != nil {
		t.Fatal(err)
	}
	client, err := apiclient.New(apiclient.Config{URL: cfg.APIURL, APIKey: cfg.APIKey})
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg, fw, client, nil)
}

// TestMappedPrefixesAreSkipped: a LAPI other than Rampart's may serve
// IPv4-mapped prefixes shorter than /96 (::ffff:10.99.0.1/64), which are
// neither IPv4 nor sensible IPv6. Each is skipped with a warning wherever
// it comes (startup, a delta's new, a delta's deleted); the bouncer does
// not panic and the other decisions are applied. Mapped values of /96 or
// longer are the IPv4 ones.
func TestMappedPrefixesAreSkipped(t *testing.T) {
	bad := []string{"::ffff:10.99.0.1/64", "::ffff:0.0.0.0/90", "::ffff:0:0/64"}
	badNew := func(id int) []string {
		var out []string
		for i, v := range bad {
			out = append(out, dj(v, "Range", "ban", "1h", id+i))
		}
		return out
	}
	cases := []struct {
		name           string
		startup, delta string
	}{
		{"startup",
			`{"new":[` + strings.Join(append(badNew(10), dj("198.51.100.1", "Ip", "ban", "1h", 1)), ",") + `],"deleted":[]}`,
			`{"new":[` + dj("198.51.100.2", "Ip", "ban", "1h", 2) + `],"deleted":[]}`},
		{"delta new",
			`{"new":[` + dj("198.51.100.1", "Ip", "ban", "1h", 1) + `],"deleted":[]}`,
			`{"new":[` + strings.Join(append(badNew(10), dj("198.51.100.2", "Ip", "ban", "1h", 2)), ",") + `],"deleted":[]}`},
		{"delta deleted",
			`{"new":[` + dj("198.51.100.1", "Ip", "ban", "1h", 1) + `],"deleted":[]}`,
			`{"new":[` + dj("198.51.100.2", "Ip", "ban", "1h", 2) + `],"deleted":[` + strings.Join(badNew(10), ",") + `]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fw, ns := nftInNS(t)
			// mapped values that are IPv4 prefixes are applied as such
			startup := strings.Replace(c.startup, `"new":[`, `"new":[`+dj("::ffff:198.51.100.9", "Ip", "ban", "1h", 3)+","+
				dj("::ffff:198.51.100.64/122", "Range", "ban", "1h", 4)+",", 1)
			f := newFakeLAPI(t, startup, c.delta)
			hook := logtest.NewGlobal()
			defer logrus.StandardLogger().ReplaceHooks(logrus.LevelHooks{})
			b := newTestBouncer(t, f, fw, "")
			stop := runReady(t, b)
			if !nstest.Eventually(5*time.Second, func() bool { return strings.Contains(ruleset(t, ns), "198.51.100.2") }) {
				t.Errorf("the delta's valid decision was not applied:\n%s", ruleset(t, ns))
			}
			stop()
			rs := ruleset(t, ns)
			for _, want := range []string{"198.51.100.1", "198.51.100.9", "198.51.100.64/26"} {
				if !strings.Contains(rs, want) {
					t.Errorf("%s missing from the kernel:\n%s", want, rs)
				}
			}
			for _, v := range bad {
				warned := false
				for _, e := range hook.AllEntries() {
					if e.Level == logrus.WarnLevel && e.Data["value"] == v && strings.Contains(e.Message, "invalid address") {
						warned = true
					}
				}
				if !warned {
					t.Errorf("no warning naming %s", v)
				}
			}
		})
	}
}

// TestLinkLocalNeverBanned: decisions on link-local and multicast ranges
// (fe80::/10 from `cscli decisions add -r fe80::/10` on an older LAPI) are
// refused, at startup and in deltas, so IPv6 neighbour discovery keeps
// working: between two namespaces, with empty neighbour caches, a TCP
// connection over link-local addresses (which needs neighbour
// solicitations from fe80:: sources to pass the defender's input hook)
// completes after the bouncer applied its decisions.
func TestLinkLocalNeverBanned(t *testing.T) {
	nstest.Require(t, "nft")
	p := nstest.NewPair(t, 90)
	for _, s := range [][]string{
		{"ip", "-n", p.Defender, "addr", "add", "fe80::1/64", "dev", p.DefLink, "nodad"},
		{"ip", "-n", p.Attacker, "addr", "add", "fe80::2/64", "dev", p.AttLink, "nodad"},
	} {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", s, err, out)
		}
	}
	fw := nftIn(t, p.Defender)
	protected := []string{"fe80::/10", "fe80::2", "fe80::/64", "ff02::/16", "ff02::1:ff00:1", "ff00::/8", "169.254.0.0/16", "::/0"}
	var news []string
	for i, v := range append(protected, "198.51.100.5", "2001:db8:5::5") {
		scope := "Ip"
		if strings.Contains(v, "/") {
			scope = "Range"
		}
		news = append(news, dj(v, scope, "ban", "1h", i+1))
	}
	delta := `{"new":[` + dj("fe80::/10", "Range", "ban", "1h", 50) + "," + dj("fe80::3", "Ip", "ban", "1h", 51) + "," +
		dj("198.51.100.6", "Ip", "ban", "1h", 52) + `],"deleted":[]}`
	f := newFakeLAPI(t, `{"new":[`+strings.Join(news, ",")+`],"deleted":[]}`, delta)
	b := newTestBouncer(t, f, fw, "")
	runReady(t, b)
	if !nstest.Eventually(5*time.Second, func() bool { return strings.Contains(ruleset(t, p.Defender), "198.51.100.6") }) {
		t.Fatalf("delta not applied:\n%s", ruleset(t, p.Defender))
	}
	rs := ruleset(t, p.Defender)
	for _, want := range []string{"198.51.100.5", "2001:db8:5::5"} {
		if !strings.Contains(rs, want) {
			t.Errorf("valid decision %s missing:\n%s", want, rs)
		}
	}
	for _, bad := range []string{"fe80:", "ff02:", "ff00:", "169.254.", "::/0"} {
		if strings.Contains(rs, bad) {
			t.Errorf("protected %s reached the kernel:\n%s", bad, rs)
		}
	}
	// neighbour discovery and link-local traffic still pass
	for _, ns := range []string{p.Defender, p.Attacker} {
		p.Run(t, ns, "ip", "-6", "neigh", "flush", "all")
	}
	ln := p.Listen(t, p.Defender, "[fe80::1%"+p.DefLink+"]:0")
	_, port, _ := strings.Cut(ln.Addr().String(), "]:")
	if err := p.Dial(p.Attacker, "[fe80::1%"+p.AttLink+"]:"+port, 3*time.Second); err != nil {
		t.Errorf("link-local connection failed after the bouncer applied its decisions: %v\n%s", err, ruleset(t, p.Defender))
	}
}
