package delivery

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/rampart-ips/rampart/models"
)

// hookedPusher is newPusher with its log entries kept for the test.
func hookedPusher(t *testing.T, cfg Config, url string) (*Pusher, *logtest.Hook, *prometheus.Registry) {
	t.Helper()
	l := log.New()
	l.SetOutput(t.Output())
	l.SetLevel(log.DebugLevel)
	hook := logtest.NewLocal(l)
	p, err := New(cfg, newClient(t, url), l.WithField("component", "delivery"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	reg := prometheus.NewRegistry()
	if err := p.Metrics().Register(reg); err != nil {
		t.Fatal(err)
	}
	return p, hook, reg
}

// warnings returns the messages logged at warning level or above.
func warnings(hook *logtest.Hook) []string {
	var out []string
	for _, e := range hook.AllEntries() {
		if e.Level <= log.WarnLevel {
			out = append(out, e.Message)
		}
	}
	return out
}

func logged(hook *logtest.Hook, level log.Level, substr string) bool {
	for _, e := range hook.AllEntries() {
		if e.Level == level && strings.Contains(e.Message, substr) {
			return true
		}
	}
	return false
}

// TestDiskFullLAPIUp fills the queue's filesystem, as an attacker
// flooding /var/log would: alerts still reach the LAPI, straight from
// memory, the trouble is logged once and counted; once the disk has room
// again, alerts go through the queue on disk and that is logged too.
func TestDiskFullLAPIUp(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	dir := smallFS(t, 64<<10)
	p, hook, reg := hookedPusher(t, fastConfig(dir), l.URL())
	fillFS(t, dir, 0)
	run(t, p)

	want := names("full", 0, 9)
	pushAll(t, p, want[:4])
	var batch []*models.Alert
	for _, m := range want[4:] {
		batch = append(batch, alert(m))
	}
	if err := p.Push(context.Background(), batch...); err != nil {
		t.Fatalf("Push of a batch on a full disk: %v", err)
	}
	waitMessages(t, l, want)
	waitFor(t, "the memory buffer to empty", func() bool { return gather(t, reg, "rampart_delivery_queue_memory_alerts", "") == 0 })
	if s := p.Stats(); s.Dropped != 0 || s.Delivered != 9 || s.Queued != 0 {
		t.Errorf("stats: %+v", s)
	}
	if v := gather(t, reg, "rampart_delivery_persist_failures_total", ""); v < 2 {
		t.Errorf("persist failures counted: %v, want one per failed write (at least 2)", v)
	}
	if w := warnings(hook); len(w) != 1 || !strings.Contains(w[0], "memory") {
		t.Errorf("want one warning for the whole episode, got %q", w)
	}

	// Room again: the next alerts are queued on disk, and the episode's
	// end is logged.
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	pushAll(t, p, []string{"full-room"})
	waitMessages(t, l, append(append([]string(nil), want...), "full-room"))
	// the episode ends with the cursor's write after the delivery
	waitFor(t, "the end of the episode to be logged", func() bool { return logged(hook, log.InfoLevel, "disk again") })
	if w := warnings(hook); len(w) != 1 {
		t.Errorf("warnings after the episode: %q", w)
	}
}

// TestDiskNearlyFullLAPIDown pushes a batch bigger than the room left
// while the LAPI is down: what fits is queued on disk, the rest waits in
// memory, and all of it is delivered once the LAPI is back.
func TestDiskNearlyFullLAPIDown(t *testing.T) {
	addr := freeAddr(t)
	db := filepath.Join(t.TempDir(), "crowdsec.db")
	dir := smallFS(t, 64<<10)
	p, _, reg := hookedPusher(t, fastConfig(dir), "http://"+addr+"/")
	fillFS(t, dir, 8<<10)
	run(t, p)

	want := names("nearly", 0, 35)
	var batch []*models.Alert
	for _, m := range want {
		batch = append(batch, alert(m))
	}
	if err := p.Push(context.Background(), batch...); err != nil {
		t.Fatalf("Push of 35 alerts with 8 KiB free: %v", err)
	}
	onDisk := p.q.stats().pending
	if onDisk == 0 || onDisk == 35 {
		t.Errorf("%d of 35 alerts queued on disk, want those that fit (some, not all)", onDisk)
	}
	if m := gather(t, reg, "rampart_delivery_queue_memory_alerts", ""); int(m) != 35-onDisk {
		t.Errorf("memory gauge %v, want %d", m, 35-onDisk)
	}
	if s := p.Stats(); s.Queued != 35 {
		t.Errorf("queued %d, want 35 (disk and memory)", s.Queued)
	}

	l := startLAPI(t, db, addr)
	waitMessages(t, l, want)
	waitFor(t, "the queue to empty", func() bool { return p.Stats().Queued == 0 })
	if s := p.Stats(); s.Dropped != 0 || s.Delivered != 35 {
		t.Errorf("stats: %+v", s)
	}
	if v := gather(t, reg, "rampart_delivery_queue_memory_alerts", ""); v != 0 {
		t.Errorf("memory gauge %v after delivery", v)
	}
}

// TestOpenOnFullDisk starts the agent on a full disk (it restarted during
// a flood): the queue opens, and alerts are delivered from memory.
func TestOpenOnFullDisk(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	dir := smallFS(t, 64<<10)
	queue := filepath.Join(dir, "queue")
	if err := os.Mkdir(queue, 0o700); err != nil {
		t.Fatal(err)
	}
	fillFS(t, dir, 0)
	p, _, _ := hookedPusher(t, fastConfig(queue), l.URL())
	run(t, p)
	want := names("boot", 0, 3)
	pushAll(t, p, want)
	waitMessages(t, l, want)
}

// TestSpillWhenRoom: alerts kept in memory while the LAPI is down go to
// disk once it has room again, and so survive a restart.
func TestSpillWhenRoom(t *testing.T) {
	addr := freeAddr(t)
	dir := smallFS(t, 64<<10)
	p, hook, reg := hookedPusher(t, fastConfig(dir), "http://"+addr+"/")
	fillFS(t, dir, 0)
	stop := run(t, p)
	want := names("spill", 0, 12)
	var batch []*models.Alert
	for _, m := range want {
		batch = append(batch, alert(m))
	}
	if err := p.Push(context.Background(), batch...); err != nil {
		t.Fatal(err)
	}
	if m := gather(t, reg, "rampart_delivery_queue_memory_alerts", ""); m == 0 {
		t.Fatal("nothing kept in memory on a full disk")
	}
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the memory to spill to disk", func() bool { return p.q.stats().pending == 12 })
	if m := gather(t, reg, "rampart_delivery_queue_memory_alerts", ""); m != 0 {
		t.Errorf("memory gauge %v after the spill", m)
	}
	waitFor(t, "the episode's end in the log", func() bool { return logged(hook, log.InfoLevel, "disk again") })
	stop()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), addr)
	p2 := newPusher(t, fastConfig(dir), l.URL())
	run(t, p2)
	waitMessages(t, l, want)
}

