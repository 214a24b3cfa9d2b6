package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// upstreamFiles are notification files as upstream's packages install
// them in /etc/crowdsec/notifications (written here with upstream's keys,
// comments and placeholders): a switching user keeps them.
var upstreamFiles = map[string]string{
	"http.yaml": `type: http          # Don't change
name: http_default  # Must match the registered plugin in the profile

# One of "trace", "debug", "info", "warn", "error", "off"
log_level: info

# group_wait:         # Time to wait collecting alerts, eg "30s"
# group_threshold:    # Amount of alerts that triggers a message, eg "10"
# max_retry:          # Number of attempts to relay messages to plugins in case of error
# timeout:            # Time to wait for response from the plugin, eg "10s"

format: |
  {{.|toJson}}

url: <HTTP_url>

method: POST

# headers:
#   Authorization: token 0x64312313

# skip_tls_verification:  # true or false. Default is false

---

# type: http
# name: http_second_notification
# ...
`,
	"slack.yaml": `type: slack           # Don't change
name: slack_default   # Must match the registered plugin in the profile

log_level: info

format: |
  {{range . -}}
  {{$alert := . -}}
  {{range .Decisions -}}
  {{if $alert.Source.Cn -}}
  :flag-{{$alert.Source.Cn | lower}}: <https://www.shodan.io/host/{{.Value}}|{{.Value}}> will get {{.Type}} for next {{.Duration}} for triggering {{.Scenario}} on machine '{{$alert.MachineID}}'.
  {{end}}
  {{if not $alert.Source.Cn -}}
  :pirate_flag: <https://www.shodan.io/host/{{.Value}}|{{.Value}}> will get {{.Type}} for next {{.Duration}} for triggering {{.Scenario}} on machine '{{$alert.MachineID}}'.
  {{end}}
  {{end -}}
  {{end -}}

webhook: <WEBHOOK_URL>

# channel: <CHANNEL_NAME>
# username: <USERNAME>
# icon_emoji: <ICON_EMOJI>
# icon_url: <ICON_URL>

---

# type: slack
# name: slack_second_notification
# ...
`,
	"email.yaml": `type: email           # Don't change
name: email_default   # Must match the registered plugin in the profile

log_level: info

timeout: 20s          # Time to wait for response from the plugin

format: |
  <html><body>
  {{range . -}}
    {{$alert := . -}}
    {{range .Decisions -}}
      <p><a href=https://www.whois.com/whois/{{.Value}}>{{.Value}}</a> will get <b>{{.Type}}</b> for next <b>{{.Duration}}</b> for triggering <b>{{.Scenario}}</b> on machine <b>{{$alert.MachineID}}</b>.</p>
    {{end -}}
  {{end -}}
  </body></html>

smtp_host:            # example: smtp.gmail.com
smtp_username:        # Replace with your actual username
smtp_password:        # Replace with your actual password
smtp_port:            # Common values are any of [25, 465, 587, 2525]
auth_type:            # Valid choices are "none", "crammd5", "login", "plain"
sender_name: "CrowdSec"
sender_email:         # example: foo@gmail.com
email_subject: "CrowdSec Notification"
receiver_emails:
# - email1@gmail.com
# - email2@gmail.com

# One of "ssltls", "starttls", "none"
encryption_type: "ssltls"

# helo_host: "localhost"
# connect_timeout: 10s
# send_timeout: 10s

---

# type: email
# name: email_second_notification
# ...
`,
	"splunk.yaml": `type: splunk          # Don't change
name: splunk_default  # Must match the registered plugin in the profile

log_level: info

format: |
  {{.|toJson}}

url: <SPLUNK_HTTP_URL>
token: <SPLUNK_TOKEN>

---

# type: splunk
# name: splunk_second_notification
# ...
`,
	"sentinel.yaml": `type: sentinel          # Don't change
name: sentinel_default  # Must match the registered plugin in the profile

log_level: info

format: |
  {{.|toJson}}

customer_id: XXX-XXX
shared_key: XXXXXXX
log_type: crowdsec`,
	"file.yaml": `# Don't change this
type: file

name: file_default # this must match with the registered plugin in the profile
log_level: info # Options include: trace, debug, info, warn, error, off

# This template render all events as ndjson
format: |
  {{range . -}}
   { "time": "{{.StopAt}}", "program": "crowdsec", "alert": {{. | toJson }} }
  {{ end -}}

# group_wait: # duration to wait collecting alerts before sending to this plugin, eg "30s"
# group_threshold: # if alerts exceed this, then the plugin will be sent the message. eg "10"

#Use full path EG /tmp/crowdsec_alerts.json or %TEMP%\crowdsec_alerts.json
log_path: "/tmp/crowdsec_alerts.json"
rotate:
  enabled: true # Change to false if you want to handle log rotate on system basis
  max_size: 500 # in MB
  max_files: 5
  max_age: 5
  compress: true
`,
}

