package notify

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// bodies returns the bodies received, in order.
func bodies(r *recorder) []string {
	var out []string
	for _, q := range r.got() {
		out = append(out, q.body)
	}
	return out
}

const ipsFormat = `{{range $i, $a := .}}{{if $i}},{{end}}{{$a.Source.IP}}{{end}}`

func TestGroupWaitAloneSendsOneMessage(t *testing.T) {
	t.Parallel()
	st := testStore(t)
	rec := &recorder{}
	srv := startRecorder(t, rec)
	// Long enough for the three alerts to be queued within it, even on a
	// loaded machine; the test waits for the message, not for the time.
	c := mustParse(t, "type = \"http\"\nname = \"g\"\nformat = '"+ipsFormat+"'\ngroup_wait = \"1s\"\nurl = "+q(srv.URL))
	b := runBroker(t, st, c)
	var ids []int64
	for i := 1; i <= 3; i++ {
		ids = append(ids, storeAlert(t, st, fmt.Sprintf("192.0.2.%d", i), "s"))
	}
	for _, id := range ids {
		b.Enqueue([]string{"g"}, id)
	}
	waitFor(t, "the grouped message", func() bool { return stats(b, "g").Sent >= 1 && stats(b, "g").Queued == 0 })
	// Upstream sends three messages here (one alert each).
	if got := bodies(rec); !slices.Equal(got, []string{"192.0.2.1,192.0.2.2,192.0.2.3"}) {
		t.Errorf("messages %q, want one with the three alerts", got)
	}
}

func TestGroupThresholdChunks(t *testing.T) {
	t.Parallel()
	st := testStore(t)
	rec := &recorder{}
	srv := startRecorder(t, rec)
	c := mustParse(t, "type = \"http\"\nname = \"g\"\nformat = '"+ipsFormat+"'\ngroup_threshold = 2\nurl = "+q(srv.URL))
	b := runBroker(t, st, c)
	for i := 1; i <= 5; i++ {
		b.Enqueue([]string{"g"}, storeAlert(t, st, fmt.Sprintf("192.0.2.%d", i), "s"))
	}
	waitFor(t, "two messages", func() bool { return stats(b, "g").Sent == 2 })
	// The fifth waits for a sixth (threshold only, as upstream).
	if s := stats(b, "g"); s.Queued != 1 {
		t.Errorf("queued %d, want 1", s.Queued)
	}
	if got := bodies(rec); !slices.Equal(got, []string{"192.0.2.1,192.0.2.2", "192.0.2.3,192.0.2.4"}) {
		t.Errorf("messages %q", got)
	}
}

func TestGroupWaitWithThresholdChunks(t *testing.T) {
	t.Parallel()
	st := testStore(t)
	rec := &recorder{}
	srv := startRecorder(t, rec)
	c := mustParse(t, "type = \"http\"\nname = \"g\"\nformat = '"+ipsFormat+"'\ngroup_wait = \"1s\"\ngroup_threshold = 2\nurl = "+q(srv.URL))
	b := runBroker(t, st, c)
	for i := 1; i <= 3; i++ {
		b.Enqueue([]string{"g"}, storeAlert(t, st, fmt.Sprintf("192.0.2.%d", i), "s"))
	}
	waitFor(t, "both messages", func() bool { return stats(b, "g").Sent == 2 })
	if got := bodies(rec); !slices.Equal(got, []string{"192.0.2.1,192.0.2.2", "192.0.2.3"}) {
		t.Errorf("messages %q", got)
	}
}

// A dead endpoint fills the queue; Enqueue still returns at once and the
// overflow is counted, per notification: another one is unaffected.
func TestQueueOverflowDropsWithoutBlocking(t *testing.T) {
	t.Parallel()
	st := testStore(t)
	dead := &recorder{hang: make(chan struct{}), hangN: 1 << 30}
	deadSrv := startRecorder(t, dead)
	live := &recorder{}
	liveSrv := startRecorder(t, live)
	cd := mustParse(t, "type = \"http\"\nname = \"dead\"\nformat = \"x\"\ntimeout = \"1h\"\nurl = "+q(deadSrv.URL))
	cl := mustParse(t, "type = \"http\"\nname = \"live\"\nformat = \"x\"\nurl = "+q(liveSrv.URL))
	b := runBroker(t, st, cd, cl)
	id := storeAlert(t, st, "192.0.2.1", "s")
	b.Enqueue([]string{"dead"}, id)
	waitFor(t, "the dead endpoint to hold the worker", func() bool { return len(dead.got()) == 1 })
	// A blocking Enqueue would hang here (and the test time out).
	extra := 10
	for range QueueSize + extra {
		b.Enqueue([]string{"dead"}, id)
	}
	s := stats(b, "dead")
	if s.Dropped != uint64(extra) || s.Queued != QueueSize+1 {
		t.Errorf("stats %+v, want %d dropped and %d queued", s, extra, QueueSize+1)
	}
	b.Enqueue([]string{"live", "unknown"}, id)
	waitFor(t, "the other notification", func() bool { return stats(b, "live").Sent == 1 })
}

