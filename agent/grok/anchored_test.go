package grok

import (
	"slices"
	"testing"
)

// The anchored first try must give exactly what the unanchored search
// gives, whether the match starts at 0, later, or not at all.
func TestAnchoredSameAsUnanchored(t *testing.T) {
	l := rampartLib(t)
	pats := []string{
		`(%{IPORHOST:target_fqdn} )?%{IPORHOST:remote_addr} - \[%{HTTPDATE:time_local}\] "%{DATA:request}"`,
		`%{WORD:a} %{INT:b}`,
		`(?i)failed %{WORD:method} for %{USERNAME:user}`,
		`x*`,
		`\bfoo|foobar`,
	}
	inputs := []string{
		`1.2.3.4 - [12/Feb/2026:14:10:21 +0000] "GET / HTTP/1.1"`,
		`host.example.com 1.2.3.4 - [12/Feb/2026:14:10:21 +0000] "GET /x HTTP/1.1"`,
		`junk before 1.2.3.4 - [12/Feb/2026:14:10:21 +0000] "GET / HTTP/1.1"`,
		`abc 123 def 456`, `  Failed password for root`, `Failed password for root`, `yyxx`, `foobar`, `afoobar`, ``,
	}
	for _, src := range pats {
		p, err := l.Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range inputs {
			if got, want := p.matchers().strict.find(in), p.matchers().strict.re.FindStringSubmatchIndex(in); !slices.Equal(got, want) {
				t.Errorf("%s on %q: %v, unanchored %v", src, in, got, want)
			}
			if f := p.matchers().fast; f != nil {
				if got, want := f.matcher.find(in), f.re.FindStringSubmatchIndex(in); !slices.Equal(got, want) {
					t.Errorf("fast %s on %q: %v, unanchored %v", src, in, got, want)
				}
			}
		}
	}
}
