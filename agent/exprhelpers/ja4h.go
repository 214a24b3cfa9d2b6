package exprhelpers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
)

// JA4H is FoxIO's JA4+ HTTP client fingerprint of req, as upstream's
// helper computes it (upstream calls it on the appsec request; Rampart has
// no appsec component, so it takes any *http.Request a rule's environment
// holds):
//
//	a_b_c_d
//	a: method (2 chars, lower case), version ("11", "20"), "c"/"n" cookie,
//	   "r"/"n" referer, header count (2 digits, without Cookie and
//	   Referer, at most 99), primary Accept-Language (4 chars, "0000")
//	b: first 12 hex of SHA-256 of the header names, comma-joined, without
//	   Cookie* and Referer
//	c: the same of the cookie names, sorted ("000000000000" for none)
//	d: the same of the sorted cookies as name=value
//
// net/http does not keep the order headers came in, which the spec hashes
// in b; the names are sorted instead so the fingerprint is stable (what
// upstream does when it does not know the wire order either).
func JA4H(req *http.Request) (string, error) {
	if req == nil {
		return "", errors.New("JA4H: no HTTP request")
	}
	cookies := req.Cookies()
	slices.SortStableFunc(cookies, func(x, y *http.Cookie) int { return strings.Compare(x.Name, y.Name) })

	var b strings.Builder
	b.Grow(51)
	b.WriteString(ja4hPrefix(req, len(cookies) > 0))
	b.WriteByte('_')
	b.WriteString(ja4hHash(ja4hHeaderNames(req.Header)))
	b.WriteByte('_')
	names := make([]string, len(cookies))
	pairs := make([]string, len(cookies))
	for i, c := range cookies {
		names[i] = c.Name
		pairs[i] = c.Name + "=" + c.Value
	}
	b.WriteString(ja4hCookieHash(names))
	b.WriteByte('_')
	b.WriteString(ja4hCookieHash(pairs))
	return b.String(), nil
}

// ja4hPrefix is part a.
func ja4hPrefix(req *http.Request, hasCookie bool) string {
	m := strings.ToLower(req.Method)
	m = m[:min(len(m), 2)]
	flag := func(set bool, c string) string {
		if set {
			return c
		}
		return "n"
	}
	n := len(req.Header)
	if req.Header.Get("Cookie") != "" {
		n--
	}
	if req.Header.Get("Referer") != "" {
		n--
	}
	count := strconv.Itoa(min(max(n, 0), 99))
	if len(count) < 2 {
		count = "0" + count
	}
	return m + strconv.Itoa(req.ProtoMajor%10) + strconv.Itoa(req.ProtoMinor%10) +
		flag(hasCookie, "c") + flag(req.Header.Get("Referer") != "", "r") + count +
		ja4hLanguage(req.Header.Get("Accept-Language"))
}

// ja4hLanguage is the primary language of an Accept-Language value as the
// reference implementation reads it: lower case, dashes dropped, the
// first 4 characters, cut at the first ',' or ';', padded with '0'.
func ja4hLanguage(v string) string {
	if v == "" {
		return "0000"
	}
	v = strings.ReplaceAll(strings.ToLower(v), "-", "")
	v = v[:min(len(v), 4)]
	if i := strings.IndexAny(v, ",;"); i >= 0 {
		v = v[:i]
	}
	return v + strings.Repeat("0", 4-len(v))
}

// ja4hHeaderNames are the names hashed in part b, sorted.
func ja4hHeaderNames(h http.Header) []string {
	out := make([]string, 0, len(h))
	for name := range h {
		l := strings.ToLower(name)
		if strings.HasPrefix(l, "cookie") || l == "referer" {
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// ja4hHash is the first 12 hex digits of the SHA-256 of the comma-joined
// items; no items hash the empty string, as the reference does for b.
func ja4hHash(items []string) string {
	sum := sha256.Sum256([]byte(strings.Join(items, ",")))
	return hex.EncodeToString(sum[:6])
}

// ja4hCookieHash is ja4hHash, but twelve zeros without cookies.
func ja4hCookieHash(items []string) string {
	if len(items) == 0 {
		return "000000000000"
	}
	return ja4hHash(items)
}

func ja4hOptions() []expr.Option {
	return []expr.Option{
		expr.Function("JA4H", func(p ...any) (any, error) {
			req, _ := arg0(p).(*http.Request)
			return JA4H(req)
		}, new(func(*http.Request) string)),
	}
}
