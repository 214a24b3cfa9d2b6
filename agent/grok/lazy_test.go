package grok

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
)

// nginxCombined is a hub nginx expression: a large program (thousands of
// instructions) with approximated references.
const nginxCombined = `(%{IPORHOST:target_fqdn}(:%{INT:port})? )?%{IPORHOST:remote_addr} - (%{NGCUSTOMUSER:remote_user})? \[%{HTTPDATE:time_local}\] "%{WORD:verb} %{DATA:request} HTTP/%{NUMBER:http_version}" %{NUMBER:status} %{NUMBER:body_bytes_sent} "%{NOTDQUOTE:http_referer}" "%{NOTDQUOTE:http_user_agent}"`

// Compiling checks an expression and lists its captures but builds the
// regular expressions only when the pattern first matches: a daemon loads
// hundreds of expressions (a whole hub) and a host uses a few.
func TestCompileBuildsOnFirstUse(t *testing.T) {
	l := rampartLib(t)
	l.Add("NGCUSTOMUSER", `[a-zA-Z0-9\.\@\-\+_%]+`)
	p, err := l.Compile(nginxCombined)
	if err != nil {
		t.Fatal(err)
	}
	if p.strict.re != nil || p.strict.anchored != nil || p.fast != nil {
		t.Fatal("Compile built the matching expressions")
	}
	if names := p.Names(); !slices.Contains(names, "remote_addr") || !slices.Contains(names, "http_user_agent") {
		t.Errorf("Names before first use: %v", names)
	}
	line := `203.0.113.7 - - [12/Feb/2026:14:10:21 +0000] "GET /wp-login.php HTTP/1.1" 404 153 "-" "curl/8.0"`
	m := p.Parse(line)
	if m["remote_addr"] != "203.0.113.7" || m["request"] != "/wp-login.php" || m["status"] != "404" {
		t.Errorf("Parse: %v", m)
	}
	if p.strict.re == nil || p.fast == nil {
		t.Errorf("after first use: strict %v, fast %v (want both)", p.strict.re != nil, p.fast != nil)
	}
	// a syntax error is still found by Compile
	if _, err := l.Compile(`%{INT:x}(`); err == nil {
		t.Error("unbalanced parenthesis compiled")
	}
}

// Parse workers may meet a pattern for the first time together: one
// builds it, all get the same answer.
func TestFirstUseConcurrent(t *testing.T) {
	l := rampartLib(t)
	l.Add("NGCUSTOMUSER", `[a-zA-Z0-9\.\@\-\+_%]+`)
	lines := make([]string, 8)
	for i := range lines {
		lines[i] = fmt.Sprintf(`198.51.100.%d - bob [12/Feb/2026:14:10:21 +0000] "POST /x/%d HTTP/2.0" 200 %d "-" "ua"`, i, i, i*10)
	}
	want := make([]map[string]string, len(lines))
	ref := l.MustCompile(nginxCombined)
	for i, s := range lines {
		want[i] = ref.Parse(s)
	}
	p := l.MustCompile(nginxCombined + `$`) // a pattern not built yet
	var wg sync.WaitGroup
	got := make([]map[string]string, len(lines))
	for i, s := range lines {
		wg.Go(func() { got[i] = p.Parse(s) })
	}
	wg.Wait()
	for i := range lines {
		if !maps.Equal(got[i], want[i]) {
			t.Errorf("line %d: %v, want %v", i, got[i], want[i])
		}
	}
}

// Approximations registered after a pattern was compiled do not apply to
// it when it is built later: what a pattern means is fixed by Compile.
func TestApproxAfterCompile(t *testing.T) {
	l := NewLibrary()
	l.Add("A", `a{1,20}`)
	before := l.MustCompile(`%{A:x}!`)
	if err := l.AddApprox("A", `[a-z]+`); err != nil {
		t.Fatal(err)
	}
	after := l.MustCompile(`%{A:x}?!`)
	if before.Approximated() {
		t.Error("an approximation added after Compile applies")
	}
	if !after.Approximated() {
		t.Error("an approximation added before Compile does not apply")
	}
	if m := before.Parse("aaa!"); m["x"] != "aaa" {
		t.Errorf("got %v", m)
	}
}

// BenchmarkCompile is what loading costs per expression (a fresh library
// each time, so nothing is cached); BenchmarkFirstMatch adds what the
// first line matched against it costs.
func BenchmarkCompile(b *testing.B) {
	for b.Loop() {
		l := rampartLib(b)
		l.Add("NGCUSTOMUSER", `[a-zA-Z0-9\.\@\-\+_%]+`)
		l.MustCompile(nginxCombined)
	}
}

func BenchmarkFirstMatch(b *testing.B) {
	line := `203.0.113.7 - - [12/Feb/2026:14:10:21 +0000] "GET /wp-login.php HTTP/1.1" 404 153 "-" "curl/8.0"`
	for b.Loop() {
		l := rampartLib(b)
		l.Add("NGCUSTOMUSER", `[a-zA-Z0-9\.\@\-\+_%]+`)
		if l.MustCompile(nginxCombined).Parse(line) == nil {
			b.Fatal("no match")
		}
	}
}

// BenchmarkLibrary is the library alone, to subtract from the above.
func BenchmarkLibrary(b *testing.B) {
	for b.Loop() {
		rampartLib(b)
	}
}
