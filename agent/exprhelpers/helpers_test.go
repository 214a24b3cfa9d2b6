package exprhelpers

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/testhub"
)

// hubData is the real hub data directory the tests load.
func hubData(t testing.TB) string {
	t.Helper()
	return filepath.Join(testhub.Dir(t), "data")
}

// hubDataFiles are the typed data items of the hub scenarios, as declared
// there (http-bad-user-agent and thinkphp set the LRU cache).
var hubDataFiles = []DataFile{
	{DestFile: "admin_interfaces.txt", Type: "string"},
	{DestFile: "backdoors.txt", Type: "string"},
	{DestFile: "bad_user_agents.regex.txt", Type: "regexp", Strategy: "LRU", Size: 40, TTL: "10s"},
	{DestFile: "http_path_traversal.txt", Type: "string"},
	{DestFile: "jira_cve_2021-26086.txt", Type: "string"},
	{DestFile: "log4j2_cve_2021_44228.txt", Type: "string"},
	{DestFile: "sensitive_data.txt", Type: "string"},
	{DestFile: "sqli_probe_patterns.txt", Type: "string"},
	{DestFile: "technology_probing.json", Type: "map"},
	{DestFile: "thinkphp_cve_2018-20062.txt", Type: "regexp", Strategy: "LRU", Size: 20, TTL: "10s"},
	{DestFile: "trendy_cves_uris.json", Type: "string"},
	{DestFile: "xss_probe_patterns.txt", Type: "string"},
	{DestFile: "GeoLite2-City.mmdb"}, // untyped: ignored, even though absent
}

func hubHelpers(t testing.TB) *Helpers {
	t.Helper()
	h := New(hubData(t))
	if err := h.Load(hubDataFiles); err != nil {
		t.Fatalf("Load hub data: %v", err)
	}
	return h
}

// countLines counts a file's lines that are neither empty nor comments.
func countLines(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(hubData(t), name))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSuffix(l, "\r")
		if l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}

