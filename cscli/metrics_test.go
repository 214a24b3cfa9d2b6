package cscli

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsServer serves a real client_golang registry holding upstream's
// metric families, the way the daemon's listener does.
func metricsServer(t *testing.T) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	counter := func(name string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: name}, labels)
		reg.MustRegister(c)
		return c
	}
	gauge := func(name string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: name}, labels)
		reg.MustRegister(g)
		return g
	}
	// Rampart's file source carries only the source label.
	counter("cs_filesource_hits_total", "source").WithLabelValues("/var/log/auth.log").Add(120)
	counter("cs_journalctlsource_hits_total", "source", "datasource_type", "acquis_type").
		WithLabelValues("journalctl-_SYSTEMD_UNIT=ssh.service", "journalctl", "").Add(3)
	counter("cs_parser_hits_ok_total", "source", "type", "acquis_type").WithLabelValues("/var/log/auth.log", "file", "").Add(100)
	counter("cs_parser_hits_ko_total", "source", "type", "acquis_type").WithLabelValues("/var/log/auth.log", "file", "").Add(20)
	poured := counter("cs_bucket_poured_total", "source", "type", "name")
	poured.WithLabelValues("/var/log/auth.log", "file", "crowdsecurity/ssh-bf").Add(30)
	poured.WithLabelValues("/var/log/auth.log", "file", "crowdsecurity/ssh-slow-bf").Add(30)
	wl := counter("cs_node_wl_hits_ok_total", "source", "type", "name", "reason", "stage", "acquis_type")
	wl.WithLabelValues("/var/log/auth.log", "file", "crowdsecurity/whitelists", "private ipv4/ipv6 ip/ranges", "s02-enrich", "").Add(4)
	counter("cs_node_wl_hits_total", "source", "type", "name", "reason", "stage", "acquis_type").
		WithLabelValues("/var/log/auth.log", "file", "crowdsecurity/whitelists", "private ipv4/ipv6 ip/ranges", "s02-enrich", "").Add(100)
	nodeLabels := []string{"source", "type", "name", "stage", "acquis_type"}
	counter("cs_node_hits_total", nodeLabels...).WithLabelValues("/var/log/auth.log", "file", "crowdsecurity/sshd-logs", "s01-parse", "").Add(120)
	counter("cs_node_hits_ok_total", nodeLabels...).WithLabelValues("/var/log/auth.log", "file", "crowdsecurity/sshd-logs", "s01-parse", "").Add(100)
	counter("cs_node_hits_ko_total", nodeLabels...).WithLabelValues("/var/log/auth.log", "file", "crowdsecurity/sshd-logs", "s01-parse", "").Add(20)
	gauge("cs_buckets", "name").WithLabelValues("crowdsecurity/ssh-bf").Set(2)
	counter("cs_bucket_instantiation_total", "name").WithLabelValues("crowdsecurity/ssh-bf").Add(7)
	counter("cs_bucket_overflowed_total", "name").WithLabelValues("crowdsecurity/ssh-bf").Add(1)
	counter("cs_bucket_underflowed_total", "name").WithLabelValues("crowdsecurity/ssh-bf").Add(4)
	counter("rampart_bucket_evicted_total", "name").WithLabelValues("crowdsecurity/ssh-slow-bf").Add(12)
	gauge("cs_alerts", "reason").WithLabelValues("crowdsecurity/ssh-bf").Set(5)
	gauge("cs_active_decisions", "reason", "origin", "action").WithLabelValues("crowdsecurity/ssh-bf", "crowdsec", "ban").Set(3)
	counter("cs_lapi_route_requests_total", "route", "method").WithLabelValues("/v1/decisions/stream", "GET").Add(1500)
	counter("cs_lapi_bouncer_requests_total", "bouncer", "route", "method").WithLabelValues("fw", "/v1/decisions/stream", "GET").Add(1500)
	counter("cs_lapi_machine_requests_total", "machine", "route", "method").WithLabelValues("host", "/v1/alerts", "POST").Add(5)
	counter("cs_lapi_decisions_ok_total", "bouncer").WithLabelValues("fw").Add(9)
	counter("cs_lapi_decisions_ko_total", "bouncer").WithLabelValues("fw").Add(1491)
	up := gauge("rampart_acquisition_source_up", "source", "type")
	up.WithLabelValues("file:/var/log/auth.log", "syslog").Set(1)
	up.WithLabelValues("syslog:udp/127.0.0.1:514", "syslog").Set(0)
	retries := counter("rampart_acquisition_source_retries_total", "source", "type")
	retries.WithLabelValues("file:/var/log/auth.log", "syslog")
	retries.WithLabelValues("syslog:udp/127.0.0.1:514", "syslog").Add(7)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return srv
}

