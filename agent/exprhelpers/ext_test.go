package exprhelpers

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

func runExpr(t *testing.T, h *Helpers, src string, env map[string]any) any {
	t.Helper()
	prog, err := expr.Compile(src, append(h.Options(), expr.Env(env))...)
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	out, err := expr.Run(prog, env)
	if err != nil {
		t.Fatalf("run %q: %v", src, err)
	}
	return out
}

const winEvent = `<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Security-Auditing' Guid='{54849625}'/><EventID>4625</EventID><TimeCreated SystemTime='2022-05-02T09:16:07.5130219Z'/><Computer>DC01</Computer><Security UserID='S-1-5-18'/></System><EventData><Data Name='TargetUserName'>admin</Data><Data Name='IpAddress'>1.2.3.4</Data><Data Name='LogonType'>3</Data></EventData></Event>`

func TestXMLHelpers(t *testing.T) {
	h := New(t.TempDir())
	env := map[string]any{"raw": winEvent}
	cases := map[string]string{
		`XMLGetAttributeValue(raw, "/Event/System[1]/Provider", "Name")`:          "Microsoft-Windows-Security-Auditing",
		`XMLGetAttributeValue(raw, "/Event/System[1]/TimeCreated", "SystemTime")`: "2022-05-02T09:16:07.5130219Z",
		`XMLGetAttributeValue(raw, "/Event/System[1]/Provider", "Nope")`:          "",
		`XMLGetNodeValue(raw, "/Event/System[1]/EventID")`:                        "4625",
		`XMLGetNodeValue(raw, "/Event/EventData[1]/Data[@Name='IpAddress']")`:     "1.2.3.4",
		`XMLGetNodeValue(raw, "/Event/EventData[1]/Data[2]")`:                     "1.2.3.4",
		`XMLGetNodeValue(raw, "/Event/Missing")`:                                  "",
		`XMLGetNodeValue(raw, "/Event/[[bad xpath")`:                              "",
		`XMLGetNodeValue("<not xml", "/Event")`:                                   "",
		`XMLGetAttributeValue("", "/Event", "x")`:                                 "",
	}
	for src, want := range cases {
		if got := runExpr(t, h, src, env); got != want {
			t.Errorf("%s = %q, want %q", src, got, want)
		}
	}
}

func TestStash(t *testing.T) {
	h := New(t.TempDir())
	now := time.Unix(1000, 0)
	h.now = func() time.Time { return now }
	if err := h.DeclareStash(StashConfig{Name: "s", Size: 2, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	// A second declaration of the same name keeps the first.
	if err := h.DeclareStash(StashConfig{Name: "s", Size: 50}); err != nil {
		t.Fatal(err)
	}
	if err := h.DeclareStash(StashConfig{Name: "bad", Strategy: "FIFO"}); err == nil {
		t.Fatal("unknown strategy accepted")
	}
	if err := h.DeclareStash(StashConfig{}); err == nil {
		t.Fatal("empty name accepted")
	}
	env := map[string]any{}
	runExpr(t, h, `SetInStash("s", "a", "1", duration("10s"))`, env)
	h.SetInStash("s", "b", "2", nil)
	if got := runExpr(t, h, `GetFromStash("s", "a")`, env); got != "1" {
		t.Fatalf("a = %q", got)
	}
	h.SetInStash("s", "c", "3", nil) // size 2: evicts b, the least recently used
	if got := h.GetFromStash("s", "b"); got != "" {
		t.Fatalf("b not evicted: %q", got)
	}
	now = now.Add(11 * time.Second) // a's own ttl (10s) passed, c's (1m) not
	if got := h.GetFromStash("s", "a"); got != "" {
		t.Fatalf("a not expired: %q", got)
	}
	if got := h.GetFromStash("s", "c"); got != "3" {
		t.Fatalf("c = %q", got)
	}
	now = now.Add(time.Minute)
	if got := h.GetFromStash("s", "c"); got != "" {
		t.Fatalf("c not expired: %q", got)
	}
	// Undeclared cache: "", and setting does nothing.
	h.SetInStash("nope", "k", "v", nil)
	if got := runExpr(t, h, `GetFromStash("nope", "k")`, env); got != "" {
		t.Fatalf("undeclared = %q", got)
	}
	// Each Helpers has its own stash.
	if got := New(t.TempDir()).GetFromStash("s", "c"); got != "" {
		t.Fatalf("stash shared between Helpers: %q", got)
	}
}

func TestHTTPHelpers(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
		default:
			buf := make([]byte, 64)
			n, _ := r.Body.Read(buf)
			w.Write([]byte(r.Method + ":" + string(buf[:n])))
		}
	}))
	defer srv.Close()
	h := New(t.TempDir())
	env := map[string]any{"u": srv.URL + "/x", "m": srv.URL + "/missing"}
	if got := runExpr(t, h, `HTTPGet(u)`, env); got != "GET:" {
		t.Fatalf("HTTPGet = %q", got)
	}
	if got := runExpr(t, h, `HTTPGet(u)`, env); got != "GET:" || hits.Load() != 1 {
		t.Fatalf("HTTPGet not cached: %q, %d requests", got, hits.Load())
	}
	if got := runExpr(t, h, `HTTPPost(u, "hello")`, env); got != "POST:hello" {
		t.Fatalf("HTTPPost = %q", got)
	}
	if got := runExpr(t, h, `HTTPRequest("put", u, "b")`, env); got != "PUT:b" {
		t.Fatalf("HTTPRequest = %q", got)
	}
	if got := runExpr(t, h, `HTTPHead(m)`, env); got != 404 {
		t.Fatalf("HTTPHead = %v", got)
	}
	srv.Close()
	// Failures give the zero value and are cached too.
	if got := h.HTTPGet("http://127.0.0.1:1/"); got != "" {
		t.Fatalf("HTTPGet on a closed port = %q", got)
	}
	if got := h.HTTPHead("ftp://example/"); got != 0 {
		t.Fatalf("HTTPHead on ftp = %d", got)
	}
	if got := h.HTTPGet("::bad"); got != "" {
		t.Fatalf("HTTPGet on a bad URL = %q", got)
	}
}

