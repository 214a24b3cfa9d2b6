package delivery

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rampart-ips/rampart/models"
)

func TestDeliver(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	dir := t.TempDir()
	p := newPusher(t, fastConfig(dir), l.URL())
	reg := prometheus.NewRegistry()
	if err := p.Metrics().Register(reg); err != nil {
		t.Fatal(err)
	}
	run(t, p)

	want := names("deliver", 0, 60) // more than one batch
	// Push from several goroutines, as parser workers do: group commit.
	errs := make(chan error, 3)
	for g := range 3 {
		go func() {
			var err error
			for _, m := range want[g*20 : (g+1)*20] {
				if err = p.Push(context.Background(), alert(m)); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitMessages(t, l, want)
	waitFor(t, "stats", func() bool { s := p.Stats(); return s.Delivered == 60 && s.Queued == 0 })
	if s := p.Stats(); s.Dropped != 0 || s.LastError != "" {
		t.Errorf("stats: %+v", s)
	}
	if v := gather(t, reg, "rampart_delivery_alerts_total", "delivered"); v != 60 {
		t.Errorf("delivered counter = %v", v)
	}
	// The gauge is set just after the stats move: wait for it too.
	waitFor(t, "queue gauge 0", func() bool { return gather(t, reg, "rampart_delivery_queue_alerts", "") == 0 })
}

func TestPushLeavesCallerAlone(t *testing.T) {
	p := newPusher(t, fastConfig(t.TempDir()), "http://127.0.0.1:1/")
	a := alert("mine")
	a.Events = nil
	if err := p.Push(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if a.UUID != "" || a.Events != nil {
		t.Errorf("caller's alert modified: uuid %q events %v", a.UUID, a.Events)
	}
	recs, err := p.q.peek(10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("peek: %v %v", recs, err)
	}
	if q := queuedAlert(t, recs[0]); recs[0].alert.UUID == "" || q.UUID != recs[0].alert.UUID || q.Events == nil {
		t.Errorf("queued alert: uuid %q (%q in its payload) events %v", recs[0].alert.UUID, q.UUID, q.Events)
	}
	if err := p.Push(context.Background(), &models.Alert{Scenario: "x"}); err == nil {
		t.Error("an alert without a source was queued")
	}
}

// TestLAPIDownAtStart: alerts queue while nothing listens, then all reach
// the LAPI once it starts, once each.
func TestLAPIDownAtStart(t *testing.T) {
	addr := freeAddr(t)
	db := filepath.Join(t.TempDir(), "crowdsec.db")
	p := newPusher(t, fastConfig(t.TempDir()), "http://"+addr+"/")
	run(t, p)
	want := names("down", 0, 30)
	pushAll(t, p, want)
	waitFor(t, "a failed push", func() bool { return p.Stats().LastError != "" })
	if s := p.Stats(); s.Queued != 30 || s.Delivered != 0 {
		t.Fatalf("stats while down: %+v", s)
	}
	l := startLAPI(t, db, addr)
	waitMessages(t, l, want)
	waitFor(t, "delivered count", func() bool { s := p.Stats(); return s.Delivered == 30 && s.Queued == 0 })
}

// TestRestart: a new Pusher on the same directory delivers what the
// previous one left, once, and the cursor survives a further restart.
func TestRestart(t *testing.T) {
	addr := freeAddr(t)
	dir := t.TempDir()
	db := filepath.Join(t.TempDir(), "crowdsec.db")

	p1 := newPusher(t, fastConfig(dir), "http://"+addr+"/")
	if _, err := New(fastConfig(dir), newClient(t, "http://"+addr+"/"), testLogger(t)); err == nil {
		t.Error("a second Pusher opened a queue in use")
	}
	want := names("restart", 0, 12)
	pushAll(t, p1, want)
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}

	l := startLAPI(t, db, addr)
	p2 := newPusher(t, fastConfig(dir), l.URL())
	if q := p2.Stats().Queued; q != 12 {
		t.Fatalf("queued after reopen: %d", q)
	}
	stop := run(t, p2)
	waitMessages(t, l, want)
	waitFor(t, "delivered count", func() bool { return p2.Stats().Delivered == 12 })
	stop()
	p2.Close()

	p3 := newPusher(t, fastConfig(dir), l.URL())
	if q := p3.Stats().Queued; q != 0 {
		t.Fatalf("queued after a clean restart: %d", q)
	}
	run(t, p3)
	pushAll(t, p3, []string{"restart-new"})
	waitMessages(t, l, append(append([]string(nil), want...), "restart-new"))
}

// TestTornTail cuts the last record in half, as a crash during an append
// would: the earlier alerts survive, the torn one is dropped, appends go
// on.
func TestTornTail(t *testing.T) {
	addr := freeAddr(t)
	dir := t.TempDir()
	p1 := newPusher(t, fastConfig(dir), "http://"+addr+"/")
	pushAll(t, p1, names("torn", 0, 5))
	p1.Close()

	segs := segments(t, dir)
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	size := fileSize(t, segs[0])
	if err := os.Truncate(segs[0], size-20); err != nil {
		t.Fatal(err)
	}
	// Zeroes after the cut, as a filesystem may leave after a crash.
	f, err := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 64))
	f.Close()

	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), addr)
	p2 := newPusher(t, fastConfig(dir), l.URL())
	if q := p2.Stats().Queued; q != 4 {
		t.Fatalf("queued after recovery: %d, want 4", q)
	}
	run(t, p2)
	pushAll(t, p2, []string{"torn-new"})
	waitMessages(t, l, append(names("torn", 0, 4), "torn-new"))
}