// metricsConfig writes a configuration whose prometheus listener is addr.
func metricsConfig(t *testing.T, addr string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "config.toml")
	cfg := "[prometheus]\nlisten_addr = " + strconv.Quote(host) + "\nlisten_port = " + port + "\n"
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runMetrics(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCommandWith(&out, &errb, strings.NewReader(""))
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func metricsJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	out, err := runMetrics(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return got
}

func TestMetricsJSONValues(t *testing.T) {
	srv := metricsServer(t)
	cfg := metricsConfig(t, srv.Listener.Addr().String())
	got := metricsJSON(t, "-c", cfg, "-o", "json", "metrics")
	want := map[string]any{
		"acquisition": map[string]any{
			"file:/var/log/auth.log":                          map[string]any{"reads": 120.0, "parsed": 100.0, "unparsed": 20.0, "pour": 60.0, "whitelisted": 4.0},
			"journalctl:journalctl-_SYSTEMD_UNIT=ssh.service": map[string]any{"reads": 3.0},
		},
		"sources": map[string]any{
			"file:/var/log/auth.log":   map[string]any{"syslog": map[string]any{"up": 1.0, "retries": 0.0}},
			"syslog:udp/127.0.0.1:514": map[string]any{"syslog": map[string]any{"up": 0.0, "retries": 7.0}},
		},
		"parsers": map[string]any{"crowdsecurity/sshd-logs": map[string]any{"hits": 120.0, "parsed": 100.0, "unparsed": 20.0}},
		"scenarios": map[string]any{
			"crowdsecurity/ssh-bf":      map[string]any{"curr_count": 2.0, "overflow": 1.0, "instantiation": 7.0, "pour": 30.0, "underflow": 4.0},
			"crowdsecurity/ssh-slow-bf": map[string]any{"pour": 30.0, "evicted": 12.0},
		},
		"whitelists": map[string]any{"crowdsecurity/whitelists": map[string]any{
			"private ipv4/ipv6 ip/ranges": map[string]any{"hits": 100.0, "whitelisted": 4.0}}},
		"alerts":         map[string]any{"crowdsecurity/ssh-bf": 5.0},
		"decisions":      map[string]any{"crowdsecurity/ssh-bf": map[string]any{"crowdsec": map[string]any{"ban": 3.0}}},
		"lapi":           map[string]any{"/v1/decisions/stream": map[string]any{"GET": 1500.0}},
		"lapi-bouncer":   map[string]any{"fw": map[string]any{"/v1/decisions/stream": map[string]any{"GET": 1500.0}}},
		"lapi-machine":   map[string]any{"host": map[string]any{"/v1/alerts": map[string]any{"POST": 5.0}}},
		"lapi-decisions": map[string]any{"fw": map[string]any{"Empty": 1491.0, "NonEmpty": 9.0}},
	}
	if !reflect.DeepEqual(got, want) {
		b, _ := json.MarshalIndent(got, "", "  ")
		t.Errorf("got\n%s", b)
	}
}

func TestMetricsHumanAndShow(t *testing.T) {
	srv := metricsServer(t)
	url := srv.URL + "/metrics"
	out, err := runMetrics(t, "-c", "/nonexistent.toml", "metrics", "--url", url)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"Acquisition Metrics:", "| Source ", "| Lines poured to bucket ", "| file:/var/log/auth.log ",
		"Log Source Status:", "| syslog:udp/127.0.0.1:514 | syslog | 0  | 7        |",
		"| 120 ", "| 1.5k ", "Local API Bouncers Decisions:", "| Non-empty answers ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	// The journalctl source has no parser counters: shown as "-".
	if !strings.Contains(out, "| journalctl:journalctl-_SYSTEMD_UNIT=ssh.service | 3          | -            |") {
		t.Errorf("missing values not shown as -:\n%s", out)
	}
	// Empty sections are skipped when showing everything.
	if strings.Contains(out, "Parser Stash Metrics") || strings.Contains(out, "Bouncer Metrics") {
		t.Errorf("empty section shown:\n%s", out)
	}

	out, err = runMetrics(t, "-c", "/nonexistent.toml", "metrics", "show", "alerts", "scenarios", "--url", url, "--no-unit")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "Scenario Metrics:") || !strings.Contains(out, "Local API Alerts:") ||
		strings.Contains(out, "Acquisition Metrics") || strings.Contains(out, "Local API Metrics:") {
		t.Errorf("show alerts scenarios:\n%s", out)
	}
	// Scenarios come first, in upstream's order, whatever the argument order.
	if strings.Index(out, "Scenario Metrics:") > strings.Index(out, "Local API Alerts:") {
		t.Errorf("order:\n%s", out)
	}

	got := metricsJSON(t, "-c", "/nonexistent.toml", "-o", "json", "metrics", "show", "lapi", "--url", url)
	keys := []string{}
	for k := range got {
		keys = append(keys, k)
	}
	if len(got) != 6 || got["lapi-decisions"] == nil || got["alerts"] == nil || got["acquisition"] != nil {
		t.Errorf("show lapi alias: %v", keys)
	}
	// A section named explicitly is shown even when empty.
	got = metricsJSON(t, "-c", "/nonexistent.toml", "-o", "json", "metrics", "show", "stash", "--url", url)
	if !reflect.DeepEqual(got, map[string]any{"stash": map[string]any{}}) {
		t.Errorf("show stash: %v", got)
	}
	if _, err := runMetrics(t, "metrics", "show", "nope", "--url", url); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown section: %v", err)
	}
}

func TestMetricsList(t *testing.T) {
	out, err := runMetrics(t, "-c", "/nonexistent.toml", "metrics", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| acquisition ", "| Acquisition Metrics ", "| lapi-decisions ", "| bouncers "} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	out, err = runMetrics(t, "-c", "/nonexistent.toml", "-o", "json", "metrics", "list")
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]string
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(list) != 13 || list[0]["type"] != "acquisition" || list[0]["title"] != "Acquisition Metrics" || list[0]["description"] == "" {
		t.Errorf("list json: %v", list)
	}
}

func TestMetricsUnreachable(t *testing.T) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cfg := metricsConfig(t, addr)
	_, err = runMetrics(t, "-c", cfg, "metrics")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"http://" + addr + "/metrics", "prometheus.listen_addr/listen_port", cfg} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	_, err = runMetrics(t, "-c", cfg, "metrics", "--url", "http://"+addr+"/metrics")
	if err == nil || !strings.Contains(err.Error(), "http://"+addr+"/metrics") || !strings.Contains(err.Error(), "--url") {
		t.Errorf("--url error: %v", err)
	}
}