func TestLookupHostAndDecisions(t *testing.T) {
	h := New(t.TempDir())
	env := map[string]any{}
	got := runExpr(t, h, `LookupHost("localhost")`, env).([]string)
	if len(got) == 0 {
		t.Fatal("LookupHost(localhost) gave nothing")
	}
	if got := h.LookupHost("no-such-host.invalid"); got == nil || len(got) != 0 {
		t.Fatalf("LookupHost(invalid) = %#v, want empty list", got)
	}
	for src, want := range map[string]any{
		`GetActiveDecisionsCount("1.2.3.4")`:       0,
		`GetActiveDecisionsTimeLeft("1.2.3.4")`:    time.Duration(0),
		`GetDecisionsCount("1.2.3.4")`:             0,
		`GetDecisionsSinceCount("1.2.3.4", "24h")`: 0,
	} {
		if got := runExpr(t, h, src, env); got != want {
			t.Errorf("%s = %#v, want %#v", src, got, want)
		}
	}
	prog, err := expr.Compile(`CrowdsecCTI("1.2.3.4")`, h.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := expr.Run(prog, nil); err == nil {
		t.Fatal("CrowdsecCTI without a key gave no error")
	}
}

// With every lookup slot taken, a helper answers the zero value at once
// without reaching the network (so a slow server never stalls the
// pipeline), and caches nothing so a later event can try again.
func TestNetInFlightBound(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	h := New(t.TempDir())
	n := &h.ext().net
	for range netMaxInFlight {
		n.sem <- struct{}{}
	}
	if got := h.HTTPGet(srv.URL); got != "" || hits.Load() != 0 {
		t.Fatalf("with no slot free: %q, %d requests", got, hits.Load())
	}
	for range netMaxInFlight {
		<-n.sem
	}
	if got := h.HTTPGet(srv.URL); got != "ok" || hits.Load() != 1 {
		t.Fatalf("after slots freed: %q, %d requests", got, hits.Load())
	}
}

func TestDecisionHelpersWarnOnce(t *testing.T) {
	hook := logtest.NewGlobal()
	defer hook.Reset()
	h := New(t.TempDir())
	for range 3 {
		h.GetDecisionsCount("1.2.3.4")
		h.GetActiveDecisionsCount("1.2.3.4")
	}
	n := 0
	for _, e := range hook.AllEntries() {
		if e.Level == log.WarnLevel {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d warnings, want one per helper", n)
	}
}

// Workers share one Helpers: the XML document cache and the stash are
// used from many goroutines at once (run with -race).
func TestExtConcurrent(t *testing.T) {
	h := New(t.TempDir())
	if err := h.DeclareStash(StashConfig{Name: "c", Size: 16}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				doc := fmt.Sprintf("<E><D N='a'>%d</D></E>", (w*200+i)%20)
				want := fmt.Sprint((w*200 + i) % 20)
				if got := h.XMLGetNodeValue(doc, "/E/D[@N='a']"); got != want {
					t.Errorf("got %q want %q", got, want)
					return
				}
				h.SetInStash("c", want, doc, nil)
				if got := h.GetFromStash("c", want); got != "" && got != doc {
					t.Errorf("stash %q = %q", want, got)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkXMLWindowsStatics is windows-logs' s00 statics plus
// windows-auth's: nine queries on one event, the document parsed once.
func BenchmarkXMLWindowsStatics(b *testing.B) {
	h := New(b.TempDir())
	paths := []string{"/Event/System[1]/Channel", "/Event/System[1]/EventID", "/Event/System[1]/Computer",
		"/Event/EventData[1]/Data[@Name='IpAddress']", "/Event/EventData[1]/Data[@Name='TargetUserName']",
		"/Event/EventData[1]/Data[@Name='LogonType']"}
	for i := 0; b.Loop(); i++ {
		doc := strings.Replace(winEvent, "1.2.3.4", strconv.Itoa(i), 1) // a new event each time
		h.XMLGetAttributeValue(doc, "/Event/System[1]/TimeCreated", "SystemTime")
		h.XMLGetAttributeValue(doc, "/Event/System[1]/Provider", "Name")
		h.XMLGetAttributeValue(doc, "/Event/System[1]/Security", "UserID")
		for _, p := range paths {
			h.XMLGetNodeValue(doc, p)
		}
	}
}
