package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ips/rampart/csconfig"
)

// sourcesConfig is an agent configuration with Rampart's sshd rules, the
// given acquisition file and a real LAPI on loopback.
func sourcesConfig(t *testing.T, acquis string) *csconfig.Config {
	t.Helper()
	dir := t.TempDir()
	rulesDir, err := filepath.Abs("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	l := startLAPI(t, filepath.Join(dir, "crowdsec.db"), "")
	for _, d := range []string{"acquis.d", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if acquis != "" {
		if err := os.WriteFile(filepath.Join(dir, "acquis.d", "test.toml"), []byte(acquis), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := agentConfig(t, dir, rulesDir, l.URL())
	cfg.Crowdsec.ParserRoutines = 1
	return cfg
}

// agentConfig is the configuration of an agent in dir (etc/, acquis.d/,
// state/, queue/) with the rules of rulesDir's rampart/sshd collection,
// delivering as the test machine to the LAPI at lapiURL.
func agentConfig(t *testing.T, dir, rulesDir, lapiURL string) *csconfig.Config {
	t.Helper()
	credPath := filepath.Join(dir, "etc", "local_api_credentials.toml")
	if err := csconfig.WriteCredentials(credPath, &csconfig.Credentials{URL: lapiURL, Login: testMachine, Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	cfg := csconfig.Default()
	cfg.ConfigPaths.ConfigDir = filepath.Join(dir, "etc")
	cfg.ConfigPaths.HubDir = rulesDir
	cfg.Crowdsec.AcquisitionDir = filepath.Join(dir, "acquis.d")
	cfg.Crowdsec.Collections = []string{"rampart/sshd"}
	cfg.Crowdsec.StateDir = filepath.Join(dir, "state")
	cfg.Crowdsec.AlertQueueDir = filepath.Join(dir, "queue")
	cfg.API.Client.CredentialsPath = credPath
	return cfg
}

// startAgent runs the agent until the test ends; Run's result arrives on
// the returned channel.
func startAgent(t *testing.T, ag *Agent) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Error("Run did not return")
		}
		ag.Close()
	})
	return done
}

// sample reads the series name{labels} from reg; ok is false when there
// is none.
func sample(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, want := range labels {
				if got[k] != want {
					continue next
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// notStopped fails the test if Run already returned.
func notStopped(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("the agent stopped (Run = %v) while it should retry its source", err)
	default:
	}
}

// TestSyslogPortTaken: the syslog port is held by another process at
// start; the source is retried, reported down meanwhile, and reads what
// is sent once the port is free.
func TestSyslogPortTaken(t *testing.T) {
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := busy.LocalAddr().(*net.UDPAddr).Port
	cfg := sourcesConfig(t, fmt.Sprintf("[[source]]\nsource = \"syslog\"\nlisten_port = %d\nlabels = { type = \"syslog\" }\nidle_warning = \"0s\"\n", port))
	reg := prometheus.NewRegistry()
	ag, err := New(cfg, Options{Registry: reg})
	if err != nil {
		busy.Close()
		t.Fatal(err)
	}
	done := startAgent(t, ag)
	src := map[string]string{"source": "syslog:udp/127.0.0.1:" + strconv.Itoa(port), "type": "syslog"}
	waitFor(t, "the source reported down and retried", func() bool {
		up, ok := sample(t, reg, "rampart_acquisition_source_up", src)
		retries, _ := sample(t, reg, "rampart_acquisition_source_retries_total", src)
		return ok && up == 0 && retries >= 1
	})
	notStopped(t, done)
	busy.Close()
	waitFor(t, "the source up", func() bool {
		up, _ := sample(t, reg, "rampart_acquisition_source_up", src)
		return up == 1
	})
	c, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		if _, err := fmt.Fprintf(c, "<38>Feb 12 14:10:%02d host sshd[1]: Invalid user bob from 203.0.113.%d port 5", i, i+1); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the lines sent once the port was free", func() bool { return ag.Stats().Lines.Load() == 3 })
	notStopped(t, done)
}

// fakeJournalctl prints one sshd entry and follows forever, as
// journalctl --follow does. It names its tools by path: the test's PATH
// holds only the directory it is installed in.
const fakeJournalctl = `#!/bin/sh
echo '{"__CURSOR":"c1","__REALTIME_TIMESTAMP":"1700000000000000","_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"sshd","_PID":"1","MESSAGE":"Invalid user bob from 203.0.113.9 port 5"}'
exec /bin/sleep 3600
`

// TestJournalctlMissing: journalctl is not installed when the agent
// starts; the source is retried and reported down, and reads once
// journalctl appears.
func TestJournalctlMissing(t *testing.T) {
	bin := t.TempDir()
	t.Setenv("PATH", bin)
	cfg := sourcesConfig(t, "[[source]]\nsource = \"journalctl\"\njournalctl_filter = [\"_SYSTEMD_UNIT=ssh.service\"]\nlabels = { type = \"syslog\" }\nidle_warning = \"0s\"\n")
	reg := prometheus.NewRegistry()
	ag, err := New(cfg, Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	done := startAgent(t, ag)
	src := map[string]string{"source": "journalctl:_SYSTEMD_UNIT=ssh.service", "type": "syslog"}
	waitFor(t, "the source reported down and retried", func() bool {
		up, ok := sample(t, reg, "rampart_acquisition_source_up", src)
		retries, _ := sample(t, reg, "rampart_acquisition_source_retries_total", src)
		return ok && up == 0 && retries >= 1
	})
	notStopped(t, done)
	// Written aside and renamed, so the source never runs a half-written
	// script.
	tmp := filepath.Join(t.TempDir(), "journalctl")
	if err := os.WriteFile(tmp, []byte(fakeJournalctl), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(bin, "journalctl")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the entry journalctl printed", func() bool { return ag.Stats().Lines.Load() == 1 })
	if up, _ := sample(t, reg, "rampart_acquisition_source_up", src); up != 1 {
		t.Errorf("source_up = %v once journalctl runs", up)
	}
	notStopped(t, done)
}

// TestConfigThatCannotWork: two sources that listen on the same port can
// never both run; the agent refuses to start instead of running one.
func TestConfigThatCannotWork(t *testing.T) {
	ln, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.LocalAddr().(*net.UDPAddr).Port
	ln.Close()
	src := "[[source]]\nsource = \"syslog\"\nlisten_addr = \"%s\"\nlisten_port = %d\nlabels = { type = \"syslog\" }\n"
	cfg := sourcesConfig(t, fmt.Sprintf(src, "127.0.0.1", port)+fmt.Sprintf(src, "0.0.0.0", port))
	ag, err := New(cfg, Options{})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		err = ag.Run(ctx)
		ag.Close()
	}
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(port)) || !strings.Contains(err.Error(), "test.toml:1") {
		t.Fatalf("agent with two sources on port %d: %v, want an error naming both", port, err)
	}
}

// TestReplayCannotRun: a replay whose source cannot run (journalctl is
// not installed) fails instead of reporting success.
func TestReplayCannotRun(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	cfg := sourcesConfig(t, "")
	ag, err := New(cfg, Options{DSN: "journalctl://filters=_SYSTEMD_UNIT=ssh.service", Labels: map[string]string{"type": "syslog"},
		DrainTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ag.Close()
	if err := ag.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "journalctl") {
		t.Fatalf("replay without journalctl: Run = %v, want an error", err)
	}
}

// TestNoLogSource: a host where cscli setup found no service has an empty
// acquis.d; the agent starts, says it reads nothing, and keeps running
// (its LAPI serves decisions without local logs) until stopped.
func TestNoLogSource(t *testing.T) {
	cfg := sourcesConfig(t, "")
	ag, err := New(cfg, Options{})
	if err != nil {
		t.Fatalf("agent without log sources: %v, want it to start", err)
	}
	if n := ag.Sources(); n != 0 {
		t.Errorf("Sources() = %d", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	defer ag.Close()
	// A Run that returns on its own does so at once; loading the rules
	// again (Check) gives it ample time to.
	if _, _, err := Check(cfg); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v without being stopped", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after stop = %v, want nil", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after stop")
	}
}
