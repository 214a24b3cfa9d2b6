package lapi

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// scatter spreads i over 32 bits, as the agent's random UUIDs and the
// attackers' addresses spread over the indexes.
func scatter(i int) uint32 { return uint32(i) * 2654435761 }

// replayAlert is an overflow as a replaying agent pushes it: events
// events, each carrying the parsed fields as meta (8 for sshd, 11 for
// nginx), no decisions (the LAPI's profiles make them).
func replayAlert(i, events int, nginx bool) *models.Alert {
	h := scatter(i)
	ip := fmt.Sprintf("%d.%d.%d.%d", 1+h>>24%223, h>>16&255, h>>8&255, h&255)
	a := agentAlert(ip, "crowdsecurity/ssh-bf")
	a.UUID = fmt.Sprintf("6f1c3e2a-0000-4000-8000-%012d", i)
	a.Events = nil
	for e := 0; e < events; e++ {
		meta := []models.Meta{
			{Key: "datasource_path", Value: "/var/log/auth.log"}, {Key: "datasource_type", Value: "file"},
			{Key: "log_type", Value: "ssh_failed-auth"}, {Key: "machine", Value: "host"}, {Key: "service", Value: "ssh"},
			{Key: "source_ip", Value: ip}, {Key: "target_user", Value: "root"}, {Key: "timestamp", Value: a.StartAt},
		}
		if nginx {
			a.Scenario = "crowdsecurity/http-probing"
			meta = []models.Meta{{Key: "datasource_path", Value: "/var/log/nginx/access.log"}, {Key: "datasource_type", Value: "file"},
				{Key: "http_args_len", Value: "0"}, {Key: "http_path", Value: fmt.Sprintf("/wp-admin/%d.php?a=1&b=2", e)}, {Key: "http_status", Value: "404"},
				{Key: "http_user_agent", Value: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/117.0.0.0 Safari/537.36"},
				{Key: "http_verb", Value: "GET"}, {Key: "log_type", Value: "http_access-log"}, {Key: "service", Value: "http"},
				{Key: "source_ip", Value: ip}, {Key: "timestamp", Value: a.StartAt}}
		}
		a.Events = append(a.Events, &models.Event{Timestamp: a.StartAt, Meta: meta})
	}
	return a
}

// BenchmarkPostAlerts is POST /v1/alerts as a replay drives it, over HTTP
// on loopback into a fresh SQLite file: sshd, full batches of 50 alerts of
// 6 events; nginx, batches of 8 alerts of one event (what the agent's
// pushes averaged in those replays); sshd-replay, the full batches of 300
// a replay posts since it waits for them (delivery.Config.FullBatches).
func BenchmarkPostAlerts(b *testing.B) {
	b.Run("sshd", func(b *testing.B) { benchmarkPostAlerts(b, 50, 6, false) })
	b.Run("nginx", func(b *testing.B) { benchmarkPostAlerts(b, 8, 1, true) })
	// What a replay posts now: full batches of 300 (sshd: about 10
	// events each).
	b.Run("sshd-replay", func(b *testing.B) { benchmarkPostAlerts(b, 300, 10, false) })
}

func benchmarkPostAlerts(b *testing.B, batch, events int, nginx bool) {
	l := startLAPI(&testing.T{}, nil)
	defer l.Stop()
	l.t = &testing.T{}
	hdr := l.jwtHeaders()
	bodies := make([][]byte, 0, 64)
	for k := 0; k < 64; k++ {
		as := make([]*models.Alert, batch)
		for j := range as {
			as[j] = replayAlert(k*batch+j, events, nginx)
		}
		data, err := json.Marshal(as)
		if err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, data)
	}
	// A fresh UUID per push, or the LAPI would answer from its retry
	// check without storing; gzipped as the agent's client sends them.
	pushes := make([][]byte, b.N)
	for i := range pushes {
		body := bytes.Replace(bodies[i%len(bodies)], []byte("6f1c3e2a"), fmt.Appendf(nil, "%08x", scatter(i)), -1)
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		zw.Write(body)
		zw.Close()
		pushes[i] = buf.Bytes()
	}
	client := &http.Client{Timeout: 30 * time.Second}
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req, _ := http.NewRequest("POST", l.URL+"/v1/alerts", bytes.NewReader(pushes[i]))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*batch), "µs/alert")
	// The process's CPU (LAPI and client), less noisy than wall time on a
	// shared machine.
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N*batch), "cpu-µs/alert")
}

// processCPU is the CPU time (user and system) the process used so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
