package lapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	log "github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/internal/testdb"
	"github.com/rampart-ips/rampart/models"
)

// panicHook records "handler panicked" log entries.
type panicHook struct {
	mu  sync.Mutex
	got []string
}

func (h *panicHook) Levels() []log.Level {
	return []log.Level{log.ErrorLevel, log.PanicLevel, log.FatalLevel}
}
func (h *panicHook) Fire(e *log.Entry) error {
	if strings.Contains(e.Message, "panic") {
		h.mu.Lock()
		h.got = append(h.got, fmt.Sprintf("%s %v", e.Message, e.Data))
		h.mu.Unlock()
	}
	return nil
}

func watchPanics(t *testing.T) *panicHook {
	h := &panicHook{}
	std := log.StandardLogger()
	old := std.ReplaceHooks(make(log.LevelHooks))
	for lvl, hs := range old {
		for _, hk := range hs {
			std.Hooks[lvl] = append(std.Hooks[lvl], hk)
		}
	}
	std.AddHook(h)
	t.Cleanup(func() { std.ReplaceHooks(old) })
	return h
}

// TestHostileInput throws malformed and oversized input at every body- and
// query-taking route. Nothing may panic, nothing may be half-written, and the
// server must keep answering.
func TestHostileInput(t *testing.T) {
	hook := watchPanics(t)
	l := startLAPI(t, nil)
	key := l.addBouncer("fw")
	jh := l.jwtHdr()
	var mu sync.Mutex
	var internal []string
	check := func(what string, r reply) reply {
		t.Helper()
		if r.Status == 500 && strings.Contains(string(r.Body), `"internal error"`) {
			mu.Lock()
			internal = append(internal, what)
			mu.Unlock()
		}
		return r
	}

	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	deepObj := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	for _, c := range []struct {
		method, path string
		h            http.Header
		status       int
	}{
		{"POST", "/v1/alerts", jh, 400},
		{"POST", "/v1/watchers", nil, 400},
		{"POST", "/v1/watchers/login", hdr("User-Agent", testUA), 401},
		{"POST", "/v1/usage-metrics", keyHdr(key), 400},
		{"POST", "/v1/allowlists/check", jh, 400},
	} {
		for name, body := range map[string]string{"deep array": deep, "deep object": deepObj} {
			r := check(name+" "+c.path, l.send(c.method, c.path, c.h, []byte(body)))
			if r.Status != c.status {
				t.Errorf("%s to %s: %s, want %d", name, c.path, r, c.status)
			}
		}
		// garbage and truncated gzip
		gz := gzipBytes(t, []byte(`[{"scenario":"x"}]`))
		for name, body := range map[string][]byte{"garbage gzip": []byte("\x1f\x8b garbage"), "truncated gzip": gz[:len(gz)/2], "plain text as gzip": []byte("[]")} {
			h := http.Header{}
			for k, v := range c.h {
				h[k] = v
			}
			h.Set("Content-Encoding", "gzip")
			r := check(name+" "+c.path, l.send(c.method, c.path, h, body))
			want := 400
			if r.Status != want {
				t.Errorf("%s to %s: %s, want %d", name, c.path, r, want)
			}
		}
	}
	nested := `[{"scenario":"x","meta":` + deep + `}]`
	if r := check("nested field", l.pushRaw([]byte(nested))); r.Status != 400 {
		t.Errorf("deeply nested field: %s", r)
	}

	// wrong types: bind errors (400), nothing written
	wrong := map[string]func(m map[string]any){
		"events_count as string":   func(m map[string]any) { m["events_count"] = "6" },
		"events_count overflow":    func(m map[string]any) { m["events_count"] = 1 << 40 },
		"events_count float":       func(m map[string]any) { m["events_count"] = 1.5 },
		"capacity as bool":         func(m map[string]any) { m["capacity"] = true },
		"simulated as string":      func(m map[string]any) { m["simulated"] = "false" },
		"source as string":         func(m map[string]any) { m["source"] = "1.2.3.4" },
		"source as array":          func(m map[string]any) { m["source"] = []any{} },
		"decisions as object":      func(m map[string]any) { m["decisions"] = map[string]any{} },
		"events as object":         func(m map[string]any) { m["events"] = map[string]any{} },
		"meta value as number":     func(m map[string]any) { m["meta"] = []any{map[string]any{"key": "k", "value": 1}} },
		"event meta as string":     func(m map[string]any) { m["events"] = []any{map[string]any{"timestamp": "x", "meta": "oops"}} },
		"latitude as string":       func(m map[string]any) { m["source"].(map[string]any)["latitude"] = "north" },
		"labels as string":         func(m map[string]any) { m["labels"] = "x" },
		"decision duration as int": func(m map[string]any) { m["decisions"] = []any{map[string]any{"duration": 4, "value": "1.2.3.4"}} },
		"message as object":        func(m map[string]any) { m["message"] = map[string]any{"a": 1} },
	}
	for name, mut := range wrong {
		a := rawAlert(t, agentAlert("192.0.2.1", "x/y"))
		mut(a)
		r := check(name, l.pushRaw([]any{rawAlert(t, manualAlert("192.0.2.2", "Ip", "4h", "cscli")), a}))
		expectMsg(t, name, r, 400, "")
	}
	// an alert array that is not objects
	for _, body := range []string{`[1]`, `["x"]`, `[[]]`, `[true]`} {
		expectMsg(t, body, check(body, l.pushRaw([]byte(body))), 400, "")
	}
	// case-variant duplicate keys must not smuggle in a nil source
	dup := `[{"scenario":"x","scenario_hash":"","scenario_version":"","message":"","events_count":1,"start_at":"","stop_at":"",
		"capacity":0,"leakspeed":"","simulated":false,"events":[],"source":{"scope":"Ip","value":"192.0.2.3"},"SOURCE":null}]`
	expectMsg(t, "duplicate source key", check("dup", l.pushRaw([]byte(dup))), 500, "validation failure list:\n0.source in body is required")
	dupDec := `[{"scenario":"x","scenario_hash":"","scenario_version":"","message":"","events_count":1,"start_at":"","stop_at":"",
		"capacity":0,"leakspeed":"","simulated":false,"events":[],"source":{"scope":"Ip","value":"192.0.2.3"},
		"decisions":[{"duration":"4h","origin":"cscli","scenario":"x","scope":"Ip","type":"ban","value":"192.0.2.3"}],"Decisions":[null]}]`
	expectMsgPrefix(t, "duplicate decisions key", check("dupdec", l.pushRaw([]byte(dupDec))), 500, "validation failure list:\n")
	l.expectCounts("after wrong-typed pushes", 0, 0)

	// NUL bytes and invalid UTF-8 are stored or dropped, never break output
	nul := agentAlert("192.0.2.10", "evil\x00scenario")
	nul.Message = "a\x00b"
	nul.Meta = []models.Meta{{Key: "k\x00", Value: "v\x00v"}}
	user := manualAlert("ro\x00ot", "username", "4h", "cscli")
	badIP := manualAlert("192.0.2.11\x00", "Ip", "4h", "cscli")
	if r := check("nul", l.pushRaw([]*models.Alert{nul, user, badIP})); r.Status != 201 {
		t.Errorf("alerts with NUL bytes: %s", r)
	}
	invalid := []byte(strings.NewReplacer(`\xff`, "\xff", `\xfe`, "\xfe", `\xc3`, "\xc3").Replace(`[{"scenario":"bad-\xff\xfe-utf8","scenario_hash":"","scenario_version":"","message":"\xc3","events_count":1,
		"start_at":"","stop_at":"","capacity":0,"leakspeed":"","simulated":false,"events":[],"remediation":true,
		"source":{"scope":"\xffscope","value":"\xfe"},
		"decisions":[{"duration":"4h","origin":"cscli","scenario":"\xff","scope":"username","type":"ban","value":"us\xffer"}]}]`))
	if r := check("invalid utf8", l.pushRaw(invalid)); r.Status != 201 {
		t.Errorf("alert with invalid UTF-8: %s", r)
	}
	r, as := l.getAlerts("?limit=0")
	if !utf8.Valid(r.Body) {
		t.Errorf("GET /v1/alerts returned invalid UTF-8")
	}
	// PostgreSQL's text cannot hold NUL: there it reads back as U+FFFD.
	nulAs := "\x00"
	if testdb.Kind() == "postgresql" {
		nulAs = "\ufffd"
	}
	found := false
	for _, a := range as {
		if a.Scenario == "evil"+nulAs+"scenario" && a.Message == "a"+nulAs+"b" {
			found = true
			if len(a.Meta) != 1 || a.Meta[0].Value != "v"+nulAs+"v" {
				t.Errorf("NUL meta round trip: %+v", a.Meta)
			}
		}
	}
	if !found {
		t.Errorf("alert with NUL bytes did not round-trip: %d alerts", len(as))
	}
	r, ds := l.getDecisions(key, "?scopes=username")
	if !utf8.Valid(r.Body) {
		t.Errorf("GET /v1/decisions returned invalid UTF-8")
	}
	if got := decisionKeys(ds); fmt.Sprint(got) != fmt.Sprint([]string{"username:ro" + nulAs + "ot:ban", "username:us\ufffder:ban"}) {
		t.Errorf("username decisions = %q", got)
	}
	st := l.send("GET", "/v1/decisions/stream?startup=true&scopes=username", keyHdr(key), nil)
	var sr models.StreamResponse
	if err := json.Unmarshal(st.Body, &sr); err != nil || !utf8.Valid(st.Body) || len(sr.New) != 2 {
		t.Errorf("stream with NUL/invalid values: %s (%v)", st, err)
	}
	if _, ds := l.getDecisions(key, "?ip=192.0.2.11"); ds != nil {
		t.Errorf("decision on an IP with a NUL byte was kept")
	}

	// overlong meta is truncated
	long := agentAlert("192.0.2.20", "x/long")
	long.Meta = []models.Meta{{Key: strings.Repeat("k", 300), Value: strings.Repeat("v", 5000)}}
	long.Events[0].Meta = []models.Meta{{Key: strings.Repeat("e", 300), Value: strings.Repeat("w", 5000)}}
	long.Message = strings.Repeat("m", 1<<20)
	check("long meta", l.pushRaw([]*models.Alert{long}))
	_, as = l.getAlerts("?value=192.0.2.20")
	if len(as) != 1 {
		t.Fatalf("long alert not stored")
	}
	if m := as[0].Meta; len(m) != 1 || len(m[0].Key) != 255 || len(m[0].Value) != 4095 {
		t.Errorf("alert meta not truncated to 255/4095: %d/%d", len(m[0].Key), len(m[0].Value))
	}
	if e := as[0].Events; len(e) != 1 || len(e[0].Meta) != 1 || len(e[0].Meta[0].Key) > 255 || len(e[0].Meta[0].Value) > 4095 {
		t.Errorf("event meta not truncated")
	}
	if len(as[0].Message) != 1<<20 {
		t.Errorf("1 MiB message came back with %d bytes", len(as[0].Message))
	}

	// many alerts in one gzipped batch
	batch := make([]*models.Alert, 0, 500)
	for i := 0; i < 500; i++ {
		batch = append(batch, agentAlert(fmt.Sprintf("203.0.%d.%d", i/250, i%250+1), "x/batch"))
	}
	body, _ := json.Marshal(batch)
	r = check("batch", l.pushRaw(gzipBytes(t, body), "Content-Encoding", "gzip"))
	var ids []string
	if err := json.Unmarshal(r.Body, &ids); r.Status != 201 || err != nil || len(ids) != 500 {
		t.Errorf("500-alert batch: %d, %d ids, %v", r.Status, len(ids), err)
	}

	// hostile query strings
	for _, q := range []string{
		"ip=" + strings.Repeat("1", 10000),
		"range=" + url.QueryEscape("1.2.3.4/-1"),
		"ip=" + url.QueryEscape("fe80::1%eth0"),
		"ip=%00",
		"limit=99999999999999999999999",
		"limit=-1",
		"offset=-5&limit=2",
		"id_gt=x",
		"scopes=" + url.QueryEscape("ip','range"),
		"value=%ff%fe",
		"scenarios_containing=%25",
		"scenarios_containing=_",
		"origins=" + strings.Repeat("a,", 5000),
		"contains=" + strings.Repeat("t", 1000),
	} {
		for _, path := range []string{"/v1/decisions?", "/v1/decisions/stream?startup=true&"} {
			r := check(path+q, l.send("GET", path+q, keyHdr(key), nil))
			if r.Status != 200 && r.Status != 400 && r.Status != 500 {
				t.Errorf("GET %s%s: %s", path, truncForLog([]byte(q)), r)
			}
			if r.Status != 200 {
				expectMsg(t, path+q, r, r.Status, "")
			}
		}
		for _, path := range []string{"/v1/alerts?", "/v1/decisions?"} {
			method := "GET"
			if path == "/v1/decisions?" {
				method = "DELETE"
			}
			r := check(method+path+q, l.send(method, path+q, jh, nil))
			if r.Status != 200 && r.Status != 500 {
				t.Errorf("%s %s%s: %s", method, path, truncForLog([]byte(q)), r)
			}
		}
	}
	// LIKE wildcards are literal in scenarios_containing
	if _, ds := l.getDecisions(key, "?scenarios_containing=%25"); ds != nil {
		t.Errorf("scenarios_containing=%% matched %v", decisionKeys(ds))
	}
	// hostile paths
	for _, p := range []string{
		"/v1/alerts/" + strings.Repeat("9", 40),
		"/v1/alerts/-1",
		"/v1/alerts/0x10",
		"/v1/alerts/%00",
		"/v1/allowlists/check/%00",
		"/v1/allowlists/check/%ff",
		"/v1/allowlists/check/" + strings.Repeat("a", 5000),
		"/v1/allowlists/%2e%2e",
	} {
		r := check(p, l.send("GET", p, jh, nil))
		if r.Status >= 500 {
			t.Errorf("GET %s: %s", truncForLog([]byte(p)), r)
		}
	}
	r = check("delete huge id", l.send("DELETE", "/v1/decisions/"+strings.Repeat("9", 40), jh, nil))
	expectMsg(t, "delete huge decision id", r, 400, "decision_id must be valid integer")

	// concurrent writers and readers
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				body, _ := json.Marshal([]*models.Alert{manualAlert(fmt.Sprintf("198.18.%d.%d", i, j), "Ip", "4h", "cscli")})
				if r := check("concurrent push", l.send("POST", "/v1/alerts", jh, body)); r.Status != 201 {
					errs <- "push: " + r.String()
				}
				if r := check("concurrent stream", l.send("GET", "/v1/decisions/stream", keyHdr(key), nil)); r.Status != 200 {
					errs <- "stream: " + r.String()
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent: %s", e)
	}
	if _, ds := l.getDecisions(key, "?range=198.18.0.0/16&contains=false"); len(ds) != 40 {
		t.Errorf("concurrent pushes stored %d decisions, want 40", len(ds))
	}

	// still alive, nothing panicked
	if r := l.send("GET", "/health", nil, nil); r.Status != 200 {
		t.Errorf("health after hostile input: %s", r)
	}
	if len(internal) > 0 {
		t.Errorf("requests answered with a recovered panic: %v", internal)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.got) > 0 {
		t.Errorf("handler panics logged: %v", hook.got)
	}
}

