package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// repeatScenario overflows for an address the LAPI already holds a long
// ban on: only the decision helpers can tell (the default profile's bans
// last 4h).
const repeatScenario = `type: trigger
name: test/repeat-offender
description: "an address banned for long tries again"
filter: "evt.Meta.log_type in ['ssh_invalid-user', 'ssh_failed-auth'] && GetDecisionsCount(evt.Meta.source_ip) > 0 && GetActiveDecisionsTimeLeft(evt.Meta.source_ip) > duration('100h')"
groupby: evt.Meta.source_ip
blackhole: 1h
labels:
  remediation: true
`

// The agent's rules ask its LAPI about decisions as its machine: a
// scenario filter sees the ban cscli put on one address and not on the
// other.
func TestAgentRulesSeeLAPIDecisions(t *testing.T) {
	dir := t.TempDir()
	rulesDir, err := filepath.Abs("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	l := startLAPI(t, filepath.Join(dir, "crowdsec.db"), "")
	const banned, clean = "203.0.113.50", "203.0.113.51"
	cscli, err := apiclient.New(apiclient.Config{URL: l.URL(), MachineID: testMachine, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Format(time.RFC3339)
	reason := "manual 'ban' from 'test'"
	if _, err := cscli.PushAlerts(context.Background(), []*models.Alert{{
		Scenario: reason, Message: reason, EventsCount: 1, StartAt: at, StopAt: at, Leakspeed: "0", Remediation: true, Kind: "cscli",
		Events: []*models.Event{}, Source: &models.Source{Scope: "Ip", Value: banned},
		Decisions: []*models.Decision{{Duration: "200h", Origin: "cscli", Scenario: reason, Scope: "Ip", Type: "ban", Value: banned}},
	}}); err != nil {
		t.Fatal(err)
	}

	logPath := filepath.Join(dir, "log", "auth.log")
	for _, d := range []string{"acquis.d", "log", "etc/scenarios"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(logPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	acquis := "[[source]]\nsource = \"file\"\nfilenames = [" + strconv.Quote(logPath) + "]\nlabels = { type = \"syslog\" }\nidle_warning = \"0s\"\n"
	files := map[string]string{"acquis.d/test.toml": acquis, "etc/scenarios/repeat-offender.yaml": repeatScenario}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := agentConfig(t, dir, rulesDir, l.URL())
	zero := csconfig.Duration{}
	cfg.Crowdsec.UsageMetricsInterval = &zero
	ag, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ag.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	waitOpen(t, logPath)

	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	repeats := func(ip string) int {
		as, err := l.Store.QueryAlerts(context.Background(), store.AlertFilter{Scenario: "test/repeat-offender", Value: ip, IncludeCAPI: true}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return len(as)
	}
	// A rule never waits long on the LAPI: the first lines may pass before
	// the answer is cached, so keep writing until the alert comes.
	i := 0
	waitFor(t, "the repeat-offender alert", func() bool {
		i++
		for _, ip := range []string{banned, clean} {
			if _, err := fmt.Fprintf(f, "Feb 12 14:10:%02d host sshd[1]: Invalid user bob%d from %s port 5\n", i%60, i, ip); err != nil {
				t.Fatal(err)
			}
		}
		return repeats(banned) == 1
	})
	waitFor(t, "every line", func() bool { return ag.Stats().Lines.Load() == int64(2*i) })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := repeats(clean); n != 0 {
		t.Errorf("%d repeat-offender alerts for %s, which has no decision", n, clean)
	}
}
