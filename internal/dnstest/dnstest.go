// Package dnstest runs a small authoritative DNS server on a loopback UDP
// port for tests: real queries through a real *net.Resolver, no mock.
package dnstest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Records are the server's answers. Names are fully qualified and lower
// case ("host.example.test."); PTR is keyed by the reverse name
// ("9.113.0.203.in-addr.arpa."). A name without a record of the asked
// type gets NXDOMAIN.
type Records struct {
	PTR  map[string][]string
	Addr map[string][]netip.Addr // A and AAAA
}

// Server is a running test DNS server.
type Server struct {
	Addr    string       // host:port of the UDP socket
	Queries atomic.Int32 // queries received
}

// Start serves recs until the test ends. With silent it reads queries and
// never answers (a resolver that times out).
func Start(t testing.TB, recs Records, silent bool) *Server {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &Server{Addr: conn.LocalAddr().String()}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			s.Queries.Add(1)
			if silent {
				continue
			}
			if out, ok := answer(recs, buf[:n]); ok {
				conn.WriteTo(out, from)
			}
		}
	}()
	return s
}

func answer(recs Records, query []byte) ([]byte, bool) {
	var msg dnsmessage.Message
	if err := msg.Unpack(query); err != nil || len(msg.Questions) != 1 {
		return nil, false
	}
	q := msg.Questions[0]
	resp := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: msg.ID, Response: true, Authoritative: true, RecursionDesired: msg.RecursionDesired, RecursionAvailable: true},
		Questions: msg.Questions,
	}
	name := strings.ToLower(q.Name.String())
	hdr := dnsmessage.ResourceHeader{Name: q.Name, Type: q.Type, Class: dnsmessage.ClassINET, TTL: 60}
	switch q.Type {
	case dnsmessage.TypePTR:
		for _, target := range recs.PTR[name] {
			resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: hdr, Body: &dnsmessage.PTRResource{PTR: dnsmessage.MustNewName(target)}})
		}
	case dnsmessage.TypeA, dnsmessage.TypeAAAA:
		for _, a := range recs.Addr[name] {
			switch {
			case q.Type == dnsmessage.TypeA && a.Is4():
				resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: hdr, Body: &dnsmessage.AResource{A: a.As4()}})
			case q.Type == dnsmessage.TypeAAAA && a.Is6():
				resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: hdr, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
			}
		}
		if len(resp.Answers) == 0 && len(recs.Addr[name]) > 0 {
			break // the name exists, without this type: NOERROR, no data
		}
	}
	if len(resp.Answers) == 0 && (q.Type == dnsmessage.TypePTR || len(recs.Addr[name]) == 0) {
		resp.RCode = dnsmessage.RCodeNameError
	}
	out, err := resp.Pack()
	return out, err == nil
}

// Resolver is a pure-Go resolver that asks only the server at addr.
func Resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}