// Upstream's shipped files, untouched, load: those still holding their
// placeholders are unusable, which only matters once a profile names one.
func TestUpstreamShippedFiles(t *testing.T) {
	dir := t.TempDir()
	for name, body := range upstreamFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range cs {
		problem := "ok"
		if c.Problem != nil {
			problem = c.Problem.Error()
		}
		got[c.Name] = c.Type + ": " + problem
	}
	want := map[string]string{
		"email_default":    "email: " + filepath.Join(dir, "email.yaml") + `: document #1: notification "email_default": missing smtp_host`,
		"file_default":     "file: ok",
		"http_default":     "http: " + filepath.Join(dir, "http.yaml") + `: document #1: notification "http_default": url "<HTTP_url>": scheme must be http or https`,
		"sentinel_default": "sentinel: " + filepath.Join(dir, "sentinel.yaml") + `: document #1: notification "sentinel_default": shared_key is not base64: illegal base64 data at input byte 4`,
		"slack_default":    "slack: ok",
		"splunk_default":   "splunk: " + filepath.Join(dir, "splunk.yaml") + `: document #1: notification "splunk_default": url "<SPLUNK_HTTP_URL>": scheme must be http or https`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("loaded:\n%v\nwant:\n%v", got, want)
	}
	for _, c := range cs {
		switch c.Name {
		case "email_default":
			if c.Timeout.Duration != 20*time.Second || c.SenderName != "CrowdSec" || c.EncryptionType != "ssltls" {
				t.Errorf("email: %+v", c)
			}
		case "file_default":
			if c.LogPath != "/tmp/crowdsec_alerts.json" || c.Rotate != (Rotate{Enabled: true, MaxSize: 500, MaxFiles: 5, MaxAge: 5, Compress: true}) {
				t.Errorf("file: %+v", c)
			}
		}
		if _, err := c.Render([]*models.Alert{TestAlert(time.Now())}); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	// Nothing names them: fine. A profile naming one that cannot send
	// stops the start, saying why.
	if err := CheckReferences(map[string][]string{"file_default": {"p"}}, cs, dir); err != nil {
		t.Errorf("a usable notification: %v", err)
	}
	err = CheckReferences(map[string][]string{"http_default": {"default_ip_remediation"}}, cs, dir)
	if err == nil || !strings.Contains(err.Error(), `profile "default_ip_remediation" names notification "http_default", which cannot send: `) ||
		!strings.Contains(err.Error(), "http.yaml") || !strings.Contains(err.Error(), "<HTTP_url>") {
		t.Errorf("a profile naming an unusable notification: %v", err)
	}
}

// Several documents in one file, empty ones skipped; an unknown key is
// an error naming the file and its line in the file (not in the document)
// as the TOML loader words it.
func TestYAMLDocumentsAndErrors(t *testing.T) {
	cs, err := ParseYAML([]byte(`type: http
name: a
format: x
url: http://127.0.0.1/
group_wait: 30s
group_threshold: 10
max_retry: 5
timeout: 10s
headers:
  Content-Type: application/json
---
# a comment only
---
type: file
name: b
format: x
log_path: /var/log/rampart-alerts.json
`), "multi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Name != "a" || cs[1].Name != "b" {
		t.Fatalf("got %d: %+v", len(cs), cs)
	}
	a := cs[0]
	if a.GroupWait.Duration != 30*time.Second || a.GroupThreshold != 10 || a.MaxRetry != 5 || a.Timeout.Duration != 10*time.Second ||
		a.Headers["Content-Type"] != "application/json" || a.Method != "POST" || a.Source != "multi.yaml" {
		t.Errorf("a: %+v", a)
	}
	for _, tc := range []struct{ doc, want string }{
		{"type: http\nname: a\nformat: x\nurl: http://h/\n---\ntype: http\nname: b\nformat: x\nuri: http://h/\nmetod: GET\n",
			"f.yaml:9: uri: unknown key\nf.yaml:10: metod: unknown key"},
		{"type: file\nname: a\nformat: x\nlog_path: /a\nrotate:\n  enabled: true\n  max_sise: 3\n", "f.yaml:7: max_sise: unknown key"},
		{"type: http\nname: a\nformat: x\nurl: http://h/\ngroup_threshold: many\n", "f.yaml:5: cannot unmarshal !!str `many` into int"},
		{"type: http\nname: a\nformat: x\nurl: http://h/\ntimeout: soon\n", `f.yaml: document #1: `},
		{"type: http\nname: a\n  format: x\n", "f.yaml:3: mapping values are not allowed in this context"},
		{"- type: http\n", "f.yaml:1: cannot unmarshal !!seq into notify.Config"},
		{"type: http\nname: a\nformat: x\nurl: http://h/\n---\ntype: teams\nname: t\nformat: x\n",
			`f.yaml: document #2: notification "t": type "teams" is not built in`},
		{"type: slack\nname: s\nformat: x\nwebhook: http://h/\ntoken: x\n", `f.yaml: document #1: notification "s": key token belongs to type splunk, not slack`},
	} {
		_, err := ParseYAML([]byte(tc.doc), "f.yaml")
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.doc, err, tc.want)
		}
	}
}

