package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rampart-ips/rampart/internal/nstest"
)

// promSamples is a scraped exposition: family name → samples.
type promSamples map[string]*dto.MetricFamily

// sum adds the samples of name whose labels include match.
func (p promSamples) sum(name string, match map[string]string) float64 {
	var total float64
	for _, m := range p[name].GetMetric() {
		ok := true
		for k, want := range match {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == want {
					found = true
				}
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

func (s *story) scrape(url string) promSamples {
	s.t.Helper()
	out, err := s.ns.Command(context.Background(), s.ns.Defender, "curl", "-sf", url).Output()
	must(s.t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(out)))
	must(s.t, err)
	return fams
}

// jsonNumber walks a decoded JSON document along path.
func jsonNumber(doc any, path ...string) (float64, bool) {
	for _, k := range path {
		m, ok := doc.(map[string]any)
		if !ok {
			return 0, false
		}
		doc = m[k]
	}
	f, ok := doc.(float64)
	return f, ok
}

// TestMetricsAfterAttack replays a recorded ssh attack into the tailed auth
// log, with whitelisted and unparseable lines mixed in, and checks the
// daemon's metrics value by value, then that cscli metrics -o json shows
// the same values.
func TestMetricsAfterAttack(t *testing.T) {
	ns := nstest.NewPublicPair(t, 44)
	s := newStory(t, ns, "../rules")
	att := ns.AttIP4.String()
	auth := s.path("auth")

	var lines []string
	stamp := time.Now().Format(time.Stamp)
	for i := range 10 {
		lines = append(lines, fmt.Sprintf("%s defender sshd[%d]: Failed password for root from %s port %d ssh2", stamp, 5000+i, att, 40000+i))
	}
	// A private address: parsed, then whitelisted by Rampart's rules.
	for i := range 2 {
		lines = append(lines, fmt.Sprintf("%s defender sshd[%d]: Failed password for root from 10.0.0.5 port %d ssh2", stamp, 6000+i, 41000+i))
	}
	// Not syslog at all: read, then unparsed.
	lines = append(lines, "garbage without a timestamp", "\x01\x02 binary noise", "another line no parser takes")
	f, err := os.OpenFile(auth, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteString(strings.Join(lines, "\n") + "\n")
	must(t, err)
	must(t, f.Close())

	if sc := s.waitBan(att, 10*time.Second); sc != "rampart/ssh-bf" {
		t.Fatalf("ban by %q, want rampart/ssh-bf", sc)
	}
	if !nstest.Eventually(10*time.Second, s.curlTimesOut) {
		t.Fatalf("attacker not blocked\n%s", s.ruleset())
	}
	// The agent's counters settle once every line went through.
	var p promSamples
	src := map[string]string{"source": auth}
	if !nstest.Eventually(5*time.Second, func() bool {
		p = s.scrape("http://127.0.0.1:6060/metrics")
		return p.sum("cs_parser_hits_total", src) == 15 && p.sum("rampart_delivery_alerts_total", map[string]string{"result": "delivered"}) == 1
	}) {
		t.Fatalf("parser saw %v lines, %v alerts delivered; want 15 and 1", p.sum("cs_parser_hits_total", src),
			p.sum("rampart_delivery_alerts_total", map[string]string{"result": "delivered"}))
	}
	bf := map[string]string{"name": "rampart/ssh-bf"}
	checks := []struct {
		what string
		got  float64
		want float64
	}{
		{"lines read from the auth log", p.sum("cs_filesource_hits_total", src), 15},
		{"lines parsed", p.sum("cs_parser_hits_ok_total", map[string]string{"source": auth, "type": "file"}), 12},
		{"lines unparsed", p.sum("cs_parser_hits_ko_total", map[string]string{"source": auth, "type": "file"}), 3},
		{"lines whitelisted", p.sum("cs_node_wl_hits_ok_total", map[string]string{"source": auth, "name": "rampart/whitelists"}), 2},
		// the 6th failure overflows the first bucket; as upstream, the
		// last 4, inside the blackhole, fill a second one
		{"ssh-bf buckets created", p.sum("cs_bucket_instantiation_total", bf), 2},
		{"ssh-bf overflows", p.sum("cs_bucket_overflowed_total", bf), 1},
		{"alerts raised", p.sum("rampart_agent_alerts_total", nil), 1},
		{"alerts timed to their decision", p.sum("rampart_time_to_decision_seconds", nil), 1},
		{"alerts queued", p.sum("rampart_delivery_queue_alerts", nil), 0},
		{"alerts in the LAPI", p.sum("cs_alerts", map[string]string{"reason": "rampart/ssh-bf"}), 1},
		{"active bans", p.sum("cs_active_decisions", map[string]string{"reason": "rampart/ssh-bf", "origin": "crowdsec", "action": "ban"}), 1},
		{"alert pushes by the agent", p.sum("cs_lapi_machine_requests_total", map[string]string{"machine": "story", "route": "/v1/alerts", "method": "POST"}), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	if p.sum("cs_lapi_decisions_ok_total", map[string]string{"bouncer": "fw"}) < 1 {
		t.Error("no non-empty decision answer counted for the bouncer")
	}
	if p.sum("cs_bucket_poured_total", map[string]string{"source": auth, "name": "rampart/ssh-bf"}) < 6 {
		t.Error("fewer than 6 events poured into ssh-bf, yet it overflowed at capacity 5")
	}

	// cscli metrics reads the same endpoint: every value agrees. The agent
	// sees no new lines meanwhile, so the counters have not moved.
	var doc map[string]any
	raw := s.cscli("metrics", "-o", "json")
	must(t, json.Unmarshal([]byte(raw), &doc))
	acq := "file:" + auth
	lapiDec := p.sum("cs_lapi_decisions_ok_total", map[string]string{"bouncer": "fw"})
	agree := []struct {
		path []string
		want float64
	}{
		{[]string{"acquisition", acq, "reads"}, 15},
		{[]string{"acquisition", acq, "parsed"}, 12},
		{[]string{"acquisition", acq, "unparsed"}, 3},
		{[]string{"acquisition", acq, "whitelisted"}, 2},
		{[]string{"acquisition", acq, "pour"}, p.sum("cs_bucket_poured_total", src)},
		{[]string{"scenarios", "rampart/ssh-bf", "overflow"}, 1},
		{[]string{"scenarios", "rampart/ssh-bf", "instantiation"}, 2},
		{[]string{"scenarios", "rampart/ssh-bf", "pour"}, p.sum("cs_bucket_poured_total", bf)},
		{[]string{"scenarios", "rampart/ssh-bf", "curr_count"}, p.sum("cs_buckets", bf)},
		{[]string{"whitelists", "rampart/whitelists", "private, loopback or link-local address", "whitelisted"}, 2},
		{[]string{"alerts", "rampart/ssh-bf"}, 1},
		{[]string{"decisions", "rampart/ssh-bf", "crowdsec", "ban"}, 1},
		{[]string{"lapi-machine", "story", "/v1/alerts", "POST"}, 1},
		{[]string{"lapi-decisions", "fw", "NonEmpty"}, lapiDec},
	}
	for _, a := range agree {
		got, ok := jsonNumber(doc, a.path...)
		if !ok || got != a.want {
			t.Errorf("cscli metrics %s = %v (present %v), Prometheus says %v", strings.Join(a.path, " > "), got, ok, a.want)
		}
	}
	if t.Failed() {
		t.Logf("cscli metrics -o json:\n%s", raw)
	}

	// The bouncer: its own endpoint counts the attacker's dropped SYNs
	// from the rule counters; stopping it sends its last usage report, and
	// cscli shows the LAPI's sum of the reports: the same figure.
	bp := s.scrape("http://127.0.0.1:60601/metrics")
	v4 := map[string]string{"ip_type": "ipv4"}
	dropped := bp.sum("fw_bouncer_dropped_packets", v4)
	if dropped < 1 || bp.sum("fw_bouncer_banned_ips", v4) != 1 {
		t.Errorf("bouncer metrics: %v packets dropped, %v banned; want > 0 and 1", dropped, bp.sum("fw_bouncer_banned_ips", v4))
	}
	checkGrafana(t, p, bp)
	s.stop(s.bouncer)
	raw = s.cscli("metrics", "show", "bouncers", "-o", "json")
	doc = nil
	must(t, json.Unmarshal([]byte(raw), &doc))
	for _, c := range []struct {
		path []string
		want float64
	}{
		{[]string{"bouncers", "fw", "total", "dropped", "packet"}, dropped},
		{[]string{"bouncers", "fw", "total", "dropped", "byte"}, bp.sum("fw_bouncer_dropped_bytes", v4)},
		{[]string{"bouncers", "fw", "total", "active_decisions", "ip"}, 1},
	} {
		if got, ok := jsonNumber(doc, c.path...); !ok || got != c.want {
			t.Errorf("cscli metrics %s = %v (present %v), the bouncer counted %v\n%s", strings.Join(c.path, " > "), got, ok, c.want, raw)
		}
	}
	var info map[string]any
	must(t, json.Unmarshal([]byte(s.cscli("bouncers", "inspect", "fw", "-o", "json")), &info))
	if info["os"] == nil || info["usage_metrics"] == nil {
		t.Errorf("cscli bouncers inspect lacks the OS or usage metrics the bouncer reported: %v", info)
	}
}

// checkGrafana: every series the shipped Grafana dashboard charts is one
// the daemon or the bouncer exposes, so no panel stays empty by a typo.
func checkGrafana(t *testing.T, scraped ...promSamples) {
	t.Helper()
	b, err := os.ReadFile("../packaging/grafana/rampart.json")
	must(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	must(t, json.Unmarshal(b, &dash))
	names := regexp.MustCompile(`\b((?:cs|rampart|fw)_[a-z0-9_]+)`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range names.FindAllStringSubmatch(tg.Expr, -1) {
				name := strings.TrimSuffix(m[1], "_bucket")
				found := false
				for _, s := range scraped {
					found = found || s[name] != nil
				}
				if !found {
					t.Errorf("Grafana panel %q charts %s, which no endpoint exposes", p.Title, m[1])
				}
				n++
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d series found in the Grafana dashboard", n)
	}
}
