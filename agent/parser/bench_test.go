package parser_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/internal/loggen"
)

// BenchmarkParseHub parses generated sshd and nginx lines (internal/loggen)
// through the hub's parsers, one line per iteration: the per-line cost of
// the pipeline alone, without acquisition or buckets.
func BenchmarkParseHub(b *testing.B) {
	he := loadHubEngine(b, append(fuzzParsers, "crowdsecurity/whitelists"), nil)
	for _, lg := range []struct {
		name, typ string
		gen       func(io.Writer, int, int64) error
	}{{"sshd", "syslog", loggen.SSHD}, {"nginx", "nginx", loggen.Nginx}} {
		var buf bytes.Buffer
		if err := lg.gen(&buf, 20000, 1); err != nil {
			b.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		labels := map[string]string{"type": lg.typ}
		b.Run(lg.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				evt := event.New(event.Line{Raw: lines[i%len(lines)], Src: "/var/log/bench.log", Module: "file", Labels: labels})
				if err := he.pipe.Parse(&evt, nil); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
