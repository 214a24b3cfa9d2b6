package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/nstest"
)

// Items installed one by one with the real cscli, and a hand-written
// scenario, are what the real crowdsec loads and alerts with: no
// collection names them (the configuration enables rampart/linux only).
func TestItemsInstalledOneByOne(t *testing.T) {
	ns := nstest.NewPublicPair(t, 47)
	s := newStoryWith(t, ns, "../rules", storyOptions{service: `collections = ["rampart/linux"]`})
	s.cscli("parsers", "install", "rampart/sshd-logs")
	s.cscli("scenarios", "install", "rampart/ssh-bf")
	local := filepath.Join(s.dir, "scenarios", "me", "ssh-any.yaml")
	must(t, os.MkdirAll(filepath.Dir(local), 0o755))
	must(t, os.WriteFile(local, []byte("type: trigger\nname: me/ssh-any\ndescription: any failed login\n"+
		"filter: \"evt.Meta.log_type == 'ssh_failed-auth'\"\ngroupby: evt.Meta.source_ip\nblackhole: 1m\nlabels:\n  remediation: true\n"), 0o644))
	list := s.cscli("hub", "list", "-o", "raw")
	for _, want := range []string{"rampart/sshd-logs,enabled,0.1", "rampart/ssh-bf,enabled,0.1", `me/ssh-any,"enabled,local"`, "rampart/linux,enabled,0.1"} {
		if !strings.Contains(list, want) {
			t.Errorf("cscli hub list lacks %q:\n%s", want, list)
		}
	}
	if strings.Contains(list, "rampart/ssh-slow-bf") {
		t.Errorf("an item nobody installed is listed:\n%s", list)
	}

	var b strings.Builder
	at := time.Now().Add(-time.Hour)
	for i := range 8 {
		fmt.Fprintf(&b, "%s host sshd[%d]: Failed password for root from 192.0.2.201 port %d ssh2\n",
			at.Add(time.Duration(i)*time.Second).Format(time.Stamp), 700+i, 41000+i)
	}
	logPath := filepath.Join(s.dir, "one-by-one.log")
	must(t, os.WriteFile(logPath, []byte(b.String()), 0o600))
	conf, err := os.ReadFile(s.cfg)
	must(t, err)
	replayCfg := filepath.Join(s.dir, "replay.toml")
	must(t, os.WriteFile(replayCfg, []byte(strings.Replace(string(conf), "[crowdsec_service]\n",
		fmt.Sprintf("[crowdsec_service]\nalert_queue_dir = %q\n", filepath.Join(s.dir, "replay-queue")), 1)), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := ns.Command(ctx, ns.Defender, filepath.Join(binDir, "crowdsec"), "-c", replayCfg,
		"-dsn", "file://"+logPath, "-type", "syslog", "-no-api").CombinedOutput()
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	for _, sc := range []string{"rampart/ssh-bf", "me/ssh-any"} {
		if !s.hasAlert("192.0.2.201", sc) {
			t.Errorf("no %s alert from the items installed one by one\n%s", sc, out)
		}
	}
}
