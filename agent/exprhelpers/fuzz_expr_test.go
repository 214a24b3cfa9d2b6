package exprhelpers_test

import (
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/expr-lang/expr"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
	"github.com/rampart-ips/rampart/internal/testhub"
)

// FuzzOptimizedExpr is a differential fuzzer of the compile-time rewrites:
// an arbitrary expression over an event with arbitrary fields compiles
// with the optimized options exactly when it compiles with the plain
// ones, and then gives the same value, the same error-ness and the same
// event changes, through the VM and through Direct when it applies.
func FuzzOptimizedExpr(f *testing.F) {
	seeds := []string{
		`evt.Meta.log_type in ['http_access-log', 'http_error-log'] && Upper(PathUnescape(evt.Meta.http_path)) contains Upper('/foo')`,
		`any(File("backdoors.txt"), { evt.Parsed.file_name == #})`,
		`any(File("sensitive_data.txt"), { evt.Parsed.request endsWith #})`,
		`any(File('sqli_probe_patterns.txt'), {Upper(evt.Parsed.http_args) contains Upper(#)})`,
		`none(File("log4j2_cve_2021_44228.txt"), { Lower(evt.Meta.http_path) startsWith Lower(#)})`,
		`evt.Meta.http_status in ['404', '403'] ? evt.Meta.source_ip : ''`,
		`evt.Meta.source_ip + '/' + evt.Parsed.target_fqdn`,
		`RegexpInFile(evt.Parsed.http_user_agent, "bad_user_agents.regex.txt")`,
		`Lower(evt.Parsed.request) matches '^/a[0-9]+'`,
		`!(evt.Meta.service == 'http') || evt.Parsed.verb in ['GET', 'HEAD']`,
		`evt.Parsed.missing == nil`,
		`len(evt.Meta.http_path) > 3 and evt.SetMeta('cve', 'x')`,
	}
	for _, s := range seeds {
		f.Add(s, "/index.php?x=%2F..%2f", "Mozilla/5.0 (Nikto)", "404")
	}
	dataDir := filepath.Join(testhub.Dir(f), "data")
	h := exprhelpers.New(dataDir)
	var files []exprhelpers.DataFile
	for _, n := range []string{"backdoors.txt", "sensitive_data.txt", "sqli_probe_patterns.txt", "log4j2_cve_2021_44228.txt", "http_path_traversal.txt"} {
		files = append(files, exprhelpers.DataFile{DestFile: n, Type: "string"})
	}
	files = append(files, exprhelpers.DataFile{DestFile: "bad_user_agents.regex.txt", Type: "regexp", Strategy: "LRU", Size: 64, TTL: "1m"})
	if err := h.Load(files); err != nil {
		f.Fatal(err)
	}
	env := expr.Env(map[string]any{"evt": &event.Event{}})
	f.Fuzz(func(t *testing.T, src, path, ua, status string) {
		// Bounded work only: ranges and repeat() can allocate without limit.
		if len(src) > 300 || strings.Contains(src, "..") || strings.Contains(src, "repeat") {
			return
		}
		plain, perr := expr.Compile(src, append([]expr.Option{env}, h.OptionsUnoptimized()...)...)
		opt, oerr := expr.Compile(src, append([]expr.Option{env}, h.Options()...)...)
		if (perr == nil) != (oerr == nil) {
			t.Fatalf("%q: compile plain=%v optimized=%v", src, perr, oerr)
		}
		if perr != nil {
			return
		}
		mk := func() *event.Event {
			e := event.New(event.Line{Raw: path + " " + ua, Labels: map[string]string{"type": "nginx"}})
			e.Meta["log_type"], e.Meta["service"], e.Meta["http_path"], e.Meta["http_status"], e.Meta["source_ip"] = "http_access-log", "http", path, status, "192.0.2.1"
			e.Parsed["request"], e.Parsed["http_user_agent"], e.Parsed["verb"], e.Parsed["file_name"], e.Parsed["http_args"] = path, ua, "GET", filepath.Base(path), ua
			return &e
		}
		a := mk()
		aout, aerr := expr.Run(plain, map[string]any{"evt": a})
		b := mk()
		bout, berr := expr.Run(opt, map[string]any{"evt": b})
		if !same(aout, bout) || (aerr == nil) != (berr == nil) || !maps.Equal(a.Meta, b.Meta) || !maps.Equal(a.Parsed, b.Parsed) {
			t.Fatalf("%q\nplain     %#v err=%v meta=%v\noptimized %#v err=%v meta=%v", src, aout, aerr, a.Meta, bout, berr, b.Meta)
		}
		if fn, ok := exprhelpers.Direct(opt); ok {
			c := mk()
			cout, cerr := fn(c)
			if !same(aout, cout) || (aerr == nil) != (cerr == nil) || !maps.Equal(a.Meta, c.Meta) {
				t.Fatalf("%q\nplain  %#v err=%v\ndirect %#v err=%v", src, aout, aerr, cout, cerr)
			}
		}
	})
}

// same is reflect.DeepEqual, except that NaN equals NaN (0/0 is NaN on
// both sides).
func same(a, b any) bool {
	return reflect.DeepEqual(a, b) || fmt.Sprintf("%T %#v", a, a) == fmt.Sprintf("%T %#v", b, b)
}
