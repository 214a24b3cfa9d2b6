package notify

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/testpki"
)

// recorder is a webhook endpoint on loopback that keeps what it receives
// and answers with the statuses queued in answers (200 once they run out).
type recorder struct {
	mu      sync.Mutex
	reqs    []recorded
	answers []int
	hang    chan struct{} // closed to release hanging requests; nil: none hang
	hangN   int           // how many requests hang
}

type recorded struct {
	method, path, query string
	header              http.Header
	body                string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{req.Method, req.URL.Path, req.URL.RawQuery, req.Header.Clone(), string(body)})
	n := len(r.reqs)
	status := http.StatusOK
	if len(r.answers) > 0 {
		status, r.answers = r.answers[0], r.answers[1:]
	}
	hang := r.hang != nil && n <= r.hangN
	r.mu.Unlock()
	if hang {
		select {
		case <-r.hang:
		case <-req.Context().Done():
		}
		return
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, http.StatusText(status))
}

func (r *recorder) got() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func startRecorder(t *testing.T, r *recorder) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		if r.hang != nil {
			select {
			case <-r.hang:
			default:
				close(r.hang)
			}
		}
		srv.Close()
	})
	return srv
}

const listFormat = `{{range .}}{{.Scenario}} {{.Source.IP}} {{range .Decisions}}{{.Type}}#{{.ID}}{{end}};{{end}}`

func TestHTTPHeadersMethodAndBody(t *testing.T) {
	st := testStore(t)
	rec := &recorder{}
	srv := startRecorder(t, rec)
	c := mustParse(t, `
type = "http"
name = "hook"
format = '`+listFormat+`'
url = "`+srv.URL+`/alert"
method = "PUT"
headers = { Authorization = "Bearer xyz", Content-Type = "text/plain" }
`)
	b := runBroker(t, st, c)
	id := storeAlert(t, st, "192.0.2.1", "crowdsecurity/ssh-bf")
	b.Enqueue([]string{"hook"}, id)
	waitFor(t, "one delivery", func() bool { return stats(b, "hook").Sent == 1 })
	got := rec.got()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	r := got[0]
	if r.method != "PUT" || r.path != "/alert" {
		t.Errorf("request %s %s, want PUT /alert", r.method, r.path)
	}
	if r.header.Get("Authorization") != "Bearer xyz" || r.header.Get("Content-Type") != "text/plain" {
		t.Errorf("headers %v", r.header)
	}
	// The stored alert, with its decision's id (rendered after the insert).
	if !strings.HasPrefix(r.body, "crowdsecurity/ssh-bf 192.0.2.1 ban#") || strings.Contains(r.body, "ban#0;") {
		t.Errorf("body %q", r.body)
	}
}

