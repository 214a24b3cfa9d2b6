package lapi

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/internal/testdb"
	"github.com/rampart-ips/rampart/models"
)

// TestDiskFull fills a small tmpfs holding the database: writes must fail
// with a clear message while reads and health keep working.
func TestDiskFull(t *testing.T) {
	testdb.SkipUnlessSQLite(t, "fills the SQLite file's disk")
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	l := startLAPIAt(t, filepath.Join(dir, "crowdsec.db"), nil)
	t.Cleanup(l.Stop) // runs before the umount
	l.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"))

	big := strings.Repeat("x", 4000)
	var status int
	var body []byte
	for i := 0; i < 400; i++ {
		a := agentAlert("192.0.2.2", "crowdsecurity/ssh-bf")
		for j := 0; j < 50; j++ {
			a.Events = append(a.Events, &models.Event{Timestamp: a.StartAt, Meta: []models.Meta{{Key: "k", Value: big}}})
		}
		status, body = l.do("POST", "/v1/alerts", l.jwtHeaders(), []*models.Alert{a})
		if status != 201 {
			break
		}
	}
	if status == 201 {
		t.Fatal("the disk never filled up")
	}
	var e models.ErrorResponse
	if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Message, "disk is full") {
		t.Errorf("full disk answer: %d %s", status, body)
	}
	if st, b := l.do("GET", "/health", nil, nil); st != 200 {
		t.Errorf("health after full disk: %d %s", st, b)
	}
	st, b := l.do("GET", "/v1/alerts?value=192.0.2.1", l.jwtHeaders(), nil)
	if st != 200 || !strings.Contains(string(b), "192.0.2.1") {
		t.Errorf("reads after full disk: %d %s", st, b)
	}
}