func TestLoadHubData(t *testing.T) {
	h := hubHelpers(t)
	for _, df := range hubDataFiles {
		want := 0
		if df.Type != "" {
			want = countLines(t, df.DestFile)
		}
		var got int
		switch df.Type {
		case "string":
			got = len(h.File(df.DestFile))
		case "regexp":
			got = len(h.state.Load().regexps[df.DestFile])
		case "map":
			got = len(h.FileMap(df.DestFile))
		}
		if got != want || (df.Type != "" && want == 0) {
			t.Errorf("%s (%s): %d entries, want %d", df.DestFile, df.Type, got, want)
		}
	}
	// Comments are skipped, content is kept as is.
	for _, l := range h.File("admin_interfaces.txt") {
		if strings.HasPrefix(l, "#") || l == "" {
			t.Errorf("admin_interfaces.txt kept %q", l)
		}
	}
	if got := h.File("backdoors.txt"); len(got) == 0 || got[0] != strings.Split(readFile(t, "backdoors.txt"), "\n")[0] {
		t.Errorf("backdoors.txt first line = %q", got[:1])
	}
	// The file a string filter scans is the stored slice, not a copy.
	a, b := h.File("sensitive_data.txt"), h.File("sensitive_data.txt")
	if &a[0] != &b[0] {
		t.Error("File copies its slice")
	}
	if h.File("nope.txt") != nil || h.RegexpInFile("x", "nope.txt") || h.LookupFile("x", "nope.txt") != "" || h.FileMap("nope") != nil {
		t.Error("unknown files must give zero values")
	}
	// Type mismatch: a regexp file is not a string file.
	if h.File("bad_user_agents.regex.txt") != nil {
		t.Error("File on a regexp file")
	}
	if got := h.CacheSizes(); len(got) != 2 {
		t.Errorf("CacheSizes = %v, want the 2 LRU regexp files", got)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(hubData(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeData(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadErrors(t *testing.T) {
	dir := writeData(t, map[string]string{
		"ok.txt":        "a\r\n\r\n# comment\nb\n",
		"bad.regex":     "^ok$\n# c\n(unclosed\n",
		"bad.json":      `{"tag":"t","pattern":"/x","type":"equals"}` + "\nnot json\n",
		"notag.json":    `{"pattern":"/x","type":"equals"}` + "\n",
		"badtype.json":  `{"tag":"t","pattern":"/x","type":"fuzzy"}` + "\n",
		"badre.json":    `{"tag":"t","pattern":"(","type":"regex"}` + "\n",
		"nopattern.map": `{"tag":"t","type":"contains"}` + "\n",
	})
	tests := []struct {
		name    string
		files   []DataFile
		wantErr []string // substrings of the error; nil: no error
	}{
		{"missing file", []DataFile{{DestFile: "absent.txt", Type: "string"}}, []string{"absent.txt", "missing"}},
		{"bad regexp names file and line", []DataFile{{DestFile: "bad.regex", Type: "regexp"}}, []string{"bad.regex", "line 3", "(unclosed"}},
		{"bad map line", []DataFile{{DestFile: "bad.json", Type: "map"}}, []string{"bad.json", "line 2"}},
		{"map without tag", []DataFile{{DestFile: "notag.json", Type: "map"}}, []string{"notag.json", "line 1", "tag"}},
		{"map without pattern", []DataFile{{DestFile: "nopattern.map", Type: "map"}}, []string{"nopattern.map", "pattern"}},
		{"map bad entry type", []DataFile{{DestFile: "badtype.json", Type: "map"}}, []string{"badtype.json", "fuzzy"}},
		{"map bad regex", []DataFile{{DestFile: "badre.json", Type: "map"}}, []string{"badre.json", "line 1"}},
		{"unknown type", []DataFile{{DestFile: "ok.txt", Type: "csv"}}, []string{"ok.txt", "csv"}},
		{"bad strategy", []DataFile{{DestFile: "ok.txt", Type: "regexp", Strategy: "MRU"}}, []string{"ok.txt", "MRU"}},
		{"bad ttl", []DataFile{{DestFile: "ok.txt", Type: "regexp", TTL: "soon"}}, []string{"ok.txt", "soon"}},
		{"empty dest_file", []DataFile{{Type: "string"}}, []string{"dest_file"}},
		{"untyped is ignored even when absent", []DataFile{{DestFile: "GeoLite2-ASN.mmdb"}}, nil},
		{"regex alias", []DataFile{{DestFile: "ok.txt", Type: "regex"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(dir).Load(tt.files)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}

	// CRLF and blank lines.
	h := New(dir)
	if err := h.Load([]DataFile{{DestFile: "ok.txt", Type: "string"}}); err != nil {
		t.Fatal(err)
	}
	if got := h.File("ok.txt"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("File(ok.txt) = %q", got)
	}
	// A failed Load keeps nothing of its own and leaves earlier data.
	if err := h.Load([]DataFile{{DestFile: "bad.regex", Type: "regexp"}, {DestFile: "absent", Type: "string"}}); err == nil {
		t.Fatal("want error")
	}
	if len(h.File("ok.txt")) != 2 || h.RegexpInFile("ok", "bad.regex") {
		t.Error("failed Load changed the loaded data")
	}
}

func TestLoadTwiceIsNoop(t *testing.T) {
	dir := writeData(t, map[string]string{"l.txt": "one\ntwo\n"})
	h := New(dir)
	df := []DataFile{{DestFile: "l.txt", Type: "string"}}
	if err := h.Load(df); err != nil {
		t.Fatal(err)
	}
	first := h.File("l.txt")
	// Change the file: a second Load must not read it again.
	if err := os.WriteFile(filepath.Join(dir, "l.txt"), []byte("three\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.Load(append(df, df...)); err != nil {
		t.Fatal(err)
	}
	if got := h.File("l.txt"); len(got) != 2 || &got[0] != &first[0] {
		t.Errorf("second Load re-read the file: %q", got)
	}
	// Same file, other type: loaded separately.
	if err := h.Load([]DataFile{{DestFile: "l.txt", Type: "regexp"}}); err != nil {
		t.Fatal(err)
	}
	if !h.RegexpInFile("xthreex", "l.txt") {
		t.Error("regexp view of l.txt not loaded")
	}
	// A later item may add the cache a first item did not ask for.
	if h.cacheLen("l.txt") != -1 {
		t.Fatal("unexpected cache")
	}
	if err := h.Load([]DataFile{{DestFile: "l.txt", Type: "regexp", Strategy: "LRU"}}); err != nil {
		t.Fatal(err)
	}
	h.RegexpInFile("a", "l.txt")
	if h.cacheLen("l.txt") != 1 {
		t.Errorf("cache len = %d, want 1", h.cacheLen("l.txt"))
	}
}

func TestRegexpInFileHub(t *testing.T) {
	h := hubHelpers(t)
	tests := []struct {
		ua   string
		want bool
	}{
		{"Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)", true},
		{"Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000003)", true},
		{"sqlmap/1.7.2#stable (https://sqlmap.org)", false}, // the list has \bSqlmap\b: case matters
		{"Sqlmap/1.0", true},
		{"masscan/1.3 (https://github.com/robertdavidgraham/masscan)", true},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", false},
		{"", false},
		{"\xff\xfe", false},
	}
	for _, tt := range tests {
		for range 2 { // second round is served by the cache
			if got := h.RegexpInFile(tt.ua, "bad_user_agents.regex.txt"); got != tt.want {
				t.Errorf("RegexpInFile(%q) = %v, want %v", tt.ua, got, tt.want)
			}
		}
	}
	if n := h.cacheLen("bad_user_agents.regex.txt"); n != len(tests) {
		t.Errorf("cache holds %d, want %d", n, len(tests))
	}
}

func TestLookupFileHub(t *testing.T) {
	h := hubHelpers(t)
	tests := []struct{ path, want string }{
		// From the hub test http-technology-probing.
		{"/crx/packmgr/service.jsp", "adobe-aem-crx-package-manager-probing"},
		{"/cgi-bin/videoconfiguration.cgi", "acti-video-monitoring-panel-probing"},
		{"/some/random/path", ""},
		{"/index.html", ""},
		// equals and contains entries of the file.
		{"/ampps-admin/index.php", "ampps-admin-login-panel-probing"},
		{"/ampps/whatever", "ampps-probing"},
		{"/x/libs/granite/y", "adobe-experience-manager-login-panel-probing"},
		// the only regex entry.
		{"/goanywhere/lic", "goanywhere-probing"},
		{"/a/goanywhere/", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := h.LookupFile(tt.path, "technology_probing.json"); got != tt.want {
			t.Errorf("LookupFile(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestLookupFileOrder(t *testing.T) {
	dir := writeData(t, map[string]string{"m.json": strings.Join([]string{
		`{"tag":"re","pattern":"^/a","type":"regex"}`,
		`{"tag":"late","pattern":"zz","type":"contains"}`,
		`{"tag":"first","pattern":"/b","type":"contains"}`,
		`{"tag":"second","pattern":"/b","type":"contains"}`,
		`{"tag":"eq","pattern":"/a/zz/b","type":"equals"}`,
		`{"tag":"eq2","pattern":"/a/zz/b","type":"equals"}`,
		`{"tag":"extra","pattern":"/q","type":"equals","note":1}`,
	}, "\n")})
	h := New(dir)
	if err := h.Load([]DataFile{{DestFile: "m.json", Type: "map"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{"/a/zz/b", "eq"},    // equals first, first in file
		{"/a/zz/bb", "late"}, // contains before regex; leftmost match wins
		{"/a/b/zz", "first"}, // leftmost; tie goes to the first in file
		{"/a/x", "re"},       // regex last
		{"/c", ""},
	}
	for _, tt := range tests {
		if got := h.LookupFile(tt.in, "m.json"); got != tt.want {
			t.Errorf("LookupFile(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if m := h.FileMap("m.json"); len(m) != 7 || m[6]["note"] != 1.0 {
		t.Errorf("FileMap = %v", m)
	}
}

func TestResultCache(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }

	c := newResultCache(3, 10*time.Second, clock)
	c.set("a", true)
	c.set("b", false)
	c.set("c", true)
	if _, ok := c.get("a"); !ok { // a is now most recent
		t.Fatal("a missing")
	}
	c.set("d", true) // evicts b, the least recently used
	if _, ok := c.get("b"); ok {
		t.Error("b not evicted")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := c.get(k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	if c.len() != 3 {
		t.Errorf("len = %d, want 3 (bound)", c.len())
	}
	if v, ok := c.get("b"); ok || v {
		t.Error("miss must be false,false")
	}

	now = now.Add(9 * time.Second)
	c.set("a", false) // refresh a's value and TTL
	now = now.Add(2 * time.Second)
	if _, ok := c.get("c"); ok {
		t.Error("c survived its TTL")
	}
	if v, ok := c.get("a"); !ok || v {
		t.Errorf("refreshed a = %v, %v; want false, true", v, ok)
	}
	if c.len() != 2 { // c dropped on access; d still there (expired, not yet accessed)
		t.Errorf("len = %d, want 2", c.len())
	}

	// No TTL: entries never expire; size 0 means the default.
	c = newResultCache(0, 0, clock)
	for i := range defaultCacheSize + 10 {
		c.set(string(rune('A'+i)), true)
	}
	now = now.Add(1000 * time.Hour)
	if c.len() != defaultCacheSize {
		t.Errorf("len = %d, want %d", c.len(), defaultCacheSize)
	}
	if _, ok := c.get(string(rune('A' + defaultCacheSize + 9))); !ok {
		t.Error("entry expired without a TTL")
	}
}

func TestRegexpInFileCacheTTL(t *testing.T) {
	dir := writeData(t, map[string]string{"r.txt": "^bad\n"})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := New(dir)
	h.now = func() time.Time { return now }
	if err := h.Load([]DataFile{{DestFile: "r.txt", Type: "regexp", Strategy: "LRU", Size: 2, TTL: "10s"}}); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"bad1", "good", "bad2", "good2"} {
		h.RegexpInFile(in, "r.txt")
	}
	if n := h.cacheLen("r.txt"); n != 2 {
		t.Errorf("cache len = %d, want the bound 2", n)
	}
	if !h.RegexpInFile("bad2", "r.txt") || h.RegexpInFile("good2", "r.txt") {
		t.Error("cached results wrong")
	}
	now = now.Add(11 * time.Second)
	if !h.RegexpInFile("bad2", "r.txt") { // expired: recomputed, same answer
		t.Error("recomputed result wrong")
	}
}

func TestConcurrentUse(t *testing.T) {
	h := hubHelpers(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				ua := "agent-" + string(rune('a'+(i+j)%26))
				h.RegexpInFile(ua, "bad_user_agents.regex.txt")
				h.LookupFile("/ampps/", "technology_probing.json")
				_ = h.File("backdoors.txt")
				h.JsonExtract(h.File("trendy_cves_uris.json")[j%5], "uri")
			}
		}()
	}
	// Loading more data while programs run.
	dir := writeData(t, map[string]string{"x.txt": "x\n"})
	h2 := New(dir)
	_ = h2.Load([]DataFile{{DestFile: "x.txt", Type: "string"}})
	if err := h.Load([]DataFile{{DestFile: "sqli_probe_patterns.txt", Type: "string"}}); err != nil {
		t.Error(err)
	}
	wg.Wait()
	if n := h.cacheLen("bad_user_agents.regex.txt"); n > 40 {
		t.Errorf("cache grew past its size: %d", n)
	}
}
