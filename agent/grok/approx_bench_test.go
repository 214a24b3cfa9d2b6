package grok

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/internal/loggen"
)

// parseMode is ParseInto in one of the ways a pattern can match:
// "fast" (as ParseInto: approximations, walked), "strict" (no
// approximations, as the fallback runs: walked unless the pattern has a
// fast expression), and through regexp only: "fast-regexp" (what
// ParseInto did before the walker) and "strict-regexp".
func parseMode(p *Pattern, s string, dst map[string]string, mode string) bool {
	p.matchers()
	var loc []int
	var groups [][]int
	switch mode {
	case "fast":
		return p.ParseInto(s, dst)
	case "strict":
		loc, groups = p.strict.find(s), p.strict.groups
	case "strict-regexp":
		loc, groups = p.strict.findRegexp(s), p.strict.groups
	case "fast-regexp":
		loc, groups = findRegexpOnly(p, s)
	default:
		panic("unknown mode " + mode)
	}
	if loc == nil {
		return false
	}
	p.fill(s, loc, groups, dst)
	return true
}

// findRegexpOnly is Pattern.find with regexp alone: approximations and
// their checks, the strict expression when a check fails.
func findRegexpOnly(p *Pattern, s string) ([]int, [][]int) {
	if f := p.fast; f != nil {
		loc := f.findRegexp(s)
		if loc == nil {
			return nil, nil
		}
		ok := true
		for _, c := range f.checks {
			if a, b := loc[2*c.group], loc[2*c.group+1]; a >= 0 && !verifyRegexp(c.ap, s, a, b) {
				ok = false
				break
			}
		}
		if ok {
			return loc, f.groups
		}
	}
	return p.strict.findRegexp(s), p.strict.groups
}

// verifyRegexp is approx.accepts with regexp alone.
func verifyRegexp(ap *approx, s string, a, b int) bool {
	v, lo, hi := inContext(s, a, b)
	re := ap.verify[v]
	return re != nil && re.MatchString(s[lo:hi])
}

var benchModes = []string{"fast", "fast-regexp", "strict", "strict-regexp"}

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
	p.matchers() // built on first use: not in the figures
	lines := genLines(b, func(w *bytes.Buffer) error { return loggen.Nginx(w, 64, 1) })
	for _, mode := range benchModes {
		b.Run(mode, func(b *testing.B) {
			evt := make(map[string]string, 32)
			i := 0
			for b.Loop() {
				if !parseMode(p, lines[i%len(lines)], evt, mode) {
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
	for _, p := range append(pats, sys) {
		p.matchers() // built on first use: not in the figures
	}
	lines := genLines(b, func(w *bytes.Buffer) error { return loggen.SSHD(w, 64, 1) })
	for _, mode := range benchModes {
		b.Run(mode, func(b *testing.B) {
			evt := make(map[string]string, 32)
			i := 0
			for b.Loop() {
				clear(evt)
				if !parseMode(sys, lines[i%len(lines)], evt, mode) {
					b.Fatal("syslog: no match")
				}
				for _, p := range pats {
					if parseMode(p, evt["message"], evt, mode) {
						break
					}
				}
				i++
			}
		})
	}
}