// TestMemoryBound: past MaxMemoryAlerts the oldest alerts kept in memory
// go, counted as dropped and logged once.
func TestMemoryBound(t *testing.T) {
	addr := freeAddr(t)
	dir := smallFS(t, 64<<10)
	queue := filepath.Join(dir, "queue")
	if err := os.Mkdir(queue, 0o700); err != nil {
		t.Fatal(err)
	}
	fillFS(t, dir, 0) // before New: not even a segment header fits
	cfg := fastConfig(queue)
	cfg.MaxMemoryAlerts = 5
	p, hook, reg := hookedPusher(t, cfg, "http://"+addr+"/")
	want := names("bound", 0, 8)
	for _, m := range want {
		if err := p.Push(context.Background(), alert(m)); err != nil {
			t.Fatal(err)
		}
	}
	if s := p.Stats(); s.InMemory != 5 || s.Queued != 5 || s.Dropped != 3 {
		t.Errorf("stats %+v, want 5 in memory and 3 dropped", s)
	}
	if v := gather(t, reg, "rampart_delivery_alerts_total", "dropped"); v != 3 {
		t.Errorf("dropped counter %v", v)
	}
	n := 0
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "reached their bound") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("memory bound logged %d times, want once", n)
	}
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), addr)
	run(t, p)
	waitMessages(t, l, want[3:]) // the newest five
}