// TestOversizedFilterLists sends list filters too big for one SQL query: a
// clear 400 naming the parameter, never SQL in the answer.
func TestOversizedFilterLists(t *testing.T) {
	l := startLAPI(t, nil)
	key := l.addBouncer("fw")
	for _, q := range []string{
		"scenarios_containing=" + strings.Repeat("a", 100_000),
		"scenarios_containing=" + strings.Repeat("ab,", 30_000),
		"scenarios_not_containing=" + strings.Repeat("b", 100_000),
		"scenarios_not_containing=" + strings.Repeat("ab,", 30_000),
		"origins=" + strings.Repeat("o,", 40_000),
		"scopes=" + strings.Repeat("s,", 40_000),
	} {
		param := q[:strings.IndexByte(q, '=')]
		for _, path := range []string{"/v1/decisions?", "/v1/decisions/stream?startup=true&"} {
			r := l.send("GET", path+q, keyHdr(key), nil)
			expectMsgPrefix(t, "GET "+path+param, r, http.StatusBadRequest, param+": ")
			for _, sqlWord := range []string{"SELECT", "LIKE", "SQL", "sqlite"} {
				if strings.Contains(string(r.Body), sqlWord) {
					t.Errorf("GET %s%s: SQL in the answer: %s", path, param, r)
				}
			}
		}
	}
	// lists of a sane size still filter
	if r := l.send("GET", "/v1/decisions?scenarios_containing="+strings.Repeat("x,", 99)+"ssh", keyHdr(key), nil); r.Status != 200 {
		t.Errorf("100 scenarios_containing values: %s", r)
	}
}

