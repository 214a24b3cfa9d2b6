package exprhelpers_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/agent/grok"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/parser"
	"github.com/rampart-ips/rampart/internal/loggen"
	"github.com/rampart-ips/rampart/internal/testhub"
	"github.com/rampart-ips/rampart/rules/patterns"
)

// The hub corpus: every expression of the hub's scenarios and parsers,
// and events parsed from generated nginx and sshd logs by the hub's own
// parsers, to check the optimized programs against the plain ones and to
// benchmark them.

// nginxCollections are the collections whose scenarios the nginx
// benchmark evaluates (what agentbench replays nginx logs against).
var nginxCollections = []string{"crowdsecurity/nginx", "crowdsecurity/base-http-scenarios", "crowdsecurity/http-cve"}

// hubExpr is one expression of a hub item.
type hubExpr struct {
	item string // file, relative to the hub
	key  string // filter, groupby, expression...
	src  string
}

// corpus is what the tests share; built once.
type corpus struct {
	helpers *exprhelpers.Helpers
	exprs   []hubExpr                // all scenario and parser expressions
	nginx   map[string]bool          // scenario files of the nginx collections
	events  map[string][]event.Event // "nginx", "sshd": parsed events
}

var (
	corpusOnce sync.Once
	corpusVal  *corpus
	corpusErr  error
)

func loadCorpus(tb testing.TB) *corpus {
	tb.Helper()
	hubDir := testhub.Dir(tb)
	corpusOnce.Do(func() { corpusVal, corpusErr = buildCorpus(hubDir) })
	if corpusErr != nil {
		tb.Fatal(corpusErr)
	}
	return corpusVal
}

func buildCorpus(hubDir string) (*corpus, error) {
	h, err := hub.OpenHub(hubDir)
	if err != nil {
		return nil, err
	}
	c := &corpus{
		helpers: exprhelpers.New(filepath.Join(hubDir, "data")),
		nginx:   map[string]bool{},
		events:  map[string][]event.Event{},
	}
	// Expressions (and data files) of every scenario and parser.
	for _, kind := range []string{"scenarios", "parsers"} {
		err := filepath.WalkDir(filepath.Join(hubDir, kind), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
				return err
			}
			rel, _ := filepath.Rel(hubDir, path)
			return c.addItem(rel, path)
		})
		if err != nil {
			return nil, err
		}
	}
	nginxScen, nginxParsers, err := resolve(h, nginxCollections)
	if err != nil {
		return nil, err
	}
	for _, ref := range nginxScen {
		path, _, _, err := h.Resolve("scenarios", ref)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(hubDir, path)
		c.nginx[rel] = true
	}
	_, sshdParsers, err := resolve(h, []string{"crowdsecurity/sshd"})
	if err != nil {
		return nil, err
	}
	lib := grok.NewLibrary()
	if err := lib.LoadFS(patterns.FS, "."); err != nil {
		return nil, err
	}
	if err := lib.LoadDir(filepath.Join(hubDir, "patterns")); err != nil {
		return nil, err
	}
	gen := map[string]struct {
		parsers []string
		gen     func(w io.Writer, n int, seed int64) (int, error)
	}{
		"nginx": {nginxParsers, loggen.NginxCount},
		"sshd":  {sshdParsers, loggen.SSHDCount},
	}
	for name, g := range gen {
		var items []parser.Item
		for _, ref := range g.parsers {
			path, _, stage, err := h.Resolve("parsers", ref)
			if err != nil {
				return nil, err
			}
			items = append(items, parser.Item{Name: ref, Stage: stage, Path: path})
		}
		pipe, err := parser.New(items, lib, c.helpers, nil)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if _, err := g.gen(&buf, 3000, 7); err != nil {
			return nil, err
		}
		labels := map[string]string{"type": map[string]string{"nginx": "nginx", "sshd": "syslog"}[name]}
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			e := event.New(event.Line{Raw: l, Src: "/var/log/" + name + ".log", Module: "file", Labels: labels})
			if err := pipe.Parse(&e, nil); err != nil {
				return nil, err
			}
			c.events[name] = append(c.events[name], e)
		}
	}
	return c, nil
}

