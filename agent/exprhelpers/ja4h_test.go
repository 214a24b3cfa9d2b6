package exprhelpers

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
)

func newReq(t *testing.T, method string, set func(*http.Request)) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://example.com", http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	if set != nil {
		set(req)
	}
	return req
}

// The vectors of upstream's ja4h tests (parts a, c and d come from
// FoxIO's Python reference; b from sorted header names).
func TestJA4HVectors(t *testing.T) {
	cases := []struct {
		name string
		req  *http.Request
		want string
	}{
		{"bare GET", newReq(t, http.MethodGet, nil), "ge11nn000000_e3b0c44298fc_000000000000_000000000000"},
		{"one cookie", newReq(t, http.MethodGet, func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "session", Value: "12345"})
		}), "ge11cn000000_e3b0c44298fc_3f3af1ecebbd_86a3f0069fcd"},
		{"two cookies, hashed sorted", newReq(t, http.MethodGet, func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "foo", Value: "bar"})
			r.AddCookie(&http.Cookie{Name: "baz", Value: "qux"})
		}), "ge11cn000000_e3b0c44298fc_bd87575d11f6_d401f362552e"},
		{"accept-language", newReq(t, http.MethodGet, func(r *http.Request) {
			r.Header.Set("Accept-Language", "en-US")
		}), "ge11nn01enus_"},
		{"POST with cookie and referer", newReq(t, http.MethodPost, func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "foo", Value: "bar"})
			r.Header.Set("Referer", "http://example.com")
		}), "po11cr000000_e3b0c44298fc_2c26b46b68ff_3ba8907e7a25"},
		{"odd accept-language", newReq(t, http.MethodGet, func(r *http.Request) {
			r.Header.Set("Accept-Language", "aksjdhaslkdhalkjsd")
		}), "ge11nn01aksj_"},
		{"comma accept-language", newReq(t, http.MethodGet, func(r *http.Request) {
			r.Header.Set("Accept-Language", ",")
		}), "ge11nn010000_"},
		{"one header", newReq(t, http.MethodGet, func(r *http.Request) {
			r.Header.Set("X-Custom-Header", "some value")
		}), "ge11nn010000_0a15aba5bbd6_"},
		{"two headers", newReq(t, http.MethodGet, func(r *http.Request) {
			r.Header.Set("X-Custom-Header", "some value")
			r.Header.Set("Authorization", "Bearer token")
		}), "ge11nn020000_bbfc6cf16ecb_"},
		{"curl-like", newReq(t, http.MethodGet, func(r *http.Request) {
			r.Header.Set("Host", "localhost")
			r.Header.Set("User-Agent", "curl/8.12.1")
			r.Header.Set("Accept", "*/*")
		}), "ge11nn030000_4722709a6f34_"},
		{"duplicate cookie names", newReq(t, http.MethodGet, func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "foo", Value: "bar"})
			r.AddCookie(&http.Cookie{Name: "foo", Value: "bar2"})
		}), "ge11cn000000_e3b0c44298fc_8990ce24137b_975821a3a881"},
		{"HTTP/2", newReq(t, http.MethodGet, func(r *http.Request) {
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
		}), "ge20nn000000_"},
	}
	for _, c := range cases {
		got, err := JA4H(c.req)
		if err != nil || !strings.HasPrefix(got, c.want) || len(got) != 51 {
			t.Errorf("%s: JA4H = %q, %v; want %q...", c.name, got, err, c.want)
		}
	}
	if _, err := JA4H(nil); err == nil {
		t.Error("nil request: no error")
	}
}

// TestJA4HServer fingerprints a real request as an HTTP server receives
// it, through the expr helper.
func TestJA4HServer(t *testing.T) {
	h := New(t.TempDir())
	prog, err := expr.Compile(`JA4H(req)`, append(h.Options(), expr.Env(map[string]any{"req": (*http.Request)(nil)}))...)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, err := expr.Run(prog, map[string]any{"req": r})
		if err != nil {
			t.Errorf("run: %v", err)
		}
		s, _ := out.(string)
		got <- s
	}))
	defer srv.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/x", http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Language", "fr-FR,fr;q=0.9")
	req.Header.Set("Referer", "http://example.org/")
	req.Header.Set("Cookie", "b=2; a=1")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The Go client adds User-Agent and Accept-Encoding; the server moves
	// Host out of the header map. 5 headers less Cookie and Referer = 03.
	// b = sha256("Accept-Encoding,Accept-Language,User-Agent"),
	// c = sha256("a,b"), d = sha256("a=1,b=2"), computed with sha256sum.
	if g, want := <-got, "ge11cr03frfr_14de08a69d62_1eb7c54d5283_06beefe2b477"; g != want {
		t.Errorf("JA4H over the wire = %q, want %q", g, want)
	}
	// A nil request fails the expression rather than panicking.
	if _, err := expr.Run(prog, map[string]any{"req": (*http.Request)(nil)}); err == nil {
		t.Error("nil request: no error")
	}
}
