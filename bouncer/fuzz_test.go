package bouncer

import (
	"encoding/json"
	"io"
	"net/netip"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/models"
)

// FuzzStream feeds a stream answer, as any LAPI may send it, through what
// the bouncer does with it: validation, then the in-memory state that
// drives the firewall. Nothing may panic; an accepted prefix is valid.
func FuzzStream(f *testing.F) {
	for _, s := range []string{
		`{"new":[{"id":1,"value":"192.0.2.1","scope":"Ip","type":"ban","duration":"4h","origin":"crowdsec"}],"deleted":null}`,
		`{"new":[{"id":2,"value":"2001:db8::/64","scope":"Range","type":"ban","duration":"1m"}],"deleted":[{"id":2,"value":"2001:db8::/64","scope":"Range","type":"ban","duration":"-1s"}]}`,
		`{"new":[{"id":3,"value":"::ffff:10.99.0.1/64","scope":"Range","type":"ban","duration":"4h"}]}`,
		`{"new":[{"id":4,"value":"::ffff:0.0.0.0/90","scope":"range","type":"ban","duration":"4h"}]}`,
		`{"new":[{"id":5,"value":"fe80::/10","scope":"Range","type":"ban","duration":"4h"}]}`,
		`{"new":[{"id":6,"value":"0.0.0.0/0","scope":"Range","type":"ban","duration":"2562047h"}]}`,
		`{"new":[{"id":7,"value":"fe80::1%eth0","scope":"Ip","type":"ban","duration":"1h"}]}`,
		`{"new":[{"id":8,"value":"198.51.100.1","scope":"Ip","type":"","duration":"1h"}]}`,
	} {
		f.Add([]byte(s))
	}
	cfg, err := ParseConfig([]byte("mode = \"nftables\"\napi_key = \"k\"\napi_url = \"http://127.0.0.1:8080/\"\n"), "fuzz.toml")
	if err != nil {
		f.Fatal(err)
	}
	quiet := log.New()
	quiet.Out = io.Discard
	// Never banned whatever the LAPI says: loopback and link-local.
	never := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fe80::/10")}
	f.Fuzz(func(t *testing.T, body []byte) {
		var s models.StreamResponse
		if json.Unmarshal(body, &s) != nil {
			return
		}
		b := New(cfg, nil, nil, NewMetrics(nil))
		b.log = log.NewEntry(quiet)
		now := time.Unix(1_700_000_000, 0)
		for _, d := range s.New {
			if d == nil {
				continue
			}
			p, until, ok := b.accept(d, now)
			if !ok {
				continue
			}
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("accepted %q as %v", d.Value, p)
			}
			for _, q := range never {
				if q.Overlaps(p) {
					t.Fatalf("accepted %q (%v) which covers %v", d.Value, p, q)
				}
			}
			b.st.add(p, d.ID, until)
		}
		for _, d := range s.Deleted {
			if d == nil {
				continue
			}
			if p, _, ok := b.accept(d, now); ok {
				b.st.remove(p, d.ID, now.Unix())
			}
		}
	})
}

// FuzzConfig: any bytes as the bouncer's TOML give a config or an error.
func FuzzConfig(f *testing.F) {
	for _, s := range []string{
		"mode = \"nftables\"\napi_url = \"http://127.0.0.1:8080/\"\napi_key = \"k\"\nupdate_frequency = \"10s\"\n",
		"mode = \"iptables\"\napi_key = \"k\"\nnever_ban = [\"::ffff:0:0/64\", \"10.0.0.0/8\"]\n",
		"api_key = \"k\"\n[nftables.ipv4]\nenabled = true\ntable = \"crowdsec\"\n",
		"api_key = 1\n",
		"[[[",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data, "fuzz.toml")
		if err != nil {
			return
		}
		for _, p := range c.neverBan {
			if !p.IsValid() {
				t.Fatalf("never_ban holds an invalid prefix from %q", data)
			}
		}
		_ = c.String()
	})
}