// TestBoundAlerts: past MaxQueueAlerts the oldest go, the newest stay.
func TestBoundAlerts(t *testing.T) {
	addr := freeAddr(t)
	cfg := fastConfig(t.TempDir())
	cfg.MaxQueueAlerts = 10
	p := newPusher(t, cfg, "http://"+addr+"/")
	pushAll(t, p, names("bound", 0, 25))
	if s := p.Stats(); s.Queued != 10 || s.Dropped != 15 {
		t.Fatalf("stats: %+v", s)
	}
	reg := prometheus.NewRegistry()
	if err := p.Metrics().Register(reg); err != nil {
		t.Fatal(err)
	}
	if v := gather(t, reg, "rampart_delivery_alerts_total", "dropped"); v != 15 {
		t.Errorf("dropped counter = %v", v)
	}
	if v := gather(t, reg, "rampart_delivery_queue_alerts", ""); v != 10 {
		t.Errorf("queue gauge = %v", v)
	}
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), addr)
	run(t, p)
	waitMessages(t, l, names("bound", 15, 25))
}

// TestBoundBytes: past MaxQueueBytes whole segments go, oldest first, and
// the directory stays within the bound.
func TestBoundBytes(t *testing.T) {
	dir := t.TempDir()
	cfg := fastConfig(dir)
	cfg.MaxQueueBytes = 64 << 10 // 8 KiB segments
	p := newPusher(t, cfg, "http://127.0.0.1:1/")
	big := strings.Repeat("x", 900)
	for i := range 300 {
		a := alert(big)
		a.Meta = []models.Meta{{Key: "n", Value: string(rune('a' + i%26))}}
		a.EventsCount = int32(i)
		if err := p.Push(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for _, s := range segments(t, dir) {
		total += fileSize(t, s)
	}
	if total > cfg.MaxQueueBytes {
		t.Errorf("queue holds %d bytes, bound %d", total, cfg.MaxQueueBytes)
	}
	s := p.Stats()
	if s.Dropped == 0 || s.Queued+int(s.Dropped) != 300 {
		t.Fatalf("stats: %+v", s)
	}
	recs, err := p.q.peek(1000)
	if err != nil {
		t.Fatal(err)
	}
	first, last := queuedAlert(t, recs[0]), queuedAlert(t, recs[len(recs)-1])
	if len(recs) != s.Queued || last.EventsCount != 299 || first.EventsCount != int32(s.Dropped) {
		t.Errorf("kept %d alerts, first %d last %d", len(recs), first.EventsCount, last.EventsCount)
	}
}

// TestServerErrorThenOK: a LAPI failing with 500 for a while loses
// nothing and duplicates nothing.
func TestServerErrorThenOK(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	fp := newFaultProxy(t, l.URL())
	failures := 0
	fp.setFail(func(r *http.Request) (int, string) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/alerts" && failures < 4 {
			failures++
			return 500, `{"message":"database is locked"}`
		}
		return 0, ""
	})
	p := newPusher(t, fastConfig(t.TempDir()), fp.url)
	pushAll(t, p, names("flaky", 0, 8))
	run(t, p)
	waitMessages(t, l, names("flaky", 0, 8))
	s := p.Stats()
	if s.Dropped != 0 || !strings.Contains(s.LastError, "500") {
		t.Errorf("stats: %+v", s)
	}
}

