package exprhelpers

import (
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/rampart-ips/rampart/agent/event"
)

// Filters copied verbatim from the reference hub's scenarios/crowdsecurity
// (../shared/hub beside the repository).
const (
	filterSensitiveFiles = `evt.Meta.log_type in ["http_access-log", "http_error-log"] and any(File("sensitive_data.txt"), { evt.Parsed.request endsWith #})`
	filterBadUserAgent   = `evt.Meta.log_type in ["http_access-log", "http_error-log"] && RegexpInFile(evt.Parsed.http_user_agent, "bad_user_agents.regex.txt")`
	filterCVEProbing     = `evt.Meta.service == 'http' and 
evt.Meta.log_type in ['http_access-log', 'http_error-log'] and 
evt.Meta.http_status in ['404', '403'] and
any(File("trendy_cves_uris.json"), { 
  evt.Meta.http_path contains JsonExtract(#, "uri") ? evt.SetMeta("cve", JsonExtract(#, "cve")) : false 
})
`
	filterTechProbing = `if (evt.Meta.service == 'http' and
    evt.Meta.log_type in ['http_access-log', 'http_error-log'] and
    evt.Meta.http_status in ['404', '403'])
  {
    let target_technology = LookupFile(evt.Meta.http_path, "technology_probing.json");
    target_technology != "" ? evt.SetMeta("target_technology", target_technology)  : false
  } else { false }
`
	filterThinkPHP = `evt.Meta.log_type in ["http_access-log", "http_error-log"] and RegexpInFile(Lower(evt.Meta.http_path), "thinkphp_cve_2018-20062.txt")
`
	filterSQLi     = `evt.Meta.log_type in ['http_access-log', 'http_error-log'] && any(File('sqli_probe_patterns.txt'), {Upper(evt.Parsed.http_args) contains Upper(#)})`
	filterBackdoor = `evt.Meta.log_type in ["http_access-log", "http_error-log"] and any(File("backdoors.txt"), { evt.Parsed.file_name == #})`
	filterAdmin    = `evt.Meta.service == 'http' and 
evt.Meta.log_type in ['http_access-log', 'http_error-log'] and 
evt.Meta.http_status in ['404', '403'] and
any(File("admin_interfaces.txt"), { Lower(evt.Meta.http_path) contains #})
`
	filterLog4j = `evt.Meta.log_type in ["http_access-log", "http_error-log"] and 
(
  any(File("log4j2_cve_2021_44228.txt"), { Upper(evt.Meta.http_path) contains Upper(#)})
or
  any(File("log4j2_cve_2021_44228.txt"), { Upper(evt.Parsed.http_user_agent) contains Upper(#)})
or
  any(File("log4j2_cve_2021_44228.txt"), { Upper(evt.Parsed.http_referer) contains Upper(#)})  
)
`
	filterCVE202226134 = `Upper(PathUnescape(evt.Meta.http_path)) contains Upper('@java.lang.Runtime@getRuntime().exec(')`
	filterNetgear      = `evt.Meta.log_type in ['http_access-log', 'http_error-log'] && Lower(QueryUnescape(evt.Meta.http_path)) startsWith Lower('/setup.cgi?next_file=netgear.cfg&todo=syscmd&cmd=')`
	// ssh-time-based-bf's condition; queue is the bucket's queue.
	conditionSSHTimeBased = `let failedAuths = filter(queue.Queue, {#.Meta.log_type == 'ssh_failed-auth'});
len(failedAuths) >= 4 &&
MedianInterval(map(failedAuths[-4:], {#.Time})) > duration("10m")
`
)

func compile(t testing.TB, h *Helpers, src string, env map[string]any) *vm.Program {
	t.Helper()
	prog, err := expr.Compile(src, append(h.Options(), expr.Env(env), expr.AsBool())...)
	if err != nil {
		t.Fatalf("compile %q: %v", src, err)
	}
	return prog
}

