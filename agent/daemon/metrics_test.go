package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/ruleset"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/loggen"
	"github.com/rampart-ips/rampart/internal/testhub"
)

// TestEngineMetrics replays a generated sshd log through the hub's linux
// collection, under a cap on live buckets small enough to evict, and
// checks the scraped values against what the replay saw.
func TestEngineMetrics(t *testing.T) {
	dir := testhub.Dir(t)
	h, err := hub.OpenHub(dir)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ruleset.Load(h, ruleset.Spec{Collections: []string{"crowdsecurity/sshd"},
		Parsers: []string{"crowdsecurity/syslog-logs", "crowdsecurity/dateparse-enrich", "crowdsecurity/whitelists"}, DataDir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var log bytes.Buffer
	if _, err := loggen.SSHDCount(&log, 3000, 1); err != nil {
		t.Fatal(err)
	}
	engine := rs.NewEngine(true)
	const limit = 20
	engine.SetLimit(limit)
	const src = "/var/log/auth.log"
	var lines, parsed, poured int
	alerts := map[string]int{}
	sc := bufio.NewScanner(&log)
	for sc.Scan() {
		lines++
		evt := event.New(event.Line{Raw: sc.Text(), Src: src, Module: "file", Labels: map[string]string{"type": "syslog"}, Time: time.Now()})
		if err := rs.Parse(&evt, nil); err != nil {
			t.Fatal(err)
		}
		if !evt.Process || evt.Whitelisted {
			continue
		}
		parsed++
		poured++
		for _, ov := range engine.Pour(&evt) {
			if ov.Overflow.Alert != nil {
				alerts[ov.Overflow.Alert.GetScenario()]++
			}
		}
	}
	if alerts["crowdsecurity/ssh-bf"] == 0 {
		t.Fatalf("no ssh-bf alert: %v", alerts)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(newEngineCollector(rs.Parsers, engine))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	// value sums the family's samples whose labels include want.
	value := func(name string, want map[string]string) float64 {
		var sum float64
		mf := byName[name]
		if mf == nil {
			return -1
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
		return sum
	}
	file := map[string]string{"source": src, "type": "file"}
	if got := value("cs_parser_hits_total", file); got != float64(lines) {
		t.Errorf("cs_parser_hits_total = %v, want %d lines", got, lines)
	}
	if got := value("cs_parser_hits_ok_total", file); got != float64(parsed) {
		t.Errorf("cs_parser_hits_ok_total = %v, want %d", got, parsed)
	}
	if got := value("cs_parser_hits_ko_total", file); got != float64(lines-parsed) {
		t.Errorf("cs_parser_hits_ko_total = %v, want %d", got, lines-parsed)
	}
	// every line timed once through the parser, every poured event once
	// through the buckets (histogram sample counts)
	if got := value("cs_parsing_time_seconds", file); got != float64(lines) {
		t.Errorf("cs_parsing_time_seconds counts %v lines, want %d", got, lines)
	}
	if got := value("cs_bucket_pour_seconds", file); got != float64(poured) {
		t.Errorf("cs_bucket_pour_seconds counts %v events, want %d", got, poured)
	}
	if ok, ko := value("cs_bucket_pour_ok_total", nil), value("cs_bucket_pour_ko_total", nil); ok+ko != float64(poured) || ok <= 0 {
		t.Errorf("pour ok %v + ko %v, want %d events with some ok", ok, ko, poured)
	}
	sshd := map[string]string{"source": src, "type": "file", "name": "crowdsecurity/sshd-logs", "stage": "s01-parse"}
	hits, ok, ko := value("cs_node_hits_total", sshd), value("cs_node_hits_ok_total", sshd), value("cs_node_hits_ko_total", sshd)
	if hits <= 0 || ok <= 0 || ok+ko != hits {
		t.Errorf("sshd-logs node: hits %v, ok %v, ko %v", hits, ok, ko)
	}
	if got := value("cs_node_hits_total", map[string]string{"name": "crowdsecurity/syslog-logs"}); got != float64(lines) {
		t.Errorf("syslog-logs node hits = %v, want every line (%d)", got, lines)
	}
	wl := map[string]string{"name": "crowdsecurity/whitelists", "stage": "s02-enrich"}
	if hits, ok := value("cs_node_wl_hits_total", wl), value("cs_node_wl_hits_ok_total", wl); hits != value("cs_node_hits_total", wl) || hits <= 0 || ok < 0 || ok > hits {
		t.Errorf("whitelists: wl hits %v, wl ok %v", hits, ok)
	}
	bf := map[string]string{"name": "crowdsecurity/ssh-bf"}
	// Every alert is an overflow; an overflow inside the key's blackhole
	// is counted too (the bucket did overflow) but raises no alert, as
	// upstream.
	if got := value("cs_bucket_overflowed_total", bf); got < float64(alerts["crowdsecurity/ssh-bf"]) || got <= 0 {
		t.Errorf("ssh-bf overflows = %v, want at least its %d alerts", got, alerts["crowdsecurity/ssh-bf"])
	}
	if got := value("cs_bucket_poured_total", map[string]string{"name": "crowdsecurity/ssh-bf", "source": src, "type": "file"}); got <= 0 {
		t.Errorf("ssh-bf poured = %v", got)
	}
	if got := value("cs_buckets", nil); got != float64(engine.Buckets()) {
		t.Errorf("cs_buckets sums to %v, engine has %d", got, engine.Buckets())
	}
	created, over := value("cs_bucket_instantiation_total", nil), value("cs_bucket_overflowed_total", nil)
	under, canceled := value("cs_bucket_underflowed_total", nil), value("cs_bucket_canceled_total", nil)
	evicted := value("rampart_bucket_evicted_total", nil)
	if created != over+under+canceled+evicted+float64(engine.Buckets()) {
		t.Errorf("created %v != overflowed %v + underflowed %v + canceled %v + evicted %v + alive %d", created, over, under, canceled, evicted, engine.Buckets())
	}
	if got := value("rampart_buckets_limit", nil); got != limit {
		t.Errorf("rampart_buckets_limit = %v, want %d", got, limit)
	}
	if evicted <= 0 {
		t.Errorf("no eviction under a cap of %d", limit)
	}
	for _, s := range engine.ScenarioStats() {
		if got := value("rampart_bucket_evicted_total", map[string]string{"name": s.Name}); s.Created > 0 && got != float64(s.Evicted) {
			t.Errorf("%s: evicted metric %v, engine %d", s.Name, got, s.Evicted)
		}
		if s.Alive > limit {
			t.Errorf("%s: %d live buckets over the cap", s.Name, s.Alive)
		}
	}
	t.Logf("lines %d, parsed %d, alerts %v, buckets %d, created %v", lines, parsed, alerts, engine.Buckets(), created)
	var total int
	for _, n := range alerts {
		total += n
	}
	if got := value("rampart_alert_delay_seconds", nil); got != float64(total) {
		t.Errorf("alert delay samples = %v, want %d alerts", got, total)
	}
}

// TestInjectionDroppedMetric parses sshd lines whose user name copies
// sshd's "from <ip> port <n> ssh2" through the hub's rules: the parser
// drops them, and the scrape counts them per node.
func TestInjectionDroppedMetric(t *testing.T) {
	dir := testhub.Dir(t)
	h, err := hub.OpenHub(dir)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ruleset.Load(h, ruleset.Spec{Parsers: []string{"crowdsecurity/syslog-logs", "crowdsecurity/sshd-logs"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	const src = "/var/log/auth.log"
	for _, line := range []string{
		"Feb 12 14:10:21 bastion sshd[1]: Failed password for invalid user x from 198.51.100.200 port 22 ssh2 from 203.0.113.9 port 5555 ssh2",
		"Feb 12 14:10:22 bastion sshd[1]: Failed password for invalid user x from 10.0.0.1 port 22 ssh2 from 203.0.113.9 port 5555 ssh2",
		"Feb 12 14:10:23 bastion sshd[1]: Failed password for invalid user x from 203.0.113.9 port 5555 ssh2",
	} {
		evt := event.New(event.Line{Raw: line, Src: src, Module: "file", Labels: map[string]string{"type": "syslog"}})
		if err := rs.Parse(&evt, nil); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newEngineCollector(rs.Parsers, nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		if mf.GetName() != "rampart_parser_injection_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got = append(got, fmt.Sprintf("%s %s %s %s = %v", labels["source"], labels["type"], labels["name"], labels["stage"], m.GetCounter().GetValue()))
		}
	}
	want := src + " file crowdsecurity/sshd-logs s01-parse = 2"
	if len(got) != 1 || got[0] != want {
		t.Errorf("rampart_parser_injection_dropped_total: %q, want %q", got, want)
	}
}

// TestBucketLimitFromConfig: crowdsec_service.max_buckets_per_scenario
// reaches the agent's engine (its default when absent), and the scrape
// shows it.
func TestBucketLimitFromConfig(t *testing.T) {
	for _, tc := range []struct {
		set  *int
		want int
	}{{nil, csconfig.DefaultMaxBucketsPerScenario}, {new(7), 7}, {new(0), 0}} {
		cfg := sourcesConfig(t, "[[source]]\nsource = \"file\"\nfilenames = [\"/nonexistent/auth.log\"]\nlabels = { type = \"syslog\" }\n")
		cfg.Crowdsec.MaxBucketsPerScenario = tc.set
		reg := prometheus.NewRegistry()
		ag, err := New(cfg, Options{Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		got, ok := sample(t, reg, "rampart_buckets_limit", nil)
		ag.Close()
		if !ok || got != float64(tc.want) {
			t.Errorf("max_buckets_per_scenario %v: rampart_buckets_limit %v (present %v), want %d", tc.set, got, ok, tc.want)
		}
	}
}