func TestRenderErrorIsNotRetried(t *testing.T) {
	st := testStore(t)
	rec := &recorder{}
	srv := startRecorder(t, rec)
	// Valid template, failing at run time: index out of range.
	c := mustParse(t, "type = \"http\"\nname = \"bad\"\nformat = '{{index . 5}}'\nurl = "+q(srv.URL))
	b := runBroker(t, st, c)
	b.Enqueue([]string{"bad"}, storeAlert(t, st, "192.0.2.1", "s"))
	waitFor(t, "the failure", func() bool { return stats(b, "bad").Failed == 1 })
	if n := len(rec.got()); n != 0 {
		t.Errorf("%d requests for a message that did not render", n)
	}
}

func TestTemplateFunctions(t *testing.T) {
	st := testStore(t)
	id := storeAlert(t, st, "192.0.2.9", "crowdsecurity/ssh-bf")
	a, err := st.GetAlert(t.Context(), id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, `type = "file"
name = "f"
log_path = "/nonexistent/x"
format = '''{{range .}}{{GetMeta . "target_user" | join ","}}|{{.Scenario | upper}}|{{HTMLEscape "<b>"}}|{{ne (index .Decisions 0).ID 0}}|{{toJson .Source}}{{end}}|{{len Hostname | lt 0}}'''`)
	got, err := c.Render([]*models.Alert{a})
	if err != nil {
		t.Fatal(err)
	}
	want := `root|CROWDSECURITY/SSH-BF|&lt;b&gt;|true|{"ip":"192.0.2.9","scope":"Ip","value":"192.0.2.9"}|true`
	if got != want {
		t.Errorf("rendered\n%s\nwant\n%s", got, want)
	}
	cti := mustParse(t, "type = \"file\"\nname = \"f\"\nlog_path = \"/x\"\nformat = '{{CrowdsecCTI \"1.2.3.4\"}}'")
	if _, err := cti.Render(nil); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("CrowdsecCTI: %v", err)
	}
}