func TestHTTPRetriesErrorStatuses(t *testing.T) {
	st := testStore(t)
	rec := &recorder{answers: []int{500, 503, 200}}
	srv := startRecorder(t, rec)
	c := mustParse(t, `
type = "http"
name = "hook"
format = "{{len .}}"
url = "`+srv.URL+`"
max_retry = 5
`)
	b := runBroker(t, st, c)
	b.Enqueue([]string{"hook"}, storeAlert(t, st, "192.0.2.1", "s"))
	waitFor(t, "delivery after two 5xx", func() bool { return stats(b, "hook").Sent == 1 })
	if n := len(rec.got()); n != 3 {
		t.Errorf("%d attempts, want 3 (500, 503, then 200)", n)
	}
	if s := stats(b, "hook"); s.Failed != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestHTTPGivesUpAfterMaxRetry(t *testing.T) {
	st := testStore(t)
	rec := &recorder{answers: []int{404, 404, 404, 404}}
	srv := startRecorder(t, rec)
	c := mustParse(t, `
type = "http"
name = "hook"
format = "x"
url = "`+srv.URL+`"
max_retry = 2
`)
	b := runBroker(t, st, c)
	b.Enqueue([]string{"hook"}, storeAlert(t, st, "192.0.2.1", "s"))
	waitFor(t, "a failure", func() bool { return stats(b, "hook").Failed == 1 })
	if n := len(rec.got()); n != 3 {
		t.Errorf("%d attempts, want 3 (max_retry = 2)", n)
	}
	if s := stats(b, "hook"); s.Sent != 0 || s.LastError != "HTTP status 404: Not Found" || s.LastErrorAt.IsZero() || !s.LastSent.IsZero() {
		t.Errorf("stats %+v", s)
	}
}

func TestHTTPTimeoutThenRetry(t *testing.T) {
	t.Parallel()
	st := testStore(t)
	rec := &recorder{hang: make(chan struct{}), hangN: 1}
	srv := startRecorder(t, rec)
	c := mustParse(t, `
type = "http"
name = "hook"
format = "x"
url = "`+srv.URL+`"
timeout = "1s"
max_retry = 3
`)
	b := runBroker(t, st, c)
	b.Enqueue([]string{"hook"}, storeAlert(t, st, "192.0.2.1", "s"))
	waitFor(t, "delivery after a timeout", func() bool { return stats(b, "hook").Sent == 1 })
	if n := len(rec.got()); n != 2 {
		t.Errorf("%d attempts, want 2 (one timed out)", n)
	}
	// Send (cscli notifications test) says why it failed.
	rec2 := &recorder{hang: make(chan struct{}), hangN: 1}
	srv2 := startRecorder(t, rec2)
	c2 := mustParse(t, `
type = "http"
name = "hook2"
format = "x"
url = "`+srv2.URL+`"
timeout = "50ms"
`)
	err := Send(context.Background(), c2, nil, 1)
	if err == nil || !strings.Contains(err.Error(), "timeout exceeded") {
		t.Errorf("Send to a hanging endpoint: %v, want a timeout", err)
	}
}

func TestHTTPUnixSocketAndTLS(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "hook.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	us := &http.Server{Handler: rec, ReadHeaderTimeout: 5 * time.Second}
	go us.Serve(ln)
	t.Cleanup(func() { us.Close() })
	c := mustParse(t, `
type = "http"
name = "sock"
format = "over a socket"
url = "http://localhost/hook"
unix_socket = "`+sock+`"
`)
	if err := Send(context.Background(), c, nil, 1); err != nil {
		t.Fatalf("Send over the unix socket: %v", err)
	}
	if got := rec.got(); len(got) != 1 || got[0].body != "over a socket" || got[0].path != "/hook" {
		t.Errorf("received %+v", got)
	}

	// HTTPS with a private CA: refused without ca_cert_path, accepted with.
	pki := testpki.New(t)
	trec := &recorder{}
	ts := httptest.NewUnstartedServer(trec)
	leaf := pki.IssueServerFor("hook", time.Now().Add(time.Hour), "127.0.0.1")
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.Pair}}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	plain := mustParse(t, "type = \"http\"\nname = \"tls\"\nformat = \"x\"\nurl = "+q(ts.URL))
	if err := Send(context.Background(), plain, nil, 1); err == nil {
		t.Error("a certificate from an unknown CA was accepted")
	}
	withCA := mustParse(t, "type = \"http\"\nname = \"tls\"\nformat = \"x\"\nurl = "+q(ts.URL)+"\nca_cert_path = "+q(pki.File))
	if err := Send(context.Background(), withCA, nil, 1); err != nil {
		t.Errorf("with ca_cert_path: %v", err)
	}
}

func TestSlackWebhook(t *testing.T) {
	st := testStore(t)
	rec := &recorder{}
	srv := startRecorder(t, rec)
	c := mustParse(t, `
type = "slack"
name = "slack"
format = "{{range .}}:rotating_light: {{.Source.IP}} {{.Scenario}}{{end}}"
webhook = "`+srv.URL+`/services/T000/B000/XXX"
channel = "#alerts"
username = "rampart"
icon_emoji = ":shield:"
`)
	b := runBroker(t, st, c)
	b.Enqueue([]string{"slack"}, storeAlert(t, st, "198.51.100.7", "crowdsecurity/http-probing"))
	waitFor(t, "the slack message", func() bool { return stats(b, "slack").Sent == 1 })
	r := rec.got()[0]
	if r.method != "POST" || r.path != "/services/T000/B000/XXX" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("request %s %s %v", r.method, r.path, r.header)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	want := map[string]string{"text": ":rotating_light: 198.51.100.7 crowdsecurity/http-probing", "channel": "#alerts",
		"username": "rampart", "icon_emoji": ":shield:"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q (body %s)", k, m[k], v, r.body)
		}
	}
	if _, ok := m["icon_url"]; ok {
		t.Errorf("unset icon_url sent: %s", r.body)
	}
}
