package parser_test

import (
	"fmt"
	"strings"
	"testing"

	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/leakybucket"
	"github.com/rampart-ips/rampart/agent/parser"
)

// TestHubInjectedSourceDropped replays sshd lines whose user name, sent by
// the client at 203.0.113.9, copies sshd's own "from <ip> port <n> ssh2".
// The hub's sshd rules take the first such text: the line would blame
// 198.51.100.200 (or hide behind a whitelisted private address). The
// pipeline must drop it, count it and warn (once per minute), never pour
// it, and leave lines without a copy exactly as they were.
func TestHubInjectedSourceDropped(t *testing.T) {
	he := loadHubEngine(t, []string{"crowdsecurity/syslog-logs", "crowdsecurity/sshd-logs",
		"crowdsecurity/dateparse-enrich", "crowdsecurity/whitelists"}, []string{"crowdsecurity/ssh-bf"})
	hook := &logtest.Hook{}
	std := log.StandardLogger()
	saved := std.ReplaceHooks(log.LevelHooks{})
	std.AddHook(hook)
	t.Cleanup(func() { std.ReplaceHooks(saved) })

	const src = "/var/log/auth.log"
	parse := func(line string) (event.Event, *parser.Drop) {
		t.Helper()
		evt := event.New(event.Line{Raw: line, Src: src, Module: "file", Labels: map[string]string{"type": "syslog"}})
		drop, err := he.pipe.ParseExplain(&evt, nil)
		if err != nil {
			t.Fatalf("ParseExplain(%q): %v", line, err)
		}
		return evt, drop
	}
	engine := leakybucket.NewEngine(he.scenarios, true)
	pour := func(evt *event.Event) []event.Event {
		if !evt.Process || evt.Whitelisted {
			return nil // as the agent does
		}
		return engine.Pour(evt)
	}

	const injected = "Feb 12 14:10:%02d bastion sshd[1]: Failed password for invalid user x from %s port 22 ssh2 from 203.0.113.9 port 5555 ssh2"
	drops := 0
	for i, decoy := range []string{"198.51.100.200", "198.51.100.200", "198.51.100.200", "10.0.0.1", "198.51.100.200",
		"198.51.100.200", "127.0.0.1", "198.51.100.200", "2001:db8::5", "198.51.100.200"} {
		line := fmt.Sprintf(injected, i, decoy)
		evt, drop := parse(line)
		if drop == nil {
			t.Fatalf("%q: not dropped: process %v, source_ip %q, whitelisted %v", line, evt.Process, evt.Meta["source_ip"], evt.Whitelisted)
		}
		drops++
		want := parser.Drop{Stage: "s01-parse", Parser: "crowdsecurity/sshd-logs", Pattern: "SSHD_USER_FAIL",
			Field: "sshd_client_ip", Address: decoy, Rival: "203.0.113.9"}
		if *drop != want {
			t.Errorf("%q: drop %+v, want %+v", line, *drop, want)
		}
		if evt.Process || evt.Whitelisted || evt.Meta["source_ip"] != "" {
			t.Errorf("%q: process %v, whitelisted %v, source_ip %q", line, evt.Process, evt.Whitelisted, evt.Meta["source_ip"])
		}
		if ovf := pour(&evt); len(ovf) > 0 || engine.Buckets() > 0 {
			t.Fatalf("%q: poured: %d overflows, %d buckets", line, len(ovf), engine.Buckets())
		}
	}

	// the warning names the parser, the address, the field and the rival,
	// at most once a minute
	var warned []*log.Entry
	for _, e := range hook.AllEntries() {
		if e.Level == log.WarnLevel && strings.HasPrefix(e.Message, "line dropped") {
			warned = append(warned, e)
		}
	}
	if len(warned) == 0 || len(warned) >= drops {
		t.Fatalf("%d warnings for %d drops, want one (rate-limited)", len(warned), drops)
	}
	for k, v := range map[string]string{"parser": "crowdsecurity/sshd-logs", "field": "sshd_client_ip",
		"source_ip": "198.51.100.200", "rival": "203.0.113.9", "stage": "s01-parse", "src": src} {
		if got, _ := warned[0].Data[k].(string); got != v {
			t.Errorf("warning field %s = %q, want %q (%v)", k, got, v, warned[0].Data)
		}
	}

	// the counter behind rampart_parser_injection_dropped_total
	_, nodes := he.pipe.Stats()
	var dropped int64
	for _, n := range nodes {
		if n.Name == "crowdsecurity/sshd-logs" && n.Source == src {
			dropped += n.Dropped
		} else if n.Dropped != 0 {
			t.Errorf("node %s counted %d drops", n.Name, n.Dropped)
		}
	}
	if dropped != int64(drops) {
		t.Errorf("sshd-logs counted %d drops, want %d", dropped, drops)
	}

	// the same attempts without a copy in the user name parse as before
	// and ban the client
	var alerts []string
	for i := range 10 {
		line := fmt.Sprintf("Feb 12 14:11:%02d bastion sshd[2]: Failed password for invalid user x from 203.0.113.9 port 5555 ssh2", i)
		evt, drop := parse(line)
		if drop != nil || !evt.Process || evt.Meta["source_ip"] != "203.0.113.9" || evt.Meta["target_user"] != "x" {
			t.Fatalf("%q: drop %v, process %v, meta %v", line, drop, evt.Process, evt.Meta)
		}
		for _, ov := range pour(&evt) {
			alerts = append(alerts, ov.Overflow.GetSources()...)
		}
	}
	if len(alerts) != 1 || alerts[0] != "203.0.113.9" {
		t.Errorf("alerts for %v, want 203.0.113.9 once", alerts)
	}
}
