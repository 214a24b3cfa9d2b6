package e2e

import (
	"encoding/json"
	"os"
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

// With the default state_save_interval (1 s) a restart resumes past the
// lines already read, so the buckets they filled must be rebuilt: the
// file source reads them again as warm-up, whose overflows are dropped.
// In turn: 3 + 4 failed logins around a kill -9, then around a clean stop,
// each end in a ban; the warm-up that re-reads an attack already banned
// raises no second alert; and 5 failures (one short of rampart/ssh-bf)
// read again after a kill -9 are not counted twice.
func TestWarmupAcrossRestarts(t *testing.T) {
	ns := nstest.NewPublicPair(t, 49)
	s := newStory(t, ns, "../rules")
	killed := "192.0.2.71"
	s.sshFailures(killed, 3)
	s.waitSaved()
	must(t, s.crowdsec.Process.Kill())
	_ = s.crowdsec.Wait()
	s.sshFailures(killed, 4)
	s.crowdsec = s.restart("crowdsec-2")
	if scenario := s.waitBan(killed, 20*time.Second); scenario != "rampart/ssh-bf" {
		t.Fatalf("3 + 4 failed logins around a kill -9 (positions saved): ban from %q, want rampart/ssh-bf\n%s", scenario, s.readLog("crowdsec-2"))
	}

	stopped := "192.0.2.72"
	s.sshFailures(stopped, 3)
	s.waitSaved()
	s.stop(s.crowdsec)
	s.sshFailures(stopped, 4)
	s.crowdsec = s.restart("crowdsec-3")
	if scenario := s.waitBan(stopped, 20*time.Second); scenario != "rampart/ssh-bf" {
		t.Fatalf("3 + 4 failed logins around a clean stop: ban from %q, want rampart/ssh-bf\n%s", scenario, s.readLog("crowdsec-3"))
	}

	below := "192.0.2.73"
	s.sshFailures(below, 5)
	s.waitSaved()
	must(t, s.crowdsec.Process.Kill())
	_ = s.crowdsec.Wait()
	s.crowdsec = s.restart("crowdsec-4")
	// A ban written after the restart: every line before it, warm-up
	// included, was poured and its alerts delivered before this one.
	marker := "192.0.2.74"
	s.sshFailures(marker, 6)
	s.waitBan(marker, 20*time.Second)
	if l := s.readLog("crowdsec-4"); !strings.Contains(l, "warm-up: re-reading") {
		t.Fatalf("no warm-up after the restart:\n%s", l)
	}
	if n := s.alertCount(below); n != 0 {
		t.Fatalf("5 failed logins read again after a kill -9: %d alerts, want none (counted twice)\n%s", n, s.readLog("crowdsec-4"))
	}
	// The warm-ups of crowdsec-3 and crowdsec-4 read both attacks again.
	for _, ip := range []string{killed, stopped} {
		if n := s.alertCount(ip); n != 1 {
			t.Fatalf("%s: %d alerts after warm-ups that read its attack again, want 1\n%s", ip, n, s.cscli("alerts", "list", "--ip", ip))
		}
	}
}

// waitSaved waits until the agent's saved position in the auth log is its
// end: a kill then resumes past every line written so far.
func (s *story) waitSaved() {
	s.t.Helper()
	auth := s.path("auth")
	if !nstest.Eventually(10*time.Second, func() bool {
		fi, err := os.Stat(auth)
		if err != nil {
			return false
		}
		states, _ := filepath.Glob(filepath.Join(s.dir, "data", "acquisition", "file-*.offsets"))
		for _, p := range states {
			data, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			var st struct {
				Files []struct {
					Path   string `json:"path"`
					Offset int64  `json:"offset"`
				} `json:"files"`
			}
			if json.Unmarshal(data, &st) != nil {
				continue
			}
			for _, f := range st.Files {
				if f.Path == auth && f.Offset == fi.Size() {
					return true
				}
			}
		}
		return false
	}) {
		s.t.Fatalf("the position in %s was never saved at its end\n%s", auth, s.readLog("crowdsec"))
	}
}

// alertCount counts the alerts on ip.
func (s *story) alertCount(ip string) int {
	s.t.Helper()
	out := strings.TrimSpace(s.cscli("alerts", "list", "-o", "json", "--ip", ip))
	if out == "" || out == "null" {
		return 0
	}
	var alerts []json.RawMessage
	if err := json.Unmarshal([]byte(out), &alerts); err != nil {
		s.t.Fatalf("cscli alerts list -o json: %v\n%s", err, out)
	}
	return len(alerts)
}
