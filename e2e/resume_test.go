package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/nstest"
)

// The scenario: 3 failed logins, kill -9 of the daemon, 4 more
// while it is down, restart: the brute force is caught. Positions are
// saved here only at start and at stop (state_save_interval = 1h), so
// the kill lands before any periodic save: the worst case, where the
// restart reads again everything since the last save (the 3 lines, whose
// bucket died with the process) and then what was written while down.
// Then a clean stop: 7 failures written while stopped end in a ban too.
func TestResumeAfterKill9(t *testing.T) {
	ns := nstest.NewPublicPair(t, 45)
	s := newStoryWith(t, ns, "../rules", storyOptions{service: `state_save_interval = "1h"`})
	att := ns.AttIP4.String()
	// The source saves its start positions before it reads a line, so
	// once the 3 lines are read the kill comes after that first save.
	s.sshFailures(att, 3)
	if !nstest.Eventually(10*time.Second, func() bool {
		return s.scrape("http://127.0.0.1:6060/metrics").sum("cs_filesource_hits_total", map[string]string{"source": s.path("auth")}) >= 3
	}) {
		t.Fatalf("the agent did not read the first 3 lines")
	}
	must(t, s.crowdsec.Process.Kill())
	_ = s.crowdsec.Wait()
	s.sshFailures(att, 4)
	s.crowdsec = s.restart("crowdsec-2")
	if scenario := s.waitBan(att, 20*time.Second); !strings.HasPrefix(scenario, "rampart/ssh") {
		t.Fatalf("3 + 4 failed logins around a kill -9: ban from %q, want an ssh scenario\n%s", scenario, s.readLog("crowdsec-2"))
	}

	s.stop(s.crowdsec)
	s.sshFailures("192.0.2.66", 7)
	s.crowdsec = s.restart("crowdsec-3")
	if scenario := s.waitBan("192.0.2.66", 20*time.Second); !strings.HasPrefix(scenario, "rampart/ssh") {
		t.Fatalf("7 failed logins written while stopped: ban from %q\n%s", scenario, s.readLog("crowdsec-3"))
	}
}

// restart starts the daemon again, its output in name.out, and waits for
// its LAPI.
func (s *story) restart(name string) *exec.Cmd {
	s.t.Helper()
	cmd := s.start(name, filepath.Join(binDir, "crowdsec"), "-c", s.cfg)
	if !nstest.Eventually(20*time.Second, func() bool {
		return s.ns.Dial(s.ns.Defender, "127.0.0.1:8080", 200*time.Millisecond) == nil && strings.Contains(s.readLog(name), "rules loaded")
	}) {
		s.t.Fatalf("crowdsec did not start again:\n%s", s.readLog(name))
	}
	return cmd
}