// A long group_wait does not let a group grow without bound in memory: at
// QueueSize alerts it is sent.
func TestGroupIsBounded(t *testing.T) {
	t.Parallel()
	st := testStore(t)
	rec := &recorder{}
	srv := startRecorder(t, rec)
	c := mustParse(t, "type = \"http\"\nname = \"g\"\nformat = '{{len .}}'\ngroup_wait = \"1h\"\nurl = "+q(srv.URL))
	b := runBroker(t, st, c)
	id := storeAlert(t, st, "192.0.2.1", "s")
	for range QueueSize {
		b.Enqueue([]string{"g"}, id)
	}
	waitFor(t, "the full group", func() bool { return stats(b, "g").Sent == 1 })
	if got := bodies(rec); !slices.Equal(got, []string{fmt.Sprint(QueueSize)}) {
		t.Errorf("messages %q, want one of %d alerts", got, QueueSize)
	}
	if s := stats(b, "g"); s.Queued != 0 || s.Dropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestDeliveriesRecorded follows one message failing, being retried and
// getting through, and one given up: the figures say which message is
// being retried and keep each outcome, newest first, bounded. The webhook's
// secret query never shows in an error.
func TestDeliveriesRecorded(t *testing.T) {
	t.Parallel()
	st := testStore(t)
	var mu sync.Mutex
	calls := 0
	inSecond, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		switch {
		case n == 1:
			w.WriteHeader(http.StatusInternalServerError)
		case n == 2:
			close(inSecond)
			<-release
		case r.URL.Query().Get("fail") != "":
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	c := mustParse(t, "type = \"http\"\nname = \"h\"\nformat = '"+ipsFormat+"'\nmax_retry = 2\nurl = "+q(srv.URL+"/?token=s3cret"))
	b := runBroker(t, st, c)
	b.Enqueue([]string{"h"}, storeAlert(t, st, "192.0.2.1", "s"))
	<-inSecond
	if s := stats(b, "h"); s.Retrying != 1 || s.Queued != 1 || s.Sent != 0 || !strings.Contains(s.LastError, "HTTP status 500") || len(s.Recent) != 0 {
		t.Errorf("during the retry: %+v", s)
	}
	close(release)
	waitFor(t, "the message delivered", func() bool { return stats(b, "h").Sent == 1 })
	s := stats(b, "h")
	if s.Retrying != 0 || s.Queued != 0 || len(s.Recent) != 1 || s.LastSent.IsZero() {
		t.Fatalf("after the retry: %+v", s)
	}
	if d := s.Recent[0]; d.Alerts != 1 || d.Attempts != 2 || d.Error != "" || d.At.IsZero() {
		t.Errorf("delivery %+v: want 1 alert in 2 attempts, sent", d)
	}

	// Given up after max_retry, on a connection refused: its error names
	// the endpoint without its query.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	c2 := mustParse(t, "type = \"http\"\nname = \"d\"\nformat = '"+ipsFormat+"'\nmax_retry = 1\nurl = "+q(deadURL+"/hook?token=s3cret"))
	b2 := runBroker(t, st, c2)
	for i := 1; i <= RecentDeliveries+2; i++ {
		b2.Enqueue([]string{"d"}, storeAlert(t, st, fmt.Sprintf("192.0.2.%d", i), "s"))
	}
	waitFor(t, "every message given up", func() bool { return stats(b2, "d").Failed == RecentDeliveries+2 })
	s = stats(b2, "d")
	if len(s.Recent) != RecentDeliveries || s.Retrying != 0 || s.Queued != 0 || !s.LastSent.IsZero() {
		t.Fatalf("after giving up: %+v", s)
	}
	for i, d := range s.Recent {
		if d.Attempts != 2 || d.Alerts != 1 || !strings.Contains(d.Error, "after 2 attempts") || !strings.Contains(d.Error, deadURL+"/hook") ||
			strings.Contains(d.Error, "s3cret") || (i > 0 && d.At.After(s.Recent[i-1].At)) {
			t.Errorf("delivery %d: %+v", i, d)
		}
	}
	if strings.Contains(s.LastError, "s3cret") {
		t.Errorf("last error shows the secret: %s", s.LastError)
	}
}

// Set while running: an unchanged notification keeps its worker, a new
// one starts, a changed one goes on with its figures, a removed one stops.
func TestBrokerSetWhileRunning(t *testing.T) {
	t.Parallel()
	st := testStore(t)
	rec := &recorder{}
	srv := startRecorder(t, rec)
	rec2 := &recorder{}
	srv2 := startRecorder(t, rec2)
	g := func(prefix string) *Config {
		return mustParse(t, "type = \"http\"\nname = \"g\"\nformat = '"+prefix+ipsFormat+"'\nurl = "+q(srv.URL))
	}
	two := mustParse(t, "type = \"http\"\nname = \"two\"\nformat = '"+ipsFormat+"'\nurl = "+q(srv2.URL))
	b := runBroker(t, st, g("one:"))
	b.Enqueue([]string{"g"}, storeAlert(t, st, "192.0.2.1", "s"))
	waitFor(t, "the first message", func() bool { return stats(b, "g").Sent == 1 })
	before := b.state.Load().workers["g"]

	if err := b.Set([]*Config{g("one:"), two}); err != nil {
		t.Fatal(err)
	}
	if b.state.Load().workers["g"] != before {
		t.Error("an unchanged notification got a new worker")
	}
	b.Enqueue([]string{"g", "two"}, storeAlert(t, st, "192.0.2.2", "s"))
	waitFor(t, "both messages", func() bool { return stats(b, "g").Sent == 2 && stats(b, "two").Sent == 1 })

	if err := b.Set([]*Config{g("new:")}); err != nil {
		t.Fatal(err)
	}
	if b.Has("two") || b.Len() != 1 {
		t.Errorf("after removing two: %v", b.Configs())
	}
	b.Enqueue([]string{"g", "two"}, storeAlert(t, st, "192.0.2.3", "s"))
	waitFor(t, "the changed notification's message", func() bool { return stats(b, "g").Sent == 3 })
	if got := bodies(rec); !slices.Equal(got, []string{"one:192.0.2.1", "one:192.0.2.2", "new:192.0.2.3"}) {
		t.Errorf("messages %q", got)
	}
	if got := bodies(rec2); !slices.Equal(got, []string{"192.0.2.2"}) {
		t.Errorf("removed notification's messages %q", got)
	}
}