func httpEvent(path, status string, parsed map[string]string) *event.Event {
	e := event.New(event.Line{Raw: "x"})
	e.Meta["service"] = "http"
	e.Meta["log_type"] = "http_access-log"
	e.Meta["http_path"] = path
	e.Meta["http_status"] = status
	e.Meta["source_ip"] = "192.0.2.1"
	for k, v := range parsed {
		e.Parsed[k] = v
	}
	return &e
}

func TestHubFilters(t *testing.T) {
	h := hubHelpers(t)
	tests := []struct {
		name     string
		filter   string
		evt      *event.Event
		want     bool
		wantMeta map[string]string
	}{
		{"sensitive file", filterSensitiveFiles, httpEvent("/backup.sql", "404", map[string]string{"request": "/backup.sql"}), true, nil},
		{"sensitive file .git/config", filterSensitiveFiles, httpEvent("/.git/config", "404", map[string]string{"request": "/.git/config"}), true, nil},
		{"not sensitive", filterSensitiveFiles, httpEvent("/index.html", "200", map[string]string{"request": "/index.html"}), false, nil},
		{"sensitive, wrong log type", filterSensitiveFiles, func() *event.Event {
			e := httpEvent("/backup.sql", "404", map[string]string{"request": "/backup.sql"})
			e.Meta["log_type"] = "ssh_failed-auth"
			return e
		}(), false, nil},
		{"sensitive, no request parsed", filterSensitiveFiles, httpEvent("/", "404", nil), false, nil},

		{"bad UA nikto", filterBadUserAgent, httpEvent("/", "404", map[string]string{"http_user_agent": "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None)"}), true, nil},
		{"good UA", filterBadUserAgent, httpEvent("/", "200", map[string]string{"http_user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}), false, nil},

		{"cve probing sets cve", filterCVEProbing, httpEvent("/global-protect/login.esp?x=1", "404", nil), true, map[string]string{"cve": "CVE-2024-3400"}},
		{"cve probing wrong status", filterCVEProbing, httpEvent("/global-protect/login.esp", "200", nil), false, map[string]string{"cve": ""}},
		{"cve probing no match", filterCVEProbing, httpEvent("/hello", "404", nil), false, map[string]string{"cve": ""}},

		{"tech probing", filterTechProbing, httpEvent("/crx/packmgr/service.jsp", "403", nil), true, map[string]string{"target_technology": "adobe-aem-crx-package-manager-probing"}},
		{"tech probing acti", filterTechProbing, httpEvent("/cgi-bin/videoconfiguration.cgi", "404", nil), true, map[string]string{"target_technology": "acti-video-monitoring-panel-probing"}},
		{"tech probing unknown path", filterTechProbing, httpEvent("/some/random/path", "404", nil), false, map[string]string{"target_technology": ""}},
		{"tech probing 200", filterTechProbing, httpEvent("/crx/packmgr/service.jsp", "200", nil), false, map[string]string{"target_technology": ""}},

		{"thinkphp", filterThinkPHP, httpEvent("/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5", "200", nil), true, nil},
		{"thinkphp upper case is lowered", filterThinkPHP, httpEvent("/INDEX.PHP?S=INDEX/%5CTHINK%5CAPP/INVOKEFUNCTION&FUNCTION=CALL_USER_FUNC_ARRAY&VARS", "200", nil), true, nil},
		{"not thinkphp", filterThinkPHP, httpEvent("/index.php", "200", nil), false, nil},

		{"sqli", filterSQLi, httpEvent("/", "200", map[string]string{"http_args": "id=1%27%20union%20select%201,2--"}), true, nil},
		{"no sqli", filterSQLi, httpEvent("/", "200", map[string]string{"http_args": "id=12&page=3"}), false, nil},
		{"backdoor", filterBackdoor, httpEvent("/c99.php", "404", map[string]string{"file_name": "c99.php"}), true, nil},
		{"no backdoor", filterBackdoor, httpEvent("/index.php", "404", map[string]string{"file_name": "index.php"}), false, nil},
		{"admin", filterAdmin, httpEvent("/PhpMyAdmin/index.php", "404", nil), true, nil},
		{"log4j in user agent", filterLog4j, httpEvent("/", "200", map[string]string{"http_user_agent": "${jndi:ldap://x/a}"}), true, nil},
		{"log4j clean", filterLog4j, httpEvent("/", "200", map[string]string{"http_user_agent": "curl/8"}), false, nil},
		{"CVE-2022-26134 PathUnescape", filterCVE202226134, httpEvent("/%24%7B%40java.lang.Runtime%40getRuntime%28%29.exec%28%22id%22%29%7D/", "200", nil), true, nil},
		{"CVE-2022-26134 bad escape", filterCVE202226134, httpEvent("/%zz", "200", nil), false, nil},
		{"netgear QueryUnescape", filterNetgear, httpEvent("/setup.cgi?next_file=netgear.cfg&todo=syscmd&cmd=rm+-rf+/tmp/*", "200", nil), true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog := compile(t, h, tt.filter, CompileEnv())
			out, err := expr.Run(prog, Env(tt.evt))
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if out != tt.want {
				t.Errorf("filter = %v, want %v", out, tt.want)
			}
			for k, v := range tt.wantMeta {
				if got := tt.evt.Meta[k]; got != v {
					t.Errorf("Meta[%s] = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// queue stands for the scenario engine's bucket queue (upstream
// types.Queue with its Queue []Event field).
type queue struct{ Queue []event.Event }

func TestSSHTimeBasedCondition(t *testing.T) {
	h := New(t.TempDir())
	prog := compile(t, h, conditionSSHTimeBased, map[string]any{"queue": &queue{}, "evt": &event.Event{}})
	base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	ev := func(logType string, min int) event.Event {
		e := event.New(event.Line{})
		e.Meta["log_type"] = logType
		e.Time = base.Add(time.Duration(min) * time.Minute)
		return e
	}
	tests := []struct {
		name string
		q    []event.Event
		want bool
	}{
		{"slow brute force", []event.Event{ev("ssh_failed-auth", 0), ev("ssh_failed-auth", 15), ev("ssh_failed-auth", 30), ev("ssh_failed-auth", 45)}, true},
		{"three failures only", []event.Event{ev("ssh_failed-auth", 0), ev("ssh_failed-auth", 15), ev("auth_success", 20), ev("ssh_failed-auth", 30)}, false},
		{"fast attempts", []event.Event{ev("ssh_failed-auth", 0), ev("ssh_failed-auth", 1), ev("ssh_failed-auth", 2), ev("ssh_failed-auth", 3)}, false},
		{"last four decide", []event.Event{ev("ssh_failed-auth", 0), ev("ssh_failed-auth", 1), ev("ssh_failed-auth", 20), ev("ssh_failed-auth", 40), ev("ssh_failed-auth", 60)}, true},
		{"exactly 10m is not more", []event.Event{ev("ssh_failed-auth", 0), ev("ssh_failed-auth", 10), ev("ssh_failed-auth", 20), ev("ssh_failed-auth", 30)}, false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := expr.Run(prog, map[string]any{"queue": &queue{Queue: tt.q}, "evt": &event.Event{}})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if out != tt.want {
				t.Errorf("condition = %v, want %v", out, tt.want)
			}
		})
	}
}

func TestOptionsCompileChecks(t *testing.T) {
	h := hubHelpers(t)
	env := CompileEnv()
	bad := []string{
		`IpInRange(1, "10.0.0.0/8")`,      // wrong argument type
		`Upper("a", "b")`,                 // wrong arity
		`File("x") == "y"`,                // []string vs string
		`RegexpInFile(evt.Parsed.x)`,      // missing argument
		`evt.Parsed.x contains Nope("a")`, // unknown function
	}
	for _, src := range bad {
		if _, err := expr.Compile(src, append(h.Options(), expr.Env(env))...); err == nil {
			t.Errorf("%q compiled, want a type error", src)
		}
	}
	good := []struct {
		src  string
		want any
	}{
		{`IsIPV6(evt.Meta.source_ip) ? "v6" : "v4"`, "v4"},
		{`IpInRange(evt.Meta.source_ip, "192.0.2.0/24")`, true},
		{`IsIP("::1") && IsIPV4("1.2.3.4") && !IsIPV4("::1")`, true},
		{`Sprintf("%s:%d", evt.Meta.source_ip, 22)`, "192.0.2.1:22"},
		{`Sprintf("%d")`, "%!d(MISSING)"},
		{`Atof("2.5") * 2`, 5.0},
		{`Split("a/b", "/")[1]`, "b"},
		{`TrimSpace(" x ")`, "x"},
		{`ToString(evt.Meta.source_ip)`, "192.0.2.1"},
		{`JsonExtract('{"a":{"b":[1,"x"]}}', "a.b[1]")`, "x"},
		{`JsonExtractUnescape('{"a":"\\u0041"}', "a")`, "A"},
		{`JsonExtractLib('{"a":{"b":2}}', "a", "b")`, "2"},
		{`len(JsonExtractSlice('{"a":[1,2,3]}', "a"))`, 3},
		{`JsonExtractObject('{"a":{"b":"c"}}', "a").b`, "c"},
		{`ParseUri("/x?a=1").a[0]`, "1"},
		{`ExtractQueryParam("/x?a=1&a=2", "a")[1]`, "2"},
		{`IpToRange("1.2.3.4", "/24")`, "1.2.3.0/24"},
		{`PathEscape("a b") + QueryEscape("a b") + PathUnescape("%41") + QueryUnescape("%42+")`, "a%20ba+bAB "},
		{`Lower(Upper("aB"))`, "ab"},
		{`Distance("0", "0", "1", "1")`, 0.0},
		{`MedianInterval([]) == duration("0s")`, true},
		{`len(FileMap("technology_probing.json")) > 100`, true},
		{`len(File("nope.txt"))`, 0},
	}
	e := httpEvent("/", "200", nil)
	for _, tt := range good {
		prog, err := expr.Compile(tt.src, append(h.Options(), expr.Env(env))...)
		if err != nil {
			t.Errorf("compile %q: %v", tt.src, err)
			continue
		}
		out, err := expr.Run(prog, Env(e))
		if err != nil {
			t.Errorf("run %q: %v", tt.src, err)
			continue
		}
		if out != tt.want {
			t.Errorf("%q = %#v, want %#v", tt.src, out, tt.want)
		}
	}
}

// An untyped env lets values of any type reach the helpers at run time:
// they must give zero values, not panic.
func TestUntypedEnvHostileValues(t *testing.T) {
	h := hubHelpers(t)
	srcs := []string{
		`Upper(m.x)`, `IpInRange(m.x, m.x)`, `File(m.x)`, `RegexpInFile(m.x, "bad_user_agents.regex.txt")`,
		`LookupFile(m.x, m.x)`, `JsonExtract(m.x, m.x)`, `MedianInterval(m.x)`, `Atof(m.x)`, `Sprintf(m.x)`,
		`JsonExtractLib(m.x, m.x)`, `ToString(m.x)`, `Distance(m.x, m.x, m.x, m.x)`,
		`LibInjectionIsSQLI(m.x)`, `LibInjectionIsXSS(m.x)`, `IPToCountry(m.x)`, `GeoIPEnrich(m.x)`,
		`MatchKnownBot(m.x, m.x, m.x, m.x)`,
	}
	for _, src := range srcs {
		prog, err := expr.Compile(src, append(h.Options(), expr.Env(map[string]any{"m": map[string]any{}}))...)
		if err != nil {
			t.Fatalf("compile %q: %v", src, err)
		}
		for _, x := range []any{nil, 42, []int{1}, map[string]any{}, "ok"} {
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%q with %#v panicked: %v", src, x, r)
					}
				}()
				if _, err := expr.Run(prog, map[string]any{"m": map[string]any{"x": x}}); err != nil {
					t.Errorf("%q with %#v: %v", src, x, err)
				}
			}()
		}
	}
}
