package grok

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/internal/loggen"
)

// parseMode is ParseInto with (fast) or without (strict) approximations.
func parseMode(p *Pattern, s string, dst map[string]string, strict bool) bool {
	if !strict {
		return p.ParseInto(s, dst)
	}
	loc := p.matchers().strict.find(s)
	if loc == nil {
		return false
	}
	p.fill(s, loc, p.matchers().strict.groups, dst)
	return true
}

func genLines(b *testing.B, gen func(*bytes.Buffer) error) []string {
	var buf bytes.Buffer
	if err := gen(&buf); err != nil {
		b.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(buf.String()), "\n")
}

// BenchmarkApproxNginx: the hub nginx access-log expression on typical
// combined-log lines.
func BenchmarkApproxNginx(b *testing.B) {
	l := rampartLib(b)
	hp := loadHubParser(b, "parsers/s01-parse/crowdsecurity/nginx-logs.yaml")
	p := hp.compile(b, l)[0]
	lines := genLines(b, func(w *bytes.Buffer) error { return loggen.Nginx(w, 64, 1) })
	for _, mode := range []string{"strict", "fast"} {
		b.Run(mode, func(b *testing.B) {
			evt := make(map[string]string, 32)
			i := 0
			for b.Loop() {
				if !parseMode(p, lines[i%len(lines)], evt, mode == "strict") {
					b.Fatalf("no match: %s", lines[i%len(lines)])
				}
				i++
			}
		})
	}
}

// BenchmarkApproxSSHD: a syslog line through ^%{SYSLOGLINE}, then its
// message through the hub sshd expressions until one matches, as the
// parser does.
func BenchmarkApproxSSHD(b *testing.B) {
	l := rampartLib(b)
	sys := l.MustCompile(`^%{SYSLOGLINE}`)
	hp := loadHubParser(b, "parsers/s01-parse/crowdsecurity/sshd-logs.yaml")
	pats := hp.compile(b, l)
	lines := genLines(b, func(w *bytes.Buffer) error { return loggen.SSHD(w, 64, 1) })
	for _, mode := range []string{"strict", "fast"} {
		b.Run(mode, func(b *testing.B) {
			strict := mode == "strict"
			evt := make(map[string]string, 32)
			i := 0
			for b.Loop() {
				clear(evt)
				if !parseMode(sys, lines[i%len(lines)], evt, strict) {
					b.Fatal("syslog: no match")
				}
				for _, p := range pats {
					if parseMode(p, evt["message"], evt, strict) {
						break
					}
				}
				i++
			}
		})
	}
}