// TestDatabaseErrorsStayInTheLog breaks the database under a running LAPI:
// the answers say a database error happened, never what SQLite said.
func TestDatabaseErrorsStayInTheLog(t *testing.T) {
	l := startLAPI(t, nil)
	key := l.addBouncer("fw")
	jh := l.jwtHdr()
	l.push(manualAlert("192.0.2.1", "Ip", "4h", "cscli"))
	if err := l.Store.ExecForTest(`ALTER TABLE decisions RENAME TO decisions_gone`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path string
		h            http.Header
	}{
		{"GET", "/v1/decisions", keyHdr(key)},
		{"GET", "/v1/alerts", jh},
		{"DELETE", "/v1/decisions", jh},
		{"DELETE", "/v1/decisions/1", jh},
	} {
		r := l.send(c.method, c.path, c.h, nil)
		expectMsg(t, c.method+" "+c.path+" on a broken database", r, http.StatusInternalServerError, "database error (details in the LAPI log)")
	}
}

// TestBouncerAuthDatabaseError: a bouncer whose key cannot be checked
// because the database fails gets the database error (500), not 403
// "access forbidden", which says its key was refused (seen while a fleet's
// PostgreSQL restarted).
func TestBouncerAuthDatabaseError(t *testing.T) {
	l := startLAPI(t, nil)
	key := l.addBouncer("fw")
	if err := l.Store.ExecForTest(`ALTER TABLE bouncers RENAME TO bouncers_gone`); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/decisions", "/v1/decisions/stream"} {
		r := l.send("GET", path, keyHdr(key), nil)
		expectMsg(t, "GET "+path+" while the bouncers table fails", r, http.StatusInternalServerError, "database error (details in the LAPI log)")
	}
}

