package lapi

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
)

// TestForwardedForOnlyFromProxies runs the LAPI in a namespace and calls it
// from another over a veth pair, so the caller is a real private-network
// address: its IPv6 address is the configured proxy, its IPv4 one is not.
// A forged X-Forwarded-For from the IPv4 address must change nothing.
func TestForwardedForOnlyFromProxies(t *testing.T) {
	ns := nstest.NewPair(t, 97)
	ln := ns.ListenRaw(t, ns.Defender, ":0")
	port := ln.Addr().(*net.TCPAddr).Port
	l := startLAPIOn(t, filepath.Join(t.TempDir(), "crowdsec.db"), ln, func(c *csconfig.Config) {
		c.API.Server.UseForwardedForHeaders = true
		c.API.Server.TrustedProxies = []string{ns.AttIP6.String()}
		c.API.Server.DisableRemoteLAPIRegistration = true
	})
	from := func(src, dst netip.Addr) *testLAPI {
		tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return ns.DialFrom(ns.Attacker, src, addr, 5*time.Second)
		}}
		t.Cleanup(tr.CloseIdleConnections)
		return l.via("http://"+netip.AddrPortFrom(dst, uint16(port)).String(), &http.Client{Transport: tr, Timeout: 30 * time.Second})
	}
	direct, proxy := from(ns.AttIP4, ns.DefIP4), from(ns.AttIP6, ns.DefIP6)
	register := func(v *testLAPI, id string, h http.Header) reply {
		return v.send("POST", "/v1/watchers", h, map[string]any{"machine_id": id, "password": "p"})
	}

	// A client that is not a proxy: the header is ignored.
	for _, xff := range []string{"", "127.0.0.1", "::1", "127.0.0.1, " + ns.AttIP6.String(), ns.AttIP4.String()} {
		h := http.Header{}
		if xff != "" {
			h.Set("X-Forwarded-For", xff)
		}
		expectMsg(t, "UI from a non-proxy with X-Forwarded-For "+xff, direct.send("GET", "/ui/api/summary", h, nil), http.StatusForbidden,
			"access forbidden from this IP ("+ns.AttIP4.String()+")")
		expectMsg(t, "registration from a non-proxy with X-Forwarded-For "+xff, register(direct, "forged", h), http.StatusForbidden, "access forbidden")
	}
	if n := l.count("machines"); n != 0 {
		t.Errorf("forged X-Forwarded-For registered %d machines", n)
	}

	// The configured proxy is believed about its client, local or not.
	if r := proxy.send("GET", "/ui/api/summary", hdr("X-Forwarded-For", "127.0.0.1"), nil); r.Status != http.StatusOK {
		t.Errorf("UI for a local client through the proxy: %s", r)
	}
	expectMsg(t, "UI for a remote client through the proxy", proxy.send("GET", "/ui/api/summary", hdr("X-Forwarded-For", "203.0.113.9"), nil),
		http.StatusForbidden, "access forbidden from this IP (203.0.113.9)")
	// The proxy appends the address it saw: what a client wrote before it
	// is not believed.
	expectMsg(t, "client-written entry before the proxy's", proxy.send("GET", "/ui/api/summary", hdr("X-Forwarded-For", "127.0.0.1, 203.0.113.9"), nil),
		http.StatusForbidden, "access forbidden from this IP (203.0.113.9)")
	expectMsg(t, "remote registration through the proxy", register(proxy, "far", hdr("X-Forwarded-For", "198.51.100.7")), http.StatusForbidden, "access forbidden")
	expectEmpty(t, "local registration through the proxy", register(proxy, "near", hdr("X-Forwarded-For", "127.0.0.1")), http.StatusCreated)
	// Without a header the proxy is an ordinary client.
	expectMsg(t, "the proxy itself", proxy.send("GET", "/ui/api/summary", nil, nil), http.StatusForbidden,
		"access forbidden from this IP ("+ns.AttIP6.String()+")")
}

// TestForwardedForTrustsNothingByDefault checks, without namespaces, the
// address the server settles on for a peer and a header: echo's extractor
// would otherwise trust every private, link-local and loopback peer.
func TestForwardedForTrustsNothingByDefault(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxies []string
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies configured", nil, "10.97.0.2", []string{"127.0.0.1"}, "10.97.0.2"},
		{"private peer", []string{"192.0.2.1"}, "10.97.0.2", []string{"127.0.0.1"}, "10.97.0.2"},
		{"link-local peer", []string{"192.0.2.1"}, "fe80::1", []string{"::1"}, "fe80::1"},
		{"loopback peer", []string{"192.0.2.1"}, "127.0.0.1", []string{"198.51.100.7"}, "127.0.0.1"},
		{"from a proxy", []string{"192.0.2.1"}, "192.0.2.1", []string{"198.51.100.7"}, "198.51.100.7"},
		{"proxy range", []string{"192.0.2.0/24"}, "192.0.2.200", []string{"198.51.100.7"}, "198.51.100.7"},
		{"chain of proxies", []string{"192.0.2.0/24"}, "192.0.2.1", []string{"127.0.0.1, 198.51.100.7, 192.0.2.9"}, "198.51.100.7"},
		{"several headers", []string{"192.0.2.1"}, "192.0.2.1", []string{"127.0.0.1", "198.51.100.7"}, "198.51.100.7"},
		{"proxy with garbage", []string{"192.0.2.1"}, "192.0.2.1", []string{"not-an-ip"}, "192.0.2.1"},
		{"proxy without header", []string{"192.0.2.1"}, "192.0.2.1", nil, "192.0.2.1"},
		{"IPv6 proxy", []string{"2001:db8::1"}, "2001:db8::1", []string{"127.0.0.1"}, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := startLAPI(t, func(c *csconfig.Config) {
				c.API.Server.UseForwardedForHeaders = true
				c.API.Server.TrustedProxies = tc.proxies
			})
			req, err := http.NewRequest("GET", "/health", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.RemoteAddr = netip.AddrPortFrom(netip.MustParseAddr(tc.peer), 40000).String()
			req.Header["X-Forwarded-For"] = tc.xff
			if got := l.Server.echo.IPExtractor(req); got != tc.want {
				t.Errorf("peer %s, X-Forwarded-For %q: client %s, want %s", tc.peer, tc.xff, got, tc.want)
			}
		})
	}
}

func TestTrustedProxiesMustParse(t *testing.T) {
	cfg := csconfig.Default()
	cfg.DBConfig.DBPath = filepath.Join(t.TempDir(), "crowdsec.db")
	cfg.API.Server.UseForwardedForHeaders = true
	cfg.API.Server.TrustedProxies = []string{"10.0.0.0/33"}
	st, err := store.Open(context.Background(), testStoreConfig(t, cfg.DBConfig.DBPath))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := New(context.Background(), cfg, st, profiles.Default()); err == nil {
		t.Error("an unparsable trusted_proxies entry was accepted")
	}
}