// resolve returns the scenarios and parsers the collections pull in,
// recursively, plus the basic parsers every setup has.
func resolve(h *hub.Hub, collections []string) (scenarios, parsers []string, err error) {
	seen := map[string]bool{}
	var walk func(kind, name string) error
	walk = func(kind, name string) error {
		if seen[kind+":"+name] {
			return nil
		}
		seen[kind+":"+name] = true
		switch kind {
		case "parsers":
			parsers = append(parsers, name)
			return nil
		case "scenarios":
			scenarios = append(scenarios, name)
			return nil
		case "collections":
		default:
			return nil
		}
		info, ok := h.Item("collections", name)
		if !ok {
			return errors.New("unknown collection " + name)
		}
		for _, k := range []string{"parsers", "scenarios", "collections"} {
			for _, d := range info.Deps[k] {
				if err := walk(k, d); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, p := range []string{"crowdsecurity/syslog-logs", "crowdsecurity/dateparse-enrich", "crowdsecurity/whitelists"} {
		if _, ok := h.Item("parsers", p); ok {
			_ = walk("parsers", p)
		}
	}
	for _, c := range collections {
		if err := walk("collections", c); err != nil {
			return nil, nil, err
		}
	}
	return scenarios, parsers, nil
}

// exprKeys are the YAML keys whose string (or list of strings) values are
// expressions, at any depth of a scenario or parser document.
var exprKeys = map[string]bool{"filter": true, "groupby": true, "distinct": true, "cancel_on": true, "condition": true, "expression": true}

func (c *corpus) addItem(rel, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if data, ok := doc["data"].([]any); ok {
			var files []exprhelpers.DataFile
			for _, d := range data {
				m, _ := d.(map[string]any)
				var df exprhelpers.DataFile
				df.Type, _ = m["type"].(string)
				df.DestFile, _ = m["dest_file"].(string)
				df.Strategy, _ = m["strategy"].(string)
				df.Size, _ = m["size"].(int)
				df.TTL, _ = m["ttl"].(string)
				files = append(files, df)
			}
			if err := c.helpers.Load(files); err != nil {
				return err
			}
		}
		var walk func(key string, v any)
		walk = func(key string, v any) {
			switch v := v.(type) {
			case map[string]any:
				keys := make([]string, 0, len(v))
				for k := range v {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					walk(k, v[k])
				}
			case []any:
				for _, x := range v {
					walk(key, x)
				}
			case string:
				if exprKeys[key] && strings.TrimSpace(v) != "" {
					c.exprs = append(c.exprs, hubExpr{item: rel, key: key, src: v})
				}
			}
		}
		walk("", doc)
	}
}

// nginxFilters returns the filters of the nginx collections' scenarios.
func (c *corpus) nginxFilters() []hubExpr {
	var out []hubExpr
	for _, e := range c.exprs {
		if e.key == "filter" && c.nginx[e.item] {
			out = append(out, e)
		}
	}
	return out
}

// cloneEvent deep-copies the maps an expression may write (SetMeta).
func cloneEvent(e *event.Event) *event.Event {
	c := *e
	c.Meta = cloneStrMap(e.Meta)
	c.Parsed = cloneStrMap(e.Parsed)
	c.Enriched = cloneStrMap(e.Enriched)
	return &c
}

func cloneStrMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// literalRe finds the string literals of hub expressions.
var literalRe = regexp.MustCompile(`'([^'\\]*)'|"([^"\\]*)"`)

// probeEvents are events made to satisfy the hub rules: each string
// literal of an expression and each line of a string data file, and
// variants of them, as the HTTP fields of a copy of a real event, with
// the log type, status and verb the rules look for. Without them, few
// of the generated events get past the first test of a CVE rule.
func (c *corpus) probeEvents(base event.Event) []event.Event {
	seen := map[string]bool{}
	var values []string
	add := func(v string) {
		if !seen[v] {
			seen[v] = true
			values = append(values, v)
		}
	}
	for _, e := range c.exprs {
		for _, m := range literalRe.FindAllStringSubmatch(e.src, -1) {
			v := m[1] + m[2]
			add(v)
			add("/x" + v + "x")
			add(strings.ToUpper(v))
			add(strings.ToLower(v) + "/")
		}
	}
	for _, name := range []string{"backdoors.txt", "sensitive_data.txt", "admin_interfaces.txt", "http_path_traversal.txt",
		"sqli_probe_patterns.txt", "xss_probe_patterns.txt", "log4j2_cve_2021_44228.txt", "jira_cve_2021-26086.txt", "trendy_cves_uris.json"} {
		for _, l := range c.helpers.File(name) {
			if u := exprhelpers.JsonExtract(l, "uri"); u != "" {
				l = u
			}
			add(l)
			add("/y/" + strings.ToUpper(l))
		}
	}
	var out []event.Event
	for i, v := range values {
		e := *cloneEvent(&base)
		e.Meta["log_type"] = []string{"http_access-log", "http_error-log"}[i%2]
		e.Meta["http_status"] = []string{"404", "403", "200", "302", "401", "400"}[i%6]
		e.Meta["http_verb"] = []string{"GET", "POST", "HEAD"}[i%3]
		e.Parsed["verb"] = e.Meta["http_verb"]
		for _, k := range []string{"http_path", "http_user_agent"} {
			e.Meta[k] = v
		}
		for _, k := range []string{"request", "http_args", "http_user_agent", "http_referer", "file_name", "file_ext", "target_fqdn"} {
			e.Parsed[k] = v
		}
		out = append(out, e)
	}
	return out
}

// edgeEvents are hand-made events the generated logs lack: nil and empty
// maps, odd encodings, case and escape variants of the hub patterns.
func edgeEvents() []event.Event {
	var out []event.Event
	out = append(out, event.Event{}) // nil maps
	paths := []string{
		"", "/", "/%zz", "/a%2Fb", "/ÉTÉ/ǅ/ß", "/index.php?s=/Index/\\think\\app/invokefunction",
		"/${JNDI:LDAP://x}", "/%24%7Bjndi%3Aldap%3A%2F%2Fx%7D", "/.GIT/config", "/backup.SQL",
		"/WP-LOGIN.PHP", "/phpmyadmin/", "/..%2f..%2fetc/passwd", "/cgi-bin/.%2e/%2e%2e/bin/sh",
		"/setup.cgi?next_file=netgear.cfg&todo=syscmd&cmd=rm+-rf", "/s/x/_/;/WEB-INF/web.xml",
		"/?q=<ScRiPt>alert(1)</script>", "/x?id=1 UNION select", "/\x00\xff", strings.Repeat("/a", 300),
	}
	for i, p := range paths {
		e := event.New(event.Line{Raw: p, Labels: map[string]string{"type": "nginx"}})
		e.Meta["service"] = "http"
		e.Meta["log_type"] = []string{"http_access-log", "http_error-log", "ssh_failed-auth"}[i%3]
		e.Meta["http_path"] = p
		e.Meta["http_status"] = []string{"404", "403", "200", "401"}[i%4]
		e.Meta["source_ip"] = "192.0.2.1"
		e.Meta["http_verb"] = []string{"GET", "POST", "PUT"}[i%3]
		e.Meta["http_user_agent"] = p
		e.Parsed["request"] = p
		e.Parsed["http_args"] = p
		e.Parsed["http_user_agent"] = p
		e.Parsed["http_referer"] = p
		if i := strings.LastIndexByte(p, '/'); i >= 0 {
			e.Parsed["file_name"] = p[i+1:]
		}
		e.Parsed["verb"] = e.Meta["http_verb"]
		out = append(out, e)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