// TestBadAlerts: alerts the LAPI can never take are isolated and dropped;
// the rest get through. A null decision fails validation (500 "validation
// failure list"); an unparsable duration fails later with a bare 500; a
// LAPI (here a proxy) with a small body limit answers 413 to big batches.
func TestBadAlerts(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	fp := newFaultProxy(t, l.URL())
	fp.setFail(func(r *http.Request) (int, string) {
		if r.Method == http.MethodPost && r.ContentLength > 6000 {
			return http.StatusRequestEntityTooLarge, `{"message":"request body too large"}`
		}
		return 0, ""
	})
	p := newPusher(t, fastConfig(t.TempDir()), fp.url)

	invalid := alert("bad-invalid")
	invalid.Decisions = []*models.Decision{nil}
	badDuration := alert("bad-duration")
	badDuration.Decisions = []*models.Decision{{Duration: "forever", Origin: "cscli", Scenario: "x", Scope: "Ip", Type: "ban", Value: "192.0.2.9"}}
	huge := alert("bad-huge")
	noise := make([]byte, 9000)
	rand.Read(noise)
	huge.Meta = []models.Meta{{Key: "noise", Value: base64.StdEncoding.EncodeToString(noise)}} // gzip cannot shrink it

	good := names("good", 0, 10)
	var batch []*models.Alert
	for i, m := range good {
		batch = append(batch, alert(m))
		switch i {
		case 2:
			batch = append(batch, invalid)
		case 5:
			batch = append(batch, badDuration)
		case 7:
			batch = append(batch, huge)
		}
	}
	if err := p.Push(context.Background(), batch...); err != nil {
		t.Fatal(err)
	}
	run(t, p)
	waitMessages(t, l, good)
	waitFor(t, "drops", func() bool { s := p.Stats(); return s.Dropped == 3 && s.Queued == 0 })
	if s := p.Stats(); s.Delivered != 10 {
		t.Errorf("stats: %+v", s)
	}
}

// TestServerDownDropsNothing: when every push fails with 500 (the
// LAPI's database is broken), nothing is dropped.
func TestServerDownDropsNothing(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	fp := newFaultProxy(t, l.URL())
	fp.setFail(func(r *http.Request) (int, string) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/alerts" {
			return 500, `{"message":"disk is full"}`
		}
		return 0, ""
	})
	p := newPusher(t, fastConfig(t.TempDir()), fp.url)
	pushAll(t, p, names("full", 0, 6))
	run(t, p)
	waitFor(t, "many attempts", func() bool { return fp.count("POST /v1/alerts") > 30 })
	if s := p.Stats(); s.Dropped != 0 || s.Queued != 6 {
		t.Fatalf("stats while the LAPI fails: %+v", s)
	}
	fp.setFail(nil)
	waitMessages(t, l, names("full", 0, 6))
}

// TestRelogin: a LAPI restarted with another JWT secret refuses the old
// token (401); the client logs in again and nothing is lost.
func TestRelogin(t *testing.T) {
	t.Setenv("CS_LAPI_SECRET", strings.Repeat("a", 64))
	db := filepath.Join(t.TempDir(), "crowdsec.db")
	l := startLAPI(t, db, "")
	addr := l.Addr
	fp := newFaultProxy(t, l.URL())
	p := newPusher(t, fastConfig(t.TempDir()), fp.url)
	run(t, p)
	pushAll(t, p, []string{"jwt-0"})
	waitMessages(t, l, []string{"jwt-0"})

	l.Stop()
	t.Setenv("CS_LAPI_SECRET", strings.Repeat("b", 64))
	l = startLAPI(t, db, addr)
	pushAll(t, p, []string{"jwt-1"})
	waitMessages(t, l, []string{"jwt-0", "jwt-1"})
	if n := fp.count("POST /v1/watchers/login"); n != 2 {
		t.Errorf("logins: %d, want 2", n)
	}
	// Delivered counts once the LAPI's answer is back, just after the
	// alert is stored: wait for it rather than race it
	waitFor(t, "two delivered", func() bool { return p.Stats().Delivered == 2 })
	if s := p.Stats(); s.Dropped != 0 {
		t.Errorf("stats: %+v", s)
	}
}

