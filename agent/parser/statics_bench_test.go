package parser_test

import (
	"fmt"
	"testing"

	"github.com/rampart-ips/rampart/agent/event"
)

// BenchmarkStatics runs the hub's s02-enrich statics alone, one event per
// iteration, on events as nginx-logs leaves them: "http" is http-logs
// (expressions, plain field reads), "date" dateparse-enrich (ParseDate on
// timestamps that repeat for 20 lines, as a busy log's do, then change).
func BenchmarkStatics(b *testing.B) {
	for _, bc := range []struct{ name, parser string }{
		{"http", "crowdsecurity/http-logs"}, {"date", "crowdsecurity/dateparse-enrich"},
	} {
		he := loadHubEngine(b, []string{bc.parser}, nil)
		stamps := make([]string, 3600)
		for i := range stamps {
			stamps[i] = fmt.Sprintf("12/Feb/2026:10:%02d:%02d +0000", i/60, i%60)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				evt := event.New(event.Line{Raw: "x", Src: "/var/log/bench.log", Module: "file"})
				evt.StrTime = stamps[i/20%len(stamps)]
				evt.Parsed["request"] = "/static/js/vendor.51af09.js?v=3"
				evt.Parsed["remote_addr"] = "192.0.2.1"
				evt.Parsed["time_local"] = evt.StrTime
				evt.Parsed["verb"] = "GET"
				evt.Meta["http_status"] = "304"
				evt.Meta["service"] = "http"
				evt.Meta["log_type"] = "http_access-log"
				evt.Meta["source_ip"] = "192.0.2.1"
				if err := he.pipe.Parse(&evt, nil); err != nil {
					b.Fatal(err)
				}
				if !evt.Process {
					b.Fatal("event not parsed")
				}
				i++
			}
		})
	}
}