// TestSweepLogsAnOutageOnce: while the database fails, the LAPI's
// every-second sweep logs one warning, not one a second, and says when it
// works again.
func TestSweepLogsAnOutageOnce(t *testing.T) {
	hook := logtest.NewGlobal()
	defer hook.Reset()
	defer log.SetLevel(log.GetLevel())
	log.SetLevel(log.DebugLevel) // the repeats, counted to know the sweep ran
	l := startLAPI(t, nil)
	// The sweep's log entries about the failure, and how many warn (the
	// store's own poller on MySQL logs its one warning besides).
	failures := func() (all, warnings int) {
		for _, e := range hook.AllEntries() {
			if e.Data["component"] != "lapi" {
				continue
			}
			if strings.Contains(e.Message, "expiring decisions") || strings.Contains(e.Message, "decision sequence") {
				if strings.Contains(e.Message, "works again") {
					continue
				}
				all++
				if e.Level <= log.WarnLevel {
					warnings++
				}
			}
		}
		return all, warnings
	}
	if err := l.Store.ExecForTest(`ALTER TABLE counters RENAME TO counters_gone`); err != nil {
		t.Fatal(err)
	}
	if !nstest.Eventually(10*time.Second, func() bool { n, _ := failures(); return n >= 3 }) {
		t.Fatal("the sweep did not fail three times")
	}
	if _, w := failures(); w != 1 {
		t.Errorf("%d warnings for three failed sweeps, want 1", w)
	}
	if err := l.Store.ExecForTest(`ALTER TABLE counters_gone RENAME TO counters`); err != nil {
		t.Fatal(err)
	}
	if !nstest.Eventually(10*time.Second, func() bool {
		for _, e := range hook.AllEntries() {
			if e.Message == "expiring decisions works again" {
				return true
			}
		}
		return false
	}) {
		t.Error("no log line says the sweep works again")
	}
}