func parseOneYAML(t *testing.T, doc string) *Config {
	t.Helper()
	cs, err := ParseYAML([]byte(doc), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Problem != nil {
		t.Fatalf("want one usable notification: %+v", cs)
	}
	return cs[0]
}

// splunk: an HTTP Event Collector request, the token (from the
// environment here) in upstream's header, the text as the event; an
// error status is retried.
func TestSplunkDelivery(t *testing.T) {
	st := testStore(t)
	rec := &recorder{answers: []int{http.StatusServiceUnavailable}}
	srv := startRecorder(t, rec)
	t.Setenv("RAMPART_TEST_HEC_TOKEN", "0f1e2d3c")
	c := parseOneYAML(t, `type: splunk
name: splunk_default
format: |
  {{range .}}{{.Source.IP}} {{.Scenario}}{{end}}
url: `+srv.URL+`/services/collector
token: ${RAMPART_TEST_HEC_TOKEN}
max_retry: 2
`)
	b := runBroker(t, st, c)
	b.Enqueue([]string{c.Name}, storeAlert(t, st, "192.0.2.7", "crowdsecurity/ssh-bf"))
	waitFor(t, "delivery after a 503", func() bool { return stats(b, c.Name).Sent == 1 })
	got := rec.got()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2 (a 503, then the retry)", len(got))
	}
	for _, r := range got {
		var ev map[string]any
		if err := json.Unmarshal([]byte(r.body), &ev); err != nil {
			t.Fatalf("body %q: %v", r.body, err)
		}
		if r.method != http.MethodPost || r.path != "/services/collector" || r.header.Get("Authorization") != "Splunk 0f1e2d3c" ||
			r.header.Get("Content-Type") != "application/json" || len(ev) != 1 || ev["event"] != "192.0.2.7 crowdsecurity/ssh-bf\n" {
			t.Errorf("request %s %s %v %q", r.method, r.path, r.header, r.body)
		}
	}
}

// sentinel: the Data Collector API's request, its signature computed
// here from the documented algorithm over what the server received.
func TestSentinelDelivery(t *testing.T) {
	st := testStore(t)
	rec := &recorder{answers: []int{http.StatusInternalServerError}}
	srv := startRecorder(t, rec)
	key := []byte("a workspace key of some length..")
	c := parseOneYAML(t, `type: sentinel
name: sentinel_default
format: |
  {{.|toJson}}
customer_id: 2f4b6d8e-0000-4000-8000-000000000001
shared_key: `+base64.StdEncoding.EncodeToString(key)+`
log_type: crowdsec
time_generated_field: stop_at
url: `+srv.URL+`/api/logs?api-version=2016-04-01
max_retry: 1
`)
	b := runBroker(t, st, c)
	b.Enqueue([]string{c.Name}, storeAlert(t, st, "192.0.2.8", "crowdsecurity/ssh-bf"))
	waitFor(t, "delivery after a 500", func() bool { return stats(b, c.Name).Sent == 1 })
	got := rec.got()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2 (a 500, then the retry)", len(got))
	}
	for _, r := range got {
		date := r.header.Get("x-ms-date")
		when, err := time.Parse(time.RFC1123, date)
		if err != nil || !strings.HasSuffix(date, " GMT") || time.Since(when) > time.Hour {
			t.Errorf("x-ms-date %q: %v", date, err)
		}
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "POST\n%d\napplication/json\nx-ms-date:%s\n/api/logs", len(r.body), date)
		want := "SharedKey 2f4b6d8e-0000-4000-8000-000000000001:" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		if r.header.Get("Authorization") != want {
			t.Errorf("Authorization %q, want %q", r.header.Get("Authorization"), want)
		}
		if r.method != http.MethodPost || r.path != "/api/logs" || r.query != "api-version=2016-04-01" || r.header.Get("Log-Type") != "crowdsec" ||
			r.header.Get("Content-Type") != "application/json" || r.header.Get("time-generated-field") != "stop_at" {
			t.Errorf("request %s %s?%s %v", r.method, r.path, r.query, r.header)
		}
		var alerts []map[string]any
		if err := json.Unmarshal([]byte(r.body), &alerts); err != nil || len(alerts) != 1 {
			t.Errorf("body %q: %v", r.body, err)
		}
	}
	// Without url, the public cloud's endpoint for the workspace.
	c.URL = ""
	if u := c.sentinelURL(); u != "https://2f4b6d8e-0000-4000-8000-000000000001.ods.opinsights.azure.com/api/logs?api-version=2016-04-01" {
		t.Errorf("default url %s", u)
	}
}

// FuzzParseYAML: any bytes give notifications or an error that starts
// with the file name, never a panic.
func FuzzParseYAML(f *testing.F) {
	for _, s := range upstreamFiles {
		f.Add([]byte(s))
	}
	f.Add([]byte("type: http\nname: a\nformat: x\nurl: http://h/\n---\n- a\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("rotate: {enabled: yes, max_size: -1}\ntype: file\nname: f\nformat: x\nlog_path: /x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseYAML(data, "f.yaml"); err != nil && !strings.HasPrefix(err.Error(), "f.yaml") {
			t.Fatalf("error without the file name: %v", err)
		}
	})
}