func TestHeartbeat(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	cfg := fastConfig(t.TempDir())
	cfg.HeartbeatInterval = 50 * time.Millisecond
	p := newPusher(t, cfg, l.URL())
	run(t, p)
	var first time.Time
	waitFor(t, "two heartbeats", func() bool {
		m, err := l.Store.GetMachine(context.Background(), testMachine)
		if err != nil || m.LastHeartbeat == nil {
			return false
		}
		if first.IsZero() {
			first = *m.LastHeartbeat
		}
		return m.LastHeartbeat.After(first)
	})
}

// TestCursorDamaged: a damaged cursor file redelivers rather than
// loses.
func TestCursorDamaged(t *testing.T) {
	dir := t.TempDir()
	p := newPusher(t, fastConfig(dir), "http://127.0.0.1:1/")
	pushAll(t, p, names("cur", 0, 3))
	recs, _ := p.q.peek(2)
	if err := p.q.ack(recs[1].seq + 1); err != nil {
		t.Fatal(err)
	}
	p.Close()
	p2 := newPusher(t, fastConfig(dir), "http://127.0.0.1:1/")
	if q := p2.Stats().Queued; q != 1 {
		t.Fatalf("queued after ack and reopen: %d", q)
	}
	p2.Close()
	if err := os.WriteFile(filepath.Join(dir, cursorName), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	p3 := newPusher(t, fastConfig(dir), "http://127.0.0.1:1/")
	if q := p3.Stats().Queued; q != 3 {
		t.Fatalf("queued with a damaged cursor: %d", q)
	}
}

// TestSegmentsReclaimed: delivered segments are deleted.
func TestSegmentsReclaimed(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	dir := t.TempDir()
	cfg := fastConfig(dir)
	cfg.MaxQueueBytes = 64 << 10 // 8 KiB segments
	p := newPusher(t, cfg, l.URL())
	want := names("reclaim", 0, 40)
	for _, m := range want {
		a := alert(m)
		a.Meta = []models.Meta{{Key: "pad", Value: strings.Repeat("p", 1000)}}
		if err := p.Push(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(segments(t, dir)); n < 4 {
		t.Fatalf("only %d segments for 40 KiB", n)
	}
	run(t, p)
	waitMessages(t, l, want)
	waitFor(t, "segments removed", func() bool { return len(segments(t, dir)) == 1 })
}

// TestAckedTornTail: a tail cut after its alerts were delivered must not
// reuse their sequence numbers (the cursor is past them).
func TestAckedTornTail(t *testing.T) {
	dir := t.TempDir()
	p := newPusher(t, fastConfig(dir), "http://127.0.0.1:1/")
	pushAll(t, p, names("acked", 0, 3))
	recs, _ := p.q.peek(10)
	if err := p.q.ack(recs[2].seq + 1); err != nil {
		t.Fatal(err)
	}
	p.Close()
	seg := segments(t, dir)[0]
	if err := os.Truncate(seg, fileSize(t, seg)-5); err != nil {
		t.Fatal(err)
	}
	p2 := newPusher(t, fastConfig(dir), "http://127.0.0.1:1/")
	if q := p2.Stats().Queued; q != 0 {
		t.Fatalf("queued: %d", q)
	}
	pushAll(t, p2, []string{"acked-new"})
	recs, err := p2.q.peek(10)
	if err != nil || len(recs) != 1 || queuedAlert(t, recs[0]).Message != "acked-new" || recs[0].seq != 3 {
		t.Fatalf("peek after recovery: %+v %v", recs, err)
	}
}

// TestOddFiles: a segment whose header never reached the disk is reused,
// a foreign one is moved aside, other files are left alone.
func TestOddFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("seg-00000000000000000000.log", []byte("garbage!garbage!"))
	write("seg-00000000000000000007.log", []byte(segmentMagic[:3]))
	write("notes.txt", []byte("hello"))
	p := newPusher(t, fastConfig(dir), "http://127.0.0.1:1/")
	pushAll(t, p, []string{"odd"})
	recs, err := p.q.peek(10)
	if err != nil || len(recs) != 1 || recs[0].seq != 7 {
		t.Fatalf("peek: %+v %v", recs, err)
	}
	for _, name := range []string{"seg-00000000000000000000.log.corrupt", "notes.txt"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestTimeToDecision: alerts pushed with the read time of their last line
// are observed once the LAPI accepted them, from that read time; alerts
// without one are not observed.
func TestTimeToDecision(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	p := newPusher(t, fastConfig(t.TempDir()), l.URL())
	reg := prometheus.NewRegistry()
	if err := p.Metrics().Register(reg); err != nil {
		t.Fatal(err)
	}
	read := time.Now().Add(-300 * time.Millisecond)
	if err := p.PushTimed(context.Background(), []time.Time{read, {}}, []*models.Alert{alert("timed"), alert("untimed")}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run(t, p)
	waitMessages(t, l, []string{"timed", "untimed"})
	waitFor(t, "delivered", func() bool { return p.Stats().Delivered == 2 })
	elapsed := time.Since(read)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var h *dto.Histogram
	for _, mf := range mfs {
		if mf.GetName() == "rampart_time_to_decision_seconds" {
			h = mf.GetMetric()[0].GetHistogram()
		}
	}
	if h == nil {
		t.Fatal("no rampart_time_to_decision_seconds")
	}
	if h.GetSampleCount() != 1 {
		t.Fatalf("%d observations, want 1 (the untimed alert is not timed)", h.GetSampleCount())
	}
	// At least the 300 ms before the push, at most until delivery was seen.
	if s := h.GetSampleSum(); s < 0.3 || s > elapsed.Seconds() {
		t.Errorf("time to decision %.3fs, want between 0.3s and %.3fs (delivery took %v)", s, elapsed.Seconds(), time.Since(start))
	}
}

// A replay's queue dies with the process, so it is never fsynced (the
// agent would wait on the disk for nothing) nor its cursor written, yet it
// still delivers every alert; a live agent's queue is synced and its
// cursor kept.
func TestEphemeralQueueNeverSyncs(t *testing.T) {
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), "")
	for _, ephemeral := range []bool{true, false} {
		cfg := fastConfig(t.TempDir())
		cfg.Ephemeral = ephemeral
		p := newPusher(t, cfg, l.URL())
		stop := run(t, p)
		want := names(fmt.Sprintf("ephemeral-%v", ephemeral), 0, 60)
		pushAll(t, p, want)
		waitFor(t, "delivery", func() bool { s := p.Stats(); return s.Delivered == 60 && s.Queued == 0 })
		stop()
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		n := p.q.fsyncs.Load()
		if ephemeral && n != 0 {
			t.Errorf("ephemeral queue: %d fsyncs, want none", n)
		}
		if !ephemeral && n == 0 {
			t.Error("durable queue: no fsync")
		}
		_, err := os.Stat(filepath.Join(cfg.QueueDir, cursorName))
		if ephemeral && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("ephemeral queue: cursor written (%v)", err)
		}
		if !ephemeral && err != nil {
			t.Errorf("durable queue: no cursor: %v", err)
		}
	}
}

// The alerts the queue keeps decoded for delivery are bounded during an
// outage's backlog (the rest is read back from disk, in order) and all
// forgotten once delivered.
func TestDecodedAlertsBounded(t *testing.T) {
	addr := freeAddr(t)
	p := newPusher(t, fastConfig(t.TempDir()), "http://"+addr+"/")
	run(t, p)
	want := names("backlog", 0, maxDecoded+200)
	pushAll(t, p, want)
	p.q.mu.Lock()
	kept := len(p.q.decoded)
	p.q.mu.Unlock()
	if kept != maxDecoded {
		t.Errorf("%d alerts kept decoded for %d queued, want the bound %d", kept, len(want), maxDecoded)
	}
	l := startLAPI(t, filepath.Join(t.TempDir(), "crowdsec.db"), addr)
	waitMessages(t, l, want)
	waitFor(t, "delivered count", func() bool { s := p.Stats(); return s.Delivered == uint64(len(want)) && s.Queued == 0 })
	p.q.mu.Lock()
	left := len(p.q.decoded)
	p.q.mu.Unlock()
	if left != 0 {
		t.Errorf("%d decoded alerts left after delivery, want none", left)
	}
}
